//! The IoT credentials endpoint end to end: a device identity issued by the emulator gets
//! temporary credentials through `kvs-iot-credentials` (mutual TLS), which the emulator's own
//! APIs then accept until they expire; and each refusal, as the provider reads it.

mod support;

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_kinesisvideo::error::ProvideErrorMetadata;
use aws_sdk_kinesisvideo::types::ChannelRole;
use kvs_emulator::{AccessKey, DEFAULT_ROLE_ALIAS};
use kvs_iot_credentials::{ErrorKind, IotCredentialsProvider};
use support::{presign, TestEmulator};
use tokio_tungstenite::tungstenite::Error as WsError;

/// A provider for `thing`'s certificate (issued to `cert_thing` by `issuer`) at `emu`'s
/// endpoint.
fn provider(
    emu: &TestEmulator,
    issuer: &TestEmulator,
    cert_thing: &str,
    thing: &str,
    alias: &str,
) -> IotCredentialsProvider {
    let (cert, key) = issuer
        .handle
        .issue_device_certificate(cert_thing)
        .expect("a device certificate");
    IotCredentialsProvider::builder()
        .endpoint(
            emu.handle
                .endpoints()
                .iot_credentials
                .clone()
                .expect("TLS is on, so the IoT endpoint is served"),
        )
        .role_alias(alias)
        .thing_name(thing)
        .certificate_pem(cert.as_bytes())
        .private_key_pem(key.as_bytes())
        .ca_pem(emu.ca_pem.as_bytes())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("the provider builds")
}

fn as_key(credentials: &aws_credential_types::Credentials) -> AccessKey {
    AccessKey::new(credentials.access_key_id(), credentials.secret_access_key())
        .with_session_token(credentials.session_token().expect("a session token"))
}

#[tokio::test]
async fn a_device_certificate_gets_credentials_the_emulator_accepts() {
    let emu = TestEmulator::start().await;
    let (arn, _) = emu.storage_channel("cam-1").await;
    let device = provider(&emu, &emu, "cam-1", "cam-1", DEFAULT_ROLE_ALIAS);

    // The AWS SDK for Rust with the provider as its credentials, nothing else changed.
    let config = emu
        .sdk_config()
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(device.clone()))
        .build();
    let kv = aws_sdk_kinesisvideo::Client::new(&config);
    let info = kv
        .describe_signaling_channel()
        .channel_name("cam-1")
        .send()
        .await
        .expect("DescribeSignalingChannel with IoT credentials")
        .channel_info
        .unwrap();
    assert_eq!(info.channel_arn(), Some(arn.as_str()));
    assert_eq!(emu.calls("AssumeRoleWithCertificate"), 1);

    let credentials = device.credentials().await.unwrap();
    assert!(
        credentials.access_key_id().starts_with("ASIA"),
        "{credentials:?}"
    );
    let expiry = credentials.expiry().expect("temporary credentials expire");
    let valid_for = expiry.duration_since(SystemTime::now()).unwrap();
    assert!(
        valid_for > Duration::from_secs(3500) && valid_for <= Duration::from_secs(3600),
        "{valid_for:?}"
    );

    // The signaling WebSocket takes them too (presigned with the session token).
    let (wss, _, _) = emu.endpoints(&arn, ChannelRole::Master).await;
    let url = presign(
        &wss,
        &arn,
        None,
        &as_key(&credentials),
        emu.handle.region(),
        SystemTime::now(),
        Duration::from_secs(299),
    );
    emu.connect_url(&url)
        .await
        .expect("the master connects with IoT credentials");
}

#[tokio::test]
async fn an_unknown_role_alias_is_404() {
    let emu = TestEmulator::start().await;
    let err = provider(&emu, &emu, "cam-1", "cam-1", "NoSuchAlias")
        .credentials()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RoleAliasUnknown, "{err}");
    assert!(err.to_string().contains("404"), "{err}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let emu = TestEmulator::start().await;
    let elsewhere = TestEmulator::start().await;
    let err = provider(&emu, &elsewhere, "cam-1", "cam-1", DEFAULT_ROLE_ALIAS)
        .credentials()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CertificateRefused, "{err}");
    assert!(err.to_string().contains("403"), "{err}");
    // The same thing's certificate from the endpoint's own CA is accepted.
    provider(&emu, &emu, "cam-1", "cam-1", DEFAULT_ROLE_ALIAS)
        .credentials()
        .await
        .expect("the emulator's own certificate");
}

#[tokio::test]
async fn a_certificate_not_attached_to_the_thing_is_refused() {
    let emu = TestEmulator::start().await;
    let err = provider(&emu, &emu, "cam-1", "cam-2", DEFAULT_ROLE_ALIAS)
        .credentials()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ThingNotAttached, "{err}");
    assert!(err.to_string().contains("403"), "{err}");
}

