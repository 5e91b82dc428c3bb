//! The emulator a test runs against: [`TestEmulator`] starts one in-process (temporary
//! directory, generated CA, loopback, a short offer delay); [`Service`] is how any emulator is
//! reached, in-process or a `kvs-emulator serve` child: its endpoint, region, key and CA, the
//! official AWS SDK clients trusting that CA, the one-time channel setup a device's owner does,
//! and the inspection and fault API over HTTPS.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_kinesisvideo::types::{
    ChannelProtocol, ChannelRole, MediaStorageConfiguration, MediaStorageConfigurationStatus,
    SingleMasterChannelEndpointConfiguration,
};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use kvs_emulator::{AccessKey, Emulator, EmulatorBuilder, EmulatorHandle, SessionInfo};
use serde_json::Value;
use tokio::net::TcpStream;

use crate::raw::{self, Ws};
use crate::wait::{check, wait_for, wait_until, WAIT};

/// The offer delay of test emulators: short, so that tests do not wait for the service's
/// 200 ms, but not zero, so that the join still comes before the offer as it does on AWS.
pub const TEST_OFFER_DELAY: Duration = Duration::from_millis(50);

/// An emulator started for one test, removed with it.
#[derive(Debug)]
pub struct TestEmulator {
    /// The running emulator.
    pub handle: EmulatorHandle,
    /// How it is reached (also through `Deref`).
    pub service: Service,
}

impl std::ops::Deref for TestEmulator {
    type Target = Service;
    fn deref(&self) -> &Service {
        &self.service
    }
}

impl TestEmulator {
    /// `python3 script` (boto3 and the AWS CLI, from PyPI) set up as a user points them at the
    /// emulator: `KVS_ENDPOINT`, `KVS_REGION`, the access key, `AWS_CA_BUNDLE`, and a `HOME`
    /// and AWS config of their own under `home`, with no profile or session token inherited.
    pub fn python_command(&self, script: &str, home: &std::path::Path) -> std::process::Command {
        let key = self.key();
        let mut command = std::process::Command::new("python3");
        command
            .arg(script)
            .env("KVS_ENDPOINT", self.handle.endpoint_url())
            .env("KVS_REGION", self.handle.region())
            .env("AWS_ACCESS_KEY_ID", &key.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &key.secret_access_key)
            .env("HOME", home)
            .env("AWS_CONFIG_FILE", home.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE");
        if let Some(ca) = self.handle.ca_cert_path() {
            command.env("AWS_CA_BUNDLE", ca);
        }
        command
    }

    /// Run a [`TestEmulator::python_command`] to its end (on a blocking thread, as the emulator
    /// runs on the caller's runtime) and check that it succeeded and printed `passed`.
    ///
    /// # Panics
    /// When python3 cannot run, fails, or does not print `passed`.
    pub async fn run_python(&self, command: std::process::Command, passed: &str) -> String {
        let mut command = command;
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("the blocking task")
            .expect("python3 runs; install the clients with `pip install boto3 awscli`");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "python failed:\n{stdout}\n{stderr}"
        );
        assert!(stdout.contains(passed), "{stdout}");
        stdout
    }

    /// The builder test emulators start from: a temporary directory (CA and recordings) and
    /// [`TEST_OFFER_DELAY`].
    pub fn builder() -> EmulatorBuilder {
        Emulator::builder()
            .temporary()
            .timings(|t| t.offer_delay = TEST_OFFER_DELAY)
    }

    /// Start one with the test defaults.
    ///
    /// # Panics
    /// When it does not start.
    pub async fn start() -> Self {
        Self::start_with(|b| b).await
    }

