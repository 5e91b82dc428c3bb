//! One HTTP/1.1 listener (plain or TLS) that hands each request to a handler. WebSocket
//! upgrades pass through (`with_upgrades`).
//!
//! **Connection slots** (issue #27 item 3). A listener holds at most
//! [`Limits::max_connections`](crate::Limits::max_connections) connections. One that has not
//! sent a complete request head (a new one, in its TLS handshake or before its first request,
//! or a kept-alive one between requests) is *waiting*: its TLS handshake must end within
//! `handshake_timeout` and each request head arrive within `request_head_timeout`. When every
//! slot is taken, a new connection takes a waiting one's, which is closed: the one that has
//! waited longest without sending a byte, else the one that has waited longest. Clients that
//! connect and say nothing, however many and however fast they reconnect, therefore never
//! shut out one that sends a request, and a request never waits for their timeouts.
//! Connections whose request is being served are never closed for room (request bodies have
//! bounds of their own, `http_util::BodyReads`); only they can make a new connection wait.
//!
//! **Shutdown** (issue #27 item 4). Accepting stops; connections get [`SHUTDOWN_GRACE`] to
//! finish the request they are serving and are closed then, whatever their clients do.
//!
//! **Host** (issue #27 item 5). A request whose `Host` is not one of the emulator's own
//! addresses or names ([`AllowedHosts`](crate::hosts::AllowedHosts)) is refused with 421
//! before any handler sees it.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::hosts::AllowedHosts;

/// The response type every handler returns.
pub(crate) type HttpResponse = Response<ResponseBody>;

/// A response body: whole, or streamed from a channel (GetMedia) whose sender is a task that
/// ends when the receiver is dropped (the client went away or the connection closed).
#[derive(Debug)]
pub(crate) enum ResponseBody {
    /// The whole body, known up front.
    Full(Full<Bytes>),
    /// Chunks as a task produces them; the body ends when the task drops its sender. The
    /// channel's capacity bounds what waits in memory.
    Channel {
        /// The chunks.
        chunks: tokio::sync::mpsc::Receiver<Bytes>,
        /// The connection's slot, set by the server: the request is being served (its slot
        /// is not given to a new connection) until the body ends.
        serving: Option<Arc<Slot>>,
    },
}

impl ResponseBody {
    /// A body streamed from `chunks`.
    pub(crate) fn channel(chunks: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        Self::Channel {
            chunks,
            serving: None,
        }
    }
}

/// A 200 response with a whole body (set the status and headers on it).
pub(crate) fn full_response(body: Full<Bytes>) -> HttpResponse {
    Response::new(body.into())
}

impl Default for ResponseBody {
    fn default() -> Self {
        Self::Full(Full::default())
    }
}

impl From<Full<Bytes>> for ResponseBody {
    fn from(full: Full<Bytes>) -> Self {
        Self::Full(full)
    }
}

