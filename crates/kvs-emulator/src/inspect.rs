//! The inspection and fault API, under [`PREFIX`] on the control-plane listener. It is not an AWS
//! API: no SigV4, plain JSON, for tests and for developers poking at the emulator. It sends no
//! CORS headers, refuses requests from web pages of other origins (a browser's `Origin` that is
//! not a loopback host; `null`, which sandboxed iframes and `file://` pages send, is refused),
//! and takes faults only as `Content-Type: application/json`.
//!
//! - `GET  /_emulator/v1/state`: everything below in one document, plus `heldMessages`: per
//!   channel, the peer-to-peer messages kept for a recipient that is not connected, and
//!   `logLinesDropped`: log lines lost because stderr was not read fast enough (`kvs-emulator
//!   serve`; `null` for an emulator whose logs are not its own).
//!
//! Every answer is built from short-lived snapshots taken under the emulator's locks and sent
//! after they are released, so a client that reads slowly or never holds up no storage session
//! (`serve_binary.rs` checks it).
//! - `GET  /_emulator/v1/channels`, `/streams`, `/connections`, `/sessions` (the live storage
//!   sessions, then the last [`Limits::ended_sessions_kept`](crate::Limits::ended_sessions_kept),
//!   100 by default, that ended, oldest first).
//! - `GET  /_emulator/v1/streams/<name>/fragments[?newest=N]`: the fragments a stream's store
//!   keeps (the newest N), oldest first (`fragmentNumber`, producer and server timestamps in ms, length, size and `file`, the
//!   fragment's Matroska file). Stores are on disk: after a restart the stream's fragments are
//!   listed even before the stream is created again.
//! - `GET  /_emulator/v1/process`: `liveHeapBytes`, the bytes the process holds allocated (a
//!   leak grows it; memory freed but kept by the C allocator does not), `liveHeapMeanBytes`,
//!   their mean over the last 10 s of readings every 50 ms (the figure to compare over time:
//!   [`crate::heap_window`] says why), and `liveHeapMeanSeconds`, the time that mean spans;
//!   each `null` when no probe is set ([`set_live_heap_probe`]; `kvs-emulator serve` built
//!   with the `live-heap` feature sets one, as `cargo xtask soak` builds it).
//! - `GET  /_emulator/v1/calls`: how many times each AWS operation was called (by its path name,
//!   e.g. `getSignalingChannelEndpoint`, `getIceServerConfig`, `joinStorageSession`, and
//!   `connectAsMaster`/`connectAsViewer` for signaling upgrade requests, and
//!   `AssumeRoleWithCertificate` for requests to the IoT credentials endpoint).
//! - `GET  /_emulator/v1/turn`: the TURN URIs handed out and the embedded TURN server's live
//!   allocations (TURN username, client address, relay address, relayed bytes).
//! - `POST /_emulator/v1/faults` with `{"channel": "<name or ARN>", "fault": "<KIND>", ...}` where
//!   KIND is one of `DROP_NEXT_OFFER`, `DELAY_NEXT_OFFER` (`delayMs`), `CANDIDATES_BEFORE_OFFER`,
//!   `REJECT_NEXT_ANSWER`, `CLIENT_LIMIT_EXCEEDED` (`count`, the next N joins), `GO_AWAY`,
//!   `RECONNECT_ICE_SERVER`, `CLOSE_SOCKET`, `FREEZE_SOCKET` (the socket stops reading and
//!   writing, pongs included, like a half-open connection), `JUNK_FRAME`. The counted kinds
//!   take `count` (default 1). The socket kinds take `clientId` (absent: the master; `*`: every
//!   socket of the channel). `IMPAIR` impairs the channel's storage-peer paths (the storage
//!   peer's UDP, so the TURN relay's leg too) until `CLEAR_IMPAIRMENT`: `loss`, `reorder`,
//!   `duplicate` (shares, 0.0 to 1.0), `delayMs`, `jitterMs`, `bandwidthKbps`, `queueMs` (the
//!   longest wait behind the cap, default 200), `direction` (`both`, `toStoragePeer`,
//!   `fromStoragePeer`) and `seed`; see [`Impairment`].
//! - `GET  /_emulator/v1/storage-peer?channel=<name or ARN>` (WebSocket): bring your own storage
//!   peer (a browser, another WebRTC stack); see `storage::external`.
//! - `GET  /_emulator/v1/storage-peer.html?channel=<name or ARN>`: a page that makes the
//!   browser showing it the channel's storage peer (it decodes the H.264, receives the Opus
//!   and reports `getStats()`), served from here so that it is of the emulator's own origin.
//! - `GET  /_emulator/v1/player.html?stream=<name>`: a page that plays the stream over HLS or
//!   DASH, lists its fragments and shows GetImages thumbnails, with its helpers under
//!   `/_emulator/v1/player/` (the crate's `player` module).

