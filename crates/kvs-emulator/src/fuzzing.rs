//! Entry points for the workspace's fuzz targets (`crates/kvs-fuzz`), behind the `fuzzing`
//! feature: the emulator's pure parsers of what clients send, which are otherwise private.
//! Not part of the API.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use crate::config::AccessKey;
use crate::sigv4::{self, Expectation, ReceivedRequest};

/// A request as the SigV4 verifier sees it.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    /// The raw query without `?`.
    pub query: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: &'a [u8],
}

/// Who the verifier accepts, and when it is.
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'a> {
    /// The accepted key.
    pub key: &'a AccessKey,
    /// The region of the credential scope.
    pub region: &'a str,
    /// The verifier's clock.
    pub now: SystemTime,
}

impl Verifier<'_> {
    fn expectation<'k>(&self, keys: &'k [AccessKey]) -> Expectation<'k>
    where
        Self: 'k,
    {
        Expectation {
            keys,
            temporary: None,
            region: self.region,
            service: "kinesisvideo",
            now: self.now,
            max_skew: Duration::from_secs(300),
        }
    }

    /// `sigv4::verify_header`: a request signed in its `Authorization` header.
    pub fn verify_header(&self, request: &SignedRequest<'_>) -> Result<(), String> {
        let keys = std::slice::from_ref(self.key);
        sigv4::verify_header(&received(request), &self.expectation(keys))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// `sigv4::verify_query`: a presigned URL (the signaling WebSocket's).
    pub fn verify_query(&self, request: &SignedRequest<'_>) -> Result<(), String> {
        let keys = std::slice::from_ref(self.key);
        sigv4::verify_query(&received(request), &self.expectation(keys))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn received<'a>(request: &SignedRequest<'a>) -> ReceivedRequest<'a> {
    ReceivedRequest {
        method: request.method,
        path: request.path,
        query: request.query,
        headers: request.headers,
        body: request.body,
    }
}

/// `sigv4::decode_query`: the query's parameters, percent-decoded.
pub fn decode_query(raw: &str) -> Vec<(String, String)> {
    sigv4::decode_query(raw)
}

/// `sigv4::parse_amz_date` and back: `X-Amz-Date` as seconds since 1970, and that time
/// formatted again.
pub fn amz_date(text: &str) -> Option<(u64, String)> {
    let t = sigv4::parse_amz_date(text)?;
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Some((secs, sigv4::format_amz_date(t)))
}

/// `sigv4::format_amz_date`: `secs` since 1970 as `yyyyMMddTHHmmssZ`.
pub fn format_amz_date(secs: u64) -> String {
    sigv4::format_amz_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// `wire::parse_client_message` with the default payload limit, then `wire::decode_payload`
/// of the accepted payload and the STATUS_RESPONSE of a refusal: `Ok(action)` or the
/// STATUS_RESPONSE frame (if the frame had a usable correlation id).
pub fn client_frame(text: &str) -> Result<&'static str, Option<String>> {
    match crate::wire::parse_client_message(
        text,
        crate::config::Limits::default().max_message_payload,
    ) {
        Ok(message) => {
            let _ = crate::wire::decode_payload(&message.payload);
            Ok(message.action.as_str())
        }
        Err(rejection) => Err(crate::wire::status_response(&rejection)),
    }
}

/// `http_util::json_body`: a request body as a JSON object, or the refusal's code.
pub fn json_body(body: &[u8]) -> Result<usize, &'static str> {
    crate::http_util::json_body(body)
        .map(|map| map.len())
        .map_err(|e| e.code)
}

/// `http_util::origin_allowed`: whether a browser page of this `Origin` may use the inspection
/// API.
pub fn origin_allowed(headers: &HeaderMap) -> bool {
    crate::http_util::origin_allowed(headers)
}
