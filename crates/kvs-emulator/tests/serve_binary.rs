//! `kvs-emulator serve` as users run it: a child process that prints one JSON line, serves a
//! storage session, and on Ctrl-C (SIGINT) finalizes the recording so that ffprobe reads it.

mod support;

use std::process::Stdio;

use kvs_test_support::store::{assert_sample_fragments, stored_fragments, wait_for_fragments};
use serde_json::Value;
use support::peer::{answer_and_stream, VideoCodec};
use support::Service;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

/// Starts `kvs-emulator serve` (as `command` says, its log piped) and reads its startup line.
async fn serve(mut command: Command) -> (tokio::process::Child, Value) {
    command.stderr(Stdio::piped());
    kvs_test_support::serve(command).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_finalizes_the_recording_of_a_live_session() {
    a_signal_finalizes_the_recording("-INT", "ctrl-c-cam", "Ctrl-C").await;
}

/// Docker and systemd stop services with SIGTERM: it must finalize recordings as Ctrl-C does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finalizes_the_recording_of_a_live_session() {
    a_signal_finalizes_the_recording("-TERM", "sigterm-cam", "SIGTERM").await;
}

/// After `kill -9` nothing is finalized, but every complete cluster (one per group of
/// pictures) is on disk and decodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_the_recording_is_readable_up_to_its_last_complete_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _) = serve_and_stream(dir.path(), "killed-cam").await;
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();

    let file = support::only_recording(&dir.path().join("recordings").join("killed-cam"));
    let (codec, frames) = support::readable_video_frames(&file);
    assert_eq!(codec, "h264");
    // The fixture has a keyframe every second: the first two GOPs (50 frames) were complete
    // clusters; the third was still being assembled.
    assert!((50..75).contains(&frames), "{frames} frames readable");
    assert_eq!(support::decode_errors(&file), "", "what is there decodes");
}

async fn a_signal_finalizes_the_recording(signal: &str, channel: &str, logged: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, info) = serve_and_stream(dir.path(), channel).await;
    assert!(info["turnUris"][0]
        .as_str()
        .is_some_and(|u| u.starts_with("turn:127.0.0.1:")));

    let (exit, log) = signal_and_wait(&mut child, signal).await;
    assert!(exit.success(), "{exit:?}\n{log}");
    assert!(
        log.contains(&format!("{logged}: shutting down; finalizing recordings")),
        "{log}"
    );

    support::assert_sample_recording(&dir.path().join("recordings").join(channel));
}

/// Send `signal` (`-INT`, `-TERM`) to the emulator and wait (bounded) for it to exit: its exit
/// status and everything it logged (read after the exit, so a full pipe stays full until then).
async fn signal_and_wait(
    child: &mut tokio::process::Child,
    signal: &str,
) -> (std::process::ExitStatus, String) {
    let pid = child.id().expect("running").to_string();
    let signalled = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(signalled.success());
    let exit = tokio::time::timeout(support::WAIT, child.wait())
        .await
        .expect("the emulator exits after the signal")
        .unwrap();
    let mut log = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut log).await;
    (exit, log)
}

