//! The TURN relays' sockets: per allocation a UDP socket, a TCP connection or a TLS
//! connection (rustls, the configured roots, verification on), each served by one task that
//! reports what it reads. No protocol here: the bytes go to [`crate::relay::Relays`].

// Socket glue: it reads the clock for its own deadlines (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use kvs_webrtc_turn::{RelayTransport, TurnUri};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

/// Writes queued per connection; beyond this, packets are dropped (as a congested network
/// would), never the framing: a queued item is always one whole STUN message or ChannelData.
const WRITE_QUEUE: usize = 1024;
/// The largest datagram read from a TURN server over UDP: what the storage peer sends back
/// (STUN, RTCP, DTLS) in a Data indication or ChannelData fits a path MTU with room to spare
/// (the host sockets read 2,048 bytes).
const DATAGRAM_BUFFER: usize = 4_096;
/// How much of a TCP/TLS stream is read at once (the framing reassembles messages).
const STREAM_BUFFER: usize = 16_384;

/// What a relay socket reports.
#[derive(Debug)]
pub(crate) enum RelayIoEvent {
    /// The socket is ready: bound (UDP) or connected, with TLS done.
    Connected {
        id: u64,
        local: SocketAddr,
        server: SocketAddr,
    },
    /// Bytes from the server (a datagram, or the next stream bytes).
    Received { id: u64, bytes: Vec<u8> },
    /// The socket failed or the server closed it.
    Failed { id: u64, reason: String },
}

/// Where to connect.
#[derive(Debug, Clone)]
struct RelayTarget {
    id: u64,
    uri: TurnUri,
    transport: RelayTransport,
    local_ip: IpAddr,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
}

/// The relay sockets of one ingestion.
#[derive(Debug)]
pub(crate) struct RelayIo {
    /// The local address sockets bind to: loopback for a local service, else unspecified.
    local_ip: IpAddr,
    /// The trusted roots of `turns:` servers.
    tls: Arc<rustls::ClientConfig>,
    /// How long a TCP connection and its TLS handshake may take.
    connect_timeout: Duration,
    events_tx: mpsc::Sender<RelayIoEvent>,
    events: mpsc::Receiver<RelayIoEvent>,
    writers: HashMap<u64, mpsc::Sender<Vec<u8>>>,
    tasks: HashMap<u64, JoinHandle<()>>,
    /// Tasks of closed relays, still writing what was queued.
    closing: Vec<JoinHandle<()>>,
}

impl RelayIo {
    pub(crate) fn new(
        local_ip: IpAddr,
        tls: Arc<rustls::ClientConfig>,
        connect_timeout: Duration,
    ) -> Self {
        let (events_tx, events) = mpsc::channel(1024);
        Self {
            local_ip,
            tls,
            connect_timeout,
            events_tx,
            events,
            writers: HashMap::new(),
            tasks: HashMap::new(),
            closing: Vec::new(),
        }
    }

    /// Open the socket of relay `id` to `uri` in the background; it reports
    /// [`RelayIoEvent::Connected`] or [`RelayIoEvent::Failed`].
    pub(crate) fn open(&mut self, id: u64, uri: TurnUri, transport: RelayTransport) {
        let (writer, writes) = mpsc::channel(WRITE_QUEUE);
        let target = RelayTarget {
            id,
            uri,
            transport,
            local_ip: self.local_ip,
            tls: Arc::clone(&self.tls),
            connect_timeout: self.connect_timeout,
        };
        let events = self.events_tx.clone();
        let span = tracing::debug_span!("turn", id, uri = %target.uri);
        let task = tokio::spawn(
            async move {
                if let Err(reason) = serve(&target, &events, writes).await {
                    let _ = events.send(RelayIoEvent::Failed { id, reason }).await;
                }
            }
            .instrument(span),
        );
        self.writers.insert(id, writer);
        self.tasks.insert(id, task);
    }

    /// Queue bytes for relay `id`'s server.
    pub(crate) fn send(&self, id: u64, bytes: Vec<u8>) {
        if let Some(writer) = self.writers.get(&id) {
            if writer.try_send(bytes).is_err() {
                tracing::debug!(id, "relay write queue full; packet dropped");
            }
        }
    }

    /// Close relay `id`'s socket once what is queued is written.
    pub(crate) fn close(&mut self, id: u64) {
        self.writers.remove(&id);
        if let Some(task) = self.tasks.remove(&id) {
            self.closing.retain(|t| !t.is_finished());
            self.closing.push(task);
        }
    }

    /// Close every socket once what is queued is written (the last media and the
    /// deallocations), waiting at most `grace`; what is left then is cut.
    pub(crate) async fn shutdown(&mut self, grace: Duration) {
        self.writers.clear();
        let mut tasks: Vec<JoinHandle<()>> = self.tasks.drain().map(|(_, t)| t).collect();
        tasks.append(&mut self.closing);
        let deadline = tokio::time::Instant::now() + grace;
        for task in &mut tasks {
            if tokio::time::timeout_at(deadline, &mut *task).await.is_err() {
                task.abort();
            }
        }
    }

