//! Signaling client configuration.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::backoff::Backoff;
use crate::error::{Error, ErrorKind};

/// How long a presigned URL is valid by default (the JS SDK's value).
pub const DEFAULT_URL_EXPIRY: Duration = Duration::from_secs(299);
/// How long opening the socket may take (the C SDK's `SIGNALING_CONNECT_TIMEOUT`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a ping is sent (the C SDK's libwebsockets setting).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(10);
/// How long the socket may stay silent after a ping before it counts as dead.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages waiting to be sent (paced by the service's rates) before `send` waits.
pub const DEFAULT_OUTBOUND_QUEUE: usize = 64;
/// Events waiting for the caller before the socket stops being read.
pub const DEFAULT_EVENT_QUEUE: usize = 256;

/// Configuration of a signaling [`Client`](crate::Client).
#[derive(Clone)]
pub struct Config {
    pub(crate) discovery: kvs_webrtc_discovery::Client,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) url_expiry: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) pong_timeout: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) max_reconnect_attempts: Option<u32>,
    pub(crate) outbound_queue: usize,
    pub(crate) event_queue: usize,
    pub(crate) held_messages: usize,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("url_expiry", &self.url_expiry)
            .field("connect_timeout", &self.connect_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("pong_timeout", &self.pong_timeout)
            .field("backoff", &self.backoff)
            .field("max_reconnect_attempts", &self.max_reconnect_attempts)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Start from the defaults over a discovery client (which supplies credentials, region and
    /// endpoints).
    pub fn builder(discovery: kvs_webrtc_discovery::Client) -> Builder {
        Builder {
            discovery,
            extra_roots: Vec::new(),
            url_expiry: DEFAULT_URL_EXPIRY,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            ping_interval: DEFAULT_PING_INTERVAL,
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            backoff: Backoff::default(),
            max_reconnect_attempts: None,
            outbound_queue: DEFAULT_OUTBOUND_QUEUE,
            event_queue: DEFAULT_EVENT_QUEUE,
            held_messages: DEFAULT_HELD_MESSAGES,
        }
    }

    /// The discovery client.
    pub fn discovery(&self) -> &kvs_webrtc_discovery::Client {
        &self.discovery
    }

    /// The TLS settings of the `wss://` connection: the system's roots plus the extra ones,
    /// verification on. The ingestion helper reuses them for `turns:` servers.
    pub fn tls(&self) -> &Arc<rustls::ClientConfig> {
        &self.tls
    }
}

/// Builder of [`Config`].
#[derive(Debug)]
pub struct Builder {
    discovery: kvs_webrtc_discovery::Client,
    extra_roots: Vec<Vec<u8>>,
    url_expiry: Duration,
    connect_timeout: Duration,
    ping_interval: Duration,
    pong_timeout: Duration,
    backoff: Backoff,
    max_reconnect_attempts: Option<u32>,
    outbound_queue: usize,
    event_queue: usize,
    held_messages: usize,
}

/// Received messages the background task holds while the event queue is full (default).
const DEFAULT_HELD_MESSAGES: usize = 4096;

impl Builder {
    /// Also trust this CA certificate (PEM), e.g. kvs-emulator's. The system's roots stay
    /// trusted and verification stays on; there is no way to turn it off.
    pub fn trust_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_roots.push(pem.into());
        self
    }

    /// How long each presigned URL is valid (default 299 s, at most 7 days). A fresh URL is
    /// signed for every connection attempt.
    pub fn url_expiry(mut self, expiry: Duration) -> Self {
        self.url_expiry = expiry;
        self
    }

    /// How long opening the socket may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How often to ping (default 10 s), and how long silence after that means the socket is
    /// dead (default 10 s).
    pub fn keep_alive(mut self, ping_interval: Duration, pong_timeout: Duration) -> Self {
        self.ping_interval = ping_interval;
        self.pong_timeout = pong_timeout;
        self
    }

    /// Reconnect delays (default 100 ms doubling to 10 s, full jitter).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Give up after this many failed reconnect attempts in a row (default: never, like the
    /// C SDK).
    pub fn max_reconnect_attempts(mut self, attempts: u32) -> Self {
        self.max_reconnect_attempts = Some(attempts);
        self
    }

    /// Bounds of the outbound message queue and of the event queue (defaults 64 and 256).
    pub fn queue_sizes(mut self, outbound: usize, events: usize) -> Self {
        self.outbound_queue = outbound.max(1);
        self.event_queue = events.max(1);
        self
    }

    /// How many received messages the background task holds, beyond the event queue, while the
    /// application does not read events (default 4096). The socket is read regardless; messages
    /// beyond this are dropped and reported as [`Event::MessagesLost`](crate::Event::MessagesLost).
    pub fn held_messages(mut self, messages: usize) -> Self {
        self.held_messages = messages;
        self
    }

    /// Finish: load the system's root certificates plus the extra ones.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when an extra certificate is not valid PEM or when no root
    /// certificate at all could be loaded.
    pub fn build(self) -> Result<Config, Error> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for err in &native.errors {
            tracing::debug!(error = %err, "a system root certificate could not be loaded");
        }
        roots.add_parsable_certificates(native.certs);
        for pem in &self.extra_roots {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| {
                    Error::new(
                        ErrorKind::Config,
                        "a trusted root certificate is not valid PEM",
                    )
                    .with_source(e)
                })?;
                roots.add(cert).map_err(|e| {
                    Error::new(ErrorKind::Config, "a trusted root certificate was refused")
                        .with_source(e)
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(Error::new(
                    ErrorKind::Config,
                    "a trusted root certificate PEM holds no CERTIFICATE block",
                ));
            }
        }
        if roots.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                "no trusted root certificates: the system has none and none were added with \
                 trust_root_certificate_pem",
            ));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::new(ErrorKind::Config, "TLS cannot be set up").with_source(e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Config {
            discovery: self.discovery,
            tls: Arc::new(tls),
            url_expiry: self.url_expiry,
            connect_timeout: self.connect_timeout,
            ping_interval: self.ping_interval,
            pong_timeout: self.pong_timeout,
            backoff: self.backoff,
            max_reconnect_attempts: self.max_reconnect_attempts,
            outbound_queue: self.outbound_queue,
            event_queue: self.event_queue,
            held_messages: self.held_messages,
        })
    }
}