/// After SIGTERM the open fragment is stored too: a new `serve` in the same data directory
/// lists and serves all three GOPs of the clip, as before the restart, and still has the
/// channel, the stream and the mapping between them (`registry.json`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_a_restart_keeps_every_fragment_of_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, info) = serve_and_stream(dir.path(), "term-store-cam").await;
    let resources = |service: Service| async move {
        let kv = service.control_plane();
        let stream = kv
            .describe_stream()
            .stream_name("term-store-cam-stream")
            .send()
            .await
            .expect("the stream exists")
            .stream_info
            .unwrap();
        let channel = kv
            .describe_signaling_channel()
            .channel_name("term-store-cam")
            .send()
            .await
            .expect("the channel exists")
            .channel_info
            .unwrap();
        let storage = kv
            .describe_media_storage_configuration()
            .channel_arn(channel.channel_arn().unwrap())
            .send()
            .await
            .unwrap()
            .media_storage_configuration
            .unwrap();
        (
            stream.stream_arn,
            stream.version,
            channel.channel_arn,
            storage.stream_arn,
            storage.status,
        )
    };
    let before = resources(Service::from_startup_info(&info)).await;
    assert_eq!(before.3, before.0, "the channel stores into the stream");
    let (exit, log) = signal_and_wait(&mut child, "-TERM").await;
    assert!(exit.success(), "{exit:?}\n{log}");

    let (mut child, info) = serve_in(dir.path()).await;
    let service = Service::from_startup_info(&info);
    assert_eq!(
        resources(Service::from_startup_info(&info)).await,
        before,
        "the same channel, stream and mapping after the restart"
    );
    let stored = stored_fragments(&service, "term-store-cam-stream").await;
    assert_eq!(
        stored.len(),
        3,
        "3 s with a keyframe every second: {stored:?}"
    );
    assert_sample_fragments(&stored);
    child.kill().await.unwrap();
}

/// A registry file that is not the emulator's is refused at start, naming the file and the
/// way on, before anything listens.
#[tokio::test]
async fn a_registry_file_that_is_not_the_emulator_s_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("registry.json"), "[1, 2, 3]").unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kvs-emulator"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("registry.json does not hold the emulator's channels and streams")
            && stderr.contains("move it away"),
        "{stderr}"
    );
}

/// After `kill -9` the fragment being assembled is lost, and a half-written fragment file
/// (planted: a kill during the write) and an unindexed one (a kill between the file and its
/// index line) are dropped at the restart: only complete fragments are listed, and they decode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_a_restart_keeps_every_complete_fragment_and_drops_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, info) = serve_and_stream(dir.path(), "killed-store-cam").await;
    let service = Service::from_startup_info(&info);
    let before = wait_for_fragments(&service, "killed-store-cam-stream", 2).await;
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    let fragments_dir = dir.path().join("streams/killed-store-cam-stream/fragments");
    let half = fragments_dir.join("91343852333181432392682062607743920999.mkv.part");
    let unindexed = fragments_dir.join("91343852333181432392682062607743920998.mkv");
    std::fs::write(&half, b"\x1a\x45\xdf\xa3 cut short").unwrap();
    std::fs::copy(before[0]["file"].as_str().unwrap(), &unindexed).unwrap();

    let (mut child, info) = serve_in(dir.path()).await;
    let service = Service::from_startup_info(&info);
    let after = stored_fragments(&service, "killed-store-cam-stream").await;
    assert_eq!(
        after, before,
        "the complete fragments, as listed before the kill"
    );
    assert_sample_fragments(&after);
    assert!(
        !half.exists() && !unindexed.exists(),
        "dropped from disk too"
    );
    child.kill().await.unwrap();
}

/// Start `kvs-emulator serve --data-dir dir` and read its startup line.
async fn serve_in(dir: &std::path::Path) -> (tokio::process::Child, Value) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kvs-emulator"));
    command.args(["serve", "--data-dir"]).arg(dir);
    serve(command).await
}

