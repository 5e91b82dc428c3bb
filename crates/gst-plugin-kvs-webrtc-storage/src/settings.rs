//! The element's properties, checked when it starts ([`Settings::plan`]), and the ingest client
//! made of them ([`Plan::client`]).

use std::path::PathBuf;

use kvs_webrtc_ingest::{ErrorChain, Track};

use crate::storagesink::{IceTransportPolicy, Role};

/// The property values. `Debug` never shows the secret key or the session token.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) channel_name: Option<String>,
    pub(crate) channel_arn: Option<String>,
    pub(crate) aws_region: Option<String>,
    pub(crate) access_key: Option<String>,
    pub(crate) secret_key: Option<String>,
    pub(crate) session_token: Option<String>,
    /// `iot-certificate`: a device's certificate for the AWS IoT credentials endpoint.
    pub(crate) iot_certificate: Option<gst::Structure>,
    pub(crate) endpoint_url: Option<String>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) ice_transport_policy: IceTransportPolicy,
    pub(crate) role: Role,
    pub(crate) client_id: Option<String>,
    pub(crate) sync: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            channel_name: None,
            channel_arn: None,
            aws_region: None,
            access_key: None,
            secret_key: None,
            session_token: None,
            iot_certificate: None,
            endpoint_url: None,
            ca_file: None,
            ice_transport_policy: IceTransportPolicy::All,
            role: Role::Master,
            client_id: None,
            sync: true,
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("Settings")
            .field("channel_name", &self.channel_name)
            .field("channel_arn", &self.channel_arn)
            .field("aws_region", &self.aws_region)
            .field("access_key", &self.access_key)
            .field("secret_key", &redacted(&self.secret_key))
            .field("session_token", &redacted(&self.session_token))
            .field("iot_certificate", &self.iot_certificate)
            .field("endpoint_url", &self.endpoint_url)
            .field("ca_file", &self.ca_file)
            .field("ice_transport_policy", &self.ice_transport_policy)
            .field("role", &self.role)
            .field("client_id", &self.client_id)
            .field("sync", &self.sync)
            .finish()
    }
}

/// Settings that cannot work, found before anything connects. Each message names the property
/// to set.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SettingsError {
    #[error("no channel: set channel-name (a name or an ARN) or channel-arn")]
    NoChannel,
    #[error("channel-name ({name}) and channel-arn ({arn}) are both set: set one of them")]
    TwoChannels { name: String, arn: String },
    #[error(
        "{set} is set but {missing} is not: set both for a fixed key, or neither for the standard \
         credential chain (environment, profile, instance role)"
    )]
    HalfAKey {
        set: &'static str,
        missing: &'static str,
    },
    #[error("session-token is set without access-key and secret-key: it belongs to a key")]
    TokenWithoutKey,
    #[error(
        "iot-certificate and access-key are both set: a device authenticates with its \
         certificate or with a key, set one of them"
    )]
    IotAndKey,
    #[error(
        "iot-certificate has no {field}: it needs endpoint, cert-path, key-path and \
         role-aliases (ca-path and iot-thing-name are optional), as kvssink's does"
    )]
    IotFieldMissing { field: &'static str },
    #[error(
        "iot-certificate's {field} must be a string: write {field}=(string)VALUE where \
         GStreamer would read the value as another type"
    )]
    IotFieldNotAString { field: String },
    #[error(
        "iot-certificate has a field {field} it does not know: its fields are endpoint, \
         cert-path, key-path, ca-path, role-aliases and iot-thing-name"
    )]
    IotFieldUnknown { field: String },
    #[error("role=viewer needs client-id: the storage session routes a viewer's offer by it")]
    ViewerNeedsClientId,
    #[error(
        "a master sends video and audio: link an {missing} stream to kvswebrtcstoragesink's \
         {track} pad ({hint})"
    )]
    MasterNeedsBothTracks {
        track: &'static str,
        missing: &'static str,
        hint: &'static str,
    },
    #[error("a viewer sends no video: release the video pad, or set role=master")]
    ViewerSendsNoVideo,
    #[error("the ca-file {} cannot be read", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why the session could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// The settings themselves (reported at the state change).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// No region anywhere.
    #[error(
        "no AWS region: set aws-region, or AWS_REGION, or a region in the AWS profile \
         (AWS_PROFILE)"
    )]
    NoRegion,
    /// No credentials from the IoT credentials endpoint with the `iot-certificate`.
    #[error("no credentials from the IoT credentials endpoint {endpoint}")]
    Iot {
        endpoint: String,
        #[source]
        source: kvs_iot_credentials::Error,
    },
    /// The library refused the configuration or failed to start the session.
    #[error(transparent)]
    Ingest(#[from] kvs_webrtc_ingest::Error),
}

