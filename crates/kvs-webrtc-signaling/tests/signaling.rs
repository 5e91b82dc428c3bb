//! The signaling client against kvs-emulator over real TLS WebSockets: presigned connect as
//! master and viewer, the storage offer without a sender, STATUS_RESPONSE, wrong credentials,
//! GO_AWAY, RECONNECT_ICE_SERVER, a dropped socket, giving up, an unknown frame, local size
//! and rate limits, and close.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use kvs_test_support::{TestEmulator, WAIT};
use kvs_webrtc_discovery::Role;
use kvs_webrtc_signaling::{
    Action, Backoff, Client, ConnectionState, ErrorKind, Event, IceCandidate, Outgoing,
    SignalingConnection, SignalingMessage,
};
use serde_json::json;

struct Setup {
    emulator: TestEmulator,
    discovery: kvs_webrtc_discovery::Client,
    signaling: Client,
}

async fn start() -> Setup {
    start_with(|builder| builder).await
}

async fn start_with(
    configure: impl FnOnce(
        kvs_webrtc_signaling::config::Builder,
    ) -> kvs_webrtc_signaling::config::Builder,
) -> Setup {
    setup_over(TestEmulator::start().await, configure)
}

/// The discovery and signaling clients over `emulator`.
fn setup_over(
    emulator: TestEmulator,
    configure: impl FnOnce(
        kvs_webrtc_signaling::config::Builder,
    ) -> kvs_webrtc_signaling::config::Builder,
) -> Setup {
    let discovery = emulator.discovery();
    let signaling = signaling_client(&emulator, discovery.clone(), configure);
    Setup {
        emulator,
        discovery,
        signaling,
    }
}

/// A signaling client that trusts the emulator and reconnects quickly (50 ms to 400 ms).
fn signaling_client(
    emulator: &TestEmulator,
    discovery: kvs_webrtc_discovery::Client,
    configure: impl FnOnce(
        kvs_webrtc_signaling::config::Builder,
    ) -> kvs_webrtc_signaling::config::Builder,
) -> Client {
    let builder = emulator.signaling_config(discovery).backoff(Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
    });
    Client::from_conf(configure(builder).build().unwrap())
}

impl Setup {
    fn calls(&self, operation: &str) -> u64 {
        self.emulator.calls(operation)
    }

    fn fault(&self, channel: &str, fault: &str) {
        self.emulator
            .inject_fault(json!({ "channel": channel, "fault": fault }));
    }

    async fn master(&self, channel: &str) -> SignalingConnection {
        let mut connection = self
            .signaling
            .connect()
            .channel(channel)
            .send()
            .await
            .unwrap();
        let first = next_event(&mut connection, "connected").await;
        assert!(
            matches!(
                first,
                Event::StateChanged(ConnectionState::Connected { reconnects: 0 })
            ),
            "{first:?}"
        );
        connection
    }

    async fn join(&self, channel: &str) {
        self.discovery
            .join_storage_session()
            .channel(channel)
            .send()
            .await
            .unwrap();
    }
}

async fn next_event(connection: &mut SignalingConnection, waiting_for: &str) -> Event {
    tokio::time::timeout(WAIT, connection.next_event())
        .await
        .unwrap_or_else(|_| panic!("no event while waiting for {waiting_for}"))
        .unwrap_or_else(|| panic!("connection ended while waiting for {waiting_for}"))
}

