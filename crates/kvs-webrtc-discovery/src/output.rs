//! What the operations return: a channel's details and endpoints with ready clients
//! ([`Discovery`]) and its ICE servers ([`IceServers`]). These are also what the client's caches
//! hold, so they sit below both the client and the operations.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::input::{ChannelArn, Role};

/// A channel's identity and media storage target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelDetails {
    pub(crate) arn: ChannelArn,
    pub(crate) name: String,
    pub(crate) storage_stream_arn: Option<String>,
}

impl ChannelDetails {
    /// The channel ARN.
    pub fn arn(&self) -> &ChannelArn {
        &self.arn
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream media is stored into (known when storage was required).
    pub fn storage_stream_arn(&self) -> Option<&str> {
        self.storage_stream_arn.as_deref()
    }
}

/// The channel's endpoints for one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub(crate) wss: String,
    pub(crate) https: String,
    pub(crate) webrtc: Option<String>,
}

impl Endpoints {
    /// The signaling WebSocket (`wss://…`).
    pub fn wss(&self) -> &str {
        &self.wss
    }

    /// The signaling REST API (GetIceServerConfig).
    pub fn https(&self) -> &str {
        &self.https
    }

    /// The storage API (JoinStorageSession), present when storage was required.
    pub fn webrtc(&self) -> Option<&str> {
        self.webrtc.as_deref()
    }
}

#[derive(Debug)]
pub(crate) struct DiscoveryData {
    pub(crate) channel: ChannelDetails,
    pub(crate) role: Role,
    pub(crate) endpoints: Endpoints,
    pub(crate) storage: Option<aws_sdk_kinesisvideowebrtcstorage::Client>,
    pub(crate) signaling: aws_sdk_kinesisvideosignaling::Client,
    pub(crate) fetched_at: SystemTime,
}

/// What [`DiscoverFluentBuilder::send`](crate::operation::discover::DiscoverFluentBuilder::send) found: the channel, its endpoints for the role, and
/// clients already pointed at them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub(crate) data: Arc<DiscoveryData>,
    pub(crate) from_cache: bool,
}

impl Discovery {
    /// The channel.
    pub fn channel(&self) -> &ChannelDetails {
        &self.data.channel
    }

    /// The role the endpoints are for.
    pub fn role(&self) -> Role {
        self.data.role
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &Endpoints {
        &self.data.endpoints
    }

    /// A storage client (`JoinStorageSession`, `JoinStorageSessionAsViewer`) whose endpoint is
    /// the WEBRTC endpoint, with the channel's region and the user's credentials, retry and
    /// timeout settings. `None` when storage was not required.
    pub fn storage_client(&self) -> Option<&aws_sdk_kinesisvideowebrtcstorage::Client> {
        self.data.storage.as_ref()
    }

    /// A signaling REST client (GetIceServerConfig) on the HTTPS endpoint.
    pub fn signaling_client(&self) -> &aws_sdk_kinesisvideosignaling::Client {
        &self.data.signaling
    }

    /// Whether this came from the cache rather than from the service.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// When the service was asked (by the client's clock).
    pub fn fetched_at(&self) -> SystemTime {
        self.data.fetched_at
    }
}

/// The ICE servers for a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServers {
    pub(crate) servers: Vec<IceServer>,
    pub(crate) stun_url: String,
    pub(crate) expires_at: SystemTime,
    pub(crate) from_cache: bool,
}

impl IceServers {
    /// The TURN servers, as GetIceServerConfig returned them.
    pub fn turn_servers(&self) -> &[IceServer] {
        &self.servers
    }

    /// The STUN URL (the region's, or the configured one).
    pub fn stun_url(&self) -> &str {
        &self.stun_url
    }

    /// When these servers should be refreshed (the shortest TTL minus the grace period).
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// Whether this came from the cache.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }
}

/// One TURN server entry. `Debug` hides the credential.
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    pub(crate) uris: Vec<String>,
    pub(crate) username: String,
    pub(crate) credential: String,
    pub(crate) ttl: Duration,
}

impl IceServer {
    /// `turn:` / `turns:` URIs.
    pub fn uris(&self) -> &[String] {
        &self.uris
    }

    /// The TURN username (time-limited, per draft-uberti-rtcweb-turn-rest).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The TURN password. A secret: do not log it.
    pub fn credential(&self) -> &str {
        &self.credential
    }

    /// How long the credentials are valid from the time they were fetched.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

impl fmt::Debug for IceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceServer")
            .field("uris", &self.uris)
            .field("username", &self.username)
            .field("credential", &"** redacted **")
            .field("ttl", &self.ttl)
            .finish()
    }
}
