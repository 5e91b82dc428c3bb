//! `kinesis-video-media` `GetMedia` (restJson1, `POST /getMedia`) over the stream store: a
//! long-lived, chunked `video/webm` body of the stream's fragments in fragment-number order,
//! each its own Matroska document (EBML header, Segment) tagged with
//! `AWS_KINESISVIDEO_FRAGMENT_NUMBER`, `_SERVER_TIMESTAMP`, `_PRODUCER_TIMESTAMP`,
//! `_CONTINUATION_TOKEN` and `_MILLIS_BEHIND_NOW` ([`crate::store::tagged`]).
//!
//! - `StartSelector.StartSelectorType`: `EARLIEST` (the oldest fragment kept), `NOW` (the
//!   fragments stored after the request), `FRAGMENT_NUMBER` (those after `AfterFragmentNumber`,
//!   which the stream must keep), `SERVER_TIMESTAMP` / `PRODUCER_TIMESTAMP` (from the fragment
//!   that holds `StartTimestamp`, or the first after it), `CONTINUATION_TOKEN` (those after the
//!   fragment whose tags carried `ContinuationToken`).
//! - Following live ingestion: stored fragments go whole ([`Step::Stored`]); once none is left,
//!   the response streams the fragment being assembled as the service does, frame by frame:
//!   the storage session's writer publishes each frame to the store's live view
//!   ([`crate::store::live`]) and wakes the readers through the store's notification (a
//!   `tokio::sync::watch`, no polling); the document (unknown-size Segment and Cluster) gets a
//!   SimpleBlock per frame as it arrives and its Tags once the fragment is stored
//!   ([`Step::Live`]). A frame reaches the reader milliseconds after the storage peer got it
//!   (about one GOP if it had to wait for the whole fragment). A reader so slow that its live
//!   fragment leaves the view (a few fragments) ends; it resumes with its last token.
//! - The response ends, as the service's does, when no fragment has been available for
//!   [`Timings::get_media_idle_timeout`](crate::Timings) (AWS: 3 s), after
//!   [`Timings::get_media_max_duration`](crate::Timings), when the stream is gone from the
//!   registry, at shutdown, or when the client disconnects (the task ends with it). A reader
//!   resumes with the last `AWS_KINESISVIDEO_CONTINUATION_TOKEN` it read.
//! - Limits: 5 calls per second per stream (`ClientLimitExceededException`, through the
//!   throttle), at most 3 open responses per stream (`ConnectionLimitExceededException` for the
//!   newest). Errors: `ResourceNotFoundException` for an unknown stream or one that never had
//!   media, `InvalidArgumentException` for a bad selector, a malformed continuation token or a
//!   fragment number the stream does not keep.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::api_error::ApiError;
use crate::json_api::Reply;
use crate::shared::Shared;
use crate::store::disk::StreamStore;
use crate::store::FragmentMeta;
use crate::validate;

/// The request path.
pub(crate) const OPERATION: &str = "getMedia";

/// Open GetMedia responses one stream allows ("more than three concurrent GetMedia
/// connections" are refused).
const MAX_READERS_PER_STREAM: usize = 3;

/// Chunks (a stored fragment, or a live document's new frames) that may wait in the response
/// channel: bounds what a slow reader holds in memory.
const CHANNEL_FRAGMENTS: usize = 8;

const TOKEN_PREFIX: &str = "kvs-emulator-getmedia-after:";

/// Where a GetMedia response starts, as the request's `StartSelector` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// The oldest fragment kept.
    Earliest,
    /// Fragments stored after the request.
    Now,
    /// Fragments after this number (`FRAGMENT_NUMBER`; must be kept).
    AfterFragment(u128),
    /// From the fragment that holds this time (ms), or the first after it.
    Timestamp {
        /// Producer (true) or server timestamps.
        producer: bool,
        /// Epoch ms.
        ms: i64,
    },
    /// Fragments after this number (`CONTINUATION_TOKEN`).
    Continuation(u128),
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid_argument(message)
}