impl hyper::body::Body for ResponseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Self::Full(full) => Pin::new(full).poll_frame(cx),
            Self::Channel { chunks, serving } => {
                let polled = chunks.poll_recv(cx);
                if let std::task::Poll::Ready(None) = polled {
                    // The body is over: the connection waits for its next request.
                    if let Some(slot) = serving.take() {
                        slot.waits_for_head();
                    }
                }
                polled.map(|chunk| chunk.map(|b| Ok(hyper::body::Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(full) => full.is_end_stream(),
            Self::Channel { .. } => false,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            Self::Full(full) => full.size_hint(),
            Self::Channel { .. } => hyper::body::SizeHint::default(),
        }
    }
}

/// A request handler: one per listener.
pub(crate) type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = HttpResponse> + Send>> + Send + Sync,
>;

/// How long connections may go on finishing their requests after shutdown begins; then they
/// are closed. With the recordings' finalization and the log's flush this keeps
/// `kvs-emulator serve` within 2 s of SIGTERM.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// The first and the longest wait after a failed accept.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));
/// Failed accepts are logged at most once per this interval.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// What a listener is and how it bounds its connections.
#[derive(Debug, Clone)]
pub(crate) struct ListenerConfig {
    /// Its name in logs.
    pub name: &'static str,
    /// Connections held at once (see the module docs).
    pub max_connections: usize,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How long a request head may take to arrive (also between kept-alive requests).
    pub request_head_timeout: Duration,
    /// The `Host` values it answers.
    pub hosts: Arc<AllowedHosts>,
}

/// What a listener does after `accept` fails (EMFILE/ENFILE when file descriptors run out): wait,
/// longer each time, and say so at most once per interval, instead of retrying at once forever
/// (a full core and ~78 MB/s of log lines, issue #13 item 1). The connections it has keep being
/// served meanwhile.
#[derive(Debug)]
struct AcceptBackoff {
    delay: Duration,
    failures_since_log: u64,
    last_log: Option<std::time::Instant>,
}

impl AcceptBackoff {
    fn new() -> Self {
        Self {
            delay: ACCEPT_BACKOFF.0,
            failures_since_log: 0,
            last_log: None,
        }
    }

    /// A failed accept: log if due, and how long to wait.
    fn failed(&mut self, error: &std::io::Error, listener: &str) -> Duration {
        self.failures_since_log += 1;
        let now = std::time::Instant::now();
        if self
            .last_log
            .is_none_or(|at| now.duration_since(at) >= ACCEPT_LOG_INTERVAL)
        {
            tracing::warn!(
                listener,
                %error,
                failures = self.failures_since_log,
                backoff_ms = self.delay.as_millis() as u64,
                "accept failed; backing off (existing connections are still served)"
            );
            self.failures_since_log = 0;
            self.last_log = Some(now);
        }
        let delay = self.delay;
        self.delay = (self.delay * 2).min(ACCEPT_BACKOFF.1);
        delay
    }

    fn succeeded(&mut self) {
        self.delay = ACCEPT_BACKOFF.0;
    }
}

/// What the waiting registry knows of one connection: how to close it, and whether it has sent
/// anything since it began waiting.
#[derive(Debug, Default)]
struct Presence {
    close: CancellationToken,
    heard: AtomicBool,
}

/// The connections of one listener that are waiting for a request head, oldest first.
#[derive(Debug, Default)]
struct Waiting {
    state: Mutex<WaitingState>,
}

#[derive(Debug, Default)]
struct WaitingState {
    next_ticket: u64,
    queue: BTreeMap<u64, Arc<Presence>>,
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, WaitingState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection starts waiting (again, silent so far): its ticket.
    fn enter(&self, presence: &Arc<Presence>) -> u64 {
        presence.heard.store(false, Ordering::Relaxed);
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.insert(ticket, presence.clone());
        ticket
    }

    fn leave(&self, ticket: u64) {
        self.lock().queue.remove(&ticket);
    }

    /// Close the waiting connection that has waited longest without sending a byte, else the
    /// one that has waited longest; false when none is waiting. A client that is sending its
    /// handshake or request gives way last, so a flood of silent connections cannot push it
    /// out while it talks.
    fn close_oldest(&self) -> bool {
        let mut state = self.lock();
        let silent = state
            .queue
            .iter()
            .find(|(_, p)| !p.heard.load(Ordering::Relaxed))
            .map(|(ticket, _)| *ticket);
        let victim = silent.or_else(|| state.queue.keys().next().copied());
        match victim.and_then(|ticket| state.queue.remove(&ticket)) {
            Some(presence) => {
                presence.close.cancel();
                true
            }
            None => false,
        }
    }
}

/// One connection's slot: its permit, and its place among the waiting connections while it
/// has no request to serve.
#[derive(Debug)]
pub(crate) struct Slot {
    waiting: Arc<Waiting>,
    presence: Arc<Presence>,
    ticket: Mutex<Option<u64>>,
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    fn new(waiting: Arc<Waiting>, permit: OwnedSemaphorePermit) -> Self {
        let slot = Self {
            waiting,
            presence: Arc::default(),
            ticket: Mutex::new(None),
            _permit: permit,
        };
        slot.waits_for_head();
        slot
    }

    fn ticket(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.ticket.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fires when the connection must give its slot to a new one.
    fn close(&self) -> &CancellationToken {
        &self.presence.close
    }

    /// No request is being served: the connection is waiting (again).
    fn waits_for_head(&self) {
        let mut ticket = self.ticket();
        if ticket.is_none() {
            *ticket = Some(self.waiting.enter(&self.presence));
        }
    }

    /// A request head arrived: the connection is no longer waiting.
    fn has_head(&self) {
        if let Some(ticket) = self.ticket().take() {
            self.waiting.leave(ticket);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.has_head();
    }
}

/// A connection's byte stream that notes, for [`Waiting::close_oldest`], that its client sent
/// something.
struct Observed<S> {
    inner: S,
    presence: Arc<Presence>,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Observed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.presence.heard.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Observed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accept connections until `shutdown` fires, then give open requests [`SHUTDOWN_GRACE`].
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Handler,
    shutdown: CancellationToken,
    config: ListenerConfig,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let waiting = Arc::new(Waiting::default());
    let tracker = tokio_util::task::TaskTracker::new();
    let mut backoff = AcceptBackoff::new();
    let name = config.name;
    let config = Arc::new(config);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff.succeeded();
                a
            }
            Err(e) => {
                let wait = backoff.failed(&e, name);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => continue,
                }
            }
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Every slot is taken: a connection waiting for a request head gives way (see
                // `Waiting::close_oldest`). When every one is serving a request, wait for one.
                if waiting.close_oldest() {
                    tracing::debug!(
                        listener = name,
                        "all slots taken; the oldest idle connection was closed"
                    );
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let slot = Arc::new(Slot::new(waiting.clone(), permit));
        tracker.spawn(connection(
            stream,
            peer,
            tls.clone(),
            handler.clone(),
            shutdown.clone(),
            slot,
            config.clone(),
        ));
    }
    tracker.close();
    tracker.wait().await;
}

/// One accepted connection: its TLS handshake, then its requests.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    handler: Handler,
    shutdown: CancellationToken,
    slot: Arc<Slot>,
    config: Arc<ListenerConfig>,
) {
    let name = config.name;
    let stream = Observed {
        inner: stream,
        presence: slot.presence.clone(),
    };
    let Some(acceptor) = tls else {
        return serve_connection(stream, peer, None, handler, shutdown, slot, &config).await;
    };
    let handshake = tokio::time::timeout(config.handshake_timeout, acceptor.accept(stream));
    let tls_stream = tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = slot.close().cancelled() => {
            tracing::debug!(listener = name, %peer, "closed in its TLS handshake: a new connection needed the slot");
            return;
        }
        result = handshake => match result {
            Ok(Ok(tls_stream)) => tls_stream,
            Ok(Err(e)) => {
                tracing::debug!(listener = name, %peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(listener = name, %peer, "TLS handshake timed out");
                return;
            }
        },
    };
    // Only the IoT credentials endpoint asks for one; its handler reads it from the request.
    let certificates = tls_stream.get_ref().1.peer_certificates().map(|chain| {
        crate::iot::PeerCertificates(Arc::new(
            chain.iter().map(|c| c.clone().into_owned()).collect(),
        ))
    });
    serve_connection(
        tls_stream,
        peer,
        certificates,
        handler,
        shutdown,
        slot,
        &config,
    )
    .await;
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    certificates: Option<crate::iot::PeerCertificates>,
    handler: Handler,
    shutdown: CancellationToken,
    slot: Arc<Slot>,
    config: &ListenerConfig,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let close = slot.close().clone();
    let hosts = config.hosts.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        slot.has_head();
        if let Some(certificates) = &certificates {
            req.extensions_mut().insert(certificates.clone());
        }
        let fut: Pin<Box<dyn Future<Output = HttpResponse> + Send>> = match hosts.refusal(&req) {
            Some(response) => Box::pin(std::future::ready(response)),
            None => handler(req),
        };
        let slot = slot.clone();
        async move {
            let mut response = fut.await;
            match response.body_mut() {
                // A streamed body is still being served: the slot waits once it ends.
                ResponseBody::Channel { serving, .. } => *serving = Some(slot),
                ResponseBody::Full(_) => slot.waits_for_head(),
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(config.request_head_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(listener = config.name, %peer, error = %e, "HTTP connection ended with an error");
            }
        }
        _ = close.cancelled() => {
            tracing::debug!(listener = config.name, %peer, "idle connection closed: a new connection needed the slot");
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            if tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await.is_err() {
                tracing::debug!(listener = config.name, %peer, "connection closed at shutdown with a request unfinished");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_silent_connection_that_waited_longest_gives_way_first() {
        let waiting = Waiting::default();
        let presences: Vec<Arc<Presence>> = (0..4).map(|_| Arc::default()).collect();
        let tickets: Vec<u64> = presences.iter().map(|p| waiting.enter(p)).collect();
        // The oldest is sending its handshake; the second got its request head.
        presences[0].heard.store(true, Ordering::Relaxed);
        waiting.leave(tickets[1]);
        assert!(waiting.close_oldest());
        assert!(presences[2].close.is_cancelled(), "the oldest silent one");
        assert!(waiting.close_oldest());
        assert!(presences[3].close.is_cancelled());
        assert!(waiting.close_oldest());
        assert!(
            presences[0].close.is_cancelled(),
            "a talking one only when no silent one is left"
        );
        assert!(
            !presences[1].close.is_cancelled(),
            "one serving a request is never closed"
        );
        assert!(!waiting.close_oldest(), "none left waiting");
    }

    #[tokio::test]
    async fn a_streamed_body_keeps_its_connection_serving_until_it_ends() {
        use http_body_util::BodyExt;

        let waiting = Arc::new(Waiting::default());
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let slot = Arc::new(Slot::new(waiting.clone(), permit));
        slot.has_head();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let mut body = ResponseBody::channel(rx);
        if let ResponseBody::Channel { serving, .. } = &mut body {
            *serving = Some(slot.clone());
        }
        tx.send(Bytes::from_static(b"chunk")).await.unwrap();
        let chunk = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(chunk, Bytes::from_static(b"chunk"));
        assert!(
            !waiting.close_oldest(),
            "a connection streaming a body is serving, not waiting"
        );
        drop(tx);
        assert!(
            body.frame().await.is_none(),
            "the body ends with its sender"
        );
        assert!(
            waiting.close_oldest(),
            "waiting for a request once the body ended"
        );
        assert!(slot.close().is_cancelled());
    }
}
