//! The one prologue of every emulated AWS JSON API (the control plane, the signaling REST API,
//! the storage API, and the media APIs to come): the CORS preflight, the bounded body read, the
//! route, and the answer in the API's own form. Inside a route, [`admit`] takes an operation
//! through the steps AWS takes before its own logic, in AWS's order (protocol notes §8.6):
//! counted, signature checked, body parsed, rate admitted.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::Method;
use hyper::body::Incoming;
use hyper::Request;
use serde_json::{Map, Value};

use crate::api_error::{Api, ApiError};
use crate::http_server::HttpResponse;
use crate::http_util::{self, ReadRequest};
use crate::shared::Shared;

/// What a route answers when the operation succeeds.
#[derive(Debug)]
pub(crate) enum Reply {
    /// 200 with a JSON body.
    Json(Value),
    /// 200 with an empty body (JoinStorageSession).
    Empty,
    /// 200 with a media body (`video/webm` for Matroska, as the service labels it).
    Media {
        /// The `Content-Type`.
        content_type: &'static str,
        /// The body.
        body: Vec<u8>,
    },
    /// 200 with a chunked media body that a task keeps writing (GetMedia).
    MediaStream {
        /// The `Content-Type`.
        content_type: &'static str,
        /// The chunks; the body ends when their sender is dropped.
        body: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    },
    /// The XML AccessDenied AWS answers for an operation sent to the wrong endpoint (§8.2).
    WrongEndpoint,
}

/// Routes a request that was read in full.
pub(crate) type Route = fn(&Arc<Shared>, &ReadRequest) -> Result<Reply, ApiError>;

/// An AWS JSON API as one listener serves it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonApi {
    /// Which API: its error shapes and namespace.
    pub api: Api,
    /// Refusals are logged at INFO (a developer wants to see why a join was refused) rather
    /// than DEBUG.
    pub log_refusals: bool,
    /// The operations.
    pub route: Route,
}

impl JsonApi {
    /// Serve one request: preflight, read, route, answer.
    pub(crate) async fn serve(self, shared: Arc<Shared>, req: Request<Incoming>) -> HttpResponse {
        if req.method() == Method::OPTIONS {
            return http_util::preflight(req.headers());
        }
        let req = match http_util::read(
            req,
            shared.config.limits.max_request_body,
            &shared.body_reads,
        )
        .await
        {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        match (self.route)(&shared, &req) {
            Ok(Reply::Json(value)) => http_util::json(&value, &req.headers),
            Ok(Reply::Empty) => http_util::ok_empty(&req.headers),
            Ok(Reply::Media { content_type, body }) => {
                http_util::media(content_type, body, &req.headers)
            }
            Ok(Reply::MediaStream { content_type, body }) => {
                http_util::media_stream(content_type, body, &req.headers)
            }
            Ok(Reply::WrongEndpoint) => http_util::wrong_endpoint(&req.headers),
            Err(err) => {
                if self.log_refusals {
                    tracing::info!(api = ?self.api, path = %req.path, code = err.code, message = %err.message, "request refused");
                } else {
                    tracing::debug!(api = ?self.api, path = %req.path, code = err.code, message = %err.message, "request refused");
                }
                http_util::error(self.api, &err, Some(&req.headers))
            }
        }
    }
}

/// Take `operation` through what precedes its own logic: count it, check the SigV4 header
/// signature, parse the JSON body, and admit it at the API's rate for the channel that
/// `channel` names in the body. Returns the body.
pub(crate) fn admit(
    shared: &Shared,
    req: &ReadRequest,
    api: Api,
    operation: &'static str,
    channel: impl FnOnce(&Map<String, Value>) -> Option<String>,
) -> Result<Map<String, Value>, ApiError> {
    shared.calls.record(operation);
    http_util::authenticate(req, api, &shared.expectation(SystemTime::now()))?;
    let body = http_util::json_body(&req.body)?;
    shared
        .throttle
        .admit(operation, channel(&body).as_deref(), Instant::now())?;
    Ok(body)
}

/// The channel a body names in `field`, as given (the rate key of most operations).
pub(crate) fn channel_field(
    field: &'static str,
) -> impl FnOnce(&Map<String, Value>) -> Option<String> {
    move |body| body.get(field).and_then(Value::as_str).map(str::to_owned)
}
