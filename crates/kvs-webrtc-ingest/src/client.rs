//! The client and its one operation's builder.

use std::sync::Arc;

use aws_types::SdkConfig;
use kvs_webrtc_discovery::Role;

use crate::config::Config;
use crate::driver;
use crate::error::{Error, ErrorKind};
use crate::handle::IngestSession;
use crate::source::{AudioSource, ContainerSource, VideoSource};

/// Streams media into Kinesis Video Streams through WebRTC ingestion. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    config: Arc<Config>,
}

impl Client {
    /// A client with default settings, from the AWS SDK configuration (region, credentials,
    /// endpoint URL, HTTP client).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when no trusted root certificate can be loaded for the signaling
    /// socket.
    pub fn new(sdk_config: &SdkConfig) -> Result<Self, Error> {
        Config::builder()
            .sdk_config(sdk_config.clone())
            .build()
            .map(Self::from_conf)
    }

    /// A client with explicit settings.
    pub fn from_conf(config: Config) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Start streaming into a channel's storage session.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use kvs_webrtc_ingest::{AudioSource, Client, VideoSource};
    ///
    /// let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    /// let session = Client::new(&sdk_config)?
    ///     .ingest()
    ///     .channel("front-door")
    ///     .video(VideoSource::annex_b_file("camera.h264").looping(true))
    ///     .audio(AudioSource::ogg_opus_file("microphone.opus").looping(true))
    ///     .send()
    ///     .await?;
    /// tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    /// let stats = session.stop().await?;
    /// println!("{} video frames sent", stats.video.frames_sent);
    /// # Ok(()) }
    /// ```
    pub fn ingest(&self) -> IngestFluentBuilder {
        IngestFluentBuilder {
            config: Arc::clone(&self.config),
            channel: None,
            viewer_id: None,
            video: None,
            audio: None,
            container: None,
        }
    }
}

/// Builder of an ingestion; finish with [`send`](IngestFluentBuilder::send).
#[derive(Debug)]
#[must_use = "nothing happens until `send()` is awaited"]
pub struct IngestFluentBuilder {
    config: Arc<Config>,
    channel: Option<String>,
    viewer_id: Option<String>,
    video: Option<VideoSource>,
    audio: Option<AudioSource>,
    container: Option<ContainerSource>,
}

impl IngestFluentBuilder {
    /// The channel's name or ARN (required).
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// Join as a viewer with this client id (`JoinStorageSessionAsViewer`) instead of as the
    /// master. Keep the id stable: the service routes the offer by it. A viewer sends audio
    /// only (or nothing).
    pub fn viewer(mut self, client_id: impl Into<String>) -> Self {
        self.viewer_id = Some(client_id.into());
        self
    }

    /// The video source (required for the master; a viewer sends no video).
    pub fn video(mut self, source: VideoSource) -> Self {
        self.video = Some(source);
        self
    }

    /// The audio source (required for the master, optional for a viewer).
    pub fn audio(mut self, source: AudioSource) -> Self {
        self.audio = Some(source);
        self
    }

    /// Both tracks from one Matroska/WebM file or stream, instead of `.video(..)` and
    /// `.audio(..)` (a viewer takes only its audio).
    pub fn media(mut self, source: ContainerSource) -> Self {
        self.container = Some(source);
        self
    }

    /// Check the sources, connect signaling and start the session in the background. The
    /// returned [`IngestSession`] reports events and statistics and stops it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a missing channel or track, or media that is not what it
    /// should be (checked before any network call); the discovery and signaling errors
    /// ([`ErrorKind::AccessDenied`], [`ErrorKind::ChannelNotUsable`], ...).
    #[tracing::instrument(skip_all, fields(channel = ?self.channel, viewer = ?self.viewer_id))]
    pub async fn send(self) -> Result<IngestSession, Error> {
        let channel = self.channel.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "ingest() needs a channel: call .channel(<name or ARN>)",
            )
        })?;
        let is_viewer = self.viewer_id.is_some();
        if self.container.is_some() && (self.video.is_some() || self.audio.is_some()) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "give either .media(..) (a container with both tracks) or .video(..) and \
                 .audio(..), not both",
            ));
        }
        if is_viewer && self.video.is_some() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a viewer of a storage session sends no video: drop .video(..) or join as master",
            ));
        }
        if !is_viewer && self.container.is_none() && (self.video.is_none() || self.audio.is_none())
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "WebRTC ingestion needs both tracks from the master: give .video(..) (H.264) \
                     and .audio(..) ({})",
                    kvs_media::AudioCodec::INGESTED
                ),
            ));
        }
        let (video, audio) = tokio::task::spawn_blocking(move || {
            if let Some(container) = self.container {
                return container.open(!is_viewer);
            }
            let video = self.video.map(VideoSource::open).transpose()?;
            let audio = self.audio.map(AudioSource::open).transpose()?;
            Ok::<_, Error>((video, audio))
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Io, format!("the source check failed: {e}")))??;

        let mut connect = self.config.signaling.connect().channel(&channel);
        if let Some(id) = &self.viewer_id {
            connect = connect.role(Role::Viewer).client_id(id);
        }
        // Boxed: the connect future is deep, and nesting it unboxed overflows the compiler's
        // layout query depth.
        let connection = Box::pin(connect.send())
            .await
            .map_err(|e| Error::from_signaling("the signaling socket could not be opened", e))?;
        driver::start(driver::Start {
            config: Arc::clone(&self.config),
            connection,
            viewer_id: self.viewer_id,
            video,
            audio,
        })
        .await
    }
}