    /// Start one with more settings (`tweak` gets [`TestEmulator::builder`]).
    ///
    /// # Panics
    /// When it does not start.
    pub async fn start_with(tweak: impl FnOnce(EmulatorBuilder) -> EmulatorBuilder) -> Self {
        let handle = tweak(Self::builder())
            .start()
            .await
            .expect("the emulator starts");
        let service = Service {
            endpoint: handle.endpoint_url().to_owned(),
            region: handle.region().to_owned(),
            key: handle.access_key().clone(),
            ca_pem: handle.ca_cert_pem().expect("TLS is on").to_owned(),
        };
        Self { handle, service }
    }

    /// An `SdkConfig` for AWS SDK clients (region, key, endpoint, its CA trusted).
    pub fn sdk_config(&self) -> aws_types::SdkConfig {
        self.handle.sdk_config().expect("the emulator's SDK config")
    }

    /// Seed a storage channel as its owner would (see
    /// [`EmulatorHandle::create_storage_channel`]); returns the channel ARN.
    pub fn create_storage_channel(&self, name: &str) -> String {
        self.handle
            .create_storage_channel(name)
            .unwrap_or_else(|e| panic!("storage channel {name}: {e}"))
    }

    /// How many times the emulator saw an AWS operation (`joinStorageSession`, ...).
    pub fn calls(&self, operation: &str) -> u64 {
        self.handle.calls().get(operation).copied().unwrap_or(0)
    }

    /// The storage sessions, newest last.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.handle.sessions()
    }

    /// Inject a fault (`{"channel": .., "fault": ..}`, as the fault API takes it).
    pub fn inject_fault(&self, fault: Value) {
        self.handle
            .inject_fault(fault.clone())
            .unwrap_or_else(|e| panic!("fault {fault}: {e}"));
    }

    /// Wait (bounded) until the storage sessions satisfy `done`.
    pub async fn wait_for_sessions(
        &self,
        what: &str,
        done: impl Fn(&[SessionInfo]) -> bool,
    ) -> Vec<SessionInfo> {
        wait_until(what, || check(self.sessions(), |s| done(s))).await
    }

    /// Wait (bounded) until the first storage session has received every frame `stats` says
    /// was sent.
    pub async fn received_all(&self, stats: &kvs_webrtc_ingest::Stats) -> Vec<SessionInfo> {
        let (video, audio) = (stats.video.frames_sent, stats.audio.frames_sent);
        self.wait_for_sessions("every frame sent to be received", |s| {
            s.first()
                .is_some_and(|s| s.media.video.frames == video && s.media.audio.frames == audio)
        })
        .await
    }

    /// Discovery settings over this emulator.
    pub fn discovery_config(&self) -> kvs_webrtc_discovery::config::Builder {
        kvs_webrtc_discovery::Config::builder().sdk_config(self.sdk_config())
    }

    /// A discovery client over this emulator.
    pub fn discovery(&self) -> kvs_webrtc_discovery::Client {
        kvs_webrtc_discovery::Client::from_conf(self.discovery_config().build())
    }

    /// Signaling settings over `discovery`, trusting this emulator's CA (verification on).
    pub fn signaling_config(
        &self,
        discovery: kvs_webrtc_discovery::Client,
    ) -> kvs_webrtc_signaling::config::Builder {
        kvs_webrtc_signaling::Config::builder(discovery)
            .trust_root_certificate_pem(self.ca_pem.clone())
    }

    /// Ingest settings over this emulator: its CA trusted for every connection through the
    /// builder's one option, and a 1 s + 1 s signaling keep-alive so that a frozen socket is
    /// noticed quickly. Chain more settings (`.timings(..)`, `.discovery_config(..)`,
    /// another `.trust_root_certificate_pem(..)`) before `build()`.
    pub fn ingest_config(&self) -> kvs_webrtc_ingest::ConfigBuilder {
        kvs_webrtc_ingest::Config::builder()
            .discovery_config(self.discovery_config().build())
            .trust_root_certificate_pem(self.ca_pem.clone())
            .signaling_keep_alive(Duration::from_secs(1), Duration::from_secs(1))
    }

    /// A ready ingest client over this emulator ([`TestEmulator::ingest_config`]).
    pub fn ingest_client(&self) -> kvs_webrtc_ingest::Client {
        ingest_client(self.ingest_config())
    }
}

