//! Issue #27 item 2: a storage session ends when the device leaves, as the real storage peer
//! ends it, and its recording is finalized then (not at the next join or the emulator's exit).
//! The device is our own CLI, `kvs-ingest`, as a separate process: once stopping cleanly
//! (`--duration`, a DTLS close_notify) and once killed with SIGKILL (consent expiry).

use std::process::Stdio;
use std::time::{Duration, Instant};

use kvs_emulator::{SessionInfo, SessionState, Timings};
use kvs_test_support::recording::{decode_errors, readable_video_frames};
use kvs_test_support::{text, wait_until_within, IngestCli, SampleClip, TestEmulator, WAIT};

/// How long after a DTLS close the session must have ended.
const AFTER_CLOSE: Duration = Duration::from_secs(1);

fn ended(sessions: &[SessionInfo]) -> Result<SessionInfo, Vec<SessionInfo>> {
    match sessions {
        [s] if s.state == SessionState::Ended => Ok(s.clone()),
        _ => Err(sessions.to_vec()),
    }
}

/// The recording of `session` holds every frame it counted and decodes without a complaint:
/// it was finalized.
fn assert_finalized(session: &SessionInfo) {
    let file = session.media.recording.as_ref().expect("a recording");
    let (codec, frames) = readable_video_frames(file);
    assert_eq!(codec, "h264");
    assert_eq!(
        frames, session.media.video.frames,
        "the recording has every frame the session counted"
    );
    assert!(session.media.recorded_duration_ms.is_some(), "{session:?}");
    assert_eq!(decode_errors(file), "", "the recording decodes");
}

/// `kvs-ingest run` into `channel`: the clip, looped, for `seconds`.
fn run_args(channel: &str, clip: &SampleClip, seconds: u32) -> Vec<String> {
    let path = |p: &std::path::Path| p.to_str().expect("a UTF-8 path").to_owned();
    [
        "run".to_owned(),
        "--channel".to_owned(),
        channel.to_owned(),
        "--json".to_owned(),
        "--video".to_owned(),
        path(&clip.video),
        "--audio".to_owned(),
        path(&clip.audio),
        "--loop".to_owned(),
        "--duration".to_owned(),
        seconds.to_string(),
    ]
    .into()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_of_kvs_ingest_ends_the_session_within_a_second() {
    let emulator = TestEmulator::start().await;
    emulator.create_storage_channel("leaving-cam");
    let clip = SampleClip::write();
    let out = IngestCli::from_workspace(&emulator.handle)
        .run(&strs(&run_args("leaving-cam", &clip, 3)))
        .await;
    let exited = Instant::now();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let session = wait_until_within(
        AFTER_CLOSE,
        "the session to end within 1 s of the CLI's exit",
        || ended(&emulator.sessions()),
    )
    .await;
    let took = exited.elapsed();
    eprintln!(
        "kvs-ingest run --duration 3: session ENDED {took:?} after the process exited ({:?})",
        session.end_reason
    );
    assert_eq!(
        session.end_reason.as_deref(),
        Some("the client closed the connection (DTLS close_notify)")
    );
    let summary: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().last().expect("a summary line"))
            .expect("JSON");
    assert_eq!(
        summary["stats"]["video"]["framesSent"].as_u64(),
        Some(session.media.video.frames),
        "{summary}"
    );
    assert_finalized(&session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_client_s_session_ends_when_its_consent_expires() {
    let consent = Timings::default().consent_timeout;
    let emulator = TestEmulator::start().await;
    emulator.create_storage_channel("killed-client-cam");
    let clip = SampleClip::write();
    let mut child = IngestCli::from_workspace(&emulator.handle)
        .command(&strs(&run_args("killed-client-cam", &clip, 300)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kvs-ingest starts");
    emulator
        .wait_for_sessions("a second of media", |s| {
            s.first()
                .is_some_and(|s| s.state == SessionState::Connected && s.media.video.frames >= 25)
        })
        .await;
    child.kill().expect("SIGKILL");
    let killed = Instant::now();
    child.wait().expect("reaped");
    let session = wait_until_within(
        consent + Duration::from_secs(2),
        "the session to end within the consent timeout",
        || ended(&emulator.sessions()),
    )
    .await;
    let took = killed.elapsed();
    eprintln!(
        "kvs-ingest killed with SIGKILL: session ENDED {took:?} later ({:?})",
        session.end_reason
    );
    let reason = session.end_reason.clone().unwrap_or_default();
    assert!(reason.starts_with("ICE"), "{reason}");
    assert!(took <= consent + Duration::from_millis(500), "{took:?}");
    assert_finalized(&session);
    assert!(took < WAIT);
}
