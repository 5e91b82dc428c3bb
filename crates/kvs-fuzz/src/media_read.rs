//! The emulator's archived-media and playback parsers: an HLS or DASH session request (built
//! from the bytes with the service's member names, so that most inputs get past the first
//! check), the session token made of it (signed, verified, changed), the fragments the session
//! lists of a stream, `GetMedia`'s `StartSelector` and continuation tokens, `ListFragments`'
//! selector and `NextToken`, and `GetImages`' request and the times it samples.

use arbitrary::{Arbitrary, Unstructured};
use kvs_emulator::fuzzing::media_read::{self, FragmentMeta, SessionKey, FIRST_FRAGMENT_NUMBER};
use serde_json::{json, Map, Value};

use crate::signaling::Json;

/// "Now" of every check, ms since the epoch (a fixed time, so that a failure repeats).
const NOW_MS: i64 = 1_780_000_000_000;

/// A request member: one of its allowed values (or a wrong one), a timestamp near now, a
/// count, or any JSON.
#[derive(Debug, Arbitrary)]
enum Member {
    Pick(u8),
    SecondsAgo(f64),
    Count(u64),
    Junk(Json),
}

impl Member {
    /// The member's JSON, choosing among `allowed` (one more choice: a value not allowed).
    fn value(&self, allowed: &[&str]) -> Value {
        match self {
            Member::Pick(n) => {
                let n = usize::from(*n) % (allowed.len() + 1);
                allowed.get(n).map_or(json!("NOT_A_CHOICE"), |v| json!(v))
            }
            Member::SecondsAgo(s) if s.is_finite() => {
                json!(NOW_MS as f64 / 1000.0 - s % 200_000.0)
            }
            Member::SecondsAgo(s) => json!(s.to_string()),
            Member::Count(n) => json!(if n % 2 == 0 { n % 6_000 } else { *n }),
            Member::Junk(j) => j.value(),
        }
    }
}

/// `GetHLSStreamingSessionURL` (or DASH) with each member present or not.
#[derive(Debug, Arbitrary)]
struct SessionRequest {
    dash: bool,
    playback_mode: Option<Member>,
    selector_type: Option<Member>,
    start: Option<Member>,
    end: Option<Member>,
    range_is_junk: Option<Json>,
    container_format: Option<Member>,
    discontinuity_mode: Option<Member>,
    display_timestamp: Option<Member>,
    display_fragment_number: Option<Member>,
    expires: Option<Member>,
    max_results: Option<Member>,
}

impl SessionRequest {
    fn body(&self) -> Map<String, Value> {
        let mut body = Map::new();
        let put = |map: &mut Map<String, Value>, name: &str, m: &Option<Member>, allowed| {
            if let Some(m) = m {
                map.insert(name.to_owned(), m.value(allowed));
            }
        };
        let modes = &["LIVE", "LIVE_REPLAY", "ON_DEMAND"];
        let always = &["ALWAYS", "NEVER"];
        put(&mut body, "PlaybackMode", &self.playback_mode, modes);
        put(
            &mut body,
            "ContainerFormat",
            &self.container_format,
            &["FRAGMENTED_MP4", "MPEG_TS"],
        );
        put(
            &mut body,
            "DiscontinuityMode",
            &self.discontinuity_mode,
            &["ALWAYS", "NEVER", "ON_DISCONTINUITY"],
        );
        put(
            &mut body,
            "DisplayFragmentTimestamp",
            &self.display_timestamp,
            always,
        );
        put(
            &mut body,
            "DisplayFragmentNumber",
            &self.display_fragment_number,
            always,
        );
        put(&mut body, "Expires", &self.expires, &[]);
        let max = if self.dash {
            "MaxManifestFragmentResults"
        } else {
            "MaxMediaPlaylistFragmentResults"
        };
        put(&mut body, max, &self.max_results, &[]);
        let mut selector = Map::new();
        put(
            &mut selector,
            "FragmentSelectorType",
            &self.selector_type,
            &["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"],
        );
        if let Some(junk) = &self.range_is_junk {
            selector.insert("TimestampRange".into(), junk.value());
        } else if self.start.is_some() || self.end.is_some() {
            let mut range = Map::new();
            put(&mut range, "StartTimestamp", &self.start, &[]);
            put(&mut range, "EndTimestamp", &self.end, &[]);
            selector.insert("TimestampRange".into(), Value::Object(range));
        }
        if !selector.is_empty() {
            let name = if self.dash {
                "DASHFragmentSelector"
            } else {
                "HLSFragmentSelector"
            };
            body.insert(name.into(), Value::Object(selector));
        }
        body
    }
}

