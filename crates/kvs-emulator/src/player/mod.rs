//! The player page: a stream's media as its users will watch it, in any browser, from the
//! emulator's own origin. Part of the inspection API (no SigV4; see [`crate::inspect`]):
//!
//! - `GET /_emulator/v1/player.html?stream=NAME[&protocol=HLS|DASH][&mode=LIVE|ON_DEMAND]`: the
//!   page. It asks `player/session` for a streaming session URL, plays it with hls.js or
//!   dash.js, lists the stream's newest fragments and shows a strip of GetImages thumbnails.
//!   With `&url=<session URL>` it plays that URL instead (one a program got from
//!   `GetHLSStreamingSessionURL` or `GetDASHStreamingSessionURL`). What the page saw is in
//!   `window.kvsPlayer` (`errors`: every error event of the player library), for tests.
//! - `GET /_emulator/v1/player/session?stream=NAME&protocol=HLS|DASH&mode=LIVE|ON_DEMAND`:
//!   `{"url": …}`, made by the same code as the two AWS operations (ON_DEMAND: the stored
//!   fragments of the last 24 hours at most, the first 5000 of them, as the service allows in
//!   one session), valid for 12 hours (the longest `Expires`).
//! - `GET /_emulator/v1/player/images?stream=NAME`: GetImages' answer for the newest 10 s that
//!   are stored, one JPEG 90 pixels high every 2 s.
//! - `GET /_emulator/v1/player/hls.js`, `/player/dash.js`: the player libraries ([`scripts`]).
//!
//! Errors are `{"error": "<code>: <message>"}` with the status the AWS operation would answer.

pub(crate) mod scripts;

use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::api_error::ApiError;
use crate::http_server::HttpResponse;
use crate::playback::token::Protocol;
use crate::shared::Shared;

/// The longest range one ON_DEMAND session may span (the service's limit: 24 hours).
const ON_DEMAND_MAX_MS: i64 = 24 * 3600 * 1000;
/// How much of the newest media the thumbnail strip covers.
const THUMBNAILS_SPAN_MS: i64 = 10_000;
/// One thumbnail per this interval.
const THUMBNAIL_INTERVAL_MS: i64 = 2_000;
/// Thumbnails' height in pixels (GetImages keeps the aspect ratio for the width).
const THUMBNAIL_HEIGHT: u32 = 90;

/// The page (`player.html`).
pub(crate) fn page() -> HttpResponse {
    crate::inspect::static_response(include_str!("player.html"), "text/html; charset=utf-8")
}

