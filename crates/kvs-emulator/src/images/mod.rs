//! `GetImages` (kinesis-video-archived-media): still images of a stream at a sampling
//! interval, decoded from the stored fragments ([`render`] says with what).
//!
//! The request: `StreamName|StreamARN`, `ImageSelectorType` (`PRODUCER_TIMESTAMP` or
//! `SERVER_TIMESTAMP`), `StartTimestamp` and `EndTimestamp` (at most 300 s apart),
//! `SamplingInterval` (ms, at least 200; the reference gives no default, the emulator takes
//! 3000), `Format` (`JPEG` or `PNG`), `FormatConfig` (`{"JPEGQuality": "1".."100"}`, default
//! 80), `WidthPixels` (≤ 3840, only with a height) and `HeightPixels` (≤ 2160; alone it keeps the
//! aspect, with a width it stretches), `MaxResults` (1–100; a page holds at most 25) and
//! `NextToken`. The answer: `Images` with one entry per sampled time from `StartTimestamp` on
//! (its `TimeStamp`, and either `ImageContent`, base64, or `Error`: `NO_MEDIA` when no fragment
//! covers the time, `MEDIA_ERROR` when its fragment has no decodable video), and a `NextToken`
//! while sampled times remain.
//!
//! An image is the frame nearest the sampled time in the fragment that covers it; each
//! fragment is decoded once per page, from the keyframe before the first frame wanted.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::api_error::ApiError;
use crate::playback::session::timestamp;
use crate::playback::token::TimestampKind;
use crate::shared::Shared;
use crate::store::StoredFragment;
use crate::validate;

#[cfg(feature = "images")]
mod render;
#[cfg(not(feature = "images"))]
#[path = "render_off.rs"]
mod render;

#[cfg(feature = "bench")]
pub(crate) use render::render;

/// `GetImages`' path name (`POST /getImages`).
pub(crate) const OPERATION: &str = "getImages";

/// The widest range one request samples.
const MAX_RANGE_MS: i64 = 300_000;
/// The shortest sampling interval.
const MIN_INTERVAL_MS: i64 = 200;
/// The sampling interval when the request names none (the reference gives no default).
const DEFAULT_INTERVAL_MS: i64 = 3_000;
/// The most images in one answer, whatever `MaxResults` says.
const PAGE: u64 = 25;
/// `MaxResults`' bounds.
const MAX_RESULTS: std::ops::RangeInclusive<u64> = 1..=100;
const MAX_WIDTH: u64 = 3840;
const MAX_HEIGHT: u64 = 2160;
const DEFAULT_JPEG_QUALITY: u8 = 80;
const TOKEN_PREFIX: &str = "kvs-emulator-images-from:";

/// The image format asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// JPEG at a quality of 1 to 100.
    Jpeg { quality: u8 },
    /// PNG.
    Png,
}

/// The size asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Size {
    /// The stream's own.
    Source,
    /// This height, the width keeping the aspect.
    Height(u32),
    /// Exactly this width and height (stretched).
    Exact { width: u32, height: u32 },
}

impl Size {
    /// The output size for a picture of `width` × `height` (only the renderer asks).
    #[cfg_attr(not(feature = "images"), allow(dead_code))]
    pub(crate) fn of(self, width: u32, height: u32) -> (u32, u32) {
        match self {
            Self::Source => (width, height),
            Self::Height(h) => {
                let w = (u64::from(h) * u64::from(width) + u64::from(height) / 2)
                    / u64::from(height.max(1));
                (w.clamp(1, u64::from(u32::MAX)) as u32, h)
            }
            Self::Exact { width, height } => (width, height),
        }
    }
}

/// How each image is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Output {
    /// JPEG or PNG.
    pub format: Format,
    /// The size.
    pub size: Size,
}

/// A validated `GetImages` request.
#[derive(Debug, Clone, PartialEq)]
struct Request {
    /// The clock sampled (`ImageSelectorType`).
    kind: TimestampKind,
    /// The range's start, ms.
    start_ms: i64,
    /// The first sampled time of this page (the start, or where `NextToken` left off), ms.
    from_ms: i64,
    end_ms: i64,
    interval_ms: i64,
    page: usize,
    /// `MaxResults` as asked (what the fragment quotas charge), or the page size.
    max_results: u32,
    output: Output,
}

/// Why one sampled time has no image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageError {
    /// No fragment covers the time.
    NoMedia,
    /// The fragment has no video that decodes.
    MediaError,
}

impl ImageError {
    fn code(self) -> &'static str {
        match self {
            Self::NoMedia => "NO_MEDIA",
            Self::MediaError => "MEDIA_ERROR",
        }
    }
}