/// Start `kvs-emulator serve` as `command` says (stdout is taken here; the child is killed when
/// dropped) and read its startup line (bounded by [`WAIT`]): the child and the line
/// as JSON. [`Service::from_startup_info`] reaches it.
///
/// # Panics
/// When it does not start, or prints no JSON line in time.
pub async fn serve(mut command: tokio::process::Command) -> (tokio::process::Child, Value) {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kvs-emulator starts");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut line = String::new();
    tokio::time::timeout(WAIT, stdout.read_line(&mut line))
        .await
        .expect("the startup line in time")
        .expect("stdout readable");
    let info = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("one JSON line on stdout, not {line:?}: {e}"));
    (child, info)
}

/// The ingest client of `config` (e.g. [`TestEmulator::ingest_config`] with more settings).
///
/// # Panics
/// When the settings are refused.
pub fn ingest_client(config: kvs_webrtc_ingest::ConfigBuilder) -> kvs_webrtc_ingest::Client {
    kvs_webrtc_ingest::Client::from_conf(config.build().expect("the ingest settings"))
}

/// Where an emulator answers and how to talk to it (in-process or a `kvs-emulator serve` child).
#[derive(Debug, Clone)]
pub struct Service {
    /// The control-plane URL (`https://127.0.0.1:<port>`).
    pub endpoint: String,
    /// The region it claims to be.
    pub region: String,
    /// An accepted key.
    pub key: AccessKey,
    /// Its CA certificate (PEM).
    pub ca_pem: String,
}

impl Service {
    /// The emulator a `kvs-emulator serve` process announced in its startup line (`endpoint`,
    /// `region`, `accessKeyId`, `secretAccessKey`, `caCertPath`).
    ///
    /// # Panics
    /// When a field is missing or the CA file cannot be read.
    pub fn from_startup_info(info: &Value) -> Self {
        let field = |name: &str| {
            info[name]
                .as_str()
                .unwrap_or_else(|| panic!("the startup line has {name}: {info}"))
                .to_owned()
        };
        let ca_path = field("caCertPath");
        Self {
            endpoint: field("endpoint"),
            region: field("region"),
            key: AccessKey::new(field("accessKeyId"), field("secretAccessKey")),
            ca_pem: std::fs::read_to_string(&ca_path)
                .unwrap_or_else(|e| panic!("the CA file {ca_path}: {e}")),
        }
    }

