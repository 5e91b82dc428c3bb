//! Verification of AWS Signature Version 4, in an `Authorization` header or in a presigned query.
//!
//! Written here because the crates that implement SigV4 (`aws-sigv4` among them) only *sign*;
//! none verifies a request received by a server. The canonical request follows the AWS rules the
//! SDKs apply to non-S3 services: the path is URI-encoded once more (double encoding), the query is
//! decoded, re-encoded with the unreserved set and sorted, header values are trimmed with inner runs
//! of spaces collapsed. The tests check the verifier against requests signed by `aws-sigv4`.
//!
//! Everything here is a pure function of the request, the accepted keys and `now`.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::AccessKey;
use crate::temporary_keys::TemporaryKeys;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const LONGEST_PRESIGN: u64 = 604_800;

/// The parts of a received request that SigV4 covers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReceivedRequest<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    /// The raw query string without `?` (may be empty).
    pub query: &'a str,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The request body.
    pub body: &'a [u8],
}

/// What the verifier expects besides the signature.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expectation<'a> {
    /// Accepted keys.
    pub keys: &'a [AccessKey],
    /// Temporary keys handed out at run time (accepted until they expire), if any.
    pub temporary: Option<&'a TemporaryKeys>,
    /// Region in the credential scope.
    pub region: &'a str,
    /// Service in the credential scope (`kinesisvideo` for every KVS API).
    pub service: &'a str,
    /// Current time.
    pub now: SystemTime,
    /// Largest accepted difference between `X-Amz-Date` and `now`.
    pub max_skew: Duration,
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthFailure {
    /// No signature at all.
    #[error("request is missing Authentication Token")]
    Missing,
    /// The signature parameters are malformed.
    #[error("{0}")]
    Malformed(String),
    /// The access key id is not one of the emulator's keys.
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey,
    /// The credential scope names another region or service.
    #[error("Credential should be scoped to a valid region and service: {0}")]
    WrongScope(String),
    /// The request's date is too far in the past, or a presigned URL has expired.
    #[error("Signature expired: {date} is now earlier than {limit}")]
    Expired {
        /// The request's `X-Amz-Date`.
        date: String,
        /// The earliest accepted date (or the expiry), same format.
        limit: String,
    },
    /// The request's date is too far in the future.
    #[error("Signature not yet current: {date} is still later than {limit}")]
    NotYetCurrent {
        /// The request's `X-Amz-Date`.
        date: String,
        /// The latest accepted date, same format.
        limit: String,
    },
    /// The session token is missing, not signed or not the key's.
    #[error("The security token included in the request is invalid.")]
    BadSessionToken,
    /// The key is a temporary one whose expiration has passed (AWS: `ExpiredTokenException`).
    #[error("The security token included in the request is expired")]
    ExpiredToken,
    /// The signature does not match.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
    )]
    SignatureMismatch,
}

/// The key a request was signed with.
#[derive(Debug, Clone)]
pub(crate) struct Signer {
    /// The key (a configured one, or a temporary one with its session token).
    pub key: AccessKey,
    /// For a temporary key, when it expires.
    pub expiration: Option<SystemTime>,
}

/// Verify a request signed with an `Authorization` header. Returns the key that signed it.
pub(crate) fn verify_header(
    req: &ReceivedRequest<'_>,
    expect: &Expectation<'_>,
) -> Result<Signer, AuthFailure> {
    let auth = req
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or(AuthFailure::Missing)?
        .to_str()
        .map_err(|_| AuthFailure::Malformed("Authorization header is not ASCII".into()))?;
    let rest = auth
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| AuthFailure::Malformed(format!("Authorization must use {ALGORITHM}")))?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| AuthFailure::Malformed("Authorization header is malformed".into()))?;
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let missing = |what: &str| {
        AuthFailure::Malformed(format!("Authorization header requires '{what}' parameter"))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let date = header_str(req.headers, "x-amz-date").ok_or_else(|| {
        AuthFailure::Malformed(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header"
                .into(),
        )
    })?;

    let scope = Scope::parse(credential)?;
    let key = scope.check(expect, date)?;
    check_clock(date, expect.now, expect.max_skew, None)?;

    let signed: Vec<&str> = signed_headers.split(';').collect();
    if !signed.contains(&"host") {
        return Err(AuthFailure::Malformed(
            "'Host' must be a signed header".into(),
        ));
    }
    let token = header_str(req.headers, "x-amz-security-token");
    check_token(
        &key,
        token,
        token.is_some() && signed.contains(&"x-amz-security-token"),
        expect.now,
    )?;

    let payload_hash = match header_str(req.headers, "x-amz-content-sha256") {
        Some("UNSIGNED-PAYLOAD") => "UNSIGNED-PAYLOAD".to_owned(),
        Some(claimed) => {
            let actual = hex::encode(Sha256::digest(req.body));
            if claimed != actual {
                return Err(AuthFailure::Malformed(
                    "The provided 'x-amz-content-sha256' header does not match what was computed."
                        .into(),
                ));
            }
            actual
        }
        None => hex::encode(Sha256::digest(req.body)),
    };
    let canonical = canonical_request(
        req,
        canonical_query(&decode_query(req.query), false),
        &signed,
        &payload_hash,
    )?;
    check_signature(&key.key, &scope, date, &canonical, signature)?;
    Ok(key)
}

