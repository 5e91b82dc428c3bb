//! Faults the real service produces, injected by the emulator: each is recovered from and
//! media resumes, starting at a keyframe, in a new storage session.

// End-to-end tests and benches run in real time (clippy.toml bans the clock in the sans-IO parts).
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use kvs_test_support::{IngestSetup as Setup, WAIT};
use kvs_webrtc_ingest::{
    AudioSource, IngestEvent, IngestSession, JoinReason, Timings, VideoSource,
};
use serde_json::json;

async fn until(session: &mut IngestSession, what: &str, done: impl Fn(&IngestEvent) -> bool) {
    tokio::time::timeout(WAIT, async {
        while let Some(event) = session.next_event().await {
            if done(&event) {
                return;
            }
        }
        panic!("the session ended before {what}");
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

async fn start(setup: &Setup, timings: Timings) -> IngestSession {
    start_with(setup, setup.emulator.ingest_config().timings(timings)).await
}

async fn start_with(setup: &Setup, config: kvs_webrtc_ingest::ConfigBuilder) -> IngestSession {
    kvs_test_support::ingest_client(config)
        .ingest()
        .channel(&setup.channel)
        .video(VideoSource::annex_b_file(setup.file("clip.h264")).looping(true))
        .audio(AudioSource::ogg_opus_file(setup.file("clip.opus")).looping(true))
        .send()
        .await
        .expect("ingestion starts")
}

/// The newest storage session, newer than session `after`, receives video that starts at a
/// keyframe; returns its id.
async fn new_session_receives_video(setup: &Setup, after: u64) -> u64 {
    let newest = |s: &[kvs_emulator::SessionInfo]| s.iter().max_by_key(|s| s.id).cloned();
    let sessions = setup
        .emulator
        .wait_for_sessions("video in a new session", |s| {
            newest(s).is_some_and(|s| {
                s.id > after && s.media.video.frames >= 10 && s.media.audio.frames >= 10
            })
        })
        .await;
    let session = newest(&sessions).expect("a session");
    let media = &session.media;
    assert!(media.video.keyframes >= 1, "{media:?}");
    assert!(
        media.violations.is_empty(),
        "starts at a keyframe with SPS/PPS: {:?}",
        media.violations
    );
    session.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_offer_leads_to_a_second_join() {
    let setup = Setup::start("no-offer-cam").await;
    setup
        .emulator
        .inject_fault(json!({ "channel": "no-offer-cam", "fault": "DROP_NEXT_OFFER" }));
    let mut timings = Timings::default();
    timings.offer_timeout = Duration::from_millis(800);
    let mut session = start(&setup, timings).await;
    until(&mut session, "a re-join for the missing offer", |e| {
        matches!(
            e,
            IngestEvent::Joining {
                reason: JoinReason::NoOffer,
                attempt: 2
            }
        )
    })
    .await;
    until(&mut session, "connected", |e| {
        matches!(e, IngestEvent::Connected { .. })
    })
    .await;
    new_session_receives_video(&setup, 1).await;
    let stats = session.stop().await.expect("clean stop");
    assert_eq!(stats.joins, 2);
    assert_eq!(
        setup.emulator.handle.calls().get("joinStorageSession"),
        Some(&2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_away_is_recovered_within_5_s() {
    recovers_from(
        "go-away-cam",
        json!({ "channel": "go-away-cam", "fault": "GO_AWAY" }),
        |r| *r == JoinReason::GoAway,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_is_recovered_within_5_s() {
    recovers_from(
        "dropped-cam",
        json!({ "channel": "dropped-cam", "fault": "CLOSE_SOCKET" }),
        |r| *r == JoinReason::SignalingReconnected,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_answer_and_a_throttled_join_are_retried() {
    let setup = Setup::start("retry-cam").await;
    for fault in ["REJECT_NEXT_ANSWER", "CLIENT_LIMIT_EXCEEDED"] {
        setup
            .emulator
            .inject_fault(json!({ "channel": "retry-cam", "fault": fault }));
    }
    let mut timings = Timings::default();
    timings.join_backoff = kvs_webrtc_signaling::Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(400),
    };
    let mut session = start(&setup, timings).await;
    until(&mut session, "connected", |e| {
        matches!(e, IngestEvent::Connected { .. })
    })
    .await;
    let stats = session.stats();
    assert!(stats.joins >= 2, "{stats:?}");
    let sessions = setup.emulator.sessions();
    assert!(
        sessions.iter().any(|s| s.answer_rejected.is_some()),
        "the emulator rejected one answer: {sessions:#?}"
    );
    session.stop().await.expect("clean stop");
}

/// Inject `fault` while streaming; the session must join again for a reason `expected` accepts
/// and send video again (from a keyframe) within `bound` of the injection.
async fn recovers_from(
    channel: &str,
    fault: serde_json::Value,
    expected: fn(&JoinReason) -> bool,
    bound: Duration,
) -> kvs_webrtc_ingest::Stats {
    let setup = Setup::start(channel).await;
    let mut session = start(&setup, Timings::default()).await;
    until(&mut session, "connected", |e| {
        matches!(e, IngestEvent::Connected { .. })
    })
    .await;
    let first = new_session_receives_video(&setup, 0).await;
    let injected = std::time::Instant::now();
    setup
        .emulator
        .handle
        .inject_fault(fault)
        .expect("fault accepted");
    until(
        &mut session,
        "the re-join",
        |e| matches!(e, IngestEvent::Joining { reason, .. } if expected(reason)),
    )
    .await;
    until(&mut session, "video again", |e| {
        matches!(
            e,
            IngestEvent::FirstFrameSent(kvs_webrtc_ingest::Track::Video)
        )
    })
    .await;
    let resumed = injected.elapsed();
    eprintln!(
        "{channel}: video resumed {} ms after the fault",
        resumed.as_millis()
    );
    assert!(
        resumed < bound,
        "video resumed {resumed:?} after the fault (bound {bound:?})"
    );
    new_session_receives_video(&setup, first).await;
    let stats = session.stop().await.expect("clean stop");
    assert!(stats.rejoins >= 1, "{stats:?}");
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_ice_server_is_recovered_within_5_s() {
    let stats = recovers_from(
        "ice-cam",
        json!({ "channel": "ice-cam", "fault": "RECONNECT_ICE_SERVER" }),
        |r| *r == JoinReason::ReconnectIceServer,
        Duration::from_secs(5),
    )
    .await;
    // The refreshed ICE servers came with new TURN credentials: a second allocation (on the
    // emulator's TURN server) next to the first.
    assert_eq!(
        (stats.relay_allocations, stats.relay_failures),
        (2, 0),
        "{stats:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_socket_is_noticed_and_recovered() {
    // Noticing takes the keep-alive (1 s ping + 1 s silence); then 5 s for the rest.
    recovers_from(
        "frozen-cam",
        json!({ "channel": "frozen-cam", "fault": "FREEZE_SOCKET" }),
        |r| *r == JoinReason::SignalingReconnected,
        Duration::from_secs(7),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_join_replaces_the_session_and_media_moves_to_it() {
    let setup = Setup::start("replaced-cam").await;
    let mut session = start(&setup, Timings::default()).await;
    until(&mut session, "connected", |e| {
        matches!(e, IngestEvent::Connected { .. })
    })
    .await;
    let first = new_session_receives_video(&setup, 0).await;
    // Another join for the channel (as a second device or a retry would make): its offer
    // arrives on our socket and replaces the session.
    let sdk_config = setup.emulator.sdk_config();
    kvs_webrtc_discovery::Client::new(&sdk_config)
        .join_storage_session()
        .channel("replaced-cam")
        .send()
        .await
        .expect("joined");
    until(&mut session, "the replacing offer", |e| {
        matches!(
            e,
            IngestEvent::OfferAnswered {
                replaced_session: true
            }
        )
    })
    .await;
    until(&mut session, "connected to the new session", |e| {
        matches!(e, IngestEvent::Connected { .. })
    })
    .await;
    new_session_receives_video(&setup, first).await;
    session.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_before_the_offer_and_a_late_offer_still_connect() {
    let setup = Setup::start("late-cam").await;
    setup
        .emulator
        .inject_fault(json!({ "channel": "late-cam", "fault": "CANDIDATES_BEFORE_OFFER" }));
    // The offer comes 1.5 s late, after our 1 s offer timeout: we join again, answer the late
    // offer, and the second join's offer replaces it.
    setup.emulator.inject_fault(
        json!({ "channel": "late-cam", "fault": "DELAY_NEXT_OFFER", "delayMs": 1500 }),
    );
    let mut timings = Timings::default();
    timings.offer_timeout = Duration::from_secs(1);
    let mut session = start(&setup, timings).await;
    until(&mut session, "connected", |e| {
        matches!(e, IngestEvent::Connected { .. })
    })
    .await;
    new_session_receives_video(&setup, 0).await;
    let stats = session.stop().await.expect("clean stop");
    assert!(
        stats.joins >= 2,
        "the missing offer led to a second join: {stats:?}"
    );
    let sessions = setup.emulator.sessions();
    assert!(
        sessions.iter().any(|s| s.candidates_received > 0),
        "{sessions:#?}"
    );
}

/// An application that never calls `next_event` for 60 s (with two GO_AWAYs in between):
/// media keeps flowing in every ten seconds of it, nothing is dropped as late, the sessions
/// are re-joined, the queue never holds more than its capacity, and once the application
/// reads, the loss is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_that_never_reads_events_never_holds_up_media() {
    use std::time::Instant;
    const CAPACITY: usize = 4;
    let setup = Setup::start("unread-events-cam").await;
    let mut session =
        start_with(&setup, setup.emulator.ingest_config().event_queue(CAPACITY)).await;
    let started = Instant::now();
    let frames = |setup: &Setup| -> u64 {
        setup
            .emulator
            .sessions()
            .iter()
            .map(|s| s.media.video.frames)
            .sum()
    };
    let mut before = 0;
    for window in 1..=6u32 {
        if window == 2 || window == 4 {
            setup
                .emulator
                .inject_fault(json!({ "channel": "unread-events-cam", "fault": "GO_AWAY" }));
        }
        // Ten seconds pass with nobody reading the events.
        tokio::time::sleep_until((started + Duration::from_secs(10) * window).into()).await;
        let now = frames(&setup);
        // 25 fps: 250 frames in ten seconds, less a re-join's gap.
        assert!(
            now - before >= 200,
            "only {} frames in window {window}",
            now - before
        );
        before = now;
    }
    let stats = session.stats();
    assert_eq!(stats.video.dropped_late, 0, "{stats:?}");
    assert_eq!(stats.audio.dropped_late, 0, "{stats:?}");
    assert!(stats.rejoins >= 2, "{stats:?}");
    // The queue held at most its capacity; the loss report follows.
    let mut queued = Vec::new();
    let lost = tokio::time::timeout(WAIT, async {
        while let Some(event) = session.next_event().await {
            if let IngestEvent::EventsLost { count } = event {
                return count;
            }
            queued.push(event);
        }
        panic!("no EventsLost; read {queued:?}")
    })
    .await
    .expect("a loss report");
    assert!(queued.len() <= CAPACITY, "{queued:?}");
    assert!(lost >= 10, "{lost} events lost");
    session.stop().await.expect("stops cleanly");
}
