//! The discovery client: cheap to clone, shares its caches between clones.

use std::sync::Arc;

use aws_types::SdkConfig;

use crate::cache::{CacheStats, ExpiringCache};
use crate::config::Config;
use crate::handle::Handle;
use crate::input::{ChannelArn, ChannelId, Role};
use crate::operation::discover::DiscoverFluentBuilder;
use crate::operation::ice_servers::IceServersFluentBuilder;
use crate::operation::join_storage_session::JoinStorageSessionFluentBuilder;

/// Finds a channel's endpoints and ICE servers and joins its storage session.
///
/// Clones share one set of caches: endpoints per (channel, role) for
/// [`Config::endpoint_ttl`], ICE servers until their TTL minus [`Config::ice_refresh_grace`].
///
/// ```no_run
/// # async fn run() -> Result<(), kvs_webrtc_discovery::Error> {
/// let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
/// let client = kvs_webrtc_discovery::Client::new(&sdk_config);
/// let found = client.discover().channel("front-door").send().await?;
/// println!("signaling at {}", found.endpoints().wss());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) handle: Arc<Handle>,
}

impl Client {
    /// A client with default settings over `sdk_config` (region, credentials, retries,
    /// timeouts, HTTP client, and `endpoint_url` for the control plane).
    pub fn new(sdk_config: &SdkConfig) -> Self {
        Self::from_conf(Config::new(sdk_config))
    }

    /// A client with explicit settings.
    pub fn from_conf(config: Config) -> Self {
        let control_plane = aws_sdk_kinesisvideo::Client::new(&config.sdk_config);
        let max = config.max_cached_channels;
        Self {
            handle: Arc::new(Handle {
                control_plane,
                endpoints: ExpiringCache::new(max),
                ice_servers: ExpiringCache::new(max),
                config,
            }),
        }
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &Config {
        &self.handle.config
    }

    /// The `aws-sdk-kinesisvideo` control-plane client this client calls.
    pub fn control_plane(&self) -> &aws_sdk_kinesisvideo::Client {
        &self.handle.control_plane
    }

    /// Resolve a channel (by name or ARN), check its media storage configuration and get its
    /// endpoints for a role; the result carries ready storage and signaling REST clients.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let emulator = kvs_emulator::Emulator::builder().temporary().start().await?;
    /// # emulator.create_storage_channel("front-door")?;
    /// # // Against AWS: aws_config::load_defaults(BehaviorVersion::latest()).await
    /// # let sdk_config = emulator.sdk_config()?;
    /// let client = kvs_webrtc_discovery::Client::new(&sdk_config);
    /// let found = client.discover().channel("front-door").send().await?;
    /// println!("WSS {} WEBRTC {:?}", found.endpoints().wss(), found.endpoints().webrtc());
    /// assert!(found.storage_client().is_some());
    /// // The second lookup comes from the cache.
    /// assert!(client.discover().channel("front-door").send().await?.from_cache());
    /// # Ok(()) }
    /// ```
    pub fn discover(&self) -> DiscoverFluentBuilder {
        DiscoverFluentBuilder::new(self.handle.clone())
    }

    /// TURN servers for a channel (GetIceServerConfig on its HTTPS endpoint) plus the region's
    /// STUN URL, cached until their TTL minus the grace period.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let emulator = kvs_emulator::Emulator::builder().temporary().start().await?;
    /// # emulator.create_storage_channel("front-door")?;
    /// # // Against AWS: aws_config::load_defaults(BehaviorVersion::latest()).await
    /// # let sdk_config = emulator.sdk_config()?;
    /// let client = kvs_webrtc_discovery::Client::new(&sdk_config);
    /// let ice = client.ice_servers().channel("front-door").client_id("camera-1").send().await?;
    /// for server in ice.turn_servers() {
    ///     println!("{:?} valid for {:?}", server.uris(), server.ttl());
    /// }
    /// println!("STUN {}", ice.stun_url());
    /// # Ok(()) }
    /// ```
    pub fn ice_servers(&self) -> IceServersFluentBuilder {
        IceServersFluentBuilder::new(self.handle.clone())
    }

    /// JoinStorageSession on the channel's WEBRTC endpoint, found (or taken from the cache)
    /// first. A cached endpoint that turns out stale is dropped and the call retried once.
    /// Open the master's signaling socket first: the offer arrives on it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let emulator = kvs_emulator::Emulator::builder().temporary().start().await?;
    /// # emulator.create_storage_channel("front-door")?;
    /// # // Against AWS: aws_config::load_defaults(BehaviorVersion::latest()).await
    /// # let sdk_config = emulator.sdk_config()?;
    /// let client = kvs_webrtc_discovery::Client::new(&sdk_config);
    /// let joined = client.join_storage_session().channel("front-door").send().await?;
    /// if let Some(found) = joined.discovery() {
    ///     println!("joined {}", found.channel().arn());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn join_storage_session(&self) -> JoinStorageSessionFluentBuilder {
        JoinStorageSessionFluentBuilder::new(self.handle.clone(), Role::Master)
    }

    /// JoinStorageSessionAsViewer, like [`Client::join_storage_session`]; the viewer's signaling
    /// socket uses the same client id. (The same builder as `join_storage_session()` with
    /// `.role(Role::Viewer)`.)
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let emulator = kvs_emulator::Emulator::builder().temporary().start().await?;
    /// # emulator.create_storage_channel("front-door")?;
    /// # // Against AWS: aws_config::load_defaults(BehaviorVersion::latest()).await
    /// # let sdk_config = emulator.sdk_config()?;
    /// let client = kvs_webrtc_discovery::Client::new(&sdk_config);
    /// client
    ///     .join_storage_session_as_viewer()
    ///     .channel("front-door")
    ///     .client_id("kitchen-display")
    ///     .send()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn join_storage_session_as_viewer(&self) -> JoinStorageSessionFluentBuilder {
        JoinStorageSessionFluentBuilder::new(self.handle.clone(), Role::Viewer)
    }

    /// Forget the cached endpoints of a channel (every role, whether it was looked up by name
    /// or by ARN). Call it when something outside this crate shows they are stale.
    pub fn invalidate_endpoints(&self, channel: &ChannelId) {
        self.handle.invalidate_channel(channel);
    }

    /// Forget the cached ICE servers of a channel, e.g. on `RECONNECT_ICE_SERVER`.
    pub fn invalidate_ice_servers(&self, channel: &ChannelArn) {
        self.handle
            .ice_servers
            .invalidate_where(|key| &key.channel == channel);
    }

    /// Hits, misses and invalidations of the endpoint cache.
    pub fn endpoint_cache_stats(&self) -> CacheStats {
        self.handle.endpoints.stats()
    }

    /// Hits, misses and invalidations of the ICE-server cache.
    pub fn ice_server_cache_stats(&self) -> CacheStats {
        self.handle.ice_servers.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_is_send_sync_and_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Client>();
    }
}
