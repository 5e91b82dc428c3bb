//! `kinesis-video-archived-media` (restJson1) over the stream store, and the control plane's
//! `GetDataEndpoint` that points clients at it. Served on the control-plane listener: the
//! service gives each API its own host, but clients call whatever `GetDataEndpoint` returns
//! (boto3 and the AWS CLI through `endpoint_url` / `--endpoint-url`), so one listener keeps the
//! emulator's endpoint table as it is.
//!
//! - `ListFragments`: `StreamName|StreamARN`, `FragmentSelector` (`SERVER_TIMESTAMP` or
//!   `PRODUCER_TIMESTAMP` with a `TimestampRange`, both ends inclusive, on each fragment's start),
//!   `MaxResults` 1–1000 (default 100), `NextToken` (opaque: the last fragment number of the
//!   page, base64) → `Fragments` oldest first, and a `NextToken` while more remain.
//! - `GetMediaForFragmentList`: `StreamName|StreamARN`, `Fragments` (1–1000 fragment numbers)
//!   → `video/webm`: each fragment in the order asked, as its own Matroska document (EBML
//!   header, Segment) tagged with `AWS_KINESISVIDEO_FRAGMENT_NUMBER`, `_SERVER_TIMESTAMP` and
//!   `_PRODUCER_TIMESTAMP` ([`crate::store::tagged`]); a number the stream does not keep is a
//!   `ResourceNotFoundException`. The answer is built in memory, at most 100 MB.
//! - `GetClip`: `StreamName|StreamARN`, `ClipFragmentSelector` (a selector as `ListFragments`
//!   takes, required) → `video/mp4`: the fragments in range as one fragmented MP4
//!   ([`crate::store::clip`] over [`crate::store::fmp4`]). A reversed range is an
//!   `InvalidArgumentException`; an unknown stream, a stream that never had media and a range
//!   with no fragment are `ResourceNotFoundException`s; more than 200 fragments or 100 MB (the
//!   service's limits) a `ClientLimitExceededException`, the code the emulator's
//!   GetMediaForFragmentList uses for its 100 MB bound (the reference names the limits, not the
//!   code).
//! - `GetHLSStreamingSessionURL`, `GetDASHStreamingSessionURL`: a session URL whose playlists
//!   (or manifest) and fMP4 fragments [`crate::playback`] serves.
//! - `GetImages`: JPEG or PNG images at a sampling interval ([`crate::images`]).

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::api_error::ApiError;
use crate::json_api::Reply;
use crate::registry::ResourceRef;
use crate::shared::Shared;
use crate::store::FragmentMeta;
use crate::throttle::FragmentPoints;
use crate::validate;

/// The archived-media operations this module serves, by path.
pub(crate) const OPERATIONS: &[&str] = &[
    "listFragments",
    "getMediaForFragmentList",
    "getClip",
    crate::playback::HLS_OPERATION,
    crate::playback::DASH_OPERATION,
    crate::images::OPERATION,
];

/// The most fragments one GetClip answer holds (the service's limit).
pub(crate) const MAX_CLIP_FRAGMENTS: usize = 200;

/// The most bytes one GetMediaForFragmentList answer holds here (the service streams any
/// size; the emulator builds the answer in memory, so it bounds it).
pub(crate) const MAX_MEDIA_BYTES: u64 = 100 * 1024 * 1024;

/// The APIs `GetDataEndpoint` knows (`APIName`).
const API_NAMES: &[&str] = &[
    "PUT_MEDIA",
    "GET_MEDIA",
    "LIST_FRAGMENTS",
    "GET_MEDIA_FOR_FRAGMENT_LIST",
    "GET_HLS_STREAMING_SESSION_URL",
    "GET_DASH_STREAMING_SESSION_URL",
    "GET_CLIP",
    "GET_IMAGES",
];

const DEFAULT_MAX_RESULTS: u64 = 100;
const MAX_MAX_RESULTS: u64 = 1000;
const TOKEN_PREFIX: &str = "kvs-emulator-fragments-after:";

