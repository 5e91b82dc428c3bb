//! The text of a DASH manifest (ISO/IEC 23009-1 MPD, `isoff-live` profile): one period, a video
//! adaptation set and, with audio, an audio one, each a `SegmentTemplate` over the session's
//! fragments (`$Number$`: a fragment's sequence number, see
//! [`super::session::media_sequence`]) with a `SegmentTimeline` in milliseconds. A pure
//! function of what the session selected; the routes fill it in.
//!
//! ON_DEMAND is a `static` presentation that starts at its first fragment. LIVE and LIVE_REPLAY
//! are `dynamic`, with the availability start time at the epoch and the timeline in producer
//! milliseconds since it, so a fragment is available when its producer time has passed, as a
//! player computes from its own clock. `DisplayFragmentNumber` and `DisplayFragmentTimestamp`
//! add `kvs:fn` (the fragment number) and `kvs:ts` (its timestamp, ms since the epoch) to each
//! `S` element, as the service does.

use std::fmt::Write as _;

use super::hls::iso8601_ms;

/// The namespace of the `kvs:` attributes.
pub(crate) const KVS_NAMESPACE: &str = "https://kinesisvideo.amazonaws.com/ns/dash";

/// What the manifest says about the tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tracks {
    /// The video's `codecs` (`avc1.PPCCLL`).
    pub video_codec: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The audio's `codecs` and sampling rate, when the stream has AAC.
    pub audio: Option<(String, u32)>,
    /// Peak bits per second (`bandwidth`).
    pub bandwidth: u64,
}

/// One fragment of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Its sequence number (`$Number$`).
    pub number: u64,
    /// Its producer start, ms since the epoch (`S@t`).
    pub start_ms: i64,
    /// Its duration in ms (`S@d`).
    pub duration_ms: i64,
    /// `kvs:fn`.
    pub fragment_number: Option<String>,
    /// `kvs:ts`, ms since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// A manifest's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// `dynamic` (LIVE, LIVE_REPLAY until it ends) or `static`.
    pub dynamic: bool,
    /// When it was made, ms since the epoch (`publishTime`).
    pub now_ms: i64,
    /// The tracks.
    pub tracks: Tracks,
    /// The fragments, oldest first (consecutive sequence numbers).
    pub segments: Vec<Segment>,
}

fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

/// The MPD for `manifest`; URLs carry `token`.
pub(crate) fn mpd(manifest: &Manifest, token: &str) -> String {
    let first = manifest.segments.first();
    let start = first.map_or(0, |s| s.start_ms);
    let end = manifest
        .segments
        .last()
        .map_or(start, |s| s.start_ms + s.duration_ms);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = write!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" xmlns:kvs=\"{KVS_NAMESPACE}\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" minBufferTime=\"PT2.000S\""
    );
    // Static: the presentation starts at the first fragment. Dynamic: at the epoch.
    let offset_ms = if manifest.dynamic {
        let window = end - start;
        let _ = write!(
            out,
            " type=\"dynamic\" availabilityStartTime=\"1970-01-01T00:00:00Z\" publishTime=\"{}\" minimumUpdatePeriod=\"PT1.000S\" timeShiftBufferDepth=\"{}\" suggestedPresentationDelay=\"PT3.000S\"",
            iso8601_ms(manifest.now_ms),
            duration(window.max(1000))
        );
        0
    } else {
        let _ = write!(
            out,
            " type=\"static\" mediaPresentationDuration=\"{}\"",
            duration(end - start)
        );
        start
    };
    out.push_str(">\n  <Period id=\"0\" start=\"PT0.000S\">\n");
    let tracks = &manifest.tracks;
    let _ = writeln!(
        out,
        "    <AdaptationSet id=\"1\" contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\">\n      <Representation id=\"1\" codecs=\"{}\" width=\"{}\" height=\"{}\" bandwidth=\"{}\">",
        tracks.video_codec,
        tracks.width,
        tracks.height,
        tracks.bandwidth.max(1)
    );
    template(&mut out, manifest, token, 1, offset_ms);
    out.push_str("      </Representation>\n    </AdaptationSet>\n");
    if let Some((codec, rate)) = &tracks.audio {
        let _ = writeln!(
            out,
            "    <AdaptationSet id=\"2\" contentType=\"audio\" mimeType=\"audio/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\">\n      <Representation id=\"2\" codecs=\"{codec}\" audioSamplingRate=\"{rate}\" bandwidth=\"{}\">",
            tracks.bandwidth.max(1)
        );
        template(&mut out, manifest, token, 2, offset_ms);
        out.push_str("      </Representation>\n    </AdaptationSet>\n");
    }
    out.push_str("  </Period>\n</MPD>\n");
    out
}