impl StartError {
    /// The GStreamer error domain for it.
    pub(crate) fn domain(&self) -> gst::ResourceError {
        match self {
            Self::Settings(_) | Self::NoRegion => gst::ResourceError::Settings,
            Self::Iot { source, .. } => {
                use kvs_iot_credentials::ErrorKind as K;
                match source.kind() {
                    K::Config => gst::ResourceError::Settings,
                    K::CertificateRefused
                    | K::ThingNotAttached
                    | K::RoleAliasUnknown
                    | K::AccessDenied => gst::ResourceError::NotAuthorized,
                    _ => gst::ResourceError::OpenRead,
                }
            }
            Self::Ingest(e) => ingest_error_domain(e.kind()),
        }
    }

    /// The message with its causes, on one line.
    pub(crate) fn text(&self) -> String {
        ErrorChain(self).to_string()
    }
}

/// The GStreamer error domain for a library error.
pub(crate) fn ingest_error_domain(kind: kvs_webrtc_ingest::ErrorKind) -> gst::ResourceError {
    use kvs_webrtc_ingest::ErrorKind as K;
    match kind {
        K::InvalidInput | K::Config => gst::ResourceError::Settings,
        K::AccessDenied => gst::ResourceError::NotAuthorized,
        K::ChannelNotUsable => gst::ResourceError::NotFound,
        K::Relay | K::GaveUp => gst::ResourceError::OpenWrite,
        _ => gst::ResourceError::Failed,
    }
}

/// Checked settings: what the session is started with.
pub(crate) struct Plan {
    pub(crate) channel: String,
    /// `Some(client id)` for a viewer.
    pub(crate) viewer: Option<String>,
    region: Option<String>,
    key: Option<aws_credential_types::Credentials>,
    iot: Option<IotCertificate>,
    endpoint_url: Option<String>,
    ca_pem: Option<Vec<u8>>,
    policy: kvs_webrtc_ingest::IceTransportPolicy,
}

/// The `iot-certificate` property, read: kvssink's fields (`iot-certificate,endpoint=...,
/// cert-path=...,key-path=...,ca-path=...,role-aliases=...,iot-thing-name=...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IotCertificate {
    endpoint: String,
    cert_path: PathBuf,
    key_path: PathBuf,
    ca_path: Option<PathBuf>,
    role_alias: String,
    thing_name: Option<String>,
}

impl IotCertificate {
    const FIELDS: [&'static str; 6] = [
        "endpoint",
        "cert-path",
        "key-path",
        "ca-path",
        "role-aliases",
        "iot-thing-name",
    ];

    /// Read the structure; each problem names the field.
    fn read(structure: &gst::StructureRef) -> Result<Self, SettingsError> {
        if let Some(unknown) = structure
            .fields()
            .find(|field| !Self::FIELDS.contains(&field.as_str()))
        {
            return Err(SettingsError::IotFieldUnknown {
                field: unknown.to_string(),
            });
        }
        let optional = |field: &str| -> Result<Option<String>, SettingsError> {
            match structure.get_optional::<String>(field) {
                Ok(value) => Ok(value.filter(|v| !v.trim().is_empty())),
                Err(_) => Err(SettingsError::IotFieldNotAString {
                    field: field.to_owned(),
                }),
            }
        };
        let required =
            |field: &'static str| optional(field)?.ok_or(SettingsError::IotFieldMissing { field });
        Ok(Self {
            endpoint: required("endpoint")?,
            cert_path: required("cert-path")?.into(),
            key_path: required("key-path")?.into(),
            ca_path: optional("ca-path")?.map(PathBuf::from),
            role_alias: required("role-aliases")?,
            thing_name: optional("iot-thing-name")?,
        })
    }

