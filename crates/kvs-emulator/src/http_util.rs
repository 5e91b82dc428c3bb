//! What every emulated AWS endpoint does the same way: request ids, `Date`, CORS, error bodies,
//! bounded body reads and SigV4 checks.

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::Request;

use crate::api_error::{Api, ApiError};
use crate::http_server::HttpResponse;
use crate::sigv4::{self, AuthFailure, Expectation, ReceivedRequest};

/// A request read in full.
pub(crate) struct ReadRequest {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ReadRequest {
    pub(crate) fn signed_view(&self) -> ReceivedRequest<'_> {
        ReceivedRequest {
            method: self.method.as_str(),
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// Bounds on reading request bodies, shared by a listener's connections: a time limit, and a cap
/// on how many bodies may be arriving at once (half the connection slots), so that clients
/// sending bodies slowly cannot hold every slot (issue #13 item 2).
#[derive(Debug)]
pub(crate) struct BodyReads {
    in_flight: tokio::sync::Semaphore,
    timeout: std::time::Duration,
}

impl BodyReads {
    pub(crate) fn new(max_connections: usize, timeout: std::time::Duration) -> Self {
        Self {
            in_flight: tokio::sync::Semaphore::new((max_connections / 2).max(1)),
            timeout,
        }
    }
}

/// How long a body may take before it counts as slow.
const PROMPT_BODY: std::time::Duration = std::time::Duration::from_millis(200);

/// Read a request body of at most `limit` bytes, within the time limit of `bounds`.
pub(crate) async fn read(
    req: Request<Incoming>,
    limit: usize,
    bounds: &BodyReads,
) -> Result<ReadRequest, HttpResponse> {
    let (parts, body) = req.into_parts();
    // A body that arrives with its headers (every well-behaved client) needs nothing more; one
    // still arriving after a moment takes one of the limited slow-body permits for the rest of
    // the time limit, or is refused at once when none is free.
    let mut collect = std::pin::pin!(Limited::new(body, limit).collect());
    let collected = match tokio::time::timeout(PROMPT_BODY, &mut collect).await {
        Ok(collected) => collected,
        Err(_) => {
            let Ok(_slow) = bounds.in_flight.try_acquire() else {
                return Err(typed_plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailableException",
                    "too many request bodies are arriving slowly; retry",
                ));
            };
            let rest = bounds.timeout.saturating_sub(PROMPT_BODY);
            match tokio::time::timeout(rest, collect).await {
                Ok(collected) => collected,
                Err(_) => {
                    return Err(typed_plain(
                        StatusCode::REQUEST_TIMEOUT,
                        "RequestTimeoutException",
                        &format!(
                            "the request body did not arrive within {:?}",
                            bounds.timeout
                        ),
                    ))
                }
            }
        }
    };
    let body = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(typed_plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "ValidationException",
                &format!("request body larger than {limit} bytes"),
            ))
        }
        // A body that does not frame (bad chunked encoding, a connection cut mid-body).
        Err(e) => {
            return Err(typed_plain(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                &format!("the request body could not be read: {e}"),
            ))
        }
    };
    Ok(ReadRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts.headers,
        body,
    })
}

/// Check the request's SigV4 header signature; map failures to the API's error.
pub(crate) fn authenticate(
    req: &ReadRequest,
    api: Api,
    expect: &Expectation<'_>,
) -> Result<(), ApiError> {
    sigv4::verify_header(&req.signed_view(), expect)
        .map(|_| ())
        .map_err(|f| auth_error(api, &f))
}

/// The error AWS returns for an authentication failure: the API's AccessDenied, but always 403
/// for clock errors, whose "Signature expired" text clients match on (protocol notes §8.2).
pub(crate) fn auth_error(api: Api, failure: &AuthFailure) -> ApiError {
    if *failure == AuthFailure::ExpiredToken {
        return ApiError::expired_token();
    }
    let mut err = ApiError::access_denied(api, failure.to_string());
    if matches!(
        failure,
        AuthFailure::Expired { .. } | AuthFailure::NotYetCurrent { .. }
    ) {
        err.status = StatusCode::FORBIDDEN;
    }
    err
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn common_headers(resp: &mut HttpResponse, request_headers: Option<&HeaderMap>) {
    let h = resp.headers_mut();
    h.insert(
        "x-amzn-RequestId",
        HeaderValue::from_str(&request_id()).expect("uuid is ASCII"),
    );
    h.insert(
        http::header::DATE,
        HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now()))
            .expect("HTTP date is ASCII"),
    );
    cors(h, request_headers);
}

