//! The TURN relays of one ingestion, sans-IO: one [`Allocation`] per usable TURN URI of
//! GetIceServerConfig, the routing between str0m's transmits and the allocations, and the
//! credentials' lifecycle: when new credentials arrive (the TTL ran down, or
//! RECONNECT_ICE_SERVER), new allocations are made with them; an old one that carries the
//! running session's media keeps doing so and is deallocated once a later session has taken
//! over, the others at once (so a session that runs for days holds two allocations, not one
//! per renewal).
//!
//! Its style is str0m's: inputs go in through `handle_*` calls (and [`Relays::send`], the
//! storage peer's data to relay), and the driver drains [`Relays::poll_output`] after each:
//! sockets to open, bytes for a server, sockets to close, peer data for the core, events, held
//! candidates now released. [`Relays::poll_timeout`] says when
//! [`Relays::handle_timeout`] is due.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a relayed candidate may be held back while its permissions are installed.
const CANDIDATE_HOLD: Duration = Duration::from_millis(300);
/// A superseded relay that carried no media for this long is not the running session's path:
/// it is released at once rather than at the next session (media flows many times a second;
/// ICE checks, which may go over any relay, do not count).
const IDLE_RELAY: Duration = Duration::from_secs(3);

use kvs_webrtc_turn::{Allocation, AllocationConfig, AllocationEvent, RelayTransport, TurnUri};

/// One TURN server entry of GetIceServerConfig.
#[derive(Clone)]
pub(crate) struct TurnServerEntry {
    pub(crate) uris: Vec<String>,
    pub(crate) username: String,
    pub(crate) password: String,
}

impl From<&kvs_webrtc_discovery::IceServer> for TurnServerEntry {
    fn from(server: &kvs_webrtc_discovery::IceServer) -> Self {
        Self {
            uris: server.uris().to_vec(),
            username: server.username().to_owned(),
            password: server.credential().to_owned(),
        }
    }
}

/// What happened to a relay, for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RelayEvent {
    /// A relayed candidate to offer.
    Allocated {
        uri: String,
        transport: RelayTransport,
        relayed: SocketAddr,
        local: SocketAddr,
    },
    /// This relay will not work.
    Failed { uri: String, reason: String },
    /// Superseded by one with newer credentials: stop offering its candidate.
    Superseded { relayed: SocketAddr },
}

/// What the relays ask the driver to do, in the order the driver should do it.
#[derive(Debug)]
pub(crate) enum RelayOutput {
    /// Open a socket for relay `id` to `uri` over `transport`.
    Open {
        id: u64,
        uri: TurnUri,
        transport: RelayTransport,
    },
    /// Peer data for the core.
    Received(Relayed),
    /// Something the application (and the core's counters) should know.
    Event(RelayEvent),
    /// Send `bytes` on relay `id`'s socket.
    Transmit { id: u64, bytes: Vec<u8> },
    /// Close relay `id`'s socket (its relay ended).
    Close(u64),
    /// A held relayed candidate may go to the storage peer now.
    Candidate { line: String, mid: String },
}

/// Data a peer sent to one of our relayed addresses.
#[derive(Debug)]
pub(crate) struct Relayed {
    pub(crate) relayed: SocketAddr,
    pub(crate) peer: SocketAddr,
    pub(crate) data: Vec<u8>,
}

struct Relay {
    id: u64,
    uri: TurnUri,
    transport: RelayTransport,
    username: String,
    password: String,
    generation: u64,
    /// Made once the socket is ready.
    allocation: Option<Allocation>,
    /// Failed before an allocation existed (the socket could not be opened).
    failed: bool,
    /// Superseded while this many sessions had been answered: deallocated once a later one is,
    /// or as soon as it is idle ([`IDLE_RELAY`]).
    superseded_at: Option<u64>,
    /// When media (anything but STUN) last went through it, either way.
    last_media: Option<Instant>,
}

impl Relay {
    fn relayed(&self) -> Option<SocketAddr> {
        self.allocation.as_ref().and_then(Allocation::relayed)
    }

    fn is_finished(&self) -> bool {
        self.failed
            || self
                .allocation
                .as_ref()
                .is_some_and(Allocation::is_finished)
    }
}

