//! The `kvs-ingest` binary end to end: the demo against its embedded emulator, and bad input
//! refused with a clear message and the bad-input exit code before anything connects.

use std::process::Command;

fn kvs_ingest() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kvs-ingest"))
}

#[test]
fn the_demo_ingests_the_sample_and_reports_a_recording_ffprobe_reads() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = kvs_ingest()
        .args(["demo", "--duration", "4", "--json", "--out"])
        .arg(out_dir.path())
        .output()
        .expect("kvs-ingest runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .expect("a summary line");
    let sent = &summary["sent"];
    let received = &summary["received"];
    // 4 s at 25 fps and 50 packets/s, minus the connection time.
    assert!(
        sent["video"]["framesSent"].as_u64() >= Some(75),
        "{summary}"
    );
    assert_eq!(
        received["video"]["frames"], sent["video"]["framesSent"],
        "{summary}"
    );
    assert_eq!(
        received["audio"]["frames"], sent["audio"]["framesSent"],
        "{summary}"
    );
    assert!(
        summary["timeToFirstFrameMs"].as_u64().is_some(),
        "{summary}"
    );
    let recording = summary["recordings"][0].as_str().expect("a recording path");
    assert!(std::path::Path::new(recording).is_absolute());
    assert!(recording.starts_with(out_dir.path().to_str().unwrap()));
    let recording = std::path::Path::new(recording);
    assert_eq!(
        kvs_test_support::recording::probe(recording).codecs,
        ["h264", "opus"]
    );
    assert_eq!(
        kvs_test_support::recording::decode_errors(recording),
        "",
        "decodes without an error"
    );
    // The channel's stream kept it too, one fragment per keyframe sent: H.264 + AAC when the
    // binary has the emulator's transcoder (`aac` feature, as the service stores it), H.264 +
    // Opus without it (the default, so that the demo builds with Rust alone). The test's own
    // features need not be the binary's (cargo unifies them per build), so the summary says
    // which, and the fragment must hold what it says.
    let stored = &summary["stored"];
    let audio_codec = stored["audioCodec"]
        .as_str()
        .expect("the stored audio codec");
    assert!(["aac", "opus"].contains(&audio_codec), "{summary}");
    if cfg!(feature = "aac") {
        assert_eq!(audio_codec, "aac", "{summary}");
    }
    assert_eq!(
        stored["fragments"], sent["video"]["keyframesSent"],
        "{summary}"
    );
    let dir = std::path::Path::new(stored["dir"].as_str().expect("the fragments' directory"));
    assert!(dir.starts_with(out_dir.path()), "{}", dir.display());
    let first = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .expect("a fragment file");
    assert_eq!(
        kvs_test_support::recording::probe(&first).codecs,
        ["h264", audio_codec]
    );
    // The stream read back as GetClip returns it: every fragment, H.264 + AAC (video only
    // when the stream keeps Opus, which an MP4 clip of Kinesis Video does not carry).
    let clip = std::path::Path::new(stored["clip"].as_str().expect("a clip path"));
    assert!(clip.starts_with(out_dir.path()), "{}", clip.display());
    let probe = kvs_test_support::recording::probe(clip);
    let expected: &[&str] = if audio_codec == "aac" {
        &["h264", "aac"]
    } else {
        &["h264"]
    };
    assert_eq!(probe.codecs, expected, "{}", clip.display());
    let keyframes = sent["video"]["keyframesSent"].as_u64().unwrap() as f64;
    // One second per fragment; the last one ends with the session, inside its GOP.
    assert!(
        keyframes - 1.0 < probe.duration && probe.duration <= keyframes + 0.05,
        "about a second per fragment: {} s for {keyframes} fragments",
        probe.duration
    );
    assert_eq!(
        kvs_test_support::recording::decode_errors(clip),
        "",
        "the clip decodes without an error"
    );
}

