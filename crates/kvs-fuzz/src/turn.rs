//! The TURN client (`kvs_webrtc_turn::Allocation`) talking to a real TURN server
//! (turn-server-proto, sans-IO, as the crate's own tests use it) over UDP, TCP or TLS's
//! plaintext, while the bytes from the server are changed on the way: a byte flipped, cut
//! short, a lying length, bytes added, a message repeated or lost, the stream cut anywhere,
//! arbitrary bytes between messages. Random bytes alone never get past the transaction id and
//! MESSAGE-INTEGRITY; these get the client through its whole life (challenge, allocation,
//! permissions, channels, data, refreshes, deallocation) with hostile bytes at each step.
//!
//! Besides not panicking, the client must never believe in an allocation the server did not
//! grant (the server's password is never the attacker's), and never with a wrong password.
//! [`uri`] parses TURN URIs as GetIceServerConfig returns them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use kvs_test_support::SimTurnServer;
use kvs_webrtc_turn::{Allocation, AllocationConfig, AllocationState, RelayTransport, TurnUri};

const USER: &str = "1900000000:device";
const PASSWORD: &str = "right";
const SERVER: &str = "10.0.0.1:3478";
const LOCAL: &str = "10.0.0.2:5000";

#[derive(Debug, Arbitrary)]
enum Change {
    FlipByte { at: u16, mask: u8 },
    Truncate(u16),
    Length(u16),
    Append(Vec<u8>),
    Repeat,
    Lose,
    Replace(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// Deliver everything the server sent, as sent, then let time go on to the client's next
    /// timer if that is within a second (its retry with credentials waits for one).
    Deliver,
    /// Deliver the next message from the server changed.
    Change(Change),
    /// Bytes that did not come from the server.
    Inject(Vec<u8>),
    /// Deliver the next stream bytes cut into pieces of this size.
    Pieces(u8),
    /// Time goes on (in 10 ms steps).
    Advance(u16),
    /// Send data to a peer through the relay.
    SendTo { peer: u8, data: Vec<u8> },
    /// A peer sends to the relayed address.
    PeerSends { peer: u8, data: Vec<u8> },
    /// Ask for a permission.
    Permission(u8),
    /// The TCP/TLS connection broke.
    ConnectionFailed,
    /// Deallocate.
    Close,
}

#[derive(Debug, Arbitrary)]
struct Session {
    transport: u8,
    wrong_password: bool,
    ops: Vec<Op>,
}

/// Ops taken from one input at most.
const MAX_OPS: usize = 64;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a socket address")
}

fn peer(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 1, n % 4], 6000 + u16::from(n % 3)))
}

struct Net {
    now: Instant,
    server: SimTurnServer,
    client: Allocation,
    stream: bool,
    to_client: VecDeque<Vec<u8>>,
    pieces: usize,
    granted: Vec<SocketAddr>,
    /// Whether the client was allocated at some point.
    allocated: bool,
}

impl Net {
    /// Client output to the server, and server output (timers included) queued for the client.
    fn exchange(&mut self) {
        for _ in 0..64 {
            let mut moved = false;
            if self
                .client
                .poll_timeout(self.now)
                .is_some_and(|due| due <= self.now)
            {
                self.client.handle_timeout(self.now);
            }
            while let Some(bytes) = self.client.poll_transmit(self.now) {
                moved = true;
                let sent = self
                    .server
                    .receive(self.now, addr(LOCAL), addr(SERVER), &bytes);
                self.queue(sent);
            }
            let sent = self.server.poll(self.now);
            moved |= !sent.is_empty();
            self.queue(sent);
            while self.client.poll_event().is_some() {}
            while self.client.poll_peer_data().is_some() {}
            if !moved {
                return;
            }
        }
    }

    fn queue(&mut self, sent: Vec<(SocketAddr, SocketAddr, Vec<u8>)>) {
        for (_, to, data) in sent {
            if to == addr(LOCAL) {
                self.to_client.push_back(data);
            }
        }
    }

    fn give(&mut self, bytes: &[u8]) {
        if self.stream {
            for piece in bytes.chunks(self.pieces.max(1)) {
                self.client.handle_input(self.now, piece);
            }
        } else {
            self.client.handle_input(self.now, bytes);
        }
        self.check();
    }

    fn check(&mut self) {
        if let AllocationState::Allocated { relayed } = self.client.state() {
            assert!(
                self.granted.contains(relayed),
                "the client believes in an allocation at {relayed} the server never granted"
            );
            self.allocated = true;
        }
    }
}

/// One allocation's life with the server's bytes changed on the way.
pub fn allocation(data: &[u8]) {
    let _ = allocation_run(data);
}

