//! `client.discover()`: DescribeSignalingChannel → DescribeMediaStorageConfiguration →
//! GetSignalingChannelEndpoint, cached per (channel, role).

use std::sync::Arc;

use aws_sdk_kinesisvideo::types::{
    ChannelProtocol, ChannelRole, ChannelType, MediaStorageConfigurationStatus,
    SingleMasterChannelEndpointConfiguration, Status,
};
use aws_types::region::Region;

use crate::cache::Source;
use crate::error::{Error, ErrorKind};
use crate::handle::{EndpointKey, Handle};
use crate::input::{required_channel, ChannelArn, ChannelId, Role};
use crate::output::DiscoveryData;
pub use crate::output::{ChannelDetails, Discovery, Endpoints};

/// Builder of a discovery; finish with [`send`](DiscoverFluentBuilder::send).
#[derive(Debug)]
#[must_use = "nothing happens until `send()` is awaited"]
pub struct DiscoverFluentBuilder {
    handle: Arc<Handle>,
    channel: Option<String>,
    role: Role,
    require_storage: bool,
    force_refresh: bool,
}

impl DiscoverFluentBuilder {
    pub(crate) fn new(handle: Arc<Handle>) -> Self {
        Self {
            handle,
            channel: None,
            role: Role::Master,
            require_storage: true,
            force_refresh: false,
        }
    }

    /// The channel's name or ARN (required).
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// Master (default) or viewer endpoints.
    pub fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// Whether media storage must be enabled (default `true`: this crate exists for
    /// ingestion). With `false`, the storage configuration is not checked and no WEBRTC
    /// endpoint is requested, as for a peer-to-peer channel.
    pub fn require_storage(mut self, require: bool) -> Self {
        self.require_storage = require;
        self
    }

    /// Skip the cache and look the channel up again.
    pub fn force_refresh(mut self, refresh: bool) -> Self {
        self.force_refresh = refresh;
        self
    }

    /// Look the channel up (or take it from the cache).
    ///
    /// # Errors
    /// - [`ErrorKind::InvalidInput`] for a missing or malformed channel, before any call;
    /// - [`ErrorKind::ChannelNotFound`], [`ErrorKind::ChannelNotUsable`];
    /// - [`ErrorKind::StorageDisabled`] or [`ErrorKind::NoStreamMapped`] when storage is
    ///   required, naming the API that fixes it;
    /// - [`ErrorKind::EndpointMissing`] when the service omits an endpoint;
    /// - [`ErrorKind::AccessDenied`], [`ErrorKind::Throttled`], [`ErrorKind::Network`].
    #[tracing::instrument(skip_all, fields(channel = ?self.channel, role = %self.role))]
    pub async fn send(self) -> Result<Discovery, Error> {
        let channel = required_channel(self.channel, "discover()")?;
        discover(
            &self.handle,
            channel,
            self.role,
            self.require_storage,
            self.force_refresh,
        )
        .await
    }
}

pub(crate) async fn discover(
    handle: &Arc<Handle>,
    channel: ChannelId,
    role: Role,
    require_storage: bool,
    force_refresh: bool,
) -> Result<Discovery, Error> {
    let key = EndpointKey {
        channel,
        role,
        storage: require_storage,
    };
    let expires_at = |data: &DiscoveryData| data.fetched_at + handle.config.endpoint_ttl;
    let (data, source) = handle
        .endpoints
        .get_or_load(
            &key,
            || handle.now(),
            force_refresh,
            || async {
                let data = look_up(handle, &key).await?;
                let expires_at = expires_at(&data);
                Ok::<_, Error>((Arc::new(data), expires_at))
            },
        )
        .await?;
    if source == Source::Loaded && matches!(key.channel, ChannelId::Name(_)) {
        // Looked up by name, then used by ARN (as joins and reconnects are): one lookup.
        let by_arn = EndpointKey {
            channel: ChannelId::Arn(data.channel.arn.clone()),
            ..key
        };
        handle
            .endpoints
            .insert(&by_arn, data.clone(), expires_at(&data), handle.now());
    }
    tracing::debug!(from_cache = source == Source::Cache, "endpoints ready");
    Ok(Discovery {
        data,
        from_cache: source == Source::Cache,
    })
}

