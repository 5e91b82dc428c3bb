//! `GetHLSStreamingSessionURL` and `GetDASHStreamingSessionURL`: the request's validation, in
//! the service's terms, into the [`Claims`] a session token carries ([`request_claims`]); and
//! what a session shows at a given time ([`select`]): which of the stream's fragments its media
//! playlists (or its manifest) list, where the discontinuity markers go, and whether the
//! playlist has ended. DASH names the selector `DASHFragmentSelector` and the maximum
//! `MaxManifestFragmentResults`, has no `ContainerFormat` or `DiscontinuityMode`, and adds
//! `DisplayFragmentNumber`; the rest is the same.
//!
//! - `PlaybackMode` `LIVE` (default): no `TimestampRange`; the newest
//!   `MaxMediaPlaylistFragmentResults` (default 5) fragments, following ingestion; the stream
//!   must have a fragment that ended in the last 30 s
//!   ([`Timings::live_playback_recent_media`](crate::Timings)).
//! - `LIVE_REPLAY`: a `StartTimestamp`, an optional `EndTimestamp`; fragments from the start
//!   appear at the pace they were ingested (a fragment `t` after the first is listed `t` after
//!   the session was made), the newest `MaxMediaPlaylistFragmentResults` (default 5) of them;
//!   with an end, the playlist ends once every fragment in range is listed and none can come.
//! - `ON_DEMAND`: both ends; the first `MaxMediaPlaylistFragmentResults` (default 1000)
//!   fragments in range, `#EXT-X-PLAYLIST-TYPE:VOD`, `#EXT-X-ENDLIST`.
//!
//! Ends are inclusive and compare with each fragment's start; the end must be later than the
//! start and within 24 h of it, and in the past for `SERVER_TIMESTAMP`.

use serde_json::{Map, Value};

use super::token::{Claims, DiscontinuityMode, PlaybackMode, Protocol, TimestampKind};
use crate::api_error::ApiError;
use crate::store::FragmentMeta;
use crate::validate;

/// Shortest `Expires` (s).
pub(crate) const MIN_EXPIRES_S: u64 = 300;
/// Longest `Expires` (s).
pub(crate) const MAX_EXPIRES_S: u64 = 43_200;
/// Most fragments a media playlist may be asked to hold.
pub(crate) const MAX_PLAYLIST_FRAGMENTS: u64 = 5_000;
/// Longest range (ms): 24 h.
const MAX_RANGE_MS: i64 = 24 * 3_600_000;
/// ON_DISCONTINUITY: a fragment starting further than this (ms) from where the one before it
/// ended starts a discontinuity.
const GAP_TOLERANCE_MS: i64 = 1;

/// A restJson1 timestamp member (epoch seconds, fractions allowed) of `selector`'s range as ms.
fn timestamp_ms(
    range: &Map<String, Value>,
    selector: &str,
    field: &str,
) -> Result<Option<i64>, ApiError> {
    match range.get(field).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(seconds) if seconds.is_finite() && seconds >= 0.0 => {
                Ok(Some((seconds * 1000.0).round() as i64))
            }
            _ => Err(ApiError::invalid_argument(format!(
                "{selector}.TimestampRange.{field} must be a timestamp."
            ))),
        },
    }
}

/// The members a protocol names differently: (selector, its path in validation messages, the
/// maximum, its path).
pub(crate) fn member_names(protocol: Protocol) -> [&'static str; 4] {
    match protocol {
        Protocol::Hls => [
            "HLSFragmentSelector",
            "hLSFragmentSelector",
            "MaxMediaPlaylistFragmentResults",
            "maxMediaPlaylistFragmentResults",
        ],
        Protocol::Dash => [
            "DASHFragmentSelector",
            "dASHFragmentSelector",
            "MaxManifestFragmentResults",
            "maxManifestFragmentResults",
        ],
    }
}

