//! The simulated network of the TURN tests: a client [`Allocation`], the workspace's
//! simulated TURN server (turn-server-proto, sans-IO) and a peer, with simulated time.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kvs_test_support::{Sent, SimTurnServer};
use kvs_webrtc_turn::{
    Allocation, AllocationConfig, AllocationEvent, AllocationState, PeerData, RelayTransport,
};

pub const USER: &str = "1900000000:device";
pub const PASSWORD: &str = "right";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const SERVER: &str = "10.0.0.1:3478";

/// A client, a TURN server and a peer on a simulated network.
pub struct Net {
    pub origin: Instant,
    pub now: Instant,
    pub server: SimTurnServer,
    pub stream: bool,
    pub client: Allocation,
    pub relayed_by_server: SocketAddr,
    pub peer: SocketAddr,
    /// What the peer received: (from, bytes).
    pub peer_inbox: Vec<(SocketAddr, Vec<u8>)>,
    /// Bytes from the server to the client are cut into pieces of this size (streams).
    pub chunk: usize,
    pub events: Vec<AllocationEvent>,
    pub received: Vec<PeerData>,
    /// Drop everything the client sends (an unreachable server).
    pub blackhole: bool,
    /// Keep Allocate success responses here instead of delivering them.
    pub hold_allocate_success: bool,
    pub held: Vec<Vec<u8>>,
    /// The length of every frame the client wrote on a stream.
    pub client_stream_frames: Vec<usize>,
}

impl Net {
    pub fn new(transport: RelayTransport, password: &str) -> Self {
        let origin = Instant::now();
        let stream = transport != RelayTransport::Udp;
        let mut server = SimTurnServer::new(addr(SERVER), stream, origin);
        server.add_user(USER, PASSWORD);
        let client = Allocation::new(
            origin,
            AllocationConfig {
                transport,
                local: addr("10.0.0.2:5000"),
                server: addr(SERVER),
                username: USER.into(),
                password: password.into(),
                allocate_timeout: Duration::from_secs(8),
            },
        );
        Self {
            origin,
            now: origin,
            relayed_by_server: server.first_relayed(),
            server,
            stream,
            client,
            peer: addr("10.0.0.3:6000"),
            peer_inbox: Vec::new(),
            chunk: usize::MAX,
            events: Vec::new(),
            received: Vec::new(),
            blackhole: false,
            hold_allocate_success: false,
            held: Vec::new(),
            client_stream_frames: Vec::new(),
        }
    }

    /// Move every pending message until nothing moves.
    pub fn settle(&mut self) {
        for _ in 0..1000 {
            let mut sent: Vec<Sent> = Vec::new();
            while let Some(bytes) = self.client.poll_transmit(self.now) {
                if self.blackhole {
                    continue;
                }
                if self.stream {
                    self.client_stream_frames.push(bytes.len());
                }
                sent.extend(self.server.receive(
                    self.now,
                    self.client.local(),
                    addr(SERVER),
                    &bytes,
                ));
            }
            sent.extend(self.server.poll(self.now));
            let mut moved = !sent.is_empty();
            for (from, to, data) in sent {
                self.deliver(from, to, data);
            }
            while let Some(event) = self.client.poll_event() {
                moved = true;
                self.events.push(event);
            }
            while let Some(data) = self.client.poll_peer_data() {
                moved = true;
                self.received.push(data);
            }
            if !moved {
                return;
            }
        }
        panic!("the simulated network never settled");
    }

    pub fn deliver(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        if to == self.client.local()
            && self.hold_allocate_success
            && data.starts_with(&[0x01, 0x03])
        {
            self.held.push(data);
        } else if to == self.client.local() {
            for piece in data.chunks(self.chunk.min(data.len()).max(1)) {
                self.client.handle_input(self.now, piece);
            }
        } else if to == self.peer {
            self.peer_inbox.push((from, data));
        }
    }

    /// The peer sends to the relayed address.
    pub fn peer_sends(&mut self, data: &[u8]) {
        for (from, to, data) in
            self.server
                .receive(self.now, self.peer, self.relayed_by_server, data)
        {
            self.deliver(from, to, data);
        }
        self.settle();
    }

    /// Advance simulated time to `until`, waking everyone at their deadlines.
    pub fn run_until(&mut self, until: Instant) {
        for _ in 0..100_000 {
            self.settle();
            let client_due = self.client.poll_timeout(self.now).unwrap_or(until);
            let server_due = self.server.deadline(self.now);
            let next = client_due.min(server_due).min(until).max(self.now);
            self.now = if next == self.now {
                self.now + Duration::from_millis(10)
            } else {
                next
            };
            if self.now >= until {
                self.now = until;
                self.client.handle_timeout(self.now);
                self.settle();
                return;
            }
            self.client.handle_timeout(self.now);
        }
        panic!("time did not advance");
    }

    /// Let `d` of simulated time pass.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    pub fn allocated(&mut self) -> SocketAddr {
        self.advance(Duration::from_secs(1));
        match self.client.state() {
            AllocationState::Allocated { relayed } => *relayed,
            other => panic!("not allocated: {other:?}"),
        }
    }
}