/// The relays; see the module docs.
pub(crate) struct Relays {
    relays: Vec<Relay>,
    next_id: u64,
    generation: u64,
    allocate_timeout: Duration,
    to_open: VecDeque<(u64, TurnUri, RelayTransport)>,
    to_close: VecDeque<u64>,
    events: VecDeque<RelayEvent>,
    received: VecDeque<Relayed>,
    /// Failures, by URI, for the error when none works.
    failures: Vec<String>,
    /// Sessions answered so far (from the core).
    sessions_seen: u64,
    /// The storage peer's addresses (from its candidates): every relay gets a permission for
    /// each as soon as it is allocated.
    peer_addresses: Vec<std::net::IpAddr>,
    /// Relayed candidates held back until their relay has a permission for every peer
    /// address: (relayed address, candidate line, mid, held until).
    held_candidates: Vec<(SocketAddr, String, String, Instant)>,
}

impl Relays {
    pub(crate) fn new(allocate_timeout: Duration) -> Self {
        Self {
            relays: Vec::new(),
            next_id: 1,
            generation: 0,
            allocate_timeout,
            to_open: VecDeque::new(),
            to_close: VecDeque::new(),
            events: VecDeque::new(),
            received: VecDeque::new(),
            failures: Vec::new(),
            sessions_seen: 0,
            peer_addresses: Vec::new(),
            held_candidates: Vec::new(),
        }
    }

    /// New credentials (or the first ones): allocate on every usable URI. URIs that do not
    /// parse are reported as failures; `turns:…?transport=udp` (TURN over DTLS) is skipped.
    pub(crate) fn add_servers(&mut self, servers: &[TurnServerEntry]) {
        self.generation += 1;
        for server in servers {
            for text in &server.uris {
                let uri = match TurnUri::parse(text) {
                    Ok(uri) => uri,
                    Err(e) => {
                        self.fail_uri(text.clone(), e.to_string());
                        continue;
                    }
                };
                let Some(transport) = uri.relay_transport() else {
                    tracing::debug!(%uri, "TURN over DTLS is not supported; skipped");
                    continue;
                };
                let id = self.next_id;
                self.next_id += 1;
                self.to_open.push_back((id, uri.clone(), transport));
                self.relays.push(Relay {
                    id,
                    uri,
                    transport,
                    username: server.username.clone(),
                    password: server.password.clone(),
                    generation: self.generation,
                    allocation: None,
                    failed: false,
                    superseded_at: None,
                    last_media: None,
                });
            }
        }
    }

    /// The next thing to do, `None` when there is nothing until the next input or timeout.
    pub(crate) fn poll_output(&mut self, now: Instant) -> Option<RelayOutput> {
        if let Some((id, uri, transport)) = self.poll_open() {
            return Some(RelayOutput::Open { id, uri, transport });
        }
        if let Some(received) = self.poll_received() {
            return Some(RelayOutput::Received(received));
        }
        if let Some(event) = self.poll_event() {
            return Some(RelayOutput::Event(event));
        }
        // Transmits before closes: a finished relay's last bytes (its deallocation) leave
        // before its socket closes.
        if let Some((id, bytes)) = self.poll_transmit(now) {
            return Some(RelayOutput::Transmit { id, bytes });
        }
        if let Some(id) = self.poll_close() {
            return Some(RelayOutput::Close(id));
        }
        self.poll_released_candidate(now)
            .map(|(line, mid)| RelayOutput::Candidate { line, mid })
    }

    /// A socket to open: `(id, uri, transport)`.
    fn poll_open(&mut self) -> Option<(u64, TurnUri, RelayTransport)> {
        self.to_open.pop_front()
    }

    /// A socket to close (its relay ended).
    fn poll_close(&mut self) -> Option<u64> {
        self.to_close.pop_front()
    }

    /// Relay `id`'s socket is ready: start allocating.
    pub(crate) fn connected(
        &mut self,
        now: Instant,
        id: u64,
        local: SocketAddr,
        server: SocketAddr,
    ) {
        let allocate_timeout = self.allocate_timeout;
        if let Some(relay) = self.relay_mut(id) {
            relay.allocation = Some(Allocation::new(
                now,
                AllocationConfig {
                    transport: relay.transport,
                    local,
                    server,
                    username: relay.username.clone(),
                    password: relay.password.clone(),
                    allocate_timeout,
                },
            ));
        }
    }

