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
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    continue;
                }
            },
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
