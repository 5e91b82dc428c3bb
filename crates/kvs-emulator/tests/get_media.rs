//! `kinesis-video-media` `GetMedia` end to end, read by an independent client: boto3's
//! `get_media` against the endpoint `GetDataEndpoint(APIName=GET_MEDIA)` returns, while (or
//! after) the real ingestion client streams the sample clip (H.264 with a keyframe every
//! second, Opus stored as AAC) through a storage session. The checks live in
//! `tests/python/get_media.py`, one phase per test:
//! - live: NOW follows live ingestion (the latency is printed), continuation tokens and
//!   FRAGMENT_NUMBER resume without gap or duplicate, EARLIEST reads every stored fragment in
//!   order, ffprobe sees h264 + aac; once ingestion ends the body ends by itself after the idle
//!   timeout, and at once when the stream is deleted under a waiting reader;
//! - refusals: bad selector, malformed token, unknown fragment number, unknown stream, a stream
//!   that never had media, a fourth open response;
//! - rate: the sixth call a second on one stream.

use std::time::Duration;

use kvs_emulator::{SessionState, Throttling, TpsLimit};
use kvs_test_support::store::wait_for_fragments;
use kvs_test_support::{run_to_end, IngestSetup, TestEmulator};
use kvs_webrtc_ingest::{AudioSource, VideoSource};

/// The test's GetMedia idle timeout (AWS: 3 s), short so the test stays short.
const IDLE: Duration = Duration::from_millis(1500);

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/get_media.py");

/// The script calls GetMedia on one stream more than 5 times a second; where the rate limit is
/// not what a test checks, it is raised.
fn unthrottled() -> Throttling {
    let mut throttling = Throttling::default();
    throttling.set(
        "GetMedia",
        TpsLimit {
            per_account: None,
            per_channel: Some(1000),
        },
    );
    throttling
}

/// Run one phase of the script against `emulator` and print what it printed.
async fn phase(emulator: &TestEmulator, stream: &str, phase: &str) {
    let home = tempfile::tempdir().unwrap();
    let mut command = emulator.python_command(SCRIPT, home.path());
    command
        .env("KVS_STREAM", stream)
        .env("KVS_PHASE", phase)
        .env("KVS_IDLE_MS", IDLE.as_millis().to_string());
    let out = emulator
        .run_python(command, &format!("get-media {phase}: all checks passed"))
        .await;
    println!("{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_media_follows_live_ingestion_and_resumes_from_continuation_tokens() {
    let setup = IngestSetup::start_with("gm-cam", |b| {
        b.throttling(unthrottled())
            .timings(|t| t.get_media_idle_timeout = IDLE)
    })
    .await;
    let session = setup.ingest_looping(setup.emulator.ingest_config()).await;
    // The stream has media (GetMedia on a stream without any is ResourceNotFound).
    wait_for_fragments(&setup.emulator, "gm-cam-stream", 2).await;
    phase(&setup.emulator, "gm-cam-stream", "live").await;

    session.stop().await.expect("a clean stop");
    setup
        .newest_session_when("the storage session ended", |s| {
            s.state == SessionState::Ended
        })
        .await;
    phase(&setup.emulator, "gm-cam-stream", "ended").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_media_refuses_bad_input_and_a_fourth_reader() {
    let setup = IngestSetup::start_with("gm-bad", |b| b.throttling(unthrottled())).await;
    let session = setup
        .client()
        .ingest()
        .channel("gm-bad")
        .video(VideoSource::annex_b_file(setup.file("clip.h264")))
        .audio(AudioSource::ogg_opus_file(setup.file("clip.opus")))
        .send()
        .await
        .expect("ingestion starts");
    run_to_end(session).await;
    wait_for_fragments(&setup.emulator, "gm-bad-stream", 3).await;
    phase(&setup.emulator, "gm-bad-stream", "refusals").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_media_allows_five_calls_a_second_per_stream() {
    let emulator = TestEmulator::start().await;
    phase(&emulator, "gm-rate-stream", "rate").await;
}