/// Parse a request's `StartSelector`.
pub(crate) fn parse_start(body: &Map<String, Value>) -> Result<Start, ApiError> {
    let Some(selector) = body.get("StartSelector").and_then(Value::as_object) else {
        return Err(invalid("StartSelector is required."));
    };
    let kind = selector.get("StartSelectorType").and_then(Value::as_str);
    let string = |field: &str| selector.get(field).and_then(Value::as_str);
    match kind {
        Some("EARLIEST") => Ok(Start::Earliest),
        Some("NOW") => Ok(Start::Now),
        Some("FRAGMENT_NUMBER") => {
            let number = string("AfterFragmentNumber")
                .ok_or_else(|| invalid("FRAGMENT_NUMBER needs StartSelector.AfterFragmentNumber."))?;
            parse_number(number).map(Start::AfterFragment).ok_or_else(|| {
                invalid(format!(
                    "AfterFragmentNumber {} is not a fragment number.",
                    validate::shown(number)
                ))
            })
        }
        Some(kind @ ("SERVER_TIMESTAMP" | "PRODUCER_TIMESTAMP")) => {
            match selector.get("StartTimestamp").and_then(Value::as_f64) {
                Some(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(Start::Timestamp {
                    producer: kind == "PRODUCER_TIMESTAMP",
                    ms: (seconds * 1000.0).round() as i64,
                }),
                _ => Err(invalid(format!(
                    "{kind} needs StartSelector.StartTimestamp (epoch seconds)."
                ))),
            }
        }
        Some("CONTINUATION_TOKEN") => {
            let token = string("ContinuationToken").ok_or_else(|| {
                invalid("CONTINUATION_TOKEN needs StartSelector.ContinuationToken.")
            })?;
            parse_token(token).map(Start::Continuation)
        }
        other => Err(invalid(format!(
            "1 validation error detected: Value '{}' at 'startSelector.startSelectorType' failed to satisfy constraint: Member must satisfy enum value set: [FRAGMENT_NUMBER, SERVER_TIMESTAMP, PRODUCER_TIMESTAMP, NOW, EARLIEST, CONTINUATION_TOKEN]",
            other.map_or("null".into(), validate::shown)
        ))),
    }
}

/// A fragment number as the API writes it (`^[0-9]+$`, at most 128 characters).
fn parse_number(number: &str) -> Option<u128> {
    (!number.is_empty() && number.len() <= 128 && number.bytes().all(|b| b.is_ascii_digit()))
        .then(|| number.parse().ok())
        .flatten()
}

/// The continuation token that resumes after fragment `number` (`[A-Za-z0-9_-]`, as the
/// model's pattern allows).
pub(crate) fn make_token(number: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{number}"))
}

/// The fragment number a continuation token resumes after.
pub(crate) fn parse_token(token: &str) -> Result<u128, ApiError> {
    let refused = || {
        invalid(format!(
            "ContinuationToken {} is not a token GetMedia returned.",
            validate::shown(token)
        ))
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| refused())?;
    let text = String::from_utf8(bytes).map_err(|_| refused())?;
    text.strip_prefix(TOKEN_PREFIX)
        .and_then(parse_number)
        .ok_or_else(refused)
}

/// Where a response is in its stream: which fragment it sends next. Sans-IO: it is given the
/// store's index each time and never touches a file, clock or task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follow {
    /// Send fragments numbered above this.
    After(u128),
    /// Send the first fragment whose span reaches this time, then go on after it.
    From {
        /// Producer (true) or server timestamps.
        producer: bool,
        /// Epoch ms.
        ms: i64,
    },
}

impl Follow {
    /// The position `start` names in a stream whose index is `stored` at the request.
    pub(crate) fn new(start: Start, stored: &[FragmentMeta]) -> Self {
        match start {
            Start::Earliest => Self::After(0),
            Start::Now => Self::After(stored.iter().filter_map(number).max().unwrap_or(0)),
            Start::AfterFragment(n) | Start::Continuation(n) => Self::After(n),
            Start::Timestamp { producer, ms } => Self::From { producer, ms },
        }
    }

    /// The next fragment to send from `stored` (oldest first), if the store has it yet.
    pub(crate) fn next<'a>(&self, stored: &'a [FragmentMeta]) -> Option<&'a FragmentMeta> {
        match *self {
            Self::After(after) => stored.iter().find(|m| number(m).is_some_and(|n| n > after)),
            Self::From { producer, ms } => stored.iter().find(|m| {
                let start = if producer {
                    m.producer_timestamp_ms
                } else {
                    m.server_timestamp_ms
                };
                start + m.fragment_length_ms.max(1) > ms
            }),
        }
    }

    /// `meta` was sent (or is gone): go on after it.
    pub(crate) fn sent(&mut self, meta: &FragmentMeta) {
        if let Some(n) = number(meta) {
            *self = Self::After(n);
        }
    }
}

