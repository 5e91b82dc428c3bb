//! Ingestion through an impaired path (issue #25): the emulator's `IMPAIR` fault makes the
//! storage peer's UDP lose, delay and cap what the device sends. These assert behaviour
//! (frames keep arriving intact, the recording stays valid, recovery after a cap lifts); the
//! figures per setting are printed by `cargo bench -p kvs-webrtc-ingest --bench
//! impairment_figures`.

// End-to-end tests run in real time (clippy.toml bans the clock in the sans-IO parts).
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use kvs_emulator::SessionInfo;
use kvs_test_support::IngestSetup as Setup;

use serde_json::json;

/// Video frames received per frame the media time covers (the clip is 25 frames a second).
fn share_complete(session: &SessionInfo) -> f64 {
    let video = &session.media.video;
    let expected = video.duration_ms / 40 + 1;
    video.frames as f64 / expected as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_loss_with_30_ms_jitter_keeps_frames_arriving_intact() {
    let setup = Setup::start("lossy-cam").await;
    setup.emulator.inject_fault(json!({
        "channel": "lossy-cam", "fault": "IMPAIR",
        "loss": 0.05, "delayMs": 30, "jitterMs": 20, "seed": 25,
    }));
    let session = setup.ingest_looping(setup.emulator.ingest_config()).await;
    let media = setup
        .newest_session_when("6 s of video through the lossy path", |s| {
            s.media.video.duration_ms >= 6000
        })
        .await;
    let stats = session.stop().await.expect("clean stop");
    let share = share_complete(&media);
    eprintln!(
        "5 % loss, 30 ± 20 ms: {:.1} % of frames complete, longest gap {} ms, NACKs {}",
        share * 100.0,
        media.media.video.longest_gap_ms,
        stats.video.nacks_received
    );
    assert!(
        stats.video.nacks_received > 0,
        "losses are NACKed: {stats:?}"
    );
    assert!(
        share >= 0.8,
        "{:.3} of the frames arrived: {media:?}",
        share
    );
    assert!(
        media.media.violations.is_empty(),
        "the recording stays valid: {:?}",
        media.media.violations
    );
    assert_eq!(stats.rejoins, 0, "loss alone never ends the session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bandwidth_cap_below_the_bitrate_is_recovered_within_2_s_of_lifting() {
    let setup = Setup::start("narrow-cam").await;
    let session = setup.ingest_looping(setup.emulator.ingest_config()).await;
    let before = setup
        .newest_session_when("2 s of video", |s| s.media.video.duration_ms >= 2000)
        .await;
    let bitrate_kbps = before.media.video.bytes * 8 / before.media.video.duration_ms.max(1);
    let cap = (bitrate_kbps / 3).max(16);
    let requests_before = session.stats().video.keyframe_requests;
    setup.emulator.inject_fault(json!({
        "channel": "narrow-cam", "fault": "IMPAIR", "direction": "toStoragePeer",
        "bandwidthKbps": cap, "queueMs": 200,
    }));
    // Under the cap for 3 s (a bounded wait on the storage peer's counters, not a sleep).
    let capped_at = Instant::now();
    let during = setup
        .newest_session_when("3 s under the cap", |_| {
            capped_at.elapsed() >= Duration::from_secs(3)
        })
        .await;
    let lifted_at = Instant::now();
    setup
        .emulator
        .handle
        .clear_impairment("narrow-cam")
        .expect("a channel");
    let keyframes = during.media.video.keyframes;
    // Recovered: a keyframe reached the storage peer after the cap lifted.
    let recovered_in = setup
        .newest_session_when("a keyframe after the cap", |s| {
            s.id != during.id || s.media.video.keyframes > keyframes
        })
        .await;
    let recovered = lifted_at.elapsed();
    let frames = recovered_in.media.video.frames;
    let after = setup
        .newest_session_when("1 s of video after the keyframe", |s| {
            s.id == recovered_in.id && s.media.video.frames >= frames + 25
        })
        .await;
    let stats = session.stop().await.expect("clean stop");
    eprintln!(
        "cap {cap} kbit/s under {bitrate_kbps} kbit/s: recovered {} ms after lifting; keyframe requests {}",
        recovered.as_millis(),
        stats.video.keyframe_requests
    );
    assert!(
        recovered < Duration::from_secs(2),
        "recovered {recovered:?} after the cap lifted"
    );
    assert!(
        stats.video.keyframe_requests > requests_before,
        "the loss under the cap asked for a keyframe: {stats:?}"
    );
    assert!(
        after.media.violations.is_empty(),
        "the recording stays valid: {:?}",
        after.media.violations
    );
}
