//! The control plane's resources: signaling channels, streams and the mapping between them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::api_error::ApiError;
use crate::registry_file::{self, Resources};

/// One signaling channel.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    /// Channel name.
    pub name: String,
    /// Channel ARN.
    pub arn: String,
    /// `SINGLE_MASTER` or `FULL_MESH`.
    pub channel_type: String,
    /// Creation time, seconds since the epoch.
    pub creation_time: f64,
    /// Opaque version, changes on every update.
    pub version: String,
    /// `SingleMasterConfiguration.MessageTtlSeconds`.
    pub message_ttl_seconds: u32,
    /// `MediaStorageConfiguration.StreamARN`: the stream media is stored into. A channel
    /// disabled with a StreamARN keeps it (and its claim on the stream).
    pub storage_stream_arn: Option<String>,
    /// Whether `MediaStorageConfiguration.Status` is `ENABLED`.
    pub storage_status_enabled: bool,
}

impl Channel {
    /// Whether storage is on: status `ENABLED` (which implies a stream).
    pub fn storage_enabled(&self) -> bool {
        self.storage_status_enabled && self.storage_stream_arn.is_some()
    }

    /// The stream to store into, when storage is enabled.
    pub fn storage_stream(&self) -> Option<&str> {
        self.storage_stream_arn
            .as_deref()
            .filter(|_| self.storage_status_enabled)
    }
}

/// One Kinesis video stream.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stream {
    /// Stream name.
    pub name: String,
    /// Stream ARN.
    pub arn: String,
    /// Device name given at creation.
    pub device_name: Option<String>,
    /// Media type given at creation.
    pub media_type: Option<String>,
    /// KMS key id (the AWS-managed default when none was given).
    pub kms_key_id: String,
    /// Retention; 0 means "no retention", which storage refuses.
    pub data_retention_in_hours: u32,
    /// Creation time, seconds since the epoch.
    pub creation_time: f64,
    /// Opaque version.
    pub version: String,
}

/// All channels and streams of the emulated account.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    channels: HashMap<String, Channel>,
    streams: HashMap<String, Stream>,
    /// Where they are kept across restarts ([`registry_file`]); `None`: in memory only.
    file: Option<PathBuf>,
}

/// How a request names a resource.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ResourceRef<'a> {
    /// By name.
    Name(&'a str),
    /// By ARN.
    Arn(&'a str),
}

impl<'a> ResourceRef<'a> {
    /// `text` as a name, or as an ARN when it is one (`arn:…`): how the inspection API and
    /// the emulator's handle take "a channel name or ARN".
    pub(crate) fn name_or_arn(text: &'a str) -> Self {
        if text.starts_with("arn:") {
            Self::Arn(text)
        } else {
            Self::Name(text)
        }
    }
}

fn epoch(now: SystemTime) -> (f64, u128) {
    let d = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    ((d.as_millis() as f64) / 1000.0, d.as_millis())
}

fn new_version() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..20].to_owned()
}

impl Registry {
    /// The resources kept in `file` (none yet when it does not exist), kept there after every
    /// change; `None`: in memory only.
    ///
    /// # Errors
    /// The file exists but cannot be read as the emulator's resources.
    pub(crate) fn open(file: Option<PathBuf>) -> Result<Self, crate::Error> {
        let resources = match &file {
            Some(path) => registry_file::load(path)?,
            None => Resources::default(),
        };
        Ok(Self {
            channels: resources
                .channels
                .into_iter()
                .map(|c| (c.arn.clone(), c))
                .collect(),
            streams: resources
                .streams
                .into_iter()
                .map(|s| (s.arn.clone(), s))
                .collect(),
            file,
        })
    }

    /// Keep the resources as they are now in the file, if there is one. A failure is logged:
    /// the change stands in memory, as the API call that made it already succeeded.
    fn persist(&self) {
        let Some(path) = &self.file else {
            return;
        };
        let resources = Resources::new(self.channels(), self.streams());
        if let Err(e) = registry_file::save(path, &resources) {
            tracing::error!(file = %path.display(), error = %e, "the channels and streams could not be saved; a restart will not have this change");
        }
    }

    /// Create a channel; a name in use is `ResourceInUseException`.
    pub(crate) fn create_channel(
        &mut self,
        region: &str,
        account: &str,
        name: &str,
        channel_type: &str,
        message_ttl_seconds: u32,
        now: SystemTime,
    ) -> Result<Channel, ApiError> {
        if self.channels.values().any(|c| c.name == name) {
            return Err(ApiError::in_use(format!(
                "The signaling channel {name} already exists."
            )));
        }
        let (secs, millis) = epoch(now);
        let channel = Channel {
            name: name.to_owned(),
            arn: format!("arn:aws:kinesisvideo:{region}:{account}:channel/{name}/{millis}"),
            channel_type: channel_type.to_owned(),
            creation_time: secs,
            version: new_version(),
            message_ttl_seconds,
            storage_stream_arn: None,
            storage_status_enabled: false,
        };
        self.channels.insert(channel.arn.clone(), channel.clone());
        self.persist();
        Ok(channel)
    }

