//! `client.ice_servers()`: GetIceServerConfig on the channel's HTTPS endpoint plus the region's
//! STUN URL, cached until the shortest TTL minus the grace period.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_kinesisvideosignaling::types::Service;

use crate::cache::Source;
use crate::error::Error;
use crate::handle::{Handle, IceKey};
use crate::input::{required_channel, ChannelArn, ClientId, Role};
use crate::operation::discover::discover;
pub use crate::output::{IceServer, IceServers};

/// Builder of an ICE-server lookup; finish with [`send`](IceServersFluentBuilder::send).
#[derive(Debug)]
#[must_use = "nothing happens until `send()` is awaited"]
pub struct IceServersFluentBuilder {
    handle: Arc<Handle>,
    channel: Option<String>,
    role: Role,
    client_id: Option<String>,
    require_storage: bool,
    force_refresh: bool,
}

impl IceServersFluentBuilder {
    pub(crate) fn new(handle: Arc<Handle>) -> Self {
        Self {
            handle,
            channel: None,
            role: Role::Master,
            client_id: None,
            require_storage: true,
            force_refresh: false,
        }
    }

    /// The channel's name or ARN (required).
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// Whose HTTPS endpoint to ask: master (default) or viewer.
    pub fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// The caller's client id, sent as `ClientId` (the C SDK sends its own id).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Whether the channel must have media storage enabled (default `true`, as for
    /// [`discover`](crate::Client::discover), whose cached endpoints this lookup then reuses);
    /// `false` for a peer-to-peer channel.
    pub fn require_storage(mut self, require: bool) -> Self {
        self.require_storage = require;
        self
    }

    /// Ask the service even if the cached servers are still valid (after
    /// `RECONNECT_ICE_SERVER`).
    pub fn force_refresh(mut self, refresh: bool) -> Self {
        self.force_refresh = refresh;
        self
    }

    /// Get the servers.
    ///
    /// # Errors
    /// As [`discover`](crate::Client::discover) for the endpoint lookup, then the mapped
    /// GetIceServerConfig error.
    #[tracing::instrument(skip_all, fields(channel = ?self.channel, role = %self.role))]
    pub async fn send(self) -> Result<IceServers, Error> {
        let channel = required_channel(self.channel, "ice_servers()")?;
        let client_id = self.client_id.map(ClientId::new).transpose()?;
        let handle = &self.handle;
        let found = discover(handle, channel, self.role, self.require_storage, false).await?;
        let key = IceKey {
            channel: found.channel().arn().clone(),
            client_id: client_id.as_ref().map(|c| c.as_str().to_owned()),
        };
        let (mut servers, source) = handle
            .ice_servers
            .get_or_load(
                &key,
                || handle.now(),
                self.force_refresh,
                || async {
                    let mut request = found
                        .signaling_client()
                        .get_ice_server_config()
                        .channel_arn(key.channel.as_str())
                        .service(Service::Turn);
                    if let Some(id) = &client_id {
                        request = request.client_id(id.as_str());
                    }
                    let response = request.send().await.map_err(|e| {
                        Error::from_sdk("GetIceServerConfig", found.endpoints().https(), e)
                    })?;
                    let fetched_at = handle.now();
                    let servers: Vec<IceServer> = response
                        .ice_server_list()
                        .iter()
                        .map(|s| IceServer {
                            uris: s.uris().to_vec(),
                            username: s.username().unwrap_or_default().to_owned(),
                            credential: s.password().unwrap_or_default().to_owned(),
                            ttl: Duration::from_secs(s.ttl().unwrap_or(0).max(0) as u64),
                        })
                        .collect();
                    let expires_at = expiry(
                        &servers,
                        fetched_at,
                        handle.config.ice_refresh_grace,
                        &key.channel,
                    );
                    let stun_url = handle
                        .config
                        .stun_url
                        .clone()
                        .unwrap_or_else(|| region_stun_url(key.channel.region()));
                    Ok::<_, Error>((
                        IceServers {
                            servers,
                            stun_url,
                            expires_at,
                            from_cache: false,
                        },
                        expires_at,
                    ))
                },
            )
            .await?;
        servers.from_cache = source == Source::Cache;
        Ok(servers)
    }
}

/// Refresh `grace` before the shortest TTL ends; with no servers or a TTL inside the grace,
/// the result is not reused.
fn expiry(
    servers: &[IceServer],
    fetched_at: SystemTime,
    grace: Duration,
    channel: &ChannelArn,
) -> SystemTime {
    match servers.iter().map(|s| s.ttl).min() {
        Some(ttl) if ttl > grace => fetched_at + (ttl - grace),
        Some(ttl) => {
            tracing::warn!(%channel, ttl_secs = ttl.as_secs(), "TURN TTL within the refresh grace; not caching");
            fetched_at
        }
        None => {
            tracing::warn!(%channel, "GetIceServerConfig returned no servers; only STUN is usable");
            fetched_at
        }
    }
}

/// The region's STUN server, which GetIceServerConfig does not list
/// (`stun:stun.kinesisvideo.<region>.amazonaws.com:443`, `.amazonaws.com.cn` in China).
pub fn region_stun_url(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("stun:stun.kinesisvideo.{region}.{suffix}:443")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(ttl: u64) -> IceServer {
        IceServer {
            uris: vec!["turn:example:443?transport=udp".into()],
            username: "u".into(),
            credential: "secret-password".into(),
            ttl: Duration::from_secs(ttl),
        }
    }

    #[test]
    fn stun_urls_follow_the_partition() {
        assert_eq!(
            region_stun_url("us-west-2"),
            "stun:stun.kinesisvideo.us-west-2.amazonaws.com:443"
        );
        assert_eq!(
            region_stun_url("cn-north-1"),
            "stun:stun.kinesisvideo.cn-north-1.amazonaws.com.cn:443"
        );
    }

    #[test]
    fn expiry_is_the_shortest_ttl_minus_the_grace() {
        let arn = ChannelArn::parse("arn:aws:kinesisvideo:us-west-2:1:channel/c/1").unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let grace = Duration::from_secs(30);
        let both = [server(300), server(120)];
        assert_eq!(expiry(&both, t0, grace, &arn), t0 + Duration::from_secs(90));
        assert_eq!(expiry(&[server(30)], t0, grace, &arn), t0);
        assert_eq!(expiry(&[], t0, grace, &arn), t0);
    }

    #[test]
    fn debug_hides_the_credential() {
        let shown = format!("{:?}", server(300));
        assert!(!shown.contains("secret-password"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