#[tokio::test]
async fn expired_credentials_are_refused_with_expired_token() {
    const DURATION: Duration = Duration::from_secs(3);
    let emu = TestEmulator::start_with(|b| b.role_alias("Short", DURATION)).await;
    let (arn, _) = emu.storage_channel("cam-1").await;
    let (wss, _, _) = emu.endpoints(&arn, ChannelRole::Master).await;
    let credentials = provider(&emu, &emu, "cam-1", "cam-1", "Short")
        .credentials()
        .await
        .unwrap();
    let key = as_key(&credentials);
    let expiry = credentials.expiry().unwrap();
    // Fixed credentials (no provider to refresh them): accepted now...
    let kv = emu.control_plane_as(&key);
    kv.describe_signaling_channel()
        .channel_name("cam-1")
        .send()
        .await
        .expect("accepted before they expire");

    // ...and refused once their expiration has passed (what is awaited is the clock itself).
    let wait = expiry.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(wait <= DURATION, "{wait:?}");
    tokio::time::sleep(wait).await;
    let err = kv
        .describe_signaling_channel()
        .channel_name("cam-1")
        .send()
        .await
        .unwrap_err();
    assert!(SystemTime::now() >= expiry);
    assert_eq!(err.code(), Some("ExpiredTokenException"), "{err:?}");
    assert_eq!(
        err.message(),
        Some("The security token included in the request is expired")
    );
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));

    // The signaling WebSocket refuses a URL presigned with them, the same way.
    let url = presign(
        &wss,
        &arn,
        None,
        &key,
        emu.handle.region(),
        SystemTime::now(),
        Duration::from_secs(299),
    );
    match emu.connect_url(&url).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            let error_type = response
                .headers()
                .get("x-amzn-ErrorType")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            assert!(
                error_type.starts_with("ExpiredTokenException"),
                "{error_type} {body}"
            );
            assert!(
                body.contains("The security token included in the request is expired"),
                "{body}"
            );
        }
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
        Ok(_) => panic!("the socket opened with expired credentials"),
    }
}

/// curl (mutual TLS with the files `kvs-emulator cert issue` writes) and boto3 as independent
/// clients: `tests/python/iot_curl_boto3.py`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_credentials_that_boto3_uses() {
    let emu = TestEmulator::start().await;
    let (arn, _) = emu.storage_channel("cam-1").await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = emu.handle.issue_device_certificate("cam-1").unwrap();
    let cert_path = dir.path().join("cam-1.cert.pem");
    let key_path = dir.path().join("cam-1.private.key");
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/iot_curl_boto3.py"
    );
    let mut command = emu.python_command(script, &home);
    command
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env(
            "IOT_ENDPOINT",
            emu.handle.endpoints().iot_credentials.clone().unwrap(),
        )
        .env("IOT_CERT", &cert_path)
        .env("IOT_KEY", &key_path)
        .env("IOT_THING", "cam-1")
        .env("IOT_ROLE_ALIAS", DEFAULT_ROLE_ALIAS)
        .env("CHANNEL_ARN", &arn);
    emu.run_python(command, "iot-curl-boto3: all checks passed")
        .await;
    assert_eq!(emu.calls("AssumeRoleWithCertificate"), 2);
}

/// A client that presents `cert_pem` but signs the handshake with `key_pem`, whether or not
/// they belong together (rustls's own builder would refuse a mismatch before connecting).
#[derive(Debug)]
struct Present(std::sync::Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Present {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<std::sync::Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// `GET /role-aliases/<default>/credentials` over mutual TLS with `cert_pem` and `key_pem`:
/// the answer's status line, or the connection's error.
async fn raw_request(emu: &TestEmulator, cert_pem: &str, key_pem: &str) -> Result<String, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(emu.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(std::sync::Arc::new(Present(std::sync::Arc::new(
            rustls::sign::CertifiedKey::new(chain, key),
        ))));
    let address = emu.handle.endpoints().iot_credentials.clone().unwrap();
    let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let exchange = async {
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let request = format!(
            "GET /role-aliases/{DEFAULT_ROLE_ALIAS}/credentials HTTP/1.1\r\nHost: {address}\r\n\
             x-amzn-iot-thingname: cam-1\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        match answer.lines().next() {
            Some(status) if !status.is_empty() => Ok(status.to_owned()),
            _ => Err("the connection closed without an answer".to_owned()),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("the exchange ends in time")
}

/// The endpoint takes any certificate in the handshake (so that it can answer 403 to one it
/// does not know) but checks that the client holds the certificate's key.
#[tokio::test]
async fn a_certificate_presented_without_its_key_fails_the_handshake() {
    let emu = TestEmulator::start().await;
    let (cert, key) = emu.handle.issue_device_certificate("cam-1").unwrap();
    let (_, other_key) = emu.handle.issue_device_certificate("cam-1").unwrap();
    assert_eq!(
        raw_request(&emu, &cert, &key).await,
        Ok("HTTP/1.1 200 OK".to_owned()),
        "the certificate with its own key"
    );
    let refused = raw_request(&emu, &cert, &other_key).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(emu.calls("AssumeRoleWithCertificate"), 1);
}
