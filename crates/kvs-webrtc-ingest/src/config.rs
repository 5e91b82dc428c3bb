//! The client's settings.

use std::sync::Arc;
use std::time::Duration;

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
}

impl Config {
    /// Settings over a signaling client (which holds the discovery client).
    pub fn builder(signaling: kvs_webrtc_signaling::Client) -> Builder {
        Builder {
            turn_tls: None,
            signaling,
            timings: Timings::default(),
            ice_transport_policy: IceTransportPolicy::default(),
            turn_allocate_timeout: Duration::from_secs(8),
        }
    }

    /// The discovery client (endpoints, ICE servers, the storage API).
    pub fn discovery(&self) -> &kvs_webrtc_discovery::Client {
        self.signaling.config().discovery()
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
    signaling: kvs_webrtc_signaling::Client,
    timings: Timings,
    ice_transport_policy: IceTransportPolicy,
    turn_tls: Option<Arc<rustls::ClientConfig>>,
    turn_allocate_timeout: Duration,
}

impl Builder {
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

    /// The TLS settings for `turns:` servers (default: the signaling client's, i.e. the
    /// system's roots plus any trusted with
    /// the signaling configuration's `trust_root_certificate_pem`).
    pub fn turn_tls(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.turn_tls = Some(tls);
        self
    }

    /// How long a TURN server may take to grant an allocation (default 8 s).
    pub fn turn_allocate_timeout(mut self, timeout: Duration) -> Self {
        self.turn_allocate_timeout = timeout;
        self
    }

    /// Finish.
    pub fn build(self) -> Config {
        let turn_tls = self
            .turn_tls
            .unwrap_or_else(|| Arc::clone(self.signaling.config().tls()));
        Config {
            signaling: self.signaling,
            timings: self.timings,
            ice_transport_policy: self.ice_transport_policy,
            turn_tls,
            turn_allocate_timeout: self.turn_allocate_timeout,
        }
    }
}
