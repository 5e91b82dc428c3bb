//! HLS (and DASH) playback end to end (issue #23): boto3's `get_hls_streaming_session_url` and
//! `get_dash_streaming_session_url` against the endpoint
//! `GetDataEndpoint(APIName=GET_HLS_STREAMING_SESSION_URL)` returns, and what the URLs serve
//! read by independent players (ffprobe, ffmpeg) and plain HTTPS requests. The checks live in
//! `tests/python/hls.py`, one phase per step (each phase checks the DASH manifest too):
//! - live: while the real ingestion client streams the sample clip in a loop: codecs and
//!   resolution in the master playlist, a media playlist that follows ingestion, ffprobe sees
//!   h264 + aac and ffmpeg decodes 3 s silently;
//! - on_demand: once the session ended: every stored fragment in a VOD playlist with its date,
//!   ffprobe and a silent decode of the whole stream, server-timestamp sessions with their
//!   markers, then bad input (ranges, MPEG_TS, tokens altered, of another stream, of a
//!   deleted one, LIVE without recent media);
//! - video_only: a stream whose device sent no audio plays as video alone.

mod support;

use futures_util::StreamExt as _;

use std::time::Duration;

use kvs_emulator::SessionState;
use kvs_test_support::store::wait_for_fragments;
use kvs_test_support::IngestSetup;
use support::peer::answer_and_stream_video_only;
use support::{StorageMaster, TestEmulator};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/hls.py");

/// The test's LIVE window (AWS: 30 s): long enough for a fragment stored every second, short
/// enough to see LIVE refused soon after ingestion ends.
const LIVE_RECENT: Duration = Duration::from_secs(5);