fn cors(h: &mut HeaderMap, request_headers: Option<&HeaderMap>) {
    let origin = request_headers
        .and_then(|r| r.get(http::header::ORIGIN).cloned())
        .unwrap_or_else(|| HeaderValue::from_static("*"));
    h.insert("access-control-allow-origin", origin);
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("x-amzn-ErrorType,x-amzn-RequestId,x-amzn-ErrorMessage,Date"),
    );
}

/// A CORS preflight answer that reflects the requested method and headers.
pub(crate) fn preflight(headers: &HeaderMap) -> HttpResponse {
    let mut resp = empty(StatusCode::OK);
    let h = resp.headers_mut();
    cors(h, Some(headers));
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET,POST,OPTIONS"),
    );
    if let Some(requested) = headers.get("access-control-request-headers") {
        h.insert("access-control-allow-headers", requested.clone());
    }
    h.insert("access-control-max-age", HeaderValue::from_static("600"));
    resp
}

fn empty(status: StatusCode) -> HttpResponse {
    let mut resp = crate::http_server::full_response(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// 200 with a JSON body.
pub(crate) fn json(value: &serde_json::Value, request_headers: &HeaderMap) -> HttpResponse {
    let mut resp = crate::http_server::full_response(Full::new(Bytes::from(value.to_string())));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    common_headers(&mut resp, Some(request_headers));
    resp
}

/// 200 with a media body of `content_type`.
pub(crate) fn media(
    content_type: &'static str,
    body: Vec<u8>,
    request_headers: &HeaderMap,
) -> HttpResponse {
    let mut resp = crate::http_server::full_response(Full::new(Bytes::from(body)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    common_headers(&mut resp, Some(request_headers));
    resp
}

/// 200 with a chunked media body of `content_type`, read from `body` until its sender drops.
pub(crate) fn media_stream(
    content_type: &'static str,
    body: tokio::sync::mpsc::Receiver<Bytes>,
    request_headers: &HeaderMap,
) -> HttpResponse {
    let mut resp = HttpResponse::new(crate::http_server::ResponseBody::channel(body));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    common_headers(&mut resp, Some(request_headers));
    resp
}

/// 200 with an empty body (JoinStorageSession).
pub(crate) fn ok_empty(request_headers: &HeaderMap) -> HttpResponse {
    let mut resp = empty(StatusCode::OK);
    common_headers(&mut resp, Some(request_headers));
    resp
}

/// An AWS error in the API's restJson1 form.
pub(crate) fn error(api: Api, err: &ApiError, request_headers: Option<&HeaderMap>) -> HttpResponse {
    let mut resp = crate::http_server::full_response(Full::new(Bytes::from(err.json_body(api))));
    *resp.status_mut() = err.status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&err.error_type_header(api)) {
        h.insert("x-amzn-ErrorType", v);
    }
    common_headers(&mut resp, request_headers);
    resp
}

/// The XML AccessDenied AWS returns when an operation is sent to the wrong endpoint (§8.2).
pub(crate) fn wrong_endpoint(request_headers: &HeaderMap) -> HttpResponse {
    let body = "<AccessDeniedException>\n  <Message>Unable to determine service/operation name to be authorized</Message>\n</AccessDeniedException>\n";
    let mut resp = crate::http_server::full_response(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    common_headers(&mut resp, Some(request_headers));
    resp
}

/// A plain-text answer for things outside any AWS API (e.g. a body that is too large).
pub(crate) fn plain(status: StatusCode, text: &str) -> HttpResponse {
    let mut resp = crate::http_server::full_response(Full::new(Bytes::from(text.to_owned())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    common_headers(&mut resp, None);
    resp
}

/// A plain-text error that also names its type in `x-amzn-ErrorType`, as AWS errors do.
fn typed_plain(status: StatusCode, error_type: &'static str, text: &str) -> HttpResponse {
    let mut resp = plain(status, text);
    resp.headers_mut()
        .insert("x-amzn-ErrorType", HeaderValue::from_static(error_type));
    resp
}

/// Parse a JSON object body; an unparsable body is a 400 `SerializationException`.
pub(crate) fn json_body(
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let text = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    match serde_json::from_slice::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "Request body is not a JSON object.",
        )),
    }
}

/// Whether a request may use the inspection API: programs send no `Origin`; a browser sends
/// one, and only pages of this machine (loopback hosts, among them the emulator's own pages)
/// are let in. Any web site the developer visits could otherwise reach loopback through the
/// browser and inject faults or take over storage sessions (issue #13 item 7). `Origin: null`
/// is refused too (issue #27 item 5): sandboxed iframes of any web site send it, as do
/// `file://` pages; a page that needs the API is served by the emulator itself.
pub(crate) fn origin_allowed(headers: &http::HeaderMap) -> bool {
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}
