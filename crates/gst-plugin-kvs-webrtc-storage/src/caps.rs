//! What each pad takes, and what to tell a user whose caps it refuses.

use gst::prelude::*;
use kvs_webrtc_ingest::Track;

/// The H.264 profiles a storage session records (Kinesis Video's list); an encoder such as
/// `x264enc` negotiates one of them (a 4:4:4 or 10-bit input would otherwise give High 4:4:4,
/// which the storage peer refuses).
pub(crate) const PROFILES: [&str; 6] = [
    "constrained-baseline",
    "baseline",
    "main",
    "constrained-high",
    "progressive-high",
    "high",
];

/// H.264 as WebRTC sends it: Annex-B start codes, one access unit (picture) per buffer, in a
/// profile the storage peer takes.
pub(crate) fn video() -> gst::Caps {
    gst::Caps::builder("video/x-h264")
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .field("profile", gst::List::new(PROFILES))
        .build()
}

/// Opus as WebRTC sends it: mono or stereo (channel mapping family 0).
pub(crate) fn audio() -> gst::Caps {
    gst::Caps::builder("audio/x-opus")
        .field("channel-mapping-family", 0i32)
        .build()
}

/// The caps of `track`'s pad.
pub(crate) fn of(track: Track) -> gst::Caps {
    match track {
        Track::Video => video(),
        Track::Audio => audio(),
    }
}

/// `Ok` when `track`'s pad takes `caps`, else what is wrong and how to fix the pipeline.
pub(crate) fn check(track: Track, caps: &gst::CapsRef) -> Result<(), String> {
    let wanted = of(track);
    if caps.is_fixed() && caps.can_intersect(&wanted) {
        return Ok(());
    }
    let got = caps.structure(0);
    let media = got.map_or("no caps", |s| s.name().as_str());
    let field = |name: &str| {
        got.and_then(|s| s.value(name).ok())
            .and_then(|v| v.serialize().ok())
            .map_or_else(|| "(unset)".to_owned(), |v| v.to_string())
    };
    Err(match track {
        Track::Video
            if media == "video/x-h264"
                && got
                    .and_then(|s| s.get::<&str>("profile").ok())
                    .is_some_and(|p| !PROFILES.contains(&p)) =>
        {
            format!(
                "the video pad takes H.264 in the profiles {}, not profile={}: feed the encoder \
                 8-bit 4:2:0 video (videoconvert ! video/x-raw,format=I420) or set its profile \
                 (x264enc ! video/x-h264,profile=high)",
                PROFILES.join(", "),
                field("profile")
            )
        }
        Track::Video if media == "video/x-h264" => format!(
            "the video pad takes H.264 with stream-format=byte-stream, alignment=au, not \
             stream-format={}, alignment={}: put h264parse before kvswebrtcstoragesink, \
             which converts",
            field("stream-format"),
            field("alignment")
        ),
        Track::Video => format!(
            "the video pad takes H.264 (video/x-h264, stream-format=byte-stream, alignment=au), \
             not {media}: encode with x264enc (or another H.264 encoder) and put h264parse \
             before kvswebrtcstoragesink"
        ),
        Track::Audio if media == "audio/x-opus" => format!(
            "the audio pad takes mono or stereo Opus (channel-mapping-family=0), not \
             channel-mapping-family={} with {} channels: encode with opusenc from 1 or 2 \
             channels (audioconvert ! audio/x-raw,channels=2 before it)",
            field("channel-mapping-family"),
            field("channels")
        ),
        Track::Audio => format!(
            "the audio pad takes Opus (audio/x-opus), not {media}: encode with opusenc \
             (audioconvert ! audioresample ! opusenc) before kvswebrtcstoragesink"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(text: &str) -> gst::Caps {
        gst::init().expect("GStreamer initializes");
        text.parse().expect("valid caps")
    }

    #[test]
    fn what_encoders_and_parsers_produce_is_taken() {
        let h264 = caps("video/x-h264, stream-format=byte-stream, alignment=au, profile=high, width=320, height=240");
        assert_eq!(check(Track::Video, &h264), Ok(()));
        let opus = caps("audio/x-opus, rate=48000, channels=2, channel-mapping-family=0, stream-count=1, coupled-count=1");
        assert_eq!(check(Track::Audio, &opus), Ok(()));
    }

    #[test]
    fn a_refusal_names_what_came_and_what_to_put_before_the_sink() {
        let avc = caps("video/x-h264, stream-format=avc, alignment=au");
        let message = check(Track::Video, &avc).unwrap_err();
        assert!(message.contains("stream-format=avc"), "{message}");
        assert!(message.contains("put h264parse before"), "{message}");

        let raw = caps("video/x-raw, format=I420, width=320, height=240");
        let message = check(Track::Video, &raw).unwrap_err();
        assert!(message.contains("not video/x-raw"), "{message}");
        assert!(message.contains("x264enc"), "{message}");

        let high444 =
            caps("video/x-h264, stream-format=byte-stream, alignment=au, profile=high-4:4:4");
        let message = check(Track::Video, &high444).unwrap_err();
        assert!(message.contains("not profile=high-4:4:4"), "{message}");
        assert!(message.contains("format=I420"), "{message}");

        let vp8 = caps("video/x-vp8");
        assert!(check(Track::Video, &vp8)
            .unwrap_err()
            .contains("not video/x-vp8"));

        let aac = caps("audio/mpeg, mpegversion=4");
        let message = check(Track::Audio, &aac).unwrap_err();
        assert!(message.contains("not audio/mpeg"), "{message}");
        assert!(message.contains("opusenc"), "{message}");

        let surround = caps("audio/x-opus, channels=6, channel-mapping-family=1");
        let message = check(Track::Audio, &surround).unwrap_err();
        assert!(message.contains("with 6 channels"), "{message}");
    }

    #[test]
    fn caps_that_are_not_fixed_are_not_taken() {
        let open = caps("video/x-h264, stream-format=byte-stream, alignment={ au, nal }");
        assert!(check(Track::Video, &open).is_err());
        // H.264 on the audio pad is the wrong codec, whatever its fields.
        assert!(check(
            Track::Audio,
            &caps("video/x-h264, stream-format=byte-stream, alignment=au")
        )
        .is_err());
    }
}
