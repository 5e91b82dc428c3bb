//! The core driven with simulated time: no sockets, no sleeps, no clock.

// Tests pick their simulated start time from the clock (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use super::*;
use crate::media;
use kvs_webrtc_discovery::ErrorKind as D;
use str0m::media::Direction;
use str0m::RtcConfig;

fn core(t0: Instant) -> IngestCore {
    IngestCore::new(
        t0,
        CoreConfig {
            side: Side::Master,
            timings: Timings::default(),
            sends_video: true,
            sends_audio: true,
            jitter_seed: 7,
        },
    )
}

/// An access unit as a reader hands it on.
fn picture(au: &[u8], timestamp: Duration) -> Picture {
    Picture::of(crate::source::VideoFrame {
        data: au.to_vec(),
        timestamp,
    })
}

/// A failed join of `kind`.
fn failure(kind: D, message: &str) -> JoinFailure {
    JoinFailure {
        kind,
        error: message.into(),
    }
}

#[derive(Debug, Default)]
struct Drained {
    joins: usize,
    events: Vec<IngestEvent>,
    ended: Option<(String, bool)>,
    timeout: Option<Instant>,
}

fn drain(core: &mut IngestCore) -> Drained {
    let mut out = Drained::default();
    loop {
        match core.poll_output() {
            Output::Join => out.joins += 1,
            Output::Event(e) => out.events.push(e),
            Output::Ended { reason, error } => {
                out.ended = Some((reason, error.is_some()));
                return out;
            }
            Output::Timeout(at) => {
                out.timeout = Some(at);
                return out;
            }
            _ => {}
        }
    }
}

#[test]
fn it_joins_once_signaling_is_connected_and_again_when_no_offer_comes() {
    let t0 = Instant::now();
    let mut c = core(t0);
    let first = drain(&mut c);
    assert_eq!(first.joins, 0, "no join without a signaling socket");
    c.handle_signaling_connected(t0, 0);
    let out = drain(&mut c);
    assert_eq!(out.joins, 1);
    assert!(out.events.contains(&IngestEvent::Joining {
        reason: JoinReason::Start,
        attempt: 1
    }));
    c.handle_join_result(t0, Ok(()));
    let offer_deadline = t0 + Duration::from_secs(6);
    assert_eq!(
        drain(&mut c).timeout,
        Some(offer_deadline),
        "waits 6 s for the offer"
    );
    c.handle_timeout(offer_deadline - Duration::from_millis(1));
    assert_eq!(drain(&mut c).joins, 0, "not before the offer timeout");
    c.handle_timeout(offer_deadline);
    let out = drain(&mut c);
    assert_eq!(out.joins, 1, "joins again at once");
    assert!(out.events.contains(&IngestEvent::Joining {
        reason: JoinReason::NoOffer,
        attempt: 2
    }));
}

#[test]
fn retryable_failures_back_off_exponentially_and_give_up_at_the_bound() {
    let t0 = Instant::now();
    let mut c = core(t0);
    c.handle_signaling_connected(t0, 0);
    let mut now = t0;
    let mut delays = Vec::new();
    for attempt in 1..=10u32 {
        let out = drain(&mut c);
        assert_eq!(out.joins, 1, "attempt {attempt}");
        c.handle_join_result(
            now,
            Err(failure(D::Throttled, "ClientLimitExceededException")),
        );
        let out = drain(&mut c);
        if attempt == 10 {
            let (reason, failed) = out.ended.expect("gives up after the 10th attempt");
            assert!(failed);
            assert!(reason.contains("gave up after 10 joins"), "{reason}");
            assert!(reason.contains("ClientLimitExceeded"), "{reason}");
            break;
        }
        let at = out.timeout.expect("a backoff deadline");
        delays.push(at - now);
        now = at;
        c.handle_timeout(now);
    }
    // Full jitter in [0.5, 1] of 1 s, 2 s, 4 s, ... capped at 16 s.
    for (n, delay) in delays.iter().enumerate() {
        let ceiling = Duration::from_secs(1 << n.min(4));
        assert!(
            *delay <= ceiling && *delay >= ceiling / 2,
            "delay {n}: {delay:?}"
        );
    }
}