/// Run one phase of the script and print what it printed.
async fn phase(
    emulator: &TestEmulator,
    stream: &str,
    phase: &str,
    expected: Option<&[serde_json::Value]>,
) {
    let home = tempfile::tempdir().unwrap();
    let mut command = emulator.python_command(SCRIPT, home.path());
    command.env("KVS_STREAM", stream).env("KVS_PHASE", phase);
    if let Some(expected) = expected {
        command.env("KVS_EXPECTED", serde_json::to_string(expected).unwrap());
    }
    let out = emulator
        .run_python(command, &format!("hls {phase}: all checks passed"))
        .await;
    println!("{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_follows_live_ingestion_and_replays_the_stream_on_demand() {
    let setup = IngestSetup::start_with("hls-cam", |b| {
        b.timings(|t| t.live_playback_recent_media = LIVE_RECENT)
    })
    .await;
    let session = setup.ingest_looping(setup.emulator.ingest_config()).await;
    wait_for_fragments(&setup.emulator, "hls-cam-stream", 3).await;
    phase(&setup.emulator, "hls-cam-stream", "live", None).await;

    session.stop().await.expect("a clean stop");
    setup
        .newest_session_when("the storage session ended", |s| {
            s.state == SessionState::Ended
        })
        .await;
    let stored = kvs_test_support::store::stored_fragments(&setup.emulator, "hls-cam-stream").await;
    assert!(stored.len() >= 4, "{stored:?}");
    phase(
        &setup.emulator,
        "hls-cam-stream",
        "on_demand",
        Some(&stored),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_audio_plays_as_video_alone() {
    let emu = TestEmulator::start().await;
    let StorageMaster {
        channel_arn,
        webrtc,
        mut ws,
        ..
    } = emu.storage_master("hls-mute").await;
    emu.join_master(&webrtc, &channel_arn).await;
    let report = answer_and_stream_video_only(&mut ws, 1).await;
    assert!(report.connected);
    assert_eq!(report.audio_frames_sent, 0);
    // Keyframes at 0, 1 and 2 s: two fragments are stored while the session is live.
    let stored = wait_for_fragments(&emu, "hls-mute-stream", 2).await;
    phase(&emu, "hls-mute-stream", "video_only", Some(&stored)).await;
}

/// A session's token works until its `Expires` runs out, then its master playlist is a 401
/// `NotAuthorizedException`, as at AWS (every path of a session checks the token the same
/// way). The emulator accepts `Expires` below the service's 300 s only when told to
/// (`min_playback_session_expires`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_stops_playing_when_its_token_expires() {
    let setup = IngestSetup::start_with("expiring-cam", |b| {
        b.timings(|t| t.min_playback_session_expires = Duration::from_secs(1))
    })
    .await;
    let session = setup.ingest_looping(setup.emulator.ingest_config()).await;
    wait_for_fragments(&setup.emulator, "expiring-cam-stream", 1).await;
    let expires_s = 10;
    let made = std::time::Instant::now();
    let url = support::streaming_session_url(
        &setup.emulator,
        "getHLSStreamingSessionURL",
        &format!(
            r#"{{"StreamName":"expiring-cam-stream","PlaybackMode":"LIVE","Expires":{expires_s}}}"#
        ),
    )
    .await;
    let (status, playlist) = setup.emulator.http_raw("GET", &url, b"").await;
    assert_eq!(status, 200, "{playlist}");
    assert!(
        made.elapsed() < Duration::from_secs(expires_s),
        "the first request came too late to count"
    );
    assert!(playlist.starts_with("#EXTM3U"), "{playlist}");
    // Polled (bounded) until the token runs out.
    let refused = kvs_test_support::wait_for_within(
        Duration::from_secs(expires_s + 5),
        "the session's token to expire",
        || async {
            let (status, headers, body) = setup.emulator.http_raw_with("GET", &url, &[], b"").await;
            let error_type = headers
                .into_iter()
                .find(|(k, _)| k == "x-amzn-errortype")
                .map(|(_, v)| v);
            kvs_test_support::check((status, error_type, body), |(status, ..)| *status == 401)
        },
    )
    .await;
    assert!(
        made.elapsed() >= Duration::from_secs(expires_s),
        "refused before its Expires: {refused:?}"
    );
    assert!(
        refused
            .1
            .as_deref()
            .is_some_and(|t| t.starts_with("NotAuthorizedException")),
        "{refused:?}"
    );
    assert!(refused.2.contains("expired"), "{refused:?}");
    // Below the lowered minimum is still refused.
    let (status, text) = support::archived_media_call(
        &setup.emulator,
        "getHLSStreamingSessionURL",
        r#"{"StreamName":"expiring-cam-stream","PlaybackMode":"LIVE","Expires":0}"#,
    )
    .await;
    assert_eq!(status, 400, "{text}");
    session.stop().await.expect("a clean stop");
}

/// Session creation is throttled as at AWS: 25 calls per second per stream, then 400
/// `ClientLimitExceededException` (checked before the stream's media, so a stream without any
/// shows it too); another stream keeps its own rate. A default emulator keeps the service's
/// 300 s minimum `Expires`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_urls_are_throttled_at_25_per_second_per_stream() {
    let emu = TestEmulator::start().await;
    emu.create_storage_channel("busy-cam");
    emu.create_storage_channel("calm-cam");
    let body = |stream: &str| format!(r#"{{"StreamName":"{stream}","PlaybackMode":"LIVE"}}"#);
    let busy = body("busy-cam-stream");
    // 200 calls, 100 per operation: even if they take two seconds, at most 75 of an operation
    // fit its bucket (25 at once, then 25 a second).
    let calls = (0..200).map(|i| {
        let operation = if i % 2 == 0 {
            "getHLSStreamingSessionURL"
        } else {
            "getDASHStreamingSessionURL"
        };
        let busy = &busy;
        let emu = &emu;
        async move {
            let (status, text) = support::archived_media_call(emu, operation, busy).await;
            (operation, status, text)
        }
    });
    // Eight at a time: as fast as the emulator answers, within its listener's backlog.
    let answers: Vec<(&str, u16, String)> = futures_util::stream::iter(calls)
        .buffer_unordered(8)
        .collect()
        .await;
    for operation in ["getHLSStreamingSessionURL", "getDASHStreamingSessionURL"] {
        let of_it = || answers.iter().filter(|(op, ..)| *op == operation);
        let throttled = of_it()
            .filter(|(_, status, text)| *status == 400 && text.contains("throttled"))
            .count();
        let admitted = of_it().filter(|(_, status, _)| *status == 404).count();
        assert_eq!(throttled + admitted, 100, "{operation}: {answers:?}");
        // A bucket of its own: at least its 25 get through, at most 75 in two seconds.
        assert!(admitted >= 25, "{operation}: {admitted} admitted");
        assert!(throttled >= 25, "{operation}: {throttled} throttled");
    }
    let (status, text) =
        support::archived_media_call(&emu, "getHLSStreamingSessionURL", &body("calm-cam-stream"))
            .await;
    assert_eq!(status, 404, "another stream is not throttled: {text}");
    let (status, text) = support::archived_media_call(
        &emu,
        "getHLSStreamingSessionURL",
        r#"{"StreamName":"calm-cam-stream","PlaybackMode":"LIVE","Expires":299}"#,
    )
    .await;
    assert_eq!(status, 400, "{text}");
}
