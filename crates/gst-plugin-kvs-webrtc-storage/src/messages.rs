//! The library's events as element messages on the bus, and the `stats` property.

use kvs_webrtc_ingest::{IngestEvent, JoinReason, Stats, Track, TrackStats};

/// The prefix of every element message's structure name.
pub(crate) const PREFIX: &str = "kvswebrtcstoragesink-";

fn named(what: &str) -> gst::structure::Builder {
    gst::Structure::builder(format!("{PREFIX}{what}"))
}

fn clock_time(duration: std::time::Duration) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX))
}

/// The element message for `event`; `None` for a warning (posted as a `GST_ELEMENT_WARNING`
/// instead) and for events added to the library later.
pub(crate) fn event_structure(event: &IngestEvent) -> Option<gst::Structure> {
    Some(match event {
        IngestEvent::StateChanged(state) => named("state").field("state", state.as_str()).build(),
        IngestEvent::Joining { reason, attempt } => named("joining")
            .field("reason", reason.to_string())
            .field("attempt", *attempt)
            .field("rejoin", *reason != JoinReason::Start)
            .build(),
        IngestEvent::OfferAnswered { replaced_session } => named("offer-answered")
            .field("replaced-session", *replaced_session)
            .build(),
        IngestEvent::Connected { after_offer } => named("connected")
            .field("after-offer", clock_time(*after_offer))
            .build(),
        IngestEvent::FirstFrameSent(track) => {
            named("first-frame").field("track", track.as_str()).build()
        }
        IngestEvent::KeyframeRequested => named("keyframe-requested").build(),
        IngestEvent::SourceEnded(track) => {
            named("source-ended").field("track", track.as_str()).build()
        }
        IngestEvent::RelayAllocated {
            server,
            transport,
            relayed,
        } => named("relay-allocated")
            .field("server", server.as_str())
            .field("transport", transport.as_str())
            .field("relayed", relayed.to_string())
            .build(),
        IngestEvent::RelayFailed { server, reason } => named("relay-failed")
            .field("server", server.as_str())
            .field("reason", reason.as_str())
            .build(),
        IngestEvent::Stopped { reason } => {
            named("stopped").field("reason", reason.as_str()).build()
        }
        IngestEvent::EventsLost { count } => named("events-lost").field("count", *count).build(),
        _ => return None,
    })
}

/// What the element counts itself, besides the library's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ElementCounts {
    /// Video buffers pushed into the library.
    pub(crate) video_buffers: u64,
    /// Of those, keyframes (buffers without `DELTA_UNIT`).
    pub(crate) video_keyframes: u64,
    /// Audio buffers pushed into the library.
    pub(crate) audio_buffers: u64,
    /// Buffers dropped before the library (outside the segment).
    pub(crate) clipped: u64,
    /// Upstream force-key-unit events sent for the storage peer's keyframe requests.
    pub(crate) force_key_unit_sent: u64,
}

fn track_fields(
    mut builder: gst::structure::Builder,
    track: Track,
    stats: &TrackStats,
) -> gst::structure::Builder {
    let dropped =
        stats.dropped_not_connected + stats.dropped_waiting_for_keyframe + stats.dropped_late;
    let mut fields = vec![
        ("frames-sent", stats.frames_sent),
        ("bytes-sent", stats.bytes_sent),
        ("dropped", dropped),
        ("packets-sent", stats.packets_sent),
        ("nacks-received", stats.nacks_received),
        ("bitrate", stats.bitrate_bps),
    ];
    if track == Track::Video {
        fields.extend([
            ("keyframes-sent", stats.keyframes_sent),
            (
                "dropped-waiting-for-keyframe",
                stats.dropped_waiting_for_keyframe,
            ),
            ("keyframe-requests", stats.keyframe_requests),
        ]);
    }
    for (name, value) in fields {
        builder = builder.field(format!("{}-{name}", track.as_str()), value);
    }
    builder
}

