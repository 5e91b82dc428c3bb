//! The SigV4-presigned signaling URL, as a pure function of its inputs (no clock, no I/O), so
//! it can be checked against other signers for fixed credentials and time.
//!
//! `GET <wss endpoint>/?X-Amz-ChannelARN=<arn>[&X-Amz-ClientId=<id>]` signed for service
//! `kinesisvideo` in the channel's region with the signature in the query, `host` as the only
//! signed header, and the session token inside the signed query (KVS signaling requires it
//! there, unlike S3).

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SessionTokenMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;

use crate::error::{Error, ErrorKind};

/// The SigV4 service name of every KVS API, signaling included.
pub const SIGNING_NAME: &str = "kinesisvideo";
/// The longest validity SigV4 allows for a presigned URL.
pub const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// What a presigned signaling URL is made of.
#[derive(Debug, Clone)]
pub struct PresignInput<'a> {
    /// The channel's WSS endpoint, `wss://host[:port][/path]` (`ws://` for a local emulator
    /// run with plain HTTP).
    pub endpoint: &'a str,
    /// The channel ARN (`X-Amz-ChannelARN`).
    pub channel_arn: &'a str,
    /// The viewer's id (`X-Amz-ClientId`); `None` for the master.
    pub client_id: Option<&'a str>,
    /// The signing region (the channel's).
    pub region: &'a str,
    /// The credentials; a session token is signed into the query.
    pub credentials: &'a Credentials,
    /// The signing time.
    pub time: SystemTime,
    /// How long the URL is valid (the JS SDK uses 299 s).
    pub expires_in: Duration,
}

/// A presigned URL. It is a bearer credential while it is valid, so `Debug` and `Display`
/// show it with the signature and the session token replaced by `**`.
#[derive(Clone, PartialEq, Eq)]
pub struct PresignedUrl(String);

impl PresignedUrl {
    /// The full URL, signature included. Do not log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL with `X-Amz-Signature` and `X-Amz-Security-Token` values hidden.
    pub fn redacted(&self) -> String {
        let Some((base, query)) = self.0.split_once('?') else {
            return self.0.clone();
        };
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name @ ("X-Amz-Signature" | "X-Amz-Security-Token"), _)) => {
                    format!("{name}=**")
                }
                _ => pair.to_owned(),
            })
            .collect();
        format!("{base}?{}", query.join("&"))
    }
}

impl fmt::Debug for PresignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PresignedUrl")
            .field(&self.redacted())
            .finish()
    }
}

impl fmt::Display for PresignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Build the presigned URL.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use aws_credential_types::Credentials;
/// use kvs_webrtc_signaling::presign::{presign, PresignInput};
///
/// let credentials = Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "doc");
/// let url = presign(&PresignInput {
///     endpoint: "wss://v-1234abcd.kinesisvideo.us-west-2.amazonaws.com",
///     channel_arn: "arn:aws:kinesisvideo:us-west-2:111122223333:channel/cam/1700000000000",
///     client_id: None,
///     region: "us-west-2",
///     credentials: &credentials,
///     time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
///     expires_in: Duration::from_secs(299),
/// })?;
/// assert!(url.as_str().contains("X-Amz-Security-Token=token"));
/// assert!(url.to_string().contains("X-Amz-Signature=**"));
/// # Ok::<(), kvs_webrtc_signaling::Error>(())
/// ```
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for an endpoint that is not `wss://`/`ws://` or already has a
/// query, or an expiry of zero or above seven days.
pub fn presign(input: &PresignInput<'_>) -> Result<PresignedUrl, Error> {
    let invalid = |why: String| Error::new(ErrorKind::InvalidInput, why);
    let endpoint = input.endpoint;
    let rest = endpoint
        .strip_prefix("wss://")
        .or_else(|| endpoint.strip_prefix("ws://"))
        .ok_or_else(|| {
            invalid(format!(
                "signaling endpoint `{endpoint}` is not a wss:// URL"
            ))
        })?;
    if endpoint.contains('?') || endpoint.contains('#') {
        return Err(invalid(format!(
            "signaling endpoint `{endpoint}` must not carry a query or fragment"
        )));
    }
    let (host, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    if host.is_empty() {
        return Err(invalid(format!(
            "signaling endpoint `{endpoint}` has no host"
        )));
    }
    if input.expires_in.is_zero() || input.expires_in > MAX_EXPIRY {
        return Err(invalid(format!(
            "a presigned URL must be valid for 1 s to 7 days, not {:?}",
            input.expires_in
        )));
    }
    let scheme = &endpoint[..endpoint.len() - rest.len()];
    let mut url = format!(
        "{scheme}{host}{path}?X-Amz-ChannelARN={}",
        uri_encode(input.channel_arn)
    );
    if let Some(id) = input.client_id {
        url.push_str("&X-Amz-ClientId=");
        url.push_str(&uri_encode(id));
    }

    let identity = input.credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(input.expires_in);
    settings.session_token_mode = SessionTokenMode::Include;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(input.region)
        .name(SIGNING_NAME)
        .time(input.time)
        .settings(settings)
        .build()
        .map_err(|e| invalid("the signing parameters are incomplete".into()).with_source(e))?
        .into();
    let signable = SignableRequest::new(
        "GET",
        &url,
        std::iter::once(("host", host)),
        SignableBody::Bytes(b""),
    )
    .map_err(|e| invalid(format!("`{endpoint}` cannot be signed")).with_source(e))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| invalid(format!("`{endpoint}` cannot be signed")).with_source(e))?
        .into_parts();
    let mut request = http::Request::builder()
        .method("GET")
        .uri(&url)
        .body(())
        .map_err(|e| invalid(format!("`{endpoint}` is not a valid URL")).with_source(e))?;
    instructions.apply_to_request_http1x(&mut request);
    Ok(PresignedUrl(request.uri().to_string()))
}

