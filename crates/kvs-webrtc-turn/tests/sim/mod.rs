//! The simulated network of the TURN tests: a client [`Allocation`], turn-server-proto's
//! sans-IO TURN server and a peer, with simulated time.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kvs_webrtc_turn::{
    Allocation, AllocationConfig, AllocationEvent, AllocationState, PeerData, RelayTransport,
};
use turn_server_proto::api::{TurnServerApi, TurnServerPollRet};
use turn_server_proto::server::TurnServer;
use turn_server_proto::stun::agent::Transmit;
use turn_server_proto::stun::Instant as ProtoInstant;
use turn_server_proto::types::TransportType;

pub const USER: &str = "1900000000:device";
pub const PASSWORD: &str = "right";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A client, a TURN server and a peer on a simulated network.
pub struct Net {
    pub origin: Instant,
    pub now: Instant,
    pub server: TurnServer,
    pub server_transport: TransportType,
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
        let server_transport = match transport {
            RelayTransport::Udp => TransportType::Udp,
            _ => TransportType::Tcp,
        };
        let mut server = TurnServer::new(server_transport, addr("10.0.0.1:3478"), "kvs".into());
        server.add_user(USER.into(), PASSWORD.into());
        let client = Allocation::new(
            origin,
            AllocationConfig {
                transport,
                local: addr("10.0.0.2:5000"),
                server: addr("10.0.0.1:3478"),
                username: USER.into(),
                password: password.into(),
                allocate_timeout: Duration::from_secs(8),
            },
        );
        Self {
            origin,
            now: origin,
            server,
            server_transport,
            client,
            relayed_by_server: addr("10.0.0.1:49152"),
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

    pub fn t(&self) -> ProtoInstant {
        ProtoInstant::from_nanos((self.now - self.origin).as_nanos() as i64)
    }

    /// Move every pending message until nothing moves.
    pub fn settle(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(bytes) = self.client.poll_transmit(self.now) {
                moved = true;
                if self.blackhole {
                    continue;
                }
                if self.server_transport == TransportType::Tcp {
                    // On a stream every frame is padded to 4 bytes (RFC 8656 §12.5).
                    self.client_stream_frames.push(bytes.len());
                }
                let t = self.t();
                let transmit = Transmit::new(
                    bytes.as_slice(),
                    self.server_transport,
                    self.client.local(),
                    self.server.listen_address(),
                );
                if let Some(out) = self.server.recv(transmit, t) {
                    let out = out.build();
                    self.deliver(out.from, out.to, out.data);
                }
            }
            loop {
                let t = self.t();
                match self.server.poll(t) {
                    TurnServerPollRet::AllocateSocket {
                        transport,
                        listen_addr,
                        client_addr,
                        allocation_transport,
                        family,
                    } => {
                        moved = true;
                        self.server.allocated_socket(
                            transport,
                            listen_addr,
                            client_addr,
                            allocation_transport,
                            family,
                            Ok(self.relayed_by_server),
                            t,
                        );
                    }
                    _ => break,
                }
            }
            while let Some(out) = self.server.poll_transmit(self.t()) {
                moved = true;
                self.deliver(out.from, out.to, out.data);
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

    pub fn deliver(&mut self, from: SocketAddr, to: SocketAddr, mut data: Vec<u8>) {
        if self.server_transport == TransportType::Tcp && data.first().is_some_and(|b| b >> 6 == 1)
        {
            // What an RFC-conformant server (coturn) sends on a stream; turn-server-proto
            // does not pad.
            data.resize(data.len().next_multiple_of(4), 0);
        }
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
        let t = self.t();
        let transmit = Transmit::new(data, TransportType::Udp, self.peer, self.relayed_by_server);
        if let Some(out) = self.server.recv(transmit, t) {
            let out = out.build();
            self.deliver(out.from, out.to, out.data);
        }
        self.settle();
    }

    /// Advance simulated time to `until`, waking everyone at their deadlines.
    pub fn run_until(&mut self, until: Instant) {
        for _ in 0..100_000 {
            self.settle();
            let client_due = self.client.poll_timeout(self.now).unwrap_or(until);
            let server_due = match self.server.poll(self.t()) {
                TurnServerPollRet::WaitUntil(at) => {
                    self.origin + Duration::from_nanos(at.as_nanos().max(0) as u64)
                }
                _ => self.now,
            };
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
