//! The core driven with simulated time: no sockets, no sleeps, no clock.

use std::time::{Duration, Instant};

use super::*;

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
            Output::Ended { reason, failed } => {
                out.ended = Some((reason, failed));
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
    c.handle_join_result(t0, JoinOutcome::Accepted);
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
            JoinOutcome::Retryable("ClientLimitExceededException".into()),
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
    c.handle_join_result(t0, JoinOutcome::Fatal("AccessDeniedException".into()));
    let out = drain(&mut c);
    assert_eq!(out.ended, Some(("AccessDeniedException".into(), true)));
    assert!(out
        .events
        .contains(&IngestEvent::StateChanged(IngestState::Stopped)));
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
    c.handle_join_result(t0, JoinOutcome::Accepted);
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
    c.write_video(t0, Duration::ZERO, aus[0]);
    c.write_audio(t0, Duration::ZERO, &[0xF8, 0xFF, 0xFE]);
    assert_eq!(c.stats().video.dropped_not_connected, 1);
    assert_eq!(c.stats().audio.dropped_not_connected, 1);
    assert_eq!(c.stats().video.frames_sent, 0);
    // The SPS was remembered for the answer's profile.
    assert_eq!(
        c.video.sps().and_then(media::profile_level_id),
        Some(0x42c01e)
    );
}