use std::sync::Arc;

use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper::Request;
use serde_json::{json, Value};

use crate::heap_window::HeapWindow;
use crate::http_server::HttpResponse;
use crate::http_util;
use crate::impairment::{ArmedImpairment, Direction, Impairment};
use crate::link::Outbound;
use crate::registry::ResourceRef;
use crate::shared::Shared;
use crate::wire;

/// Path prefix of the inspection API.
pub const PREFIX: &str = "/_emulator/v1";

/// What `/process` reports: the live heap now and over the last 10 s.
static LIVE_HEAP: std::sync::OnceLock<Arc<HeapWindow>> = std::sync::OnceLock::new();

/// Let `/process` report the live heap: `probe` returns the bytes allocated and not freed
/// (a counting global allocator's figure). From now on a thread of its own reads it every
/// 50 ms, for the 10-s mean ([`crate::heap_window`]). Set once per process; later calls are
/// ignored.
///
/// # Errors
/// The reading thread could not be started.
pub fn set_live_heap_probe(probe: fn() -> usize) -> std::io::Result<()> {
    if LIVE_HEAP.get().is_none() {
        let _ = LIVE_HEAP.set(HeapWindow::start(probe)?);
    }
    Ok(())
}

/// `/process`: the live heap now, and its mean over the last [`crate::heap_window::WINDOW`].
fn process() -> Value {
    let heap = LIVE_HEAP.get();
    json!({
        "liveHeapBytes": heap.map(|h| h.latest()),
        "liveHeapMeanBytes": heap.and_then(|h| h.mean()),
        "liveHeapMeanSeconds": heap.map(|h| h.spanned().as_secs_f64()),
    })
}

/// A JSON reply. Deliberately without CORS headers: no web page may read this API.
pub(crate) fn reply(status: StatusCode, value: Value) -> HttpResponse {
    let mut resp = crate::http_server::full_response(http_body_util::Full::new(
        bytes::Bytes::from(value.to_string()),
    ));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn bad_request(message: impl Into<String>) -> HttpResponse {
    reply(StatusCode::BAD_REQUEST, json!({ "error": message.into() }))
}

/// Serve one inspection request.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> HttpResponse {
    if !http_util::origin_allowed(req.headers()) {
        return reply(
            StatusCode::FORBIDDEN,
            json!({ "error": "the inspection API does not serve web pages of other origins" }),
        );
    }
    let req = match http_util::read(req, 64 * 1024, &shared.body_reads).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let path = req.path.trim_start_matches(PREFIX);
    match (&req.method, path) {
        (&Method::GET, "/state") => reply(StatusCode::OK, state(&shared)),
        (&Method::GET, "/channels") => reply(StatusCode::OK, json!(shared.registry().channels())),
        (&Method::GET, "/streams") => reply(StatusCode::OK, json!(shared.registry().streams())),
        (&Method::GET, "/connections") => reply(StatusCode::OK, json!(shared.hub.connections())),
        (&Method::GET, "/sessions") => reply(StatusCode::OK, json!(shared.sessions.snapshot())),
        (&Method::GET, "/process") => reply(StatusCode::OK, process()),
        (&Method::GET, "/calls") => reply(StatusCode::OK, json!(shared.calls.snapshot())),
        (&Method::GET, "/turn") => reply(StatusCode::OK, shared.turn.allocations().await),
        (&Method::GET, "/storage-peer.html") => storage_peer_page(),
        (&Method::GET, "/player.html") => crate::player::page(),
        (&Method::GET, p) if p.starts_with("/player/") => {
            crate::player::handle(shared.clone(), &p["/player/".len()..], &req.query).await
        }
        (&Method::GET, p) if stream_fragments_name(p).is_some() => stream_fragments(
            &shared,
            stream_fragments_name(p).unwrap_or_default(),
            newest(&req.query),
        ),
        (&Method::POST, "/faults") if !is_json(&req.headers) => reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!({ "error": "send the fault as Content-Type: application/json" }),
        ),
        (&Method::POST, "/faults") => match serde_json::from_slice::<Value>(&req.body) {
            Ok(body) => fault(&shared, &body),
            Err(e) => bad_request(format!("the body is not JSON: {e}")),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no inspection resource {} {}", req.method, req.path) }),
        ),
    }
}

