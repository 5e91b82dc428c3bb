//! The AWS options every command shares, as the AWS CLI spells them, and the clients built
//! from them.

use std::path::PathBuf;

use clap::Args;

use crate::{Exit, Failed};

/// `--region`, `--profile`, `--endpoint-url`, `--ca-file`, `--debug`.
#[derive(Debug, Clone, Args)]
pub(crate) struct AwsArgs {
    /// The region (default: the profile's or AWS_REGION).
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// The named profile from ~/.aws/config and ~/.aws/credentials.
    #[arg(long)]
    pub(crate) profile: Option<String>,
    /// The Kinesis Video control-plane endpoint (an emulator); the channel's own endpoints are
    /// still discovered.
    #[arg(long)]
    pub(crate) endpoint_url: Option<String>,
    /// Trust this CA (PEM; several certificates may be concatenated), e.g. the emulator's
    /// `ca.pem`, for the API calls, the signaling socket and `turns:` servers; verification
    /// stays on.
    #[arg(long)]
    pub(crate) ca_file: Option<PathBuf>,
    /// Log at debug level (secrets are never logged).
    #[arg(long)]
    pub(crate) debug: bool,
    #[command(flatten)]
    pub(crate) iot: IotArgs,
}

/// Device credentials from AWS IoT: the device certificate exchanged at the account's IoT
/// credentials endpoint for a role alias's temporary credentials, as Kinesis Video cameras
/// authenticate. With `--iot-endpoint`, no access keys or profile are used. The environment
/// variables are those the KVS WebRTC C SDK samples read; `--ca-file` is trusted for the
/// endpoint too.
#[derive(Debug, Clone, Args)]
pub(crate) struct IotArgs {
    /// The account's IoT credentials endpoint (`aws iot describe-endpoint --endpoint-type
    /// iot:CredentialProvider`).
    #[arg(long, env = "AWS_IOT_CORE_CREDENTIAL_ENDPOINT", requires_all = ["iot_cert", "iot_key", "role_alias"])]
    pub(crate) iot_endpoint: Option<String>,
    /// The device certificate (PEM) registered with AWS IoT.
    #[arg(long, env = "AWS_IOT_CORE_CERT", requires = "iot_endpoint")]
    pub(crate) iot_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "AWS_IOT_CORE_PRIVATE_KEY", requires = "iot_endpoint")]
    pub(crate) iot_key: Option<PathBuf>,
    /// The role alias whose credentials the device gets.
    #[arg(long, env = "AWS_IOT_CORE_ROLE_ALIAS", requires = "iot_endpoint")]
    pub(crate) role_alias: Option<String>,
    /// The thing the certificate is attached to (default: the channel's name, the KVS
    /// convention).
    #[arg(long, env = "AWS_IOT_CORE_THING_NAME", requires = "iot_endpoint")]
    pub(crate) thing_name: Option<String>,
}