/// Serve archived-media operation `op` (one of [`OPERATIONS`]) with its admitted body.
pub(crate) fn route(
    shared: &Shared,
    op: &str,
    body: &Map<String, Value>,
) -> Result<Reply, ApiError> {
    match op {
        "listFragments" => list_fragments(shared, body).map(Reply::Json),
        "getMediaForFragmentList" => get_media_for_fragment_list(shared, body),
        "getClip" => get_clip(shared, body),
        crate::playback::HLS_OPERATION => {
            crate::playback::get_hls_streaming_session_url(shared, body, now_ms()).map(Reply::Json)
        }
        crate::playback::DASH_OPERATION => {
            crate::playback::get_dash_streaming_session_url(shared, body, now_ms()).map(Reply::Json)
        }
        crate::images::OPERATION => crate::images::get_images(shared, body).map(Reply::Json),
        other => Err(ApiError::new(
            http::StatusCode::NOT_FOUND,
            "UnknownOperationException",
            format!("The emulator does not implement /{other}."),
        )),
    }
}

/// The wall clock in ms since the epoch (the playback operations take time as an input).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `GetDataEndpoint`: the endpoint that serves `APIName` for the stream.
pub(crate) fn get_data_endpoint(
    shared: &Shared,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let api_name = validate::required(body, "APIName")?;
    if !API_NAMES.contains(&api_name) {
        return Err(ApiError::invalid_argument(format!(
            "1 validation error detected: Value '{}' at 'aPIName' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            validate::shown(api_name),
            API_NAMES.join(", ")
        )));
    }
    stream_name(shared, body)?;
    Ok(json!({ "DataEndpoint": shared.endpoints.control_plane }))
}

/// The name of the stream a body names (`StreamARN` wins over `StreamName`), which must exist.
pub(crate) fn stream_name(shared: &Shared, body: &Map<String, Value>) -> Result<String, ApiError> {
    let by = if let Some(arn) = validate::optional(body, "StreamARN")? {
        validate::arn("StreamARN", arn)?;
        ResourceRef::Arn(arn)
    } else if let Some(name) = validate::optional(body, "StreamName")? {
        validate::name("StreamName", name, 256)?;
        ResourceRef::Name(name)
    } else {
        return Err(ApiError::invalid_argument(
            "Either StreamName or StreamARN must be specified.",
        ));
    };
    Ok(shared.registry().stream(by)?.name.clone())
}

/// Which timestamp a selector ranges over, and the range in ms (inclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Selector {
    pub(crate) producer: bool,
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
}

impl Selector {
    fn admits(&self, meta: &FragmentMeta) -> bool {
        let t = if self.producer {
            meta.producer_timestamp_ms
        } else {
            meta.server_timestamp_ms
        };
        (self.start_ms..=self.end_ms).contains(&t)
    }
}

/// A restJson1 timestamp (epoch seconds, fractions allowed) as ms.
fn timestamp_ms(range: &Map<String, Value>, field: &str) -> Result<i64, ApiError> {
    match range.get(field).and_then(Value::as_f64) {
        Some(seconds) if seconds.is_finite() && seconds >= 0.0 => {
            Ok((seconds * 1000.0).round() as i64)
        }
        _ => Err(ApiError::invalid_argument(format!(
            "TimestampRange.{field} must be a timestamp (epoch seconds)."
        ))),
    }
}

