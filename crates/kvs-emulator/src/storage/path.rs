//! The storage peer's side of its network path, impaired as the channel's `IMPAIR` fault says
//! (see [`crate::impairment`]): one [`Link`] per direction, re-read from the channel's faults
//! as the driver goes, bypassed while the channel is not impaired and nothing is in flight.

use std::net::SocketAddr;
use std::time::Instant;

use crate::faults::Faults;
use crate::impairment::{ArmedImpairment, Datagram, Direction, Impairment, Link};

/// Both directions of one storage peer's path.
#[derive(Debug)]
pub(crate) struct Path {
    armed: Option<ArmedImpairment>,
    /// What the device sends to the storage peer.
    to_peer: Link,
    /// What the storage peer sends to the device.
    from_peer: Link,
}

impl Path {
    /// An unimpaired path.
    pub(crate) fn new() -> Self {
        Self {
            armed: None,
            to_peer: Link::new(Impairment::default(), 1),
            from_peer: Link::new(Impairment::default(), 2),
        }
    }

    /// Follow the channel's impairment as it is now (armed, changed or cleared).
    pub(crate) fn refresh(&mut self, faults: &Faults, channel_arn: &str) {
        let now = faults.impairment(channel_arn);
        if now == self.armed {
            return;
        }
        let (to_peer, from_peer) = match now {
            None => (Impairment::default(), Impairment::default()),
            Some(a) => match a.direction {
                Direction::Both => (a.impairment, a.impairment),
                Direction::ToStoragePeer => (a.impairment, Impairment::default()),
                Direction::FromStoragePeer => (Impairment::default(), a.impairment),
            },
        };
        if let Some(a) = now {
            if self.armed.is_none_or(|old| old.seed != a.seed) {
                // A fresh seed starts fresh randomness (what was in flight is kept).
                self.to_peer.reseed(a.seed);
                self.from_peer.reseed(a.seed.wrapping_add(1));
            }
        }
        tracing::debug!(channel = %channel_arn, ?now, "storage-peer path impairment changed");
        self.to_peer.set(to_peer);
        self.from_peer.set(from_peer);
        self.armed = now;
    }

    /// Whether datagrams pass untouched (nothing armed, nothing in flight).
    fn bypassed(&self) -> bool {
        self.armed.is_none() && self.to_peer.in_flight() == 0 && self.from_peer.in_flight() == 0
    }

    /// A datagram the storage peer sends; `Some` when it goes out now untouched.
    pub(crate) fn send(
        &mut self,
        now: Instant,
        destination: SocketAddr,
        bytes: Vec<u8>,
    ) -> Option<(SocketAddr, Vec<u8>)> {
        if self.bypassed() {
            return Some((destination, bytes));
        }
        self.from_peer.push(
            now,
            Datagram {
                peer: destination,
                bytes,
            },
        );
        None
    }

    /// A datagram the storage peer received; `Some` when it is handled now untouched.
    pub(crate) fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        bytes: &[u8],
    ) -> Option<(SocketAddr, Vec<u8>)> {
        if self.bypassed() {
            return Some((source, bytes.to_vec()));
        }
        self.to_peer.push(
            now,
            Datagram {
                peer: source,
                bytes: bytes.to_vec(),
            },
        );
        None
    }

    /// The next datagram to send that is due at `now`.
    pub(crate) fn due_to_send(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        self.from_peer.poll(now).map(|d| (d.peer, d.bytes))
    }

    /// The next received datagram due to the session at `now`.
    pub(crate) fn due_received(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        self.to_peer.poll(now).map(|d| (d.peer, d.bytes))
    }

    /// When a datagram in flight is due next, either way.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        match (self.to_peer.next_due(), self.from_peer.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What each direction did, for the session's end log: (to the peer, from the peer).
    pub(crate) fn counters(&self) -> (crate::LinkCounters, crate::LinkCounters) {
        (self.to_peer.counters(), self.from_peer.counters())
    }
}
