//! Issue #27 item 7: the reference client, the AWS KVS WebRTC C SDK's master sample
//! (`kvsWebrtcClientMaster <channel> 1 opus h264`, storage mode), ingests into
//! `kvs-emulator serve --port 443`, which serves every endpoint on port 443 on its own
//! loopback address as AWS does: the sample connects every endpoint on 443 and refuses a URL
//! with a port, and runs here without the vendored port patch (0002).
//!
//! The sample is built from `../shared/vendor/kvs-webrtc-sdk-c` by `cargo xtask test`
//! (`KVS_C_SDK_MASTER`; see `xtask/src/test_env/c_sdk.rs`). It needs port 443: root or
//! CAP_NET_BIND_SERVICE for the emulator.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kvs_test_support::recording::{decode_errors, readable_video_frames};
use kvs_test_support::{wait_for_within, Service, WAIT};
use serde_json::Value;

/// How long the sample sends.
const SEND_FOR: Duration = Duration::from_secs(8);

/// The built sample, with its sample frames beside it.
fn master_sample() -> PathBuf {
    let path = std::env::var_os("KVS_C_SDK_MASTER")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/c-sdk/build/sdk/samples/kvsWebrtcClientMaster")
        });
    assert!(
        path.is_file(),
        "the C SDK's master sample is not built ({}): run `cargo xtask test --provision-only`, \
         which builds ../shared/vendor/kvs-webrtc-sdk-c into target/c-sdk",
        path.display()
    );
    path
}

/// Shows the tails of the sample's and the emulator's logs when the test fails.
struct LogsOnFailure(Vec<(&'static str, PathBuf)>);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (name, path) in &self.0 {
                eprintln!("--- the end of {name}'s log:\n{}", tail(path, 80));
            }
        }
    }
}

/// Ctrl-C to `child`, and its exit status (bounded by [`WAIT`]).
async fn interrupt(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("it exits after SIGINT")
        .expect("its status")
}

