//! The AWS IoT credentials endpoint (`<prefix>.credentials.iot.<region>.amazonaws.com`): a device
//! presents its X.509 certificate over mutual TLS and gets temporary credentials for a role
//! alias, which the emulator's SigV4 checks then accept until they expire
//! ([`crate::temporary_keys`]).
//!
//! `GET /role-aliases/<alias>/credentials` with `x-amzn-iot-thingname: <thing>` answers 200
//! `{"credentials": {"accessKeyId", "secretAccessKey", "sessionToken", "expiration"}}`, or the
//! service's refusals (status and `message`, as `kvs-iot-credentials` reads them):
//! - 403 "Certificate is invalid on this endpoint": no client certificate, or one not issued by
//!   the emulator's CA; 403 "Certificate has expired" for an expired one;
//! - 404 "Role alias does not exist": an alias the emulator was not given;
//! - 403 "Invalid thing name passed": the certificate is not attached to the thing named in
//!   `x-amzn-iot-thingname`.
//!
//! A certificate is attached to exactly one thing: the common name of its subject, which
//! [`EmulatorHandle::issue_device_certificate`](crate::EmulatorHandle::issue_device_certificate)
//! and `kvs-emulator cert issue` set. The emulator keeps no list of attachments, so certificates
//! issued by the CLI work with any emulator that uses the same CA.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, StatusCode};
use hyper::body::Incoming;
use hyper::Request;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::http_server::HttpResponse;
use crate::shared::Shared;

/// The role alias every emulator has, so that `kvs-emulator serve` works without options (the
/// name the KVS developer guide uses for its IoT setup).
pub const DEFAULT_ROLE_ALIAS: &str = "KvsCameraIoTRoleAlias";
/// How long credentials of a role alias are valid unless told otherwise (AWS's default).
pub const DEFAULT_CREDENTIAL_DURATION: Duration = Duration::from_secs(3600);

/// What `kvs-emulator cert issue` does: a device certificate for `thing` from the CA in
/// `data_dir` (`ca.pem`, `ca.key`; created if absent, as `kvs-emulator serve` would), written to
/// `<out>/<thing>.cert.pem` and `<out>/<thing>.private.key` (mode 0600). Returns the two paths.
/// The certificate is attached to `thing` through its subject's common name, so an emulator
/// already serving with that CA accepts it at once.
pub fn issue_device_certificate_files(
    data_dir: &std::path::Path,
    thing: &str,
    out: &std::path::Path,
) -> Result<(std::path::PathBuf, std::path::PathBuf), crate::Error> {
    use crate::error::{Error, ErrorKind};
    let (ca_cert, ca_key) = crate::tls::ensure_generated_ca(data_dir)?;
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map_err(|e| Error::io(ErrorKind::Tls, format!("cannot read {}", p.display()), e))
    };
    let (cert_pem, key_pem) = crate::tls::issue_device_certificate(
        &read(&ca_cert)?,
        &read(&ca_key)?,
        thing,
        crate::tls::DEVICE_VALIDITY,
    )?;
    std::fs::create_dir_all(out).map_err(|e| {
        Error::io(
            ErrorKind::Tls,
            format!("cannot create {}", out.display()),
            e,
        )
    })?;
    let cert_path = out.join(format!("{thing}.cert.pem"));
    let key_path = out.join(format!("{thing}.private.key"));
    std::fs::write(&cert_path, cert_pem).map_err(|e| {
        Error::io(
            ErrorKind::Tls,
            format!("cannot write {}", cert_path.display()),
            e,
        )
    })?;
    crate::tls::write_private(&key_path, key_pem.as_bytes())?;
    Ok((cert_path, key_path))
}

/// The device's certificate chain, as presented in the TLS handshake (a request extension set
/// by the listener).
#[derive(Debug, Clone)]
pub(crate) struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

/// What a granted request gets credentials for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    /// The thing the certificate is attached to.
    pub thing: String,
    /// The role alias's credential duration.
    pub duration: Duration,
}

/// A refusal: status and the service's `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub message: &'static str,
}

const fn refusal(status: StatusCode, message: &'static str) -> Refusal {
    Refusal { status, message }
}

/// What the endpoint sees of one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CredentialsRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    /// `x-amzn-iot-thingname`, if sent.
    pub thing_name: Option<&'a str>,
    /// The client's certificate chain (end entity first), if it sent one.
    pub certificates: Option<&'a [CertificateDer<'static>]>,
}