    /// The credentials provider for `channel` (the thing name defaults to the channel's name),
    /// checked by getting credentials once, so that a refused certificate or an unknown role
    /// alias is an error at the start rather than at the first signed request. Without
    /// `ca-path`, the endpoint is trusted through `ca_pem` (the `ca-file`) and the system's roots.
    async fn provider(
        &self,
        channel: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<kvs_iot_credentials::IotCredentialsProvider, StartError> {
        let failed = |source| StartError::Iot {
            endpoint: self.endpoint.clone(),
            source,
        };
        let thing =
            self.thing_name.clone().unwrap_or_else(
                || match kvs_webrtc_discovery::ChannelId::parse(channel) {
                    Ok(kvs_webrtc_discovery::ChannelId::Arn(arn)) => arn.name().to_owned(),
                    _ => channel.to_owned(),
                },
            );
        let mut builder = kvs_iot_credentials::IotCredentialsProvider::builder()
            .endpoint(&self.endpoint)
            .role_alias(&self.role_alias)
            .thing_name(thing)
            .certificate_pem_file(&self.cert_path)
            .and_then(|b| b.private_key_pem_file(&self.key_path))
            .map_err(failed)?;
        builder = match (&self.ca_path, ca_pem) {
            (Some(path), _) => builder.ca_pem_file(path).map_err(failed)?,
            (None, Some(pem)) => builder.ca_pem(pem.to_vec()),
            (None, None) => builder,
        };
        let provider = builder.build().map_err(failed)?;
        provider.credentials().await.map_err(failed)?;
        Ok(provider)
    }
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credentials' own Debug redacts the secret; the access key id is not secret.
        f.debug_struct("Plan")
            .field("channel", &self.channel)
            .field("viewer", &self.viewer)
            .field("region", &self.region)
            .field("key", &self.key)
            .field("endpoint_url", &self.endpoint_url)
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("policy", &self.policy)
            .finish()
    }
}

/// An empty string property counts as unset.
fn given(value: &Option<String>) -> Option<String> {
    value.as_ref().filter(|v| !v.trim().is_empty()).cloned()
}

impl Settings {
    /// Check the settings against the pads that were requested (`video`, `audio`).
    pub(crate) fn plan(&self, video: bool, audio: bool) -> Result<Plan, SettingsError> {
        let channel = match (given(&self.channel_name), given(&self.channel_arn)) {
            (None, None) => return Err(SettingsError::NoChannel),
            (Some(name), Some(arn)) => return Err(SettingsError::TwoChannels { name, arn }),
            (Some(channel), None) | (None, Some(channel)) => channel,
        };
        let key = match (
            given(&self.access_key),
            given(&self.secret_key),
            given(&self.session_token),
        ) {
            (Some(id), Some(secret), token) => Some(aws_credential_types::Credentials::new(
                id,
                secret,
                token,
                None,
                "kvswebrtcstoragesink properties",
            )),
            (Some(_), None, _) => {
                return Err(SettingsError::HalfAKey {
                    set: "access-key",
                    missing: "secret-key",
                })
            }
            (None, Some(_), _) => {
                return Err(SettingsError::HalfAKey {
                    set: "secret-key",
                    missing: "access-key",
                })
            }
            (None, None, Some(_)) => return Err(SettingsError::TokenWithoutKey),
            (None, None, None) => None,
        };
        let iot = self
            .iot_certificate
            .as_ref()
            .map(|structure| IotCertificate::read(structure))
            .transpose()?;
        if iot.is_some() && key.is_some() {
            return Err(SettingsError::IotAndKey);
        }
        let viewer = match self.role {
            Role::Master => {
                let missing = match (video, audio) {
                    (true, true) => None,
                    (false, _) => Some((
                        Track::Video,
                        "H.264",
                        "... ! x264enc ! h264parse ! kvswebrtcstoragesink.video",
                    )),
                    (true, false) => Some((
                        Track::Audio,
                        "Opus",
                        "... ! opusenc ! kvswebrtcstoragesink.audio",
                    )),
                };
                if let Some((track, missing, hint)) = missing {
                    return Err(SettingsError::MasterNeedsBothTracks {
                        track: track.as_str(),
                        missing,
                        hint,
                    });
                }
                None
            }
            Role::Viewer => {
                if video {
                    return Err(SettingsError::ViewerSendsNoVideo);
                }
                Some(given(&self.client_id).ok_or(SettingsError::ViewerNeedsClientId)?)
            }
        };
        let ca_pem = self
            .ca_file
            .as_ref()
            .map(|path| {
                std::fs::read(path).map_err(|source| SettingsError::CaFile {
                    path: path.clone(),
                    source,
                })
            })
            .transpose()?;
        Ok(Plan {
            channel,
            viewer,
            region: given(&self.aws_region),
            key,
            iot,
            endpoint_url: given(&self.endpoint_url),
            ca_pem,
            policy: match self.ice_transport_policy {
                IceTransportPolicy::All => kvs_webrtc_ingest::IceTransportPolicy::All,
                IceTransportPolicy::Relay => kvs_webrtc_ingest::IceTransportPolicy::Relay,
            },
        })
    }
}

