//! turn-server-proto's sans-IO TURN server wrapped for simulated-time tests: bytes in, bytes
//! out, the relayed sockets it asks for granted at once, and an RFC-conformant stream (it
//! does not pad ChannelData on TCP by itself; this does, as coturn does).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use turn_server_proto::api::{TurnServerApi, TurnServerPollRet};
use turn_server_proto::server::TurnServer;
use turn_server_proto::stun::agent::Transmit;
use turn_server_proto::stun::Instant as ProtoInstant;
use turn_server_proto::types::TransportType;

/// What the server sends: `(from, to, bytes)`.
pub type Sent = (SocketAddr, SocketAddr, Vec<u8>);

/// A simulated TURN server.
#[derive(Debug)]
pub struct SimTurnServer {
    server: TurnServer,
    tcp: bool,
    origin: Instant,
    relay_ip: std::net::IpAddr,
    next_relay_port: u16,
}

impl SimTurnServer {
    /// A server listening on `listen` over TCP (`tcp`) or UDP, with realm `kvs`, whose clock
    /// starts at `origin`. Relayed addresses are `listen`'s IP from port 49152 up.
    pub fn new(listen: SocketAddr, tcp: bool, origin: Instant) -> Self {
        let transport = if tcp {
            TransportType::Tcp
        } else {
            TransportType::Udp
        };
        Self {
            server: TurnServer::new(transport, listen, "kvs".into()),
            tcp,
            origin,
            relay_ip: listen.ip(),
            next_relay_port: 49152,
        }
    }

    /// Accept these long-term credentials.
    pub fn add_user(&mut self, username: &str, password: &str) {
        self.server.add_user(username.into(), password.into());
    }

    /// Nonces expire after `expiry` (stale-nonce tests).
    pub fn set_nonce_expiry(&mut self, expiry: Duration) {
        self.server.set_nonce_expiry_duration(expiry);
    }

    /// The first relayed address the server grants.
    pub fn first_relayed(&self) -> SocketAddr {
        SocketAddr::new(self.relay_ip, 49152)
    }

    /// `bytes` arrive from `from` at `to` (the listening address, or a relayed one for a
    /// peer); what the server sends back.
    pub fn receive(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        bytes: &[u8],
    ) -> Vec<Sent> {
        let transport = if self.tcp && to == self.server.listen_address() {
            TransportType::Tcp
        } else {
            TransportType::Udp
        };
        let t = self.t(now);
        let mut sent = Vec::new();
        if let Some(out) = self
            .server
            .recv(Transmit::new(bytes, transport, from, to), t)
        {
            let out = out.build();
            sent.push(self.conform(out.from, out.to, out.data));
        }
        sent.extend(self.poll(now));
        sent
    }

    /// Timers, granted sockets, and what the server sends meanwhile.
    pub fn poll(&mut self, now: Instant) -> Vec<Sent> {
        let t = self.t(now);
        while let TurnServerPollRet::AllocateSocket {
            transport,
            listen_addr,
            client_addr,
            allocation_transport,
            family,
        } = self.server.poll(t)
        {
            let relayed = SocketAddr::new(self.relay_ip, self.next_relay_port);
            self.next_relay_port += 1;
            self.server.allocated_socket(
                transport,
                listen_addr,
                client_addr,
                allocation_transport,
                family,
                Ok(relayed),
                t,
            );
        }
        let mut sent = Vec::new();
        while let Some(out) = self.server.poll_transmit(t) {
            sent.push(self.conform(out.from, out.to, out.data));
        }
        sent
    }

    /// When the server next needs [`SimTurnServer::poll`].
    pub fn deadline(&mut self, now: Instant) -> Instant {
        match self.server.poll(self.t(now)) {
            TurnServerPollRet::WaitUntil(at) => {
                self.origin + Duration::from_nanos(u64::try_from(at.as_nanos()).unwrap_or(0))
            }
            _ => now,
        }
    }

    fn t(&self, now: Instant) -> ProtoInstant {
        ProtoInstant::from_nanos(i64::try_from((now - self.origin).as_nanos()).unwrap_or(i64::MAX))
    }

    /// On a stream, ChannelData is padded to 4 bytes (RFC 8656 §12.5), as coturn sends it.
    fn conform(&self, from: SocketAddr, to: SocketAddr, mut data: Vec<u8>) -> Sent {
        if self.tcp
            && from == self.server.listen_address()
            && data.first().is_some_and(|b| b >> 6 == 1)
        {
            data.resize(data.len().next_multiple_of(4), 0);
        }
        (from, to, data)
    }
}
