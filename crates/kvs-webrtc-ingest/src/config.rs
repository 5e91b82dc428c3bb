//! The client's settings: where the AWS settings come from, which extra CA is trusted, the
//! protocol's timings and how TURN is used.

use std::sync::Arc;
use std::time::Duration;

use aws_types::SdkConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

use crate::error::{Error, ErrorKind};
use crate::session::Timings;

/// Which local candidates the storage peer is offered (WebRTC's `iceTransportPolicy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IceTransportPolicy {
    /// Host, server-reflexive and relayed candidates: the most direct path wins.
    #[default]
    All,
    /// Relayed candidates only: media goes through a TURN server of GetIceServerConfig, or
    /// the ingestion fails with [`ErrorKind::Relay`](crate::ErrorKind::Relay). This is how to
    /// check that TURN works from a network.
    Relay,
}

impl std::str::FromStr for IceTransportPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Self::All),
            "relay" => Ok(Self::Relay),
            other => Err(format!(
                "ICE transport policy {other:?} is neither all nor relay"
            )),
        }
    }
}

/// Settings of a [`Client`](crate::Client): the signaling client (with its discovery client,
/// credentials, region and trusted roots), the protocol's timings and how TURN is used.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) signaling: kvs_webrtc_signaling::Client,
    pub(crate) timings: Timings,
    pub(crate) ice_transport_policy: IceTransportPolicy,
    pub(crate) turn_tls: Arc<rustls::ClientConfig>,
    pub(crate) turn_allocate_timeout: Duration,
    pub(crate) event_queue: usize,
}

/// How many events wait for [`IngestSession::next_event`](crate::IngestSession::next_event)
/// by default.
pub const DEFAULT_EVENT_QUEUE: usize = 256;

impl Config {
    /// Start from the defaults. Give the AWS settings with [`Builder::sdk_config`] (or
    /// [`Builder::discovery_config`], or a whole [`Builder::signaling`] client).
    ///
    /// ```no_run
    /// # async fn run(ca_pem: Vec<u8>) -> Result<(), kvs_webrtc_ingest::Error> {
    /// let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    /// let config = kvs_webrtc_ingest::Config::builder()
    ///     .sdk_config(sdk_config)
    ///     // e.g. kvs-emulator's ca.pem: trusted for the API calls, the signaling socket and
    ///     // `turns:` servers, besides the system's roots.
    ///     .trust_root_certificate_pem(ca_pem)
    ///     .build()?;
    /// let client = kvs_webrtc_ingest::Client::from_conf(config);
    /// # Ok(()) }
    /// ```
    pub fn builder() -> Builder {
        Builder {
            base: None,
            signaling: None,
            extra_roots: Vec::new(),
            keep_alive: None,
            timings: Timings::default(),
            ice_transport_policy: IceTransportPolicy::default(),
            turn_tls: None,
            turn_allocate_timeout: Duration::from_secs(8),
            event_queue: DEFAULT_EVENT_QUEUE,
        }
    }

    /// The discovery client (endpoints, ICE servers, the storage API).
    pub fn discovery(&self) -> &kvs_webrtc_discovery::Client {
        self.signaling.config().discovery()
    }

    /// The signaling client.
    pub fn signaling(&self) -> &kvs_webrtc_signaling::Client {
        &self.signaling
    }

    /// The timings.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Which candidates are offered.
    pub fn ice_transport_policy(&self) -> IceTransportPolicy {
        self.ice_transport_policy
    }
}

/// Builds a [`Config`].
#[derive(Debug, Clone)]
pub struct Builder {
    base: Option<kvs_webrtc_discovery::Config>,
    signaling: Option<kvs_webrtc_signaling::Client>,
    extra_roots: Vec<Vec<u8>>,
    keep_alive: Option<(Duration, Duration)>,
    timings: Timings,
    ice_transport_policy: IceTransportPolicy,
    turn_tls: Option<Arc<rustls::ClientConfig>>,
    turn_allocate_timeout: Duration,
    event_queue: usize,
}

impl Builder {
    /// The AWS settings (region, credentials, retries, timeouts, HTTP client, and the control
    /// plane's `endpoint_url`), e.g. from `aws_config::load_defaults(..)`. The builder makes
    /// the discovery and signaling clients over them.
    pub fn sdk_config(self, sdk_config: SdkConfig) -> Self {
        self.discovery_config(kvs_webrtc_discovery::Config::new(&sdk_config))
    }

