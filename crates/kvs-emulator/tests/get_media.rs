//! `kinesis-video-media` `GetMedia` end to end, read by an independent client: boto3's
//! `get_media` against the endpoint `GetDataEndpoint(APIName=GET_MEDIA)` returns, while the
//! real ingestion client streams the looping sample clip (H.264 with a keyframe every second,
//! Opus stored as AAC) through a storage session. The checks live in
//! `tests/python/get_media.py`: NOW follows live ingestion (the latency is printed),
//! continuation tokens and FRAGMENT_NUMBER resume without gap or duplicate, EARLIEST reads
//! every stored fragment in order, ffprobe sees h264 + aac, bad input gets its error, the
//! fourth open response of a stream is refused, and once ingestion ends the body ends by itself
//! after the idle timeout, or at once when the stream is deleted.

use std::time::Duration;

use kvs_emulator::{SessionState, Throttling, TpsLimit};
use kvs_test_support::store::wait_for_fragments;
use kvs_test_support::IngestSetup;

/// The test's GetMedia idle timeout (AWS: 3 s), short so the test stays short.
const IDLE: Duration = Duration::from_millis(1500);

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/get_media.py");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_media_follows_live_ingestion_and_resumes_from_continuation_tokens() {
    let setup = IngestSetup::start_with("gm-cam", |b| {
        // The script calls GetMedia on one stream more than 5 times a second (its error
        // checks); the rate limit is not what it tests.
        let mut throttling = Throttling::default();
        throttling.set(
            "GetMedia",
            TpsLimit {
                per_account: None,
                per_channel: Some(1000),
            },
        );
        b.throttling(throttling)
            .timings(|t| t.get_media_idle_timeout = IDLE)
    })
    .await;
    let session = setup.ingest_looping(setup.emulator.ingest_config()).await;
    // The stream has media (GetMedia on a stream without any is ResourceNotFound).
    wait_for_fragments(&setup.emulator, "gm-cam-stream", 2).await;

    let home = tempfile::tempdir().unwrap();
    let mut live = setup.emulator.python_command(SCRIPT, home.path());
    live.env("KVS_STREAM", "gm-cam-stream")
        .env("KVS_PHASE", "live");
    let out = setup
        .emulator
        .run_python(live, "get-media live: all checks passed")
        .await;
    println!("{out}");

    session.stop().await.expect("a clean stop");
    setup
        .newest_session_when("the storage session ended", |s| {
            s.state == SessionState::Ended
        })
        .await;
    let mut ended = setup.emulator.python_command(SCRIPT, home.path());
    ended
        .env("KVS_STREAM", "gm-cam-stream")
        .env("KVS_PHASE", "ended")
        .env("KVS_IDLE_MS", IDLE.as_millis().to_string());
    let out = setup
        .emulator
        .run_python(ended, "get-media ended: all checks passed")
        .await;
    println!("{out}");
}
