//! The signaling client and its `connect()` operation.

use std::sync::Arc;

use kvs_webrtc_discovery::{ChannelId, ClientId, Role};
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::connection::{ConnectionState, Event, SignalingConnection};
use crate::driver::Driver;
use crate::error::{Error, ErrorKind};
use crate::transport::{self, Target};

/// Opens signaling connections. Cheap to clone.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use kvs_webrtc_signaling::{Client, Event, SignalingMessage};
///
/// let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
/// let discovery = kvs_webrtc_discovery::Client::new(&sdk_config);
/// let signaling = Client::new(discovery.clone())?;
///
/// let mut connection = signaling.connect().channel("front-door").send().await?;
/// discovery.join_storage_session().channel("front-door").send().await?;
/// while let Some(event) = connection.next_event().await {
///     if let Event::Message(SignalingMessage::Offer { description, .. }) = event {
///         let answer_sdp = answer_with_your_webrtc_stack(&description.sdp);
///         connection.sender().send_answer(answer_sdp).await?;
///     }
/// }
/// # Ok(()) }
/// # fn answer_with_your_webrtc_stack(_: &str) -> String { String::new() }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    config: Arc<Config>,
}

impl Client {
    /// A client with default settings over a discovery client.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when no trusted root certificate can be loaded.
    pub fn new(discovery: kvs_webrtc_discovery::Client) -> Result<Self, Error> {
        Ok(Self::from_conf(Config::builder(discovery).build()?))
    }

    /// A client with explicit settings.
    pub fn from_conf(config: Config) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Connect to a channel's signaling socket as master or viewer.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let emulator = kvs_emulator::Emulator::builder().temporary().start().await?;
    /// # emulator.create_storage_channel("front-door")?;
    /// # // Against AWS: aws_config::load_defaults(BehaviorVersion::latest()).await
    /// # let sdk_config = emulator.sdk_config()?;
    /// use kvs_webrtc_signaling::{Event, SignalingMessage};
    ///
    /// let discovery = kvs_webrtc_discovery::Client::new(&sdk_config);
    /// let signaling = kvs_webrtc_signaling::Client::from_conf(
    ///     kvs_webrtc_signaling::Config::builder(discovery.clone())
    ///         // Only for the emulator's CA; AWS endpoints use the system's roots.
    ///         .trust_root_certificate_pem(emulator.ca_cert_pem().unwrap())
    ///         .build()?,
    /// );
    /// let mut connection = signaling.connect().channel("front-door").send().await?;
    /// discovery.join_storage_session().channel("front-door").send().await?;
    /// while let Some(event) = connection.next_event().await {
    ///     if let Event::Message(SignalingMessage::Offer { sender, description }) = event {
    ///         assert_eq!(sender, None); // the storage session
    ///         assert!(description.sdp.contains("H264"));
    ///         break;
    ///     }
    /// }
    /// connection.close().await;
    /// # Ok(()) }
    /// ```
    pub fn connect(&self) -> ConnectFluentBuilder {
        ConnectFluentBuilder {
            config: self.config.clone(),
            channel: None,
            role: Role::Master,
            client_id: None,
            require_storage: true,
        }
    }
}

/// Builder of a connection; finish with [`send`](ConnectFluentBuilder::send).
#[derive(Debug)]
#[must_use = "nothing happens until `send()` is awaited"]
pub struct ConnectFluentBuilder {
    config: Arc<Config>,
    channel: Option<String>,
    role: Role,
    client_id: Option<String>,
    require_storage: bool,
}

impl ConnectFluentBuilder {
    /// The channel's name or ARN (required).
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// Master (default) or viewer. A viewer needs a [`client_id`](Self::client_id).
    pub fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// The viewer's id (`X-Amz-ClientId`); keep it stable across reconnects.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Whether the channel must have media storage enabled (default `true`); `false` for a
    /// peer-to-peer channel.
    pub fn require_storage(mut self, require: bool) -> Self {
        self.require_storage = require;
        self
    }

    /// Discover the channel, open the socket and start the background task that keeps it open.
    /// The first event is [`Event::StateChanged`] with `Connected { reconnects: 0 }`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a bad channel or client id (before any call), the
    /// discovery errors, [`ErrorKind::AccessDenied`] / [`ErrorKind::ChannelNotFound`] /
    /// [`ErrorKind::Throttled`] when the service refuses the upgrade, [`ErrorKind::Network`].
    #[tracing::instrument(skip_all, fields(channel = ?self.channel, role = %self.role))]
    pub async fn send(self) -> Result<SignalingConnection, Error> {
        let channel = self.channel.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "connect() needs a channel: call .channel(<name or ARN>)",
            )
        })?;
        let channel = ChannelId::parse(&channel).map_err(Error::discovery)?;
        let client_id = self
            .client_id
            .map(ClientId::new)
            .transpose()
            .map_err(Error::discovery)?;
        if self.role == Role::Viewer && client_id.is_none() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a viewer needs a client id: call .client_id(..)",
            ));
        }
        let target = Target {
            channel,
            role: self.role,
            client_id,
            require_storage: self.require_storage,
        };
        let (socket, discovery) = transport::open(&self.config, &target, false).await?;
        tracing::info!(channel = %discovery.channel().arn(), role = %self.role, "signaling connected");

        let (commands_tx, commands_rx) = mpsc::channel(self.config.outbound_queue);
        let (events_tx, events_rx) = mpsc::channel(self.config.event_queue);
        let connected = ConnectionState::Connected { reconnects: 0 };
        let (state_tx, state_rx) = watch::channel(connected.clone());
        // The queue is empty, so the first event always fits.
        let _ = events_tx.try_send(Event::StateChanged(connected));
        let driver = Driver {
            config: (*self.config).clone(),
            target,
            commands: commands_rx,
            events: events_tx,
            state: state_tx,
            held: Default::default(),
            lost: 0,
        };
        let task = tokio::spawn(driver.run(socket));
        let id_prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis().to_string())
            .unwrap_or_default();
        Ok(SignalingConnection::new(
            commands_tx,
            state_rx,
            events_rx,
            discovery,
            task,
            id_prefix,
        ))
    }
}