    /// Relay `id`'s socket failed or closed.
    pub(crate) fn connection_failed(&mut self, now: Instant, id: u64, reason: String) {
        let Some(relay) = self.relay_mut(id) else {
            return;
        };
        match &mut relay.allocation {
            Some(allocation) => allocation.handle_connection_failed(reason),
            None => {
                relay.failed = true;
                let uri = relay.uri.to_string();
                self.fail_uri(
                    uri,
                    format!("the connection to the TURN server failed: {reason}"),
                );
                self.to_close.push_back(id);
            }
        }
        self.collect(now);
    }

    /// Bytes from relay `id`'s server.
    pub(crate) fn handle_input(&mut self, now: Instant, id: u64, bytes: &[u8]) {
        if let Some(allocation) = self.relay_mut(id).and_then(|r| r.allocation.as_mut()) {
            allocation.handle_input(now, bytes);
        }
        self.collect(now);
    }

    /// The storage peer has a candidate at `ip`: install permissions for it on every relay.
    pub(crate) fn peer_address(&mut self, now: Instant, ip: std::net::IpAddr) {
        if !self.peer_addresses.contains(&ip) {
            self.peer_addresses.push(ip);
        }
        for allocation in self.relays.iter_mut().filter_map(|r| r.allocation.as_mut()) {
            allocation.create_permission(now, ip);
        }
        self.collect(now);
    }

    /// A relayed candidate is about to be sent to the storage peer. The server drops what a
    /// peer sends before its permission is installed, and turn-client-proto paces requests
    /// 50 ms apart, so a candidate announced at once would see the peer's first check lost
    /// and retried only after its retransmission timeout (250 ms and more). Returns the
    /// candidate when it can go now; otherwise it is held (at most 300 ms) and comes back from
    /// [`Relays::poll_output`] as [`RelayOutput::Candidate`].
    pub(crate) fn gate_candidate(
        &mut self,
        now: Instant,
        line: String,
        mid: String,
    ) -> Option<(String, String)> {
        let relayed = self
            .relays
            .iter()
            .filter_map(Relay::relayed)
            .find(|addr| line.contains(&format!(" {} {} typ relay", addr.ip(), addr.port())));
        match relayed {
            Some(relayed) if !self.permissions_ready(relayed) => {
                self.held_candidates
                    .push((relayed, line, mid, now + CANDIDATE_HOLD));
                None
            }
            _ => Some((line, mid)),
        }
    }

    /// A held candidate whose permissions are in place (or whose wait ran out).
    fn poll_released_candidate(&mut self, now: Instant) -> Option<(String, String)> {
        let index = self
            .held_candidates
            .iter()
            .position(|(relayed, _, _, until)| now >= *until || self.permissions_ready(*relayed))?;
        let (_, line, mid, _) = self.held_candidates.remove(index);
        Some((line, mid))
    }

    fn permissions_ready(&self, relayed: SocketAddr) -> bool {
        self.allocation_at(relayed)
            .is_none_or(|a| self.peer_addresses.iter().all(|ip| a.has_permission(*ip)))
    }

    /// The allocation whose relayed address is `relayed`.
    fn allocation_at(&self, relayed: SocketAddr) -> Option<&Allocation> {
        self.relays
            .iter()
            .filter_map(|r| r.allocation.as_ref())
            .find(|a| a.relayed() == Some(relayed))
    }

    /// Whether `source` is one of our relayed addresses.
    pub(crate) fn owns(&self, source: SocketAddr) -> bool {
        self.allocation_at(source).is_some()
    }

    /// Send `data` from relayed address `source` to `destination`.
    pub(crate) fn send(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        if let Some(relay) = self.relays.iter_mut().find(|r| r.relayed() == Some(source)) {
            if is_media(data) {
                relay.last_media = Some(now);
            }
            if let Some(allocation) = &mut relay.allocation {
                allocation.send_to(now, destination, data);
            }
        }
        self.collect(now);
    }

