//! `kvs-ingest run`, `join` and `join-as-viewer` against an emulator reached the way AWS is
//! (`--endpoint-url`, `--region`, credentials from the environment, `--ca-file`): what they
//! send arrives, and refusals map to the documented exit codes.

use kvs_test_support::{text, IngestCli, SampleClip, TestEmulator};

/// The CLI over `emulator`.
fn cli_for(emulator: &TestEmulator) -> IngestCli {
    IngestCli::new(env!("CARGO_BIN_EXE_kvs-ingest"), &emulator.handle)
}

async fn emulator() -> (TestEmulator, SampleClip) {
    (TestEmulator::start().await, SampleClip::write())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ingests_files_and_reports_json() {
    let (emulator, files) = emulator().await;
    emulator.create_storage_channel("cli-cam");
    let video = files.video.clone();
    let audio = files.audio.clone();
    let out = cli_for(&emulator)
        .run(&[
            "run",
            "--channel",
            "cli-cam",
            "--json",
            "--video",
            video.to_str().unwrap(),
            "--audio",
            audio.to_str().unwrap(),
        ])
        .await;
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect();
    assert!(
        lines.iter().any(|l| l["event"] == "connected"),
        "{lines:#?}"
    );
    let summary = lines.last().expect("a summary");
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["stats"]["video"]["framesSent"], 75);
    // The last packets may still be on their way when the process exits: wait, bounded.
    let sessions = emulator
        .wait_for_sessions("all 75 frames received", |s| {
            s.first().is_some_and(|s| s.media.video.frames == 75)
        })
        .await;
    assert_eq!(sessions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_calls_the_storage_api_once() {
    let (emulator, _files) = emulator().await;
    let arn = emulator.create_storage_channel("join-cam");
    let cli = cli_for(&emulator);
    let out = cli.run(&["join", "--channel-arn", &arn]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "{}");
    let out = cli
        .run(&[
            "join-as-viewer",
            "--channel-arn",
            &arn,
            "--client-id",
            "v1",
            "--output",
            "text",
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    let calls = emulator.handle.calls();
    assert_eq!(calls.get("joinStorageSession"), Some(&1));
    assert_eq!(calls.get("joinStorageSessionAsViewer"), Some(&1));
}

/// `join` goes through the same join call as `run`, with or without a given WEBRTC endpoint,
/// and its refusals map to the exit codes through the same kinds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_with_a_given_endpoint_skips_discovery_and_refusals_have_their_exit_codes() {
    let (emulator, _files) = emulator().await;
    let arn = emulator.create_storage_channel("join-direct");
    let webrtc = emulator.handle.endpoints().webrtc.clone();
    let cli = cli_for(&emulator);
    let out = cli
        .run(&[
            "join",
            "--channel-arn",
            &arn,
            "--webrtc-endpoint-url",
            &webrtc,
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(emulator.calls("joinStorageSession"), 1);
    assert_eq!(emulator.calls("getSignalingChannelEndpoint"), 0);

    emulator.inject_fault(serde_json::json!({
        "channel": "join-direct",
        "fault": "CLIENT_LIMIT_EXCEEDED",
    }));
    let out = cli.run(&["join", "--channel-arn", &arn]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "throttled: {stderr}");
    // The message, then each cause once (the generated error that displays as its own
    // source is shown once).
    let report: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("kvs-ingest: ") || l.starts_with("  caused by: "))
        .collect();
    assert!(report[0].contains("JoinStorageSession"), "{stderr}");
    assert!(
        report
            .iter()
            .any(|l| l.contains("throttled (fault injected")),
        "{stderr}"
    );
    let mut distinct = report.clone();
    distinct.dedup();
    assert_eq!(distinct, report, "a cause repeated: {stderr}");

    let p2p = emulator.channel("join-p2p").await;
    let out = cli.run(&["join", "--channel-arn", &p2p]).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));

    let mut wrong = cli_for(&emulator);
    wrong.secret = "not-the-secret".into();
    let out = wrong.run(&["join", "--channel-arn", &arn]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("not-the-secret"));
}

/// `--ca-file` is checked before anything connects: a file that is not a certificate is bad
/// input, and the message names the option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_without_a_certificate_is_refused_with_its_name() {
    let (emulator, files) = emulator().await;
    let arn = emulator.create_storage_channel("ca-cam");
    let mut cli = cli_for(&emulator);
    cli.ca_file = files.video.clone();
    let out = cli.run(&["join", "--channel-arn", &arn]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--ca-file"), "{stderr}");
    assert!(stderr.contains("no CERTIFICATE block"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(emulator.calls("joinStorageSession"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_map_to_exit_codes() {
    let (emulator, files) = emulator().await;
    emulator.create_storage_channel("real-cam");
    // A channel without media storage.
    emulator.channel("p2p-cam").await;
    let video = files.video.clone();
    let audio = files.audio.clone();
    let run = |channel: &'static str| {
        vec![
            "run".to_owned(),
            "--channel".into(),
            channel.into(),
            "--video".into(),
            video.to_str().unwrap().into(),
            "--audio".into(),
            audio.to_str().unwrap().into(),
        ]
    };
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    let mut wrong = cli_for(&emulator);
    wrong.secret = "not-the-secret".into();
    let out = wrong.run(&args(&run("real-cam"))).await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "wrong credentials: {}",
        text(&out.stderr)
    );
    assert!(
        !text(&out.stderr).contains("not-the-secret"),
        "no secret in the output"
    );

    let cli = cli_for(&emulator);
    let out = cli.run(&args(&run("p2p-cam"))).await;
    assert_eq!(
        out.status.code(),
        Some(4),
        "storage disabled: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).to_lowercase().contains("storage"),
        "{}",
        text(&out.stderr)
    );

    let out = cli.run(&args(&run("no-such-cam"))).await;
    assert_eq!(
        out.status.code(),
        Some(4),
        "unknown channel: {}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reads_a_matroska_stream_on_stdin() {
    let (emulator, files) = emulator().await;
    emulator.create_storage_channel("mkv-pipe-cam");
    let mkv = files.dir().join("clip.mkv");
    std::fs::write(&mkv, kvs_media::sample::MKV).unwrap();
    let stdin = std::process::Stdio::from(std::fs::File::open(&mkv).unwrap());
    let out = cli_for(&emulator)
        .run_with_stdin(
            &["run", "--channel", "mkv-pipe-cam", "--input", "-", "--json"],
            stdin,
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().last().expect("a summary")).unwrap();
    assert_eq!(summary["stats"]["video"]["framesSent"], 75, "{summary}");
    let mut ogg = kvs_media::ogg::OggOpusReader::new(kvs_media::sample::OPUS).unwrap();
    let mut packets = 0;
    while ogg.next_packet().unwrap().is_some() {
        packets += 1;
    }
    assert_eq!(
        summary["stats"]["audio"]["framesSent"], packets,
        "{summary}"
    );
}

/// A supervisor that reads the CLI's stdout and stderr only at the end (a full pipe, a stalled
/// log shipper): nothing the CLI writes may hold up media or recovery. Faults are injected
/// while nobody reads; each is re-joined within a second, no frame is dropped as late, and the
/// summary, the last line, says what was dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods)] // real time: the test measures it
async fn output_that_nobody_reads_never_holds_up_media_or_recovery() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let (emulator, files) = emulator().await;
    emulator.create_storage_channel("unread-cam");
    let cli = cli_for(&emulator);
    let mut command = cli.command(&[
        "run",
        "--channel",
        "unread-cam",
        "--json",
        "--video",
        files.video.to_str().unwrap(),
        "--audio",
        files.audio.to_str().unwrap(),
        "--loop",
        "--duration",
        "14",
    ]);
    // Enough log lines to fill a pipe within a second or two.
    command
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawned = Instant::now();
    let child = command.spawn().expect("kvs-ingest starts");
    let newest = |s: &[kvs_emulator::SessionInfo]| s.iter().map(|s| s.id).max().unwrap_or(0);
    let first = emulator
        .wait_for_sessions("the first session's video", |s| {
            s.iter().any(|s| s.media.video.frames > 0)
        })
        .await;
    let mut last = newest(&first);
    let mut rejoins = Vec::new();
    for (at, fault) in [
        (3, "GO_AWAY"),
        (6, "CLOSE_SOCKET"),
        (9, "RECONNECT_ICE_SERVER"),
    ] {
        // Time passes with nobody reading.
        tokio::time::sleep_until((spawned + Duration::from_secs(at)).into()).await;
        let injected = Instant::now();
        emulator.inject_fault(serde_json::json!({ "channel": "unread-cam", "fault": fault }));
        // Output held up by the pipe would hold media up until the pipes are drained (after
        // this loop), so any bound catches it; 3 s leaves a loaded debug build room for the
        // re-join itself (the soak measures up to 4 s after a fault, see README).
        let sessions = kvs_test_support::wait_until_within(
            Duration::from_secs(3),
            &format!("media in a new session within 3 s of {fault}"),
            || {
                kvs_test_support::check(emulator.sessions(), |s| {
                    s.iter().any(|s| s.id > last && s.media.video.frames > 0)
                })
            },
        )
        .await;
        rejoins.push((fault, injected.elapsed()));
        last = newest(&sessions);
    }
    // Ten seconds unread, then the pipes are drained.
    tokio::time::sleep_until((spawned + Duration::from_secs(10)).into()).await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("the waiting thread")
        .expect("kvs-ingest's output");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a last line")).expect("JSON");
    assert_eq!(summary["event"], "summary", "{stdout}");
    for track in ["video", "audio"] {
        assert_eq!(summary["stats"][track]["droppedLate"], 0, "{summary}");
    }
    assert!(summary["eventsDropped"].is_u64(), "{summary}");
    // The pipe did fill: the condition under test happened.
    assert!(
        summary["logLinesDropped"].as_u64().unwrap_or(0) > 0,
        "{summary}"
    );
    assert!(
        summary["stats"]["rejoins"].as_u64().unwrap_or(0) >= 3,
        "{summary}"
    );
    eprintln!("re-joins after faults, output unread: {rejoins:?}; {summary}");
}
