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

/// The archived-media and playback parsers of what clients send: `GetHLSStreamingSessionURL` /
/// `GetDASHStreamingSessionURL`'s request check and the session tokens made of it, the fragments
/// a session lists, `GetMedia`'s `StartSelector` and continuation tokens, and `ListFragments`'
/// selector and `NextToken`.
pub mod media_read {
    use serde_json::{Map, Value};

    use crate::playback::session;
    use crate::playback::token::{Claims, Protocol, TokenKey};
    pub use crate::store::disk::FragmentMeta;

    /// The number of a stream's first fragment (numbers count up by one from it).
    pub const FIRST_FRAGMENT_NUMBER: u128 = crate::store::disk::FIRST_FRAGMENT_NUMBER;

    /// `session::request_claims` for HLS (or DASH) on the stream `cam`, at `now_ms`: the
    /// session's claims as JSON, or the refusal's message.
    pub fn session_claims(
        dash: bool,
        body: &Map<String, Value>,
        now_ms: i64,
    ) -> Result<Value, String> {
        let protocol = if dash { Protocol::Dash } else { Protocol::Hls };
        session::request_claims(
            protocol,
            body,
            "cam",
            "arn:aws:kinesisvideo:us-west-2:111122223333:stream/cam/1",
            now_ms,
            session::MIN_EXPIRES_S,
        )
        .map(|claims| serde_json::to_value(claims).expect("claims serialize"))
        .map_err(|e| e.message)
    }

    fn claims_of(claims: &Value) -> Claims {
        serde_json::from_value(claims.clone()).expect("claims that session_claims made")
    }

    /// The key that signs session tokens.
    #[derive(Debug)]
    pub struct SessionKey(TokenKey);

    impl SessionKey {
        /// A key with these bytes.
        pub fn from_bytes(bytes: [u8; 32]) -> Self {
            Self(TokenKey::from_bytes(bytes))
        }

        /// The token of `claims` (as [`session_claims`] made them).
        pub fn sign(&self, claims: &Value) -> String {
            self.0.sign(&claims_of(claims))
        }

        /// The claims of `token` if this key signed it and it has not expired at `now_ms`.
        pub fn verify(&self, token: &str, now_ms: i64) -> Result<Value, String> {
            self.0
                .verify(token, now_ms)
                .map(|claims| serde_json::to_value(claims).expect("claims serialize"))
                .map_err(|e| e.to_string())
        }
    }

    /// What a session lists of a stream's fragments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Listed {
        /// Indexes into the fragments, oldest first.
        pub fragments: Vec<usize>,
        /// A discontinuity marker before each.
        pub discontinuity: Vec<bool>,
        /// `#EXT-X-DISCONTINUITY-SEQUENCE`.
        pub discontinuity_sequence: u64,
        /// `#EXT-X-ENDLIST`.
        pub ended: bool,
    }

    /// `session::select`: what the session `claims` lists of `stored` (oldest first) at
    /// `now_ms`, with each listed fragment's media sequence number.
    pub fn select(claims: &Value, stored: &[FragmentMeta], now_ms: i64) -> (Listed, Vec<u64>) {
        let selection = session::select(&claims_of(claims), stored, now_ms);
        let sequence = selection
            .listed
            .iter()
            .map(|&i| session::media_sequence(&stored[i]))
            .collect();
        (
            Listed {
                fragments: selection.listed,
                discontinuity: selection.discontinuity,
                discontinuity_sequence: selection.discontinuity_sequence,
                ended: selection.ended,
            },
            sequence,
        )
    }

    /// `get_media::parse_start`: the start, described, or the refusal's message.
    pub fn get_media_start(body: &Map<String, Value>) -> Result<String, String> {
        crate::get_media::parse_start(body)
            .map(|start| format!("{start:?}"))
            .map_err(|e| e.message)
    }

    /// `get_media::make_token`: the continuation token after fragment `number`.
    pub fn continuation_token(number: &str) -> String {
        crate::get_media::make_token(number)
    }

    /// `get_media::parse_token`: the fragment number a continuation token resumes after.
    pub fn parse_continuation_token(token: &str) -> Result<u128, String> {
        crate::get_media::parse_token(token).map_err(|e| e.message)
    }

    /// `archived_media::selector` of `member`: (producer timestamps, start ms, end ms), or the
    /// refusal's message.
    pub fn fragment_selector(
        body: &Map<String, Value>,
        member: &str,
    ) -> Result<Option<(bool, i64, i64)>, String> {
        crate::archived_media::selector(body, member)
            .map(|s| s.map(|s| (s.producer, s.start_ms, s.end_ms)))
            .map_err(|e| e.message)
    }

    /// `archived_media::make_token`: `ListFragments`' `NextToken` after fragment `after`.
    pub fn next_token(after: &str) -> String {
        crate::archived_media::make_token(after)
    }

    /// `archived_media::parse_token`: the fragment number a `NextToken` continues after.
    pub fn parse_next_token(token: &str) -> Result<u128, String> {
        crate::archived_media::parse_token(token).map_err(|e| e.message)
    }

    /// What a `GetImages` request samples, or the refusal's message.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ImagesSampling {
        /// The range's start, ms.
        pub start_ms: i64,
        /// Its end, ms.
        pub end_ms: i64,
        /// The sampling interval, ms.
        pub interval_ms: i64,
        /// Images per page.
        pub page: usize,
        /// The sampled times from the page's first on.
        pub times: Vec<i64>,
    }

    /// `GetImages`' `NextToken` for a page starting at `from_ms`.
    pub fn images_token(from_ms: i64) -> String {
        crate::images::make_token(from_ms)
    }

    /// `images::parse` and the times it samples.
    pub fn images_sampling(body: &Map<String, Value>) -> Result<ImagesSampling, String> {
        crate::images::sampling_of(body)
            .map(
                |(start_ms, end_ms, interval_ms, page, times)| ImagesSampling {
                    start_ms,
                    end_ms,
                    interval_ms,
                    page,
                    times,
                },
            )
            .map_err(|e| e.message)
    }
}