/// The claims of a `protocol` session for `body` (already admitted), on the stream `stream`
/// (`arn`), made at `now_ms`, accepting an `Expires` from `min_expires_s` (the service: 300).
/// Checks the request alone; whether the stream has the media is the caller's.
pub(crate) fn request_claims(
    protocol: Protocol,
    body: &Map<String, Value>,
    stream: &str,
    arn: &str,
    now_ms: i64,
    min_expires_s: u64,
) -> Result<Claims, ApiError> {
    let [sel, sel_member, max_field, max_member] = member_names(protocol);
    let mode = match validate::enum_member(
        body,
        "PlaybackMode",
        "playbackMode",
        &["LIVE", "LIVE_REPLAY", "ON_DEMAND"],
    )? {
        None | Some("LIVE") => PlaybackMode::Live,
        Some("LIVE_REPLAY") => PlaybackMode::LiveReplay,
        Some(_) => PlaybackMode::OnDemand,
    };
    let selector = match body.get(sel).filter(|v| !v.is_null()) {
        None => None,
        Some(v) => Some(
            v.as_object()
                .ok_or_else(|| ApiError::invalid_argument(format!("{sel} must be an object.")))?,
        ),
    };
    let empty = Map::new();
    let selector = selector.unwrap_or(&empty);
    let kind = match validate::enum_member(
        selector,
        "FragmentSelectorType",
        &format!("{sel_member}.fragmentSelectorType"),
        &["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"],
    )? {
        Some("PRODUCER_TIMESTAMP") => TimestampKind::Producer,
        _ => TimestampKind::Server,
    };
    let range = match selector.get("TimestampRange").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => Some(v.as_object().ok_or_else(|| {
            ApiError::invalid_argument(format!("{sel}.TimestampRange must be an object."))
        })?),
    };
    let (start_ms, end_ms) = match range {
        None => (None, None),
        Some(r) => (
            timestamp_ms(r, sel, "StartTimestamp")?,
            timestamp_ms(r, sel, "EndTimestamp")?,
        ),
    };
    match mode {
        PlaybackMode::Live if range.is_some() => {
            return Err(ApiError::invalid_argument(
                format!("{sel}.TimestampRange must not be present when PlaybackMode is LIVE."),
            ))
        }
        PlaybackMode::LiveReplay if start_ms.is_none() => {
            return Err(ApiError::invalid_argument(
                format!("{sel}.TimestampRange.StartTimestamp is required when PlaybackMode is LIVE_REPLAY."),
            ))
        }
        PlaybackMode::OnDemand if start_ms.is_none() || end_ms.is_none() => {
            return Err(ApiError::invalid_argument(
                format!("{sel}.TimestampRange with StartTimestamp and EndTimestamp is required when PlaybackMode is ON_DEMAND."),
            ))
        }
        _ => {}
    }
    if range.is_some() && start_ms.is_none() {
        return Err(ApiError::invalid_argument(format!(
            "{sel}.TimestampRange.StartTimestamp is required when a TimestampRange is given."
        )));
    }
    if let (Some(start), Some(end)) = (start_ms, end_ms) {
        if end <= start {
            return Err(ApiError::invalid_argument(
                "The EndTimestamp must be later than the StartTimestamp.",
            ));
        }
        if end - start > MAX_RANGE_MS {
            return Err(ApiError::invalid_argument(
                "The EndTimestamp must be within 24 hours of the StartTimestamp.",
            ));
        }
        if kind == TimestampKind::Server && end > now_ms {
            return Err(ApiError::invalid_argument(
                "The EndTimestamp must be in the past when FragmentSelectorType is SERVER_TIMESTAMP.",
            ));
        }
    }
    if protocol == Protocol::Hls
        && validate::enum_member(
            body,
            "ContainerFormat",
            "containerFormat",
            &["FRAGMENTED_MP4", "MPEG_TS"],
        )? == Some("MPEG_TS")
    {
        return Err(ApiError::invalid_argument(
            "ContainerFormat MPEG_TS is not supported by the emulator; use FRAGMENTED_MP4 (the default).",
        ));
    }
    let asked_discontinuity = match protocol {
        Protocol::Hls => validate::enum_member(
            body,
            "DiscontinuityMode",
            "discontinuityMode",
            &["ALWAYS", "NEVER", "ON_DISCONTINUITY"],
        )?,
        // DASH has no markers: the manifest's timeline shows gaps itself.
        Protocol::Dash => Some("NEVER"),
    };
    let discontinuity = match asked_discontinuity {
        Some("ALWAYS") => DiscontinuityMode::Always,
        Some("NEVER") => DiscontinuityMode::Never,
        Some(_) => DiscontinuityMode::OnDiscontinuity,
        // The service's defaults: markers everywhere for server timestamps, none for the
        // producer's.
        None if kind == TimestampKind::Server => DiscontinuityMode::Always,
        None => DiscontinuityMode::Never,
    };
    let display_timestamp = validate::enum_member(
        body,
        "DisplayFragmentTimestamp",
        "displayFragmentTimestamp",
        &["ALWAYS", "NEVER"],
    )? == Some("ALWAYS");
    let display_fragment_number = protocol == Protocol::Dash
        && validate::enum_member(
            body,
            "DisplayFragmentNumber",
            "displayFragmentNumber",
            &["ALWAYS", "NEVER"],
        )? == Some("ALWAYS");
    let expires_s =
        validate::int_member(body, "Expires", "expires", min_expires_s..=MAX_EXPIRES_S)?
            .unwrap_or(MIN_EXPIRES_S);
    let max_results =
        validate::int_member(body, max_field, max_member, 1..=MAX_PLAYLIST_FRAGMENTS)?.unwrap_or(
            if mode == PlaybackMode::OnDemand {
                1000
            } else {
                5
            },
        );
    Ok(Claims {
        protocol,
        stream: stream.to_owned(),
        arn: arn.to_owned(),
        mode,
        kind,
        start_ms,
        end_ms,
        discontinuity,
        display_timestamp,
        display_fragment_number,
        max_results: max_results as u32,
        created_ms: now_ms,
        expires_ms: now_ms + expires_s as i64 * 1000,
    })
}