/// `GetMedia`'s `StartSelector`.
#[derive(Debug, Arbitrary)]
struct StartSelector {
    kind: Option<Member>,
    after_fragment_number: Option<String>,
    start_timestamp: Option<Member>,
    continuation_token: Option<String>,
}

impl StartSelector {
    fn body(&self) -> Map<String, Value> {
        let mut selector = Map::new();
        if let Some(kind) = &self.kind {
            let kinds = &[
                "FRAGMENT_NUMBER",
                "SERVER_TIMESTAMP",
                "PRODUCER_TIMESTAMP",
                "NOW",
                "EARLIEST",
                "CONTINUATION_TOKEN",
            ];
            selector.insert("StartSelectorType".into(), kind.value(kinds));
        }
        if let Some(n) = &self.after_fragment_number {
            selector.insert("AfterFragmentNumber".into(), json!(n));
        }
        if let Some(t) = &self.start_timestamp {
            selector.insert("StartTimestamp".into(), t.value(&[]));
        }
        if let Some(t) = &self.continuation_token {
            selector.insert("ContinuationToken".into(), json!(t));
        }
        let mut body = Map::new();
        body.insert("StartSelector".into(), Value::Object(selector));
        body
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    session: SessionRequest,
    /// A stream's fragments: the gap before each (ms), its length (ms), how late the server
    /// saw it (ms).
    fragments: Vec<(u16, u16, u8)>,
    /// How long after the session was made its playlist is asked for (s).
    asked_after_s: u16,
    /// A change to the token: where, and the new character.
    token_change: (u16, u8),
    start_selector: StartSelector,
    /// `ListFragments`' selector: type, start, end.
    list_selector: (Option<Member>, Option<Member>, Option<Member>),
    /// A fragment number for the tokens' round trips.
    number: u128,
    /// Text that a client sends as a token.
    token_text: String,
    images: ImagesRequest,
}

/// A `GetImages` enum member: one of its values (`Err`: what bytes that run out give), any
/// member, or absent.
type Choice = Result<Option<Member>, u8>;

fn put_choice(choice: &Choice, body: &mut Map<String, Value>, name: &str, allowed: &[&str]) {
    let value = match choice {
        Err(n) => json!(allowed[usize::from(*n) % allowed.len()]),
        Ok(Some(m)) => m.value(allowed),
        Ok(None) => return,
    };
    body.insert(name.to_owned(), value);
}

/// `GetImages`: the required members usually valid (the range usually a few minutes long, as
/// an offset from its start), the others present or not; its `NextToken` made for a time some
/// ms after the start, or any text.
#[derive(Debug, Arbitrary)]
struct ImagesRequest {
    selector_type: Choice,
    format: Choice,
    start: Option<Member>,
    /// `Err`: the end this many ms (modulo 400 s) after the start.
    end: Result<Option<Member>, u32>,
    interval: Option<Member>,
    quality: Option<Member>,
    width: Option<Member>,
    height: Option<Member>,
    max_results: Option<Member>,
    token: Option<Result<i32, String>>,
}

impl ImagesRequest {
    fn body(&self) -> Map<String, Value> {
        let mut body = Map::new();
        put_choice(
            &self.selector_type,
            &mut body,
            "ImageSelectorType",
            &["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"],
        );
        put_choice(&self.format, &mut body, "Format", &["JPEG", "PNG"]);
        let start_s = match &self.start {
            Some(m) => m.value(&[]),
            None => json!(NOW_MS as f64 / 1000.0 - 600.0),
        };
        let start_ms = start_s.as_f64().map_or(0, |s| (s * 1000.0) as i64);
        body.insert("StartTimestamp".into(), start_s);
        match &self.end {
            Err(after_ms) => {
                let end_ms = start_ms.saturating_add(i64::from(*after_ms % 400_000));
                body.insert("EndTimestamp".into(), json!(end_ms as f64 / 1000.0));
            }
            Ok(Some(m)) => {
                body.insert("EndTimestamp".into(), m.value(&[]));
            }
            Ok(None) => {}
        }
        let mut put = |name: &str, m: &Option<Member>, allowed: &[&str]| {
            if let Some(m) = m {
                body.insert(name.to_owned(), m.value(allowed));
            }
        };
        put("SamplingInterval", &self.interval, &[]);
        put("WidthPixels", &self.width, &[]);
        put("HeightPixels", &self.height, &[]);
        put("MaxResults", &self.max_results, &[]);
        if let Some(q) = &self.quality {
            let quality = q.value(&["1", "80", "100", "0", "101"]);
            body.insert("FormatConfig".into(), json!({ "JPEGQuality": quality }));
        }
        match &self.token {
            Some(Ok(after)) => {
                let token = media_read::images_token(start_ms.saturating_add(i64::from(*after)));
                body.insert("NextToken".into(), json!(token));
            }
            Some(Err(text)) => {
                body.insert("NextToken".into(), json!(text));
            }
            None => {}
        }
        body
    }
}

/// The stream's fragments: numbers from the first, producer timestamps growing (with the
/// gaps), server timestamps a little later.
fn fragments(spec: &[(u16, u16, u8)]) -> Vec<FragmentMeta> {
    let mut producer = NOW_MS - 3_600_000;
    spec.iter()
        .take(200)
        .enumerate()
        .map(|(i, &(gap, length, late))| {
            producer += i64::from(gap);
            let meta = FragmentMeta {
                fragment_number: (FIRST_FRAGMENT_NUMBER + i as u128).to_string(),
                producer_timestamp_ms: producer,
                server_timestamp_ms: producer + i64::from(late),
                fragment_length_ms: i64::from(length),
                fragment_size_bytes: 1000,
            };
            producer += i64::from(length);
            meta
        })
        .collect()
}

/// Whether a request's session was accepted (for the seed search).
pub fn run(data: &[u8]) -> Option<bool> {
    let input = Input::arbitrary_take_rest(Unstructured::new(data)).ok()?;
    let accepted = check_session(&input);
    check_get_media(&input);
    check_list_fragments(&input);
    check_images(&input);
    Some(accepted)
}

/// The target.
pub fn target(data: &[u8]) {
    let _ = run(data);
}

/// The session request: if accepted, claims within the service's bounds, a token that opens
/// exactly them until it expires and never once changed, and a selection that holds.
fn check_session(input: &Input) -> bool {
    let body = input.session.body();
    let Ok(claims) = media_read::session_claims(input.session.dash, &body, NOW_MS) else {
        return false;
    };
    let int = |field: &str| {
        claims[field]
            .as_i64()
            .unwrap_or_else(|| panic!("{field} in {claims}"))
    };
    assert_eq!(int("created_ms"), NOW_MS, "{claims}");
    let lifetime = int("expires_ms") - int("created_ms");
    assert!(
        (300_000..=43_200_000).contains(&lifetime),
        "Expires is 300-43200 s: {claims}"
    );
    assert!(
        (1..=5_000).contains(&int("max_results")),
        "{claims} for {body:?}"
    );
    let (start, end) = (claims["start_ms"].as_i64(), claims["end_ms"].as_i64());
    if let (Some(start), Some(end)) = (start, end) {
        assert!(start < end && end - start <= 86_400_000, "{claims}");
    }
    if claims["mode"] == "Live" {
        assert!(
            start.is_none() && end.is_none(),
            "LIVE has no range: {claims}"
        );
    }
    assert!(
        input.session.dash || body.get("ContainerFormat") != Some(&json!("MPEG_TS")),
        "MPEG_TS is refused: {claims}"
    );

    let key = SessionKey::from_bytes([25; 32]);
    let token = key.sign(&claims);
    assert_eq!(key.verify(&token, NOW_MS).as_ref(), Ok(&claims));
    let expired = key.verify(&token, int("expires_ms"));
    assert!(expired.is_err(), "accepted once expired: {expired:?}");
    let mut changed = token.clone().into_bytes();
    let at = usize::from(input.token_change.0) % changed.len();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=";
    changed[at] = alphabet[usize::from(input.token_change.1) % alphabet.len()];
    let changed = String::from_utf8(changed).expect("ASCII");
    if changed != token {
        let verified = key.verify(&changed, NOW_MS);
        assert!(
            verified.is_err(),
            "a changed token {changed} was accepted: {verified:?}"
        );
    }
    assert!(SessionKey::from_bytes([26; 32])
        .verify(&token, NOW_MS)
        .is_err());

    let stored = fragments(&input.fragments);
    let asked_at = NOW_MS + i64::from(input.asked_after_s) * 1000;
    let (listed, sequence) = media_read::select(&claims, &stored, asked_at);
    let max = usize::try_from(int("max_results")).expect("a small count");
    assert!(listed.fragments.len() <= max, "{listed:?} over {max}");
    assert!(
        listed.fragments.windows(2).all(|w| w[0] < w[1])
            && listed.fragments.iter().all(|&i| i < stored.len()),
        "{listed:?} of {}",
        stored.len()
    );
    assert!(
        sequence.windows(2).all(|w| w[0] < w[1]),
        "media sequence numbers grow: {sequence:?}"
    );
    assert_eq!(listed.discontinuity.len(), listed.fragments.len());
    assert_ne!(listed.discontinuity.first(), Some(&true), "{listed:?}");
    let producer = claims["kind"] == "Producer";
    for &i in &listed.fragments {
        let meta = &stored[i];
        let t = if producer {
            meta.producer_timestamp_ms
        } else {
            meta.server_timestamp_ms
        };
        assert!(
            start.is_none_or(|s| t >= s) && end.is_none_or(|e| t <= e),
            "fragment {i} at {t} outside {claims}"
        );
    }
    match claims["mode"].as_str() {
        Some("OnDemand") => assert!(listed.ended, "ON_DEMAND ends: {listed:?}"),
        Some("Live") => assert!(!listed.ended, "LIVE never ends: {listed:?}"),
        _ => {}
    }
    true
}

/// `GetMedia`: any selector is a start or a refusal; a continuation token resumes after the
/// number it was made for, and any text is a token or a refusal.
fn check_get_media(input: &Input) {
    let _ = media_read::get_media_start(&input.start_selector.body());
    let number = input.number.to_string();
    assert_eq!(
        media_read::parse_continuation_token(&media_read::continuation_token(&number)),
        Ok(input.number)
    );
    if let Ok(n) = media_read::parse_continuation_token(&input.token_text) {
        let again = media_read::continuation_token(&n.to_string());
        assert_eq!(media_read::parse_continuation_token(&again), Ok(n));
    }
}

/// `ListFragments`: an accepted selector is an ordered range; `NextToken` round-trips.
fn check_list_fragments(input: &Input) {
    let (kind, start, end) = &input.list_selector;
    let mut range = Map::new();
    if let Some(s) = start {
        range.insert("StartTimestamp".into(), s.value(&[]));
    }
    if let Some(e) = end {
        range.insert("EndTimestamp".into(), e.value(&[]));
    }
    let mut selector = Map::new();
    if let Some(k) = kind {
        selector.insert(
            "FragmentSelectorType".into(),
            k.value(&["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"]),
        );
    }
    selector.insert("TimestampRange".into(), Value::Object(range));
    let mut body = Map::new();
    body.insert("FragmentSelector".into(), Value::Object(selector));
    if let Ok(Some((_, start, end))) = media_read::fragment_selector(&body, "FragmentSelector") {
        assert!(start <= end, "{start} > {end} accepted");
    }
    let number = input.number.to_string();
    assert_eq!(
        media_read::parse_next_token(&media_read::next_token(&number)),
        Ok(input.number)
    );
    let _ = media_read::parse_next_token(&input.token_text);
}

/// `GetImages`: an accepted request spans at most 300 s, samples at least 200 ms apart from
/// within its range, and pages hold 1 to 25 images.
fn check_images(input: &Input) {
    let body = input.images.body();
    let Ok(sampling) = media_read::images_sampling(&body) else {
        return;
    };
    let media_read::ImagesSampling {
        start_ms,
        end_ms,
        interval_ms,
        page,
        times,
    } = &sampling;
    assert!(
        start_ms <= end_ms && end_ms - start_ms <= 300_000,
        "{sampling:?}"
    );
    assert!(
        *interval_ms >= 200 && (1..=25).contains(page),
        "{sampling:?}"
    );
    let first = *times.first().expect("at least one sampled time");
    assert!(
        first >= *start_ms && times.len() <= 1501,
        "{body:?}: {sampling:?}"
    );
    assert!(times.iter().all(|t| t <= end_ms), "{sampling:?}");
    assert!(
        times.windows(2).all(|w| w[1] - w[0] == *interval_ms),
        "{sampling:?}"
    );
}
