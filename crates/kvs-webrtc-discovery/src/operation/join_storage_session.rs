//! `client.join_storage_session()` and `client.join_storage_session_as_viewer()`: discovery
//! (usually from the cache), then the storage API call on the WEBRTC endpoint.
//!
//! A cached lookup can be stale: the channel was deleted and re-created (new ARN), storage was
//! reconfigured, or the endpoint moved. The errors that mean this (ResourceNotFound,
//! InvalidArgument from the service, a connection failure) drop the cache entry, and the call is
//! made once more with a fresh lookup, which then reports the real state (e.g. storage disabled).

use std::sync::Arc;

use crate::error::{Error, ErrorKind};
use crate::handle::Handle;
use crate::input::{required_channel, ChannelId, ClientId, Role};
use crate::operation::discover::{discover, Discovery};

/// Builder of JoinStorageSession; finish with [`send`](JoinStorageSessionFluentBuilder::send).
#[derive(Debug)]
#[must_use = "nothing happens until `send()` is awaited"]
pub struct JoinStorageSessionFluentBuilder {
    handle: Arc<Handle>,
    channel: Option<String>,
}

impl JoinStorageSessionFluentBuilder {
    pub(crate) fn new(handle: Arc<Handle>) -> Self {
        Self {
            handle,
            channel: None,
        }
    }

    /// The channel's name or ARN (required).
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// Ask the storage service to start a session for the master. The SDP offer then arrives
    /// on the master's signaling socket, which must already be open.
    ///
    /// # Errors
    /// As [`discover`](crate::Client::discover), then the mapped JoinStorageSession error
    /// (e.g. [`ErrorKind::Throttled`] for ClientLimitExceeded).
    #[tracing::instrument(skip_all, fields(channel = ?self.channel))]
    pub async fn send(self) -> Result<JoinStorageSessionOutput, Error> {
        let channel = required_channel(self.channel, "join_storage_session()")?;
        let discovery = join(&self.handle, channel, Role::Master, None).await?;
        Ok(JoinStorageSessionOutput { discovery })
    }
}

/// Builder of JoinStorageSessionAsViewer; finish with
/// [`send`](JoinStorageSessionAsViewerFluentBuilder::send).
#[derive(Debug)]
#[must_use = "nothing happens until `send()` is awaited"]
pub struct JoinStorageSessionAsViewerFluentBuilder {
    handle: Arc<Handle>,
    channel: Option<String>,
    client_id: Option<String>,
}

impl JoinStorageSessionAsViewerFluentBuilder {
    pub(crate) fn new(handle: Arc<Handle>) -> Self {
        Self {
            handle,
            channel: None,
            client_id: None,
        }
    }

    /// The channel's name or ARN (required).
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// The viewer's id (required); the same id its signaling socket uses.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Ask the storage service to add this viewer to the channel's session.
    ///
    /// # Errors
    /// As [`JoinStorageSessionFluentBuilder::send`]; [`ErrorKind::InvalidInput`] without a
    /// valid client id.
    #[tracing::instrument(skip_all, fields(channel = ?self.channel, client_id = ?self.client_id))]
    pub async fn send(self) -> Result<JoinStorageSessionOutput, Error> {
        let channel = required_channel(self.channel, "join_storage_session_as_viewer()")?;
        let Some(client_id) = self.client_id else {
            return Err(Error::invalid_input(
                "join_storage_session_as_viewer() needs the viewer's id: call .client_id(..)",
            ));
        };
        let client_id = ClientId::new(client_id)?;
        let discovery = join(&self.handle, channel, Role::Viewer, Some(client_id)).await?;
        Ok(JoinStorageSessionOutput { discovery })
    }
}

/// A successful join: the service accepted it and will send its SDP offer on the signaling
/// socket (200 means accepted, not that an offer is on its way for certain; retry the join if
/// none arrives).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JoinStorageSessionOutput {
    discovery: Discovery,
}

impl JoinStorageSessionOutput {
    /// The discovery the join used.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }
}

async fn join(
    handle: &Arc<Handle>,
    channel: ChannelId,
    role: Role,
    client_id: Option<ClientId>,
) -> Result<Discovery, Error> {
    let found = discover(handle, channel.clone(), role, true, false).await?;
    match call(&found, client_id.as_ref()).await {
        Err(err) if found.from_cache() && means_stale(&err) => {
            tracing::info!(channel = %found.channel().arn(), error = %err, "cached endpoints look stale; looking the channel up again");
            handle.invalidate_channel(&channel);
            let fresh = discover(handle, channel, role, true, true).await?;
            call(&fresh, client_id.as_ref()).await?;
            Ok(fresh)
        }
        Err(err) => Err(err),
        Ok(()) => Ok(found),
    }
}

async fn call(found: &Discovery, client_id: Option<&ClientId>) -> Result<(), Error> {
    let storage = found.storage_client().ok_or_else(|| {
        Error::new(
            ErrorKind::EndpointMissing,
            format!(
                "channel `{}` has no WEBRTC endpoint",
                found.channel().name()
            ),
        )
    })?;
    let arn = found.channel().arn().as_str();
    let target = found.endpoints().webrtc().unwrap_or_default();
    match client_id {
        None => storage
            .join_storage_session()
            .channel_arn(arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| Error::from_sdk("JoinStorageSession", target, e)),
        Some(id) => storage
            .join_storage_session_as_viewer()
            .channel_arn(arn)
            .client_id(id.as_str())
            .send()
            .await
            .map(drop)
            .map_err(|e| Error::from_sdk("JoinStorageSessionAsViewer", target, e)),
    }
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
