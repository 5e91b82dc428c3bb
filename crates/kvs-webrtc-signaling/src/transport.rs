//! Opening one signaling socket: discover (usually cached), sign a fresh URL, connect over TLS
//! with a timeout, and turn an HTTP refusal of the upgrade into a typed error.

use std::time::SystemTime;

use aws_credential_types::provider::ProvideCredentials;
use kvs_webrtc_discovery::{ChannelId, ClientId, Discovery, Role};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::presign::{presign, PresignInput};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Who connects to which channel.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) channel: ChannelId,
    pub(crate) role: Role,
    pub(crate) client_id: Option<ClientId>,
    pub(crate) require_storage: bool,
}

/// Open a socket. `refresh` skips the endpoint cache (after a failure that may mean the cached
/// endpoint is stale).
pub(crate) async fn open(
    config: &Config,
    target: &Target,
    refresh: bool,
) -> Result<(Socket, Discovery), Error> {
    let discovery = config
        .discovery
        .discover()
        .channel(target.channel.to_string())
        .role(target.role)
        .require_storage(target.require_storage)
        .force_refresh(refresh)
        .send()
        .await
        .map_err(Error::discovery)?;
    let sdk = config.discovery.config().sdk_config();
    let provider = sdk.credentials_provider().ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            "the SdkConfig has no credentials provider to sign the signaling URL with",
        )
    })?;
    let credentials = provider.provide_credentials().await.map_err(|e| {
        Error::new(
            ErrorKind::Config,
            "no credentials to sign the signaling URL with",
        )
        .with_source(e)
    })?;
    let now = sdk
        .time_source()
        .map(|t| t.now())
        .unwrap_or_else(SystemTime::now);
    let channel = discovery.channel();
    let url = presign(&PresignInput {
        endpoint: discovery.endpoints().wss(),
        channel_arn: channel.arn().as_str(),
        client_id: target.client_id.as_ref().map(ClientId::as_str),
        region: channel.arn().region(),
        credentials: &credentials,
        time: now,
        expires_in: config.url_expiry,
    })?;
    tracing::debug!(url = %url, "opening signaling socket");
    let connector = tokio_tungstenite::Connector::Rustls(config.tls.clone());
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        url.as_str(),
        Some(websocket_config()),
        false,
        Some(connector),
    );
    let endpoint = discovery.endpoints().wss();
    let (socket, _response) = tokio::time::timeout(config.connect_timeout, connect)
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Network,
                format!(
                    "opening the signaling socket at {endpoint} took longer than {:?}",
                    config.connect_timeout
                ),
            )
        })?
        .map_err(|e| refused(endpoint, e))?;
    Ok((socket, discovery))
}

/// Map a failed upgrade. The URL (with its signature) never goes into the message.
fn refused(endpoint: &str, err: tungstenite::Error) -> Error {
    let tungstenite::Error::Http(response) = &err else {
        return Error::new(
            ErrorKind::Network,
            format!("the signaling socket at {endpoint} could not be opened"),
        )
        .with_source(err);
    };
    let status = response.status();
    let error_type = response
        .headers()
        .get("x-amzn-ErrorType")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_owned());
    let body = response
        .body()
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let error_type = error_type
        .or_else(|| {
            ["ClientLimitExceededException", "AccessDeniedException"]
                .into_iter()
                .find(|t| body.contains(t))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "an unnamed error".to_owned());
    let kind = match status.as_u16() {
        401 | 403 => ErrorKind::AccessDenied,
        404 => ErrorKind::ChannelNotFound,
        429 => ErrorKind::Throttled,
        400 if error_type.contains("ClientLimitExceeded") => ErrorKind::Throttled,
        400 => ErrorKind::InvalidInput,
        _ => ErrorKind::Network,
    };
    let hint = match kind {
        ErrorKind::AccessDenied => "; check the credentials, the clock and the region",
        _ => "",
    };
    Error::new(
        kind,
        format!("the signaling service at {endpoint} refused the connection: {status} {error_type}{hint}"),
    )
    .with_source(err)
}

/// Signaling messages are small (an SDP offer is a few kilobytes; the service refuses payloads
/// over 10,000 characters): read in 16 KiB chunks and write each frame at once instead of
/// tungstenite's 128 KiB buffers each way, which held most of a device's memory per
/// connection. A message over 1 MiB is refused as the garbage it would be.
fn websocket_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(16 << 10)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}