#[tokio::test]
async fn the_startup_line_gives_absolute_paths_for_a_relative_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_kvs-emulator"));
    command
        .current_dir(dir.path())
        .args(["serve", "--data-dir", "relative-data"]);
    let (mut child, info) = serve(command).await;
    let data = std::fs::canonicalize(dir.path().join("relative-data")).unwrap();
    for key in ["caCertPath", "recordingsDir"] {
        let path = std::path::PathBuf::from(info[key].as_str().expect(key));
        assert!(path.is_absolute(), "{key} is {}", path.display());
        // This test's working directory is not the emulator's: the path must still resolve.
        assert!(
            path.exists(),
            "{key} {} does not exist from here",
            path.display()
        );
        assert!(
            std::fs::canonicalize(&path).unwrap().starts_with(&data),
            "{key} {} is not under {}",
            path.display(),
            data.display()
        );
    }
    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_process_endpoint_reports_the_live_heap_of_a_binary_built_to_count_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, info) = serve_in(dir.path()).await;
    let service = kvs_test_support::Service::from_startup_info(&info);
    let mut process = service.inspect("process").await;
    if cfg!(feature = "live-heap") {
        // The idle emulator holds its runtime, listeners, CA and registry (about 350 KB).
        let heap = process["liveHeapBytes"].as_u64();
        assert!(heap.is_some_and(|b| b > 64 << 10), "{process}");
        // The mean starts with a reading taken as `main` begins (a small heap), and the
        // window fills with a reading every 50 ms: wait until it spans a second, bounded.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while process["liveHeapMeanSeconds"].as_f64() < Some(1.0) {
            assert!(
                std::time::Instant::now() < deadline,
                "the mean never spanned a second: {process}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            process = service.inspect("process").await;
        }
        // Mostly readings of the started emulator: of the order of the heap now.
        let mean = process["liveHeapMeanBytes"].as_u64();
        let heap = process["liveHeapBytes"].as_u64().unwrap_or(0);
        assert!(
            mean.is_some_and(|m| m > 64 << 10 && m < 4 * heap),
            "{process}"
        );
    } else {
        assert!(
            process["liveHeapBytes"].is_null()
                && process["liveHeapMeanBytes"].is_null()
                && process["liveHeapMeanSeconds"].is_null(),
            "no probe without the feature: {process}"
        );
    }
    child.kill().await.unwrap();
}

/// Start `kvs-emulator serve` in `dir` and stream the 3 s fixture into `channel` as its master;
/// returns once the storage peer has counted every frame, with the session still live.
async fn serve_and_stream(dir: &std::path::Path, channel: &str) -> (tokio::process::Child, Value) {
    let (child, info) = serve_in(dir).await;
    let service = Service::from_startup_info(&info);
    let mut master = service.storage_master(channel).await;
    service
        .join_master(&master.webrtc, &master.channel_arn)
        .await;
    let report = answer_and_stream(&mut master.ws, VideoCodec::H264, 1).await;
    assert!(report.connected);
    service
        .wait_for_sessions_json("all frames counted, session still live", |s| {
            s.first().is_some_and(|s| {
                s["state"] == "CONNECTED" && s["media"]["video"]["frames"].as_u64() >= Some(74)
            })
        })
        .await;
    (child, info)
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Issue #13 item 1: when file descriptors run out, `accept` fails; the listener backs off and
/// logs about it a bounded number of times (it used to retry at once forever: a full core and
/// ~78 MB/s of WARN lines), and serves again once descriptors are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_is_survived_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" serve --data-dir \"$1\"")
        .arg(env!("CARGO_BIN_EXE_kvs-emulator"))
        .arg(dir.path());
    let (mut child, info) = serve(command).await;
    let pid = child.id().expect("running");
    // Count the accept-failure lines as they come (a full pipe would stall the emulator).
    let stderr = child.stderr.take().unwrap();
    let accept_lines = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = accept_lines.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("accept failed") {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let endpoint = info["endpoint"].as_str().unwrap().to_owned();
    let authority = endpoint.trim_start_matches("https://").to_owned();
    // 200 idle connections: more than the 128 descriptors the emulator may have.
    let mut idle = Vec::new();
    for _ in 0..200 {
        if let Ok(c) = tokio::net::TcpStream::connect(&authority).await {
            idle.push(c);
        }
    }
    let cpu_before = cpu_seconds(pid);
    let lines_before = accept_lines.load(std::sync::atomic::Ordering::Relaxed);
    let window = std::time::Duration::from_secs(3);
    tokio::time::sleep(window).await; // the measurement window, not a synchronization
    let cpu = cpu_seconds(pid) - cpu_before;
    let lines = accept_lines.load(std::sync::atomic::Ordering::Relaxed) - lines_before;
    eprintln!("with descriptors exhausted for {window:?}: {cpu:.2} s of CPU, {lines} accept-failure log lines ({lines_before} before the window)");
    assert!(lines <= 2, "{lines} accept-failure lines in {window:?}");
    assert!(cpu < 1.0, "{cpu:.2} s of CPU in {window:?}");

    // Descriptors free again: the emulator serves.
    drop(idle);
    let service = Service::from_startup_info(&info);
    let calls = format!(
        "{}{}/calls",
        service.endpoint,
        kvs_emulator::inspect::PREFIX
    );
    kvs_test_support::wait_for("serving again once descriptors are free", || async {
        let answered = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            service.http_raw("GET", &calls, b""),
        )
        .await;
        match answered {
            Ok((200, _)) => Ok(()),
            other => Err(other.map(|(status, _)| status)),
        }
    })
    .await;
}