/// Decide a request: the certificate first (403), then the role alias (404), then the thing
/// (403), as the service does.
pub(crate) fn authorize(
    req: &CredentialsRequest<'_>,
    verifier: &dyn ClientCertVerifier,
    role_aliases: &BTreeMap<String, Duration>,
    now: SystemTime,
) -> Result<Grant, Refusal> {
    let Some(alias) = req
        .path
        .strip_prefix("/role-aliases/")
        .and_then(|rest| rest.strip_suffix("/credentials"))
        .filter(|alias| !alias.is_empty() && !alias.contains('/'))
    else {
        return Err(refusal(StatusCode::NOT_FOUND, "Not Found"));
    };
    if req.method != Method::GET {
        return Err(refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
        ));
    }
    let invalid = refusal(
        StatusCode::FORBIDDEN,
        "Certificate is invalid on this endpoint",
    );
    let Some((end_entity, intermediates)) = req.certificates.and_then(<[_]>::split_first) else {
        return Err(invalid);
    };
    let unix = UnixTime::since_unix_epoch(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    if let Err(e) = verifier.verify_client_cert(end_entity, intermediates, unix) {
        tracing::info!(error = %e, "IoT credentials: device certificate refused");
        return Err(match e {
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. },
            ) => refusal(StatusCode::FORBIDDEN, "Certificate has expired"),
            _ => invalid,
        });
    }
    let Some(duration) = role_aliases.get(alias) else {
        return Err(refusal(StatusCode::NOT_FOUND, "Role alias does not exist"));
    };
    let Some(attached) = crate::tls::device_thing(end_entity) else {
        return Err(invalid);
    };
    match req.thing_name {
        Some(named) if named != attached => {
            Err(refusal(StatusCode::FORBIDDEN, "Invalid thing name passed"))
        }
        _ => Ok(Grant {
            thing: attached,
            duration: *duration,
        }),
    }
}

/// `2023-11-14T22:13:20Z`, as the service writes `expiration`.
pub(crate) fn iso8601(t: SystemTime) -> String {
    let d = crate::sigv4::format_amz_date(t);
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &d[0..4],
        &d[4..6],
        &d[6..8],
        &d[9..11],
        &d[11..13],
        &d[13..15]
    )
}

/// The listener's handler.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    verifier: Arc<dyn ClientCertVerifier>,
    req: Request<Incoming>,
) -> HttpResponse {
    let certificates = req.extensions().get::<PeerCertificates>().cloned();
    let thing_name = req
        .headers()
        .get("x-amzn-iot-thingname")
        .and_then(|v| v.to_str().ok());
    let request = CredentialsRequest {
        method: req.method(),
        path: req.uri().path(),
        thing_name,
        certificates: certificates.as_ref().map(|c| c.0.as_slice()),
    };
    shared.calls.record("AssumeRoleWithCertificate");
    let now = SystemTime::now();
    match authorize(
        &request,
        verifier.as_ref(),
        &shared.config.role_aliases,
        now,
    ) {
        Ok(grant) => {
            let issued = shared
                .temporary_keys
                .issue(&grant.thing, grant.duration, now);
            tracing::info!(thing = %grant.thing, access_key_id = %issued.key.access_key_id, "IoT credentials issued");
            let body = serde_json::json!({
                "credentials": {
                    "accessKeyId": issued.key.access_key_id,
                    "secretAccessKey": issued.key.secret_access_key,
                    "sessionToken": issued.key.session_token,
                    "expiration": iso8601(issued.expiration),
                }
            });
            answer(StatusCode::OK, &body)
        }
        Err(refused) => {
            tracing::info!(status = refused.status.as_u16(), message = refused.message, path = %req.uri().path(), "IoT credentials refused");
            answer(
                refused.status,
                &serde_json::json!({ "message": refused.message }),
            )
        }
    }
}