pub(crate) fn selector(
    body: &Map<String, Value>,
    member: &str,
) -> Result<Option<Selector>, ApiError> {
    let Some(selector) = body.get(member).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Some(selector) = selector.as_object() else {
        return Err(ApiError::invalid_argument(format!(
            "{member} must be an object."
        )));
    };
    let producer = match selector.get("FragmentSelectorType").and_then(Value::as_str) {
        Some("PRODUCER_TIMESTAMP") => true,
        Some("SERVER_TIMESTAMP") => false,
        other => {
            return Err(ApiError::invalid_argument(format!(
            "{member}.FragmentSelectorType must be PRODUCER_TIMESTAMP or SERVER_TIMESTAMP, not {}.",
            other.map_or("null".to_owned(), |v| validate::shown(v).into_owned())
        )))
        }
    };
    let Some(range) = selector.get("TimestampRange").and_then(Value::as_object) else {
        return Err(ApiError::invalid_argument(format!(
            "{member}.TimestampRange is required."
        )));
    };
    let start_ms = timestamp_ms(range, "StartTimestamp")?;
    let end_ms = timestamp_ms(range, "EndTimestamp")?;
    if start_ms > end_ms {
        return Err(ApiError::invalid_argument(
            "TimestampRange.StartTimestamp must be before TimestampRange.EndTimestamp.",
        ));
    }
    Ok(Some(Selector {
        producer,
        start_ms,
        end_ms,
    }))
}

/// The fragment number a `NextToken` continues after.
pub(crate) fn parse_token(token: &str) -> Result<u128, ApiError> {
    let invalid = || ApiError::invalid_argument("NextToken is not a token this stream returned.");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix(TOKEN_PREFIX)
        .and_then(|n| n.parse().ok())
        .ok_or_else(invalid)
}

pub(crate) fn make_token(after: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{after}"))
}

/// A fragment as the API shapes it (timestamps in epoch seconds).
fn fragment_json(meta: &FragmentMeta) -> Value {
    json!({
        "FragmentNumber": meta.fragment_number,
        "FragmentSizeInBytes": meta.fragment_size_bytes,
        "ProducerTimestamp": meta.producer_timestamp_ms as f64 / 1000.0,
        "ServerTimestamp": meta.server_timestamp_ms as f64 / 1000.0,
        "FragmentLengthInMilliseconds": meta.fragment_length_ms,
    })
}

fn list_fragments(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let stream = stream_name(shared, body)?;
    let max_results = match body.get("MaxResults").filter(|v| !v.is_null()) {
        None => DEFAULT_MAX_RESULTS,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_MAX_RESULTS).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_argument(format!(
                    "1 validation error detected: Value '{v}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and {MAX_MAX_RESULTS}"
                )))
            }
        },
    };
    let after = validate::optional(body, "NextToken")?
        .map(parse_token)
        .transpose()?;
    let selector = selector(body, "FragmentSelector")?;
    charge(
        shared,
        &stream,
        FragmentPoints {
            metadata: max_results as u32,
            media: 0,
        },
    )?;
    let fragments = shared.stores.fragments(&stream).map_err(read_failed)?;
    let mut matching = fragments.iter().map(|f| &f.meta).filter(|m| {
        selector.is_none_or(|s| s.admits(m))
            && after.is_none_or(|a| m.fragment_number.parse::<u128>().is_ok_and(|n| n > a))
    });
    let page: Vec<&FragmentMeta> = matching.by_ref().take(max_results as usize).collect();
    let mut out = json!({ "Fragments": page.iter().map(|m| fragment_json(m)).collect::<Vec<_>>() });
    if let (Some(last), Some(_)) = (page.last(), matching.next()) {
        out["NextToken"] = json!(make_token(&last.fragment_number));
    }
    Ok(out)
}

fn get_media_for_fragment_list(
    shared: &Shared,
    body: &Map<String, Value>,
) -> Result<Reply, ApiError> {
    let stream = stream_name(shared, body)?;
    let numbers: Vec<&str> = match body.get("Fragments").and_then(Value::as_array) {
        Some(list) if (1..=1000).contains(&list.len()) => list
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    ApiError::invalid_argument("Fragments must be a list of fragment numbers.")
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ApiError::invalid_argument(
                "Fragments must list between 1 and 1000 fragment numbers.",
            ))
        }
    };
    charge(
        shared,
        &stream,
        FragmentPoints {
            metadata: 0,
            media: numbers.len() as u32,
        },
    )?;
    let stored = shared.stores.fragments(&stream).map_err(read_failed)?;
    let mut wanted = Vec::with_capacity(numbers.len());
    let mut bytes = 0;
    for number in numbers {
        let Some(found) = stored.iter().find(|f| f.meta.fragment_number == number) else {
            return Err(ApiError::not_found(format!(
                "The stream {stream} has no fragment {}.",
                validate::shown(number)
            )));
        };
        bytes += found.meta.fragment_size_bytes;
        wanted.push(found);
    }
    if bytes > MAX_MEDIA_BYTES {
        return Err(ApiError::client_limit(format!(
            "The fragments hold {bytes} bytes; the emulator answers at most {MAX_MEDIA_BYTES} per call."
        )));
    }
    let mut body = Vec::with_capacity(bytes as usize);
    for fragment in wanted {
        let file = std::fs::read(&fragment.file).map_err(read_failed)?;
        let tagged = crate::store::tagged::tagged(file, &fragment.meta).map_err(read_failed)?;
        body.extend_from_slice(&tagged);
    }
    Ok(Reply::Media {
        content_type: "video/webm",
        body,
    })
}

