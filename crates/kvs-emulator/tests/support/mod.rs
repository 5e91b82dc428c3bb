//! Shared helpers of the emulator's end-to-end tests: start an emulator on loopback, build the
//! official AWS SDK clients against it (trusting its CA), presign and open signaling sockets.

#![allow(dead_code)]

pub(crate) mod peer;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_kinesisvideo::types::{
    ChannelProtocol, ChannelRole, MediaStorageConfiguration, MediaStorageConfigurationStatus,
    SingleMasterChannelEndpointConfiguration,
};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use futures_util::{SinkExt, StreamExt};
use kvs_emulator::{AccessKey, Emulator, EmulatorBuilder, EmulatorHandle};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single wait in a test may take before it fails.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

pub(crate) struct TestEmulator {
    pub handle: EmulatorHandle,
    pub dir: tempfile::TempDir,
    pub service: Service,
}

/// A storage channel whose master's signaling socket is open.
pub(crate) struct StorageMaster {
    pub channel_arn: String,
    /// The channel's HTTPS (signaling REST) endpoint.
    pub https: String,
    /// The channel's WEBRTC (storage API) endpoint.
    pub webrtc: String,
    pub ws: Ws,
}

/// Where an emulator answers and how to talk to it (in-process or a `kvs-emulator serve` child).
#[derive(Clone)]
pub(crate) struct Service {
    pub endpoint: String,
    pub region: String,
    pub key: AccessKey,
    pub ca_pem: String,
}

impl std::ops::Deref for TestEmulator {
    type Target = Service;
    fn deref(&self) -> &Service {
        &self.service
    }
}

impl TestEmulator {
    pub(crate) async fn start() -> Self {
        Self::start_with(|b| b).await
    }

    pub(crate) async fn start_with(tweak: impl FnOnce(EmulatorBuilder) -> EmulatorBuilder) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let builder = Emulator::builder()
            .temporary()
            .timings(|t| t.offer_delay = Duration::from_millis(50));
        let handle = tweak(builder).start().await.expect("emulator starts");
        let service = Service {
            endpoint: handle.endpoint_url().to_owned(),
            region: handle.region().to_owned(),
            key: handle.access_key().clone(),
            ca_pem: handle.ca_cert_pem().expect("TLS is on").to_owned(),
        };
        Self {
            handle,
            dir,
            service,
        }
    }
}

impl Service {
    pub(crate) fn key(&self) -> AccessKey {
        self.key.clone()
    }

    pub(crate) fn http_client(&self) -> SharedHttpClient {
        kvs_emulator::https_client_trusting(&self.ca_pem).expect("the emulator CA loads")
    }

    pub(crate) fn control_plane(&self) -> aws_sdk_kinesisvideo::Client {
        self.control_plane_as(&self.key())
    }