fn number(meta: &FragmentMeta) -> Option<u128> {
    meta.fragment_number.parse().ok()
}

/// One open response counted against its stream's limit; uncounted when dropped.
struct ReaderSlot {
    shared: Arc<Shared>,
    stream: String,
}

impl Drop for ReaderSlot {
    fn drop(&mut self) {
        self.shared.stores.remove_reader(&self.stream);
    }
}

/// Serve an admitted GetMedia request: check it, then start the task that writes the body.
pub(crate) fn get_media(
    shared: &Arc<Shared>,
    body: &Map<String, Value>,
) -> Result<Reply, ApiError> {
    let stream = crate::archived_media::stream_name(shared, body)?;
    let start = parse_start(body)?;
    if !shared.stores.has_data(&stream) {
        return Err(ApiError::not_found(format!(
            "The stream {stream} has no media: nothing was ever stored in it."
        )));
    }
    let store = shared.stores.stream(&stream).map_err(read_failed)?;
    let follow = {
        let store = store.lock().unwrap_or_else(|e| e.into_inner());
        if let Start::AfterFragment(n) = start {
            if !store.fragments().iter().any(|m| number(m) == Some(n)) {
                return Err(invalid(format!(
                    "The stream {stream} has no fragment {n} (AfterFragmentNumber)."
                )));
            }
        }
        Follow::new(start, store.fragments())
    };
    if !shared.stores.add_reader(&stream, MAX_READERS_PER_STREAM) {
        return Err(ApiError::new(
            http::StatusCode::BAD_REQUEST,
            "ConnectionLimitExceededException",
            format!(
                "The stream {stream} already has {MAX_READERS_PER_STREAM} GetMedia connections."
            ),
        ));
    }
    let slot = ReaderSlot {
        shared: shared.clone(),
        stream: stream.clone(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_FRAGMENTS);
    tokio::spawn(async move {
        let end = run(&slot.shared, &stream, &store, follow, &tx).await;
        tracing::debug!(stream, ?end, "GetMedia response ended");
        drop(slot);
    });
    Ok(Reply::MediaStream {
        content_type: "video/webm",
        body: rx,
    })
}

/// Why a GetMedia response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    ClientGone,
    Idle,
    MaxDuration,
    StreamGone,
    Shutdown,
    ReadFailed,
    FellBehind,
}

/// A live document being streamed: its fragment (by producer start) and the frames sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LiveCursor {
    producer_start_ms: i64,
    sent: usize,
}

/// What a response sends next.
#[derive(Debug)]
pub(crate) enum Step {
    /// A stored fragment, whole (its file, unless pruned meanwhile).
    Stored(FragmentMeta, Option<std::path::PathBuf>),
    /// The next bytes of a live document.
    Live(Vec<u8>),
    /// Nothing yet: wait for the store.
    Wait,
    /// The fragment being streamed live left the live view (the reader fell behind).
    Lost,
}

