//! The storage session driven with simulated time and an in-memory network: no sockets, no
//! sleeps. The client is a real str0m peer, as a device using our crates would be.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use str0m::change::SdpOffer;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use super::{PeerOutput, SessionUpdate, StorageSession};
use crate::config::Timings;
use crate::faults::OfferFaults;
use crate::link::Role;
use crate::sessions::SessionState;
use crate::wire::Action;

const PEER: &str = "127.0.0.1:6000";
const CLIENT: &str = "127.0.0.1:5000";

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn session(now: Instant, role: Role, faults: OfferFaults) -> StorageSession {
    StorageSession::new(now, role, faults, Timings::default(), addr(PEER)).unwrap()
}

/// Everything the session says until it waits, and the time it waits for.
#[derive(Debug, Default)]
struct Drained {
    to_client: Vec<serde_json::Value>,
    rejects: Vec<String>,
    updates: Vec<SessionUpdate>,
    transmits: Vec<(SocketAddr, Vec<u8>)>,
    connected: bool,
    end: Option<String>,
    timeout: Option<Instant>,
}

fn drain(session: &mut StorageSession) -> Drained {
    let mut out = Drained::default();
    loop {
        match session.poll_output() {
            PeerOutput::ToClient(frame) => {
                out.to_client.push(serde_json::from_str(&frame).unwrap())
            }
            PeerOutput::Reject { description, .. } => out.rejects.push(description),
            PeerOutput::Update(update) => out.updates.push(update),
            PeerOutput::Transmit {
                destination,
                contents,
            } => out.transmits.push((destination, contents)),
            PeerOutput::Connected => out.connected = true,
            PeerOutput::End(reason) => {
                out.end = Some(reason);
                return out;
            }
            PeerOutput::Timeout(at) => {
                out.timeout = Some(at);
                return out;
            }
            PeerOutput::Media(_) | PeerOutput::KeyframeRequested | PeerOutput::RelayKeyframe => {}
        }
    }
}