/// Verify a presigned URL (SigV4 in the query string), as the signaling WebSocket uses.
pub(crate) fn verify_query(
    req: &ReceivedRequest<'_>,
    expect: &Expectation<'_>,
) -> Result<Signer, AuthFailure> {
    let params = decode_query(req.query);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if get("X-Amz-Signature").is_none() && get("X-Amz-Credential").is_none() {
        return Err(AuthFailure::Missing);
    }
    let missing = |what: &str| {
        AuthFailure::Malformed(format!("AWS query-string parameters must include '{what}'"))
    };
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(missing("X-Amz-Algorithm"));
    }
    let credential = get("X-Amz-Credential").ok_or_else(|| missing("X-Amz-Credential"))?;
    let date = get("X-Amz-Date").ok_or_else(|| missing("X-Amz-Date"))?;
    let signed_headers =
        get("X-Amz-SignedHeaders").ok_or_else(|| missing("X-Amz-SignedHeaders"))?;
    let signature = get("X-Amz-Signature").ok_or_else(|| missing("X-Amz-Signature"))?;
    let expires: u64 = get("X-Amz-Expires")
        .ok_or_else(|| missing("X-Amz-Expires"))?
        .parse()
        .map_err(|_| AuthFailure::Malformed("X-Amz-Expires should be a number".into()))?;
    if expires == 0 || expires > LONGEST_PRESIGN {
        return Err(AuthFailure::Malformed(format!(
            "X-Amz-Expires must be between 1 and {LONGEST_PRESIGN} seconds"
        )));
    }

    let scope = Scope::parse(credential)?;
    let key = scope.check(expect, date)?;
    check_clock(
        date,
        expect.now,
        expect.max_skew,
        Some(Duration::from_secs(expires)),
    )?;
    // The signaling service wants the token inside the signed query (protocol notes §2.1); a
    // token in the query is always part of the canonical query, so it is signed when present.
    check_token(&key, get("X-Amz-Security-Token"), true, expect.now)?;

    let signed: Vec<&str> = signed_headers.split(';').collect();
    if !signed.contains(&"host") {
        return Err(AuthFailure::Malformed(
            "'Host' must be a signed header".into(),
        ));
    }
    let empty_hash = hex::encode(Sha256::digest(b""));
    let canonical = canonical_request(req, canonical_query(&params, true), &signed, &empty_hash)?;
    check_signature(&key.key, &scope, date, &canonical, signature)?;
    Ok(key)
}

struct Scope<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

impl<'a> Scope<'a> {
    fn parse(credential: &'a str) -> Result<Self, AuthFailure> {
        let parts: Vec<&str> = credential.split('/').collect();
        match parts.as_slice() {
            [id, date, region, service, "aws4_request"] => Ok(Self {
                access_key_id: id,
                date,
                region,
                service,
            }),
            _ => Err(AuthFailure::Malformed(format!(
                "Credential should be of the form <key>/<date>/<region>/<service>/aws4_request, got {} part(s)",
                parts.len()
            ))),
        }
    }