/// `GetImages` with an admitted body.
pub(crate) fn get_images(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let stream = crate::archived_media::stream_name(shared, body)?;
    let request = parse(body)?;
    let retention = shared
        .registry()
        .stream(crate::registry::ResourceRef::Name(&stream))?
        .data_retention_in_hours;
    if retention == 0 {
        return Err(crate::playback::no_data_retention(&stream));
    }
    // "400 + max number of images requested" metadata points, "max number of images
    // requested" media points.
    crate::archived_media::charge(
        shared,
        &stream,
        crate::throttle::FragmentPoints {
            metadata: 400 + request.max_results,
            media: request.max_results,
        },
    )?;
    let stored = if shared.stores.has_data(&stream) {
        shared
            .stores
            .fragments(&stream)
            .map_err(crate::playback::read_failed)?
    } else {
        Vec::new()
    };
    let times = sampled_times(&request);
    let more = times.len() > request.page;
    let page = &times[..times.len().min(request.page)];
    let covering: Vec<Option<usize>> = page
        .iter()
        .map(|&t| covering_fragment(&stored, request.kind, t))
        .collect();
    let in_range = |f: &StoredFragment| {
        let start = timestamp(request.kind, &f.meta);
        start <= request.end_ms && start + f.meta.fragment_length_ms >= request.start_ms
    };
    if !stored.iter().any(in_range) {
        return Err(ApiError::not_found(format!(
            "No fragments found in the stream {stream} for the requested time range."
        )));
    }
    // Decoding takes milliseconds per frame: off the runtime's worker when it has others.
    let images = blocking(|| images_of(&stored, request.kind, page, &covering, request.output))?;
    let mut answer = json!({ "Images": images });
    if more {
        answer["NextToken"] = json!(make_token(times[request.page]));
    }
    Ok(answer)
}

/// Run `work` where it may block: through `block_in_place` on a multi-thread runtime (the
/// worker's other tasks move to another), inline on a current-thread one.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// The images of `page` (sampled times), `covering` naming each one's fragment.
fn images_of(
    stored: &[StoredFragment],
    kind: TimestampKind,
    page: &[i64],
    covering: &[Option<usize>],
    output: Output,
) -> Result<Vec<Value>, ApiError> {
    let mut images: Vec<Value> = page
        .iter()
        .map(|&t| json!({ "TimeStamp": t as f64 / 1000.0 }))
        .collect();
    let mut at = 0;
    while at < page.len() {
        let Some(index) = covering[at] else {
            images[at]["Error"] = json!(ImageError::NoMedia.code());
            at += 1;
            continue;
        };
        // The run of sampled times this fragment covers (times grow, so it is contiguous).
        let run = covering[at..]
            .iter()
            .take_while(|c| **c == Some(index))
            .count();
        let fragment = &stored[index];
        let start = timestamp(kind, &fragment.meta);
        let offsets: Vec<i64> = page[at..at + run].iter().map(|t| t - start).collect();
        let rendered = std::fs::read(&fragment.file)
            .map_err(crate::playback::read_failed)
            .map(|file| render::render(&file, &offsets, output))?;
        for (i, image) in rendered.into_iter().enumerate() {
            match image {
                Ok(bytes) => {
                    images[at + i]["ImageContent"] =
                        json!(base64::engine::general_purpose::STANDARD.encode(bytes));
                }
                Err(why) => {
                    tracing::debug!(fragment = %fragment.meta.fragment_number, error = %why, "no image");
                    images[at + i]["Error"] = json!(ImageError::MediaError.code());
                }
            }
        }
        at += run;
    }
    Ok(images)
}

/// The fragment whose span (start included, end excluded) holds `t`.
fn covering_fragment(stored: &[StoredFragment], kind: TimestampKind, t: i64) -> Option<usize> {
    stored.iter().position(|f| {
        let start = timestamp(kind, &f.meta);
        (start..start + f.meta.fragment_length_ms.max(1)).contains(&t)
    })
}

/// Every sampled time from the page's first on: `from`, `from + interval`, ... up to the end
/// (the start alone when the range is shorter than the interval).
fn sampled_times(request: &Request) -> Vec<i64> {
    let count = (request.end_ms - request.from_ms) / request.interval_ms + 1;
    (0..count.max(0))
        .map(|i| request.from_ms + i * request.interval_ms)
        .collect()
}

/// What a request body samples, for the fuzz target: (start, end, interval, page size, the
/// times of the first page and those after it).
#[cfg(feature = "fuzzing")]
pub(crate) fn sampling_of(
    body: &Map<String, Value>,
) -> Result<(i64, i64, i64, usize, Vec<i64>), ApiError> {
    let request = parse(body)?;
    let times = sampled_times(&request);
    Ok((
        request.start_ms,
        request.end_ms,
        request.interval_ms,
        request.page,
        times,
    ))
}

pub(crate) fn make_token(from_ms: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{from_ms}"))
}

