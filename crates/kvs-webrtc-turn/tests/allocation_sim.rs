//! An [`Allocation`] against turn-server-proto's sans-IO TURN server, in simulated time: the
//! whole exchange (challenge, allocation, permission, channel, refresh, data both ways,
//! deallocation) runs without sockets or sleeping.

mod sim;

use std::time::Duration;

use kvs_webrtc_turn::{
    AllocationError, AllocationEvent, AllocationState, PeerData, RelayTransport,
};
use sim::{Net, PASSWORD};

#[test]
fn allocates_then_carries_data_both_ways_through_a_permission_and_a_channel() {
    let mut net = Net::new(RelayTransport::Udp, PASSWORD);
    let relayed = net.allocated();
    assert_eq!(relayed, net.relayed_by_server);
    assert!(net.events.contains(&AllocationEvent::Allocated { relayed }));

    let peer = net.peer;
    for i in 0..5u8 {
        assert!(net.client.send_to(net.now, peer, &[i; 100]));
        net.advance(Duration::from_millis(200));
    }
    let delivered: Vec<_> = net
        .peer_inbox
        .iter()
        .map(|(from, d)| (*from, d.clone()))
        .collect();
    assert_eq!(
        delivered.len(),
        5,
        "every packet reached the peer, the first ones after the permission"
    );
    assert!(
        delivered.iter().all(|(from, _)| *from == relayed),
        "from the relayed address"
    );
    assert_eq!(
        delivered.iter().map(|(_, d)| d[0]).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4],
        "in order"
    );
    assert!(net
        .events
        .contains(&AllocationEvent::PermissionCreated(peer.ip())));

    net.peer_sends(b"from the storage peer");
    assert_eq!(
        net.received,
        [PeerData {
            peer,
            data: b"from the storage peer".to_vec()
        }]
    );
    let stats = net.client.stats();
    assert_eq!((stats.packets_sent, stats.bytes_sent), (5, 500));
    assert_eq!((stats.packets_received, stats.packets_dropped), (1, 0));
}

#[test]
fn a_stream_cut_into_single_bytes_is_reassembled_and_channel_data_is_padded() {
    let mut net = Net::new(RelayTransport::Tcp, PASSWORD);
    net.chunk = 1;
    let relayed = net.allocated();
    let peer = net.peer;
    assert!(net.client.send_to(net.now, peer, b"over tcp"));
    assert!(net.client.send_to(net.now, peer, b"odd size"));
    net.advance(Duration::from_millis(200));
    assert!(net.client.send_to(net.now, peer, b"odd, on a channel"));
    net.advance(Duration::from_millis(200));
    // turn-server-proto forwards a stream's ChannelData padding to the peer (coturn does
    // not); the payload must be what was sent, then at most 3 zero bytes.
    let sent: [&[u8]; 3] = [b"over tcp", b"odd size", b"odd, on a channel"];
    assert_eq!(net.peer_inbox.len(), 3, "{:?}", net.peer_inbox);
    for ((from, got), sent) in net.peer_inbox.iter().zip(sent) {
        assert_eq!(*from, relayed);
        assert_eq!(&got[..sent.len()], sent);
        assert!(got.len() - sent.len() < 4 && got[sent.len()..].iter().all(|b| *b == 0));
    }
    assert!(
        net.client_stream_frames.iter().all(|len| len % 4 == 0),
        "every frame on the stream is padded: {:?}",
        net.client_stream_frames
    );
    net.peer_sends(b"and back");
    net.peer_sends(b"twice");
    assert_eq!(
        net.received
            .iter()
            .map(|d| d.data.as_slice())
            .collect::<Vec<_>>(),
        [&b"and back"[..], b"twice"]
    );
}