/// The last lines of a log file.
fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_sdk_master_sample_ingests_on_port_443_without_the_port_patch() {
    let sample = master_sample();
    let dir = tempfile::tempdir().unwrap();
    let emulator_log = dir.path().join("emulator.log");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kvs-emulator"));
    command
        // 127.0.43.1-4: beside an emulator a developer runs on 127.0.0.1:443.
        .args([
            "serve",
            "--port",
            "443",
            "--bind",
            "127.0.43.1",
            "--no-throttling",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stderr(std::fs::File::create(&emulator_log).unwrap());
    // Port 443 needs root or CAP_NET_BIND_SERVICE: if it does not start, its log says why.
    let Ok((mut emulator, info)) = tokio::spawn(kvs_test_support::serve(command)).await else {
        panic!(
            "kvs-emulator serve --port 443 --bind 127.0.43.1 did not start; its log:\n{}",
            tail(&emulator_log, 10)
        );
    };
    assert_eq!(info["endpoint"], "https://127.0.43.1", "{info}");
    let service = Service::from_startup_info(&info);
    let channel = "c-sdk-cam";
    let (channel_arn, _) = service.storage_channel(channel).await;

    // The sample reads ./h264SampleFrames and ./opusSampleFrames, and caches endpoints in
    // ./.SignalingCache_v1: a fresh working directory with the frames linked in.
    let work = dir.path().join("sample");
    std::fs::create_dir_all(&work).unwrap();
    let frames = sample.parent().unwrap();
    for name in ["h264SampleFrames", "opusSampleFrames"] {
        std::os::unix::fs::symlink(frames.join(name), work.join(name)).unwrap();
    }
    let sample_log = dir.path().join("sample.log");
    let _logs = LogsOnFailure(vec![
        ("kvsWebrtcClientMaster", sample_log.clone()),
        ("kvs-emulator", emulator_log.clone()),
    ]);
    let log_file = std::fs::File::create(&sample_log).unwrap();
    let mut master = tokio::process::Command::new(&sample)
        .args([channel, "1", "opus", "h264"])
        .current_dir(&work)
        .env("AWS_ACCESS_KEY_ID", &service.key.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &service.key.secret_access_key)
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_DEFAULT_REGION", &service.region)
        .env("AWS_KVS_CACERT_PATH", info["caCertPath"].as_str().unwrap())
        .env("KVS_CONTROL_PLANE_URL", &service.endpoint)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .expect("kvsWebrtcClientMaster starts");

    // Joined, connected, media flowing.
    let sessions_of = |s: &[Value]| {
        s.iter()
            .filter(|s| s["channelArn"] == channel_arn.as_str())
            .cloned()
            .collect::<Vec<_>>()
    };
    let connected = tokio::time::timeout(
        WAIT,
        service.wait_for_sessions_json("the sample's media", |s| {
            sessions_of(s)
                .first()
                .is_some_and(|s| s["media"]["video"]["frames"].as_u64() > Some(0))
        }),
    )
    .await;
    assert!(connected.is_ok(), "no media from the sample");
    tokio::time::sleep(SEND_FOR).await; // the measurement window

    // Ctrl-C: the sample closes its peer connection (a DTLS close_notify) and exits.
    let status = interrupt(&mut master).await;
    let exited = Instant::now();
    let sessions = wait_for_within(
        Duration::from_secs(1),
        "the session to end within 1 s of the sample's exit",
        || async {
            let all = service.inspect("sessions").await;
            let mine = sessions_of(all.as_array().unwrap());
            match mine.as_slice() {
                [s] if s["state"] == "ENDED" => Ok(s.clone()),
                _ => Err(mine),
            }
        },
    )
    .await;
    let ended_after = exited.elapsed();
    let session = sessions;
    let media = &session["media"];
    eprintln!(
        "C SDK master sample ({status}): {} video frames ({} key), {} audio frames, \
         violations {}, {}x{} {}; ENDED {ended_after:?} after its exit: {}",
        media["video"]["frames"],
        media["video"]["keyframes"],
        media["audio"]["frames"],
        media["violations"],
        media["width"],
        media["height"],
        media["profile"],
        session["endReason"]
    );
    assert_eq!(
        session["endReason"], "the client closed the connection (DTLS close_notify)",
        "{session:#}"
    );
    // 25 fps video and 50 packets/s of Opus: at least 80 % of that for the window.
    let window = SEND_FOR.as_secs();
    assert!(
        media["video"]["frames"].as_u64() >= Some(20 * window),
        "{media:#}"
    );
    assert!(
        media["audio"]["frames"].as_u64() >= Some(40 * window),
        "{media:#}"
    );
    assert_eq!(media["video"]["codec"], "H264");
    assert_eq!(media["audio"]["codec"], "opus");
    assert_eq!(media["violations"], serde_json::json!([]), "{media:#}");

    // The recording was finalized with every frame, and decodes without a complaint.
    let file = PathBuf::from(media["recording"].as_str().expect("a recording"));
    let (codec, frames) = readable_video_frames(&file);
    assert_eq!(codec, "h264");
    assert_eq!(Some(frames), media["video"]["frames"].as_u64());
    assert_eq!(decode_errors(&file), "", "ffmpeg -v error is silent");

    // The endpoints the sample was given carry no port. (The IoT credentials endpoint is not
    // one of them: the sample signs with access keys, and that listener keeps its own port.)
    let endpoints = service.inspect("state").await["endpoints"].clone();
    for (name, url) in endpoints
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.as_str() != "iotCredentials")
    {
        let url = url.as_str().unwrap();
        assert!(
            !url.trim_start_matches("https://")
                .trim_start_matches("wss://")
                .contains(':'),
            "{name}: {url}"
        );
    }
    let stopped = interrupt(&mut emulator).await;
    assert!(stopped.success(), "{stopped:?}");
}