/// One track's `SegmentTemplate` with the timeline.
fn template(out: &mut String, manifest: &Manifest, token: &str, track: u8, offset_ms: i64) {
    let start_number = manifest.segments.first().map_or(0, |s| s.number);
    let _ = writeln!(
        out,
        "        <SegmentTemplate timescale=\"1000\" presentationTimeOffset=\"{offset_ms}\" startNumber=\"{start_number}\" initialization=\"getMP4InitFragment.mp4?SessionToken={token}&amp;TrackNumber={track}\" media=\"getMP4MediaFragment.mp4?SessionToken={token}&amp;TrackNumber={track}&amp;SequenceNumber=$Number$\">\n          <SegmentTimeline>"
    );
    for s in &manifest.segments {
        let _ = write!(
            out,
            "            <S t=\"{}\" d=\"{}\"",
            s.start_ms,
            s.duration_ms.max(1)
        );
        if let Some(number) = &s.fragment_number {
            let _ = write!(out, " kvs:fn=\"{number}\"");
        }
        if let Some(ts) = s.timestamp_ms {
            let _ = write!(out, " kvs:ts=\"{ts}\"");
        }
        out.push_str("/>\n");
    }
    out.push_str("          </SegmentTimeline>\n        </SegmentTemplate>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(dynamic: bool, audio: bool) -> Manifest {
        Manifest {
            dynamic,
            now_ms: 1_780_000_010_000,
            tracks: Tracks {
                video_codec: "avc1.42c01e".into(),
                width: 320,
                height: 240,
                audio: audio.then(|| ("mp4a.40.2".to_owned(), 48_000)),
                bandwidth: 200_000,
            },
            segments: (0..3)
                .map(|i| Segment {
                    number: 40 + i,
                    start_ms: 1_780_000_000_000 + i as i64 * 1000,
                    duration_ms: 1000,
                    fragment_number: Some(format!("9{i}")),
                    timestamp_ms: (i == 1).then_some(1_780_000_001_234),
                })
                .collect(),
        }
    }

    #[test]
    fn an_on_demand_manifest_is_static_and_starts_at_its_first_fragment() {
        let text = mpd(&manifest(false, true), "T.S");
        assert!(
            text.contains("type=\"static\" mediaPresentationDuration=\"PT3.000S\""),
            "{text}"
        );
        assert!(text.contains("presentationTimeOffset=\"1780000000000\" startNumber=\"40\""));
        assert!(text.contains(
            "media=\"getMP4MediaFragment.mp4?SessionToken=T.S&amp;TrackNumber=2&amp;SequenceNumber=$Number$\""
        ));
        assert!(text.contains("codecs=\"avc1.42c01e\" width=\"320\" height=\"240\""));
        assert!(text.contains("codecs=\"mp4a.40.2\" audioSamplingRate=\"48000\""));
        assert!(text.contains(
            "<S t=\"1780000001000\" d=\"1000\" kvs:fn=\"91\" kvs:ts=\"1780000001234\"/>"
        ));
        assert_eq!(text.matches("<S ").count(), 6, "three per track");
    }

    #[test]
    fn a_live_manifest_is_dynamic_on_the_epoch_and_may_lack_audio() {
        let text = mpd(&manifest(true, false), "T.S");
        assert!(text.contains("type=\"dynamic\" availabilityStartTime=\"1970-01-01T00:00:00Z\" publishTime=\"2026-05-28T20:26:50.000Z\""), "{text}");
        assert!(text.contains("timeShiftBufferDepth=\"PT3.000S\""), "{text}");
        assert!(text.contains("presentationTimeOffset=\"0\""));
        assert!(!text.contains("audio"), "{text}");
        assert_eq!(text.matches("<AdaptationSet").count(), 1);
    }
}