#[test]
fn a_wrong_password_fails_at_once_as_unauthorized() {
    let mut net = Net::new(RelayTransport::Udp, "wrong");
    net.advance(Duration::from_secs(1));
    match net.client.state() {
        AllocationState::Failed(AllocationError::Unauthorized { code, .. }) => {
            assert_eq!(*code, 401)
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    let failed_at = net
        .events
        .iter()
        .position(|e| matches!(e, AllocationEvent::Failed(_)));
    assert!(
        failed_at.is_some(),
        "reported within the first second, without waiting out retransmissions"
    );
    let message = AllocationError::Unauthorized {
        code: 401,
        reason: "Unauthorized".into(),
    }
    .to_string();
    assert!(
        message.contains("password is wrong or the credentials expired"),
        "{message}"
    );
    assert!(
        net.client.poll_transmit(net.now).is_none(),
        "nothing more is sent"
    );
}

#[test]
fn a_server_that_never_answers_gives_no_answer_after_the_timeout() {
    let mut net = Net::new(RelayTransport::Udp, PASSWORD);
    net.blackhole = true;
    let start = net.now;
    net.run_until(start + Duration::from_secs(20));
    assert_eq!(
        net.client.state(),
        &AllocationState::Failed(AllocationError::NoAnswer {
            after: Duration::from_secs(8)
        })
    );
    let failures = net
        .events
        .iter()
        .filter(|e| matches!(e, AllocationEvent::Failed(_)))
        .count();
    assert_eq!(failures, 1, "reported once");
}

#[test]
fn refreshes_keep_the_allocation_and_its_permission_alive_for_an_hour() {
    let mut net = Net::new(RelayTransport::Udp, PASSWORD);
    let relayed = net.allocated();
    let peer = net.peer;
    assert!(net.client.send_to(net.now, peer, b"first"));
    let start = net.now;
    // Longer than the allocation (600 s), the permission (300 s) and the channel (600 s).
    for minute in 1..=60u64 {
        net.run_until(start + Duration::from_secs(60 * minute));
        assert!(
            net.client.send_to(net.now, peer, &minute.to_be_bytes()),
            "minute {minute}"
        );
        net.advance(Duration::from_millis(200));
    }
    assert_eq!(net.client.state(), &AllocationState::Allocated { relayed });
    assert_eq!(net.peer_inbox.len(), 61, "every packet of the hour arrived");
    net.peer_sends(b"still there");
    assert_eq!(
        net.received.last().map(|d| d.data.as_slice()),
        Some(&b"still there"[..])
    );
}

#[test]
fn a_stale_nonce_is_renewed_and_the_request_retried() {
    let mut net = Net::new(RelayTransport::Udp, PASSWORD);
    net.server.set_nonce_expiry(Duration::from_secs(30));
    net.allocated();
    let start = net.now;
    net.run_until(start + Duration::from_secs(45));
    // The nonce expired: the permission request gets 438 Stale Nonce first, then succeeds.
    let peer = net.peer;
    assert!(net
        .client
        .send_to(net.now, peer, b"after the nonce expired"));
    net.advance(Duration::from_secs(1));
    assert!(net
        .events
        .contains(&AllocationEvent::PermissionCreated(peer.ip())));
    assert_eq!(
        net.peer_inbox.last().map(|(_, d)| d.as_slice()),
        Some(&b"after the nonce expired"[..])
    );
}

#[test]
fn a_request_made_while_the_allocation_idles_is_retransmitted_on_time() {
    let mut net = Net::new(RelayTransport::Udp, PASSWORD);
    net.allocated();
    net.advance(Duration::from_secs(30));
    // Idle: the next deadline is a refresh minutes away (and is asked for twice, as a
    // session does on every wake).
    for _ in 0..2 {
        let idle_until = net
            .client
            .poll_timeout(net.now)
            .expect("a refresh is planned");
        assert!(idle_until > net.now + Duration::from_secs(60));
    }
    // A permission request that the server never answers must be sent again within the
    // STUN retransmission time, not when the old deadline comes.
    net.blackhole = true;
    let asked = net.now;
    net.client.create_permission(net.now, net.peer.ip());
    let mut transmits = Vec::new();
    while net.now < asked + Duration::from_secs(3) {
        while net.client.poll_transmit(net.now).is_some() {
            transmits.push(net.now - asked);
        }
        let next = net.client.poll_timeout(net.now).expect("still allocated");
        assert!(
            next <= net.now + Duration::from_secs(3),
            "the retransmission is due at {:?}",
            next - asked
        );
        net.now = next.max(net.now + Duration::from_millis(1));
        net.client.handle_timeout(net.now);
    }
    assert!(
        transmits.len() >= 3,
        "the request and its retransmissions went out at {transmits:?}"
    );
}

#[test]
fn an_unanswered_permission_fails_when_its_request_times_out() {
    let mut net = Net::new(RelayTransport::Udp, PASSWORD);
    net.allocated();
    net.advance(Duration::from_secs(30));
    net.client
        .poll_timeout(net.now)
        .expect("a refresh is planned");
    net.blackhole = true;
    let asked = net.now;
    net.client.create_permission(net.now, net.peer.ip());
    // Driven as a session drives it: it wakes for media every 20 ms, asks for the deadline,
    // handles the timeout when that has come, sends what is due and takes the events.
    let mut failed_after = None;
    while failed_after.is_none() && net.now < asked + Duration::from_secs(600) {
        let due = net.client.poll_timeout(net.now).expect("still allocated");
        if due <= net.now {
            net.client.handle_timeout(net.now);
        }
        while net.client.poll_transmit(net.now).is_some() {}
        while let Some(event) = net.client.poll_event() {
            if event == AllocationEvent::PermissionFailed(net.peer.ip()) {
                failed_after = Some(net.now - asked);
            }
        }
        net.now += Duration::from_millis(20);
    }
    let failed_after = failed_after.expect("the permission's failure was reported within 600 s");
    // STUN over UDP sends a request 7 times, the last 31.5 s after the first with a 500 ms
    // RTO; stun-proto waits 8 ms more before it gives up (RFC 8489 says 8 s).
    assert!(
        failed_after <= Duration::from_secs(40),
        "reported {failed_after:?} after the request, when it timed out"
    );
}

#[test]
fn close_deallocates() {
    let mut net = Net::new(RelayTransport::Udp, PASSWORD);
    net.allocated();
    net.client.close(net.now);
    assert_eq!(net.client.state(), &AllocationState::Closed);
    let refresh = net
        .client
        .poll_transmit(net.now)
        .expect("a Refresh with lifetime 0");
    // A STUN Refresh request: method 0x004, class request.
    assert_eq!(&refresh[..2], &[0x00, 0x04]);
    assert!(
        !net.client.send_to(net.now, net.peer, b"late"),
        "nothing is sent after close"
    );
}
