//! Ingestion through a real TURN server: coturn on 127.0.0.1 with the TURN REST shared-secret
//! scheme, handed out by the emulator's GetIceServerConfig exactly as KVS hands out its own
//! (`--turn-uri` / `--turn-secret`), relay-only over UDP, TCP and TLS; a wrong password and an
//! unreachable server, relay-only and with the direct path allowed; and credentials that
//! expire while media flows.

// End-to-end tests and benches run in real time (clippy.toml bans the clock in the sans-IO parts).
#![allow(clippy::disallowed_methods)]

use kvs_emulator::TurnMode;
use kvs_test_support::Coturn;
use kvs_test_support::{IngestSetup as Setup, WAIT};
use kvs_webrtc_ingest::{AudioSource, ErrorKind, IceTransportPolicy, IngestEvent, VideoSource};

/// An emulator whose GetIceServerConfig returns `uris` with credentials made with `secret`.
async fn setup_with_turn(channel: &str, uris: Vec<String>, secret: &str) -> Setup {
    let secret = secret.to_owned();
    Setup::start_with(channel, move |b| {
        b.turn(TurnMode::External {
            uris,
            shared_secret: secret,
        })
    })
    .await
}

/// Ingest the sample clip relay-only and return the ingestion's statistics and events.
async fn ingest_relay_only(
    setup: &Setup,
    coturn: &Coturn,
) -> (kvs_webrtc_ingest::Stats, Vec<IngestEvent>) {
    let session = start_ingest(setup, coturn, IceTransportPolicy::Relay, false).await;
    match run_collecting(session).await {
        (Ok(stats), events) => (stats, events),
        (Err(e), events) => panic!(
            "relay-only ingestion failed: {e}\nevents: {events:#?}\nsessions: {:#?}\ncoturn:\n{}",
            setup.emulator.sessions(),
            coturn.log()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_ingests_through_coturn_over_udp_tcp_and_tls() {
    let coturn = Coturn::start();
    for (transport, uri) in [
        ("udp", coturn.udp_uri()),
        ("tcp", coturn.tcp_uri()),
        ("tls", coturn.tls_uri()),
    ] {
        let channel = format!("relay-{transport}");
        let setup = setup_with_turn(&channel, vec![uri.clone()], &coturn.secret).await;
        let (stats, events) = ingest_relay_only(&setup, &coturn).await;

        // One allocation, over the transport asked for; the only candidate offered.
        assert_eq!(
            (stats.relay_allocations, stats.relay_failures),
            (1, 0),
            "{transport}: {stats:#?}"
        );
        assert_eq!(stats.gathered_candidates, 1, "{transport}");
        assert!(
            events.iter().any(|e| matches!(
                e,
                IngestEvent::RelayAllocated { server, transport: t, .. } if *server == uri && t == transport
            )),
            "{transport}: {events:#?}"
        );
        assert_eq!(stats.video.frames_sent, 75, "{transport}");
        assert_eq!(stats.joins, 1, "{transport}: no re-join");

        // The storage peer received everything, through the relay.
        let sessions = setup.emulator.received_all(&stats).await;
        let media = &sessions[0].media;
        assert_eq!(media.video.frames, 75, "{transport}");
        assert!(
            media.violations.is_empty(),
            "{transport}: {:?}",
            media.violations
        );
        assert!(media.video.keyframes >= 3, "{transport}");

        // coturn's own account: the allocation, over this client transport, and the bytes it
        // received from us (payload plus TURN and SRTP overhead).
        let session = coturn_session(&coturn, &format!("{channel}.master")).await;
        assert!(
            session.new.contains("lifetime="),
            "{transport}: {}",
            session.new
        );
        match transport {
            "tls" => assert!(session.new.contains("method=TLS"), "{}", session.new),
            "tcp" => assert!(
                !session.new.contains("method=TLS") && session.closed.contains("TCP connection"),
                "{session:?}"
            ),
            _ => assert!(!session.closed.contains("TCP"), "{session:?}"),
        }
        let sent = stats.video.bytes_sent + stats.audio.bytes_sent;
        assert!(
            session.bytes_received >= sent,
            "{transport}: coturn received {} of {sent} bytes",
            session.bytes_received
        );
    }
}

/// What coturn logged about one allocation.
#[derive(Debug)]
struct CoturnSession {
    new: String,
    closed: String,
    bytes_received: u64,
}

/// Wait (bounded) until coturn logged the end of the allocation of `user` (the TURN REST
/// username's user part), and return its lines.
async fn coturn_session(coturn: &Coturn, user: &str) -> CoturnSession {
    let waiting = format!("coturn to log a finished session of {user}");
    kvs_test_support::wait_until(&waiting, || {
        let log = coturn.log();
        let line = |what: &str| {
            log.lines()
                .find(|l| l.contains(what) && l.contains(&format!(":{user}>")))
                .map(str::to_owned)
        };
        let (Some(new), Some(usage), Some(closed)) =
            (line(": new,"), line(": usage:"), line("closed (2nd stage)"))
        else {
            return Err(log);
        };
        let bytes_received = usage
            .split(", ")
            .find_map(|f| f.strip_prefix("rb="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(CoturnSession {
            new,
            closed,
            bytes_received,
        })
    })
    .await
}

/// Start an ingestion of the sample clip with `policy`, a 2 s allocation timeout, trusting
/// coturn's CA.
async fn start_ingest(
    setup: &Setup,
    coturn: &Coturn,
    policy: IceTransportPolicy,
    looping: bool,
) -> kvs_webrtc_ingest::IngestSession {
    let config = setup
        .emulator
        .ingest_config()
        .trust_root_certificate_pem(coturn.ca.ca_pem.clone())
        .ice_transport_policy(policy)
        .turn_allocate_timeout(std::time::Duration::from_secs(2));
    kvs_test_support::ingest_client(config)
        .ingest()
        .channel(&setup.channel)
        .video(VideoSource::annex_b_file(setup.file("clip.h264")).looping(looping))
        .audio(AudioSource::ogg_opus_file(setup.file("clip.opus")).looping(looping))
        .send()
        .await
        .expect("ingestion starts")
}

/// Every event until the session stops, and its outcome.
async fn run_collecting(
    mut session: kvs_webrtc_ingest::IngestSession,
) -> (
    Result<kvs_webrtc_ingest::Stats, kvs_webrtc_ingest::Error>,
    Vec<IngestEvent>,
) {
    let mut events = Vec::new();
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(event) = session.next_event().await {
            events.push(event);
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "no end within {WAIT:?}: {:#?}\nevents: {events:#?}",
        session.stats()
    );
    (session.wait().await, events)
}

/// Relay-only fails with `ErrorKind::Relay` naming each server and why; with policy `all`
/// the same servers' failures are reported and the direct path carries every frame.
async fn check_bad_relays(
    coturn: &Coturn,
    channel: &str,
    uris: Vec<String>,
    secret: &str,
    why: &[&str],
) {
    let setup = setup_with_turn(channel, uris.clone(), secret).await;
    let started = std::time::Instant::now();
    let session = start_ingest(&setup, coturn, IceTransportPolicy::Relay, false).await;
    let (outcome, events) = run_collecting(session).await;
    let error = outcome.expect_err("relay-only cannot work");
    let failed_after = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Relay, "{error}");
    let message = error.to_string();
    assert!(message.contains("relay-only"), "{message}");
    for uri in &uris {
        assert!(message.contains(uri.as_str()), "names {uri}: {message}");
    }
    for reason in why {
        assert!(message.contains(reason), "says {reason:?}: {message}");
    }
    assert!(
        !message.contains(secret) && !message.contains(&coturn.secret),
        "no secret: {message}"
    );
    assert!(
        failed_after < std::time::Duration::from_secs(10),
        "failed in {failed_after:?}"
    );
    let relay_failures = events
        .iter()
        .filter(|e| matches!(e, IngestEvent::RelayFailed { .. }))
        .count();
    assert_eq!(relay_failures, uris.len(), "{events:#?}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, IngestEvent::FirstFrameSent(_))),
        "nothing was sent relay-only"
    );

    // Policy `all`: the direct (host) path connects at once, whatever the relays do.
    let direct_channel = format!("{channel}-direct");
    let setup = setup_with_turn(&direct_channel, uris.clone(), secret).await;
    let session = start_ingest(&setup, coturn, IceTransportPolicy::All, false).await;
    let (outcome, events) = run_collecting(session).await;
    let stats = outcome.expect("the direct path works");
    assert_eq!(stats.relay_allocations, 0);
    assert_eq!(stats.relay_failures, uris.len() as u64, "{stats:#?}");
    assert_eq!(stats.video.frames_sent, 75);
    let sessions = setup.emulator.received_all(&stats).await;
    assert_eq!(sessions[0].media.video.frames, 75);
    let first_frame = events
        .iter()
        .position(|e| *e == IngestEvent::FirstFrameSent(kvs_webrtc_ingest::Track::Video));
    assert!(first_frame.is_some(), "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_turn_password_is_a_clear_error_relay_only_and_the_direct_path_still_works() {
    let coturn = Coturn::start();
    // The emulator signs the TURN REST credentials with another secret than coturn's.
    check_bad_relays(
        &coturn,
        "wrong-password",
        vec![coturn.udp_uri(), coturn.tls_uri()],
        "not-the-coturn-secret",
        &[
            "refused the credentials (401",
            "password is wrong or the credentials expired",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_turn_server_is_a_clear_error_relay_only_and_the_direct_path_still_works() {
    let coturn = Coturn::start();
    // Ports nobody listens on: UDP gets no answer, TCP is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    check_bad_relays(
        &coturn,
        "unreachable",
        vec![
            format!("turn:127.0.0.1:{closed}?transport=udp"),
            format!("turns:127.0.0.1:{closed}?transport=tcp"),
        ],
        &coturn.secret.clone(),
        &["did not answer within 2s", "cannot connect to 127.0.0.1"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_expiring_mid_session_are_refreshed_without_a_media_gap() {
    let coturn = Coturn::start();
    // Credentials valid for 4 s, refreshed 1.5 s before: a new allocation every 2.5 s.
    let ttl = std::time::Duration::from_secs(4);
    let uris = vec![coturn.udp_uri()];
    let secret = coturn.secret.clone();
    let setup = Setup::start_with("expiring", move |b| {
        b.turn(TurnMode::External {
            uris,
            shared_secret: secret,
        })
        .timings(|t| t.ice_server_ttl = ttl)
    })
    .await;
    let discovery = setup
        .emulator
        .discovery_config()
        .ice_refresh_grace(std::time::Duration::from_millis(1500))
        .build();
    let config = setup
        .emulator
        .ingest_config()
        .discovery_config(discovery)
        .trust_root_certificate_pem(coturn.ca.ca_pem.clone())
        .ice_transport_policy(IceTransportPolicy::Relay);
    let session = kvs_test_support::ingest_client(config)
        .ingest()
        .channel("expiring")
        .video(VideoSource::annex_b_file(setup.file("clip.h264")).looping(true))
        .audio(AudioSource::ogg_opus_file(setup.file("clip.opus")).looping(true))
        .send()
        .await
        .expect("ingestion starts");
    // Three TTLs: the first credentials expire twice over while their allocation carries
    // the session.
    let mut stats_rx = session.watch_stats();
    tokio::time::timeout(WAIT, stats_rx.wait_for(|s| s.video.frames_sent >= 12 * 25))
        .await
        .expect("12 s of video within the wait")
        .expect("stats");
    // Allocations no session uses are released as the credentials are renewed: the
    // session's own (its relay pair may move to a newer one) and the newest stay.
    let allocations_live = |log: &str| {
        let ours = |l: &&str| l.contains(":expiring.master>");
        let made = log
            .lines()
            .filter(ours)
            .filter(|l| l.contains(": new,"))
            .count();
        let released = log
            .lines()
            .filter(ours)
            .filter(|l| l.contains(": refreshed,") && l.contains("lifetime=0"))
            .count();
        (made, made - released.min(made))
    };
    let (made, live) = allocations_live(&coturn.log());
    assert!(
        made >= 4 && live <= 3,
        "{live} of {made} allocations still held during the session"
    );
    let stats = session.stop().await.expect("a clean stop");

    assert!(
        stats.relay_allocations >= 4,
        "new allocations with new credentials: {stats:#?}"
    );
    assert_eq!(stats.relay_failures, 0, "{stats:#?}");
    assert_eq!(stats.joins, 1, "no re-join: {stats:#?}");
    let sessions = setup.emulator.received_all(&stats).await;
    let media = &sessions[0].media;
    assert_eq!(media.video.frames, stats.video.frames_sent);
    assert!(
        media.video.longest_gap_ms < 1000 && media.audio.longest_gap_ms < 1000,
        "media gap: video {} ms, audio {} ms",
        media.video.longest_gap_ms,
        media.audio.longest_gap_ms
    );
    eprintln!(
        "expiring credentials: {} allocations, longest gap video {} ms, audio {} ms",
        stats.relay_allocations, media.video.longest_gap_ms, media.audio.longest_gap_ms
    );
    // coturn: one allocation per credential generation, each with its own username.
    let log = coturn.log();
    let allocations = log
        .lines()
        .filter(|l| l.contains(": new,") && l.contains(":expiring.master>"))
        .count();
    assert!(allocations as u64 >= stats.relay_allocations, "{log}");
    // The stop deallocates the rest.
    assert_eq!(allocations_live(&log).1, 0, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turns_server_whose_certificate_is_not_trusted_is_refused() {
    let coturn = Coturn::start();
    let setup = setup_with_turn("untrusted-tls", vec![coturn.tls_uri()], &coturn.secret).await;
    // Only the emulator's CA is trusted, not the one that signed coturn's certificate.
    let config = setup
        .emulator
        .ingest_config()
        .ice_transport_policy(IceTransportPolicy::Relay);
    let session = kvs_test_support::ingest_client(config)
        .ingest()
        .channel("untrusted-tls")
        .video(VideoSource::annex_b_file(setup.file("clip.h264")))
        .audio(AudioSource::ogg_opus_file(setup.file("clip.opus")))
        .send()
        .await
        .expect("ingestion starts");
    let (outcome, _) = run_collecting(session).await;
    let error = outcome.expect_err("TLS verification refuses coturn's certificate");
    assert_eq!(error.kind(), ErrorKind::Relay);
    let message = error.to_string();
    assert!(message.contains(&coturn.tls_uri()), "{message}");
    assert!(message.contains("TLS with 127.0.0.1"), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    eprintln!("{message}");
}