fn payload(frame: &serde_json::Value) -> serde_json::Value {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(frame["messagePayload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn encode(value: serde_json::Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(value.to_string())
}

#[test]
fn the_offer_and_its_candidate_go_out_after_the_offer_delay() {
    let t0 = Instant::now();
    let delay = Timings::default().offer_delay;
    let mut s = session(t0, Role::Master, OfferFaults::default());
    let first = drain(&mut s);
    assert!(first.to_client.is_empty());
    assert_eq!(first.timeout, Some(t0 + delay), "waits for the offer delay");
    s.handle_timeout(t0 + delay / 2);
    assert!(drain(&mut s).to_client.is_empty(), "not before the delay");
    assert!(!s.offer_sent());

    s.handle_timeout(t0 + delay);
    let out = drain(&mut s);
    assert!(s.offer_sent());
    let kinds: Vec<&str> = out
        .to_client
        .iter()
        .map(|f| f["messageType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["SDP_OFFER", "ICE_CANDIDATE"]);
    assert!(out.to_client[0].get("senderClientId").is_none());
    // The candidate names the offer's first m-line by its mid.
    let offer = payload(&out.to_client[0]);
    let candidate = payload(&out.to_client[1]);
    let sdp = offer["sdp"].as_str().unwrap();
    let first_mid = sdp
        .split("m=")
        .nth(1)
        .and_then(|media| media.lines().find_map(|l| l.strip_prefix("a=mid:")))
        .unwrap();
    assert_eq!(candidate["sdpMid"], first_mid);
    assert_eq!(candidate["sdpMLineIndex"], 0);
    assert!(out.updates.contains(&SessionUpdate::OfferSent));
    assert!(out
        .updates
        .contains(&SessionUpdate::State(SessionState::OfferSent)));
    // Then it waits for the answer, at most the answer timeout.
    assert!(out.timeout.unwrap() <= t0 + delay + Timings::default().answer_timeout);
}

#[test]
fn injected_faults_delay_reorder_or_drop_the_offer() {
    let t0 = Instant::now();
    let delay = Timings::default().offer_delay;
    let extra = Duration::from_secs(3);
    let mut s = session(
        t0,
        Role::Master,
        OfferFaults {
            extra_delay: Some(extra),
            candidates_first: true,
            ..OfferFaults::default()
        },
    );
    assert_eq!(drain(&mut s).timeout, Some(t0 + delay + extra));
    s.handle_timeout(t0 + delay);
    assert!(drain(&mut s).to_client.is_empty());
    s.handle_timeout(t0 + delay + extra);
    let out = drain(&mut s);
    assert_eq!(out.to_client[0]["messageType"], "ICE_CANDIDATE");
    assert_eq!(out.to_client[1]["messageType"], "SDP_OFFER");

    let mut dropped = session(
        t0,
        Role::Master,
        OfferFaults {
            drop_offer: true,
            ..OfferFaults::default()
        },
    );
    dropped.handle_timeout(t0 + delay);
    let out = drain(&mut dropped);
    assert!(out.to_client.is_empty(), "{:?}", out.to_client);
    assert!(!out.updates.contains(&SessionUpdate::OfferSent));
}

#[test]
fn without_an_answer_the_session_ends_at_the_answer_timeout() {
    let t0 = Instant::now();
    let timings = Timings::default();
    let mut s = session(t0, Role::Master, OfferFaults::default());
    let offered_at = t0 + timings.offer_delay;
    s.handle_timeout(offered_at);
    drain(&mut s);
    let mut now = offered_at;
    let end = loop {
        s.handle_timeout(now);
        let out = drain(&mut s);
        if let Some(end) = out.end {
            break end;
        }
        now = out.timeout.unwrap().max(now + Duration::from_millis(1));
        assert!(
            now < offered_at + Duration::from_secs(3600),
            "runaway simulation"
        );
    };
    assert_eq!(end, "no answer arrived in time");
    assert!(now >= offered_at + timings.answer_timeout);
    assert!(now < offered_at + timings.answer_timeout + Duration::from_secs(1));
}

#[test]
fn signals_before_the_answer_are_checked_and_candidates_kept() {
    let t0 = Instant::now();
    let mut s = session(t0, Role::Master, OfferFaults::default());
    s.handle_timeout(t0 + Timings::default().offer_delay);
    drain(&mut s);
    s.handle_signal(
        Action::IceCandidate,
        &encode(serde_json::json!({"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"})),
        Some("c1".into()),
        t0,
    );
    s.handle_signal(
        Action::SdpOffer,
        &encode(serde_json::json!({"type": "offer", "sdp": "v=0"})),
        None,
        t0,
    );
    s.handle_signal(Action::IceCandidate, "not base64 !", None, t0);
    s.handle_signal(
        Action::SdpAnswer,
        &encode(serde_json::json!({"type": "offer", "sdp": "v=0"})),
        None,
        t0,
    );
    let out = drain(&mut s);
    assert_eq!(out.updates, [SessionUpdate::CandidateReceived]);
    assert_eq!(out.rejects.len(), 3, "{:?}", out.rejects);
    assert!(out.rejects[0].contains("send an SDP_ANSWER"));
    assert!(out.rejects[1].contains("not base64"));
    assert!(out.rejects[2].contains("\"type\":\"answer\""));
    assert!(
        out.end.is_none(),
        "a malformed answer does not end the session"
    );
}

/// A str0m client and the session, wired through an in-memory network; time only moves when
/// both wait.
struct Pair {
    now: Instant,
    client: Rtc,
    session: StorageSession,
    connected: bool,
    client_connected: bool,
    end: Option<String>,
    rejects: Vec<String>,
    /// The client is gone without a word (`kill -9`): nothing reaches it or comes from it.
    cut: bool,
}

impl Pair {
    /// Joins, answers the offer with a str0m client that sends H.264 and Opus, and trickles
    /// the candidates both ways.
    fn answered(faults: OfferFaults) -> Self {
        Self::answered_with(faults, |_| {})
    }

    /// [`Pair::answered`] with other timings.
    fn answered_with(faults: OfferFaults, timings: impl FnOnce(&mut Timings)) -> Self {
        Self::answered_edited(faults, timings, |sdp| sdp)
    }

    /// [`Pair::answered_with`], the answer SDP changed by `edit` before it is sent.
    fn answered_edited(
        faults: OfferFaults,
        timings: impl FnOnce(&mut Timings),
        edit: impl FnOnce(String) -> String,
    ) -> Self {
        let t0 = Instant::now();
        let mut changed = Timings::default();
        timings(&mut changed);
        let mut session =
            StorageSession::new(t0, Role::Master, faults, changed, addr(PEER)).unwrap();
        let offered_at = t0 + Timings::default().offer_delay;
        session.handle_timeout(offered_at);
        let out = drain(&mut session);
        let offer = payload(&out.to_client[0]);
        let candidate = payload(&out.to_client[1]);
        let mut client = RtcConfig::new()
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .build(offered_at);
        client.add_local_candidate(Candidate::host(addr(CLIENT), "udp").unwrap());
        let answer = client
            .sdp_api()
            .accept_offer(SdpOffer::from_sdp_string(offer["sdp"].as_str().unwrap()).unwrap())
            .unwrap();
        client.add_remote_candidate(
            Candidate::from_sdp_string(candidate["candidate"].as_str().unwrap()).unwrap(),
        );
        session.handle_signal(
            Action::IceCandidate,
            &encode(serde_json::json!({
                "candidate": Candidate::host(addr(CLIENT), "udp").unwrap().to_sdp_string(),
                "sdpMid": "0", "sdpMLineIndex": 0
            })),
            None,
            offered_at,
        );
        session.handle_signal(
            Action::SdpAnswer,
            &encode(serde_json::json!({"type": "answer", "sdp": edit(answer.to_sdp_string())})),
            Some("a1".into()),
            offered_at,
        );
        Pair {
            now: offered_at,
            client,
            session,
            connected: false,
            client_connected: false,
            end: None,
            rejects: Vec::new(),
            cut: false,
        }
    }

    /// Runs both peers until `until` or the session ends; time moves to the earlier of the
    /// two deadlines only when neither has anything left to say at the current time.
    fn run_until(&mut self, until: Instant) {
        let mut steps = 0u32;
        while self.end.is_none() {
            steps += 1;
            assert!(steps < 2_000_000, "runaway simulation");
            let out = drain(&mut self.session);
            self.connected |= out.connected;
            self.rejects.extend(out.rejects);
            if let Some(end) = out.end {
                self.end = Some(end);
                return;
            }
            let mut progressed = !out.transmits.is_empty();
            for (destination, contents) in out.transmits {
                assert_eq!(destination, addr(CLIENT));
                if self.cut {
                    continue;
                }
                self.client
                    .handle_input(Input::Receive(
                        self.now,
                        Receive {
                            proto: Protocol::Udp,
                            source: addr(PEER),
                            destination: addr(CLIENT),
                            contents: contents.as_slice().try_into().unwrap(),
                        },
                    ))
                    .unwrap();
            }
            let client_timeout = loop {
                match self.client.poll_output().unwrap() {
                    Output::Timeout(at) => break at,
                    Output::Transmit(_) if self.cut => {}
                    Output::Transmit(t) => {
                        progressed = true;
                        self.session
                            .handle_datagram(self.now, addr(CLIENT), &t.contents);
                    }
                    Output::Event(Event::Connected) => self.client_connected = true,
                    Output::Event(_) => {}
                }
            };
            if progressed {
                continue;
            }
            let next = client_timeout.min(out.timeout.expect("no end, so a timeout"));
            self.now = self.now.max(next);
            if self.now > until {
                return;
            }
            self.client.handle_input(Input::Timeout(self.now)).unwrap();
            self.session.handle_timeout(self.now);
        }
    }
}

#[test]
fn a_str0m_client_connects_and_the_session_ends_at_its_lifetime_limit() {
    let mut pair = Pair::answered(OfferFaults::default());
    let offered_at = pair.now;
    pair.run_until(offered_at + Duration::from_secs(10));
    assert!(pair.rejects.is_empty(), "{:?}", pair.rejects);
    assert!(pair.connected, "ICE and DTLS connect in simulated time");
    assert!(pair.session.is_connected());
    assert!(pair.end.is_none(), "{:?}", pair.end);

    let limit = offered_at + Timings::default().storage_session_max_duration;
    pair.run_until(limit + Duration::from_secs(5));
    assert_eq!(
        pair.end.as_deref(),
        Some("maximum session duration reached")
    );
    assert!(pair.now >= limit, "not before the limit");
}

#[test]
fn an_answer_the_service_refuses_ends_the_session_with_a_reason() {
    let mut pair = Pair::answered(OfferFaults {
        reject_answer: true,
        ..OfferFaults::default()
    });
    pair.run_until(pair.now + Duration::from_secs(1));
    assert_eq!(pair.end.as_deref(), Some("the answer was rejected"));
    assert!(
        pair.rejects.iter().any(|r| r.contains("fault injected")),
        "{:?}",
        pair.rejects
    );
}

/// The pair with the client's ufrag in its answer replaced by `ufrag`, run for a second.
fn answered_with_client_ufrag(ufrag: &str) -> Pair {
    let mut pair = Pair::answered_edited(
        OfferFaults::default(),
        |_| {},
        |sdp| {
            let ours = sdp
                .lines()
                .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
                .expect("a ufrag")
                .to_owned();
            sdp.replace(
                &format!("a=ice-ufrag:{ours}"),
                &format!("a=ice-ufrag:{ufrag}"),
            )
        },
    );
    pair.run_until(pair.now + Duration::from_secs(1));
    pair
}

#[test]
fn an_answer_whose_ice_ufrag_str0m_cannot_sign_is_refused_instead_of_panicking() {
    // The emulator's ufrag is 16 characters and str0m's STUN USERNAME at most 128 bytes.
    let pair = answered_with_client_ufrag(&"u".repeat(111));
    assert!(pair.rejects.is_empty(), "{:?}", pair.rejects);
    assert_eq!(pair.end, None);
    // One more character and str0m panicked on its first connectivity check.
    let pair = answered_with_client_ufrag(&"u".repeat(112));
    assert_eq!(pair.end.as_deref(), Some("the answer was rejected"));
    assert!(
        pair.rejects
            .iter()
            .any(|r| r.contains("ice-ufrag is 112 characters")),
        "{:?}",
        pair.rejects
    );
    let pair = answered_with_client_ufrag("ab c");
    assert!(
        pair.rejects
            .iter()
            .any(|r| r.contains("not an ICE character")),
        "{:?}",
        pair.rejects
    );
}

#[test]
fn an_answer_that_gives_one_payload_type_two_configurations_is_refused_instead_of_panicking() {
    // The audio m-line maps the video's H.264 payload type to another H.264 profile. On the
    // device's side such an offer made str0m panic (the ingest_offer fuzz target found it);
    // here str0m took the answer, which breaks BUNDLE's rule, so the peer refuses it with the
    // rule as it refuses other malformed answers (this failed before: the answer was taken).
    let mut pair = Pair::answered_edited(
        OfferFaults::default(),
        |_| {},
        |sdp| kvs_test_support::sdp::with_the_video_payload_type_reused_in_audio(&sdp),
    );
    pair.run_until(pair.now + Duration::from_secs(1));
    assert_eq!(pair.end.as_deref(), Some("the answer was rejected"));
    assert!(
        pair.rejects.iter().any(|r| r.contains("RFC 8843")),
        "{:?}",
        pair.rejects
    );
}

#[test]
fn a_viewer_alone_too_long_is_ended() {
    let t0 = Instant::now();
    let limit = Timings::default().viewer_without_master;
    let mut s = session(t0, Role::Viewer("v1".into()), OfferFaults::default());
    s.handle_master_presence(t0, false);
    s.handle_master_presence(t0 + limit / 2, true);
    s.handle_master_presence(t0 + limit, false);
    assert!(
        drain(&mut s).end.is_none(),
        "the clock restarts when the master is back"
    );
    s.handle_master_presence(t0 + limit * 2 - Duration::from_millis(1), false);
    assert!(drain(&mut s).end.is_none());
    s.handle_master_presence(t0 + limit * 2, false);
    assert_eq!(
        drain(&mut s).end.as_deref(),
        Some("viewer without a master for too long")
    );
}

/// Issue #27 item 2: a device that leaves says so with a DTLS close_notify (the C SDK's
/// `closePeerConnection()`, our client's stop); the session ends at once with that reason, not
/// at the next join or the emulator's exit.
#[test]
fn a_dtls_close_from_the_client_ends_the_session_at_once() {
    let mut pair = Pair::answered(OfferFaults::default());
    pair.run_until(pair.now + Duration::from_secs(3));
    assert!(pair.connected && pair.end.is_none(), "{:?}", pair.end);
    let closed_at = pair.now;
    pair.client.close().unwrap();
    pair.run_until(closed_at + Duration::from_secs(5));
    assert_eq!(
        pair.end.as_deref(),
        Some("the client closed the connection (DTLS close_notify)")
    );
    assert!(
        pair.now < closed_at + Duration::from_millis(100),
        "ended {:?} after the close",
        pair.now - closed_at
    );
}

/// Issue #27 item 2: a device that vanishes (`kill -9`, a cut cable) answers no more
/// connectivity checks; its session ends when its consent expires, at most 30 s after its last
/// answer (RFC 7675 §5.1), whichever of str0m's ICE agent and the consent timer notices first.
#[test]
fn a_client_that_vanishes_ends_the_session_when_its_consent_expires() {
    let consent = Timings::default().consent_timeout;
    assert_eq!(consent, Duration::from_secs(30), "RFC 7675's figure");
    for (timeout, reason) in [
        (consent, None),
        (
            // Shorter than str0m's own give-up: the consent timer ends it, and says so.
            Duration::from_secs(5),
            Some("ICE consent expired: the client answered no connectivity check for 5 s"),
        ),
    ] {
        let mut pair = Pair::answered_with(OfferFaults::default(), |t| t.consent_timeout = timeout);
        pair.run_until(pair.now + Duration::from_secs(10));
        assert!(pair.connected && pair.end.is_none(), "{:?}", pair.end);
        let cut_at = pair.now;
        pair.cut = true;
        pair.run_until(cut_at + Duration::from_secs(120));
        let after = pair.now - cut_at;
        let end = pair.end.clone().unwrap_or_default();
        assert!(end.starts_with("ICE"), "{end}");
        if let Some(reason) = reason {
            assert_eq!(end, reason);
        }
        // The last answer came at most one check interval (str0m: 3 s) before the cut.
        assert!(
            after <= timeout,
            "consent {timeout:?}: ended {after:?} after the client vanished ({end})"
        );
        assert!(after > timeout.min(Duration::from_secs(20)) - Duration::from_secs(4));
    }
}