/// [`allocation`], saying whether the client ended up allocated (`None`: the bytes do not
/// make a session). The seed corpus is made of inputs that get there.
pub fn allocation_run(data: &[u8]) -> Option<bool> {
    let u = Unstructured::new(data);
    let session = Session::arbitrary_take_rest(u).ok()?;
    Some(run_session(&session))
}

fn run_session(session: &Session) -> bool {
    let transport = match session.transport % 3 {
        0 => RelayTransport::Udp,
        1 => RelayTransport::Tcp,
        _ => RelayTransport::Tls,
    };
    let stream = transport != RelayTransport::Udp;
    #[allow(clippy::disallowed_methods)]
    let origin = Instant::now();
    let mut server = SimTurnServer::new(addr(SERVER), stream, origin);
    server.add_user(USER, PASSWORD);
    // The server grants relayed addresses from its first one up.
    let first = server.first_relayed();
    let granted = (0..64)
        .map(|i| SocketAddr::new(first.ip(), first.port() + i))
        .collect();
    let password = if session.wrong_password {
        "wrong"
    } else {
        PASSWORD
    };
    let client = Allocation::new(
        origin,
        AllocationConfig {
            transport,
            local: addr(LOCAL),
            server: addr(SERVER),
            username: USER.into(),
            password: password.into(),
            allocate_timeout: Duration::from_secs(8),
        },
    );
    let mut net = Net {
        now: origin,
        server,
        client,
        stream,
        to_client: VecDeque::new(),
        pieces: usize::MAX,
        granted,
        allocated: false,
    };
    net.exchange();
    for op in session.ops.iter().take(MAX_OPS) {
        match op {
            Op::Deliver => {
                while let Some(bytes) = net.to_client.pop_front() {
                    net.give(&bytes);
                }
                if let Some(due) = net.client.poll_timeout(net.now) {
                    if due <= net.now + Duration::from_secs(1) {
                        net.now = net.now.max(due);
                        net.client.handle_timeout(net.now);
                    }
                }
            }
            Op::Change(change) => {
                let Some(mut bytes) = net.to_client.pop_front() else {
                    continue;
                };
                match change {
                    Change::FlipByte { at, mask } => {
                        if !bytes.is_empty() {
                            let i = usize::from(*at) % bytes.len();
                            bytes[i] ^= mask;
                        }
                    }
                    Change::Truncate(n) => bytes.truncate(usize::from(*n)),
                    Change::Length(l) => {
                        if bytes.len() >= 4 {
                            bytes[2..4].copy_from_slice(&l.to_be_bytes());
                        }
                    }
                    Change::Append(more) => bytes.extend_from_slice(more),
                    Change::Repeat => net.to_client.push_front(bytes.clone()),
                    Change::Lose => continue,
                    Change::Replace(other) => bytes.clone_from(other),
                }
                net.give(&bytes);
            }
            Op::Inject(bytes) => net.give(bytes),
            Op::Pieces(n) => net.pieces = usize::from(*n).max(1),
            Op::Advance(steps) => {
                net.now += Duration::from_millis(10 * u64::from(*steps));
                net.client.handle_timeout(net.now);
                let _ = net.client.poll_timeout(net.now);
            }
            Op::SendTo { peer: p, data } => {
                let _ = net.client.send_to(net.now, peer(*p), data);
            }
            Op::PeerSends { peer: p, data } => {
                if let Some(relayed) = net.client.relayed() {
                    let sent = net.server.receive(net.now, peer(*p), relayed, data);
                    net.queue(sent);
                }
            }
            Op::Permission(p) => net.client.create_permission(net.now, peer(*p).ip()),
            Op::ConnectionFailed => net.client.handle_connection_failed("fuzz: reset"),
            Op::Close => net.client.close(net.now),
        }
        net.exchange();
        net.check();
    }
    let allocated = net.allocated;
    if session.wrong_password {
        assert!(
            net.client.relayed().is_none(),
            "allocated with a wrong password"
        );
    }
    allocated
}

/// `TurnUri::parse` on a URI as GetIceServerConfig could return it, then what it says.
pub fn uri(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(uri) = TurnUri::parse(text) {
        let _ = (
            uri.host(),
            uri.port(),
            uri.is_secure(),
            uri.relay_transport(),
        );
        let host_port = uri.host_port();
        assert!(host_port.ends_with(&uri.port().to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_whose_bytes_are_delivered_as_sent_allocates() {
        for transport in 0..3 {
            let session = Session {
                transport,
                wrong_password: false,
                ops: vec![Op::Deliver, Op::Deliver, Op::Deliver, Op::Deliver],
            };
            assert!(run_session(&session), "transport {transport}");
        }
    }
}