    pub(crate) fn control_plane_as(&self, key: &AccessKey) -> aws_sdk_kinesisvideo::Client {
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

    /// JoinStorageSession as the master through the official client; the join must be accepted.
    pub(crate) async fn join_master(&self, webrtc_endpoint: &str, channel_arn: &str) {
        self.storage(webrtc_endpoint)
            .join_storage_session()
            .channel_arn(channel_arn)
            .send()
            .await
            .expect("JoinStorageSession accepted");
    }

    /// JoinStorageSessionAsViewer through the official client; the join must be accepted.
    pub(crate) async fn join_viewer(
        &self,
        webrtc_endpoint: &str,
        channel_arn: &str,
        client_id: &str,
    ) {
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
    pub(crate) async fn storage_master(&self, name: &str) -> StorageMaster {
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

    pub(crate) fn storage(
        &self,
        webrtc_endpoint: &str,
    ) -> aws_sdk_kinesisvideowebrtcstorage::Client {
        self.storage_as(webrtc_endpoint, &self.key())
    }

    pub(crate) fn storage_as(
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

    /// A channel with storage enabled into a fresh stream. Returns (channel ARN, stream ARN).
    pub(crate) async fn storage_channel(&self, name: &str) -> (String, String) {
        let kv = self.control_plane();
        let channel = kv
            .create_signaling_channel()
            .channel_name(name)
            .send()
            .await
            .expect("create channel");
        let channel_arn = channel.channel_arn().expect("channel ARN").to_owned();
        let stream = kv
            .create_stream()
            .stream_name(format!("{name}-stream"))
            .data_retention_in_hours(24)
            .send()
            .await
            .expect("create stream");
        let stream_arn = stream.stream_arn().expect("stream ARN").to_owned();
        kv.update_media_storage_configuration()
            .channel_arn(&channel_arn)
            .media_storage_configuration(
                MediaStorageConfiguration::builder()
                    .stream_arn(&stream_arn)
                    .status(MediaStorageConfigurationStatus::Enabled)
                    .build()
                    .expect("storage configuration"),
            )
            .send()
            .await
            .expect("enable storage");
        (channel_arn, stream_arn)
    }

    /// (WSS, HTTPS, WEBRTC) endpoints for a role, as GetSignalingChannelEndpoint returns them.
    pub(crate) async fn endpoints(
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
            .expect("get endpoints");
        let find = |p: ChannelProtocol| {
            out.resource_endpoint_list()
                .iter()
                .find(|e| e.protocol() == Some(&p))
                .and_then(|e| e.resource_endpoint())
                .expect("endpoint listed")
                .to_owned()
        };
        (
            find(ChannelProtocol::Wss),
            find(ChannelProtocol::Https),
            find(ChannelProtocol::Webrtc),
        )
    }

    pub(crate) fn rustls_client_config(&self) -> Arc<rustls::ClientConfig> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        let pem = self.ca_pem.as_str();
        roots
            .add(rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).expect("CA PEM"))
            .expect("CA accepted");
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
    pub(crate) async fn connect(
        &self,
        wss: &str,
        channel_arn: &str,
        client_id: Option<&str>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let url = presign(
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

    pub(crate) async fn connect_url(
        &self,
        url: &str,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let connector = tokio_tungstenite::Connector::Rustls(self.rustls_client_config());
        let (ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector))
                .await?;
        Ok(ws)
    }

    pub(crate) async fn inspect(&self, resource: &str) -> Value {
        let url = format!(
            "{}{}/{resource}",
            &self.endpoint,
            kvs_emulator::inspect::PREFIX
        );
        http_json(self, "GET", &url, None).await
    }

    pub(crate) async fn fault(&self, body: Value) -> Value {
        let url = format!("{}{}/faults", &self.endpoint, kvs_emulator::inspect::PREFIX);
        http_json(self, "POST", &url, Some(body)).await
    }

    /// Poll the inspection API until `pred` holds for the session list (bounded by [`WAIT`]).
    pub(crate) async fn wait_for_sessions(
        &self,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let sessions = self
                .inspect("sessions")
                .await
                .as_array()
                .cloned()
                .unwrap_or_default();
            if pred(&sessions) {
                return sessions;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {sessions:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A SigV4 presigned WSS URL, made by `aws-sigv4` (an implementation independent of the emulator).
pub(crate) fn presign(
    wss: &str,
    channel_arn: &str,
    client_id: Option<&str>,
    key: &AccessKey,
    region: &str,
    time: SystemTime,
    expires: Duration,
) -> String {
    use aws_sigv4::http_request::{
        sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    };
    use aws_sigv4::sign::v4;
    let mut url = format!("{wss}/?X-Amz-ChannelARN={}", urlencode(channel_arn));
    if let Some(id) = client_id {
        url.push_str(&format!("&X-Amz-ClientId={}", urlencode(id)));
    }
    let host = wss
        .trim_start_matches("wss://")
        .trim_start_matches("ws://")
        .to_owned();
    let identity = key.credentials().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kinesisvideo")
        .time(time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(
        "GET",
        &url,
        std::iter::once(("host", host.as_str())),
        SignableBody::Bytes(b""),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
    let mut request = http::Request::builder()
        .method("GET")
        .uri(&url)
        .body(())
        .expect("request");
    instructions.apply_to_request_http1x(&mut request);
    request.uri().to_string()
}

/// The headers of a SigV4-signed (header signature) POST of `body` to `url`, signed with
/// `aws-sigv4` for service `kinesisvideo`: for requests the SDKs would refuse to build (members
/// of the wrong JSON type).
pub(crate) fn signed_headers(
    url: &str,
    body: &[u8],
    key: &AccessKey,
    region: &str,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let host = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let identity = key.credentials().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kinesisvideo")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let headers = [
        ("host", host.as_str()),
        ("content-type", "application/json"),
    ];
    let signable =
        SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
            .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(url)
        .body(())
        .expect("request");
    instructions.apply_to_request_http1x(&mut request);
    request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect()
}

pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A minimal HTTPS/1.1 request (Connection: close) to the inspection API.
async fn http_json(emu: &Service, method: &str, url: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (_, text) = http_raw(emu, method, url, body.as_bytes()).await;
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("inspection answer is JSON: {text}"))
}

/// One HTTP/1.1 request over TLS, unsigned: the status code and the body.
pub(crate) async fn http_raw(emu: &Service, method: &str, url: &str, body: &[u8]) -> (u16, String) {
    let (status, _, body) = http_raw_with(emu, method, url, &[], body).await;
    (status, body)
}

/// [`http_raw`] with extra request headers; also returns the response headers (lower-cased
/// names).
pub(crate) async fn http_raw_with(
    emu: &Service,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("https://").expect("TLS endpoint");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let tcp = TcpStream::connect(authority)
        .await
        .expect("connect to the emulator");
    let connector = tokio_rustls::TlsConnector::from(emu.rustls_client_config());
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("server name");
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
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\n{content_type}Content-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.expect("write request");
    // The server may answer (and close) before reading a body it refuses.
    let _ = tls.write_all(body).await;
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

/// The next text frame as JSON, within [`WAIT`].
pub(crate) async fn next_json(ws: &mut Ws) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a frame arrives in time");
        match frame {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text).expect("JSON frame")
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Wait until the socket is closed by the server; returns the close reason.
pub(crate) async fn closed(ws: &mut Ws) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("socket closes in time")
        {
            Some(Ok(Message::Close(frame))) => {
                return frame.map(|f| f.reason.to_string()).unwrap_or_default()
            }
            None | Some(Err(_)) => return String::new(),
            Some(Ok(_)) => continue,
        }
    }
}

pub(crate) async fn send_json(ws: &mut Ws, value: &Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send frame");
}

pub(crate) fn decode_payload(event: &Value) -> Value {
    use base64::Engine as _;
    let b64 = event["messagePayload"].as_str().expect("messagePayload");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

pub(crate) fn encode_payload(value: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(value.to_string())
}

/// `ffprobe` on a recording: its streams' codec names and the container's duration (seconds).
pub(crate) fn ffprobe(file: &std::path::Path) -> (Vec<String>, f64) {
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name:format=duration",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs (apt-get install ffmpeg)");
    assert!(
        probe.status.success(),
        "ffprobe failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&probe.stderr)
    );
    // A finalized recording has real element sizes: ffprobe has nothing to complain about
    // (it used to warn "Unknown-sized element ... inside parent with finite size").
    assert_eq!(
        String::from_utf8_lossy(&probe.stderr),
        "",
        "ffprobe complains about {}",
        file.display()
    );
    let info: Value = serde_json::from_slice(&probe.stdout).expect("ffprobe JSON");
    let codecs = info["streams"]
        .as_array()
        .map(|streams| {
            streams
                .iter()
                .filter_map(|s| s["codec_name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let duration = info["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("ffprobe reports a duration: {info}"));
    (codecs, duration)
}

/// The one recording in `channel_dir` holds the 3 s fixture: ffprobe finds H.264 and Opus and a
/// duration of 3 s.
pub(crate) fn assert_fixture_recording(channel_dir: &std::path::Path) {
    let file = std::fs::read_dir(channel_dir)
        .expect("recording dir")
        .next()
        .expect("one recording")
        .unwrap()
        .path();
    let (codecs, duration) = ffprobe(&file);
    assert_eq!(codecs, vec!["h264", "opus"]);
    assert!(
        (2.7..=3.3).contains(&duration),
        "3 s of media recorded, ffprobe says {duration}"
    );
}
