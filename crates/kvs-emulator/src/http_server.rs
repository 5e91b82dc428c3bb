//! One HTTP/1.1 listener (plain or TLS) that hands each request to a handler, with a connection
//! cap and graceful shutdown. WebSocket upgrades pass through (`with_upgrades`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// The response type every handler returns.
pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// A request handler: one per listener.
pub(crate) type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = HttpResponse> + Send>> + Send + Sync,
>;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first and the longest wait after a failed accept.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));
/// Failed accepts are logged at most once per this interval.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(5);

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

/// Accept connections until `shutdown` fires, then let open requests finish.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Handler,
    shutdown: CancellationToken,
    max_connections: usize,
    name: &'static str,
) {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let tracker = tokio_util::task::TaskTracker::new();
    let mut backoff = AcceptBackoff::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => None,
                accepted = listener.accept() => Some(accepted),
            };
            match accepted {
                None => break None,
                Some(Ok(a)) => {
                    backoff.succeeded();
                    break Some(a);
                }
                Some(Err(e)) => {
                    let wait = backoff.failed(&e, name);
                    tokio::select! {
                        _ = shutdown.cancelled() => break None,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        };
        let Some((stream, peer)) = accepted else {
            break;
        };
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _permit = permit;
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => serve_connection(tls_stream, peer, handler, shutdown).await,
                        Ok(Err(e)) => tracing::debug!(listener = name, %peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(listener = name, %peer, "TLS handshake timed out"),
                    }
                }
                None => serve_connection(stream, peer, handler, shutdown).await,
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    handler: Handler,
    shutdown: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let fut = handler(req);
        async move { Ok::<_, std::convert::Infallible>(fut.await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