#[test]
fn a_fatal_join_error_ends_at_once() {
    let t0 = Instant::now();
    let mut c = core(t0);
    c.handle_signaling_connected(t0, 0);
    drain(&mut c);
    c.handle_join_result(t0, Err(failure(D::AccessDenied, "AccessDeniedException")));
    let out = drain(&mut c);
    assert_eq!(out.ended, Some(("AccessDeniedException".into(), true)));
    assert!(out
        .events
        .contains(&IngestEvent::StateChanged(IngestState::Stopped)));
}

/// Which join failures are joined again and which end the ingestion, with what error: the
/// classification lives here, not in the driver.
#[test]
fn join_failures_are_retried_or_end_with_the_mapped_kind_and_their_cause() {
    for kind in [D::Throttled, D::Network, D::Service] {
        let t0 = Instant::now();
        let mut c = core(t0);
        c.handle_signaling_connected(t0, 0);
        drain(&mut c);
        c.handle_join_result(t0, Err(failure(kind, "try later")));
        let out = drain(&mut c);
        assert!(out.ended.is_none(), "{kind:?} is retried");
        assert!(
            out.events
                .contains(&IngestEvent::StateChanged(IngestState::BackingOff)),
            "{kind:?}: {:?}",
            out.events
        );
    }
    for (kind, expected) in [
        (D::StorageDisabled, ErrorKind::ChannelNotUsable),
        (D::ChannelNotFound, ErrorKind::ChannelNotUsable),
        (D::AccessDenied, ErrorKind::AccessDenied),
        (D::InvalidInput, ErrorKind::InvalidInput),
        (D::EndpointMissing, ErrorKind::GaveUp),
    ] {
        let t0 = Instant::now();
        let mut c = core(t0);
        c.handle_signaling_connected(t0, 0);
        drain(&mut c);
        c.handle_join_result(t0, Err(failure(kind, "the service says no")));
        let error = loop {
            match c.poll_output() {
                Output::Ended { error, .. } => break error.expect("a failure"),
                Output::Timeout(_) => panic!("{kind:?} must end the ingestion"),
                _ => {}
            }
        };
        assert_eq!(error.kind(), expected, "{kind:?}");
        assert_eq!(error.to_string(), "joining the storage session failed");
        assert_eq!(
            std::error::Error::source(&error).map(ToString::to_string),
            Some("the service says no".to_owned()),
            "the discovery error is the cause"
        );
    }
}

#[test]
fn a_signaling_drop_while_joining_waits_for_the_reconnect_which_says_why() {
    let t0 = Instant::now();
    let mut c = core(t0);
    c.handle_signaling_connected(t0, 0);
    drain(&mut c);
    c.handle_signaling_lost();
    c.handle_service_notice(JoinReason::GoAway);
    let out = drain(&mut c);
    assert_eq!(out.joins, 0);
    assert!(out
        .events
        .contains(&IngestEvent::StateChanged(IngestState::ConnectingSignaling)));
    // A late 200 for the old join changes nothing.
    c.handle_join_result(t0, Ok(()));
    assert_eq!(drain(&mut c).joins, 0);
    c.handle_signaling_connected(t0 + Duration::from_secs(1), 1);
    let out = drain(&mut c);
    assert_eq!(out.joins, 1);
    assert!(out.events.contains(&IngestEvent::Joining {
        reason: JoinReason::GoAway,
        attempt: 2
    }));
}

#[test]
fn an_offer_that_cannot_be_answered_ends_with_a_clear_reason() {
    let t0 = Instant::now();
    let mut c = core(t0);
    c.handle_signaling_connected(t0, 0);
    drain(&mut c);
    c.handle_offer(t0, "this is not SDP");
    let (reason, failed) = drain(&mut c).ended.expect("ended");
    assert!(failed);
    assert!(reason.contains("cannot be answered"), "{reason}");
}

/// Answers a str0m offer whose ufrag is replaced by `ufrag`, with the peer's candidate, then
/// runs the core for two simulated seconds: returns how it ended (if it did) and how many
/// datagrams (connectivity checks) it sent.
fn answer_with_remote_ufrag(ufrag: &str) -> (Option<String>, usize) {
    answer_edited_offer(|offer| {
        let theirs = offer
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
            .expect("a ufrag")
            .to_string();
        offer.replace(
            &format!("a=ice-ufrag:{theirs}"),
            &format!("a=ice-ufrag:{ufrag}"),
        )
    })
}