/// The timestamp of `meta` a session selects on and displays.
pub(crate) fn timestamp(kind: TimestampKind, meta: &FragmentMeta) -> i64 {
    match kind {
        TimestampKind::Producer => meta.producer_timestamp_ms,
        TimestampKind::Server => meta.server_timestamp_ms,
    }
}

/// Whether the session's range holds `meta` (LIVE: every fragment).
pub(crate) fn admits(claims: &Claims, meta: &FragmentMeta) -> bool {
    let t = timestamp(claims.kind, meta);
    claims.start_ms.is_none_or(|s| t >= s) && claims.end_ms.is_none_or(|e| t <= e)
}

/// What a session's media playlists show at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    /// Indexes into the stream's fragments (oldest first) of those listed, oldest first.
    pub listed: Vec<usize>,
    /// For each listed fragment, whether a discontinuity marker precedes it.
    pub discontinuity: Vec<bool>,
    /// The discontinuity sequence number of the first listed fragment: markers before it,
    /// listed or not (`#EXT-X-DISCONTINUITY-SEQUENCE`).
    pub discontinuity_sequence: u64,
    /// No fragment will be added (`#EXT-X-ENDLIST`).
    pub ended: bool,
}

/// What the session `claims` lists of `stored` (the stream's fragments, oldest first) at
/// `now_ms`.
pub(crate) fn select(claims: &Claims, stored: &[FragmentMeta], now_ms: i64) -> Selection {
    let in_range: Vec<usize> = (0..stored.len())
        .filter(|&i| admits(claims, &stored[i]))
        .collect();
    let max = claims.max_results.max(1) as usize;
    let (window, ended) = match claims.mode {
        PlaybackMode::Live => (in_range.len().saturating_sub(max)..in_range.len(), false),
        PlaybackMode::OnDemand => (0..in_range.len().min(max), true),
        PlaybackMode::LiveReplay => {
            let first = in_range
                .first()
                .map(|&i| timestamp(claims.kind, &stored[i]));
            let elapsed = now_ms - claims.created_ms;
            let visible = in_range
                .iter()
                .take_while(|&&i| {
                    first.is_some_and(|f| timestamp(claims.kind, &stored[i]) - f <= elapsed)
                })
                .count();
            let past_end = claims.end_ms.is_some_and(|end| {
                end < now_ms
                    || stored
                        .last()
                        .is_some_and(|m| timestamp(claims.kind, m) > end)
            });
            (
                visible.saturating_sub(max)..visible,
                past_end && visible == in_range.len(),
            )
        }
    };
    let marks: Vec<bool> = in_range
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            n > 0
                && match claims.discontinuity {
                    DiscontinuityMode::Always => true,
                    DiscontinuityMode::Never => false,
                    DiscontinuityMode::OnDiscontinuity => {
                        let (prev, this) = (&stored[in_range[n - 1]], &stored[i]);
                        let expected = prev.producer_timestamp_ms + prev.fragment_length_ms;
                        (this.producer_timestamp_ms - expected).abs() > GAP_TOLERANCE_MS
                    }
                }
        })
        .collect();
    let discontinuity_sequence = marks[..window.start.min(marks.len())]
        .iter()
        .chain(marks.get(window.start))
        .filter(|m| **m)
        .count() as u64;
    let mut discontinuity: Vec<bool> = marks[window.clone()].to_vec();
    // The first listed fragment's marker, if any, is counted in the sequence number instead.
    if let Some(first) = discontinuity.first_mut() {
        *first = false;
    }
    Selection {
        listed: in_range[window].to_vec(),
        discontinuity,
        discontinuity_sequence,
        ended,
    }
}