    /// An `SdkConfig` with this emulator's region, key and endpoint, and the SDK's default
    /// HTTP client: the system's roots only. Trust [`Service::ca_pem`] with the ingest config's
    /// `trust_root_certificate_pem` (or give an HTTP client of your own), as a user would.
    pub fn bare_sdk_config(&self) -> aws_types::SdkConfig {
        aws_types::SdkConfig::builder()
            .behavior_version(
                aws_smithy_runtime_api::client::behavior_version::BehaviorVersion::latest(),
            )
            .region(aws_types::region::Region::new(self.region.clone()))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    self.key.credentials(),
                ),
            )
            .endpoint_url(self.endpoint.clone())
            .build()
    }

    /// A clone of the accepted key.
    pub fn key(&self) -> AccessKey {
        self.key.clone()
    }

    /// An HTTPS client for AWS SDK clients that trusts the emulator's CA.
    pub fn http_client(&self) -> SharedHttpClient {
        kvs_emulator::https_client_trusting(&self.ca_pem).expect("the emulator CA loads")
    }

    /// The official `kinesisvideo` client.
    pub fn control_plane(&self) -> aws_sdk_kinesisvideo::Client {
        self.control_plane_as(&self.key())
    }

    /// The official `kinesisvideo` client signing with `key`.
    pub fn control_plane_as(&self, key: &AccessKey) -> aws_sdk_kinesisvideo::Client {
        let config = aws_sdk_kinesisvideo::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_kinesisvideo::config::Region::new(
                self.region.clone(),
            ))
            .endpoint_url(&self.endpoint)
            .credentials_provider(key.credentials())
            .http_client(self.http_client())
            .build();
        aws_sdk_kinesisvideo::Client::from_conf(config)
    }

    /// The generated storage client on a WEBRTC endpoint (no retries).
    pub fn storage(&self, webrtc_endpoint: &str) -> aws_sdk_kinesisvideowebrtcstorage::Client {
        self.storage_as(webrtc_endpoint, &self.key())
    }

    /// [`Service::storage`] signing with `key`.
    pub fn storage_as(
        &self,
        webrtc_endpoint: &str,
        key: &AccessKey,
    ) -> aws_sdk_kinesisvideowebrtcstorage::Client {
        let config = aws_sdk_kinesisvideowebrtcstorage::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_kinesisvideowebrtcstorage::config::Region::new(
                self.region.clone(),
            ))
            .endpoint_url(webrtc_endpoint)
            .credentials_provider(key.credentials())
            .http_client(self.http_client())
            .retry_config(aws_sdk_kinesisvideowebrtcstorage::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_kinesisvideowebrtcstorage::Client::from_conf(config)
    }

    /// JoinStorageSession as the master through the official client; the join must be accepted.
    pub async fn join_master(&self, webrtc_endpoint: &str, channel_arn: &str) {
        self.storage(webrtc_endpoint)
            .join_storage_session()
            .channel_arn(channel_arn)
            .send()
            .await
            .expect("JoinStorageSession accepted");
    }

    /// JoinStorageSessionAsViewer through the official client; the join must be accepted.
    pub async fn join_viewer(&self, webrtc_endpoint: &str, channel_arn: &str, client_id: &str) {
        self.storage(webrtc_endpoint)
            .join_storage_session_as_viewer()
            .channel_arn(channel_arn)
            .client_id(client_id)
            .send()
            .await
            .expect("JoinStorageSessionAsViewer accepted");
    }

    /// A storage channel `name` (see [`Service::storage_channel`]) with its master's signaling
    /// socket open; not joined yet.
    pub async fn storage_master(&self, name: &str) -> StorageMaster {
        let (channel_arn, _) = self.storage_channel(name).await;
        let (wss, https, webrtc) = self.endpoints(&channel_arn, ChannelRole::Master).await;
        let ws = self
            .connect(&wss, &channel_arn, None)
            .await
            .expect("the master's presigned connect");
        StorageMaster {
            channel_arn,
            https,
            webrtc,
            ws,
        }
    }

    /// A channel (no storage) through the control-plane API. Returns its ARN.
    pub async fn channel(&self, name: &str) -> String {
        let client = self.control_plane();
        unless_throttled("CreateSignalingChannel", || {
            client.create_signaling_channel().channel_name(name).send()
        })
        .await
        .channel_arn
        .expect("a channel ARN")
    }

    /// A stream with 24 h retention through the control-plane API. Returns its ARN.
    pub async fn stream(&self, name: &str) -> String {
        let client = self.control_plane();
        unless_throttled("CreateStream", || {
            client
                .create_stream()
                .stream_name(name)
                .data_retention_in_hours(24)
                .send()
        })
        .await
        .stream_arn
        .expect("a stream ARN")
    }

    /// UpdateMediaStorageConfiguration: storage into `stream_arn`, enabled or not.
    pub async fn set_storage(&self, channel_arn: &str, stream_arn: Option<&str>, enabled: bool) {
        let status = if enabled {
            MediaStorageConfigurationStatus::Enabled
        } else {
            MediaStorageConfigurationStatus::Disabled
        };
        let configuration = MediaStorageConfiguration::builder()
            .set_stream_arn(stream_arn.map(str::to_owned))
            .status(status)
            .build()
            .expect("a storage configuration");
        let client = self.control_plane();
        unless_throttled("UpdateMediaStorageConfiguration", || {
            client
                .update_media_storage_configuration()
                .channel_arn(channel_arn)
                .media_storage_configuration(configuration.clone())
                .send()
        })
        .await;
    }

    /// A channel with storage enabled into a fresh stream `<name>-stream`, through the API.
    /// Returns (channel ARN, stream ARN).
    pub async fn storage_channel(&self, name: &str) -> (String, String) {
        let channel_arn = self.channel(name).await;
        let stream_arn = self.stream(&format!("{name}-stream")).await;
        self.set_storage(&channel_arn, Some(&stream_arn), true)
            .await;
        (channel_arn, stream_arn)
    }

    /// (WSS, HTTPS, WEBRTC) endpoints for a role, as GetSignalingChannelEndpoint returns them.
    pub async fn endpoints(
        &self,
        channel_arn: &str,
        role: ChannelRole,
    ) -> (String, String, String) {
        let out = self
            .control_plane()
            .get_signaling_channel_endpoint()
            .channel_arn(channel_arn)
            .single_master_channel_endpoint_configuration(
                SingleMasterChannelEndpointConfiguration::builder()
                    .protocols(ChannelProtocol::Wss)
                    .protocols(ChannelProtocol::Https)
                    .protocols(ChannelProtocol::Webrtc)
                    .role(role)
                    .build(),
            )
            .send()
            .await
            .expect("GetSignalingChannelEndpoint");
        let find = |p: ChannelProtocol| {
            out.resource_endpoint_list()
                .iter()
                .find(|e| e.protocol() == Some(&p))
                .and_then(|e| e.resource_endpoint())
                .expect("the endpoint is listed")
                .to_owned()
        };
        (
            find(ChannelProtocol::Wss),
            find(ChannelProtocol::Https),
            find(ChannelProtocol::Webrtc),
        )
    }

    /// TLS settings that trust the emulator's CA only.
    pub fn rustls_client_config(&self) -> Arc<rustls::ClientConfig> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(
                rustls_pki_types::CertificateDer::from_pem_slice(self.ca_pem.as_bytes())
                    .expect("the CA PEM"),
            )
            .expect("the CA is accepted");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// Open a signaling socket with a URL presigned by `aws-sigv4`.
    ///
    /// # Errors
    /// The WebSocket error (a refused upgrade is an HTTP error response).
    pub async fn connect(
        &self,
        wss: &str,
        channel_arn: &str,
        client_id: Option<&str>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let url = raw::presign(
            wss,
            channel_arn,
            client_id,
            &self.key(),
            &self.region,
            SystemTime::now(),
            Duration::from_secs(299),
        );
        self.connect_url(&url).await
    }

    /// Open a signaling socket at `url` as it is.
    ///
    /// # Errors
    /// The WebSocket error.
    pub async fn connect_url(
        &self,
        url: &str,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let connector = tokio_tungstenite::Connector::Rustls(self.rustls_client_config());
        let (ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector))
                .await?;
        Ok(ws)
    }

    /// A minimal HTTPS/1.1 request (Connection: close) to the inspection API.
    async fn http_json(&self, method: &str, url: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (_, text) = self.http_raw(method, url, body.as_bytes()).await;
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("inspection answer is JSON: {text}"))
    }

    /// One HTTP/1.1 request over TLS, unsigned: the status code and the body.
    pub async fn http_raw(&self, method: &str, url: &str, body: &[u8]) -> (u16, String) {
        let (status, _, body) = self.http_raw_with(method, url, &[], body).await;
        (status, body)
    }

    /// [`Service::http_raw`] with extra request headers (a `Host` or `Content-Type` of them
    /// replaces the default one); also returns the response headers (lower-cased names).
    pub async fn http_raw_with(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rest = url.strip_prefix("https://").expect("TLS endpoint");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        // `host[:port]`, the port 443 when the URL leaves it out (every endpoint on 443).
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') && !port.contains(']') => {
                (host, port.parse::<u16>().expect("a port"))
            }
            _ => (authority, 443),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((host, port))
            .await
            .expect("connect to the emulator");
        let connector = tokio_rustls::TlsConnector::from(self.rustls_client_config());
        let name = rustls_pki_types::ServerName::try_from(host.to_owned()).expect("server name");
        let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        // JSON unless the caller gives a Content-Type of its own.
        let content_type = if headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            ""
        } else {
            "Content-Type: application/json\r\n"
        };
        // The authority as Host, unless the caller gives one of its own.
        let host = if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            String::new()
        } else {
            format!("Host: {authority}\r\n")
        };
        let head = format!(
        "{method} {path} HTTP/1.1\r\n{host}{content_type}Content-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
        tls.write_all(head.as_bytes()).await.expect("write request");
        // The server may answer (and close) before reading a body it refuses.
        let _ = tls.write_all(body).await;
        // TLS buffers what the socket did not take at once: without a flush the end of the
        // request may never leave, and the server times the connection out.
        let _ = tls.flush().await;
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        (status, headers, body.to_owned())
    }

    /// GET an inspection resource (`sessions`, `channels`, ...) as JSON.
    pub async fn inspect(&self, resource: &str) -> Value {
        let url = format!(
            "{}{}/{resource}",
            &self.endpoint,
            kvs_emulator::inspect::PREFIX
        );
        self.http_json("GET", &url, None).await
    }

    /// POST a fault to the fault API; its answer.
    pub async fn fault(&self, body: Value) -> Value {
        let url = format!("{}{}/faults", &self.endpoint, kvs_emulator::inspect::PREFIX);
        self.http_json("POST", &url, Some(body)).await
    }

    /// Poll the inspection API until `done` holds for the session list (bounded).
    pub async fn wait_for_sessions_json(
        &self,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        wait_for(what, || async {
            let sessions = self
                .inspect("sessions")
                .await
                .as_array()
                .cloned()
                .unwrap_or_default();
            check(sessions, |s| done(s))
        })
        .await
    }
}

