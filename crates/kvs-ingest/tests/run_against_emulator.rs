//! `kvs-ingest run`, `join` and `join-as-viewer` against an emulator reached the way AWS is
//! (`--endpoint-url`, `--region`, credentials from the environment, `--ca-file`): what they
//! send arrives, and refusals map to the documented exit codes.

use kvs_emulator::{Emulator, EmulatorHandle};
use kvs_test_support::{text, IngestCli};

/// The CLI over `emulator`.
fn cli_for(emulator: &EmulatorHandle) -> IngestCli {
    IngestCli::new(env!("CARGO_BIN_EXE_kvs-ingest"), emulator)
}

async fn emulator() -> (EmulatorHandle, tempfile::TempDir) {
    let emulator = Emulator::builder()
        .temporary()
        .timings(|t| t.offer_delay = std::time::Duration::from_millis(50))
        .start()
        .await
        .expect("emulator starts");
    let files = tempfile::tempdir().unwrap();
    kvs_media::sample::write_files(files.path()).unwrap();
    (emulator, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ingests_files_and_reports_json() {
    let (emulator, files) = emulator().await;
    emulator.create_storage_channel("cli-cam").unwrap();
    let video = files.path().join("clip.h264");
    let audio = files.path().join("clip.opus");
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let sessions = emulator.sessions();
        assert_eq!(sessions.len(), 1);
        if sessions[0].media.video.frames == 75 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            sessions[0].media
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_calls_the_storage_api_once() {
    let (emulator, _files) = emulator().await;
    let arn = emulator.create_storage_channel("join-cam").unwrap();
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
    let calls = emulator.calls();
    assert_eq!(calls.get("joinStorageSession"), Some(&1));
    assert_eq!(calls.get("joinStorageSessionAsViewer"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_map_to_exit_codes() {
    let (emulator, files) = emulator().await;
    emulator.create_storage_channel("real-cam").unwrap();
    // A channel without media storage.
    let sdk_config = emulator.sdk_config().unwrap();
    aws_sdk_kinesisvideo::Client::new(&sdk_config)
        .create_signaling_channel()
        .channel_name("p2p-cam")
        .send()
        .await
        .unwrap();
    let video = files.path().join("clip.h264");
    let audio = files.path().join("clip.opus");
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
    emulator.create_storage_channel("mkv-pipe-cam").unwrap();
    let mkv = files.path().join("clip.mkv");
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