    /// Create a stream; a name in use is `ResourceInUseException`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create_stream(
        &mut self,
        region: &str,
        account: &str,
        name: &str,
        device_name: Option<String>,
        media_type: Option<String>,
        kms_key_id: Option<String>,
        data_retention_in_hours: u32,
        now: SystemTime,
    ) -> Result<Stream, ApiError> {
        if self.streams.values().any(|s| s.name == name) {
            return Err(ApiError::in_use(format!(
                "The stream {name} already exists."
            )));
        }
        let (secs, millis) = epoch(now);
        let stream = Stream {
            name: name.to_owned(),
            arn: format!("arn:aws:kinesisvideo:{region}:{account}:stream/{name}/{millis}"),
            device_name,
            media_type,
            kms_key_id: kms_key_id.unwrap_or_else(|| {
                format!("arn:aws:kms:{region}:{account}:alias/aws/kinesisvideo")
            }),
            data_retention_in_hours,
            creation_time: secs,
            version: new_version(),
        };
        self.streams.insert(stream.arn.clone(), stream.clone());
        self.persist();
        Ok(stream)
    }

    /// Find a channel by name or ARN.
    pub(crate) fn channel(&self, by: ResourceRef<'_>) -> Result<&Channel, ApiError> {
        let found = match by {
            ResourceRef::Arn(arn) => self.channels.get(arn),
            ResourceRef::Name(name) => self.channels.values().find(|c| c.name == name),
        };
        found
            .ok_or_else(|| ApiError::not_found("The requested channel is not found or not active."))
    }

    /// Find a stream by name or ARN.
    pub(crate) fn stream(&self, by: ResourceRef<'_>) -> Result<&Stream, ApiError> {
        let found = match by {
            ResourceRef::Arn(arn) => self.streams.get(arn),
            ResourceRef::Name(name) => self.streams.values().find(|s| s.name == name),
        };
        found.ok_or_else(|| ApiError::not_found("The requested stream is not found or not active."))
    }

    /// Delete a channel, checking `CurrentVersion` when given.
    pub(crate) fn delete_channel(
        &mut self,
        arn: &str,
        current_version: Option<&str>,
    ) -> Result<Channel, ApiError> {
        let channel = self.channel(ResourceRef::Arn(arn))?;
        if let Some(version) = current_version {
            if version != channel.version {
                return Err(ApiError::new(
                    http::StatusCode::BAD_REQUEST,
                    "VersionMismatchException",
                    "The CurrentVersion does not match the channel's version.",
                ));
            }
        }
        let removed = self.channels.remove(arn).expect("looked up above");
        self.persist();
        Ok(removed)
    }

    /// Delete a stream, checking `CurrentVersion` when given.
    pub(crate) fn delete_stream(
        &mut self,
        arn: &str,
        current_version: Option<&str>,
    ) -> Result<Stream, ApiError> {
        let stream = self.stream(ResourceRef::Arn(arn))?;
        if current_version.is_some_and(|v| v != stream.version) {
            return Err(ApiError::new(
                http::StatusCode::BAD_REQUEST,
                "VersionMismatchException",
                "The CurrentVersion does not match the stream's version.",
            ));
        }
        let removed = self.streams.remove(arn).expect("looked up above");
        self.persist();
        Ok(removed)
    }

    /// Enable storage of `channel_arn` into `stream_arn`, or disable it (`None`).
    pub(crate) fn update_media_storage(
        &mut self,
        channel_arn: &str,
        stream_arn: Option<&str>,
        enabled: bool,
        max_enabled: usize,
    ) -> Result<(), ApiError> {
        self.channel(ResourceRef::Arn(channel_arn))?;
        if let Some(stream_arn) = stream_arn {
            let stream = self.stream(ResourceRef::Arn(stream_arn))?;
            if stream.data_retention_in_hours == 0 {
                return Err(ApiError::new(
                    http::StatusCode::BAD_REQUEST,
                    "NoDataRetentionException",
                    format!(
                        "The stream {} has no data retention; set DataRetentionInHours above 0.",
                        stream.name
                    ),
                ));
            }
            if let Some(other) = self.channels.values().find(|c| {
                c.arn != channel_arn && c.storage_stream_arn.as_deref() == Some(stream_arn)
            }) {
                return Err(ApiError::in_use(format!(
                    "The stream {} is already mapped to the signaling channel {}.",
                    stream.name, other.name
                )));
            }
            let already_enabled = self
                .channels
                .values()
                .filter(|c| c.arn != channel_arn && c.storage_enabled())
                .count();
            if enabled && already_enabled >= max_enabled {
                return Err(ApiError::new(
                    http::StatusCode::BAD_REQUEST,
                    "AccountChannelLimitExceededException",
                    format!(
                        "At most {max_enabled} signaling channels can have media storage enabled."
                    ),
                ));
            }
        }
        let channel = self.channels.get_mut(channel_arn).expect("looked up above");
        channel.storage_stream_arn = stream_arn.map(str::to_owned);
        channel.storage_status_enabled = enabled;
        channel.version = new_version();
        self.persist();
        Ok(())
    }

    /// All channels, sorted by name.
    pub(crate) fn channels(&self) -> Vec<Channel> {
        let mut all: Vec<Channel> = self.channels.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// All streams, sorted by name.
    pub(crate) fn streams(&self) -> Vec<Stream> {
        let mut all: Vec<Stream> = self.streams.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}
