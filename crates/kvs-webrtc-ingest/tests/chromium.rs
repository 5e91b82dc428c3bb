//! An independent WebRTC implementation receives our media: headless Chromium plays the storage
//! peer (it offers, we answer, over the emulator's signaling) and its `getStats()` shows the
//! H.264 frames decoded and the Opus packets received.
//!
//! Chromium trusts the emulator's CA through an NSS database made for the test (certificate
//! verification stays on), and runs with a profile of its own in a temporary directory.

use std::process::{Child, Command, Stdio};

use kvs_test_support::IngestSetup as Setup;
use kvs_webrtc_ingest::{AudioSource, VideoSource};

/// A headless Chromium, killed when dropped.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_browser(setup: &Setup, home: &std::path::Path) -> Browser {
    // Trust the emulator's CA the way a user would: in the profile's NSS database.
    let nssdb = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).unwrap();
    let db = format!("sql:{}", nssdb.display());
    let certutil = |args: &[&str]| {
        let status = Command::new("certutil")
            .args(args)
            .status()
            .expect("certutil runs (cargo xtask test installs libnss3-tools)");
        assert!(status.success(), "certutil {args:?}");
    };
    certutil(&["-N", "-d", &db, "--empty-password"]);
    let ca = setup.emulator.handle.ca_cert_path().expect("TLS is on");
    certutil(&[
        "-A",
        "-d",
        &db,
        "-t",
        "C,,",
        "-n",
        "kvs-emulator",
        "-i",
        ca.to_str().unwrap(),
    ]);

    let port = setup
        .emulator
        .handle
        .endpoint_url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let url = format!(
        "wss://127.0.0.1:{port}/_emulator/v1/storage-peer?channel={}",
        setup.channel
    );
    let page =
        include_str!("browser/storage-peer.html").replace("STORAGE_PEER_URL", &format!("{url:?}"));
    let page_path = home.join("storage-peer.html");
    std::fs::write(&page_path, page).unwrap();
    let child = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--allow-loopback-in-peer-connection",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
            "--remote-debugging-port=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            home.join("profile").display()
        ))
        .arg(format!("file://{}", page_path.display()))
        .env("HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium runs (cargo xtask test installs it)");
    Browser(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_as_the_storage_peer_decodes_our_h264_and_receives_our_opus() {
    let setup = Setup::start("browser-cam").await;
    let home = tempfile::tempdir().unwrap();
    let _browser = start_browser(&setup, home.path());
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