    /// Discovery settings of your own (cache TTLs, the TURN credentials' refresh grace, a STUN
    /// URL), instead of [`Builder::sdk_config`]: the builder makes the discovery client from
    /// them.
    pub fn discovery_config(mut self, config: kvs_webrtc_discovery::Config) -> Self {
        self.base = Some(config);
        self
    }

    /// A signaling client you built yourself (it holds its discovery client), instead of
    /// [`Builder::sdk_config`]. Its trusted roots and keep-alive are its own: with it,
    /// [`Builder::trust_root_certificate_pem`] and [`Builder::signaling_keep_alive`] are
    /// refused by [`Builder::build`] rather than silently ignored.
    pub fn signaling(mut self, signaling: kvs_webrtc_signaling::Client) -> Self {
        self.signaling = Some(signaling);
        self
    }

    /// Also trust this CA certificate (PEM; several may be concatenated, and the call may be
    /// repeated), e.g. kvs-emulator's `ca.pem` or a corporate proxy's: for the API calls, the
    /// signaling socket and `turns:` servers alike. The system's roots stay trusted and
    /// verification stays on; there is no way to turn it off.
    pub fn trust_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_roots.push(pem.into());
        self
    }

    /// How often the signaling socket is pinged, and how long silence after a ping means it is
    /// dead (default 10 s and 10 s). Shorter notices a dead network sooner, at a few bytes
    /// per ping.
    pub fn signaling_keep_alive(mut self, ping_interval: Duration, pong_timeout: Duration) -> Self {
        self.keep_alive = Some((ping_interval, pong_timeout));
        self
    }

    /// Offer, connect and re-join timings (the defaults are the AWS SDKs').
    pub fn timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    /// Which candidates are offered (default [`IceTransportPolicy::All`]).
    pub fn ice_transport_policy(mut self, policy: IceTransportPolicy) -> Self {
        self.ice_transport_policy = policy;
        self
    }

    /// The TLS settings for `turns:` servers (default: the signaling socket's, i.e. the
    /// system's roots plus those of [`Builder::trust_root_certificate_pem`]).
    pub fn turn_tls(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.turn_tls = Some(tls);
        self
    }

    /// How long a TURN server may take to grant an allocation (default 8 s).
    pub fn turn_allocate_timeout(mut self, timeout: Duration) -> Self {
        self.turn_allocate_timeout = timeout;
        self
    }

    /// How many events wait for [`IngestSession::next_event`](crate::IngestSession::next_event)
    /// (default [`DEFAULT_EVENT_QUEUE`], at least 1). Events that find the queue full are
    /// dropped and counted ([`IngestEvent::EventsLost`](crate::IngestEvent::EventsLost));
    /// media and signaling never wait for the application.
    pub fn event_queue(mut self, capacity: usize) -> Self {
        self.event_queue = capacity.max(1);
        self
    }

    /// Finish: make the discovery and signaling clients (unless one was given).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when [`Timings::send_ahead`] is over 1 s, when no AWS settings were given, when an extra certificate is not
    /// valid PEM, when no trusted root can be loaded, or when settings that only apply to the
    /// clients this builder makes are combined with [`Builder::signaling`].
    pub fn build(self) -> Result<Config, Error> {
        if self.timings.send_ahead > MAX_SEND_AHEAD {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "Timings::send_ahead is {:?}; at most {MAX_SEND_AHEAD:?} (80 ms, the default, \
                     already merges two pictures into one wake-up)",
                    self.timings.send_ahead
                ),
            ));
        }
        let signaling =
            match (self.signaling, self.base) {
                (Some(_), Some(_)) => return Err(Error::new(
                    ErrorKind::Config,
                    "give the AWS settings once: either .sdk_config(..)/.discovery_config(..) or \
                     a .signaling(..) client, which holds its own",
                )),
                (Some(signaling), None) => {
                    if !self.extra_roots.is_empty() || self.keep_alive.is_some() {
                        return Err(Error::new(
                            ErrorKind::Config,
                            "trust_root_certificate_pem and signaling_keep_alive apply to the \
                         clients this builder makes; a .signaling(..) client keeps its own: \
                         set them on its kvs_webrtc_signaling::Config instead",
                        ));
                    }
                    signaling
                }
                (None, Some(base)) => make_signaling(base, &self.extra_roots, self.keep_alive)?,
                (None, None) => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        "no AWS settings: call .sdk_config(..) with the SdkConfig from \
                     aws_config::load_defaults(..)",
                    ))
                }
            };
        let turn_tls = self
            .turn_tls
            .unwrap_or_else(|| Arc::clone(signaling.config().tls()));
        Ok(Config {
            signaling,
            timings: self.timings,
            ice_transport_policy: self.ice_transport_policy,
            turn_tls,
            turn_allocate_timeout: self.turn_allocate_timeout,
            event_queue: self.event_queue,
        })
    }
}

