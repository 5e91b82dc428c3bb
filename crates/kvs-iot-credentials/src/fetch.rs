//! One exchange with the IoT credentials endpoint: a TLS connection that presents the device
//! certificate, `GET /role-aliases/<alias>/credentials` with `x-amzn-iot-thingname`, and the
//! answer mapped to credentials or to an [`Error`] that says what to fix. HTTP/1.1 is
//! `hyper`'s; the answers and their meanings are the service's (status code and `message`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde::Deserialize;

use crate::error::{Error, ErrorKind};

/// The largest answer read (credentials are a few kilobytes).
const MAX_ANSWER: usize = 64 * 1024;

/// Where to ask: the endpoint's host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Endpoint {
    /// `host`, `host:port` or `https://host[:port][/]` (port 443 by default).
    pub(crate) fn parse(text: &str) -> Result<Self, Error> {
        let bad = || {
            Error::new(
                ErrorKind::Config,
                format!(
                    "the IoT credentials endpoint {text:?} is not a host name (e.g. \
                     c1a2b3.credentials.iot.us-west-2.amazonaws.com, from `aws iot \
                     describe-endpoint --endpoint-type iot:CredentialProvider`)"
                ),
            )
        };
        let rest = text.trim();
        if rest.starts_with("http://") {
            return Err(Error::new(
                ErrorKind::Config,
                format!("the IoT credentials endpoint {text:?} must be HTTPS"),
            ));
        }
        let rest = rest.strip_prefix("https://").unwrap_or(rest);
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || authority.contains('@') {
            return Err(bad());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => 443,
                None => return Err(bad()),
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), port.parse().map_err(|_| bad())?),
                None => (authority.to_owned(), 443),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Self { host, port })
    }
}

/// What one exchange asks for.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) endpoint: Endpoint,
    pub(crate) role_alias: String,
    pub(crate) thing_name: String,
    pub(crate) timeout: Duration,
}

/// Temporary credentials as the endpoint hands them out.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Fetched {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
    pub(crate) session_token: String,
    pub(crate) expiration: SystemTime,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    credentials: AnswerCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

#[derive(Deserialize)]
struct Refusal {
    message: Option<String>,
}

/// Ask the endpoint once, within the request's timeout.
pub(crate) async fn fetch(
    tls: Arc<rustls::ClientConfig>,
    request: &Request,
) -> Result<Fetched, Error> {
    let endpoint = &request.endpoint;
    let exchange = exchange(tls, request);
    let (status, body) = tokio::time::timeout(request.timeout, exchange)
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Unreachable,
                format!(
                    "the IoT credentials endpoint {}:{} did not answer within {:?}",
                    endpoint.host, endpoint.port, request.timeout
                ),
            )
        })??;
    interpret(status, &body, request)
}

async fn exchange(
    tls: Arc<rustls::ClientConfig>,
    request: &Request,
) -> Result<(http::StatusCode, bytes::Bytes), Error> {
    let endpoint = &request.endpoint;
    let at = format!("{}:{}", endpoint.host, endpoint.port);
    let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Unreachable,
                format!("cannot connect to the IoT credentials endpoint {at}: {e}"),
            )
            .with_source(e)
        })?;
    let name = ServerName::try_from(endpoint.host.clone()).map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!("{} is not a valid server name", endpoint.host),
        )
        .with_source(e)
    })?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| handshake_error(&at, e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(&at, "the HTTP connection failed", e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "IoT credentials connection ended");
        }
    });
    let path = format!(
        "/role-aliases/{}/credentials",
        percent_encode(&request.role_alias)
    );
    let http_request = http::Request::get(path)
        .header(http::header::HOST, endpoint.host.as_str())
        .header("x-amzn-iot-thingname", request.thing_name.as_str())
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("kvs-iot-credentials/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| Error::new(ErrorKind::Config, "the request cannot be built").with_source(e))?;
    let response = sender
        .send_request(http_request)
        .await
        .map_err(|e| unreachable(&at, "the request failed", e))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidResponse,
                format!(
                    "the answer of {at} could not be read (or exceeds {MAX_ANSWER} bytes): {e}"
                ),
            )
        })?
        .to_bytes();
    Ok((status, body))
}

/// The TLS error behind `e`, if any: directly, or inside an I/O error anywhere in its chain
/// (with TLS 1.3 the server checks the client certificate after the client's handshake is
/// done, so its refusal arrives with the first read, inside hyper's error).
fn tls_error_in(e: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut next = Some(e);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        if let Some(tls) = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls.clone());
        }
        next = error.source();
    }
    None
}