/// Read events until `pick` returns something; the skipped events are returned too.
async fn wait_for<T>(
    connection: &mut SignalingConnection,
    waiting_for: &str,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> (T, Vec<Event>) {
    let mut skipped = Vec::new();
    loop {
        let event = next_event(connection, waiting_for).await;
        if let Some(found) = pick(&event) {
            return (found, skipped);
        }
        skipped.push(event);
    }
}

async fn wait_for_offer(connection: &mut SignalingConnection) -> (Option<String>, String) {
    wait_for(connection, "the storage offer", |event| match event {
        Event::Message(SignalingMessage::Offer {
            sender,
            description,
        }) => Some((sender.clone(), description.sdp.clone())),
        _ => None,
    })
    .await
    .0
}

/// Why the first reconnect attempt among `events` happened.
fn first_reconnect_reason(events: &[Event]) -> String {
    events
        .iter()
        .find_map(|e| match e {
            Event::StateChanged(ConnectionState::Reconnecting {
                attempt: 1, reason, ..
            }) => Some(reason.clone()),
            _ => None,
        })
        .expect("a first reconnect attempt")
}

fn is_connected(event: &Event, expected_reconnects: u32) -> bool {
    matches!(event, Event::StateChanged(ConnectionState::Connected { reconnects }) if *reconnects == expected_reconnects)
}

#[tokio::test]
async fn master_receives_the_storage_offer_and_rejections_carry_the_correlation_id() {
    let setup = start().await;
    setup.emulator.create_storage_channel("cam");
    let mut connection = setup.master("cam").await;
    assert_eq!(setup.calls("connectAsMaster"), 1);

    setup.join("cam").await;
    let (sender, sdp) = wait_for_offer(&mut connection).await;
    assert_eq!(sender, None, "the storage session sends no senderClientId");
    assert!(sdp.contains("m=video") && sdp.contains("H264"), "{sdp}");

    // An answer the storage peer cannot use comes back as a rejection with our id.
    let id = connection
        .sender()
        .send_answer("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n")
        .await
        .unwrap();
    let (rejection, _) = wait_for(&mut connection, "the rejection", |event| match event {
        Event::Rejected(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!(rejection.correlation_id, id);
    assert_eq!(rejection.action, Some(Action::SdpAnswer));
    assert_eq!(
        rejection.status.error_type.as_deref(),
        Some("InvalidArgumentException")
    );
    assert_eq!(rejection.status.status_code, Some(400));
    connection.close().await;
}

#[tokio::test]
async fn a_viewer_connects_with_its_client_id_and_gets_its_own_offer() {
    let setup = start().await;
    setup.emulator.create_storage_channel("cam-v");
    let _master = setup.master("cam-v").await;
    setup.join("cam-v").await;

    let mut viewer = setup
        .signaling
        .connect()
        .channel("cam-v")
        .role(Role::Viewer)
        .client_id("viewer-1")
        .send()
        .await
        .unwrap();
    assert!(is_connected(&next_event(&mut viewer, "connected").await, 0));
    assert_eq!(setup.calls("connectAsViewer"), 1);
    let connections = setup.emulator.handle.connections().to_string();
    assert!(connections.contains("viewer-1"), "{connections}");

    setup
        .discovery
        .join_storage_session_as_viewer()
        .channel("cam-v")
        .client_id("viewer-1")
        .send()
        .await
        .unwrap();
    let (sender, _) = wait_for_offer(&mut viewer).await;
    assert_eq!(sender, None);
}

#[tokio::test]
async fn bad_input_is_refused_before_connecting() {
    let setup = start().await;
    let viewer_without_id = setup.signaling.connect().channel("cam").role(Role::Viewer);
    let err = viewer_without_id.send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let bad_id = setup.signaling.connect().channel("cam").client_id("AWS_x");
    assert_eq!(
        bad_id.send().await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let err = setup.signaling.connect().send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(setup.emulator.handle.calls().is_empty());
}

/// Hands out the right secret until `wrong` is set.
#[derive(Debug)]
struct SwitchableCredentials {
    right: Credentials,
    wrong: Arc<AtomicBool>,
}

impl ProvideCredentials for SwitchableCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let credentials = if self.wrong.load(Ordering::SeqCst) {
            Credentials::new(self.right.access_key_id(), "wrong-secret", None, None, "t")
        } else {
            self.right.clone()
        };
        future::ProvideCredentials::ready(Ok(credentials))
    }
}

#[tokio::test]
async fn wrong_credentials_are_refused_at_the_upgrade() {
    let setup = start().await;
    setup.emulator.create_storage_channel("cam-creds");
    let key = setup.emulator.handle.access_key();
    let wrong = Arc::new(AtomicBool::new(false));
    let provider = SwitchableCredentials {
        right: Credentials::new(&key.access_key_id, &key.secret_access_key, None, None, "t"),
        wrong: wrong.clone(),
    };
    let sdk_config = setup
        .emulator
        .sdk_config()
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build();
    let discovery = kvs_webrtc_discovery::Client::new(&sdk_config);
    // Endpoints are found with the right key; then the key goes bad.
    discovery
        .discover()
        .channel("cam-creds")
        .send()
        .await
        .unwrap();
    wrong.store(true, Ordering::SeqCst);

    let signaling = signaling_client(&setup.emulator, discovery, |b| b);
    let err = signaling
        .connect()
        .channel("cam-creds")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AccessDenied, "{err}");
    let message = err.to_string();
    assert!(message.contains("403"), "{message}");
    assert!(!message.contains("X-Amz-Signature"), "{message}");
    assert_eq!(setup.calls("connectAsMaster"), 1);
}

#[tokio::test]
async fn go_away_reconnects_at_once_and_a_new_join_gets_a_new_offer() {
    let setup = start().await;
    setup.emulator.create_storage_channel("cam-ga");
    let mut connection = setup.master("cam-ga").await;

    setup.fault("cam-ga", "GO_AWAY");
    let ((), skipped) = wait_for(&mut connection, "reconnection", |e| {
        is_connected(e, 1).then_some(())
    })
    .await;
    assert!(matches!(skipped[0], Event::GoAway), "{skipped:?}");
    assert!(
        skipped.iter().any(|e| matches!(e, Event::StateChanged(ConnectionState::Reconnecting { attempt: 1, delay, .. }) if delay.is_zero())),
        "{skipped:?}"
    );
    assert_eq!(setup.calls("connectAsMaster"), 2);
    assert_eq!(
        connection.state(),
        ConnectionState::Connected { reconnects: 1 }
    );

    setup.join("cam-ga").await;
    let (sender, _) = wait_for_offer(&mut connection).await;
    assert_eq!(sender, None);
}

#[tokio::test]
async fn reconnect_ice_server_refreshes_the_ice_servers_then_reconnects() {
    let setup = start().await;
    setup.emulator.create_storage_channel("cam-ice");
    let mut connection = setup.master("cam-ice").await;
    setup
        .discovery
        .ice_servers()
        .channel("cam-ice")
        .send()
        .await
        .unwrap();
    assert_eq!(setup.calls("getIceServerConfig"), 1);

    setup.fault("cam-ice", "RECONNECT_ICE_SERVER");
    let ((), skipped) = wait_for(&mut connection, "reconnection", |e| {
        is_connected(e, 1).then_some(())
    })
    .await;
    assert!(
        matches!(skipped[0], Event::ReconnectIceServer),
        "{skipped:?}"
    );
    let refreshed = skipped
        .iter()
        .find_map(|e| match e {
            Event::IceServersRefreshed(servers) => Some(servers),
            _ => None,
        })
        .expect("refreshed ICE servers");
    assert!(!refreshed.from_cache());
    assert!(!refreshed.turn_servers().is_empty());
    assert_eq!(
        setup.calls("getIceServerConfig"),
        2,
        "the cache was bypassed"
    );
    assert_eq!(setup.calls("connectAsMaster"), 2);
}

#[tokio::test]
async fn a_dropped_socket_is_reconnected() {
    let setup = start().await;
    setup.emulator.create_storage_channel("cam-drop");
    let mut connection = setup.master("cam-drop").await;

    setup.fault("cam-drop", "CLOSE_SOCKET");
    let ((), skipped) = wait_for(&mut connection, "reconnection", |e| {
        is_connected(e, 1).then_some(())
    })
    .await;
    let reason = first_reconnect_reason(&skipped);
    assert!(reason.contains("closed"), "{reason}");
    assert_eq!(setup.calls("connectAsMaster"), 2);

    // The new socket works: a join's offer arrives on it.
    setup.join("cam-drop").await;
    wait_for_offer(&mut connection).await;
}

#[tokio::test]
async fn reconnecting_backs_off_and_gives_up_after_the_configured_attempts() {
    let setup = start_with(|b| b.max_reconnect_attempts(3)).await;
    let arn = setup.emulator.create_storage_channel("cam-gone");
    let mut connection = setup.master("cam-gone").await;

    // The channel is deleted, which closes its sockets: every reconnect attempt is refused.
    setup
        .discovery
        .control_plane()
        .delete_signaling_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    let (reason, skipped) = wait_for(&mut connection, "giving up", |e| match e {
        Event::StateChanged(ConnectionState::Closed { reason }) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(reason.contains("gave up after 3"), "{reason}");
    let attempts: Vec<u32> = skipped
        .iter()
        .filter_map(|e| match e {
            Event::StateChanged(ConnectionState::Reconnecting { attempt, delay, .. }) => {
                assert!(
                    *delay <= Duration::from_millis(50 << (attempt - 1)),
                    "{delay:?}"
                );
                Some(*attempt)
            }
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    let err = connection.sender().send_answer("v=0").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

#[tokio::test]
async fn an_unknown_frame_is_reported_and_ignored() {
    let setup = start().await;
    setup.emulator.create_storage_channel("cam-junk");
    let mut connection = setup.master("cam-junk").await;

    setup.fault("cam-junk", "JUNK_FRAME");
    let event = next_event(&mut connection, "the junk frame").await;
    assert!(
        matches!(&event, Event::UnknownFrame { reason } if reason.contains("messageType")),
        "{event:?}"
    );
    assert_eq!(
        connection.state(),
        ConnectionState::Connected { reconnects: 0 }
    );
    setup.join("cam-junk").await;
    wait_for_offer(&mut connection).await;
    assert_eq!(setup.calls("connectAsMaster"), 1);
}

/// Send a candidate the emulator must reject (a P2P master names no recipient) and return the
/// first rejection that arrives, with everything before it.
async fn barrier(connection: &mut SignalingConnection) -> (String, String, Vec<Event>) {
    let candidate = IceCandidate {
        candidate: "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    };
    let id = connection
        .sender()
        .send_ice_candidate(&candidate)
        .await
        .unwrap();
    let (first_rejected, skipped) = wait_for(connection, "the barrier's rejection", |e| match e {
        Event::Rejected(r) => Some(r.correlation_id.clone()),
        _ => None,
    })
    .await;
    (id, first_rejected, skipped)
}

async fn p2p_master(setup: &Setup, name: &str) -> SignalingConnection {
    setup
        .discovery
        .control_plane()
        .create_signaling_channel()
        .channel_name(name)
        .send()
        .await
        .unwrap();
    let mut connection = setup
        .signaling
        .connect()
        .channel(name)
        .require_storage(false)
        .send()
        .await
        .unwrap();
    assert!(is_connected(
        &next_event(&mut connection, "connected").await,
        0
    ));
    connection
}

#[tokio::test]
async fn an_oversize_message_is_refused_locally() {
    let setup = start().await;
    let mut connection = p2p_master(&setup, "p2p-big").await;
    let err = connection
        .sender()
        .send_answer("a".repeat(8_000))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge, "{err}");

    // Nothing went out: the first rejection the service sends is for the next message.
    let (id, first_rejected, _) = barrier(&mut connection).await;
    assert_eq!(first_rejected, id);
}

#[tokio::test]
async fn sends_are_paced_below_the_service_rates() {
    let setup = start().await;
    let mut connection = p2p_master(&setup, "p2p-rate").await;
    let viewer = kvs_webrtc_discovery::ClientId::new("nobody").unwrap();
    let sender = connection.sender();
    let candidate = IceCandidate {
        candidate: "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    };
    // 45 candidates and 12 offers: over two seconds' worth for the service's 20/s and 5/s.
    for i in 0..45 {
        let message = Outgoing::ice_candidate(&candidate)
            .unwrap()
            .to_recipient(&viewer);
        sender.send(message).await.unwrap();
        if i % 4 == 0 {
            let offer = Outgoing::offer("v=0\r\n").unwrap().to_recipient(&viewer);
            sender.send(offer).await.unwrap();
        }
    }
    let (id, first_rejected, skipped) = barrier(&mut connection).await;
    assert_eq!(first_rejected, id, "something was throttled: {skipped:?}");
}

#[tokio::test]
async fn close_ends_the_connection_and_later_sends_fail() {
    let setup = start().await;
    setup.emulator.create_storage_channel("cam-close");
    let connection = setup.master("cam-close").await;
    let sender = connection.sender();
    connection.close().await;
    let err = sender.send_answer("v=0").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
}

#[tokio::test]
async fn a_socket_that_stops_answering_pings_is_replaced() {
    let setup =
        start_with(|b| b.keep_alive(Duration::from_millis(200), Duration::from_millis(300))).await;
    setup.emulator.create_storage_channel("cam-frozen");
    let mut connection = setup.master("cam-frozen").await;

    setup.fault("cam-frozen", "FREEZE_SOCKET");
    let ((), skipped) = wait_for(&mut connection, "reconnection", |e| {
        is_connected(e, 1).then_some(())
    })
    .await;
    let reason = first_reconnect_reason(&skipped);
    assert!(reason.contains("keep-alive"), "{reason}");
    assert_eq!(setup.calls("connectAsMaster"), 2);
    setup.join("cam-frozen").await;
    wait_for_offer(&mut connection).await;
}

/// Ten viewers (the channel's maximum) connected to `channel`, each sending 30 candidates to the
/// master: 300 messages in about 1.5 s at the service's 20 per second per socket.
async fn flood_master(
    setup: &Setup,
    channel: &str,
) -> Vec<tokio::task::JoinHandle<SignalingConnection>> {
    let mut senders = Vec::new();
    for i in 0..10 {
        let viewer = setup
            .signaling
            .connect()
            .channel(channel)
            .role(kvs_webrtc_discovery::Role::Viewer)
            .client_id(format!("viewer-{i}"))
            .require_storage(false)
            .send()
            .await
            .unwrap();
        senders.push(tokio::spawn(async move {
            let candidate = IceCandidate {
                candidate: format!("candidate:{i} 1 udp 2130706431 127.0.0.1 9 typ host"),
                sdp_mid: Some("0".into()),
                sdp_m_line_index: Some(0),
                username_fragment: None,
            };
            for _ in 0..30 {
                viewer
                    .sender()
                    .send_ice_candidate(&candidate)
                    .await
                    .unwrap();
            }
            viewer
        }));
    }
    senders
}

/// An emulator without API throttling (ten sockets connect at once, past the service's 3
/// connects per second) and a client with a 0.2 s + 0.3 s keep-alive, an event queue of 16 and
/// `held` held messages.
async fn slow_reader_setup(held: usize) -> Setup {
    let emulator =
        TestEmulator::start_with(|b| b.throttling(kvs_emulator::Throttling::disabled())).await;
    setup_over(emulator, |b| {
        b.keep_alive(Duration::from_millis(200), Duration::from_millis(300))
            .queue_sizes(64, 16)
            .held_messages(held)
    })
}

/// Issue #13 item 9: an application that stops reading events for longer than the keep-alive
/// (ping + pong timeout) neither causes a reconnect ("nothing heard" used to fire; in this test
/// in 3 of 3 runs) nor loses messages (169 of 320 used to arrive): the socket is read
/// regardless, and what was received waits for the reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_causes_no_reconnect_and_loses_no_message() {
    let setup = slow_reader_setup(4096).await;
    let mut master = p2p_master(&setup, "p2p-slow").await;
    let senders = flood_master(&setup, "p2p-slow").await;
    // The application is busy for 2 s: far beyond the 0.5 s keep-alive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut received = 0;
    let mut other = Vec::new();
    while received < 300 {
        match next_event(&mut master, "the 300 candidates").await {
            Event::Message(SignalingMessage::IceCandidate { .. }) => {
                received += 1;
                // And again busy, now and then, each time longer than the keep-alive.
                if received % 40 == 0 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            event => {
                assert!(
                    !matches!(event, Event::StateChanged(_) | Event::MessagesLost { .. }),
                    "after {received} candidates: {event:?}"
                );
                other.push(event);
            }
        }
    }
    assert_eq!(received, 300, "{other:?}");
    assert!(matches!(
        master.state(),
        ConnectionState::Connected { reconnects: 0 }
    ));
    for sender in senders {
        sender.await.unwrap().close().await;
    }
}

/// Issue #13 item 9, the bound: beyond the held messages, messages are dropped, and every one
/// of them is counted in an explicit `MessagesLost` event; still no reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_beyond_the_held_ones_are_reported_lost_and_counted() {
    let setup = slow_reader_setup(8).await;
    let mut master = p2p_master(&setup, "p2p-lossy").await;
    let senders = flood_master(&setup, "p2p-lossy").await;
    let mut viewers = Vec::new();
    for sender in senders {
        viewers.push(sender.await.unwrap());
    }
    // Busy while the 300 arrive (queued by the viewers, paced out over about 1.5 s), well past
    // the keep-alive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (mut received, mut lost) = (0u64, 0u64);
    while received + lost < 300 {
        match next_event(&mut master, "all 300 accounted for").await {
            Event::Message(SignalingMessage::IceCandidate { .. }) => received += 1,
            Event::MessagesLost { count } => lost += count,
            Event::StateChanged(state) => panic!("after {received} + {lost} lost: {state:?}"),
            _ => {}
        }
    }
    assert_eq!(received + lost, 300);
    assert!(lost > 0, "the 16 queued + 8 held could not take 300");
    assert!(
        received >= 24,
        "the queue and the held messages were delivered: {received}"
    );
}

/// An application that does not read its events (a queue of 2) must not stall reconnecting:
/// GO_AWAY five times, each reconnection seen on `state()` without a single `next_event`; the
/// events, read at the end, are in order and end with the latest `Connected`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_never_waits_for_the_application_to_read_events() {
    let setup = start_with(|b| b.queue_sizes(64, 2)).await;
    setup.emulator.create_storage_channel("cam-unread");
    let mut connection = setup.master("cam-unread").await;
    for n in 1..=5u32 {
        setup.fault("cam-unread", "GO_AWAY");
        kvs_test_support::wait_until(&format!("reconnection {n} without reading"), || {
            kvs_test_support::check(connection.state(), |s| {
                *s == ConnectionState::Connected { reconnects: n }
            })
        })
        .await;
    }
    let ((), events) = wait_for(&mut connection, "the last reconnection", |e| {
        is_connected(e, 5).then_some(())
    })
    .await;
    // Six connects at least (the emulator throttles connects as the service does, 3 a second:
    // some attempts are refused and retried).
    assert!(setup.calls("connectAsMaster") >= 6);
    let connected: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::StateChanged(ConnectionState::Connected { reconnects }) => Some(*reconnects),
            _ => None,
        })
        .collect();
    assert!(
        connected.windows(2).all(|w| w[0] < w[1]),
        "in order: {connected:?}"
    );
}
