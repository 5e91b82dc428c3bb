//! One TURN allocation, sans-IO: Allocate with long-term credentials (the 401 challenge,
//! realm and nonce, stale-nonce retries), Refresh before expiry, CreatePermission and
//! ChannelBind for each peer, Send indications or ChannelData, and deallocation.
//!
//! The caller owns the socket: it feeds what arrives from the server to
//! [`Allocation::handle_input`] (datagrams for UDP, stream bytes in any chunking for TCP and
//! the plaintext of TLS), sends what [`Allocation::poll_transmit`] returns, and calls
//! [`Allocation::handle_timeout`] at [`Allocation::poll_timeout`].
//!
//! The protocol work is turn-client-proto's; this type adds what an ICE agent needs from it:
//! the state and its failure as a typed reason (wrong credentials, no answer, refused),
//! packets queued while a peer's permission is being installed, channels bound on first use,
//! and counters.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use turn_client_proto::api::{TurnConfig, TurnEvent, TurnPollRet, TurnRecvRet};
use turn_client_proto::prelude::*;
use turn_client_proto::stun::agent::Transmit;
use turn_client_proto::stun::types::attribute::ErrorCode;
use turn_client_proto::stun::types::message::{Message, MessageClass};
use turn_client_proto::tcp::TurnClientTcp;
use turn_client_proto::types::{TransportType, TurnCredentials};
use turn_client_proto::udp::TurnClientUdp;

use crate::clock::Clock;
use crate::error::AllocationError;
use crate::framing::{is_whole_datagram, pad_for_stream, StreamFramer};
use crate::uri::RelayTransport;

/// Packets kept per peer address while its permission is being installed.
const MAX_QUEUED_PER_PEER: usize = 64;

/// What an allocation needs.
#[derive(Clone)]
pub struct AllocationConfig {
    /// How the server is reached.
    pub transport: RelayTransport,
    /// The local address of the socket or connection.
    pub local: SocketAddr,
    /// The server's address.
    pub server: SocketAddr,
    /// The TURN username (GetIceServerConfig's `Username`).
    pub username: String,
    /// The TURN password (GetIceServerConfig's `Password`).
    pub password: String,
    /// Give up when no allocation is granted within this long.
    pub allocate_timeout: Duration,
}

impl std::fmt::Debug for AllocationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AllocationConfig")
            .field("transport", &self.transport)
            .field("local", &self.local)
            .field("server", &self.server)
            .field("username", &self.username)
            .field("password", &"** redacted **")
            .field("allocate_timeout", &self.allocate_timeout)
            .finish()
    }
}

/// Where an allocation is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocationState {
    /// The Allocate request is under way.
    Allocating,
    /// The server relays for us at this address.
    Allocated {
        /// The relayed transport address (the relayed candidate's address).
        relayed: SocketAddr,
    },
    /// It failed or ended; nothing more will be sent.
    Failed(AllocationError),
    /// Closed by the caller (the deallocation went out).
    Closed,
}

/// What happened, for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocationEvent {
    /// The allocation was granted.
    Allocated {
        /// The relayed transport address.
        relayed: SocketAddr,
    },
    /// It failed or ended.
    Failed(AllocationError),
    /// A permission for this peer address was installed.
    PermissionCreated(IpAddr),
    /// A permission for this peer address was refused; packets to it are dropped.
    PermissionFailed(IpAddr),
}

/// Data a peer sent to the relayed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerData {
    /// The peer.
    pub peer: SocketAddr,
    /// The payload (STUN, DTLS, SRTP: whatever the peer sent).
    pub data: Vec<u8>,
}

/// Counters of one allocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AllocationStats {
    /// Packets sent to peers through the relay.
    pub packets_sent: u64,
    /// Their payload bytes.
    pub bytes_sent: u64,
    /// Packets received from peers through the relay.
    pub packets_received: u64,
    /// Their payload bytes.
    pub bytes_received: u64,
    /// Packets to peers dropped (no permission, queue full, not allocated).
    pub packets_dropped: u64,
}

turn_client_proto::impl_client!(Client, (Udp, TurnClientUdp), (Tcp, TurnClientTcp));