/// A core answers a storage peer's offer changed by `edit` and runs 2 s of simulated time:
/// why it ended, if it did, and how many datagrams it sent.
fn answer_edited_offer(edit: impl FnOnce(String) -> String) -> (Option<String>, usize) {
    let t0 = Instant::now();
    let mut c = core(t0);
    c.add_local_candidate(Candidate::host(CORE_ADDR.parse().unwrap(), "udp").unwrap());
    let (_peer, offer, peer_candidate) = Offerer::new(t0);
    let offer = edit(offer);
    c.handle_signaling_connected(t0, 0);
    c.handle_join_result(t0, Ok(()));
    c.handle_remote_candidate(&peer_candidate);
    c.handle_offer(t0, &offer);
    let mut datagrams = 0;
    let mut now = t0;
    while now < t0 + Duration::from_secs(2) {
        loop {
            match c.poll_output() {
                Output::Transmit { .. } => datagrams += 1,
                Output::Ended { reason, .. } => return (Some(reason), datagrams),
                Output::Timeout(_) => break,
                _ => {}
            }
        }
        now += Duration::from_millis(50);
        c.handle_timeout(now);
    }
    (None, datagrams)
}

#[test]
fn an_offer_whose_ice_ufrag_str0m_cannot_sign_is_refused_instead_of_panicking() {
    // str0m's ufrag is 16 characters, its STUN USERNAME at most 128 bytes: 111 + ':' + 16 fit.
    let (ended, checks) = answer_with_remote_ufrag(&"u".repeat(111));
    assert_eq!(ended, None, "the longest ufrag that fits is answered");
    assert!(checks > 0, "connectivity checks go out");
    // One more character and str0m panicked on its first check (found by the ingest_offer
    // fuzz target); now the offer is refused with the reason.
    let (ended, checks) = answer_with_remote_ufrag(&"u".repeat(112));
    let reason = ended.expect("refused");
    assert!(reason.contains("cannot be answered"), "{reason}");
    assert!(
        reason.contains("ice-ufrag is 112 characters long"),
        "{reason}"
    );
    assert!(reason.contains("at most 111"), "{reason}");
    assert_eq!(checks, 0);
}

#[test]
fn an_offer_that_gives_one_payload_type_two_configurations_is_refused_instead_of_panicking() {
    // The audio m-line maps the video's H.264 payload type to another H.264 profile: str0m
    // locked two of its codecs to that type and panicked ("Pt locked multiple times"; found
    // by the ingest_offer fuzz target).
    let (ended, checks) = answer_edited_offer(|offer| {
        kvs_test_support::sdp::with_the_video_payload_type_reused_in_audio(&offer)
    });
    let reason = ended.expect("refused");
    assert!(reason.contains("cannot be answered"), "{reason}");
    assert!(reason.contains("RFC 8843"), "{reason}");
    assert_eq!(checks, 0);
}

#[test]
fn an_ice_ufrag_outside_rfc_8839_is_refused_with_the_rule() {
    let (ended, _) = answer_with_remote_ufrag("abc");
    assert!(ended
        .expect("refused")
        .contains("RFC 8839 asks for 4 to 256"));
    let (ended, _) = answer_with_remote_ufrag("abc\u{fffd}d");
    assert!(ended.expect("refused").contains("not an ICE character"));
    let (ended, _) = answer_with_remote_ufrag("Ab+/9");
    assert_eq!(
        ended, None,
        "letters, digits, '+' and '/' are ICE characters"
    );
}

#[test]
fn candidates_before_the_offer_are_kept_and_unparsable_ones_reported() {
    let t0 = Instant::now();
    let mut c = core(t0);
    c.handle_signaling_connected(t0, 0);
    drain(&mut c);
    c.handle_remote_candidate("candidate:1 1 udp 2130706431 127.0.0.1 6000 typ host");
    c.handle_remote_candidate("a=candidate:2 1 udp 2130706431 127.0.0.1 6001 typ host");
    c.handle_remote_candidate("");
    assert_eq!(c.early_candidates.len(), 2);
    c.handle_remote_candidate("candidate:garbage");
    let out = drain(&mut c);
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, IngestEvent::Warning(w) if w.contains("does not parse"))));
    assert_eq!(c.early_candidates.len(), 2);
}

