//! The sockets media flows through: one UDP socket per local IPv4 address, each offered as a
//! host candidate. The TURN client (relayed candidates) plugs in here: it adds a candidate to
//! the core and carries the datagrams whose `source` is its relayed address.
//!
//! Sending goes through [`Batcher`]: a frame's RTP packets leave in one `sendmsg` with UDP
//! generic segmentation offload where the kernel offers it (quinn-udp, the QUIC stack's
//! maintained socket layer, sets it up and falls back when a device refuses). quinn-udp also
//! turns UDP generic receive offload on, so one read may carry several datagrams of a flow
//! (the kernel coalesces them, and a GSO send arrives whole on loopback): they are read with
//! their segment size and handed out one by one.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::task::Poll;

use str0m::Candidate;
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::batch::{Batch, Batcher};
use crate::error::{Error, ErrorKind};

/// The most one read takes: quinn-udp turns UDP GRO on, so the kernel may hand over several
/// datagrams of one flow at once (up to 64 KiB, as a GSO send on loopback arrives).
const MAX_READ: usize = 65536;

/// A datagram that arrived on one of the sockets.
#[derive(Debug)]
pub(crate) struct Datagram {
    /// The socket's address (the local candidate it arrived on).
    pub(crate) local: SocketAddr,
    /// Who sent it.
    pub(crate) source: SocketAddr,
    /// The bytes.
    pub(crate) contents: Vec<u8>,
}

/// One host socket: its address (read once) and its GSO state.
#[derive(Debug)]
struct HostSocket {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    state: quinn_udp::UdpSocketState,
}

/// The host sockets: sending through [`Batcher`], receiving straight into the driver (no task
/// of their own: one wake-up per datagram, not two).
#[derive(Debug)]
pub(crate) struct HostSockets {
    sockets: Vec<HostSocket>,
    outgoing: Batcher,
    /// Where datagrams are read into.
    buf: Vec<u8>,
    /// Datagrams read together (GRO) and not handed out yet.
    received: VecDeque<Datagram>,
}

