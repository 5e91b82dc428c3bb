//! Ingestion through a real TURN server: coturn on 127.0.0.1 with the TURN REST shared-secret
//! scheme, handed out by the emulator's GetIceServerConfig exactly as KVS hands out its own
//! (`--turn-uri` / `--turn-secret`), relay-only over UDP, TCP and TLS; a wrong password and an
//! unreachable server, relay-only and with the direct path allowed; and credentials that
//! expire while media flows.

mod support;

use kvs_emulator::TurnMode;
use kvs_test_support::Coturn;
use kvs_webrtc_ingest::{AudioSource, IceTransportPolicy, IngestEvent, VideoSource};
use support::{Setup, WAIT};

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
    let mut session = setup
        .client_configured(Some(&coturn.ca.ca_pem), |c| {
            c.ice_transport_policy(IceTransportPolicy::Relay)
        })
        .ingest()
        .channel(&setup.channel)
        .video(VideoSource::annex_b_file(setup.file("clip.h264")))
        .audio(AudioSource::ogg_opus_file(setup.file("clip.opus")))
        .send()
        .await
        .expect("ingestion starts");
    let mut events = Vec::new();
    let started = std::time::Instant::now();
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(event) = session.next_event().await {
            eprintln!("{:>6} ms {event:?}", started.elapsed().as_millis());
            events.push(event);
            if matches!(events.last(), Some(IngestEvent::Stopped { .. })) {
                break;
            }
        }
    })
    .await;
    if ended.is_err() {
        panic!(
            "no end within {WAIT:?}: {:#?}\nsessions: {:#?}\ncoturn:\n{}",
            session.stats(),
            setup.emulator.sessions(),
            coturn.log()
        );
    }
    let stats = session.wait().await;
    match stats {
        Ok(stats) => (stats, events),
        Err(e) => panic!(
            "relay-only ingestion failed: {e}\nevents: {events:#?}\ncoturn:\n{}",
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
        let sessions = setup.received_all(&stats).await;
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
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = coturn.log();
        let line = |what: &str| {
            log.lines()
                .find(|l| l.contains(what) && l.contains(&format!(":{user}>")))
                .map(str::to_owned)
        };
        if let (Some(new), Some(usage), Some(closed)) =
            (line(": new,"), line(": usage:"), line("closed (2nd stage)"))
        {
            let bytes_received = usage
                .split(", ")
                .find_map(|f| f.strip_prefix("rb="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            return CoturnSession {
                new,
                closed,
                bytes_received,
            };
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "coturn logged no finished session of {user}:\n{log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