fn answer(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    let mut resp = crate::http_server::full_response(http_body_util::Full::new(
        bytes::Bytes::from(body.to_string()),
    ));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        "x-amzn-RequestId",
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid is ASCII"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;

    struct Ca {
        cert_pem: String,
        key_pem: String,
        verifier: Arc<dyn ClientCertVerifier>,
    }

    fn ca() -> Ca {
        let dir = tempfile::tempdir().unwrap();
        let material = crate::tls::generated_ca(dir.path(), &[]).unwrap();
        let key_pem = std::fs::read_to_string(dir.path().join("ca.key")).unwrap();
        Ca {
            cert_pem: material.ca_cert_pem.clone(),
            key_pem,
            verifier: material.device_verifier.clone(),
        }
    }

    fn der(pem: &str) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()]
    }

    fn aliases() -> BTreeMap<String, Duration> {
        BTreeMap::from([("cams".to_owned(), Duration::from_secs(90))])
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000)
    }

    fn ask(
        ca: &Ca,
        path: &str,
        thing: Option<&str>,
        certs: Option<&[CertificateDer<'static>]>,
    ) -> Result<Grant, Refusal> {
        let req = CredentialsRequest {
            method: &Method::GET,
            path,
            thing_name: thing,
            certificates: certs,
        };
        authorize(&req, ca.verifier.as_ref(), &aliases(), now())
    }

    fn issue(ca: &Ca, thing: &str) -> Vec<CertificateDer<'static>> {
        let (cert, _key) = crate::tls::issue_device_certificate(
            &ca.cert_pem,
            &ca.key_pem,
            thing,
            crate::tls::DEVICE_VALIDITY,
        )
        .unwrap();
        der(&cert)
    }

    #[test]
    fn a_certificate_of_the_ca_gets_its_things_credentials_for_a_known_alias() {
        let ca = ca();
        let certs = issue(&ca, "cam-1");
        let path = "/role-aliases/cams/credentials";
        assert_eq!(
            ask(&ca, path, Some("cam-1"), Some(&certs)),
            Ok(Grant {
                thing: "cam-1".into(),
                duration: Duration::from_secs(90)
            })
        );
        // Without the header the certificate's thing is used, as the service allows.
        assert_eq!(ask(&ca, path, None, Some(&certs)).unwrap().thing, "cam-1");
    }

    #[test]
    fn refusals_follow_the_service() {
        let ca = ca();
        let other = ca_other();
        let certs = issue(&ca, "cam-1");
        let foreign = issue(&other, "cam-1");
        let (expired_pem, _) = crate::tls::issue_device_certificate(
            &ca.cert_pem,
            &ca.key_pem,
            "cam-1",
            ((2024, 1, 1), (2025, 1, 1)),
        )
        .unwrap();
        let expired = der(&expired_pem);
        let path = "/role-aliases/cams/credentials";
        let status = |r: Result<Grant, Refusal>| r.unwrap_err();
        assert_eq!(
            status(ask(&ca, path, Some("cam-1"), None)),
            refusal(
                StatusCode::FORBIDDEN,
                "Certificate is invalid on this endpoint"
            )
        );
        assert_eq!(
            status(ask(&ca, path, Some("cam-1"), Some(&foreign))),
            refusal(
                StatusCode::FORBIDDEN,
                "Certificate is invalid on this endpoint"
            )
        );
        assert_eq!(
            status(ask(&ca, path, Some("cam-1"), Some(&expired))),
            refusal(StatusCode::FORBIDDEN, "Certificate has expired")
        );
        assert_eq!(
            status(ask(
                &ca,
                "/role-aliases/nope/credentials",
                Some("cam-1"),
                Some(&certs)
            )),
            refusal(StatusCode::NOT_FOUND, "Role alias does not exist")
        );
        assert_eq!(
            status(ask(&ca, path, Some("cam-2"), Some(&certs))),
            refusal(StatusCode::FORBIDDEN, "Invalid thing name passed")
        );
        assert_eq!(
            status(ask(&ca, "/role-aliases/cams", Some("cam-1"), Some(&certs))).status,
            StatusCode::NOT_FOUND
        );
    }

    fn ca_other() -> Ca {
        ca()
    }

    #[test]
    fn expiration_is_written_as_the_service_writes_it() {
        assert_eq!(
            iso8601(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
    }

    #[test]
    fn thing_names_are_checked_before_issuing() {
        let ca = ca();
        for bad in ["", "a b", "x/y", &"a".repeat(129)] {
            assert!(
                crate::tls::issue_device_certificate(
                    &ca.cert_pem,
                    &ca.key_pem,
                    bad,
                    crate::tls::DEVICE_VALIDITY
                )
                .is_err(),
                "{bad:?}"
            );
        }
    }
}