/// One allocation on one TURN server; see the module docs.
#[derive(Debug)]
pub struct Allocation {
    client: Client,
    transport: RelayTransport,
    local: SocketAddr,
    server: SocketAddr,
    clock: Clock,
    started: Instant,
    allocate_timeout: Duration,
    state: AllocationState,
    server_answered: bool,
    last_error: Option<(u16, String)>,
    events: VecDeque<AllocationEvent>,
    received: VecDeque<PeerData>,
    outgoing: VecDeque<Vec<u8>>,
    waiting_for_permission: HashMap<IpAddr, Vec<(SocketAddr, Vec<u8>)>>,
    channels: HashSet<SocketAddr>,
    stats: AllocationStats,
    /// Frames the stream of TCP and TLS (unused for UDP).
    framer: StreamFramer,
    /// Until when the protocol has nothing to do, as its `poll` last said; `None` once the
    /// protocol was handed something since. Its `poll` is not cheap (it walks every
    /// permission and channel) and a session asks for the relays' deadline on every wake, so
    /// it is asked again only after a change or once that time has come.
    idle_until: Option<Instant>,
}

impl Allocation {
    /// Start allocating: the Allocate request is the first [`Allocation::poll_transmit`].
    pub fn new(now: Instant, config: AllocationConfig) -> Self {
        let credentials = TurnCredentials::new(&config.username, &config.password);
        let turn_config = TurnConfig::new(credentials);
        let client = match config.transport {
            RelayTransport::Udp => Client::Udp(TurnClientUdp::allocate(
                config.local,
                config.server,
                turn_config,
            )),
            // TLS is the caller's: this side sees its plaintext, which is TCP framing.
            RelayTransport::Tcp | RelayTransport::Tls => Client::Tcp(TurnClientTcp::allocate(
                config.local,
                config.server,
                turn_config,
            )),
        };
        Self {
            client,
            transport: config.transport,
            local: config.local,
            server: config.server,
            clock: Clock::new(now),
            started: now,
            allocate_timeout: config.allocate_timeout,
            state: AllocationState::Allocating,
            server_answered: false,
            last_error: None,
            events: VecDeque::new(),
            received: VecDeque::new(),
            outgoing: VecDeque::new(),
            waiting_for_permission: HashMap::new(),
            channels: HashSet::new(),
            stats: AllocationStats::default(),
            framer: StreamFramer::default(),
            idle_until: None,
        }
    }

    /// Where it is.
    pub fn state(&self) -> &AllocationState {
        &self.state
    }