/// The fragments of a clip: those `selector` admits, oldest first, within the service's limits
/// (at most [`MAX_CLIP_FRAGMENTS`] fragments and [`MAX_MEDIA_BYTES`]).
fn clip_fragments<'a>(
    stream: &str,
    stored: &'a [crate::store::StoredFragment],
    selector: Selector,
) -> Result<Vec<&'a crate::store::StoredFragment>, ApiError> {
    let wanted: Vec<_> = stored.iter().filter(|f| selector.admits(&f.meta)).collect();
    if wanted.is_empty() {
        return Err(ApiError::not_found(format!(
            "No fragments found in the stream {stream} for the requested time range."
        )));
    }
    if wanted.len() > MAX_CLIP_FRAGMENTS {
        return Err(ApiError::client_limit(format!(
            "The requested time range holds {} fragments; a clip holds at most {MAX_CLIP_FRAGMENTS}. Narrow the TimestampRange.",
            wanted.len()
        )));
    }
    let bytes: u64 = wanted.iter().map(|f| f.meta.fragment_size_bytes).sum();
    if bytes > MAX_MEDIA_BYTES {
        return Err(ApiError::client_limit(format!(
            "The requested time range holds {bytes} bytes of media; a clip holds at most {MAX_MEDIA_BYTES}. Narrow the TimestampRange."
        )));
    }
    Ok(wanted)
}

/// `GetClip`: the fragments in a range as one fragmented MP4 ([`crate::store::clip`]).
fn get_clip(shared: &Shared, body: &Map<String, Value>) -> Result<Reply, ApiError> {
    let stream = stream_name(shared, body)?;
    let Some(selector) = selector(body, "ClipFragmentSelector")? else {
        return Err(ApiError::invalid_argument(
            "ClipFragmentSelector is required.",
        ));
    };
    if !shared.stores.has_data(&stream) {
        return Err(ApiError::not_found(format!(
            "The stream {stream} has never received media: no fragments found."
        )));
    }
    let stored = shared.stores.fragments(&stream).map_err(read_failed)?;
    let wanted = clip_fragments(&stream, &stored, selector)?;
    let fragments = wanted.len() as u32;
    charge(
        shared,
        &stream,
        FragmentPoints {
            metadata: fragments,
            media: fragments,
        },
    )?;
    let mut files = Vec::with_capacity(wanted.len());
    for fragment in wanted {
        let file = std::fs::read(&fragment.file).map_err(read_failed)?;
        files.push((fragment.meta.clone(), file));
    }
    match crate::store::clip::clip(&files) {
        Ok(body) => Ok(Reply::Media {
            content_type: "video/mp4",
            body,
        }),
        Err(crate::store::clip::ClipError::MissingCodecPrivateData(number)) => Err(ApiError::new(
            http::StatusCode::BAD_REQUEST,
            "MissingCodecPrivateDataException",
            format!("Fragment {number} has no H.264 track with codec private data."),
        )),
        Err(crate::store::clip::ClipError::Unreadable(number, why)) => {
            Err(read_failed(format!("fragment {number}: {why}")))
        }
    }
}

