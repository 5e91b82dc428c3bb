//! Issue #27 item 1: every endpoint on port 443, each on its own loopback address, as AWS
//! serves its endpoints (the AWS KVS WebRTC C SDK connects every endpoint on 443 and refuses a
//! URL with a port; `c_sdk_master.rs` runs it). Here: the URLs, the certificate, the Host
//! check and our own clients in that layout. Binding 443 needs root (or CAP_NET_BIND_SERVICE);
//! the test uses 127.0.27.1-4, so that it runs beside an emulator on 127.0.0.1:443.

mod support;

use aws_sdk_kinesisvideo::types::ChannelRole;
use kvs_test_support::{run_to_end, SampleClip};
use kvs_webrtc_ingest::{AudioSource, VideoSource};
use support::TestEmulator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_on_443_serves_the_aws_sdk_and_our_client() {
    let emu = TestEmulator::start_with(|b| {
        b.bind("127.0.27.1".parse().unwrap())
            .every_endpoint_on_port(443)
    })
    .await;
    assert_eq!(emu.endpoint, "https://127.0.27.1");
    let arn = emu.create_storage_channel("port-443-cam");
    // GetSignalingChannelEndpoint through the official client: one address per endpoint, no
    // port in any URL.
    let (wss, https, webrtc) = emu.endpoints(&arn, ChannelRole::Master).await;
    assert_eq!(
        [wss.as_str(), https.as_str(), webrtc.as_str()],
        [
            "wss://127.0.27.3",
            "https://127.0.27.2",
            "https://127.0.27.4"
        ]
    );
    // The certificate covers every address (verification on), and each answers its own address.
    let calls = emu.inspect("calls").await;
    assert_eq!(calls["getSignalingChannelEndpoint"], 1, "{calls}");
    let (status, body) = emu
        .http_raw("POST", &format!("{https}/v1/get-ice-server-config"), b"{}")
        .await;
    assert_eq!(status, 401, "unsigned, but served: {body}");

    // Our client ingests through the four addresses.
    let clip = SampleClip::write();
    let session = emu
        .ingest_client()
        .ingest()
        .channel("port-443-cam")
        .video(VideoSource::annex_b_file(&clip.video))
        .audio(AudioSource::ogg_opus_file(&clip.audio))
        .send()
        .await
        .expect("ingestion starts");
    let stats = run_to_end(session).await;
    let sessions = emu.received_all(&stats).await;
    assert_eq!(sessions[0].media.video.frames, 75);
    let report = emu.inspect("state").await;
    assert_eq!(report["endpoints"]["wss"], "wss://127.0.27.3", "{report}");
}

/// The addresses must be IPv4 loopback ones with three more after the first.
#[tokio::test]
async fn every_endpoint_on_one_port_needs_four_loopback_addresses() {
    for bind in ["::1", "10.0.0.1", "127.255.255.254"] {
        let err = kvs_emulator::Emulator::builder()
            .temporary()
            .bind(bind.parse().unwrap())
            .every_endpoint_on_port(443)
            .start()
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), kvs_emulator::ErrorKind::Config, "{bind}: {err}");
        assert!(err.to_string().contains("IPv4 loopback"), "{err}");
    }
}