impl Plan {
    /// The ingest client: the AWS settings of the standard chain (environment, profile,
    /// instance role) with the properties over them (a key, or the `iot-certificate`'s
    /// credentials), and the CA file trusted by every connection the library makes.
    pub(crate) async fn client(&self) -> Result<kvs_webrtc_ingest::Client, StartError> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(key) = &self.key {
            loader = loader.credentials_provider(key.clone());
        }
        if let Some(iot) = &self.iot {
            let provider = iot.provider(&self.channel, self.ca_pem.as_deref()).await?;
            loader = loader.credentials_provider(provider);
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk_config = loader.load().await;
        if sdk_config.region().is_none() {
            return Err(StartError::NoRegion);
        }
        let mut config = kvs_webrtc_ingest::Config::builder()
            .sdk_config(sdk_config)
            .ice_transport_policy(self.policy);
        if let Some(pem) = &self.ca_pem {
            config = config.trust_root_certificate_pem(pem.clone());
        }
        Ok(kvs_webrtc_ingest::Client::from_conf(config.build()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> Settings {
        Settings {
            channel_name: Some("front-door".into()),
            ..Settings::default()
        }
    }

    #[test]
    fn a_master_with_both_pads_and_a_channel_is_ready() {
        let plan = master().plan(true, true).expect("usable");
        assert_eq!(plan.channel, "front-door");
        assert_eq!(plan.viewer, None);
        assert!(plan.key.is_none(), "the standard chain");
    }

    #[test]
    fn each_unusable_setting_names_the_property_to_set() {
        let error = |settings: Settings, video, audio| {
            settings
                .plan(video, audio)
                .map(|_| ())
                .map_err(|e| ErrorChain(&e).to_string())
                .unwrap_err()
        };
        let none = Settings::default();
        assert!(error(none, true, true).contains("set channel-name"));
        let both = Settings {
            channel_arn: Some("arn:aws:kinesisvideo:us-west-2:1:channel/x/1".into()),
            ..master()
        };
        assert!(error(both, true, true).contains("both set"));
        let half = Settings {
            access_key: Some("AKIDEXAMPLE".into()),
            ..master()
        };
        assert!(error(half, true, true).contains("secret-key is not"));
        let token = Settings {
            session_token: Some("token".into()),
            ..master()
        };
        assert!(error(token, true, true).contains("session-token"));
        let message = error(master(), true, false);
        assert!(message.contains("audio pad"), "{message}");
        assert!(message.contains("opusenc"), "{message}");
        assert!(error(master(), false, true).contains("video pad"));
        let viewer = Settings {
            role: Role::Viewer,
            ..master()
        };
        assert!(error(viewer.clone(), false, true).contains("client-id"));
        assert!(error(viewer, true, true).contains("sends no video"));
        let ca = Settings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..master()
        };
        let message = error(ca, true, true);
        assert!(
            message.starts_with("the ca-file /nonexistent/ca.pem cannot be read: "),
            "{message}"
        );
    }

    #[test]
    fn a_viewer_sends_audio_with_its_client_id() {
        let viewer = Settings {
            role: Role::Viewer,
            client_id: Some("listener-1".into()),
            ..master()
        };
        let plan = viewer.plan(false, true).expect("usable");
        assert_eq!(plan.viewer.as_deref(), Some("listener-1"));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let settings = Settings {
            access_key: Some("AKIDEXAMPLE".into()),
            secret_key: Some("wJalrXUtnFEMI-secret".into()),
            session_token: Some("FwoGZXIvYXdz-token".into()),
            ..master()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("secret\""), "{shown}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(!shown.contains("FwoGZXIvYXdz"), "{shown}");
        let plan = format!("{:?}", settings.plan(true, true).expect("usable"));
        assert!(!plan.contains("wJalrXUtnFEMI"), "{plan}");
        assert!(!plan.contains("FwoGZXIvYXdz"), "{plan}");
    }
    fn iot(fields: &str) -> Settings {
        gst::init().expect("GStreamer initializes");
        Settings {
            iot_certificate: Some(fields.parse().expect("a structure")),
            ..master()
        }
    }

    #[test]
    fn an_iot_certificate_is_read_as_kvssink_writes_it() {
        let plan = iot(
            "iot-certificate,endpoint=abc.credentials.iot.us-west-2.amazonaws.com,\
             cert-path=/etc/cam/cert.pem,key-path=/etc/cam/key.pem,ca-path=/etc/cam/ca.pem,\
             role-aliases=KvsCameraIoTRoleAlias,iot-thing-name=front-door-1",
        )
        .plan(true, true)
        .expect("usable");
        assert_eq!(
            plan.iot,
            Some(IotCertificate {
                endpoint: "abc.credentials.iot.us-west-2.amazonaws.com".into(),
                cert_path: "/etc/cam/cert.pem".into(),
                key_path: "/etc/cam/key.pem".into(),
                ca_path: Some("/etc/cam/ca.pem".into()),
                role_alias: "KvsCameraIoTRoleAlias".into(),
                thing_name: Some("front-door-1".into()),
            })
        );
        assert!(plan.key.is_none());
    }

    #[test]
    fn an_unusable_iot_certificate_names_the_field() {
        let error = |settings: Settings| {
            settings
                .plan(true, true)
                .map(|_| ())
                .map_err(|e| e.to_string())
                .unwrap_err()
        };
        let complete = "endpoint=abc.credentials.iot.us-west-2.amazonaws.com,cert-path=c.pem,\
                        key-path=k.pem,role-aliases=Alias";
        for missing in ["endpoint", "cert-path", "key-path", "role-aliases"] {
            let fields: Vec<&str> = complete
                .split(',')
                .filter(|f| !f.starts_with(missing))
                .collect();
            let message = error(iot(&format!("iot-certificate,{}", fields.join(","))));
            assert!(
                message.starts_with(&format!("iot-certificate has no {missing}:")),
                "{message}"
            );
        }
        let message = error(iot(&format!("iot-certificate,{complete},cert_path=x")));
        assert!(
            message.contains("a field cert_path it does not know"),
            "{message}"
        );
        let message = error(iot(&format!(
            "iot-certificate,{complete},iot-thing-name=(int)7"
        )));
        assert!(
            message.contains("iot-thing-name must be a string"),
            "{message}"
        );
        // GStreamer reads an unannotated `e:443` as a flag set; annotated it is the string.
        let rest = "cert-path=c.pem,key-path=k.pem,role-aliases=Alias";
        let message = error(iot(&format!("iot-certificate,endpoint=e:443,{rest}")));
        assert!(
            message.contains("write endpoint=(string)VALUE"),
            "{message}"
        );
        let typed = iot(&format!("iot-certificate,endpoint=(string)e:443,{rest}"))
            .plan(true, true)
            .expect("usable");
        assert_eq!(typed.iot.map(|iot| iot.endpoint).as_deref(), Some("e:443"));
        let both = Settings {
            access_key: Some("AKIDEXAMPLE".into()),
            secret_key: Some("secret".into()),
            ..iot(&format!("iot-certificate,{complete}"))
        };
        assert!(error(both).contains("both set"));
    }
}