/// The media sequence number of a fragment: how many fragment numbers the stream had before it
/// (fragment numbers count up by one from [`crate::store::disk::FIRST_FRAGMENT_NUMBER`]), so it
/// grows by one per fragment and stays the same across requests.
pub(crate) fn media_sequence(meta: &FragmentMeta) -> u64 {
    meta.fragment_number
        .parse::<u128>()
        .map_or(0, |n| {
            n.saturating_sub(crate::store::disk::FIRST_FRAGMENT_NUMBER)
        })
        .min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_780_000_100_000;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn claims_of(v: Value) -> Result<Claims, ApiError> {
        request_claims(
            Protocol::Hls,
            &body(v),
            "cam",
            "arn:cam",
            NOW,
            MIN_EXPIRES_S,
        )
    }

    fn on_demand(start: f64, end: f64) -> Value {
        json!({
            "PlaybackMode": "ON_DEMAND",
            "HLSFragmentSelector": {
                "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}
            }
        })
    }

    #[test]
    fn defaults_follow_the_service() {
        let live = claims_of(json!({})).unwrap();
        assert_eq!(live.mode, PlaybackMode::Live);
        assert_eq!(live.kind, TimestampKind::Server);
        assert_eq!(live.discontinuity, DiscontinuityMode::Always);
        assert!(!live.display_timestamp);
        assert_eq!(live.max_results, 5);
        assert_eq!(live.expires_ms, NOW + 300_000);
        let od = claims_of(on_demand(1000.0, 1010.0)).unwrap();
        assert_eq!(od.max_results, 1000);
        assert_eq!(od.discontinuity, DiscontinuityMode::Never);
        assert_eq!((od.start_ms, od.end_ms), (Some(1_000_000), Some(1_010_000)));
        let mut v = on_demand(1000.0, 1010.0);
        v["Expires"] = json!(43_200);
        v["MaxMediaPlaylistFragmentResults"] = json!(5000);
        v["DisplayFragmentTimestamp"] = json!("ALWAYS");
        v["DiscontinuityMode"] = json!("ON_DISCONTINUITY");
        let c = claims_of(v).unwrap();
        assert_eq!(c.expires_ms, NOW + 43_200_000);
        assert_eq!(c.max_results, 5000);
        assert!(c.display_timestamp);
        assert_eq!(c.discontinuity, DiscontinuityMode::OnDiscontinuity);
    }

    #[test]
    fn dash_requests_use_their_own_member_names() {
        let dash = |v: Value| {
            request_claims(
                Protocol::Dash,
                &body(v),
                "cam",
                "arn:cam",
                NOW,
                MIN_EXPIRES_S,
            )
        };
        let c = dash(json!({
            "PlaybackMode": "ON_DEMAND",
            "DASHFragmentSelector": {
                "FragmentSelectorType": "SERVER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": 1000, "EndTimestamp": 1010}
            },
            "DisplayFragmentNumber": "ALWAYS",
            "MaxManifestFragmentResults": 7,
            // HLS members mean nothing to DASH.
            "ContainerFormat": "MPEG_TS",
            "MaxMediaPlaylistFragmentResults": 3
        }))
        .unwrap();
        assert_eq!(c.protocol, Protocol::Dash);
        assert_eq!((c.start_ms, c.end_ms), (Some(1_000_000), Some(1_010_000)));
        assert!(c.display_fragment_number);
        assert_eq!(c.max_results, 7);
        assert_eq!(c.discontinuity, DiscontinuityMode::Never);
        let err = dash(json!({"PlaybackMode": "ON_DEMAND"})).unwrap_err();
        assert!(
            err.message.contains("DASHFragmentSelector"),
            "{}",
            err.message
        );
        let err = dash(json!({"MaxManifestFragmentResults": 5001})).unwrap_err();
        assert!(
            err.message.contains("maxManifestFragmentResults"),
            "{}",
            err.message
        );
        assert!(
            !claims_of(json!({"DisplayFragmentNumber": "ALWAYS"}))
                .unwrap()
                .display_fragment_number
        );
    }

    #[test]
    fn bad_requests_get_invalid_argument() {
        let cases = [
            (on_demand(1010.0, 1000.0), "later than"),
            (on_demand(1000.0, 1000.0), "later than"),
            (on_demand(1000.0, 1000.0 + 86_401.0), "24 hours"),
            (json!({"PlaybackMode": "ON_DEMAND"}), "required"),
            (
                json!({"PlaybackMode": "LIVE_REPLAY"}),
                "StartTimestamp is required",
            ),
            (
                json!({"PlaybackMode": "LIVE", "HLSFragmentSelector": {"TimestampRange": {"StartTimestamp": 1}}}),
                "must not be present",
            ),
            (json!({"PlaybackMode": "LATER"}), "enum value set"),
            (
                json!({"ContainerFormat": "MPEG_TS"}),
                "not supported by the emulator",
            ),
            (json!({"ContainerFormat": "MKV"}), "enum value set"),
            (json!({"Expires": 299}), "between 300 and 43200"),
            (json!({"Expires": 43_201}), "between 300 and 43200"),
            (
                json!({"MaxMediaPlaylistFragmentResults": 0}),
                "between 1 and 5000",
            ),
            (
                json!({"MaxMediaPlaylistFragmentResults": 5001}),
                "between 1 and 5000",
            ),
            (json!({"DiscontinuityMode": "SOMETIMES"}), "enum value set"),
            (
                json!({"PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": {
                    "FragmentSelectorType": "SERVER_TIMESTAMP",
                    "TimestampRange": {"StartTimestamp": NOW as f64 / 1000.0 - 60.0, "EndTimestamp": NOW as f64 / 1000.0 + 60.0}}}),
                "in the past",
            ),
        ];
        for (v, words) in cases {
            let err = claims_of(v.clone()).unwrap_err();
            assert_eq!(err.code, "InvalidArgumentException", "{v}");
            assert!(err.message.contains(words), "{v}: {}", err.message);
        }
    }

    /// Fragments of 1 s, back to back from producer time 1000 s, numbered from the first
    /// fragment number, stored 500 ms after their producer time.
    fn stored(count: usize) -> Vec<FragmentMeta> {
        (0..count)
            .map(|i| FragmentMeta {
                fragment_number: (crate::store::disk::FIRST_FRAGMENT_NUMBER + i as u128)
                    .to_string(),
                producer_timestamp_ms: 1_000_000 + i as i64 * 1000,
                server_timestamp_ms: 1_000_500 + i as i64 * 1000,
                fragment_length_ms: 1000,
                fragment_size_bytes: 100,
            })
            .collect()
    }

    fn claims(mode: PlaybackMode, start: Option<i64>, end: Option<i64>, max: u32) -> Claims {
        Claims {
            mode,
            start_ms: start,
            end_ms: end,
            max_results: max,
            ..super::super::token::tests::claims("cam")
        }
    }

    #[test]
    fn live_lists_the_newest_fragments_with_a_growing_sequence() {
        let c = claims(PlaybackMode::Live, None, None, 5);
        let s = select(&c, &stored(3), NOW);
        assert_eq!(s.listed, [0, 1, 2]);
        assert!(!s.ended);
        let more = stored(8);
        let s = select(&c, &more, NOW);
        assert_eq!(s.listed, [3, 4, 5, 6, 7]);
        assert_eq!(media_sequence(&more[s.listed[0]]), 3);
        assert_eq!(select(&c, &[], NOW).listed, Vec::<usize>::new());
    }

    #[test]
    fn on_demand_lists_the_range_up_to_the_maximum_and_ends() {
        let c = claims(
            PlaybackMode::OnDemand,
            Some(1_002_000),
            Some(1_005_000),
            1000,
        );
        let s = select(&c, &stored(10), NOW);
        assert_eq!(s.listed, [2, 3, 4, 5], "both ends inclusive");
        assert!(s.ended);
        let s = select(
            &claims(PlaybackMode::OnDemand, Some(1_002_000), Some(1_005_000), 2),
            &stored(10),
            NOW,
        );
        assert_eq!(s.listed, [2, 3]);
    }

    #[test]
    fn live_replay_lists_fragments_at_their_ingestion_pace() {
        let mut c = claims(
            PlaybackMode::LiveReplay,
            Some(1_002_000),
            Some(1_004_000),
            5,
        );
        c.created_ms = NOW;
        let all = stored(10);
        assert_eq!(select(&c, &all, NOW).listed, [2]);
        let s = select(&c, &all, NOW + 1_500);
        assert_eq!((s.listed.clone(), s.ended), (vec![2, 3], false));
        let s = select(&c, &all, NOW + 2_000);
        assert_eq!((s.listed.clone(), s.ended), (vec![2, 3, 4], true));
        c.end_ms = None;
        let s = select(&c, &all, NOW + 60_000);
        assert_eq!((s.listed.clone(), s.ended), (vec![5, 6, 7, 8, 9], false));
    }

    #[test]
    fn discontinuities_follow_the_mode() {
        let mut all = stored(6);
        // A gap of 5 s before the fifth fragment (a new ingestion session).
        for m in &mut all[4..] {
            m.producer_timestamp_ms += 5_000;
        }
        let mut c = claims(PlaybackMode::OnDemand, Some(0), Some(2_000_000), 1000);
        c.discontinuity = DiscontinuityMode::OnDiscontinuity;
        let s = select(&c, &all, NOW);
        assert_eq!(s.discontinuity, [false, false, false, false, true, false]);
        assert_eq!(s.discontinuity_sequence, 0);
        c.discontinuity = DiscontinuityMode::Always;
        let s = select(&c, &all, NOW);
        assert_eq!(s.discontinuity, [false, true, true, true, true, true]);
        c.discontinuity = DiscontinuityMode::Never;
        assert!(select(&c, &all, NOW).discontinuity.iter().all(|d| !d));
        // A live window that starts after two markers counts them.
        let live = Claims {
            discontinuity: DiscontinuityMode::Always,
            ..claims(PlaybackMode::Live, None, None, 3)
        };
        let s = select(&live, &all, NOW);
        assert_eq!(s.listed, [3, 4, 5]);
        assert_eq!(s.discontinuity, [false, true, true]);
        assert_eq!(s.discontinuity_sequence, 3);
    }
}