/// The longest [`Timings::send_ahead`]: frames sent further ahead would make the sender a
/// burst source and the sender reports' wall clock stale.
const MAX_SEND_AHEAD: Duration = Duration::from_secs(1);

/// The discovery and signaling clients over `base`, every TLS connection trusting the system's
/// roots and `extra_roots`.
fn make_signaling(
    base: kvs_webrtc_discovery::Config,
    extra_roots: &[Vec<u8>],
    keep_alive: Option<(Duration, Duration)>,
) -> Result<kvs_webrtc_signaling::Client, Error> {
    let base = if extra_roots.is_empty() {
        base
    } else {
        let sdk_config = base.sdk_config().clone();
        base.to_builder()
            .sdk_config(sdk_config_trusting(sdk_config, extra_roots)?)
            .build()
    };
    let discovery = kvs_webrtc_discovery::Client::from_conf(base);
    let mut signaling = kvs_webrtc_signaling::Config::builder(discovery);
    for pem in extra_roots {
        signaling = signaling.trust_root_certificate_pem(pem.clone());
    }
    if let Some((ping, pong)) = keep_alive {
        signaling = signaling.keep_alive(ping, pong);
    }
    let signaling = signaling
        .build()
        .map_err(|e| Error::from_signaling("the signaling client cannot be set up", e))?;
    Ok(kvs_webrtc_signaling::Client::from_conf(signaling))
}

/// `sdk_config` with an HTTPS client (the AWS SDK's default, rustls) that trusts the system's
/// roots and `extra_roots`, for the control-plane, signaling REST and storage API calls.
fn sdk_config_trusting(sdk_config: SdkConfig, extra_roots: &[Vec<u8>]) -> Result<SdkConfig, Error> {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
    let mut trust = TrustStore::default();
    for pem in extra_roots {
        // The HTTP client checks the PEM only when it first connects, and panics there on a
        // bad one: check it here, where the mistake can be reported.
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    "a trusted root certificate is not valid PEM",
                )
                .with_source(e)
            })?;
        if certificates.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                "a trusted root certificate PEM holds no CERTIFICATE block",
            ));
        }
        trust.add_pem_certificate(pem.clone());
    }
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| {
            Error::new(ErrorKind::Config, "the API calls' TLS cannot be set up").with_source(e)
        })?;
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https();
    Ok(sdk_config.into_builder().http_client(http_client).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdk_config() -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_types::region::Region::new("us-west-2"))
            .build()
    }

    #[test]
    fn without_aws_settings_the_builder_says_what_to_give() {
        let err = Config::builder().build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains(".sdk_config("), "{err}");
    }

    #[test]
    fn a_send_ahead_over_a_second_is_refused_and_one_second_is_taken() {
        let mut timings = Timings {
            send_ahead: Duration::from_millis(1001),
            ..Timings::default()
        };
        let err = Config::builder()
            .sdk_config(sdk_config())
            .timings(timings)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("send_ahead"), "{err}");
        timings.send_ahead = Duration::from_secs(1);
        let config = Config::builder()
            .sdk_config(sdk_config())
            .timings(timings)
            .build()
            .expect("1 s is allowed");
        assert_eq!(config.timings().send_ahead, Duration::from_secs(1));
    }

    #[test]
    fn a_bad_extra_certificate_is_refused_before_any_connection() {
        let err = Config::builder()
            .sdk_config(sdk_config())
            .trust_root_certificate_pem("not a certificate")
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("no CERTIFICATE block"), "{err}");
        let err = Config::builder()
            .sdk_config(sdk_config())
            .trust_root_certificate_pem(
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            )
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("not valid PEM"), "{err}");
    }

    #[test]
    fn settings_for_made_clients_are_refused_with_a_given_signaling_client() {
        let discovery = kvs_webrtc_discovery::Client::new(&sdk_config());
        let signaling = kvs_webrtc_signaling::Client::new(discovery).expect("system roots");
        let err = Config::builder()
            .signaling(signaling.clone())
            .signaling_keep_alive(Duration::from_secs(1), Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("keeps its own"), "{err}");
        let err = Config::builder()
            .signaling(signaling.clone())
            .sdk_config(sdk_config())
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("once"), "{err}");
        assert!(Config::builder().signaling(signaling).build().is_ok());
    }
}