/// RFC 3986 percent-encoding of everything but unreserved characters (what SigV4 and
/// `encodeURIComponent` agree on for ARNs and client ids).
fn uri_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:kinesisvideo:us-west-2:111122223333:channel/cam/1700000000000";

    fn input<'a>(credentials: &'a Credentials, endpoint: &'a str) -> PresignInput<'a> {
        PresignInput {
            endpoint,
            channel_arn: ARN,
            client_id: Some("viewer-1"),
            region: "us-west-2",
            credentials,
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_575_158_400), // 2019-12-01
            expires_in: Duration::from_secs(299),
        }
    }

    fn query(url: &str) -> Vec<(String, String)> {
        let (_, q) = url.split_once('?').unwrap();
        q.split('&')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    #[test]
    fn the_url_carries_every_sigv4_query_parameter() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", Some("tok/en+=".into()), None, "t");
        let url = presign(&input(
            &creds,
            "wss://v-1.kinesisvideo.us-west-2.amazonaws.com",
        ))
        .unwrap();
        assert!(url
            .as_str()
            .starts_with("wss://v-1.kinesisvideo.us-west-2.amazonaws.com/?"));
        let q = query(url.as_str());
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("X-Amz-Algorithm"), Some("AWS4-HMAC-SHA256"));
        assert_eq!(
            get("X-Amz-Credential"),
            Some("AKIDEXAMPLE%2F20191201%2Fus-west-2%2Fkinesisvideo%2Faws4_request")
        );
        assert_eq!(get("X-Amz-Date"), Some("20191201T000000Z"));
        assert_eq!(get("X-Amz-Expires"), Some("299"));
        assert_eq!(get("X-Amz-SignedHeaders"), Some("host"));
        assert_eq!(get("X-Amz-Security-Token"), Some("tok%2Fen%2B%3D"));
        assert_eq!(get("X-Amz-ClientId"), Some("viewer-1"));
        assert_eq!(get("X-Amz-ChannelARN"), Some(uri_encode(ARN).as_str()));
        assert_eq!(get("X-Amz-Signature").map(str::len), Some(64));
    }

    #[test]
    fn the_signature_covers_the_session_token() {
        let a = Credentials::new("AKID", "secret", Some("token-a".into()), None, "t");
        let b = Credentials::new("AKID", "secret", Some("token-b".into()), None, "t");
        let sig = |c| {
            let url = presign(&input(c, "wss://h")).unwrap();
            query(url.as_str())
                .into_iter()
                .find(|(k, _)| k == "X-Amz-Signature")
                .unwrap()
                .1
        };
        assert_ne!(sig(&a), sig(&b));
    }

    #[test]
    fn display_and_debug_hide_the_signature_and_token() {
        let creds = Credentials::new("AKID", "secret", Some("SECRETTOKEN".into()), None, "t");
        let url = presign(&input(&creds, "wss://h:8443")).unwrap();
        let signature = query(url.as_str())
            .into_iter()
            .find(|(k, _)| k == "X-Amz-Signature")
            .unwrap()
            .1;
        for shown in [url.to_string(), format!("{url:?}")] {
            assert!(!shown.contains(&signature), "{shown}");
            assert!(!shown.contains("SECRETTOKEN"), "{shown}");
            assert!(shown.contains("X-Amz-Signature=**"), "{shown}");
            assert!(shown.contains("X-Amz-ChannelARN="), "{shown}");
        }
    }

    #[test]
    fn bad_endpoints_and_expiries_are_refused() {
        let creds = Credentials::new("AKID", "secret", None, None, "t");
        for endpoint in ["https://h", "wss://", "wss://h/?a=b", "h"] {
            let err = presign(&input(&creds, endpoint)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{endpoint}");
        }
        let mut zero = input(&creds, "wss://h");
        zero.expires_in = Duration::ZERO;
        assert!(presign(&zero).is_err());
        let mut long = input(&creds, "wss://h");
        long.expires_in = MAX_EXPIRY + Duration::from_secs(1);
        assert!(presign(&long).is_err());
    }

    #[test]
    fn an_endpoint_path_is_kept() {
        let creds = Credentials::new("AKID", "secret", None, None, "t");
        let url = presign(&input(&creds, "ws://127.0.0.1:9000/signal")).unwrap();
        assert!(url
            .as_str()
            .starts_with("ws://127.0.0.1:9000/signal?X-Amz-"));
    }
}