/// `GET /_emulator/v1/player/<rest>`.
pub(crate) async fn handle(shared: Arc<Shared>, rest: &str, query: &str) -> HttpResponse {
    let query = crate::sigv4::decode_query(query);
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let rest = rest.to_owned();
    let stream = param("stream");
    let protocol = param("protocol").unwrap_or_else(|| "HLS".to_owned());
    let mode = param("mode").unwrap_or_else(|| "LIVE".to_owned());
    // Each reads the store (blocking file I/O); GetImages decodes H.264.
    let answer = tokio::task::spawn_blocking(move || match rest.as_str() {
        "hls.js" | "dash.js" => {
            let package = scripts::package(&rest).expect("a pinned package");
            shared
                .player_scripts
                .get(&shared.config.player_scripts, package)
                .map(|bytes| {
                    crate::inspect::bytes_response(bytes, "text/javascript; charset=utf-8")
                })
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "a player library cannot be served");
                    let status = match e {
                        scripts::ScriptError::Directory { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                        _ => StatusCode::BAD_GATEWAY,
                    };
                    error_reply(status, &e.to_string())
                })
        }
        "session" | "images" => {
            let Some(stream) = stream else {
                return error_reply(StatusCode::BAD_REQUEST, "name the stream: ?stream=NAME");
            };
            // The name is checked and the stream looked up as the AWS operations do, before
            // anything reads the stream's store.
            let answer = existing_stream(&shared, &stream).and_then(|stream| {
                if rest == "session" {
                    let protocol = protocol_named(&protocol)?;
                    session_url(&shared, &stream, protocol, &mode).map(|url| json!({ "url": url }))
                } else {
                    thumbnails(&shared, &stream)
                }
            });
            match answer {
                Ok(value) => crate::inspect::reply(StatusCode::OK, value),
                Err(e) => error_reply(e.status, &format!("{}: {}", e.code, e.message)),
            }
        }
        other => error_reply(
            StatusCode::NOT_FOUND,
            &format!("no player resource {other}: player.html, player/session, player/images, player/hls.js, player/dash.js"),
        ),
    })
    .await;
    answer.unwrap_or_else(|e| error_reply(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
}

/// `name` if it is a valid stream name of a stream that exists (`InvalidArgumentException`,
/// `ResourceNotFoundException` otherwise).
fn existing_stream(shared: &Shared, name: &str) -> Result<String, ApiError> {
    let mut body = Map::new();
    body.insert("StreamName".into(), json!(name));
    crate::archived_media::stream_name(shared, &body)
}

fn error_reply(status: StatusCode, message: &str) -> HttpResponse {
    crate::inspect::reply(status, json!({ "error": message }))
}

/// `protocol` (`HLS` or `DASH`, as the page's `?protocol=` names it).
fn protocol_named(name: &str) -> Result<Protocol, ApiError> {
    match name {
        "HLS" => Ok(Protocol::Hls),
        "DASH" => Ok(Protocol::Dash),
        other => Err(ApiError::invalid_argument(format!(
            "protocol {other:?} is not HLS or DASH"
        ))),
    }
}

/// A streaming session URL for `stream`, as `GetHLSStreamingSessionURL` or
/// `GetDASHStreamingSessionURL` would answer it.
pub(crate) fn session_url(
    shared: &Shared,
    stream: &str,
    protocol: Protocol,
    mode: &str,
) -> Result<String, ApiError> {
    let [selector_member, _, max_member, _] = crate::playback::session::member_names(protocol);
    let mut body = Map::new();
    body.insert("StreamName".into(), json!(stream));
    body.insert("PlaybackMode".into(), json!(mode));
    // The longest session the service allows (default 300 s): a page left open keeps playing.
    body.insert(
        "Expires".into(),
        json!(crate::playback::session::MAX_EXPIRES_S),
    );
    if mode == "ON_DEMAND" {
        // As many fragments as one session may list (the service's limit: 5000).
        body.insert(
            max_member.into(),
            json!(crate::playback::session::MAX_PLAYLIST_FRAGMENTS),
        );
        let (oldest, newest_end) = stored_span(shared, stream)?;
        let start = oldest.max(newest_end - ON_DEMAND_MAX_MS);
        body.insert(
            selector_member.into(),
            json!({
                "FragmentSelectorType": "SERVER_TIMESTAMP",
                "TimestampRange": {
                    "StartTimestamp": start as f64 / 1000.0,
                    "EndTimestamp": newest_end as f64 / 1000.0,
                },
            }),
        );
    }
    let now_ms = crate::archived_media::now_ms();
    crate::playback::streaming_session_url(shared, protocol, &body, now_ms)
}

/// The server timestamps (ms) where the stream's oldest stored fragment starts and its newest
/// ends.
fn stored_span(shared: &Shared, stream: &str) -> Result<(i64, i64), ApiError> {
    let no_media = || {
        ApiError::not_found(format!(
            "No fragments found in the stream {stream}: nothing was ingested yet."
        ))
    };
    if !shared.stores.has_data(stream) {
        return Err(no_media());
    }
    let fragments = shared
        .stores
        .fragments(stream)
        .map_err(crate::playback::read_failed)?;
    let (Some(oldest), Some(newest)) = (fragments.first(), fragments.last()) else {
        return Err(no_media());
    };
    Ok((
        oldest.meta.server_timestamp_ms,
        newest.meta.server_timestamp_ms + newest.meta.fragment_length_ms,
    ))
}

/// GetImages over the newest stored [`THUMBNAILS_SPAN_MS`].
fn thumbnails(shared: &Shared, stream: &str) -> Result<Value, ApiError> {
    let (oldest, end) = stored_span(shared, stream)?;
    let start = oldest.max(end - THUMBNAILS_SPAN_MS);
    let body = json!({
        "StreamName": stream,
        "ImageSelectorType": "SERVER_TIMESTAMP",
        "StartTimestamp": start as f64 / 1000.0,
        "EndTimestamp": end as f64 / 1000.0,
        "SamplingInterval": THUMBNAIL_INTERVAL_MS,
        "Format": "JPEG",
        "HeightPixels": THUMBNAIL_HEIGHT,
    });
    let Value::Object(body) = body else {
        unreachable!("a JSON object literal")
    };
    crate::images::get_images(shared, &body)
}
