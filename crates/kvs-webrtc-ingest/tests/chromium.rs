//! An independent WebRTC implementation receives our media: headless Chromium plays the storage
//! peer (it offers, we answer, over the emulator's signaling) and its `getStats()` shows the
//! H.264 frames decoded and the Opus packets received. The browser and its page come from the
//! test harness (`kvs_test_support::StoragePeerBrowser`) and the emulator.

use kvs_test_support::{IngestSetup as Setup, StoragePeerBrowser};
use kvs_webrtc_ingest::{AudioSource, VideoSource};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_as_the_storage_peer_decodes_our_h264_and_receives_our_opus() {
    let setup = Setup::start("browser-cam").await;
    // The emulator's own storage-peer page (/_emulator/v1/storage-peer.html).
    let _browser = StoragePeerBrowser::start(&setup.emulator.handle, &setup.channel);
    // Bounded wait for the page to register as the channel's storage peer.
    kvs_test_support::wait_until("Chromium to register", || {
        let peers = setup.emulator.handle.external_storage_peers();
        kvs_test_support::check(peers, |p| *p == [setup.channel_arn.clone()])
    })
    .await;

    let session = setup
        .client()
        .ingest()
        .channel("browser-cam")
        .video(VideoSource::annex_b_file(setup.file("clip.h264")).looping(true))
        .audio(AudioSource::ogg_opus_file(setup.file("clip.opus")).looping(true))
        .send()
        .await
        .expect("ingestion starts");
    let sessions = setup
        .emulator
        .wait_for_sessions(
            "Chromium to decode 75 frames and receive 100 packets",
            |s| {
                s.first()
                    .and_then(|s| s.external_report.as_ref())
                    .is_some_and(|r| {
                        r["video"]["framesDecoded"].as_u64() >= Some(75)
                            && r["audio"]["packetsReceived"].as_u64() >= Some(100)
                    })
            },
        )
        .await;
    let stats = session.stop().await.expect("clean stop");
    let report = sessions[0].external_report.clone().unwrap();
    eprintln!("Chromium's report: {report:#}");
    let video = &report["video"];
    assert_eq!(video["codec"], "video/H264", "{report}");
    assert_eq!(
        video["framesDropped"], 0,
        "no frame failed to decode: {report}"
    );
    assert!(video["keyFramesDecoded"].as_u64() >= Some(3), "{report}");
    assert_eq!(
        (video["frameWidth"].as_u64(), video["frameHeight"].as_u64()),
        (Some(320), Some(240))
    );
    assert_eq!(report["audio"]["codec"], "audio/opus", "{report}");
    assert!(stats.video.frames_sent >= 75, "{stats:?}");
    assert_eq!(sessions[0].role, "MASTER");
}
