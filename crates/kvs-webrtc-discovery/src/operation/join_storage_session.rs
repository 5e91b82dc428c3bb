//! `client.join_storage_session()` and `client.join_storage_session_as_viewer()`: discovery
//! (usually from the cache), then the storage API call on the WEBRTC endpoint. One builder
//! serves both operations: a viewer's client id makes it `JoinStorageSessionAsViewer`.
//!
//! A cached lookup can be stale: the channel was deleted and re-created (new ARN), storage was
//! reconfigured, or the endpoint moved. The errors that mean this (ResourceNotFound,
//! InvalidArgument from the service, a connection failure) drop the cache entry, and the call is
//! made once more with a fresh lookup, which then reports the real state (e.g. storage disabled).

use std::sync::Arc;

use aws_types::region::Region;

use crate::error::{Error, ErrorKind};
use crate::handle::Handle;
use crate::input::{required_channel, ChannelArn, ChannelId, ClientId, Role};
use crate::operation::discover::{discover, Discovery};

/// Builder of JoinStorageSession, or of JoinStorageSessionAsViewer for a viewer; finish with
/// [`send`](JoinStorageSessionFluentBuilder::send).
///
/// ```no_run
/// # async fn run(client: kvs_webrtc_discovery::Client) -> Result<(), kvs_webrtc_discovery::Error> {
/// use kvs_webrtc_discovery::Role;
///
/// // The master, or a viewer when the application has a client id for it.
/// let viewer: Option<String> = None;
/// let mut join = client.join_storage_session().channel("front-door");
/// if let Some(id) = viewer {
///     join = join.role(Role::Viewer).client_id(id);
/// }
/// join.send().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "nothing happens until `send()` is awaited"]
pub struct JoinStorageSessionFluentBuilder {
    handle: Arc<Handle>,
    channel: Option<String>,
    role: Role,
    client_id: Option<String>,
    webrtc_endpoint_url: Option<String>,
}

impl JoinStorageSessionFluentBuilder {
    pub(crate) fn new(handle: Arc<Handle>, role: Role) -> Self {
        Self {
            handle,
            channel: None,
            role,
            client_id: None,
            webrtc_endpoint_url: None,
        }
    }

    /// The channel's name or ARN (required; an ARN with
    /// [`webrtc_endpoint_url`](Self::webrtc_endpoint_url)).
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// Join as the master (the default of `join_storage_session()`) or as a viewer (then a
    /// [`client_id`](Self::client_id) is required).
    pub fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// The viewer's id (required for a viewer); the same id its signaling socket uses.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The viewer's id, or `None`.
    pub fn set_client_id(mut self, client_id: Option<String>) -> Self {
        self.client_id = client_id;
        self
    }

    /// Call the storage API on this endpoint (the channel's WEBRTC endpoint) instead of
    /// discovering it; the channel must then be given by ARN. Nothing is looked up or cached.
    pub fn webrtc_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.webrtc_endpoint_url = Some(url.into());
        self
    }

    /// The WEBRTC endpoint to call, or `None` to discover it.
    pub fn set_webrtc_endpoint_url(mut self, url: Option<String>) -> Self {
        self.webrtc_endpoint_url = url;
        self
    }

    /// Ask the storage service to start a session for the master, or to add this viewer to the
    /// channel's session. The SDP offer then arrives on the participant's signaling socket,
    /// which must already be open.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a missing or malformed channel or client id (a viewer
    /// without one, a master with one); then as [`discover`](crate::Client::discover), then
    /// the mapped storage API error (e.g. [`ErrorKind::Throttled`] for ClientLimitExceeded).
    #[tracing::instrument(skip_all, fields(channel = ?self.channel, role = %self.role, client_id = ?self.client_id))]
    pub async fn send(self) -> Result<JoinStorageSessionOutput, Error> {
        let operation = match self.role {
            Role::Master => "join_storage_session()",
            Role::Viewer => "join_storage_session_as_viewer()",
        };
        let channel = required_channel(self.channel, operation)?;
        let client_id =
            match (self.role, self.client_id) {
                (Role::Master, None) => None,
                (Role::Viewer, Some(id)) => Some(ClientId::new(id)?),
                (Role::Viewer, None) => return Err(Error::invalid_input(
                    "join_storage_session_as_viewer() needs the viewer's id: call .client_id(..)",
                )),
                (Role::Master, Some(id)) => {
                    return Err(Error::invalid_input(format!(
                        "client id `{id}` is for a viewer: JoinStorageSession joins the master; \
                     call .role(Role::Viewer) or use join_storage_session_as_viewer()"
                    )))
                }
            };
        let discovery = match self.webrtc_endpoint_url {
            Some(url) => {
                let Some(arn) = channel.arn() else {
                    return Err(Error::invalid_input(format!(
                        "channel `{channel}` is a name; with a WEBRTC endpoint URL nothing is \
                         looked up, so give the channel's ARN"
                    )));
                };
                let storage = storage_client_at(&self.handle, arn, &url);
                call(&storage, arn, &url, client_id.as_ref()).await?;
                None
            }
            None => Some(join(&self.handle, channel, self.role, client_id).await?),
        };
        Ok(JoinStorageSessionOutput { discovery })
    }
}