/// A storage channel whose master's signaling socket is open.
#[derive(Debug)]
pub struct StorageMaster {
    /// The channel's ARN.
    pub channel_arn: String,
    /// The channel's HTTPS (signaling REST) endpoint.
    pub https: String,
    /// The channel's WEBRTC (storage API) endpoint.
    pub webrtc: String,
    /// The master's socket.
    pub ws: Ws,
}

/// Runs a control-plane call, again while it is throttled: the emulator refuses calls past the
/// service's per-second limits with `ClientLimitExceededException` (UpdateMediaStorageConfiguration
/// allows 10 a second per account), which the AWS SDK does not retry by itself. Setting up many
/// channels at once (the soak's 20) meets it. Backs off 100 ms, doubling to 1.6 s, at most 10
/// tries.
///
/// # Panics
/// When the call fails otherwise, or is still throttled after the last try.
async fn unless_throttled<T, E, R, Fut>(operation: &str, mut call: impl FnMut() -> Fut) -> T
where
    Fut: std::future::Future<
        Output = Result<T, aws_smithy_runtime_api::client::result::SdkError<E, R>>,
    >,
    E: aws_sdk_kinesisvideo::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_kinesisvideo::error::ProvideErrorMetadata;
    let mut backoff = Duration::from_millis(100);
    for _ in 1..10 {
        match call().await {
            Ok(out) => return out,
            Err(e) if e.code() == Some("ClientLimitExceededException") => {
                // A retry's backoff, not a wait for something to happen.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(1600));
            }
            Err(e) => panic!(
                "{operation}: {:?}",
                aws_sdk_kinesisvideo::error::DisplayErrorContext(&e)
            ),
        }
    }
    call().await.unwrap_or_else(|e| {
        panic!(
            "{operation}, still throttled after 10 tries: {:?}",
            aws_sdk_kinesisvideo::error::DisplayErrorContext(&e)
        )
    })
}
