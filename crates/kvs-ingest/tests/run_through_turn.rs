//! `kvs-ingest run --ice-transport-policy relay` through coturn over UDP, TCP and TLS, with
//! the emulator handing out coturn's TURN REST credentials as KVS does; a wrong TURN secret
//! exits 6 with a message naming the server and why.

use kvs_emulator::TurnMode;
use kvs_test_support::{text, Coturn, IngestCli, SampleClip, TestEmulator};

async fn emulator_with_turn(uris: Vec<String>, secret: &str) -> TestEmulator {
    TestEmulator::start_with(|b| {
        b.turn(TurnMode::External {
            uris,
            shared_secret: secret.to_owned(),
        })
    })
    .await
}

/// The sample clip's files, and their paths as command-line arguments.
fn clip() -> (SampleClip, String, String) {
    let clip = SampleClip::write();
    let (video, audio) = (
        clip.video.display().to_string(),
        clip.audio.display().to_string(),
    );
    (clip, video, audio)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_runs_through_coturn_over_udp_tcp_and_tls() {
    let coturn = Coturn::start();
    let (files, video, audio) = clip();
    for (transport, uri) in [
        ("udp", coturn.udp_uri()),
        ("tcp", coturn.tcp_uri()),
        ("tls", coturn.tls_uri()),
    ] {
        let emulator = emulator_with_turn(vec![uri.clone()], &coturn.secret).await;
        let channel = format!("cli-relay-{transport}");
        emulator.create_storage_channel(&channel);
        let mut cli = IngestCli::new(env!("CARGO_BIN_EXE_kvs-ingest"), &emulator.handle);
        cli.also_trust(&coturn.ca.ca_pem, files.dir());
        let out = cli
            .run(&[
                "run",
                "--channel",
                &channel,
                "--video",
                &video,
                "--audio",
                &audio,
                "--ice-transport-policy",
                "relay",
                "--json",
            ])
            .await;
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{transport}: {}\n{stdout}\ncoturn:\n{}",
            text(&out.stderr),
            coturn.log()
        );
        let lines: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON lines"))
            .collect();
        let allocated = lines
            .iter()
            .find(|l| l["event"] == "relay-allocated")
            .unwrap_or_else(|| panic!("{transport}: no relay-allocated event: {stdout}"));
        assert_eq!(allocated["server"], uri.as_str());
        assert_eq!(allocated["transport"], transport);
        let summary = lines.last().expect("the summary");
        assert_eq!(summary["stats"]["relayAllocations"], 1, "{summary}");
        assert_eq!(summary["stats"]["video"]["framesSent"], 75, "{summary}");

        // The last packets may still be on their way through coturn: wait (bounded).
        let sessions = emulator
            .wait_for_sessions("all 75 frames through coturn", |s| {
                s.first().is_some_and(|s| s.media.video.frames >= 75)
            })
            .await;
        let media = &sessions[0].media;
        assert_eq!(media.video.frames, 75, "{transport}: {sessions:#?}");
        assert!(media.violations.is_empty(), "{:?}", media.violations);
    }
    // One allocation per run in coturn's log, each a different channel's user.
    let log = coturn.log();
    for transport in ["udp", "tcp", "tls"] {
        assert!(
            log.lines()
                .any(|l| l.contains(": new,")
                    && l.contains(&format!(":cli-relay-{transport}.master>"))),
            "coturn logged no allocation for {transport}:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_turn_secret_exits_6_relay_only_and_0_with_the_direct_path() {
    let coturn = Coturn::start();
    let (_files, video, audio) = clip();
    let emulator = emulator_with_turn(vec![coturn.udp_uri()], "not-the-coturn-secret").await;
    emulator.create_storage_channel("cli-wrong-turn");
    let cli = IngestCli::new(env!("CARGO_BIN_EXE_kvs-ingest"), &emulator.handle);
    let run = |policy: &'static str| {
        let cli = cli.clone();
        let (video, audio) = (video.clone(), audio.clone());
        async move {
            cli.run(&[
                "run",
                "--channel",
                "cli-wrong-turn",
                "--video",
                &video,
                "--audio",
                &audio,
                "--ice-transport-policy",
                policy,
            ])
            .await
        }
    };
    let out = run("relay").await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains(&coturn.udp_uri()), "{stderr}");
    assert!(stderr.contains("refused the credentials (401"), "{stderr}");
    assert!(
        !stderr.contains("not-the-coturn-secret"),
        "no secret in the output: {stderr}"
    );

    let out = run("all").await;
    assert!(
        out.status.success(),
        "the direct path works: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("gave no relay"),
        "the failure is reported: {}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_policy_is_refused_with_the_choices() {
    let emulator = emulator_with_turn(vec!["turn:127.0.0.1:9?transport=udp".into()], "s").await;
    let cli = IngestCli::new(env!("CARGO_BIN_EXE_kvs-ingest"), &emulator.handle);
    let out = cli
        .run(&[
            "run",
            "--channel",
            "c",
            "--video",
            "v.h264",
            "--ice-transport-policy",
            "direct",
        ])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("neither all nor relay"),
        "{}",
        text(&out.stderr)
    );
}