/// A successful join: the service accepted it and will send its SDP offer on the signaling
/// socket (200 means accepted, not that an offer is on its way for certain; retry the join if
/// none arrives).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JoinStorageSessionOutput {
    discovery: Option<Discovery>,
}

impl JoinStorageSessionOutput {
    /// The discovery the join used (`None` when the WEBRTC endpoint was given).
    pub fn discovery(&self) -> Option<&Discovery> {
        self.discovery.as_ref()
    }
}

async fn join(
    handle: &Arc<Handle>,
    channel: ChannelId,
    role: Role,
    client_id: Option<ClientId>,
) -> Result<Discovery, Error> {
    let found = discover(handle, channel.clone(), role, true, false).await?;
    match call_discovered(&found, client_id.as_ref()).await {
        Err(err) if found.from_cache() && means_stale(&err) => {
            tracing::info!(channel = %found.channel().arn(), error = %err, "cached endpoints look stale; looking the channel up again");
            handle.invalidate_channel(&channel);
            let fresh = discover(handle, channel, role, true, true).await?;
            call_discovered(&fresh, client_id.as_ref()).await?;
            Ok(fresh)
        }
        Err(err) => Err(err),
        Ok(()) => Ok(found),
    }
}

async fn call_discovered(found: &Discovery, client_id: Option<&ClientId>) -> Result<(), Error> {
    let storage = found.storage_client().ok_or_else(|| {
        Error::new(
            ErrorKind::EndpointMissing,
            format!(
                "channel `{}` has no WEBRTC endpoint",
                found.channel().name()
            ),
        )
    })?;
    let target = found.endpoints().webrtc().unwrap_or_default();
    call(storage, found.channel().arn(), target, client_id).await
}

/// The storage API call itself: JoinStorageSession, or JoinStorageSessionAsViewer with a client
/// id. `target` (the endpoint) names where it went in the error.
async fn call(
    storage: &aws_sdk_kinesisvideowebrtcstorage::Client,
    arn: &ChannelArn,
    target: &str,
    client_id: Option<&ClientId>,
) -> Result<(), Error> {
    match client_id {
        None => storage
            .join_storage_session()
            .channel_arn(arn.as_str())
            .send()
            .await
            .map(drop)
            .map_err(|e| Error::from_sdk("JoinStorageSession", target, e)),
        Some(id) => storage
            .join_storage_session_as_viewer()
            .channel_arn(arn.as_str())
            .client_id(id.as_str())
            .send()
            .await
            .map(drop)
            .map_err(|e| Error::from_sdk("JoinStorageSessionAsViewer", target, e)),
    }
}

/// A storage client on a given endpoint, in the channel's region, with the user's settings.
fn storage_client_at(
    handle: &Handle,
    arn: &ChannelArn,
    url: &str,
) -> aws_sdk_kinesisvideowebrtcstorage::Client {
    aws_sdk_kinesisvideowebrtcstorage::Client::from_conf(
        aws_sdk_kinesisvideowebrtcstorage::config::Builder::from(&handle.config.sdk_config)
            .endpoint_url(url)
            .region(Region::new(arn.region().to_owned()))
            .build(),
    )
}

/// Errors after which a fresh lookup can change the outcome.
fn means_stale(err: &Error) -> bool {
    match err.kind() {
        ErrorKind::ChannelNotFound | ErrorKind::Network => true,
        // Raised by the service (not locally): storage was reconfigured since the lookup.
        ErrorKind::InvalidInput => err.service_code().is_some(),
        _ => false,
    }
}
