//! `kvs-ingest run` with only IoT flags (no access key anywhere) against `kvs-emulator serve`:
//! a device identity issued by `kvs-emulator cert issue` gets credentials from the emulator's
//! IoT credentials endpoint, short-lived, so that they are refreshed during the run.
//!
//! A steady session makes no AWS call, so nothing asks for credentials: the test makes the
//! service send GO_AWAY twice, each time after the credentials the signaling socket was
//! presigned with have expired, and the reconnect must be presigned with fresh ones (the
//! emulator refuses expired ones with ExpiredTokenException), without a media gap.

use std::process::Stdio;
use std::time::Duration;

use kvs_test_support::{check, serve, text, wait_for, workspace_bin, SampleClip, Service};

/// How long the role alias's credentials are valid.
const DURATION_S: u64 = 6;
/// How long the device ingests: the two GO_AWAYs, 7 s apart, and some media after them.
const RUN_S: u64 = 22;

/// The count of `operation` in the inspection API's `calls`.
async fn calls(service: &Service, operation: &str) -> u64 {
    service.inspect("calls").await[operation]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_only_iot_flags_ingests_across_credential_refreshes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let emulator_bin = workspace_bin("kvs-emulator", "kvs-emulator");
    let mut command = tokio::process::Command::new(&emulator_bin);
    command
        .args(["serve", "--no-throttling", "--role-alias"])
        .arg(format!("Short={DURATION_S}"))
        .arg("--data-dir")
        .arg(&data)
        .stderr(Stdio::null());
    let (_child, info) = serve(command).await;
    let service = Service::from_startup_info(&info);
    service.storage_channel("iot-cam").await;

    let certs = dir.path().join("certs");
    let issued = std::process::Command::new(&emulator_bin)
        .args(["cert", "issue", "--thing", "iot-cam", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&certs)
        .output()
        .unwrap();
    assert!(issued.status.success(), "{}", text(&issued.stderr));

    let clip = SampleClip::write();
    let run = tokio::task::spawn_blocking({
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kvs-ingest"));
        command
            .args([
                "run",
                "--channel",
                "iot-cam",
                "--loop",
                "--json",
                "--duration",
            ])
            .arg(RUN_S.to_string())
            .arg("--video")
            .arg(&clip.video)
            .arg("--audio")
            .arg(&clip.audio)
            .args([
                "--region",
                &service.region,
                "--endpoint-url",
                &service.endpoint,
            ])
            .arg("--ca-file")
            .arg(info["caCertPath"].as_str().unwrap())
            .args(["--iot-endpoint", info["iotCredentials"].as_str().unwrap()])
            .arg("--iot-cert")
            .arg(certs.join("iot-cam.cert.pem"))
            .arg("--iot-key")
            .arg(certs.join("iot-cam.private.key"))
            .args(["--role-alias", "Short"])
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null());
        move || command.output().expect("kvs-ingest runs")
    });

    wait_for("the device's signaling socket", || async {
        check(calls(&service, "connectAsMaster").await, |n| *n >= 1)
    })
    .await;
    for connects in [2, 3] {
        // Past the expiry of the credentials the open socket was presigned with: waiting
        // for the clock is the point here.
        tokio::time::sleep(Duration::from_secs(DURATION_S + 1)).await;
        service
            .fault(serde_json::json!({ "channel": "iot-cam", "fault": "GO_AWAY" }))
            .await;
        wait_for("the reconnect after GO_AWAY", || async {
            check(calls(&service, "connectAsMaster").await, |n| *n >= connects)
        })
        .await;
    }
    let out = run.await.unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));

    let calls = service.inspect("calls").await;
    let fetched = calls["AssumeRoleWithCertificate"].as_u64().unwrap_or(0);
    let sessions = service.inspect("sessions").await;
    let report = format!("calls {calls}\nsessions {sessions:#}\n{stdout}");
    // The first fetch, then at least two refreshes; every connect accepted (an expired
    // presigned connect would be refused and retried, counting more connects).
    assert!(
        fetched >= 3,
        "credentials fetched {fetched} time(s)\n{report}"
    );
    assert_eq!(calls["connectAsMaster"], 3, "{report}");
    // Each GO_AWAY reconnect rejoins, so the media is in three sessions, one after the other.
    let sessions = sessions.as_array().cloned().unwrap_or_default();
    assert_eq!(sessions.len(), 3, "{report}");
    let ms = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("{report}"));
    let mut frames = 0;
    let mut previous: Option<(u64, u64)> = None;
    for session in &sessions {
        let media = &session["media"];
        let video = &media["video"];
        frames += ms(&video["frames"]);
        assert!(ms(&video["longestGapMs"]) <= 1000, "{report}");
        assert!(ms(&media["audio"]["longestGapMs"]) <= 1000, "{report}");
        let span = |track: &serde_json::Value| {
            let first = ms(&track["firstFrameUnixMs"]);
            (first, first + ms(&track["durationMs"]))
        };
        let (video_start, video_end) = span(video);
        let (audio_start, audio_end) = span(&media["audio"]);
        if let Some((video_before, media_before)) = previous {
            // From the last frame of one session to the first of the next, at a refresh: the
            // media flows again within 1 s (audio first); video resumes at the clip's next
            // keyframe (one every second), so within a GOP more.
            let media_gap = video_start.min(audio_start).saturating_sub(media_before);
            assert!(
                media_gap <= 1000,
                "a {media_gap} ms media gap at a reconnect\n{report}"
            );
            let video_gap = video_start.saturating_sub(video_before);
            assert!(
                video_gap <= 2000,
                "a {video_gap} ms video gap at a reconnect\n{report}"
            );
        }
        previous = Some((video_end, video_end.max(audio_end)));
    }
    // 25 fps for most of the run: the clip looped through every refresh.
    assert!(frames >= 25 * (RUN_S - 6), "{frames} frames\n{report}");
}
