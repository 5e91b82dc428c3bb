//! Property tests of what the TURN client decodes: whatever the server (or an attacker on
//! the path) sends — random bytes, truncated or bit-flipped responses, wrong lengths, a wrong
//! MESSAGE-INTEGRITY — the client neither panics nor accepts it.

mod sim;

use std::time::Duration;

use kvs_webrtc_turn::{AllocationState, RelayTransport};
use proptest::prelude::*;
use sim::{Net, PASSWORD};

/// A client whose Allocate success response is held back, and that response.
fn waiting_for_success(transport: RelayTransport) -> (Net, Vec<u8>) {
    let mut net = Net::new(transport, PASSWORD);
    net.hold_allocate_success = true;
    // The challenge and the authenticated Allocate, before any retransmission (500 ms).
    net.advance(Duration::from_millis(200));
    assert_eq!(net.client.state(), &AllocationState::Allocating);
    let success = net.held.pop().expect("the server granted the allocation");
    (net, success)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Random bytes in any state: no panic, no allocation out of thin air.
    #[test]
    fn random_bytes_are_refused(
        garbage in proptest::collection::vec(any::<u8>(), 0..600),
        tcp in any::<bool>(),
    ) {
        let transport = if tcp { RelayTransport::Tcp } else { RelayTransport::Udp };
        let (mut net, _) = waiting_for_success(transport);
        net.client.handle_input(net.now, &garbage);
        net.settle();
        prop_assert!(net.client.relayed().is_none());
    }

    /// The genuine success response with one byte changed past the header (an attribute's
    /// type, length or value, or MESSAGE-INTEGRITY itself): the integrity check refuses it,
    /// and the genuine one is still accepted afterwards.
    #[test]
    fn a_changed_byte_breaks_message_integrity(offset in 20usize..200, mask in 1u8..=255) {
        let (mut net, success) = waiting_for_success(RelayTransport::Udp);
        let offset = offset % success.len();
        prop_assume!(offset >= 20);
        let mut forged = success.clone();
        forged[offset] ^= mask;
        net.client.handle_input(net.now, &forged);
        prop_assert!(net.client.relayed().is_none(), "forged response accepted (byte {offset})");
        net.client.handle_input(net.now, &success);
        prop_assert_eq!(net.client.relayed(), Some(net.relayed_by_server));
    }

    /// Every truncation of the genuine response, and a header whose length field lies.
    #[test]
    fn truncated_or_mis_sized_responses_are_refused(cut in 0usize..200, length in any::<u16>()) {
        let (mut net, success) = waiting_for_success(RelayTransport::Udp);
        let cut = cut % success.len();
        net.client.handle_input(net.now, &success[..cut]);
        prop_assert!(net.client.relayed().is_none(), "accepted {cut} of {} bytes", success.len());
        let mut resized = success.clone();
        let real = (success.len() - 20) as u16;
        prop_assume!(length != real);
        resized[2..4].copy_from_slice(&length.to_be_bytes());
        net.client.handle_input(net.now, &resized);
        prop_assert!(net.client.relayed().is_none(), "accepted a length of {length} (real {real})");
    }

    /// Over a stream, the same response cut anywhere in two reassembles to an allocation,
    /// and garbage between frames does not panic.
    #[test]
    fn a_stream_split_anywhere_reassembles(split in 1usize..200) {
        let (mut net, success) = waiting_for_success(RelayTransport::Tcp);
        let split = 1 + split % (success.len() - 1);
        net.client.handle_input(net.now, &success[..split]);
        prop_assert!(net.client.relayed().is_none());
        net.client.handle_input(net.now, &success[split..]);
        prop_assert_eq!(net.client.relayed(), Some(net.relayed_by_server));
    }
}

/// The case the properties found: a header length of 0 over a datagram that carries the
/// whole response. MESSAGE-INTEGRITY cannot notice (its check rewrites the length field), and
/// the STUN parser reads past the header's length, so the datagram check must refuse it.
#[test]
fn a_datagram_whose_header_lies_about_its_length_is_refused() {
    for length in [0u16, 4, 96, 104, 65532] {
        let (mut net, success) = waiting_for_success(RelayTransport::Udp);
        let mut lying = success.clone();
        lying[2..4].copy_from_slice(&length.to_be_bytes());
        net.client.handle_input(net.now, &lying);
        assert!(
            net.client.relayed().is_none(),
            "accepted a length of {length}"
        );
        net.client.handle_input(net.now, &success);
        assert_eq!(net.client.relayed(), Some(net.relayed_by_server));
    }
}
