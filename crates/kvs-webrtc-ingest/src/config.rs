//! The client's settings.

use crate::session::Timings;

/// Settings of a [`Client`](crate::Client): the signaling client (with its discovery client,
/// credentials, region and trusted roots) and the protocol's timings.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) signaling: kvs_webrtc_signaling::Client,
    pub(crate) timings: Timings,
}

impl Config {
    /// Settings over a signaling client (which holds the discovery client).
    pub fn builder(signaling: kvs_webrtc_signaling::Client) -> Builder {
        Builder {
            signaling,
            timings: Timings::default(),
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
}

/// Builds a [`Config`].
#[derive(Debug, Clone)]
pub struct Builder {
    signaling: kvs_webrtc_signaling::Client,
    timings: Timings,
}

impl Builder {
    /// Offer, connect and re-join timings (the defaults are the AWS SDKs').
    pub fn timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    /// Finish.
    pub fn build(self) -> Config {
        Config {
            signaling: self.signaling,
            timings: self.timings,
        }
    }
}
