//! The AWS KVS WebRTC JS SDK's own `SignalingClient` (npm `amazon-kinesis-video-streams-webrtc`,
//! run under Node) presigns its URL as the SDK does, connects to the emulator and receives the
//! storage offer. The script is `tests/js/signaling_client.js`; `npm ci --legacy-peer-deps` in `tests/js` installs it.

mod support;

use std::process::Stdio;

use aws_sdk_kinesisvideo::types::ChannelRole;
use support::{TestEmulator, WAIT};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_sdk_signaling_client_receives_the_storage_offer() {
    let emu = TestEmulator::start().await;
    let (arn, _) = emu.storage_channel("js-cam").await;
    let (wss, _, webrtc) = emu.endpoints(&arn, ChannelRole::Master).await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js");
    assert!(
        std::path::Path::new(dir)
            .join("node_modules/amazon-kinesis-video-streams-webrtc")
            .exists(),
        "run `npm ci --legacy-peer-deps` in {dir} first (.ci/run does)"
    );
    let key = emu.key();
    let mut child = Command::new("node")
        .arg("signaling_client.js")
        .current_dir(dir)
        .env("KVS_WSS", &wss)
        .env("KVS_CHANNEL_ARN", &arn)
        .env("KVS_REGION", &emu.region)
        .env("AWS_ACCESS_KEY_ID", &key.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret_access_key)
        .env("NODE_EXTRA_CA_CERTS", emu.handle.ca_cert_path().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = tokio::time::Instant::now() + WAIT;
    let first = tokio::time::timeout_at(deadline, lines.next_line())
        .await
        .expect("node answers in time")
        .unwrap();
    if first.as_deref() != Some("open") {
        let mut stderr = String::new();
        use tokio::io::AsyncReadExt;
        let _ = child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .await;
        panic!("expected `open`, got {first:?}; stderr: {stderr}");
    }
    emu.join_master(&webrtc, &arn).await;
    let line = tokio::time::timeout_at(deadline, lines.next_line())
        .await
        .expect("offer in time")
        .unwrap()
        .expect("a line");
    let offer: serde_json::Value =
        serde_json::from_str(line.strip_prefix("offer ").expect("offer line")).unwrap();
    assert_eq!(offer["type"], "offer");
    assert!(offer["sdp"].as_str().unwrap().contains("H264/90000"));
    // The SDK keys storage messages (which have no senderClientId) under its default id.
    assert!(
        offer["senderClientId"].is_null() || offer["senderClientId"] == "MASTER",
        "{offer}"
    );
    let status = tokio::time::timeout_at(deadline, child.wait())
        .await
        .expect("node exits")
        .unwrap();
    assert!(status.success());
}