/// The `stats` property: `state` is the library's (or `stopped` before the first start).
pub(crate) fn stats_structure(stats: Option<&Stats>, counts: ElementCounts) -> gst::Structure {
    let state = stats.map_or("stopped", |s| s.state.as_str());
    let empty = Stats::default();
    let stats = stats.unwrap_or(&empty);
    let mut builder = named("stats")
        .field("state", state)
        .field("joins", stats.joins)
        .field("rejoins", stats.rejoins)
        .field("sessions-connected", stats.sessions_connected)
        .field_if_some("rtt", stats.rtt.map(clock_time))
        .field("video-buffers", counts.video_buffers)
        .field("video-buffer-keyframes", counts.video_keyframes)
        .field("audio-buffers", counts.audio_buffers)
        .field("buffers-clipped", counts.clipped)
        .field("force-key-unit-sent", counts.force_key_unit_sent);
    builder = track_fields(builder, Track::Video, &stats.video);
    builder = track_fields(builder, Track::Audio, &stats.audio);
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvs_webrtc_ingest::IngestState;

    #[test]
    fn events_become_named_structures_with_their_fields() {
        gst::init().expect("GStreamer initializes");
        let rejoin = event_structure(&IngestEvent::Joining {
            reason: JoinReason::GoAway,
            attempt: 1,
        })
        .expect("a message");
        assert_eq!(rejoin.name(), "kvswebrtcstoragesink-joining");
        assert_eq!(rejoin.get::<bool>("rejoin"), Ok(true));
        assert_eq!(rejoin.get::<&str>("reason"), Ok("GO_AWAY"));
        assert_eq!(rejoin.get::<u32>("attempt"), Ok(1));
        let start = event_structure(&IngestEvent::Joining {
            reason: JoinReason::Start,
            attempt: 1,
        })
        .expect("a message");
        assert_eq!(start.get::<bool>("rejoin"), Ok(false));

        let state =
            event_structure(&IngestEvent::StateChanged(IngestState::Streaming)).expect("a message");
        assert_eq!(state.get::<&str>("state"), Ok("streaming"));
        let first = event_structure(&IngestEvent::FirstFrameSent(Track::Audio)).expect("a message");
        assert_eq!(first.name(), "kvswebrtcstoragesink-first-frame");
        assert_eq!(first.get::<&str>("track"), Ok("audio"));
        let connected = event_structure(&IngestEvent::Connected {
            after_offer: std::time::Duration::from_millis(30),
        })
        .expect("a message");
        assert_eq!(
            connected.get::<gst::ClockTime>("after-offer"),
            Ok(gst::ClockTime::from_mseconds(30))
        );
        assert_eq!(event_structure(&IngestEvent::Warning("w".into())), None);
    }

    #[test]
    fn stats_carry_the_library_counters_and_the_elements() {
        gst::init().expect("GStreamer initializes");
        let counts = ElementCounts {
            video_buffers: 150,
            force_key_unit_sent: 2,
            ..ElementCounts::default()
        };
        let before = stats_structure(None, counts);
        assert_eq!(before.get::<&str>("state"), Ok("stopped"));
        assert_eq!(before.get::<u64>("video-buffers"), Ok(150));
        assert_eq!(before.get::<u64>("force-key-unit-sent"), Ok(2));
        assert!(!before.has_field("rtt"));
        let mut stats = Stats::default();
        stats.state = IngestState::Streaming;
        stats.video.frames_sent = 149;
        stats.video.dropped_late = 1;
        stats.rejoins = 1;
        let running = stats_structure(Some(&stats), counts);
        assert_eq!(running.get::<&str>("state"), Ok("streaming"));
        assert_eq!(running.get::<u64>("video-frames-sent"), Ok(149));
        assert_eq!(running.get::<u64>("video-dropped"), Ok(1));
        assert_eq!(running.get::<u64>("rejoins"), Ok(1));
        assert!(running.has_field("video-keyframe-requests"));
        assert!(!running.has_field("audio-keyframe-requests"));
    }
}