#[test]
fn media_written_before_streaming_is_dropped_and_counted() {
    let t0 = Instant::now();
    let mut c = core(t0);
    let aus = kvs_media::h264::access_units(kvs_media::sample::H264);
    c.write_video(t0, t0, picture(aus[0], Duration::ZERO));
    c.write_audio(t0, t0, Duration::ZERO, &[0xF8, 0xFF, 0xFE]);
    assert_eq!(c.stats().video.dropped_not_connected, 1);
    assert_eq!(c.stats().audio.dropped_not_connected, 1);
    assert_eq!(c.stats().video.frames_sent, 0);
    // The SPS was remembered for the answer's profile.
    assert_eq!(
        c.video.sps().and_then(media::profile_level_id),
        Some(0x42c01e)
    );
}

// ----- against a real str0m offerer, over an in-memory network -----

use str0m::media::MediaKind as Kind;

const CORE_ADDR: &str = "10.0.0.2:5000";
const PEER_ADDR: &str = "10.0.0.1:6000";

/// The storage peer's side: a str0m offerer like the service's (video received, audio both
/// ways), and what it received.
struct Offerer {
    rtc: Rtc,
    video_mid: Mid,
    video_frames: usize,
    keyframes: usize,
    audio_frames: usize,
}

impl Offerer {
    fn new(now: Instant) -> (Self, String, String) {
        let mut config = RtcConfig::new().clear_codecs();
        config
            .codec_config()
            .add_h264(102.into(), Some(103.into()), true, 0x42e01f);
        config.codec_config().enable_opus(true, false);
        let mut rtc = config.build(now);
        let candidate = Candidate::host(PEER_ADDR.parse().unwrap(), "udp").unwrap();
        let line = candidate.to_sdp_string();
        rtc.add_local_candidate(candidate);
        let mut api = rtc.sdp_api();
        let video_mid = api.add_media(Kind::Video, Direction::RecvOnly, None, None, None);
        api.add_media(Kind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let sdp = offer.to_sdp_string();
        let this = Self {
            rtc,
            video_mid,
            video_frames: 0,
            keyframes: 0,
            audio_frames: 0,
        };
        PENDING.with(|p| *p.borrow_mut() = Some(pending));
        (this, sdp, line)
    }
}

thread_local! {
    static PENDING: std::cell::RefCell<Option<str0m::change::SdpPendingOffer>> = const { std::cell::RefCell::new(None) };
}

/// Runs the core and the offerer against each other in simulated time until `until`,
/// dropping the core's RTP packets for which `lose` says so; writes the sample clip's video at
/// 25 fps once streaming.
struct Net {
    now: Instant,
    core: IngestCore,
    peer: Offerer,
    to_peer: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    rtp_sent: usize,
    rtp_dropped: usize,
}

impl Net {
    fn connect(t0: Instant) -> Self {
        let mut core = core(t0);
        core.add_local_candidate(Candidate::host(CORE_ADDR.parse().unwrap(), "udp").unwrap());
        let (mut peer, offer, peer_candidate) = Offerer::new(t0);
        core.handle_signaling_connected(t0, 0);
        core.handle_join_result(t0, Ok(()));
        // A candidate before the offer, as the storage session often sends it.
        core.handle_remote_candidate(&peer_candidate);
        core.handle_offer(t0, &offer);
        let mut answer = None;
        let mut our_candidates = Vec::new();
        loop {
            match core.poll_output() {
                Output::SendAnswer(sdp) => answer = Some(sdp),
                Output::SendCandidate { candidate, mid } => {
                    assert_eq!(
                        mid,
                        peer.video_mid.to_string(),
                        "candidates name the first m-line"
                    );
                    our_candidates.push(candidate)
                }
                Output::Timeout(_) => break,
                Output::Ended { reason, .. } => panic!("ended: {reason}"),
                _ => {}
            }
        }
        let answer =
            str0m::change::SdpAnswer::from_sdp_string(&answer.expect("an answer")).unwrap();
        let pending = PENDING.with(|p| p.borrow_mut().take()).unwrap();
        peer.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        for c in our_candidates {
            peer.rtc
                .add_remote_candidate(Candidate::from_sdp_string(&c).unwrap());
        }
        Self {
            now: t0,
            core,
            peer,
            to_peer: Vec::new(),
            rtp_sent: 0,
            rtp_dropped: 0,
        }
    }