    /// The relayed address, once allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        match self.state {
            AllocationState::Allocated { relayed } => Some(relayed),
            _ => None,
        }
    }

    /// How the server is reached.
    pub fn transport(&self) -> RelayTransport {
        self.transport
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The local address.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The counters.
    pub fn stats(&self) -> AllocationStats {
        self.stats
    }

    /// Whether it is done (failed or closed).
    pub fn is_finished(&self) -> bool {
        matches!(
            self.state,
            AllocationState::Failed(_) | AllocationState::Closed
        )
    }

    /// Bytes from the server: one datagram (UDP), or the next bytes of the stream (TCP, TLS
    /// plaintext), in any chunking. Peer data lands in [`Allocation::poll_peer_data`].
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.is_finished() || bytes.is_empty() {
            return;
        }
        let mut changed = false;
        if self.transport == RelayTransport::Udp {
            if !is_whole_datagram(bytes) {
                tracing::debug!(
                    len = bytes.len(),
                    "malformed datagram from the TURN server dropped"
                );
                return;
            }
            changed = self.handle_frame(now, bytes);
        } else {
            self.framer.push(bytes);
            loop {
                match self.framer.next_frame() {
                    Ok(Some(frame)) => changed |= self.handle_frame(now, &frame),
                    Ok(None) => break,
                    Err(error) => {
                        self.fail(error);
                        return;
                    }
                }
                if self.is_finished() {
                    return;
                }
            }
        }
        // Data from peers changes nothing in the protocol: the relayed media flows without
        // asking it for its events and deadline again.
        if changed {
            self.after_input(now);
        }
    }

    /// One datagram, or one whole unpadded frame of a stream; whether it may have changed the
    /// protocol's state (anything but peer data, and what `inspect_ignored` took care of).
    fn handle_frame(&mut self, now: Instant, bytes: &[u8]) -> bool {
        let at = self.clock.to_proto(now);
        let transport = match self.transport {
            RelayTransport::Udp => TransportType::Udp,
            RelayTransport::Tcp | RelayTransport::Tls => TransportType::Tcp,
        };
        let transmit = Transmit::new(bytes, transport, self.server, self.local);
        let changed = match self.client.recv(transmit, at) {
            TurnRecvRet::Handled => {
                self.server_answered = true;
                true
            }
            TurnRecvRet::PeerData(data) => {
                self.server_answered = true;
                self.take_peer_data(data.peer, data.data());
                false
            }
            TurnRecvRet::Ignored(ignored) => {
                self.inspect_ignored(now, ignored.data);
                false
            }
            TurnRecvRet::PeerIcmp { .. } => false,
        };
        while let Some(more) = self.client.poll_recv(at) {
            self.take_peer_data(more.peer, more.data());
        }
        changed
    }

    /// The TCP or TLS connection ended or could not be made (`reason` says how).
    pub fn handle_connection_failed(&mut self, reason: impl Into<String>) {
        if !self.is_finished() {
            self.fail(AllocationError::Connection {
                reason: reason.into(),
            });
        }
    }

    /// Time reached [`Allocation::poll_timeout`] (or later): retransmit, refresh, give up.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_finished() {
            return;
        }
        if self.state == AllocationState::Allocating && now >= self.started + self.allocate_timeout
        {
            let after = self.allocate_timeout;
            let error = match self.last_error.take() {
                Some((code, reason)) => AllocationError::Rejected { code, reason },
                None if self.server_answered => AllocationError::NotGranted { after },
                None => AllocationError::NoAnswer { after },
            };
            self.fail(error);
            return;
        }
        self.after_input(now);
    }

    /// When [`Allocation::handle_timeout`] is due next; `None` once finished.
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        if self.is_finished() {
            return None;
        }
        let mut next = match self.idle_until {
            Some(until) if now < until => until,
            // That time has come: `handle_timeout` lets the protocol act on it (a
            // retransmission, a request that ran out of them) and takes the events it queues.
            // Polling here instead would queue them and answer with a deadline minutes away.
            Some(_) => now,
            None => {
                let polled = match self.client.poll(self.clock.to_proto(now)) {
                    TurnPollRet::WaitUntil(when) => self.clock.to_std(when),
                    _ => now,
                };
                self.idle_until = Some(polled);
                // The poll acts on the timers that came: a request that ran out of
                // retransmissions fails there, and its event is queued while the answer is
                // the next refresh, minutes away. Such an event is the caller's now.
                self.take_protocol_events(now);
                match self.idle_until {
                    Some(until) if self.events.is_empty() => until,
                    _ => now,
                }
            }
        };
        if self.state == AllocationState::Allocating {
            next = next.min(self.started + self.allocate_timeout);
        }
        Some(next)
    }

    /// The next bytes for the server (a datagram, or stream bytes for TCP and TLS).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let Some(bytes) = self.outgoing.pop_front() {
            return Some(bytes);
        }
        if matches!(self.state, AllocationState::Failed(_)) {
            return None;
        }
        // A request is queued when the protocol is handed something (which forgets the kept
        // deadline) or when its time comes (a refresh, a retransmission: the kept deadline):
        // while it idles, it has nothing to send.
        if self.idle_until.is_some_and(|until| now < until) {
            return None;
        }
        let at = self.clock.to_proto(now);
        let transmit = self.client.poll_transmit(at).or_else(|| {
            // Requests that became due (a retry with credentials, a refresh) are queued by the
            // protocol's poll.
            let _ = self.client.poll(at);
            self.client.poll_transmit(at)
        })?;
        // A request that leaves starts its retransmission timer: a new deadline.
        self.idle_until = None;
        Some(transmit.data.as_ref().to_vec())
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<AllocationEvent> {
        self.events.pop_front()
    }

    /// The next data a peer sent.
    pub fn poll_peer_data(&mut self) -> Option<PeerData> {
        self.received.pop_front()
    }

    /// Send `data` to `peer` through the relay. The first packet to a new peer address asks
    /// for its permission and waits (with at most 64 others) until it is installed; a channel
    /// is bound on first use, after which data goes as ChannelData (4 bytes of overhead
    /// instead of 36). Returns whether the packet was sent or queued.
    pub fn send_to(&mut self, now: Instant, peer: SocketAddr, data: &[u8]) -> bool {
        if self.relayed().is_none() {
            self.stats.packets_dropped += 1;
            return false;
        }
        if !self.has_permission(peer.ip()) {
            // Asked for once; the packet waits in the queue that request opened.
            self.create_permission(now, peer.ip());
            let Some(queue) = self
                .waiting_for_permission
                .get_mut(&peer.ip())
                .filter(|q| q.len() < MAX_QUEUED_PER_PEER)
            else {
                self.stats.packets_dropped += 1;
                return false;
            };
            queue.push((peer, data.to_vec()));
            return true;
        }
        let at = self.clock.to_proto(now);
        self.bind_channel_once(at, peer);
        self.send_now(at, peer, data)
    }

    /// Bind a channel to `peer` the first time data goes to it; until the server confirms,
    /// Send indications carry the data.
    fn bind_channel_once(&mut self, at: turn_client_proto::stun::Instant, peer: SocketAddr) {
        if self.channels.insert(peer) {
            self.idle_until = None;
            if let Err(e) = self.client.bind_channel(TransportType::Udp, peer, at) {
                tracing::debug!(error = %e, %peer, "no channel; Send indications carry the data");
            }
        }
    }

    /// Whether a permission for `peer` is installed.
    pub fn has_permission(&self, peer: IpAddr) -> bool {
        self.client.have_permission(TransportType::Udp, peer)
    }

    /// Install a permission for `peer` now, before any data goes to it: the peer's first
    /// connectivity check then gets through instead of waiting for a retransmission (the
    /// server drops what arrives from an address without a permission). Does nothing before
    /// the allocation exists or when the permission is there or asked for.
    pub fn create_permission(&mut self, now: Instant, peer: IpAddr) {
        if self.relayed().is_none()
            || self.has_permission(peer)
            || self.waiting_for_permission.contains_key(&peer)
        {
            return;
        }
        let at = self.clock.to_proto(now);
        self.idle_until = None;
        match self.client.create_permission(TransportType::Udp, peer, at) {
            Ok(()) => {
                self.waiting_for_permission.insert(peer, Vec::new());
            }
            Err(e) => tracing::debug!(error = %e, %peer, "permission not requested"),
        }
        self.after_input(now);
    }

    /// Deallocate (a Refresh with lifetime 0 goes out) and stop.
    pub fn close(&mut self, now: Instant) {
        if self.is_finished() {
            return;
        }
        self.idle_until = None;
        if self.relayed().is_some() {
            if let Err(e) = self.client.delete(self.clock.to_proto(now)) {
                tracing::debug!(error = %e, "deallocation not sent");
            }
        }
        self.state = AllocationState::Closed;
    }

    fn send_now(
        &mut self,
        at: turn_client_proto::stun::Instant,
        peer: SocketAddr,
        data: &[u8],
    ) -> bool {
        // Data to a peer (ChannelData, a Send indication) leaves the protocol's timers alone.
        match self.client.send_to(TransportType::Udp, peer, data, at) {
            Ok(transmit) => {
                if let Some(transmit) = transmit {
                    let bytes = transmit.build().data;
                    self.outgoing.push_back(match self.transport {
                        RelayTransport::Udp => bytes,
                        RelayTransport::Tcp | RelayTransport::Tls => pad_for_stream(bytes),
                    });
                }
                self.stats.packets_sent += 1;
                self.stats.bytes_sent += data.len() as u64;
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, %peer, "not sent through the relay");
                self.stats.packets_dropped += 1;
                false
            }
        }
    }

    fn take_peer_data(&mut self, peer: SocketAddr, data: &[u8]) {
        self.stats.packets_received += 1;
        self.stats.bytes_received += data.len() as u64;
        self.received.push_back(PeerData {
            peer,
            data: data.to_vec(),
        });
    }

    /// What turn-client-proto did not take: an error response it could not act on (a second
    /// 401 means the credentials are wrong), or something that is not for us.
    fn inspect_ignored(&mut self, now: Instant, bytes: &[u8]) {
        let Ok(message) = Message::from_bytes(bytes) else {
            return;
        };
        self.server_answered = true;
        if !message.has_class(MessageClass::Error) {
            return;
        }
        let (code, reason) = match message.attribute::<ErrorCode>() {
            Ok(e) => (e.code(), e.reason().to_owned()),
            Err(_) => (0, "no ERROR-CODE".to_owned()),
        };
        tracing::debug!(code, %reason, "TURN error response");
        if self.state == AllocationState::Allocating {
            if matches!(code, ErrorCode::UNAUTHORIZED | ErrorCode::WRONG_CREDENTIALS) {
                self.fail(AllocationError::Unauthorized { code, reason });
                return;
            }
            self.last_error = Some((code, reason));
        }
        self.after_input(now);
    }

    /// Turn the protocol's events into ours, let it act on its timers and notice an ended
    /// allocation.
    fn after_input(&mut self, now: Instant) {
        self.idle_until = None;
        self.take_protocol_events(now);
        if self.is_finished() {
            return;
        }
        let at = self.clock.to_proto(now);
        if self.relayed().is_some() && matches!(self.client.poll(at), TurnPollRet::Closed) {
            self.fail(AllocationError::Expired);
            return;
        }
        // That poll acts on the timers that came: a request that ran out of retransmissions
        // is failed there, and its event is ours now, not at the next input.
        self.take_protocol_events(now);
    }

    /// Turn the events the protocol queued into ours.
    fn take_protocol_events(&mut self, now: Instant) {
        let at = self.clock.to_proto(now);
        while let Some(event) = self.client.poll_event() {
            match event {
                TurnEvent::AllocationCreated(_, relayed) => {
                    if self.state == AllocationState::Allocating {
                        self.state = AllocationState::Allocated { relayed };
                        self.events
                            .push_back(AllocationEvent::Allocated { relayed });
                    }
                }
                TurnEvent::AllocationCreateFailed(_) => {
                    let error = match self.last_error.take() {
                        Some((code, reason)) => AllocationError::Rejected { code, reason },
                        None => AllocationError::NotGranted {
                            after: now.saturating_duration_since(self.started),
                        },
                    };
                    self.fail(error);
                    return;
                }
                TurnEvent::PermissionCreated(_, ip) => {
                    self.events
                        .push_back(AllocationEvent::PermissionCreated(ip));
                    for (peer, data) in self.waiting_for_permission.remove(&ip).unwrap_or_default()
                    {
                        self.bind_channel_once(at, peer);
                        self.send_now(at, peer, &data);
                    }
                }
                TurnEvent::PermissionCreateFailed(_, ip) => {
                    self.events.push_back(AllocationEvent::PermissionFailed(ip));
                    self.drop_waiting(ip);
                }
                other => tracing::trace!(event = ?other, "TURN event"),
            }
        }
    }

    fn drop_waiting(&mut self, ip: IpAddr) {
        let dropped = self
            .waiting_for_permission
            .remove(&ip)
            .map_or(0, |q| q.len());
        self.stats.packets_dropped += dropped as u64;
    }

    fn fail(&mut self, error: AllocationError) {
        tracing::debug!(%error, server = %self.server, transport = %self.transport, "TURN allocation failed");
        self.state = AllocationState::Failed(error.clone());
        self.events.push_back(AllocationEvent::Failed(error));
        self.outgoing.clear();
        for (_, queue) in self.waiting_for_permission.drain() {
            self.stats.packets_dropped += queue.len() as u64;
        }
    }
}