impl AwsArgs {
    /// The SDK configuration: the region, profile and endpoint options over the environment's,
    /// and the device's IoT credentials when asked for (`channel`: the thing name's default).
    pub(crate) async fn sdk_config(&self, channel: &str) -> Result<aws_types::SdkConfig, Failed> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(provider) = self.iot_credentials(channel).await? {
            loader = loader.credentials_provider(provider);
        }
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(Failed::new(
                Exit::BadInput,
                "no region: pass --region, set AWS_REGION, or set one in the profile",
            ));
        }
        Ok(config)
    }

    /// The ingest configuration over these options: the SDK configuration, and the `--ca-file`
    /// trusted by every connection. The same clients serve `run` and `join`.
    pub(crate) async fn ingest_config(
        &self,
        channel: &str,
    ) -> Result<kvs_webrtc_ingest::ConfigBuilder, Failed> {
        let builder =
            kvs_webrtc_ingest::Config::builder().sdk_config(self.sdk_config(channel).await?);
        match &self.ca_file {
            None => Ok(builder),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    Failed::with_cause(
                        Exit::BadInput,
                        format!("cannot read --ca-file {}", path.display()),
                        &e,
                    )
                })?;
                Ok(builder.trust_root_certificate_pem(pem))
            }
        }
    }

    /// The IoT credentials provider of `--iot-*`, checked by getting credentials once (so that
    /// a refused certificate or an unknown role alias is said at once, with its exit code).
    async fn iot_credentials(
        &self,
        channel: &str,
    ) -> Result<Option<kvs_iot_credentials::IotCredentialsProvider>, Failed> {
        use kvs_iot_credentials::ErrorKind as K;
        let iot = &self.iot;
        let Some(endpoint) = &iot.iot_endpoint else {
            return Ok(None);
        };
        let bad = |e: kvs_iot_credentials::Error| {
            Failed::with_cause(
                Exit::BadInput,
                "the IoT credentials settings cannot be used",
                &e,
            )
        };
        let thing = iot
            .thing_name
            .clone()
            .unwrap_or_else(|| channel_name(channel).to_owned());
        let mut builder = kvs_iot_credentials::IotCredentialsProvider::builder()
            .endpoint(endpoint)
            .role_alias(iot.role_alias.clone().unwrap_or_default())
            .thing_name(thing);
        if let Some(path) = &iot.iot_cert {
            builder = builder.certificate_pem_file(path).map_err(bad)?;
        }
        if let Some(path) = &iot.iot_key {
            builder = builder.private_key_pem_file(path).map_err(bad)?;
        }
        if let Some(path) = &self.ca_file {
            builder = builder.ca_pem_file(path).map_err(bad)?;
        }
        let provider = builder.build().map_err(bad)?;
        if let Err(e) = provider.credentials().await {
            let exit = match e.kind() {
                K::Config => Exit::BadInput,
                K::CertificateRefused
                | K::ThingNotAttached
                | K::RoleAliasUnknown
                | K::AccessDenied => Exit::AccessDenied,
                _ => Exit::Failure,
            };
            return Err(Failed::with_cause(
                exit,
                format!("no credentials from the IoT credentials endpoint {endpoint}"),
                &e,
            ));
        }
        Ok(Some(provider))
    }

    /// Build `config`; a refusal names `--ca-file` when one was given (the usual cause).
    pub(crate) fn build(
        &self,
        config: kvs_webrtc_ingest::ConfigBuilder,
    ) -> Result<kvs_webrtc_ingest::Config, Failed> {
        config.build().map_err(|e| match &self.ca_file {
            Some(path) => Failed::with_cause(
                Exit::of_ingest(e.kind()),
                format!("--ca-file {} cannot be used", path.display()),
                &e,
            ),
            None => Failed::ingest(e),
        })
    }
}

/// How many log lines may wait for stderr; beyond that they are dropped and counted.
const LOG_QUEUE: usize = 4096;

/// The log writer's thread (the logs are flushed when this is finished) and its count of lines
/// dropped.
pub(crate) struct Logs(kvs_emulator::stderr_log::StderrLog);

impl Logs {
    /// Flush what waits (at most a second when nobody reads stderr) and say how many lines
    /// were dropped because stderr was not read fast enough. Never writes to stdout.
    pub(crate) fn finish(&mut self) -> u64 {
        self.0.finish(std::time::Duration::from_secs(1))
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Logs to stderr: INFO (or DEBUG with --debug), `RUST_LOG` overrides. The lines are written
/// by a thread of their own through a bounded queue (`tracing-appender`, lossy): a stderr that
/// is read slowly or not at all loses log lines, and never holds up media or signaling.
pub(crate) fn init_logging(debug: bool, quiet: bool) -> Logs {
    // turn-client-proto logs every poll at INFO and an expected refusal (a wrong TURN
    // password) at ERROR; kvs-webrtc-ingest reports those itself, as RelayFailed.
    let default = if debug {
        "info,kvs_webrtc_ingest=debug,kvs_webrtc_signaling=debug,kvs_webrtc_turn=debug,turn_client_proto=warn,stun_proto=warn,turn_types=warn"
    } else if quiet {
        "warn,turn_client_proto=off,stun_proto=off,turn_types=off"
    } else {
        "info,turn_client_proto=off,stun_proto=off,turn_types=off"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let (writer, logs) = kvs_emulator::stderr_log::StderrLog::start("kvs-ingest-logs", LOG_QUEUE);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init();
    Logs(logs)
}

/// A channel's name: the name itself, or the name part of its ARN
/// (`arn:aws:kinesisvideo:<region>:<account>:channel/<name>/<creation time>`).
pub(crate) fn channel_name(channel: &str) -> &str {
    match channel.strip_prefix("arn:") {
        Some(rest) => rest
            .split_once(":channel/")
            .and_then(|(_, tail)| tail.split('/').next())
            .unwrap_or(channel),
        None => channel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thing_name_defaults_to_the_channels_name() {
        assert_eq!(channel_name("front-door"), "front-door");
        assert_eq!(
            channel_name(
                "arn:aws:kinesisvideo:us-west-2:123456789012:channel/front-door/1700000000000"
            ),
            "front-door"
        );
        assert_eq!(channel_name("arn:aws:s3:::bucket"), "arn:aws:s3:::bucket");
    }
}