    fn run(&mut self, until: Instant, lose: impl Fn(usize) -> bool) {
        let aus = kvs_media::h264::access_units(kvs_media::sample::H264);
        let mut next_frame = 0usize;
        let mut streaming_since = None;
        while self.now < until {
            // The core's outputs.
            let core_timeout = loop {
                match self.core.poll_output() {
                    Output::Transmit {
                        source,
                        destination,
                        contents,
                    } => {
                        let is_rtp = contents.first().is_some_and(|b| (128..192).contains(b))
                            && contents.get(1).is_some_and(|pt| !(192..=223).contains(pt));
                        if is_rtp && streaming_since.is_some() {
                            self.rtp_sent += 1;
                            if lose(self.rtp_sent) {
                                self.rtp_dropped += 1;
                                continue;
                            }
                        }
                        self.to_peer.push((source, destination, contents));
                    }
                    Output::Timeout(at) => break at,
                    Output::Ended { reason, .. } => panic!("ended: {reason}"),
                    _ => {}
                }
            };
            for (source, destination, contents) in self.to_peer.drain(..) {
                let input = str0m::Input::Receive(
                    self.now,
                    str0m::net::Receive {
                        proto: str0m::net::Protocol::Udp,
                        source,
                        destination,
                        contents: contents.as_slice().try_into().unwrap(),
                    },
                );
                self.peer.rtc.handle_input(input).unwrap();
            }
            // The offerer's outputs.
            let peer_timeout = loop {
                match self.peer.rtc.poll_output().unwrap() {
                    str0m::Output::Timeout(at) => break at,
                    str0m::Output::Transmit(t) => {
                        self.core
                            .handle_datagram(self.now, t.source, t.destination, &t.contents)
                    }
                    str0m::Output::Event(str0m::Event::MediaData(d)) => {
                        if d.mid == self.peer.video_mid {
                            self.peer.video_frames += 1;
                            self.peer.keyframes +=
                                usize::from(kvs_media::h264::is_keyframe(&d.data));
                        } else {
                            self.peer.audio_frames += 1;
                        }
                    }
                    str0m::Output::Event(_) => {}
                }
            };
            if self.core.is_streaming() {
                let since = *streaming_since.get_or_insert(self.now);
                let due = since + Duration::from_millis(40 * next_frame as u64);
                if next_frame < aus.len() && self.now >= due {
                    let time = Duration::from_millis(40 * next_frame as u64);
                    self.core
                        .write_video(self.now, self.now, picture(aus[next_frame], time));
                    self.core
                        .write_audio(self.now, self.now, time, &[0xF8, 0xFF, 0xFE]);
                    next_frame += 1;
                    continue;
                }
            }
            // Simulated time: jump to the earliest deadline (at most 5 ms, for the media clock).
            let next = core_timeout
                .min(peer_timeout)
                .min(self.now + Duration::from_millis(5));
            self.now = next.max(self.now + Duration::from_micros(100));
            self.core.handle_timeout(self.now);
            self.peer
                .rtc
                .handle_input(str0m::Input::Timeout(self.now))
                .unwrap();
        }
    }
}

/// str0m refuses a write while more than 512 earlier ones wait to be packetized, which it does
/// on its timeouts: a burst (a push source faster than real time, a sender catching up) written
/// with only `poll_output` in between must still be taken whole. (The driver saw this as 86 %
/// of an unpaced source's frames "not sent".)
#[test]
fn a_burst_written_with_only_polls_in_between_is_taken_whole() {
    let t0 = Instant::now();
    let mut net = Net::connect(t0);
    net.run(t0 + Duration::from_secs(2), |_| false);
    assert!(net.core.is_streaming());
    let sent_before = net.core.stats().audio.frames_sent;
    let mut warnings = Vec::new();
    for i in 0..600u32 {
        let time = Duration::from_secs(10) + Duration::from_millis(20) * i;
        net.core
            .write_audio(net.now, net.now, time, &[0xF8, 0xFF, 0xFE]);
        loop {
            match net.core.poll_output() {
                Output::Event(IngestEvent::Warning(w)) => warnings.push(w),
                Output::Timeout(_) => break,
                Output::Ended { reason, .. } => panic!("ended: {reason}"),
                _ => {}
            }
        }
    }
    assert!(
        warnings.is_empty(),
        "{} warnings, first: {:?}",
        warnings.len(),
        warnings.first()
    );
    assert_eq!(net.core.stats().audio.frames_sent - sent_before, 600);
}

#[test]
fn against_a_str0m_offerer_every_frame_arrives_starting_at_a_keyframe() {
    let t0 = Instant::now();
    let mut net = Net::connect(t0);
    net.run(t0 + Duration::from_secs(5), |_| false);
    assert!(net.core.is_streaming());
    assert_eq!(net.core.stats().video.frames_sent, 75);
    assert_eq!(net.peer.video_frames, 75, "every access unit arrives");
    assert_eq!(net.peer.keyframes, 3);
    assert_eq!(net.peer.audio_frames, 75);
    assert_eq!(net.core.stats().sessions_connected, 1);
}

#[test]
fn lost_packets_are_asked_for_again_and_resent() {
    let t0 = Instant::now();
    let mut net = Net::connect(t0);
    // Every 10th RTP packet is lost on its first trip.
    net.run(t0 + Duration::from_secs(6), |n| n % 10 == 0);
    eprintln!(
        "dropped {} of {} RTP packets; {:?}",
        net.rtp_dropped,
        net.rtp_sent,
        net.core.stats().video
    );
    assert!(
        net.rtp_dropped >= 5,
        "the network dropped {} packets",
        net.rtp_dropped
    );
    let stats = net.core.stats();
    assert!(
        stats.video.nacks_received >= 1,
        "the receiver sent NACKs: {stats:?}"
    );
    assert_eq!(
        net.peer.video_frames, 75,
        "retransmissions filled every gap"
    );
    assert!(stats.rtt.is_some(), "RTT measured from RTCP: {stats:?}");
}

#[test]
fn a_session_is_renewed_at_the_duration_limit() {
    let t0 = Instant::now();
    let mut net = Net::connect(t0);
    net.run(t0 + Duration::from_secs(1), |_| false);
    assert!(net.core.is_streaming());
    let connected_at = net.now;
    // Nothing happens before the refresh time; at it, a join for a fresh session.
    let refresh = Timings::default().session_refresh;
    net.core
        .handle_timeout(connected_at + refresh - Duration::from_secs(60));
    assert_eq!(drain(&mut net.core).joins, 0);
    net.core.handle_timeout(connected_at + refresh);
    let out = drain(&mut net.core);
    assert_eq!(out.joins, 1);
    assert!(out.events.iter().any(|e| matches!(
        e,
        IngestEvent::Joining {
            reason: JoinReason::SessionLimit,
            ..
        }
    )));
    assert_eq!(net.core.stats().rejoins, 1);
    assert!(
        net.core.is_streaming(),
        "the old session carries media until the new offer"
    );
}

/// `stop` right after a burst of writes (the sources ended; the last frames were released to
/// the core in the same wake-up): every frame written goes out before the DTLS close, and the
/// storage peer sees the close, not a silent device.
#[test]
fn stop_sends_every_frame_written_then_the_close() {
    let t0 = Instant::now();
    let mut net = Net::connect(t0);
    net.run(t0 + Duration::from_secs(2), |_| false);
    assert!(net.core.is_streaming());
    let aus = kvs_media::h264::access_units(kvs_media::sample::H264);
    let written = net.core.stats().video.frames_sent as usize;
    assert!(written < aus.len() - 10, "{written} written in 2 s");
    for (i, au) in aus.iter().enumerate().skip(written) {
        let time = Duration::from_millis(40 * i as u64);
        net.core.write_video(net.now, net.now, picture(au, time));
        net.core
            .write_audio(net.now, net.now, time, &[0xF8, 0xFF, 0xFE]);
    }
    net.core.stop("the media sources ended");
    let mut ended = false;
    while !ended {
        match net.core.poll_output() {
            Output::Transmit {
                source,
                destination,
                contents,
            } => {
                let input = str0m::Input::Receive(
                    net.now,
                    str0m::net::Receive {
                        proto: str0m::net::Protocol::Udp,
                        source,
                        destination,
                        contents: contents.as_slice().try_into().unwrap(),
                    },
                );
                net.peer.rtc.handle_input(input).unwrap();
            }
            Output::Ended { .. } => ended = true,
            Output::Timeout(at) => panic!("a timeout ({at:?}) after stop, before the end"),
            _ => {}
        }
    }
    let mut closed = false;
    while let Ok(output) = net.peer.rtc.poll_output() {
        match output {
            str0m::Output::Timeout(_) => break,
            str0m::Output::Event(str0m::Event::MediaData(d)) => {
                if d.mid == net.peer.video_mid {
                    net.peer.video_frames += 1;
                } else {
                    net.peer.audio_frames += 1;
                }
            }
            str0m::Output::Event(str0m::Event::Closed) => closed = true,
            _ => {}
        }
    }
    assert_eq!(net.core.stats().video.frames_sent as usize, aus.len());
    assert_eq!(
        net.peer.video_frames,
        aus.len(),
        "every frame written arrived"
    );
    assert!(closed, "the storage peer saw the DTLS close");
}

/// `finish` after the last frame keeps the session up long enough for the storage peer's
/// NACKs: packets lost among the last burst are sent again, every frame arrives, and only then
/// the DTLS close goes out. (`stop` at that point lost them: nothing was left to answer.)
#[test]
fn finish_answers_nacks_for_the_last_packets_then_closes() {
    let t0 = Instant::now();
    let mut net = Net::connect(t0);
    net.run(t0 + Duration::from_secs(2), |_| false);
    let aus = kvs_media::h264::access_units(kvs_media::sample::H264);
    let written = net.core.stats().video.frames_sent as usize;
    for (i, au) in aus.iter().enumerate().skip(written) {
        let time = Duration::from_millis(40 * i as u64);
        net.core.write_video(net.now, net.now, picture(au, time));
        net.core
            .write_audio(net.now, net.now, time, &[0xF8, 0xFF, 0xFE]);
    }
    net.core.finish(net.now, "the media sources ended");
    let finished_at = net.now;
    let deliver =
        |net: &mut Net, (source, destination, contents): (SocketAddr, SocketAddr, Vec<u8>)| {
            let input = str0m::Input::Receive(
                net.now,
                str0m::net::Receive {
                    proto: str0m::net::Protocol::Udp,
                    source,
                    destination,
                    contents: contents.as_slice().try_into().unwrap(),
                },
            );
            net.peer.rtc.handle_input(input).unwrap();
        };
    let is_rtp = |contents: &[u8]| {
        contents.first().is_some_and(|b| (128..192).contains(b))
            && contents.get(1).is_some_and(|pt| !(192..=223).contains(pt))
    };
    let (mut ended_at, mut closed, mut first_round, mut dropped) = (None, false, true, 0);
    while ended_at.is_none() && net.now < finished_at + Duration::from_secs(3) {
        let mut sent = Vec::new();
        let core_timeout = loop {
            match net.core.poll_output() {
                Output::Transmit {
                    source,
                    destination,
                    contents,
                } => sent.push((source, destination, contents)),
                Output::Timeout(at) => break at,
                Output::Ended { .. } => {
                    ended_at = Some(net.now);
                    break net.now;
                }
                _ => {}
            }
        };
        // The burst loses every 7th RTP packet, but never its last three (a loss at the very
        // end leaves no later packet to reveal it, in any stack).
        let rtp_total = sent.iter().filter(|(_, _, c)| is_rtp(c)).count();
        let mut rtp_index = 0;
        for packet in sent {
            if first_round && is_rtp(&packet.2) {
                rtp_index += 1;
                if rtp_index % 7 == 3 && rtp_index + 3 <= rtp_total {
                    dropped += 1;
                    continue;
                }
            }
            deliver(&mut net, packet);
        }
        first_round = false;
        let peer_timeout = loop {
            match net.peer.rtc.poll_output().unwrap() {
                str0m::Output::Timeout(at) => break at,
                str0m::Output::Transmit(t) => {
                    net.core
                        .handle_datagram(net.now, t.source, t.destination, &t.contents)
                }
                str0m::Output::Event(str0m::Event::MediaData(d)) => {
                    if d.mid == net.peer.video_mid {
                        net.peer.video_frames += 1;
                    }
                }
                str0m::Output::Event(str0m::Event::Closed) => closed = true,
                str0m::Output::Event(_) => {}
            }
        };
        if ended_at.is_some() {
            break;
        }
        let next = core_timeout
            .min(peer_timeout)
            .min(net.now + Duration::from_millis(5));
        net.now = next.max(net.now + Duration::from_micros(100));
        net.core.handle_timeout(net.now);
        net.peer
            .rtc
            .handle_input(str0m::Input::Timeout(net.now))
            .unwrap();
    }
    // What the close sent reaches the peer.
    while let Ok(output) = net.peer.rtc.poll_output() {
        match output {
            str0m::Output::Timeout(_) => break,
            str0m::Output::Event(str0m::Event::MediaData(d)) if d.mid == net.peer.video_mid => {
                net.peer.video_frames += 1
            }
            str0m::Output::Event(str0m::Event::Closed) => closed = true,
            _ => {}
        }
    }
    let ended_at = ended_at.expect("the core ended");
    assert!(dropped >= 3, "the burst lost {dropped} packets");
    assert_eq!(
        net.peer.video_frames,
        aus.len(),
        "every frame arrived, resent ones too"
    );
    assert!(closed, "the storage peer saw the DTLS close");
    let lingered = ended_at - finished_at;
    assert!(
        (FINISH_LINGER_MIN..=FINISH_LINGER_MAX + Duration::from_millis(10)).contains(&lingered),
        "stopped {lingered:?} after the last frame"
    );
}

/// Building the answering peer takes longer than the rest of the answer: it is made while the
/// offer is on its way (when the join is accepted) and answers the offer, unless the source's
/// H.264 profile became known in between (then the answer is made for it).
#[test]
fn the_answering_peer_is_made_when_the_join_is_accepted() {
    let answer_ufrag = |core: &mut IngestCore| {
        let (_peer, offer, _) = Offerer::new(core.now);
        core.handle_offer(core.now, &offer);
        let answer = std::iter::from_fn(|| match core.poll_output() {
            Output::Timeout(_) => None,
            output => Some(output),
        })
        .find_map(|output| match output {
            Output::SendAnswer(sdp) => Some(sdp),
            _ => None,
        })
        .expect("an answer");
        let ufrag = answer
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
            .expect("the answer's ufrag")
            .to_owned();
        (ufrag, answer)
    };
    let t0 = Instant::now();
    for profile_known_after_the_join in [false, true] {
        let mut core = core(t0);
        core.add_local_candidate(Candidate::host(CORE_ADDR.parse().unwrap(), "udp").unwrap());
        core.handle_signaling_connected(t0, 0);
        assert!(core.answerer.is_none());
        core.handle_join_result(t0, Ok(()));
        let prepared = core
            .answerer
            .as_mut()
            .expect("made when the join is accepted");
        let prepared_ufrag = prepared.ufrag();
        if profile_known_after_the_join {
            // The sample clip's first picture carries its SPS (constrained baseline).
            let aus = kvs_media::h264::access_units(kvs_media::sample::H264);
            core.write_video(t0, t0, picture(aus[0], Duration::ZERO));
        }
        let (ufrag, answer) = answer_ufrag(&mut core);
        assert!(core.answerer.is_none(), "used once");
        if profile_known_after_the_join {
            assert_ne!(
                ufrag, prepared_ufrag,
                "a peer made for the source's profile"
            );
            let h264 = answer.lines().filter(|l| l.contains(" H264/90000")).count();
            assert_eq!(h264, 1, "only the source's profile:\n{answer}");
        } else {
            assert_eq!(ufrag, prepared_ufrag, "the prepared peer answered");
        }
    }
}