    /// Bytes for a server: `(relay id, bytes)`.
    fn poll_transmit(&mut self, now: Instant) -> Option<(u64, Vec<u8>)> {
        for relay in &mut self.relays {
            if let Some(bytes) = relay.allocation.as_mut().and_then(|a| a.poll_transmit(now)) {
                return Some((relay.id, bytes));
            }
        }
        // Everything of the finished relays went out: forget them and close their sockets
        // (those that failed before an allocation existed were closed then).
        let to_close = &mut self.to_close;
        self.relays.retain(|r| {
            if r.is_finished() && !r.failed {
                to_close.push_back(r.id);
            }
            !r.is_finished()
        });
        None
    }

    /// When [`Relays::handle_timeout`] is due (or a held candidate's wait ends).
    pub(crate) fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        let held = self
            .held_candidates
            .iter()
            .map(|(_, _, _, until)| *until)
            .min();
        self.relays
            .iter_mut()
            .filter_map(|r| r.allocation.as_mut())
            .filter_map(|a| a.poll_timeout(now))
            .chain(held)
            .min()
    }

    /// Retransmit, refresh, give up.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        for allocation in self.relays.iter_mut().filter_map(|r| r.allocation.as_mut()) {
            allocation.handle_timeout(now);
        }
        self.collect(now);
    }

    /// The storage peer's data that came through a relay.
    fn poll_received(&mut self) -> Option<Relayed> {
        self.received.pop_front()
    }

    /// The next event.
    fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// `answered` sessions have been answered so far: relays superseded before the latest
    /// one are not used any more; deallocate them.
    pub(crate) fn sessions_answered(&mut self, now: Instant, answered: u64) {
        if answered == self.sessions_seen {
            return;
        }
        self.sessions_seen = answered;
        for relay in &mut self.relays {
            if relay.superseded_at.is_some_and(|at| answered > at) {
                if let Some(allocation) = &mut relay.allocation {
                    tracing::info!(uri = %relay.uri, "TURN allocation with old credentials released");
                    allocation.close(now);
                }
            }
        }
    }

    /// Deallocate everything (the ingestion ended).
    pub(crate) fn close_all(&mut self, now: Instant) {
        for allocation in self.relays.iter_mut().filter_map(|r| r.allocation.as_mut()) {
            allocation.close(now);
        }
    }

    /// Whether relays were asked for and none is allocated or still trying.
    pub(crate) fn none_can_work(&self) -> bool {
        self.generation > 0 && self.relays.iter().all(Relay::is_finished)
    }

    /// Why relays failed, one `uri: reason` per line.
    pub(crate) fn failures(&self) -> String {
        if self.failures.is_empty() {
            "GetIceServerConfig returned no TURN URI this client can use".into()
        } else {
            self.failures.join("; ")
        }
    }

    fn relay_mut(&mut self, id: u64) -> Option<&mut Relay> {
        self.relays.iter_mut().find(|r| r.id == id)
    }

    fn fail_uri(&mut self, uri: String, reason: String) {
        self.failures.push(format!("{uri}: {reason}"));
        self.events.push_back(RelayEvent::Failed { uri, reason });
    }

    /// Gather the allocations' events and peer data; a newly granted allocation gets its
    /// permissions for the storage peer's known addresses at once.
    fn collect(&mut self, now: Instant) {
        let mut newly_allocated_generation = None;
        let mut failed = Vec::new();
        for relay in &mut self.relays {
            let Some(allocation) = &mut relay.allocation else {
                continue;
            };
            while let Some(data) = allocation.poll_peer_data() {
                if is_media(&data.data) {
                    relay.last_media = Some(now);
                }
                if let Some(relayed) = allocation.relayed() {
                    self.received.push_back(Relayed {
                        relayed,
                        peer: data.peer,
                        data: data.data,
                    });
                }
            }
            while let Some(event) = allocation.poll_event() {
                match event {
                    AllocationEvent::Allocated { relayed } => {
                        tracing::info!(uri = %relay.uri, %relayed, "TURN allocation");
                        for ip in &self.peer_addresses {
                            allocation.create_permission(now, *ip);
                        }
                        newly_allocated_generation = Some(relay.generation);
                        self.events.push_back(RelayEvent::Allocated {
                            uri: relay.uri.to_string(),
                            transport: relay.transport,
                            relayed,
                            local: allocation.local(),
                        });
                    }
                    AllocationEvent::Failed(error) => {
                        failed.push((relay.uri.to_string(), error.to_string()));
                    }
                    AllocationEvent::PermissionFailed(ip) => {
                        tracing::warn!(uri = %relay.uri, %ip, "the TURN server refused a permission");
                    }
                    AllocationEvent::PermissionCreated(_) => {}
                }
            }
        }
        for (uri, reason) in failed {
            self.fail_uri(uri, reason);
        }
        // A newer generation works: the older relays' candidates are not offered any more,
        // and those that carry no media are released now. Else a device that never re-joins
        // would keep every renewal's allocation (a socket here and an allocation at the
        // server per TTL, without bound).
        if let Some(generation) = newly_allocated_generation {
            for relay in &mut self.relays {
                if relay.generation >= generation {
                    continue;
                }
                if relay.superseded_at.is_none() {
                    relay.superseded_at = Some(self.sessions_seen);
                    if let Some(relayed) = relay.relayed() {
                        self.events.push_back(RelayEvent::Superseded { relayed });
                    }
                }
                let idle = relay
                    .last_media
                    .is_none_or(|at| now.saturating_duration_since(at) >= IDLE_RELAY);
                if let Some(allocation) = relay.allocation.as_mut().filter(|_| idle) {
                    if !allocation.is_finished() {
                        tracing::info!(uri = %relay.uri, "idle TURN allocation with old credentials released");
                        allocation.close(now);
                    }
                }
            }
        }
    }
}

