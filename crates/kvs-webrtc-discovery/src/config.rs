//! Client configuration: the user's [`SdkConfig`] plus cache settings.

use std::time::Duration;

use aws_smithy_async::time::{SharedTimeSource, TimeSource};
use aws_types::SdkConfig;

/// How long an endpoint lookup is reused by default. Endpoints rarely move, and the errors that
/// show a stale entry invalidate it early.
pub const DEFAULT_ENDPOINT_TTL: Duration = Duration::from_secs(60 * 60);
/// How long before the TURN credentials' TTL runs out they are refreshed by default (the C SDK's
/// `ICE_CONFIGURATION_REFRESH_GRACE_PERIOD`).
pub const DEFAULT_ICE_REFRESH_GRACE: Duration = Duration::from_secs(30);
/// How many (channel, role) entries each cache holds at most.
pub const DEFAULT_MAX_CACHED_CHANNELS: usize = 1024;

/// Configuration of a discovery [`Client`](crate::Client).
///
/// Everything AWS-related (region, credentials, retry and timeout settings, HTTP client,
/// `endpoint_url` of the control plane) comes from the [`SdkConfig`]; the storage and signaling
/// clients this crate builds share it and only swap in the channel's endpoints.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) sdk_config: SdkConfig,
    pub(crate) endpoint_ttl: Duration,
    pub(crate) ice_refresh_grace: Duration,
    pub(crate) max_cached_channels: usize,
    pub(crate) stun_url: Option<String>,
    pub(crate) time_source: SharedTimeSource,
}

impl Config {
    /// Defaults over `sdk_config`.
    pub fn new(sdk_config: &SdkConfig) -> Self {
        Self::builder().sdk_config(sdk_config.clone()).build()
    }

    /// Start from the defaults; [`Builder::sdk_config`] is the one setting most callers need.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A builder holding these settings, to change some of them.
    pub fn to_builder(&self) -> Builder {
        Builder {
            sdk_config: Some(self.sdk_config.clone()),
            endpoint_ttl: Some(self.endpoint_ttl),
            ice_refresh_grace: Some(self.ice_refresh_grace),
            max_cached_channels: Some(self.max_cached_channels),
            stun_url: self.stun_url.clone(),
            time_source: Some(self.time_source.clone()),
        }
    }

    /// The AWS settings shared by every client this crate builds.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.sdk_config
    }

    /// How long an endpoint lookup is reused.
    pub fn endpoint_ttl(&self) -> Duration {
        self.endpoint_ttl
    }

    /// How long before TURN credentials expire they are refreshed.
    pub fn ice_refresh_grace(&self) -> Duration {
        self.ice_refresh_grace
    }

    /// The clock that decides cache expiry.
    pub fn time_source(&self) -> &SharedTimeSource {
        &self.time_source
    }
}

/// Builder of [`Config`].
#[derive(Debug, Clone, Default)]
pub struct Builder {
    sdk_config: Option<SdkConfig>,
    endpoint_ttl: Option<Duration>,
    ice_refresh_grace: Option<Duration>,
    max_cached_channels: Option<usize>,
    stun_url: Option<String>,
    time_source: Option<SharedTimeSource>,
}

impl Builder {
    /// The AWS settings (from `aws_config::load_defaults(..)`, or any `SdkConfig`).
    /// Without one, [`Builder::build`] uses an empty `SdkConfig`, and calls fail with
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for want of a region and credentials.
    pub fn sdk_config(mut self, sdk_config: SdkConfig) -> Self {
        self.sdk_config = Some(sdk_config);
        self
    }

    /// How long an endpoint lookup is reused (default [`DEFAULT_ENDPOINT_TTL`]).
    pub fn endpoint_ttl(mut self, ttl: Duration) -> Self {
        self.endpoint_ttl = Some(ttl);
        self
    }

    /// Refresh TURN credentials this long before their TTL ends (default
    /// [`DEFAULT_ICE_REFRESH_GRACE`]).
    pub fn ice_refresh_grace(mut self, grace: Duration) -> Self {
        self.ice_refresh_grace = Some(grace);
        self
    }

    /// Bound on the entries of each cache (default [`DEFAULT_MAX_CACHED_CHANNELS`]).
    pub fn max_cached_channels(mut self, max: usize) -> Self {
        self.max_cached_channels = Some(max);
        self
    }

    /// Use this STUN URL instead of the region's
    /// (`stun:stun.kinesisvideo.<region>.amazonaws.com:443`), e.g. a local STUN server.
    pub fn stun_url(mut self, url: impl Into<String>) -> Self {
        self.stun_url = Some(url.into());
        self
    }

    /// The clock for cache expiry (default: the `SdkConfig`'s time source, else the system
    /// clock). Tests inject a manual clock here; request signing keeps using the `SdkConfig`'s.
    pub fn time_source(mut self, time_source: impl TimeSource + 'static) -> Self {
        self.time_source = Some(SharedTimeSource::new(time_source));
        self
    }

    /// Finish.
    pub fn build(self) -> Config {
        let sdk_config = self
            .sdk_config
            .unwrap_or_else(|| SdkConfig::builder().build());
        let time_source = self
            .time_source
            .or_else(|| sdk_config.time_source())
            .unwrap_or_default();
        Config {
            endpoint_ttl: self.endpoint_ttl.unwrap_or(DEFAULT_ENDPOINT_TTL),
            ice_refresh_grace: self.ice_refresh_grace.unwrap_or(DEFAULT_ICE_REFRESH_GRACE),
            max_cached_channels: self
                .max_cached_channels
                .unwrap_or(DEFAULT_MAX_CACHED_CHANNELS),
            stun_url: self.stun_url,
            time_source,
            sdk_config,
        }
    }
}
