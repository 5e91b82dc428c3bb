//! A storage session end to end: presigned signaling, JoinStorageSession through the official
//! Rust client, the storage offer, a str0m answer, real DTLS-SRTP media, and a recording that
//! ffprobe reads with both streams and the right duration.

mod support;

use aws_sdk_kinesisvideo::types::ChannelRole;
use support::peer::{answer_and_run, answer_and_stream, Plan, VideoCodec};
use support::{StorageMaster, TestEmulator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_and_opus_are_checked_counted_and_recorded() {
    let emu = TestEmulator::start().await;
    let StorageMaster {
        channel_arn,
        webrtc,
        mut ws,
        ..
    } = emu.storage_master("media-cam").await;
    emu.join_master(&webrtc, &channel_arn).await;

    let report = answer_and_stream(&mut ws, VideoCodec::H264, 1).await;
    assert!(report.connected, "ICE + DTLS connected: {report:?}");
    assert!(report.offer_sdp.contains("H264/90000"), "offer lists H.264");
    assert!(
        report.offer_sdp.contains("a=ice-options:trickle"),
        "the storage offer trickles"
    );
    assert!(
        !report.offer_sdp.contains("a=candidate"),
        "candidates come as ICE_CANDIDATE messages"
    );
    assert!(
        report.offer_sdp.contains("a=recvonly"),
        "the master's video is received, not sent"
    );
    let h264_at = report.offer_sdp.find("H264/90000").unwrap();
    let vp8_at = report
        .offer_sdp
        .find("VP8/90000")
        .expect("offer also lists VP8");
    assert!(h264_at < vp8_at, "H.264 comes first in the offer");
    assert_eq!(report.video_frames_sent, 75);
    assert!(
        report.keyframe_requests >= 1,
        "the storage peer asks for a keyframe when it starts"
    );

    let sessions = emu
        .wait_for_sessions_json("all frames counted", |s| {
            s.first().is_some_and(|s| {
                s["media"]["video"]["frames"].as_u64() >= Some(74)
                    && s["media"]["audio"]["frames"].as_u64() >= Some(140)
            })
        })
        .await;
    let media = &sessions[0]["media"];
    assert_eq!(media["video"]["codec"], "H264");
    assert_eq!(media["audio"]["codec"], "opus");
    assert_eq!(
        (media["width"].as_u64(), media["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert_eq!(media["profile"], "constrained-baseline");
    assert!(media["video"]["keyframes"].as_u64() >= Some(3), "{media}");
    assert_eq!(media["violations"], serde_json::json!([]), "{media}");
    assert_eq!(sessions[0]["state"], "CONNECTED");

    let stopped = emu.handle.shutdown().await;
    support::assert_sample_recording(&stopped.recordings_dir().join("media-cam"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vp8_answer_is_rejected_with_status_response() {
    let emu = TestEmulator::start().await;
    let StorageMaster {
        channel_arn,
        webrtc,
        mut ws,
        ..
    } = emu.storage_master("vp8-cam").await;
    emu.join_master(&webrtc, &channel_arn).await;

    let report = answer_and_stream(&mut ws, VideoCodec::Vp8, 0).await;
    assert!(!report.connected);
    let status = &report.status_responses.first().expect("a STATUS_RESPONSE")["statusResponse"];
    assert_eq!(status["errorType"], "InvalidArgumentException");
    assert_eq!(status["statusCode"], "400");
    assert!(
        status["description"].as_str().unwrap().contains("vp8"),
        "{status}"
    );
    let sessions = emu
        .wait_for_sessions_json("session ended", |s| {
            s.first().is_some_and(|s| s["state"] == "ENDED")
        })
        .await;
    assert!(sessions[0]["answerRejected"]
        .as_str()
        .unwrap()
        .contains("vp8"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_gets_the_masters_media_and_the_master_hears_the_viewer() {
    let emu = TestEmulator::start().await;
    let StorageMaster {
        channel_arn,
        webrtc,
        ws: mut master_ws,
        ..
    } = emu.storage_master("relay-cam").await;
    emu.join_master(&webrtc, &channel_arn).await;
    // The master streams 9 s; the viewer joins once the master's session is connected.
    let master =
        tokio::spawn(async move { answer_and_stream(&mut master_ws, VideoCodec::H264, 3).await });
    emu.wait_for_sessions_json("master connected", |s| {
        s.iter()
            .any(|s| s["role"] == "MASTER" && s["state"] == "CONNECTED")
    })
    .await;

    let (viewer_wss, _, viewer_webrtc) = emu.endpoints(&channel_arn, ChannelRole::Viewer).await;
    let mut viewer_ws = emu
        .connect(&viewer_wss, &channel_arn, Some("viewer-1"))
        .await
        .expect("viewer connects");
    emu.join_viewer(&viewer_webrtc, &channel_arn, "viewer-1")
        .await;
    let viewer = answer_and_run(
        &mut viewer_ws,
        Plan {
            codec: VideoCodec::H264,
            loops: 1,
            send_video: false,
            send_audio: true,
        },
    )
    .await;
    assert!(viewer.connected, "{viewer:?}");
    assert_eq!(viewer.video_frames_sent, 0, "a viewer sends no video");
    assert!(
        viewer.video_frames_received >= 25,
        "about 3 s of the master's 25 fps video reach the viewer: {viewer:?}"
    );
    assert!(
        viewer.keyframes_received >= 1,
        "the viewer gets a keyframe: {viewer:?}"
    );
    assert!(
        viewer.audio_frames_received >= 50,
        "the master's audio reaches the viewer: {viewer:?}"
    );

    let master = master.await.expect("master task");
    assert_eq!(master.video_frames_sent, 225);
    assert!(
        master.audio_frames_received >= 50,
        "the viewer's audio reaches the master: {master:?}"
    );
    assert!(
        master.keyframe_requests >= 2,
        "one PLI when the master's session starts, one for the viewer: {master:?}"
    );
    assert_eq!(
        master.video_frames_received, 0,
        "nothing is sent back on the master's recvonly video"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_answer_rejection_ends_the_session_and_a_new_join_recovers() {
    let emu = TestEmulator::start().await;
    let StorageMaster {
        channel_arn,
        webrtc,
        mut ws,
        ..
    } = emu.storage_master("reject-cam").await;
    let armed = emu
        .fault(serde_json::json!({"channel": "reject-cam", "fault": "REJECT_NEXT_ANSWER"}))
        .await;
    assert_eq!(armed["pending"]["rejectAnswers"], 1, "{armed}");

    emu.join_master(&webrtc, &channel_arn).await;
    let refused = answer_and_stream(&mut ws, VideoCodec::H264, 0).await;
    assert!(!refused.connected, "a rejected answer never connects");
    let status = &refused.status_responses.first().expect("a STATUS_RESPONSE")["statusResponse"];
    assert_eq!(status["errorType"], "InvalidArgumentException");
    assert!(
        status["description"].as_str().unwrap().contains("fault"),
        "{status}"
    );

    // The fault is used up: the device's retry (a new join) connects.
    emu.join_master(&webrtc, &channel_arn).await;
    let retried = answer_and_stream(&mut ws, VideoCodec::H264, 0).await;
    assert!(retried.connected, "{retried:?}");
    assert!(retried.status_responses.is_empty());
    let sessions = emu
        .wait_for_sessions_json("one ended, one connected", |s| {
            s.iter().any(|s| s["state"] == "CONNECTED") && s.iter().any(|s| s["state"] == "ENDED")
        })
        .await;
    let ended = sessions.iter().find(|s| s["state"] == "ENDED").unwrap();
    assert!(ended["answerRejected"].as_str().unwrap().contains("fault"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_offer_delay_holds_the_offer_back() {
    let emu = TestEmulator::start().await;
    let StorageMaster {
        channel_arn,
        webrtc,
        mut ws,
        ..
    } = emu.storage_master("slow-cam").await;
    emu.fault(
        serde_json::json!({"channel": "slow-cam", "fault": "DELAY_NEXT_OFFER", "delayMs": 1500}),
    )
    .await;
    let joined = std::time::Instant::now();
    emu.join_master(&webrtc, &channel_arn).await;
    let offer = support::next_json(&mut ws).await;
    assert_eq!(offer["messageType"], "SDP_OFFER");
    assert!(
        joined.elapsed() >= std::time::Duration::from_millis(1500),
        "the offer came {:?} after the join",
        joined.elapsed()
    );
    // Only the next offer: the fault is used up.
    let state = emu.inspect("state").await;
    let pending = &state["faults"][channel_arn.as_str()];
    assert!(
        pending.is_object() && pending["delayNextOfferMs"].is_null(),
        "{state}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_without_a_master_is_disconnected_after_the_limit() {
    let emu = TestEmulator::start_with(|b| {
        b.timings(|t| t.viewer_without_master = std::time::Duration::from_secs(2))
    })
    .await;
    let (channel_arn, _) = emu.storage_channel("lonely-cam").await;
    let (wss, _, webrtc) = emu.endpoints(&channel_arn, ChannelRole::Viewer).await;
    let mut ws = emu
        .connect(&wss, &channel_arn, Some("viewer-1"))
        .await
        .expect("viewer connects");
    emu.join_viewer(&webrtc, &channel_arn, "viewer-1").await;
    let report = answer_and_stream(&mut ws, VideoCodec::H264, 0).await;
    assert!(report.connected, "{report:?}");
    let sessions = emu
        .wait_for_sessions_json("the lonely viewer ended", |s| {
            s.first().is_some_and(|s| s["state"] == "ENDED")
        })
        .await;
    assert_eq!(sessions[0]["role"], "VIEWER");
    assert_eq!(
        sessions[0]["endReason"],
        "viewer without a master for too long"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_over_the_size_limit_are_counted_and_not_recorded() {
    // The fixture's keyframes are 2.6 to 5 KB and its other frames at most 600 bytes.
    let emu = TestEmulator::start_with(|b| b.limits(|l| l.max_media_frame = 2000)).await;
    let StorageMaster {
        channel_arn,
        webrtc,
        mut ws,
        ..
    } = emu.storage_master("big-cam").await;
    emu.join_master(&webrtc, &channel_arn).await;
    let report = answer_and_stream(&mut ws, VideoCodec::H264, 1).await;
    assert!(report.connected);
    let sessions = emu
        .wait_for_sessions_json("frames counted", |s| {
            s.first()
                .is_some_and(|s| s["media"]["video"]["frames"].as_u64() >= Some(74))
        })
        .await;
    let media = &sessions[0]["media"];
    let keyframes = media["video"]["keyframes"].as_u64().unwrap();
    assert!(keyframes >= 3, "{media}");
    assert!(
        media["video"]["framesNotRecorded"].as_u64() >= Some(keyframes),
        "every oversize keyframe is left out: {media}"
    );
    let violations = media["violations"].to_string();
    assert!(
        violations.contains("exceeds the 2000 byte limit"),
        "{violations}"
    );
}