/// `<name>` of `/streams/<name>/fragments`.
fn stream_fragments_name(path: &str) -> Option<&str> {
    path.strip_prefix("/streams/")?
        .strip_suffix("/fragments")
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

/// `?newest=N`: only the newest N fragments.
fn newest(query: &str) -> Option<usize> {
    crate::sigv4::decode_query(query)
        .into_iter()
        .find(|(k, _)| k == "newest")
        .and_then(|(_, v)| v.parse().ok())
}

/// A stream's stored fragments (the newest `newest` of them, when given), oldest first, each
/// with its Matroska file.
fn stream_fragments(shared: &Shared, stream: &str, newest: Option<usize>) -> HttpResponse {
    if shared.registry().stream(ResourceRef::Name(stream)).is_err()
        && !shared.stores.has_data(stream)
    {
        return reply(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no stream {stream}, and no stored fragments of one") }),
        );
    }
    match shared.stores.fragments(stream) {
        Ok(mut fragments) => {
            if let Some(newest) = newest {
                fragments.drain(..fragments.len().saturating_sub(newest));
            }
            reply(
                StatusCode::OK,
                json!({ "stream": stream, "fragments": fragments }),
            )
        }
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": format!("the store of {stream} cannot be read: {e}") }),
        ),
    }
}

/// The browser storage peer (`storage-peer.html`).
fn storage_peer_page() -> HttpResponse {
    static_response(
        include_str!("storage/storage-peer.html"),
        "text/html; charset=utf-8",
    )
}

/// A page or script of the emulator's own, not cached (it changes with the emulator).
pub(crate) fn static_response(text: &'static str, content_type: &'static str) -> HttpResponse {
    bytes_response(bytes::Bytes::from_static(text.as_bytes()), content_type)
}

/// `body` as `content_type`, not cached.
pub(crate) fn bytes_response(body: bytes::Bytes, content_type: &'static str) -> HttpResponse {
    let mut resp = crate::http_server::full_response(http_body_util::Full::new(body));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

fn state(shared: &Shared) -> Value {
    json!({
        "region": shared.config.region,
        "endpoints": shared.endpoints,
        "channels": shared.registry().channels(),
        "streams": shared.registry().streams(),
        "connections": shared.hub.connections(),
        "heldMessages": shared.hub.held_counts(),
        "sessions": shared.sessions.snapshot(),
        "faults": shared.faults.snapshot(),
        "impairments": shared.faults.impairments(),
        "calls": shared.calls.snapshot(),
        "logLinesDropped": shared.log_drops.as_ref().map(|c| c.dropped_lines()),
    })
}

fn fault(shared: &Shared, body: &Value) -> HttpResponse {
    match apply_fault(shared, body) {
        Ok(value) => reply(StatusCode::OK, value),
        Err((status, message)) => reply(status, json!({ "error": message })),
    }
}

/// Arm or fire the fault `body` describes (see the module docs); the reply document or the
/// HTTP status and message of the refusal.
pub(crate) fn apply_fault(shared: &Shared, body: &Value) -> Result<Value, (StatusCode, String)> {
    let bad_request = |message: &str| Err((StatusCode::BAD_REQUEST, message.to_owned()));
    let Some(channel) = body.get("channel").and_then(Value::as_str) else {
        return bad_request("`channel` (a channel name or ARN) is required");
    };
    let arn = match shared.registry().channel(ResourceRef::name_or_arn(channel)) {
        Ok(c) => c.arn.clone(),
        Err(_) => return Err((StatusCode::NOT_FOUND, format!("no channel {channel}"))),
    };
    let Some(kind) = body.get("fault").and_then(Value::as_str) else {
        return bad_request("`fault` is required");
    };
    // A count arms that many more; it must be a whole number of at least 1, and adding it
    // saturates instead of wrapping.
    let count = match body.get("count") {
        None => 1,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => n.min(u64::from(u32::MAX)) as u32,
            _ => return bad_request("`count` must be a whole number of at least 1"),
        },
    };
    let client_id = body.get("clientId").and_then(Value::as_str);
    let socket_fault = |frame: Outbound| {
        let sockets = shared.hub.broadcast(&arn, client_id, frame);
        Ok(json!({ "channelArn": arn, "fault": kind, "sockets": sockets }))
    };
    let armed = |change: &dyn Fn(&mut crate::faults::ChannelFaults)| {
        let now = shared.faults.update(&arn, change);
        Ok(json!({ "channelArn": arn, "fault": kind, "pending": now }))
    };
    match kind {
        "DROP_NEXT_OFFER" => armed(&|f| f.drop_offers = f.drop_offers.saturating_add(count)),
        "DELAY_NEXT_OFFER" => match body.get("delayMs").and_then(Value::as_u64) {
            Some(ms) => armed(&|f| f.delay_next_offer_ms = Some(ms)),
            None => bad_request("DELAY_NEXT_OFFER needs `delayMs`"),
        },
        "CANDIDATES_BEFORE_OFFER" => armed(&|f| f.candidates_before_offer = f.candidates_before_offer.saturating_add(count)),
        "REJECT_NEXT_ANSWER" => armed(&|f| f.reject_answers = f.reject_answers.saturating_add(count)),
        "CLIENT_LIMIT_EXCEEDED" => armed(&|f| f.client_limit_joins = f.client_limit_joins.saturating_add(count)),
        "GO_AWAY" => socket_fault(Outbound::GoAway),
        "RECONNECT_ICE_SERVER" => socket_fault(Outbound::Text(wire::control("RECONNECT_ICE_SERVER"))),
        "CLOSE_SOCKET" => socket_fault(Outbound::Close("closed by a fault".into())),
        "FREEZE_SOCKET" => socket_fault(Outbound::Freeze),
        "JUNK_FRAME" => socket_fault(Outbound::Text(
            json!({ "message": "Endpoint request timed out", "connectionId": "emulator", "requestId": uuid::Uuid::new_v4().to_string() })
                .to_string(),
        )),
        "IMPAIR" => match parse_impairment(body) {
            Ok(armed) => {
                shared.faults.impair(&arn, armed);
                tracing::info!(channel = %arn, ?armed, "storage-peer path impaired");
                Ok(json!({ "channelArn": arn, "fault": kind, "impairment": armed }))
            }
            Err(message) => bad_request(&message),
        },
        "CLEAR_IMPAIRMENT" => {
            let was = shared.faults.clear_impairment(&arn);
            tracing::info!(channel = %arn, was, "storage-peer path impairment cleared");
            Ok(json!({ "channelArn": arn, "fault": kind, "wasImpaired": was }))
        }
        other => bad_request(&format!("unknown fault {other}")),
    }
}