/// Issue #28: nothing the emulator writes may hold up a storage session. Its log (at `trace`,
/// which fills a pipe in moments) goes to a pipe that nobody reads, and 20 clients ask the
/// inspection API for the whole state 200 times each, pipelined, and never read an answer,
/// while a device ingests for 8 s. Every frame sent arrives, without a gap, and the inspection
/// API still answers a client that reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods)] // real time: the test measures it
async fn output_nobody_reads_never_holds_up_a_storage_session() {
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt as _;

    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_kvs-emulator"));
    command
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "trace");
    // stderr is piped by `serve` and never read from here on.
    let (mut child, info) = serve(command).await;
    let service = Service::from_startup_info(&info);
    let channel = "unread-emulator-cam";
    service.storage_channel(channel).await;

    // Clients that ask and never read.
    let authority = service.endpoint.trim_start_matches("https://").to_owned();
    let request = format!(
        "GET {}/state HTTP/1.1\r\nHost: {authority}\r\n\r\n",
        kvs_emulator::inspect::PREFIX
    )
    .repeat(200);
    let mut unread = Vec::new();
    for _ in 0..20 {
        let tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(service.rustls_client_config());
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        // The server stops reading once its answers fill the socket: writing may not finish.
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            tls.write_all(request.as_bytes()),
        )
        .await;
        unread.push(tls);
    }

    // A client whose refused requests fill the log (each is an `info` line) while media flows.
    let spam = format!(
        "POST /describeSignalingChannel HTTP/1.1\r\nHost: {authority}\r\nContent-Type: \
         application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    let mut spammers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(service.rustls_client_config());
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        let (mut reader, mut writer) = tokio::io::split(tls);
        let requests = spam.repeat(2_000);
        spammers.spawn(async move {
            let write = writer.write_all(requests.as_bytes());
            let mut answers = Vec::new();
            let read = reader.read_to_end(&mut answers);
            let _ = tokio::join!(write, read);
        });
    }

    let clip = kvs_test_support::SampleClip::write();
    let client = kvs_test_support::ingest_client(
        kvs_webrtc_ingest::Config::builder()
            .sdk_config(service.bare_sdk_config())
            .trust_root_certificate_pem(service.ca_pem.clone()),
    );
    let session = client
        .ingest()
        .channel(channel)
        .video(kvs_webrtc_ingest::VideoSource::annex_b_file(&clip.video).looping(true))
        .audio(kvs_webrtc_ingest::AudioSource::ogg_opus_file(&clip.audio).looping(true))
        .send()
        .await
        .expect("ingestion starts");
    tokio::time::sleep(Duration::from_secs(8)).await; // the measurement window
    let stats = session.stop().await.expect("a clean stop");

    let asked = Instant::now();
    let sessions = service
        .wait_for_sessions_json("every frame sent counted", |s| {
            s.len() == 1
                && s[0]["media"]["video"]["frames"].as_u64() == Some(stats.video.frames_sent)
        })
        .await;
    let answered_in = asked.elapsed();
    let video = &sessions[0]["media"]["video"];
    eprintln!(
        "log and 20 inspection clients unread: {} video frames sent, {} received, longest gap \
         {} ms, dropped late {}; the inspection API answered in {answered_in:?}",
        stats.video.frames_sent, video["frames"], video["longestGapMs"], stats.video.dropped_late
    );
    assert!(stats.video.frames_sent >= 150, "{stats:?}");
    assert_eq!(stats.video.dropped_late, 0, "{stats:?}");
    assert_eq!(stats.audio.dropped_late, 0, "{stats:?}");
    assert_eq!(stats.rejoins, 0, "{stats:?}");
    assert!(
        video["longestGapMs"].as_u64().is_some_and(|gap| gap < 500),
        "{video}"
    );

    // The pipe did fill: the condition under test happened.
    let state = service.inspect("state").await;
    assert!(
        state["logLinesDropped"].as_u64().is_some_and(|n| n > 0),
        "the log pipe never filled: {}",
        state["logLinesDropped"]
    );
    eprintln!("log lines dropped: {}", state["logLinesDropped"]);
    // Shutting down with the pipe still full finalizes the recording and exits.
    let (exit, log) = signal_and_wait(&mut child, "-INT").await;
    let tail = &log[log.len().saturating_sub(3000)..];
    assert!(exit.success(), "{exit:?}; the log's end:\n{tail}");
    let file = support::only_recording(&dir.path().join("recordings").join(channel));
    let (codec, frames) = support::readable_video_frames(&file);
    assert_eq!(codec, "h264");
    assert_eq!(
        frames, stats.video.frames_sent,
        "the finalized recording has every frame"
    );
    assert_eq!(support::decode_errors(&file), "", "the recording decodes");
    drop(unread);
    spammers.abort_all();
}