/// Whether relayed bytes are media (DTLS, RTP, RTCP) rather than STUN (RFC 7983: STUN
/// starts with 0 or 1).
fn is_media(data: &[u8]) -> bool {
    data.first().is_some_and(|b| *b > 3)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests take their start time from the clock
mod tests {
    //! The relays against turn-server-proto's sans-IO TURN server, in simulated time.

    use std::collections::HashMap;
    use std::net::IpAddr;

    use kvs_test_support::{Sent, SimTurnServer};

    use super::*;

    const SERVER: &str = "10.0.0.1:3478";
    const PEER: &str = "10.0.0.9:7000";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The relays, one simulated TURN server, the sockets' local addresses, simulated time.
    struct Net {
        now: Instant,
        relays: Relays,
        server: SimTurnServer,
        locals: HashMap<u64, SocketAddr>,
        events: Vec<RelayEvent>,
        closed: Vec<u64>,
        /// Held candidates released, as `(line, mid)`.
        released: Vec<(String, String)>,
        /// The server never sees CreatePermission (a lost request).
        drop_permissions: bool,
    }

    impl Net {
        fn new() -> Self {
            let now = Instant::now();
            let mut server = SimTurnServer::new(addr(SERVER), false, now);
            for user in ["1:gen1", "2:gen2", "3:gen3", "4:gen4"] {
                server.add_user(user, "secret");
            }
            Self {
                now,
                relays: Relays::new(Duration::from_secs(8)),
                server,
                locals: HashMap::new(),
                events: Vec::new(),
                closed: Vec::new(),
                released: Vec::new(),
                drop_permissions: false,
            }
        }

        fn credentials(&mut self, user: &str) {
            self.servers(&[format!("turn:{SERVER}?transport=udp")], user, "secret");
        }

        fn servers(&mut self, uris: &[String], user: &str, password: &str) {
            self.relays.add_servers(&[TurnServerEntry {
                uris: uris.to_vec(),
                username: user.into(),
                password: password.into(),
            }]);
            self.settle();
        }

        fn settle(&mut self) {
            for _ in 0..1000 {
                let mut sent: Vec<Sent> = Vec::new();
                let mut moved = false;
                while let Some(output) = self.relays.poll_output(self.now) {
                    moved = true;
                    match output {
                        RelayOutput::Open { id, transport, .. } => {
                            assert_eq!(transport, RelayTransport::Udp);
                            let local = addr(&format!("10.0.0.2:{}", 5000 + id));
                            self.locals.insert(id, local);
                            self.relays.connected(self.now, id, local, addr(SERVER));
                        }
                        // CreatePermission is STUN method 0x008.
                        RelayOutput::Transmit { bytes, .. }
                            if self.drop_permissions && bytes.starts_with(&[0x00, 0x08]) => {}
                        RelayOutput::Transmit { id, bytes } => {
                            let from = self.locals[&id];
                            sent.extend(self.server.receive(self.now, from, addr(SERVER), &bytes));
                        }
                        RelayOutput::Event(event) => self.events.push(event),
                        RelayOutput::Close(id) => self.closed.push(id),
                        RelayOutput::Candidate { line, mid } => self.released.push((line, mid)),
                        RelayOutput::Received(_) => {}
                    }
                }
                sent.extend(self.server.poll(self.now));
                moved |= !sent.is_empty();
                for (_, to, data) in sent {
                    if let Some((&id, _)) = self.locals.iter().find(|(_, local)| **local == to) {
                        self.relays.handle_input(self.now, id, &data);
                    }
                }
                if !moved {
                    return;
                }
            }
            panic!("the simulated network never settled");
        }

        /// Let `d` of simulated time pass in 10 ms steps.
        fn advance(&mut self, d: Duration) {
            let until = self.now + d;
            while self.now < until {
                self.settle();
                self.now += Duration::from_millis(10);
                self.relays.handle_timeout(self.now);
            }
            self.settle();
        }

        /// Let `d` pass while the running session's media goes through `relayed` (an RTP
        /// packet every 20 ms).
        fn advance_with_media(&mut self, d: Duration, relayed: SocketAddr) {
            let until = self.now + d;
            while self.now < until {
                self.relays
                    .send(self.now, relayed, addr(PEER), &[0x80, 96, 0, 1]);
                self.advance(Duration::from_millis(20));
            }
        }

        fn allocated(&self) -> Vec<SocketAddr> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    RelayEvent::Allocated { relayed, .. } => Some(*relayed),
                    _ => None,
                })
                .collect()
        }
    }

    fn relay_line(relayed: SocketAddr) -> String {
        format!(
            "candidate:1 1 udp 16777215 {} {} typ relay raddr 0.0.0.0 rport 0",
            relayed.ip(),
            relayed.port()
        )
    }

    #[test]
    fn new_credentials_supersede_the_old_allocation_which_is_released_after_the_next_session() {
        let mut net = Net::new();
        net.credentials("1:gen1");
        net.advance(Duration::from_millis(500));
        let [first] = net.allocated()[..] else {
            panic!("{:?}", net.events)
        };
        net.relays.sessions_answered(net.now, 1);
        net.advance_with_media(Duration::from_millis(500), first);

        net.credentials("2:gen2");
        net.advance_with_media(Duration::from_millis(500), first);
        let allocated = net.allocated();
        assert_eq!(allocated.len(), 2, "{:?}", net.events);
        assert!(net
            .events
            .contains(&RelayEvent::Superseded { relayed: first }));
        // The running session (the first) still uses it: both relays keep working.
        assert!(net.relays.owns(first) && net.relays.owns(allocated[1]));
        net.relays.sessions_answered(net.now, 1);
        net.advance_with_media(Duration::from_millis(200), first);
        assert!(
            net.closed.is_empty(),
            "nothing released while session 1 runs"
        );

        // A later session took over: the old allocation is deallocated and its socket closed.
        net.relays.sessions_answered(net.now, 2);
        net.advance(Duration::from_millis(200));
        assert_eq!(net.closed, [1], "relay 1's socket closes");
        assert!(!net.relays.owns(first) && net.relays.owns(allocated[1]));
        assert!(!net.relays.none_can_work());
    }

    #[test]
    fn credentials_renewed_while_one_session_runs_keep_two_allocations_not_one_per_renewal() {
        // A device on a good network never re-joins: its credentials are renewed every TTL
        // (5 minutes at AWS), and each renewal allocates anew. The allocation in use stays;
        // one made after the session was answered was never offered to it and goes as soon
        // as a newer one works (before, every renewal's allocation stayed until a re-join:
        // two sockets and a server allocation more per TTL, without bound).
        let mut net = Net::new();
        net.credentials("1:gen1");
        net.advance(Duration::from_millis(500));
        let [first] = net.allocated()[..] else {
            panic!("{:?}", net.events)
        };
        net.relays.sessions_answered(net.now, 1);
        for user in ["2:gen2", "3:gen3", "4:gen4"] {
            net.credentials(user);
            net.advance_with_media(Duration::from_millis(500), first);
        }
        let allocated = net.allocated();
        assert_eq!(allocated.len(), 4, "{:?}", net.events);
        assert_eq!(
            net.closed,
            [2, 3],
            "the renewals never offered are released"
        );
        assert!(
            net.relays.owns(allocated[0]),
            "the running session's relay stays"
        );
        assert!(
            net.relays.owns(allocated[3]),
            "the newest relay waits for the next session"
        );
        assert!(!net.relays.owns(allocated[1]) && !net.relays.owns(allocated[2]));

        // The next session takes the newest; the one of session 1 goes then.
        net.relays.sessions_answered(net.now, 2);
        net.advance(Duration::from_millis(200));
        assert_eq!(net.closed, [2, 3, 1]);
        assert!(net.relays.owns(allocated[3]));
    }

    #[test]
    fn a_session_on_the_host_path_keeps_only_the_newest_allocation() {
        // No media goes through any relay (the storage peer is reached directly): each
        // renewal's allocation replaces the previous one at once.
        let mut net = Net::new();
        net.credentials("1:gen1");
        net.advance(Duration::from_millis(500));
        net.relays.sessions_answered(net.now, 1);
        net.credentials("2:gen2");
        net.advance(Duration::from_millis(500));
        assert_eq!(net.closed, [1]);
        net.credentials("3:gen3");
        net.advance(Duration::from_millis(500));
        assert_eq!(net.closed, [1, 2]);
        let allocated = net.allocated();
        assert!(net.relays.owns(allocated[2]) && !net.relays.none_can_work());
    }

    #[test]
    fn a_relayed_candidate_waits_for_the_peer_permission_then_goes() {
        let mut net = Net::new();
        let peer: IpAddr = addr(PEER).ip();
        net.relays.peer_address(net.now, peer);
        net.credentials("1:gen1");
        net.advance(Duration::from_millis(60));
        let [relayed] = net.allocated()[..] else {
            panic!("{:?}", net.events)
        };
        // Allocated, permission asked for but not yet answered (requests are 50 ms apart).
        let held = net
            .relays
            .gate_candidate(net.now, relay_line(relayed), "0".into());
        assert_eq!(held, None, "held until the permission exists");
        net.settle();
        assert_eq!(net.released, []);
        net.advance(Duration::from_millis(100));
        assert_eq!(net.released, [(relay_line(relayed), "0".into())]);
        // Host candidates, and relayed ones once permitted, go at once.
        let host = "candidate:2 1 udp 2130706175 10.0.0.2 5001 typ host".to_owned();
        assert!(net
            .relays
            .gate_candidate(net.now, host, "0".into())
            .is_some());
        assert!(net
            .relays
            .gate_candidate(net.now, relay_line(relayed), "0".into())
            .is_some());
    }

    #[test]
    fn a_candidate_whose_permission_never_comes_goes_after_300_ms() {
        let mut net = Net::new();
        net.drop_permissions = true;
        net.relays.peer_address(net.now, addr(PEER).ip());
        net.credentials("1:gen1");
        net.advance(Duration::from_millis(60));
        let [relayed] = net.allocated()[..] else {
            panic!("{:?}", net.events)
        };
        let held_at = net.now;
        assert!(net
            .relays
            .gate_candidate(net.now, relay_line(relayed), "0".into())
            .is_none());
        let due = net.relays.poll_timeout(net.now).expect("a deadline");
        assert!(due <= held_at + CANDIDATE_HOLD);
        net.advance(Duration::from_millis(290));
        assert_eq!(net.released, []);
        net.advance(Duration::from_millis(20));
        assert_eq!(net.released.len(), 1);
    }

    #[test]
    fn wrong_credentials_and_bad_uris_are_named_when_nothing_works() {
        let mut net = Net::new();
        net.servers(
            &[
                format!("turn:{SERVER}?transport=udp"),
                "stun:10.0.0.1:3478".into(),
                "turns:10.0.0.1:443?transport=udp".into(),
            ],
            "1:gen1",
            "wrong",
        );
        assert!(!net.relays.none_can_work(), "still trying");
        net.advance(Duration::from_millis(500));
        assert!(net.relays.none_can_work());
        let failures = net.relays.failures();
        assert!(
            failures.contains("stun:10.0.0.1:3478: TURN URI"),
            "{failures}"
        );
        assert!(
            failures.contains("refused the credentials (401"),
            "{failures}"
        );
        assert!(
            !failures.contains("turns:10.0.0.1:443"),
            "DTLS is skipped, not failed: {failures}"
        );
    }
}