/// The tags GetMedia adds after the standard three: the token that resumes after `meta`, and
/// how far behind the newest data it is.
fn extra_tags(meta: &FragmentMeta, now_ms: i64) -> [(&'static str, String); 2] {
    [
        (
            "AWS_KINESISVIDEO_CONTINUATION_TOKEN",
            make_token(&meta.fragment_number),
        ),
        (
            "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW",
            now_ms
                .saturating_sub(meta.server_timestamp_ms)
                .max(0)
                .to_string(),
        ),
    ]
}

/// The next thing a response at `follow` (and `live`) sends from `store`, at wall-clock
/// `now_ms`. Sans-IO: stored fragments first (whole), then, once none is left, the fragment
/// being assembled, as a live document whose frames go out as they arrive and which ends with
/// its Tags once the fragment is stored.
pub(crate) fn step(
    store: &StreamStore,
    follow: &mut Follow,
    live: &mut Option<LiveCursor>,
    now_ms: i64,
) -> Step {
    use crate::store::live::{document_start, simple_block};
    if let Some(cursor) = live.as_mut() {
        let Some(fragment) = store
            .live()
            .fragments()
            .iter()
            .find(|f| f.producer_start_ms == cursor.producer_start_ms)
        else {
            return Step::Lost;
        };
        let mut out = Vec::new();
        for frame in &fragment.frames[cursor.sent.min(fragment.frames.len())..] {
            out.extend(simple_block(frame, fragment.producer_start_ms));
        }
        cursor.sent = fragment.frames.len();
        if let Some(meta) = &fragment.stored {
            let extra = extra_tags(meta, now_ms);
            let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
            out.extend(crate::store::tagged::tags(meta, &extra));
            follow.sent(meta);
            *live = None;
        }
        return if out.is_empty() {
            Step::Wait
        } else {
            Step::Live(out)
        };
    }
    if let Some(meta) = follow.next(store.fragments()) {
        return Step::Stored(meta.clone(), store.path_of(&meta.fragment_number));
    }
    if let Follow::After(_) = follow {
        if let Some(fragment) = store.live().fragments().iter().find(|f| f.stored.is_none()) {
            let mut out = document_start(fragment);
            for frame in &fragment.frames {
                out.extend(simple_block(frame, fragment.producer_start_ms));
            }
            *live = Some(LiveCursor {
                producer_start_ms: fragment.producer_start_ms,
                sent: fragment.frames.len(),
            });
            return Step::Live(out);
        }
    }
    Step::Wait
}

/// Write the body: stored fragments, then the stream's fragments as they are assembled, until
/// an [`End`].
async fn run(
    shared: &Shared,
    stream: &str,
    store: &std::sync::Mutex<StreamStore>,
    mut follow: Follow,
    tx: &tokio::sync::mpsc::Sender<Bytes>,
) -> End {
    let timings = &shared.config.timings;
    let max_end = tokio::time::Instant::now() + timings.get_media_max_duration;
    let mut appended = store.lock().unwrap_or_else(|e| e.into_inner()).subscribe();
    let mut idle_end = tokio::time::Instant::now() + timings.get_media_idle_timeout;
    let mut live = None;
    loop {
        appended.borrow_and_update();
        loop {
            let next = {
                let store = store.lock().unwrap_or_else(|e| e.into_inner());
                step(&store, &mut follow, &mut live, epoch_ms())
            };
            let chunk = match next {
                Step::Wait => break,
                Step::Lost => return End::FellBehind,
                Step::Live(bytes) => bytes,
                Step::Stored(meta, path) => {
                    follow.sent(&meta);
                    match stored_document(stream, &meta, path).await {
                        Ok(Some(doc)) => doc,
                        Ok(None) => continue,
                        Err(end) => return end,
                    }
                }
            };
            if tx.send(Bytes::from(chunk)).await.is_err() {
                return End::ClientGone;
            }
            idle_end = tokio::time::Instant::now() + timings.get_media_idle_timeout;
        }
        if shared
            .registry()
            .stream(crate::registry::ResourceRef::Name(stream))
            .is_err()
        {
            return End::StreamGone;
        }
        tokio::select! {
            changed = appended.changed() => if changed.is_err() { return End::StreamGone },
            () = tokio::time::sleep_until(idle_end) => return End::Idle,
            () = tokio::time::sleep_until(max_end) => return End::MaxDuration,
            () = tx.closed() => return End::ClientGone,
            () = shared.shutdown.cancelled() => return End::Shutdown,
        }
    }
}

/// A stored fragment as a tagged document; `None` when it was pruned meanwhile.
async fn stored_document(
    stream: &str,
    meta: &FragmentMeta,
    path: Option<std::path::PathBuf>,
) -> Result<Option<Vec<u8>>, End> {
    let Some(path) = path else { return Ok(None) };
    let file = match tokio::fs::read(path).await {
        Ok(file) => file,
        // Pruned (retention, size cap) between the index read and the file read.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            tracing::error!(stream, error = %e, "a fragment could not be read for GetMedia");
            return Err(End::ReadFailed);
        }
    };
    let extra = extra_tags(meta, epoch_ms());
    let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
    crate::store::tagged::tagged_with(file, meta, &extra)
        .map(Some)
        .map_err(|e| {
            tracing::error!(stream, error = %e, "a fragment could not be tagged for GetMedia");
            End::ReadFailed
        })
}