    fn check(&self, expect: &Expectation<'_>, date: &str) -> Result<Signer, AuthFailure> {
        let configured = expect
            .keys
            .iter()
            .find(|k| k.access_key_id == self.access_key_id)
            .map(|k| Signer {
                key: k.clone(),
                expiration: None,
            });
        let key = configured
            .or_else(|| {
                let t = expect.temporary?.get(self.access_key_id)?;
                tracing::debug!(thing = %t.thing, access_key_id = self.access_key_id, "signed with temporary credentials");
                Some(Signer {
                    key: t.key,
                    expiration: Some(t.expiration),
                })
            })
            .ok_or(AuthFailure::UnknownAccessKey)?;
        if self.region != expect.region || self.service != expect.service {
            return Err(AuthFailure::WrongScope(format!(
                "expected {}/{}, got {}/{}",
                expect.region, expect.service, self.region, self.service
            )));
        }
        if !date.starts_with(self.date) || self.date.len() != 8 {
            return Err(AuthFailure::Malformed(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
                self.date,
                date.get(..8).unwrap_or(date)
            )));
        }
        Ok(key)
    }

    fn string(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn check_token(
    signer: &Signer,
    token: Option<&str>,
    signed: bool,
    now: SystemTime,
) -> Result<(), AuthFailure> {
    match (&signer.key.session_token, token) {
        (None, None) => Ok(()),
        (Some(expected), Some(got))
            if signed && constant_time_eq(expected.as_bytes(), got.as_bytes()) =>
        {
            // As STS credentials: the token is checked first, then its expiration.
            match signer.expiration {
                Some(expiration) if now >= expiration => Err(AuthFailure::ExpiredToken),
                _ => Ok(()),
            }
        }
        _ => Err(AuthFailure::BadSessionToken),
    }
}

fn check_clock(
    date: &str,
    now: SystemTime,
    max_skew: Duration,
    expires: Option<Duration>,
) -> Result<(), AuthFailure> {
    let signed_at = parse_amz_date(date).ok_or_else(|| {
        AuthFailure::Malformed(format!(
            "X-Amz-Date '{date}' is not of the form yyyyMMdd'T'HHmmss'Z'"
        ))
    })?;
    let earliest = match expires {
        // A presigned URL is valid from its date until date + expires.
        Some(expires) => {
            let expiry = signed_at + expires;
            if now > expiry {
                return Err(AuthFailure::Expired {
                    date: date.to_owned(),
                    limit: format_amz_date(now),
                });
            }
            None
        }
        None => Some(now.checked_sub(max_skew).unwrap_or(SystemTime::UNIX_EPOCH)),
    };
    if let Some(earliest) = earliest {
        if signed_at < earliest {
            return Err(AuthFailure::Expired {
                date: date.to_owned(),
                limit: format_amz_date(earliest),
            });
        }
    }
    let latest = now + max_skew;
    if signed_at > latest {
        return Err(AuthFailure::NotYetCurrent {
            date: date.to_owned(),
            limit: format_amz_date(latest),
        });
    }
    Ok(())
}

fn check_signature(
    key: &AccessKey,
    scope: &Scope<'_>,
    date: &str,
    canonical: &str,
    claimed: &str,
) -> Result<(), AuthFailure> {
    let string_to_sign = format!(
        "{ALGORITHM}\n{date}\n{}\n{}",
        scope.string(),
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(
        format!("AWS4{}", key.secret_access_key).as_bytes(),
        scope.date.as_bytes(),
    );
    let k_region = hmac(&k_date, scope.region.as_bytes());
    let k_service = hmac(&k_region, scope.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let expected = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
    if constant_time_eq(expected.as_bytes(), claimed.as_bytes()) {
        Ok(())
    } else {
        tracing::debug!(access_key_id = %key.access_key_id, "SigV4 signature mismatch");
        Err(AuthFailure::SignatureMismatch)
    }
}

fn canonical_request(
    req: &ReceivedRequest<'_>,
    query: String,
    signed: &[&str],
    payload_hash: &str,
) -> Result<String, AuthFailure> {
    let mut headers = String::new();
    for name in signed {
        let values: Vec<String> = req
            .headers
            .get_all(*name)
            .iter()
            .map(|v| canonical_header_value(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        if values.is_empty() {
            return Err(AuthFailure::Malformed(format!(
                "signed header '{name}' is not present"
            )));
        }
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&values.join(","));
        headers.push('\n');
    }
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_path(req.path),
        query,
        headers,
        signed.join(";"),
        payload_hash
    ))
}

/// The received (already encoded) path normalized as the SDKs do before signing (RFC 3986
/// section 5.2.4: `.` and `..` segments resolved, empty segments dropped, a trailing slash
/// kept), then each segment encoded once more.
fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let trailing_slash = ["/", "/.", "/..", "/./", "/../"]
        .iter()
        .any(|end| path.ends_with(end));
    let mut canonical = String::with_capacity(path.len() + 8);
    for segment in &segments {
        canonical.push('/');
        canonical.push_str(&uri_encode(segment));
    }
    if canonical.is_empty() || trailing_slash {
        canonical.push('/');
    }
    canonical
}

fn canonical_query(params: &[(String, String)], drop_signature: bool) -> String {
    let mut params: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !(drop_signature && k == "X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    params.sort();
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Query parameters, percent-decoded (`+` stays `+`, as AWS treats it).
pub(crate) fn decode_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// SigV4 URI encoding: everything except `A-Za-z0-9-_.~` becomes `%XX` (upper-case hex).
pub(crate) fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn canonical_header_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parse `yyyyMMddTHHmmssZ`.
pub(crate) fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year as i64, month as u32, day as u32);
    let secs = u64::try_from(days).ok()? * 86_400 + hour * 3600 + minute * 60 + second;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Format as `yyyyMMddTHHmmssZ`.
pub(crate) fn format_amz_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// Howard Hinnant's civil-date algorithms.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(keys: &[AccessKey]) -> Expectation<'_> {
        Expectation {
            keys,
            temporary: None,
            region: "us-west-2",
            service: "kinesisvideo",
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            max_skew: Duration::from_secs(300),
        }
    }

    fn request<'a>(headers: &'a HeaderMap, query: &'a str) -> ReceivedRequest<'a> {
        ReceivedRequest {
            method: "POST",
            path: "/op",
            query,
            headers,
            body: b"{}",
        }
    }

    #[test]
    fn garbage_authorization_is_refused_without_panicking() {
        let keys = [AccessKey::new("AKIDEXAMPLE", "secret")];
        let exp = expect(&keys);
        let none = HeaderMap::new();
        assert_eq!(
            verify_header(&request(&none, ""), &exp).unwrap_err(),
            AuthFailure::Missing
        );
        for garbage in [
            "Bearer abc",
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential",
            "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host, Signature=00",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::AUTHORIZATION, garbage.parse().unwrap());
            headers.insert("x-amz-date", "not-a-date".parse().unwrap());
            let err = verify_header(&request(&headers, ""), &exp).unwrap_err();
            assert!(matches!(err, AuthFailure::Malformed(_)), "{garbage}: {err:?}");
        }
        for query in [
            "%",
            "X-Amz-Signature=%zz",
            "X-Amz-Credential=&X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "==&&",
        ] {
            assert!(
                verify_query(&request(&none, query), &exp).is_err(),
                "{query}"
            );
        }
    }

    /// A request signed by `aws-sigv4` for `path`, verified here.
    fn signed_by_aws_sigv4_with_path(path: &str) -> Result<&'static str, AuthFailure> {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        use aws_sigv4::sign::v4;
        let credentials =
            aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-west-2")
            .name("kinesisvideo")
            .time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let url = format!("https://127.0.0.1:4443{path}");
        let signable = SignableRequest::new(
            "POST",
            &url,
            [("host", "127.0.0.1:4443")].into_iter(),
            SignableBody::Bytes(b"{}"),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut request = http::Request::builder()
            .method("POST")
            .uri(&url)
            .header("host", "127.0.0.1:4443")
            .body(())
            .unwrap();
        instructions.apply_to_request_http1x(&mut request);
        let keys = [AccessKey::new("AKIDEXAMPLE", "secret")];
        let received = ReceivedRequest {
            method: "POST",
            path: request.uri().path(),
            query: "",
            headers: request.headers(),
            body: b"{}",
        };
        verify_header(&received, &expect(&keys)).map(|signer| {
            assert_eq!(signer.key.access_key_id, "AKIDEXAMPLE");
            "accepted"
        })
    }

    /// Sign a request with `credentials` at the test's `now` (header or presigned query) and
    /// verify it against `store` (no configured keys).
    fn signed_with_temporary(
        credentials: aws_credential_types::Credentials,
        store: &TemporaryKeys,
        now: SystemTime,
        presigned: bool,
    ) -> Result<Signer, AuthFailure> {
        use aws_sigv4::http_request::{
            sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
        };
        use aws_sigv4::sign::v4;
        let identity = credentials.into();
        let mut settings = SigningSettings::default();
        if presigned {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(Duration::from_secs(300));
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-west-2")
            .name("kinesisvideo")
            .time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let url = "https://127.0.0.1:4443/op";
        let body: &[u8] = if presigned { b"" } else { b"{}" };
        let signable = SignableRequest::new(
            "POST",
            url,
            [("host", "127.0.0.1:4443")].into_iter(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut request = http::Request::builder()
            .method("POST")
            .uri(url)
            .header("host", "127.0.0.1:4443")
            .body(())
            .unwrap();
        instructions.apply_to_request_http1x(&mut request);
        let received = ReceivedRequest {
            method: "POST",
            path: request.uri().path(),
            query: request.uri().query().unwrap_or(""),
            headers: request.headers(),
            body,
        };
        let mut exp = expect(&[]);
        exp.temporary = Some(store);
        exp.now = now;
        if presigned {
            verify_query(&received, &exp)
        } else {
            verify_header(&received, &exp)
        }
    }

    fn credentials_of(
        k: &crate::temporary_keys::TemporaryKey,
    ) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            k.key.access_key_id.clone(),
            k.key.secret_access_key.clone(),
            k.key.session_token.clone(),
            None,
            "test",
        )
    }

    #[test]
    fn temporary_keys_are_accepted_until_they_expire_then_refused_as_expired() {
        let signed_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let store = TemporaryKeys::default();
        let issued = store.issue("cam-1", Duration::from_secs(60), signed_at);
        for presigned in [false, true] {
            let signer =
                signed_with_temporary(credentials_of(&issued), &store, signed_at, presigned)
                    .unwrap();
            assert_eq!(
                signer.expiration,
                Some(issued.expiration),
                "presigned {presigned}"
            );
            assert_eq!(signer.key.access_key_id, issued.key.access_key_id);
            // The same request once the key has expired (still within the clock skew).
            let later = signed_at + Duration::from_secs(60);
            assert_eq!(
                signed_with_temporary(credentials_of(&issued), &store, later, presigned)
                    .unwrap_err(),
                AuthFailure::ExpiredToken,
                "presigned {presigned}"
            );
        }
        assert_eq!(
            AuthFailure::ExpiredToken.to_string(),
            "The security token included in the request is expired"
        );
    }

    #[test]
    fn temporary_keys_need_their_own_session_token() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let store = TemporaryKeys::default();
        let issued = store.issue("cam-1", Duration::from_secs(60), now);
        let other = store.issue("cam-1", Duration::from_secs(60), now);
        for presigned in [false, true] {
            let no_token = aws_credential_types::Credentials::new(
                issued.key.access_key_id.clone(),
                issued.key.secret_access_key.clone(),
                None,
                None,
                "test",
            );
            assert_eq!(
                signed_with_temporary(no_token, &store, now, presigned).unwrap_err(),
                AuthFailure::BadSessionToken
            );
            let wrong_token = aws_credential_types::Credentials::new(
                issued.key.access_key_id.clone(),
                issued.key.secret_access_key.clone(),
                other.key.session_token.clone(),
                None,
                "test",
            );
            assert_eq!(
                signed_with_temporary(wrong_token, &store, now, presigned).unwrap_err(),
                AuthFailure::BadSessionToken
            );
            let unknown = aws_credential_types::Credentials::new(
                "ASIAUNKNOWN",
                "secret",
                issued.key.session_token.clone(),
                None,
                "test",
            );
            assert_eq!(
                signed_with_temporary(unknown, &store, now, presigned).unwrap_err(),
                AuthFailure::UnknownAccessKey
            );
        }
    }

    /// Found by the `emulator_sigv4` fuzz target (issue #25): the SDKs normalize the path
    /// (RFC 3986 dot segments, empty segments) before signing and AWS verifies the same way;
    /// the emulator did not, so a request to `//op` signed by the SDK was refused.
    #[test]
    fn paths_are_normalized_as_the_sdks_sign_them() {
        for path in [
            "/op", "//w807", "/a//b/", "/a/./b", "/a/../b", "/a/b/..", "/%2Fx//y",
        ] {
            assert_eq!(
                signed_by_aws_sigv4_with_path(path),
                Ok("accepted"),
                "{path}"
            );
        }
    }

    #[test]
    fn amz_dates_round_trip_and_garbage_is_none() {
        let t = parse_amz_date("20231114T221320Z").unwrap();
        assert_eq!(
            t,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        assert_eq!(format_amz_date(t), "20231114T221320Z");
        for bad in [
            "",
            "20231114",
            "20231314T000000Z",
            "2023111xT221320Z",
            "20231114T256000Z",
            "ääää1114T221320Z",
        ] {
            assert!(parse_amz_date(bad).is_none(), "{bad}");
        }
    }
}