impl HostSockets {
    /// Bind one socket per local address: loopback only when the service is on this machine
    /// (the emulator), otherwise every non-loopback IPv4 address.
    pub(crate) async fn bind(service_is_local: bool) -> Result<Self, Error> {
        let addresses = local_addresses(service_is_local);
        if addresses.is_empty() {
            return Err(Error::new(
                ErrorKind::Io,
                "this machine has no IPv4 address to send media from",
            ));
        }
        let mut sockets = Vec::new();
        for ip in addresses {
            let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await.map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!("cannot bind a UDP socket on {ip}: {e}"),
                )
                .with_source(e)
            })?;
            let socket = Arc::new(socket);
            let local = socket.local_addr().map_err(|e| {
                Error::new(ErrorKind::Io, format!("no local address: {e}")).with_source(e)
            })?;
            let state = quinn_udp::UdpSocketState::new((&*socket).into()).map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!("cannot set up the UDP socket on {local}"),
                )
                .with_source(e)
            })?;
            sockets.push(HostSocket {
                socket,
                local,
                state,
            });
        }
        let max_segments = sockets
            .iter()
            .map(|s| s.state.max_gso_segments())
            .min()
            .unwrap_or(1);
        tracing::debug!(max_segments, "UDP segmentation offload");
        Ok(Self {
            sockets,
            outgoing: Batcher::new(max_segments),
            buf: vec![0; MAX_READ],
            received: VecDeque::new(),
        })
    }

    /// A host candidate for each socket.
    pub(crate) fn candidates(&self) -> Vec<Candidate> {
        self.sockets
            .iter()
            .filter_map(|s| Candidate::host(s.local, "udp").ok())
            .collect()
    }

    /// The sockets' addresses.
    pub(crate) fn locals(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|s| s.local).collect()
    }

    /// The next datagram from any socket. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Datagram {
        let Self {
            sockets,
            buf,
            received,
            ..
        } = self;
        std::future::poll_fn(|cx| {
            if let Some(datagram) = received.pop_front() {
                return Poll::Ready(datagram);
            }
            for socket in sockets.iter() {
                while socket.socket.poll_recv_ready(cx).is_ready() {
                    let mut meta = [quinn_udp::RecvMeta::default()];
                    let read = socket.socket.try_io(Interest::READABLE, || {
                        let mut bufs = [std::io::IoSliceMut::new(buf)];
                        socket
                            .state
                            .recv((&*socket.socket).into(), &mut bufs, &mut meta)
                    });
                    match read {
                        Ok(_) => {
                            let [meta] = meta;
                            // `stride` bytes each, the last one possibly shorter.
                            received.extend(buf[..meta.len].chunks(meta.stride.max(1)).map(
                                |contents| Datagram {
                                    local: socket.local,
                                    source: meta.addr,
                                    contents: contents.to_vec(),
                                },
                            ));
                            if let Some(datagram) = received.pop_front() {
                                return Poll::Ready(datagram);
                            }
                        }
                        // Readiness was stale: polling again registers for the next datagram.
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        // ICMP port unreachable and the like: the next datagram may be fine.
                        Err(e) => {
                            tracing::debug!(error = %e, local = %socket.local, "UDP receive failed");
                            cx.waker().wake_by_ref();
                            break;
                        }
                    }
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Send from the socket bound to `source`, after the datagrams sent before it: gathered
    /// into a GSO batch with its neighbours, and sent at the latest by [`HostSockets::flush`].
    /// Failures are dropped datagrams, as on any network: ICE and RTCP recover.
    pub(crate) async fn send(
        &mut self,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        self.outgoing.push(source, destination, contents);
        self.send_ready().await;
    }

    /// Send everything gathered: call before waiting for anything else.
    pub(crate) async fn flush(&mut self) {
        self.outgoing.finish();
        self.send_ready().await;
    }

    async fn send_ready(&mut self) {
        while let Some(batch) = self.outgoing.poll_batch() {
            let Some(socket) = self.sockets.iter().find(|s| s.local == batch.source) else {
                continue;
            };
            if let Err(e) = send_batch(socket, &batch).await {
                tracing::debug!(error = %e, destination = %batch.destination, "UDP send failed");
                // A device that refuses segmentation turns it off for the socket: what it
                // refused goes out one datagram at a time.
                if batch.segments > 1 && socket.state.max_gso_segments() == 1 {
                    self.outgoing = Batcher::new(1);
                    for datagram in batch.datagrams() {
                        let _ = socket.socket.send_to(datagram, batch.destination).await;
                    }
                }
            }
        }
    }
}

/// One batch in one `sendmsg` (waiting while the socket's buffer is full).
async fn send_batch(socket: &HostSocket, batch: &Batch) -> std::io::Result<()> {
    let transmit = quinn_udp::Transmit {
        destination: batch.destination,
        ecn: None,
        contents: &batch.contents,
        segment_size: (batch.segments > 1).then_some(batch.segment_size),
        src_ip: None,
    };
    socket
        .socket
        .async_io(Interest::WRITABLE, || {
            socket.state.try_send((&*socket.socket).into(), &transmit)
        })
        .await
}

fn local_addresses(service_is_local: bool) -> Vec<IpAddr> {
    if service_is_local {
        return vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    }
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces
            .into_iter()
            .filter(|i| !i.is_loopback())
            .map(|i| i.ip())
            .filter(IpAddr::is_ipv4)
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list network interfaces");
            Vec::new()
        }
    }
}

/// Whether an endpoint URL's host is this machine (`localhost`, `127.x`, `::1`).
pub(crate) fn is_local_url(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The UDP addresses of the STUN servers among ICE server URIs: `stun:` URIs, and `turn:` URIs
/// over UDP (a TURN server answers Binding requests too). `turns:` (TLS) and TCP are left out.
pub(crate) async fn stun_servers(uris: &[String]) -> Vec<SocketAddr> {
    let mut servers = Vec::new();
    for uri in uris {
        let Some(rest) = uri
            .strip_prefix("stun:")
            .or_else(|| uri.strip_prefix("turn:"))
        else {
            continue;
        };
        let (host_port, query) = rest.split_once('?').unwrap_or((rest, ""));
        if query.contains("transport=tcp") {
            continue;
        }
        let host_port = if host_port
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host_port.to_owned()
        } else {
            format!("{host_port}:3478")
        };
        let resolved = tokio::net::lookup_host(host_port.clone()).await;
        match resolved {
            Ok(addrs) => servers.extend(addrs.filter(SocketAddr::is_ipv4).take(1)),
            Err(e) => tracing::debug!(%uri, error = %e, "a STUN server does not resolve"),
        }
    }
    servers.sort();
    servers.dedup();
    servers
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn stun_servers_come_from_stun_and_udp_turn_uris() {
        let uris = [
            "stun:127.0.0.1:3478".to_owned(),
            "turn:127.0.0.2:443?transport=udp".to_owned(),
            "turns:127.0.0.3:443?transport=udp".to_owned(),
            "turn:127.0.0.4:443?transport=tcp".to_owned(),
            "stun:127.0.0.1".to_owned(),
            "stun:no-such-host.invalid:3478".to_owned(),
        ];
        let servers: Vec<String> = stun_servers(&uris)
            .await
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(servers, ["127.0.0.1:3478", "127.0.0.2:443"]);
    }

    /// With UDP GRO on (quinn-udp turns it on), the kernel may hand over several datagrams of
    /// one flow in one read, as loopback does with a GSO send: each must come out alone.
    #[tokio::test]
    async fn datagrams_that_arrive_coalesced_come_out_one_by_one() {
        let mut sockets = HostSockets::bind(true).await.unwrap();
        let to = sockets.locals()[0];
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let state = quinn_udp::UdpSocketState::new((&peer).into()).unwrap();
        if state.max_gso_segments() < 3 {
            eprintln!("no UDP GSO on this kernel: nothing is coalesced, nothing to check");
            return;
        }
        let contents: Vec<u8> = (0..250u32).map(|i| i as u8).collect();
        let transmit = quinn_udp::Transmit {
            destination: to,
            ecn: None,
            contents: &contents,
            segment_size: Some(100),
            src_ip: None,
        };
        state.try_send((&peer).into(), &transmit).unwrap();
        peer.send_to(b"alone", to).unwrap();

        let mut received = Vec::new();
        for _ in 0..4 {
            let datagram = tokio::time::timeout(Duration::from_secs(5), sockets.recv())
                .await
                .expect("a datagram within 5 s");
            assert_eq!(datagram.local, to);
            assert_eq!(datagram.source, peer.local_addr().unwrap());
            received.push(datagram.contents);
        }
        assert_eq!(
            received,
            [
                contents[..100].to_vec(),
                contents[100..200].to_vec(),
                contents[200..].to_vec(),
                b"alone".to_vec(),
            ]
        );
    }

    #[test]
    fn local_urls_are_recognised() {
        assert!(is_local_url("wss://127.0.0.1:4433/"));
        assert!(is_local_url("wss://localhost:4433"));
        assert!(is_local_url("https://[::1]:443/x"));
        assert!(!is_local_url(
            "wss://m-123.kinesisvideo.us-west-2.amazonaws.com"
        ));
        assert!(!is_local_url("https://10.0.0.1:443"));
    }
}