/// Issue #27 item 4: after SIGTERM the emulator finalizes its recordings and exits within 2 s,
/// whatever its clients are doing: a silent TCP connection, a TLS connection that sent
/// nothing, one request whose body stops after 1 of its 10 bytes, and 200 more slow bodies
/// (it used to wait 9 s for one silent connection, 29 s for the slow bodies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods)] // real time: the test measures it
async fn sigterm_exits_within_two_seconds_whatever_clients_do() {
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt as _;
    let dir = tempfile::tempdir().unwrap();
    let channel = "leaving-emulator-cam";
    let (mut child, info) = serve_and_stream(dir.path(), channel).await;
    let service = Service::from_startup_info(&info);
    let authority = service.endpoint.trim_start_matches("https://").to_owned();
    let silent_tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let tls = || {
        let connector = tokio_rustls::TlsConnector::from(service.rustls_client_config());
        let authority = authority.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
            connector.connect(name, tcp).await.unwrap()
        }
    };
    let silent_tls = tls().await;
    let mut slow = Vec::new();
    for _ in 0..201 {
        let mut conn = tls().await;
        let head = format!(
            "POST /describeSignalingChannel HTTP/1.1\r\nHost: {authority}\r\nContent-Type: \
             application/json\r\nContent-Length: 10\r\n\r\n{{"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.flush().await.unwrap();
        slow.push(conn);
    }
    // Past the 200 ms in which a body counts as prompt: the slow bodies are being waited for.
    tokio::time::sleep(Duration::from_millis(400)).await;

    let signalled = Instant::now();
    let (exit, log) = signal_and_wait(&mut child, "-TERM").await;
    let took = signalled.elapsed();
    eprintln!(
        "SIGTERM with a silent TCP and TLS connection and 201 slow bodies: exited in {took:?}"
    );
    assert!(exit.success(), "{exit:?}\n{log}");
    assert!(
        took < Duration::from_secs(2),
        "exited {took:?} after SIGTERM"
    );
    support::assert_sample_recording(&dir.path().join("recordings").join(channel));
    drop((silent_tcp, silent_tls, slow));
}