/// The impairment an `IMPAIR` body describes: the fields of [`Impairment`] (camelCase), plus
/// `direction` (`both`, the default; `toStoragePeer`; `fromStoragePeer`) and `seed` (default 1).
fn parse_impairment(body: &Value) -> Result<ArmedImpairment, String> {
    let mut fields = body.as_object().cloned().unwrap_or_default();
    for key in ["channel", "fault"] {
        fields.remove(key);
    }
    let direction = match fields.remove("direction") {
        None => Direction::Both,
        Some(v) => serde_json::from_value(v).map_err(|_| {
            "`direction` must be `both`, `toStoragePeer` or `fromStoragePeer`".to_owned()
        })?,
    };
    let seed = match fields.remove("seed") {
        None => 1,
        Some(v) => v.as_u64().ok_or("`seed` must be a whole number")?,
    };
    let impairment: Impairment =
        serde_json::from_value(Value::Object(fields)).map_err(|e| format!("IMPAIR: {e}"))?;
    impairment.validate().map_err(|e| e.to_string())?;
    Ok(ArmedImpairment {
        impairment,
        direction,
        seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impair_body_reads_every_field_and_defaults_the_rest() {
        let armed = parse_impairment(&json!({
            "channel": "c", "fault": "IMPAIR", "loss": 0.05, "delayMs": 30, "jitterMs": 20,
            "bandwidthKbps": 300, "direction": "toStoragePeer", "seed": 9,
        }))
        .unwrap();
        assert_eq!(armed.direction, Direction::ToStoragePeer);
        assert_eq!(armed.seed, 9);
        assert_eq!(
            armed.impairment,
            Impairment {
                loss: 0.05,
                delay_ms: 30,
                jitter_ms: 20,
                bandwidth_kbps: Some(300),
                ..Impairment::default()
            }
        );
        let plain = parse_impairment(&json!({ "channel": "c", "fault": "IMPAIR" })).unwrap();
        assert_eq!(plain.direction, Direction::Both);
        assert_eq!(plain.impairment, Impairment::default());
    }

    #[test]
    fn a_bad_impair_body_is_refused_with_what_is_wrong() {
        for (body, says) in [
            (json!({ "loss": 2.0 }), "loss"),
            (json!({ "lossy": 0.1 }), "lossy"),
            (json!({ "delayMs": -1 }), "IMPAIR"),
            (json!({ "bandwidthKbps": 0 }), "bandwidthKbps"),
            (json!({ "direction": "sideways" }), "direction"),
            (json!({ "seed": "x" }), "seed"),
        ] {
            let error = parse_impairment(&body).unwrap_err();
            assert!(error.contains(says), "{body}: {error}");
        }
    }
}