fn parse_token(token: &str, start_ms: i64, end_ms: i64) -> Result<i64, ApiError> {
    let invalid = || {
        ApiError::invalid_argument("NextToken is not a token GetImages returned for this range.")
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    String::from_utf8(bytes)
        .ok()
        .and_then(|t| t.strip_prefix(TOKEN_PREFIX)?.parse::<i64>().ok())
        .filter(|from| (start_ms..=end_ms).contains(from))
        .ok_or_else(invalid)
}

/// A restJson1 timestamp member (epoch seconds, fractions allowed) as ms.
fn timestamp_ms(body: &Map<String, Value>, field: &str) -> Result<i64, ApiError> {
    match body.get(field).and_then(Value::as_f64) {
        Some(seconds) if seconds.is_finite() && (0.0..1e11).contains(&seconds) => {
            Ok((seconds * 1000.0).round() as i64)
        }
        _ => Err(ApiError::invalid_argument(format!(
            "{field} is required, a timestamp (epoch seconds)."
        ))),
    }
}

/// A required enum member: one of `allowed`.
fn one_of<'a>(
    body: &'a Map<String, Value>,
    field: &str,
    member: &str,
    allowed: &[&str],
) -> Result<&'a str, ApiError> {
    validate::enum_member(body, field, member, allowed)?.ok_or_else(|| {
        ApiError::invalid_argument(format!(
            "{field} is required: one of {}.",
            allowed.join(", ")
        ))
    })
}

/// The JPEG quality of `FormatConfig` (default 80).
fn jpeg_quality(body: &Map<String, Value>) -> Result<u8, ApiError> {
    let Some(config) = body.get("FormatConfig").filter(|v| !v.is_null()) else {
        return Ok(DEFAULT_JPEG_QUALITY);
    };
    let invalid = || {
        ApiError::invalid_argument(
            "FormatConfig must be {\"JPEGQuality\": \"<1 to 100>\"}, its only key.",
        )
    };
    let config = config
        .as_object()
        .filter(|c| c.len() == 1)
        .ok_or_else(invalid)?;
    config
        .get("JPEGQuality")
        .and_then(Value::as_str)
        .and_then(|q| q.parse::<u8>().ok())
        .filter(|q| (1..=100).contains(q))
        .ok_or_else(invalid)
}

/// Validate a request body (the stream is checked apart).
fn parse(body: &Map<String, Value>) -> Result<Request, ApiError> {
    let kind = match one_of(
        body,
        "ImageSelectorType",
        "imageSelectorType",
        &["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"],
    )? {
        "PRODUCER_TIMESTAMP" => TimestampKind::Producer,
        _ => TimestampKind::Server,
    };
    let start_ms = timestamp_ms(body, "StartTimestamp")?;
    let end_ms = timestamp_ms(body, "EndTimestamp")?;
    if end_ms < start_ms {
        return Err(ApiError::invalid_argument(
            "StartTimestamp must not be after EndTimestamp.",
        ));
    }
    if end_ms - start_ms > MAX_RANGE_MS {
        return Err(ApiError::invalid_argument(format!(
            "EndTimestamp is {} s after StartTimestamp; GetImages samples at most 300 s at once. Page through a longer span with several requests.",
            (end_ms - start_ms) as f64 / 1000.0
        )));
    }
    let interval_ms = match body.get("SamplingInterval").filter(|v| !v.is_null()) {
        None => DEFAULT_INTERVAL_MS,
        Some(v) => match v.as_i64() {
            Some(ms) if ms >= MIN_INTERVAL_MS => ms,
            _ => {
                return Err(ApiError::invalid_argument(format!(
                    "SamplingInterval is {v}; it must be at least {MIN_INTERVAL_MS} ms (5 images per second)."
                )))
            }
        },
    };
    let format = match one_of(body, "Format", "format", &["JPEG", "PNG"])? {
        "JPEG" => Format::Jpeg {
            quality: jpeg_quality(body)?,
        },
        _ => Format::Png,
    };
    let width = validate::int_member(body, "WidthPixels", "widthPixels", 1..=MAX_WIDTH)?;
    let height = validate::int_member(body, "HeightPixels", "heightPixels", 1..=MAX_HEIGHT)?;
    let size = match (width, height) {
        (None, None) => Size::Source,
        (None, Some(h)) => Size::Height(h as u32),
        (Some(w), Some(h)) => Size::Exact {
            width: w as u32,
            height: h as u32,
        },
        (Some(_), None) => {
            return Err(ApiError::invalid_argument(
                "WidthPixels needs HeightPixels: give both (the image is stretched to them) or HeightPixels alone (the width keeps the aspect).",
            ))
        }
    };
    let max_results =
        validate::int_member(body, "MaxResults", "maxResults", MAX_RESULTS)?.unwrap_or(PAGE);
    let page = max_results.min(PAGE);
    let from_ms = match validate::optional(body, "NextToken")? {
        Some(token) => parse_token(token, start_ms, end_ms)?,
        None => start_ms,
    };
    Ok(Request {
        kind,
        start_ms,
        from_ms,
        end_ms,
        interval_ms,
        page: page as usize,
        max_results: max_results as u32,
        output: Output { format, size },
    })
}

#[cfg(test)]
mod tests;