/// Take a request's `points` from `stream`'s fragment quotas ([`crate::throttle`]), or refuse it
/// with ClientLimitExceededException.
pub(crate) fn charge(
    shared: &Shared,
    stream: &str,
    points: FragmentPoints,
) -> Result<(), ApiError> {
    shared
        .throttle
        .charge_fragments(stream, points, std::time::Instant::now())
}

/// The store could not be read: an internal failure, logged.
fn read_failed(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "a stream's store could not be read");
    ApiError::new(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "InternalFailure",
        format!("The stream's fragments cannot be read: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_junk_is_refused() {
        let token = make_token("91343852333181432392682062607743920146");
        assert_eq!(
            parse_token(&token).unwrap(),
            91_343_852_333_181_432_392_682_062_607_743_920_146
        );
        for junk in ["", "not base64!", &make_token("12x"), "a2l0dGVu"] {
            let err = parse_token(junk).unwrap_err();
            assert_eq!(err.code, "InvalidArgumentException", "{junk}");
        }
    }

    #[test]
    fn a_reversed_range_is_refused_and_the_ends_are_inclusive() {
        let body = |start: f64, end: f64| {
            json!({ "FragmentSelector": {
                "FragmentSelectorType": "SERVER_TIMESTAMP",
                "TimestampRange": { "StartTimestamp": start, "EndTimestamp": end }
            }})
            .as_object()
            .cloned()
            .unwrap()
        };
        let err = selector(&body(20.0, 10.0), "FragmentSelector").unwrap_err();
        assert!(err.message.contains("before"), "{}", err.message);
        let s = selector(&body(10.0, 20.5), "FragmentSelector")
            .unwrap()
            .unwrap();
        let meta = |ms| FragmentMeta {
            fragment_number: "1".into(),
            producer_timestamp_ms: 0,
            server_timestamp_ms: ms,
            fragment_length_ms: 1000,
            fragment_size_bytes: 1,
        };
        assert!(s.admits(&meta(10_000)) && s.admits(&meta(20_500)));
        assert!(!s.admits(&meta(9_999)) && !s.admits(&meta(20_501)));
    }

    #[test]
    fn a_clip_holds_at_most_200_fragments_and_100_mb_and_at_least_one() {
        let stored = |count: usize, size: u64| -> Vec<crate::store::StoredFragment> {
            (0..count)
                .map(|i| crate::store::StoredFragment {
                    meta: FragmentMeta {
                        fragment_number: i.to_string(),
                        producer_timestamp_ms: i as i64 * 1000,
                        server_timestamp_ms: i as i64 * 1000,
                        fragment_length_ms: 1000,
                        fragment_size_bytes: size,
                    },
                    file: Default::default(),
                })
                .collect()
        };
        let all = Selector {
            producer: true,
            start_ms: 0,
            end_ms: i64::MAX,
        };
        assert_eq!(
            clip_fragments("s", &stored(200, 1), all).unwrap().len(),
            200
        );
        let err = clip_fragments("s", &stored(201, 1), all).unwrap_err();
        assert_eq!(err.code, "ClientLimitExceededException");
        assert!(err.message.contains("201 fragments"), "{}", err.message);
        let big = MAX_MEDIA_BYTES / 2;
        let (fits, too_big) = (stored(2, big), stored(3, big));
        assert_eq!(clip_fragments("s", &fits, all).unwrap().len(), 2);
        let err = clip_fragments("s", &too_big, all).unwrap_err();
        assert_eq!(err.code, "ClientLimitExceededException");
        let later = Selector {
            start_ms: 5_000,
            end_ms: 6_000,
            ..all
        };
        let (ten, three) = (stored(10, 1), stored(3, 1));
        let two = clip_fragments("s", &ten, later).unwrap();
        assert_eq!(two.len(), 2, "the ends are inclusive");
        let err = clip_fragments("s", &three, later).unwrap_err();
        assert_eq!(err.code, "ResourceNotFoundException");
        assert!(
            err.message.contains("No fragments found"),
            "{}",
            err.message
        );
    }
}