async fn look_up(handle: &Handle, key: &EndpointKey) -> Result<DiscoveryData, Error> {
    let target = key.channel.to_string();
    let control = &handle.control_plane;
    let describe = match &key.channel {
        ChannelId::Name(name) => control.describe_signaling_channel().channel_name(name),
        ChannelId::Arn(arn) => control
            .describe_signaling_channel()
            .channel_arn(arn.as_str()),
    };
    let described = describe
        .send()
        .await
        .map_err(|e| Error::from_sdk("DescribeSignalingChannel", &target, e))?;
    let info = described.channel_info().ok_or_else(|| {
        Error::new(
            ErrorKind::Service,
            format!("DescribeSignalingChannel for `{target}` returned no ChannelInfo"),
        )
    })?;
    let arn = ChannelArn::parse(info.channel_arn().unwrap_or_default()).map_err(|e| {
        Error::new(
            ErrorKind::Service,
            format!("DescribeSignalingChannel for `{target}` returned an unusable ChannelARN"),
        )
        .with_source(e)
    })?;
    let name = info.channel_name().unwrap_or(arn.name()).to_owned();
    if let Some(status @ (Status::Deleting | Status::Creating)) = info.channel_status() {
        return Err(Error::new(
            ErrorKind::ChannelNotUsable,
            format!(
                "channel `{name}` is {}; wait until it is ACTIVE",
                status.as_str()
            ),
        ));
    }
    if let Some(kind) = info
        .channel_type()
        .filter(|t| **t != ChannelType::SingleMaster)
    {
        return Err(Error::new(
            ErrorKind::ChannelNotUsable,
            format!(
                "channel `{name}` is a {} channel; WebRTC ingestion needs a SINGLE_MASTER channel",
                kind.as_str()
            ),
        ));
    }

    let storage_stream_arn = if key.storage {
        Some(check_storage(handle, &arn, &name).await?)
    } else {
        None
    };

    let mut protocols = vec![ChannelProtocol::Wss, ChannelProtocol::Https];
    if key.storage {
        protocols.push(ChannelProtocol::Webrtc);
    }
    let role = match key.role {
        Role::Master => ChannelRole::Master,
        Role::Viewer => ChannelRole::Viewer,
    };
    let configuration = SingleMasterChannelEndpointConfiguration::builder()
        .set_protocols(Some(protocols))
        .role(role)
        .build();
    let listed = control
        .get_signaling_channel_endpoint()
        .channel_arn(arn.as_str())
        .single_master_channel_endpoint_configuration(configuration)
        .send()
        .await
        .map_err(|e| Error::from_sdk("GetSignalingChannelEndpoint", arn.as_str(), e))?;
    let find = |wanted: &str| {
        listed.resource_endpoint_list().iter().find_map(|item| {
            let protocol = item.protocol()?.as_str();
            let url = item.resource_endpoint()?;
            protocol
                .eq_ignore_ascii_case(wanted)
                .then(|| url.to_owned())
        })
    };
    let missing = |protocol: &str| {
        Error::new(
            ErrorKind::EndpointMissing,
            format!(
                "GetSignalingChannelEndpoint for `{arn}` ({}) returned no {protocol} endpoint",
                key.role
            ),
        )
    };
    let endpoints = Endpoints {
        wss: find("WSS").ok_or_else(|| missing("WSS"))?,
        https: find("HTTPS").ok_or_else(|| missing("HTTPS"))?,
        webrtc: if key.storage {
            // The C SDK cached a list without WEBRTC and failed later (PR #2241); refuse it now.
            Some(find("WEBRTC").ok_or_else(|| missing("WEBRTC"))?)
        } else {
            None
        },
    };
    tracing::info!(channel = %arn, role = %key.role, "discovered endpoints");

    // The per-channel clients share the user's settings; only endpoint and region differ.
    let region = Region::new(arn.region().to_owned());
    let sdk = &handle.config.sdk_config;
    let storage = endpoints.webrtc.as_ref().map(|url| {
        aws_sdk_kinesisvideowebrtcstorage::Client::from_conf(
            aws_sdk_kinesisvideowebrtcstorage::config::Builder::from(sdk)
                .endpoint_url(url)
                .region(region.clone())
                .build(),
        )
    });
    let signaling = aws_sdk_kinesisvideosignaling::Client::from_conf(
        aws_sdk_kinesisvideosignaling::config::Builder::from(sdk)
            .endpoint_url(&endpoints.https)
            .region(region)
            .build(),
    );
    Ok(DiscoveryData {
        channel: ChannelDetails {
            arn,
            name,
            storage_stream_arn,
        },
        role: key.role,
        endpoints,
        storage,
        signaling,
        fetched_at: handle.now(),
    })
}

/// The mapped stream's ARN, or the error that says how to enable storage.
async fn check_storage(handle: &Handle, arn: &ChannelArn, name: &str) -> Result<String, Error> {
    let described = handle
        .control_plane
        .describe_media_storage_configuration()
        .channel_arn(arn.as_str())
        .send()
        .await
        .map_err(|e| Error::from_sdk("DescribeMediaStorageConfiguration", arn.as_str(), e))?;
    let configuration = described.media_storage_configuration();
    let stream = configuration
        .and_then(|c| c.stream_arn())
        .map(str::to_owned);
    let enabled =
        configuration.is_some_and(|c| *c.status() == MediaStorageConfigurationStatus::Enabled);
    match (enabled, stream) {
        (true, Some(stream)) => Ok(stream),
        (_, None) => Err(Error::new(
            ErrorKind::NoStreamMapped,
            format!(
                "channel `{name}` has no stream mapped for media storage; link a stream with \
                 retention > 0 by calling UpdateMediaStorageConfiguration with its StreamARN and \
                 Status ENABLED"
            ),
        )),
        (false, Some(stream)) => Err(Error::new(
            ErrorKind::StorageDisabled,
            format!(
                "media storage is disabled on channel `{name}` (stream {stream}); enable it with \
                 UpdateMediaStorageConfiguration and Status ENABLED"
            ),
        )),
    }
}
