//! The main job until the ingestion helper exists: start an embedded emulator, then do what a
//! device does with the official AWS SDK for Rust: create and map a channel, discover it
//! (DescribeSignalingChannel, DescribeMediaStorageConfiguration, GetSignalingChannelEndpoint),
//! open the SigV4-presigned signaling socket, call JoinStorageSession and receive the storage
//! peer's SDP offer.
//!
//! ```sh
//! cargo run -p kvs-emulator --example discover_and_join
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_kinesisvideo::types::{
    ChannelProtocol, ChannelRole, MediaStorageConfiguration, MediaStorageConfigurationStatus,
    SingleMasterChannelEndpointConfiguration,
};
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use base64::Engine as _;
use futures_util::StreamExt;
use kvs_emulator::{Emulator, TlsMode};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> Result<()> {
    let data = std::env::temp_dir().join("kvs-emulator-example");
    let emulator = Emulator::builder()
        .tls(TlsMode::GeneratedCa {
            dir: data.join("ca"),
        })
        .recordings_dir(data.join("recordings"))
        .start()
        .await?;
    println!("emulator: {}", emulator.startup_info());

    // Clients trust the emulator's CA; verification stays on.
    let ca = emulator.ca_cert_pem().ok_or("TLS is on")?;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(TrustStore::empty().with_pem_certificate(ca.as_bytes()))
                .build()?,
        )
        .build_https();
    let key = emulator.access_key();
    let credentials = Credentials::new(
        &key.access_key_id,
        &key.secret_access_key,
        None,
        None,
        "kvs-emulator",
    );
    let region = emulator.region().to_owned();
    let kv = aws_sdk_kinesisvideo::Client::from_conf(
        aws_sdk_kinesisvideo::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_kinesisvideo::config::Region::new(region.clone()))
            .endpoint_url(emulator.endpoint_url())
            .credentials_provider(credentials.clone())
            .http_client(http.clone())
            .build(),
    );

    // One-time setup: a channel storing into a stream with retention.
    let channel_arn = kv
        .create_signaling_channel()
        .channel_name("demo-camera")
        .send()
        .await?
        .channel_arn
        .ok_or("no ARN")?;
    let stream_arn = kv
        .create_stream()
        .stream_name("demo-camera-stream")
        .data_retention_in_hours(24)
        .send()
        .await?
        .stream_arn
        .ok_or("no ARN")?;
    kv.update_media_storage_configuration()
        .channel_arn(&channel_arn)
        .media_storage_configuration(
            MediaStorageConfiguration::builder()
                .stream_arn(&stream_arn)
                .status(MediaStorageConfigurationStatus::Enabled)
                .build()?,
        )
        .send()
        .await?;

    // Discovery, as a device does it.
    let channel = kv
        .describe_signaling_channel()
        .channel_name("demo-camera")
        .send()
        .await?;
    let arn = channel
        .channel_info()
        .and_then(|c| c.channel_arn())
        .ok_or("no ARN")?
        .to_owned();
    let storage = kv
        .describe_media_storage_configuration()
        .channel_arn(&arn)
        .send()
        .await?;
    println!(
        "media storage: {:?}",
        storage.media_storage_configuration().map(|c| c.status())
    );
    let endpoints = kv
        .get_signaling_channel_endpoint()
        .channel_arn(&arn)
        .single_master_channel_endpoint_configuration(
            SingleMasterChannelEndpointConfiguration::builder()
                .protocols(ChannelProtocol::Wss)
                .protocols(ChannelProtocol::Https)
                .protocols(ChannelProtocol::Webrtc)
                .role(ChannelRole::Master)
                .build(),
        )
        .send()
        .await?;
    let endpoint = |p: ChannelProtocol| {
        endpoints
            .resource_endpoint_list()
            .iter()
            .find(|e| e.protocol() == Some(&p))
            .and_then(|e| e.resource_endpoint())
            .map(str::to_owned)
            .ok_or("endpoint missing")
    };
    let (wss, webrtc) = (
        endpoint(ChannelProtocol::Wss)?,
        endpoint(ChannelProtocol::Webrtc)?,
    );
    println!("WSS {wss}\nWEBRTC {webrtc}");

    // The signaling socket, presigned with aws-sigv4 (service kinesisvideo).
    let url = format!("{wss}/?X-Amz-ChannelARN={}", encode(&arn));
    let host = wss.trim_start_matches("wss://").to_owned();
    let identity = credentials.into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(299));
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("kinesisvideo")
        .time(SystemTime::now())
        .settings(settings)
        .build()?
        .into();
    let signable = SignableRequest::new(
        "GET",
        &url,
        std::iter::once(("host", host.as_str())),
        SignableBody::Bytes(b""),
    )?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    let mut request = http::Request::builder().uri(&url).body(())?;
    instructions.apply_to_request_http1x(&mut request);
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    roots.add(rustls_pki_types::CertificateDer::from_pem_slice(
        ca.as_bytes(),
    )?)?;
    let tls_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(tls_config));
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        request.uri().to_string(),
        None,
        false,
        Some(connector),
    )
    .await?;
    println!("signaling socket open");

    // Join the storage session; the offer arrives on the socket.
    let storage_client = aws_sdk_kinesisvideowebrtcstorage::Client::from_conf(
        aws_sdk_kinesisvideowebrtcstorage::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_kinesisvideowebrtcstorage::config::Region::new(
                region.clone(),
            ))
            .endpoint_url(&webrtc)
            .credentials_provider(Credentials::new(
                &key.access_key_id,
                &key.secret_access_key,
                None,
                None,
                "kvs-emulator",
            ))
            .http_client(http)
            .build(),
    );
    storage_client
        .join_storage_session()
        .channel_arn(&arn)
        .send()
        .await?;
    println!("JoinStorageSession: 200");
    let offer = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = ws.next().await {
            let text = frame?.into_text()?;
            let event: serde_json::Value = serde_json::from_str(&text)?;
            if event["messageType"] == "SDP_OFFER" {
                let payload = base64::engine::general_purpose::STANDARD
                    .decode(event["messagePayload"].as_str().unwrap_or(""))?;
                return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    serde_json::from_slice::<serde_json::Value>(&payload)?,
                );
            }
        }
        Err("the socket closed before the offer".into())
    })
    .await??;
    let sdp = offer["sdp"].as_str().unwrap_or("");
    println!(
        "storage offer received ({} SDP lines, senderClientId absent):",
        sdp.lines().count()
    );
    for line in sdp
        .lines()
        .filter(|l| l.starts_with("m=") || l.contains("H264") || l.contains("opus"))
    {
        println!("  {line}");
    }
    emulator.shutdown().await;
    Ok(())
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