/// A TLS handshake failure: the server refusing our certificate, or us refusing its.
fn handshake_error(at: &str, e: std::io::Error) -> Error {
    let tls_error = tls_error_in(&e);
    tls_refusal(at, tls_error)
        .unwrap_or_else(|| {
            Error::new(
                ErrorKind::Unreachable,
                format!("the TLS handshake with {at} failed: {e}"),
            )
        })
        .with_source(e)
}

/// What a TLS error means for the device, when it is about certificates.
fn tls_refusal(at: &str, tls_error: Option<rustls::Error>) -> Option<Error> {
    use rustls::AlertDescription as Alert;
    Some(match tls_error? {
        rustls::Error::AlertReceived(Alert::CertificateExpired) => Error::new(
            ErrorKind::CertificateRefused,
            format!("{at} refused the device certificate: it has expired; issue a new one"),
        ),
        rustls::Error::AlertReceived(
            alert @ (Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateRevoked
            | Alert::CertificateUnknown
            | Alert::CertificateRequired
            | Alert::DecryptError
            | Alert::AccessDenied
            | Alert::HandshakeFailure),
        ) => Error::new(
            ErrorKind::CertificateRefused,
            format!(
                "{at} refused the device certificate during the TLS handshake ({alert:?}): is it \
                 registered with AWS IoT in this account and region, ACTIVE, signed by a CA AWS \
                 IoT trusts, and is the private key the certificate's?"
            ),
        ),
        rustls::Error::InvalidCertificate(why) => Error::new(
            ErrorKind::EndpointUntrusted,
            format!(
                "the server certificate of {at} is not trusted ({why:?}): check the endpoint \
                 (`aws iot describe-endpoint --endpoint-type iot:CredentialProvider`) and the CA \
                 given"
            ),
        ),
        _ => return None,
    })
}

fn unreachable(at: &str, what: &str, e: hyper::Error) -> Error {
    tls_refusal(at, tls_error_in(&e))
        .unwrap_or_else(|| Error::new(ErrorKind::Unreachable, format!("{at}: {what}: {e}")))
        .with_source(e)
}

/// The answer as credentials, or the refusal as an error (the service's status codes and
/// messages, e.g. 403 "Invalid thing name passed", 404 "Role alias does not exist").
pub(crate) fn interpret(
    status: http::StatusCode,
    body: &[u8],
    request: &Request,
) -> Result<Fetched, Error> {
    if status == http::StatusCode::OK {
        let answer: Answer = serde_json::from_slice(body).map_err(|e| {
            Error::new(
                ErrorKind::InvalidResponse,
                "the IoT credentials endpoint answered 200 without credentials",
            )
            .with_source(e)
        })?;
        let c = answer.credentials;
        let expiration = aws_smithy_types::DateTime::from_str(
            &c.expiration,
            aws_smithy_types::date_time::Format::DateTime,
        )
        .ok()
        .and_then(|t| SystemTime::try_from(t).ok())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidResponse,
                format!(
                    "the credentials' expiration {:?} is not an ISO 8601 time",
                    c.expiration
                ),
            )
        })?;
        return Ok(Fetched {
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key,
            session_token: c.session_token,
            expiration,
        });
    }
    let message = serde_json::from_slice::<Refusal>(body)
        .ok()
        .and_then(|r| r.message)
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    let (alias, thing) = (&request.role_alias, &request.thing_name);
    let said = format!("{} {message:?}", status.as_u16());
    let (kind, what) = match status.as_u16() {
        403 if message.contains("thing name") => (
            ErrorKind::ThingNotAttached,
            format!(
                "the certificate is not attached to the thing {thing:?} (or no such thing): \
                 attach it (`aws iot attach-thing-principal`) or pass the thing it belongs to"
            ),
        ),
        403 if message.contains("Certificate") || message.contains("certificate") => (
            ErrorKind::CertificateRefused,
            "the endpoint refused the device certificate: is it registered with AWS IoT in \
             this account and region, and ACTIVE?"
                .to_owned(),
        ),
        401 | 403 => (
            ErrorKind::AccessDenied,
            format!(
                "the certificate may not assume the role alias {alias:?}: its IoT policy must \
                 allow iot:AssumeRoleWithCertificate on the role alias"
            ),
        ),
        404 => (
            ErrorKind::RoleAliasUnknown,
            format!(
                "the role alias {alias:?} does not exist in this account and region \
                 (`aws iot list-role-aliases`)"
            ),
        ),
        400 => (
            ErrorKind::AccessDenied,
            format!(
                "the role behind the role alias {alias:?} cannot be assumed (does it exist, \
                 trust credentials.iot.amazonaws.com, and allow the alias's duration?)"
            ),
        ),
        429 | 500..=599 => (
            ErrorKind::Unreachable,
            "the IoT credentials endpoint is throttling or failing; retry later".to_owned(),
        ),
        _ => (
            ErrorKind::InvalidResponse,
            "unexpected answer from the IoT credentials endpoint".to_owned(),
        ),
    };
    Err(Error::new(
        kind,
        format!("{what} (the endpoint said {said})"),
    ))
}

