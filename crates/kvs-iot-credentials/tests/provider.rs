//! The provider against an IoT credentials endpoint played here (mutual TLS with a throw-away
//! CA, the service's answers), in simulated time: caching, one refresh for concurrent callers,
//! refresh before the expiry, the old credentials while the endpoint is down, and each refusal.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_async::test_util::ManualTimeSource;
use aws_smithy_async::time::TimeSource;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use kvs_iot_credentials::{ErrorKind, IotCredentialsProvider};
use kvs_test_support::TestCa;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What the endpoint answers: status and body, from the thing name and the path.
type Answer = dyn Fn(&str, &str) -> (u16, String) + Send + Sync;

/// An IoT credentials endpoint on 127.0.0.1 that requires a client certificate of `ca`.
struct Endpoint {
    address: String,
    requests: Arc<AtomicU64>,
    answer: Arc<Mutex<Box<Answer>>>,
}

impl Endpoint {
    /// `delay`: how long each answer takes (so that concurrent callers overlap).
    async fn start(ca: &TestCa, delay: Duration) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(ca.server_cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(ca.server_key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(AtomicU64::new(0));
        let answer: Arc<Mutex<Box<Answer>>> = Arc::new(Mutex::new(Box::new(|_: &str, _: &str| {
            (500, String::new())
        })));
        let (count, answers) = (requests.clone(), answer.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, count, answers) = (acceptor.clone(), count.clone(), answers.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (count, answers) = (count.clone(), answers.clone());
                            async move {
                                count.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(delay).await; // the endpoint's own latency
                                let thing = req
                                    .headers()
                                    .get("x-amzn-iot-thingname")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_owned();
                                let (status, body) =
                                    (answers.lock().unwrap())(&thing, req.uri().path());
                                let mut response =
                                    hyper::Response::new(Full::new(bytes::Bytes::from(body)));
                                *response.status_mut() =
                                    hyper::StatusCode::from_u16(status).unwrap();
                                Ok::<_, Infallible>(response)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            address,
            requests,
            answer,
        }
    }

    fn answer(&self, answer: impl Fn(&str, &str) -> (u16, String) + Send + Sync + 'static) {
        *self.answer.lock().unwrap() = Box::new(answer);
    }

    /// Answer with credentials numbered by request, valid for `lifetime` from `time`'s now.
    fn hand_out(&self, time: ManualTimeSource, lifetime: Duration) {
        let count = self.requests.clone();
        self.answer(move |thing, path| {
            if thing != "cam-1" {
                return (403, r#"{"message":"Invalid thing name passed"}"#.into());
            }
            if path != "/role-aliases/CamAlias/credentials" {
                return (404, r#"{"message":"Role alias does not exist"}"#.into());
            }
            let n = count.load(Ordering::SeqCst);
            let expiration = aws_smithy_types::DateTime::from(time.now() + lifetime)
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap();
            let body = serde_json::json!({ "credentials": {
                "accessKeyId": format!("ASIAKEY{n}"),
                "secretAccessKey": "secret",
                "sessionToken": format!("token-{n}"),
                "expiration": expiration,
            }});
            (200, body.to_string())
        });
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

fn start_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000)
}

/// The settings for `endpoint`, with `identity` (certificate and key PEM) and `time`.
fn builder(
    endpoint: &str,
    ca: &TestCa,
    (cert, key): &(String, String),
    time: &ManualTimeSource,
) -> kvs_iot_credentials::Builder {
    IotCredentialsProvider::builder()
        .endpoint(endpoint)
        .role_alias("CamAlias")
        .thing_name("cam-1")
        .certificate_pem(cert.as_bytes())
        .private_key_pem(key.as_bytes())
        .ca_pem(ca.ca_pem.as_bytes())
        .timeout(Duration::from_secs(5))
        .time_source(time.clone())
}

fn provider(
    endpoint: &Endpoint,
    ca: &TestCa,
    identity: &(String, String),
    time: &ManualTimeSource,
) -> IotCredentialsProvider {
    builder(&format!("https://{}", endpoint.address), ca, identity, time)
        .build()
        .expect("the settings")
}

#[tokio::test]
async fn credentials_are_cached_shared_and_refreshed_before_they_expire() {
    let ca = TestCa::new("iot");
    let endpoint = Endpoint::start(&ca, Duration::from_millis(100)).await;
    let time = ManualTimeSource::new(start_time());
    endpoint.hand_out(time.clone(), Duration::from_secs(3600));
    let provider = provider(
        &endpoint,
        &ca,
        &ca.client_certificate("cam-1", false),
        &time,
    );

    // Ten callers at once: one request.
    let callers: Vec<_> = (0..10)
        .map(|_| {
            let provider = provider.clone();
            tokio::spawn(async move { provider.provide_credentials().await })
        })
        .collect();
    for caller in callers {
        let credentials = caller.await.unwrap().expect("credentials");
        assert_eq!(credentials.access_key_id(), "ASIAKEY1");
        assert_eq!(credentials.session_token(), Some("token-1"));
        assert_eq!(
            credentials.expiry(),
            Some(start_time() + Duration::from_secs(3600))
        );
    }
    assert_eq!(
        endpoint.requests(),
        1,
        "concurrent callers share one request"
    );

    // Cached until the margin (5 min) and its jitter (up to 1 min) before the expiry.
    time.advance(Duration::from_secs(3600 - 360 - 1));
    let cached = provider.provide_credentials().await.unwrap();
    assert_eq!(cached.access_key_id(), "ASIAKEY1");
    assert_eq!(endpoint.requests(), 1);
    time.advance(Duration::from_secs(61));
    let fresh = provider.provide_credentials().await.unwrap();
    assert_eq!(
        fresh.access_key_id(),
        "ASIAKEY2",
        "refreshed within 5 minutes of the expiry"
    );
    assert_eq!(endpoint.requests(), 2);
}

#[tokio::test]
async fn the_old_credentials_serve_while_the_endpoint_is_down_until_they_expire() {
    let ca = TestCa::new("iot");
    let endpoint = Endpoint::start(&ca, Duration::ZERO).await;
    let time = ManualTimeSource::new(start_time());
    endpoint.hand_out(time.clone(), Duration::from_secs(60));
    let provider = provider(
        &endpoint,
        &ca,
        &ca.client_certificate("cam-1", false),
        &time,
    );
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id(),
        "ASIAKEY1"
    );

    endpoint.answer(|_, _| (503, r#"{"message":"Service Unavailable"}"#.into()));
    time.advance(Duration::from_secs(50)); // past the refresh time, before the expiry
    let kept = provider.credentials().await.expect("the old credentials");
    assert_eq!(kept.access_key_id(), "ASIAKEY1");
    assert_eq!(endpoint.requests(), 2, "a refresh was tried");
    // The next attempt waits 10 s (or half the time left): no request for each caller.
    time.advance(Duration::from_secs(2));
    provider.credentials().await.expect("still the old ones");
    assert_eq!(endpoint.requests(), 2);

    time.advance(Duration::from_secs(10)); // expired now
    let err = provider
        .credentials()
        .await
        .expect_err("expired, and no new ones");
    assert_eq!(err.kind(), ErrorKind::Unreachable, "{err}");
    assert!(err.to_string().contains("503"), "{err}");

    // The endpoint is back: fresh credentials.
    endpoint.hand_out(time.clone(), Duration::from_secs(60));
    assert!(provider
        .credentials()
        .await
        .unwrap()
        .access_key_id()
        .starts_with("ASIAKEY"));
}

#[tokio::test]
async fn each_refusal_says_what_to_fix() {
    let ca = TestCa::new("iot");
    let endpoint = Endpoint::start(&ca, Duration::ZERO).await;
    let time = ManualTimeSource::new(start_time());
    endpoint.hand_out(time.clone(), Duration::from_secs(3600));
    let identity = ca.client_certificate("cam-1", false);
    let build = |thing: &str, alias: &str| {
        builder(&endpoint.address, &ca, &identity, &time)
            .thing_name(thing)
            .role_alias(alias)
            .build()
            .unwrap()
    };
    let err = build("other-thing", "CamAlias")
        .credentials()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ThingNotAttached, "{err}");
    assert!(err.to_string().contains("other-thing"), "{err}");
    let err = build("cam-1", "NoSuchAlias")
        .credentials()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RoleAliasUnknown, "{err}");
    assert!(err.to_string().contains("NoSuchAlias"), "{err}");

    // Credentials that are already past by this machine's clock: the clock is wrong.
    let skewed = ManualTimeSource::new(start_time() + Duration::from_secs(7200));
    let late = builder(&endpoint.address, &ca, &identity, &skewed)
        .build()
        .unwrap();
    let err = late.credentials().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ClockSkew, "{err}");
}

#[tokio::test]
async fn certificates_the_endpoint_does_not_accept_are_refused_in_the_handshake() {
    let ca = TestCa::new("iot");
    let endpoint = Endpoint::start(&ca, Duration::ZERO).await;
    let time = ManualTimeSource::new(start_time());
    endpoint.hand_out(time.clone(), Duration::from_secs(3600));

    let other_ca = TestCa::new("elsewhere");
    let foreign = provider(
        &endpoint,
        &ca,
        &other_ca.client_certificate("cam-1", false),
        &time,
    );
    let err = foreign.credentials().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CertificateRefused, "{err}");

    let expired = provider(&endpoint, &ca, &ca.client_certificate("cam-1", true), &time);
    let err = expired.credentials().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CertificateRefused, "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
    assert_eq!(endpoint.requests(), 0, "no request got through");
}

#[tokio::test]
async fn bad_settings_fail_at_build_with_what_is_wrong() {
    let ca = TestCa::new("iot");
    let (cert, _) = ca.client_certificate("cam-1", false);
    let (_, other_key) = ca.client_certificate("cam-2", false);
    let time = ManualTimeSource::new(start_time());
    let base = || {
        IotCredentialsProvider::builder()
            .endpoint("127.0.0.1:9")
            .role_alias("CamAlias")
            .thing_name("cam-1")
            .ca_pem(ca.ca_pem.as_bytes())
            .time_source(time.clone())
    };
    let mismatched = base()
        .certificate_pem(cert.as_bytes())
        .private_key_pem(other_key.as_bytes())
        .build()
        .unwrap_err();
    assert_eq!(mismatched.kind(), ErrorKind::Config);
    assert!(
        mismatched.to_string().contains("private key"),
        "{mismatched}"
    );

    let no_key = base().certificate_pem(cert.as_bytes()).build().unwrap_err();
    assert!(no_key.to_string().contains("private key"), "{no_key}");
    let not_pem = base()
        .certificate_pem(b"hello".as_slice())
        .private_key_pem(other_key.as_bytes())
        .build()
        .unwrap_err();
    assert!(not_pem.to_string().contains("certificate"), "{not_pem}");
    let missing_file = base()
        .certificate_pem_file("/no/such/cert.pem")
        .unwrap_err();
    assert!(
        missing_file.to_string().contains("/no/such/cert.pem"),
        "{missing_file}"
    );
}

#[tokio::test]
async fn an_endpoint_that_is_down_is_unreachable() {
    let ca = TestCa::new("iot");
    let (cert, key) = ca.client_certificate("cam-1", false);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener); // nothing listens there now
    let time = ManualTimeSource::new(start_time());
    let provider = builder(&address.to_string(), &ca, &(cert, key), &time)
        .build()
        .unwrap();
    let err = provider.credentials().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unreachable, "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains(&address.to_string()), "{err}");
}