    /// The next report.
    pub(crate) async fn recv(&mut self) -> Option<RelayIoEvent> {
        self.events.recv().await
    }
}

impl Drop for RelayIo {
    fn drop(&mut self) {
        for task in self.tasks.values().chain(&self.closing) {
            task.abort();
        }
    }
}

async fn serve(
    target: &RelayTarget,
    events: &mpsc::Sender<RelayIoEvent>,
    writes: mpsc::Receiver<Vec<u8>>,
) -> Result<(), String> {
    let server = resolve(&target.uri, target.local_ip).await?;
    let id = target.id;
    match target.transport {
        RelayTransport::Udp => {
            let socket = UdpSocket::bind(SocketAddr::new(target.local_ip, 0))
                .await
                .map_err(|e| format!("cannot bind a UDP socket: {e}"))?;
            socket
                .connect(server)
                .await
                .map_err(|e| format!("cannot reach {server}: {e}"))?;
            let local = socket.local_addr().map_err(|e| e.to_string())?;
            report(events, RelayIoEvent::Connected { id, local, server }).await?;
            pump_datagrams(id, socket, events, writes).await
        }
        RelayTransport::Tcp | RelayTransport::Tls => {
            let stream = tokio::time::timeout(target.connect_timeout, TcpStream::connect(server))
                .await
                .map_err(|_| {
                    format!(
                        "no TCP connection to {server} within {:?}",
                        target.connect_timeout
                    )
                })?
                .map_err(|e| format!("cannot connect to {server}: {e}"))?;
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().map_err(|e| e.to_string())?;
            if target.transport == RelayTransport::Tcp {
                report(events, RelayIoEvent::Connected { id, local, server }).await?;
                return pump_stream(id, stream, events, writes).await;
            }
            let name = rustls_pki_types::ServerName::try_from(target.uri.host().to_owned())
                .map_err(|e| {
                    format!("{} is not a valid TLS server name: {e}", target.uri.host())
                })?;
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(&target.tls));
            let tls = tokio::time::timeout(target.connect_timeout, connector.connect(name, stream))
                .await
                .map_err(|_| {
                    format!(
                        "no TLS handshake with {server} within {:?}",
                        target.connect_timeout
                    )
                })?
                .map_err(|e| format!("TLS with {server} failed: {e}"))?;
            report(events, RelayIoEvent::Connected { id, local, server }).await?;
            pump_stream(id, tls, events, writes).await
        }
    }
}

/// The server's address: IPv4 first (the storage peer's candidates are IPv4).
async fn resolve(uri: &TurnUri, local_ip: IpAddr) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(uri.host_port())
        .await
        .map_err(|e| format!("{} does not resolve: {e}", uri.host()))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4() == local_ip.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{} resolves to no address", uri.host()))
}

async fn report(events: &mpsc::Sender<RelayIoEvent>, event: RelayIoEvent) -> Result<(), String> {
    // The driver is gone: stop quietly.
    events.send(event).await.map_err(|_| String::new())
}

async fn pump_datagrams(
    id: u64,
    socket: UdpSocket,
    events: &mpsc::Sender<RelayIoEvent>,
    mut writes: mpsc::Receiver<Vec<u8>>,
) -> Result<(), String> {
    let mut buf = vec![0u8; DATAGRAM_BUFFER];
    loop {
        tokio::select! {
            write = writes.recv() => match write {
                Some(bytes) => {
                    if let Err(e) = socket.send(&bytes).await {
                        tracing::debug!(error = %e, "TURN datagram not sent");
                    }
                }
                None => return Ok(()),
            },
            read = socket.recv(&mut buf) => match read {
                Ok(n) => report(events, RelayIoEvent::Received { id, bytes: buf[..n].to_vec() }).await?,
                // ICMP port unreachable: the next datagram may get through; the allocation's
                // timeout decides.
                Err(e) => tracing::debug!(error = %e, "TURN datagram not received"),
            },
        }
    }
}

async fn pump_stream<S: AsyncRead + AsyncWrite + Unpin>(
    id: u64,
    stream: S,
    events: &mpsc::Sender<RelayIoEvent>,
    mut writes: mpsc::Receiver<Vec<u8>>,
) -> Result<(), String> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf = vec![0u8; STREAM_BUFFER];
    loop {
        tokio::select! {
            write = writes.recv() => match write {
                Some(bytes) => writer
                    .write_all(&bytes)
                    .await
                    .map_err(|e| format!("writing to the TURN server failed: {e}"))?,
                None => {
                    let _ = writer.shutdown().await;
                    return Ok(());
                }
            },
            read = reader.read(&mut buf) => match read {
                Ok(0) => return Err("the TURN server closed the connection".into()),
                Ok(n) => report(events, RelayIoEvent::Received { id, bytes: buf[..n].to_vec() }).await?,
                Err(e) => return Err(format!("reading from the TURN server failed: {e}")),
            },
        }
    }
}