/// The wall clock in epoch ms (for `AWS_KINESISVIDEO_MILLIS_BEHIND_NOW`).
fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn read_failed(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "a stream's store could not be opened for GetMedia");
    ApiError::new(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "InternalFailure",
        format!("The stream's fragments cannot be read: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(selector: Value) -> Map<String, Value> {
        json!({ "StreamName": "s", "StartSelector": selector })
            .as_object()
            .cloned()
            .unwrap()
    }

    fn meta(number: u128, server_ms: i64) -> FragmentMeta {
        FragmentMeta {
            fragment_number: number.to_string(),
            producer_timestamp_ms: server_ms - 100,
            server_timestamp_ms: server_ms,
            fragment_length_ms: 1000,
            fragment_size_bytes: 1,
        }
    }

    #[test]
    fn every_selector_type_parses_and_bad_ones_are_refused() {
        let ok = |v| parse_start(&body(v)).unwrap();
        assert_eq!(
            ok(json!({"StartSelectorType": "EARLIEST"})),
            Start::Earliest
        );
        assert_eq!(ok(json!({"StartSelectorType": "NOW"})), Start::Now);
        assert_eq!(
            ok(json!({"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": "917"})),
            Start::AfterFragment(917)
        );
        assert_eq!(
            ok(json!({"StartSelectorType": "SERVER_TIMESTAMP", "StartTimestamp": 12.5})),
            Start::Timestamp {
                producer: false,
                ms: 12_500
            }
        );
        assert_eq!(
            ok(json!({"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": 3})),
            Start::Timestamp {
                producer: true,
                ms: 3_000
            }
        );
        assert_eq!(
            ok(
                json!({"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": make_token("42")})
            ),
            Start::Continuation(42)
        );
        for bad in [
            json!(null),
            json!({"StartSelectorType": "LATEST"}),
            json!({}),
            json!({"StartSelectorType": "FRAGMENT_NUMBER"}),
            json!({"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": "12a"}),
            json!({"StartSelectorType": "SERVER_TIMESTAMP"}),
            json!({"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": -1}),
            json!({"StartSelectorType": "CONTINUATION_TOKEN"}),
            json!({"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": "junk!"}),
        ] {
            let err = parse_start(&body(bad.clone())).unwrap_err();
            assert_eq!(err.code, "InvalidArgumentException", "{bad}");
        }
    }

    #[test]
    fn a_token_round_trips_fits_the_model_and_junk_is_refused() {
        let token = make_token("91343852333181432392682062607743920146");
        assert!(token.len() <= 128, "{token}");
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        assert_eq!(
            parse_token(&token).unwrap(),
            91_343_852_333_181_432_392_682_062_607_743_920_146
        );
        let other_prefix = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode("kvs-emulator-fragments-after:5");
        for junk in [
            "",
            "not base64!",
            &make_token("12x"),
            &make_token(""),
            &other_prefix,
        ] {
            assert_eq!(
                parse_token(junk).unwrap_err().code,
                "InvalidArgumentException",
                "{junk}"
            );
        }
    }

    #[test]
    fn the_follow_state_sends_each_fragment_once_in_order_and_waits_for_new_ones() {
        let mut stored = vec![meta(10, 1_000), meta(11, 2_000), meta(12, 3_000)];
        let drain = |follow: &mut Follow, stored: &[FragmentMeta]| {
            let mut sent = Vec::new();
            while let Some(m) = follow.next(stored) {
                sent.push(m.fragment_number.clone());
                follow.sent(&m.clone());
            }
            sent
        };
        let mut earliest = Follow::new(Start::Earliest, &stored);
        assert_eq!(drain(&mut earliest, &stored), ["10", "11", "12"]);
        let mut now = Follow::new(Start::Now, &stored);
        assert_eq!(drain(&mut now, &stored), Vec::<String>::new());
        let mut after = Follow::new(Start::AfterFragment(10), &stored);
        assert_eq!(drain(&mut after, &stored), ["11", "12"]);
        // 2.5 s lies inside fragment 11 (2.0–3.0 s): it starts there.
        let mut from = Follow::new(
            Start::Timestamp {
                producer: false,
                ms: 2_500,
            },
            &stored,
        );
        assert_eq!(drain(&mut from, &stored), ["11", "12"]);
        // Producer timestamps are 100 ms earlier: 2.95 s is in fragment 12's span (2.9–3.9 s).
        let mut producer = Follow::new(
            Start::Timestamp {
                producer: true,
                ms: 2_950,
            },
            &stored,
        );
        assert_eq!(drain(&mut producer, &stored), ["12"]);

        // A fragment appended later reaches every reader once; the oldest pruned meanwhile
        // changes nothing for a reader past it.
        stored.push(meta(13, 4_000));
        stored.remove(0);
        for follow in [
            &mut earliest,
            &mut now,
            &mut after,
            &mut from,
            &mut producer,
        ] {
            assert_eq!(drain(follow, &stored), ["13"]);
            assert_eq!(drain(follow, &stored), Vec::<String>::new());
        }
        // A continuation token resumes right after the fragment it was read with.
        let mut resumed = Follow::new(
            Start::Continuation(parse_token(&make_token("11")).unwrap()),
            &stored,
        );
        assert_eq!(drain(&mut resumed, &stored), ["12", "13"]);
    }

    fn assembled(start: i64, frames: usize) -> crate::store::fragmenter::Fragment {
        crate::store::fragmenter::Fragment {
            producer_start_ms: start,
            server_start_ms: start,
            duration_ms: 1000,
            video: crate::store::fragmenter::test_params(),
            frames: (0..frames)
                .map(|i| crate::store::fragmenter::StoredFrame {
                    track: kvs_media::mkv::VIDEO_TRACK,
                    timestamp_ms: start + 40 * i as i64,
                    keyframe: i == 0,
                    data: vec![7; 3],
                })
                .collect(),
            bytes: 3 * frames,
        }
    }

    #[test]
    fn stored_fragments_go_whole_then_the_one_in_assembly_frame_by_frame() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = StreamStore::open(dir.path()).unwrap();
        let aac = kvs_media::mkv::AacParams {
            audio_specific_config: vec![0x11, 0x90],
            sample_rate: 48_000,
            channels: 2,
        };
        let first = store.append(&assembled(1_000, 25), Some(&aac)).unwrap();
        store.publish_live(&assembled(2_000, 2), &aac);
        let mut follow = Follow::new(Start::Earliest, store.fragments());
        let mut live = None;
        let mut next = |store: &StreamStore, follow: &mut Follow| {
            let step = step(store, follow, &mut live, 10_000);
            if let Step::Stored(meta, _) = &step {
                follow.sent(meta);
            }
            step
        };
        assert!(matches!(next(&store, &mut follow), Step::Stored(m, Some(_)) if m == first));
        let Step::Live(start) = next(&store, &mut follow) else {
            panic!("the live document")
        };
        assert_eq!(
            &start[..4],
            &[0x1A, 0x45, 0xDF, 0xA3],
            "an EBML header first"
        );
        assert!(
            matches!(next(&store, &mut follow), Step::Wait),
            "nothing new yet"
        );
        store.publish_live(&assembled(2_000, 3), &aac);
        let Step::Live(block) = next(&store, &mut follow) else {
            panic!("the new frame")
        };
        assert_eq!(block[0], 0xA3, "one SimpleBlock");
        assert_eq!(block.len(), 9 + 4 + 3);
        // Stored with one more frame: that frame, then the Tags, and the reader goes on after it.
        let second = store.append(&assembled(2_000, 4), Some(&aac)).unwrap();
        let Step::Live(end) = next(&store, &mut follow) else {
            panic!("the end of the document")
        };
        assert_eq!(end[0], 0xA3);
        assert_eq!(
            &end[16..20],
            &[0x12, 0x54, 0xC3, 0x67],
            "the Tags after the last block"
        );
        let tags = String::from_utf8_lossy(&end);
        assert!(
            tags.contains(&second.fragment_number)
                && tags.contains(&make_token(&second.fragment_number))
        );
        assert!(matches!(next(&store, &mut follow), Step::Wait));
        assert_eq!(
            follow,
            Follow::After(second.fragment_number.parse().unwrap())
        );

        // A reader whose live fragment left the view (too far behind) is told so.
        store.publish_live(&assembled(3_000, 1), &aac);
        assert!(matches!(next(&store, &mut follow), Step::Live(_)));
        for i in 0..6 {
            let fragment = assembled(3_000 + 1000 * i, 1);
            store.publish_live(&fragment, &aac);
            store.append(&fragment, Some(&aac)).unwrap();
        }
        assert!(matches!(next(&store, &mut follow), Step::Lost));
    }
}