/// The role alias as a path segment (aliases are `[\w=,@-]+`, which only `=`, `,` and `@`
/// would need escaping in; they are allowed in a path as they are, so this only guards
/// against a caller's stray `/`, `?`, `#`, `%` and spaces).
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~=,@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            endpoint: Endpoint::parse("example.com").unwrap(),
            role_alias: "CamAlias".into(),
            thing_name: "front-door".into(),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn endpoints_are_host_names_with_an_optional_port_and_scheme() {
        let e = |t: &str| Endpoint::parse(t).map(|e| (e.host, e.port));
        assert_eq!(
            e("a.credentials.iot.us-west-2.amazonaws.com").unwrap().1,
            443
        );
        assert_eq!(
            e("https://127.0.0.1:8443/").unwrap(),
            ("127.0.0.1".into(), 8443)
        );
        assert_eq!(e("[::1]:9").unwrap(), ("::1".into(), 9));
        for bad in ["", "https://", "http://x", "x/y", "x:port", "u@x", "[::1"] {
            let err = Endpoint::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{bad}");
        }
    }

    #[test]
    fn credentials_are_read_from_the_answer() {
        let body = br#"{"credentials":{"accessKeyId":"ASIAX","secretAccessKey":"s","sessionToken":"t","expiration":"2030-01-02T03:04:05Z"}}"#;
        let fetched = interpret(http::StatusCode::OK, body, &request()).unwrap();
        assert_eq!(fetched.access_key_id, "ASIAX");
        assert_eq!(fetched.session_token, "t");
        assert_eq!(
            fetched.expiration,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_553_445)
        );
        let bad_time = br#"{"credentials":{"accessKeyId":"A","secretAccessKey":"s","sessionToken":"t","expiration":"soon"}}"#;
        let err = interpret(http::StatusCode::OK, bad_time, &request()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponse);
    }

    /// The service's refusals (status and message, as the IoT credential provider sends them).
    #[test]
    fn refusals_map_to_what_to_fix() {
        let cases: [(u16, &str, ErrorKind); 7] = [
            (
                403,
                "Invalid thing name passed",
                ErrorKind::ThingNotAttached,
            ),
            (
                403,
                "Certificate is invalid on this endpoint",
                ErrorKind::CertificateRefused,
            ),
            (403, "Access Denied", ErrorKind::AccessDenied),
            (
                404,
                "Role alias does not exist",
                ErrorKind::RoleAliasUnknown,
            ),
            (
                400,
                "Unable to assume the role, or the role to assume does not exist",
                ErrorKind::AccessDenied,
            ),
            (503, "Service Unavailable", ErrorKind::Unreachable),
            (302, "moved", ErrorKind::InvalidResponse),
        ];
        for (status, message, kind) in cases {
            let body = serde_json::json!({ "message": message }).to_string();
            let err = interpret(
                http::StatusCode::from_u16(status).unwrap(),
                body.as_bytes(),
                &request(),
            )
            .unwrap_err();
            assert_eq!(err.kind(), kind, "{status} {message}");
            assert!(err.to_string().contains(message), "{err}");
        }
        let thing = interpret(
            http::StatusCode::FORBIDDEN,
            br#"{"message":"Invalid thing name passed"}"#,
            &request(),
        )
        .unwrap_err();
        assert!(thing.to_string().contains("\"front-door\""), "{thing}");
    }

    #[test]
    fn role_aliases_are_escaped_in_the_path() {
        assert_eq!(percent_encode("Cam_Alias-1=a,b@c"), "Cam_Alias-1=a,b@c");
        assert_eq!(percent_encode("a/b c?"), "a%2Fb%20c%3F");
    }
}