/// `run` with the given media files against an unreachable endpoint: bad media must be refused
/// before any network call.
fn run_with(video: &[u8], audio: &[u8]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("v.h264"), video).unwrap();
    std::fs::write(dir.path().join("a.opus"), audio).unwrap();
    let out = kvs_ingest()
        .args([
            "run",
            "--channel",
            "cam",
            "--region",
            "us-west-2",
            "--endpoint-url",
            "https://127.0.0.1:9",
        ])
        .arg("--video")
        .arg(dir.path().join("v.h264"))
        .arg("--audio")
        .arg(dir.path().join("a.opus"))
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .output()
        .expect("kvs-ingest runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_media_is_refused_with_exit_code_2_and_a_message_that_names_it() {
    let h264 = kvs_media::sample::H264;
    let opus = kvs_media::sample::OPUS;
    // (A truncation further in is found when the reader gets there: see kvs-webrtc-ingest's
    // tests/ingest_files.rs.)
    let cases: [(&[u8], &[u8], &str); 4] = [
        (opus, opus, "expected an H.264 Annex-B stream"),
        (b"", opus, "the input is empty"),
        (h264, h264, "expected an Ogg Opus stream, found an H.264"),
        (h264, b"", "the input is empty"),
    ];
    for (video, audio, expected) in cases {
        let (code, stderr) = run_with(video, audio);
        assert_eq!(code, 2, "{expected}: {stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_missing_file_and_a_bad_duration_are_bad_input() {
    let out = kvs_ingest()
        .args([
            "run",
            "--channel",
            "cam",
            "--region",
            "us-west-2",
            "--video",
            "/nonexistent.h264",
            "--audio",
            "/nonexistent.opus",
        ])
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent.h264"));
    let out = kvs_ingest()
        .args(["demo", "--duration", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a positive number of seconds"));
}

/// The demo's directory keeps its channel and stream: a second demo there reuses them (the
/// stream grows), and the read-back commands the demo prints work as printed: `kvs-emulator
/// serve` on that directory, then the AWS CLI lists every fragment of both runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_s_stream_reads_back_with_the_commands_it_prints() {
    let out_dir = tempfile::tempdir().unwrap();
    let demo = || {
        let out = kvs_ingest()
            .args(["demo", "--duration", "3", "--out"])
            .arg(out_dir.path())
            .output()
            .expect("kvs-ingest runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    demo();
    let stdout = demo();
    // `stream demo-camera-stream: N fragments of H.264 + AAC in DIR (...)`
    let stream_line: Vec<&str> = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("stream demo-camera-stream: "))
        .unwrap_or_else(|| panic!("the stream's line: {stdout}"))
        .split_whitespace()
        .collect();
    let fragments: usize = stream_line[0]
        .parse()
        .unwrap_or_else(|_| panic!("a fragment count: {stdout}"));
    let audio_codec = stream_line[5].to_lowercase();
    assert!(fragments >= 4, "two runs of 3 s: {stdout}");

    // The printed commands, continuation lines joined, comments dropped.
    let joined = stdout.replace("\\\n", " ");
    let command = |prefix: &str| -> Vec<String> {
        let line = joined
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line: {stdout}"));
        let line = line.split(" # ").next().unwrap();
        line.split_whitespace().map(str::to_owned).collect()
    };
    let serve_args = command("kvs-emulator serve");
    let mut serve = tokio::process::Command::new(kvs_test_support::workspace_bin(
        "kvs-emulator",
        "kvs-emulator",
    ));
    serve.args(&serve_args[1..]);
    let (mut child, _) = kvs_test_support::serve(serve).await;

    let env: Vec<(String, String)> = command("export")[1..]
        .iter()
        .map(|assignment| {
            let (name, value) = assignment.split_once('=').expect("NAME=value");
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let home = tempfile::tempdir().unwrap();
    // Runs one printed `aws` command as a shell would (single quotes removed) with the printed
    // environment and no other AWS settings.
    let run_aws = |args: Vec<String>| {
        let mut aws = std::process::Command::new("aws");
        aws.args(args[1..].iter().map(|a| a.trim_matches('\'')))
            .envs(env.iter().map(|(n, v)| (n, v)))
            .env("HOME", home.path())
            .env("AWS_CONFIG_FILE", home.path().join("config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                home.path().join("credentials"),
            )
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE");
        async move {
            let done = tokio::task::spawn_blocking(move || aws.output())
                .await
                .unwrap()
                .expect("the AWS CLI runs (installed by `cargo xtask test`)");
            let stdout = String::from_utf8_lossy(&done.stdout).into_owned();
            assert!(
                done.status.success(),
                "{stdout}\n{}",
                String::from_utf8_lossy(&done.stderr)
            );
            stdout
        }
    };
    let listed = run_aws(command("aws kinesis-video-archived-media list-fragments")).await;
    let clip_args = command("aws kinesis-video-archived-media get-clip");
    let clip_path = std::path::PathBuf::from(clip_args.last().unwrap());
    run_aws(clip_args).await;
    child.kill().await.unwrap();

    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        listed["Fragments"].as_array().map(Vec::len),
        Some(fragments),
        "every fragment of both runs: {listed}"
    );
    // The clip of the second run alone: H.264 (+ AAC when the stream keeps AAC; an MP4 clip
    // does not carry Opus), about its 3 s (not the 6 s of both runs).
    let probe = kvs_test_support::recording::probe(&clip_path);
    let expected: &[&str] = if audio_codec == "aac" {
        &["h264", "aac"]
    } else {
        &["h264"]
    };
    assert_eq!(probe.codecs, expected, "{}", clip_path.display());
    let seconds = probe.duration;
    assert!(
        (2.0..=4.5).contains(&seconds),
        "this run's fragments only: {seconds} s in {}",
        clip_path.display()
    );
}

/// `demo --play` ingests until Ctrl-C and, once a fragment is stored, says where to watch: a
/// LIVE HLS URL that ffprobe reads as the sample's H.264 and the player page. Ctrl-C then ends
/// it with the usual summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_with_play_prints_a_live_hls_url_and_the_player_page_until_ctrl_c() {
    use tokio::io::AsyncBufReadExt as _;
    let out_dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kvs-ingest"))
        .args(["demo", "--play", "--json", "--out"])
        .arg(out_dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kvs-ingest runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_event = async |name: &str| loop {
        let line = tokio::time::timeout(kvs_test_support::WAIT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no {name} line within {:?}", kvs_test_support::WAIT))
            .expect("stdout")
            .unwrap_or_else(|| panic!("stdout ended before the {name} line"));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if value["event"] == name {
            return value;
        }
    };
    let play = next_event("play").await;
    assert_eq!(play["stream"], "demo-camera-stream", "{play}");
    let hls = play["hls"].as_str().unwrap_or_else(|| panic!("{play}"));
    let page = play["playerPage"]
        .as_str()
        .unwrap_or_else(|| panic!("{play}"));
    assert!(
        page.ends_with("/_emulator/v1/player.html?stream=demo-camera-stream"),
        "{play}"
    );
    // ffprobe does not verify TLS by default; the emulator's CA is still named for players.
    assert!(play["caCertPath"].as_str().is_some(), "{play}");
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
        ])
        .args(["-of", "compact", hls])
        .output()
        .expect("ffprobe runs");
    let streams = String::from_utf8_lossy(&probe.stdout);
    assert!(
        streams.contains("codec_name=h264|width=320|height=240"),
        "{streams}{}",
        String::from_utf8_lossy(&probe.stderr)
    );

    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let summary = next_event("summary").await;
    assert!(
        summary["received"]["video"]["frames"].as_u64() > Some(0),
        "{summary}"
    );
    let exit = tokio::time::timeout(kvs_test_support::WAIT, child.wait())
        .await
        .expect("the demo ends after Ctrl-C")
        .unwrap();
    assert!(exit.success(), "{exit}");
}
