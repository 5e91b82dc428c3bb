//! `gst_check::Harness` tests of `kvswebrtcstoragesink`: its caps, its properties, EOS, and
//! the storage peer's keyframe request arriving upstream as a force-key-unit event. Those that
//! stream do so into an emulator on 127.0.0.1.

mod common;

use common::{audio_buffers, init, is_element_message, video_buffers, BusLog, Rig};
use gst::prelude::*;
use gst_check::Harness;
use gstkvswebrtcstorage::{IceTransportPolicy, Role};
use kvs_test_support::WAIT;

/// A harness on each of the element's request pads.
/// A harness starts the element as soon as it links to a sink pad, so both pads are requested
/// first (a master needs both).
fn harnesses(element: &gst::Element) -> (Harness, Harness) {
    request_pads(element, &["video", "audio"]);
    let video = Harness::with_element(element, Some("video"), None);
    let audio = Harness::with_element(element, Some("audio"), None);
    (video, audio)
}

/// Request the pads `names` of `element`, with sinks that do not preroll.
fn request_pads(element: &gst::Element, names: &[&str]) {
    for name in names {
        element
            .request_pad_simple(name)
            .unwrap_or_else(|| panic!("the {name} pad"));
    }
    no_preroll(element);
}

/// The harness pushes both pads from one thread and wants its state changes done at once:
/// the sinks inside the bin do not preroll (`async=false`), as for any sink under a harness.
fn no_preroll(element: &gst::Element) {
    let bin = element
        .downcast_ref::<gst::Bin>()
        .expect("the element is a bin");
    for sink in bin.children() {
        sink.set_property("async", false);
    }
}

/// An emulator with the channel `channel`, an element for it (see [`streaming_element`]) and
/// a playing harness on each pad whose stream has started (stream-start, caps, a segment).
fn streaming(channel: &str) -> (Rig, gst::Element, BusLog, Harness, Harness) {
    let rig = Rig::start(channel);
    let (element, bus) = streaming_element(&rig);
    let (mut video, mut audio) = harnesses(&element);
    video.play();
    audio.play();
    video.set_src_caps_str(common::VIDEO_CAPS);
    audio.set_src_caps_str(common::AUDIO_CAPS);
    (rig, element, bus, video, audio)
}

/// An element for the emulator of `rig`, unsynchronized (the harness pushes as fast as the
/// element takes), with a bus to read.
fn streaming_element(rig: &Rig) -> (gst::Element, BusLog) {
    let element = rig.element();
    element.set_property("sync", false);
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    (element, BusLog::new(bus))
}

#[test]
fn the_pads_take_h264_byte_stream_access_units_and_opus_only() {
    init();
    let element = gst::ElementFactory::make("kvswebrtcstoragesink")
        .build()
        .expect("the element");
    request_pads(&element, &["video", "audio"]);
    let video = element
        .static_pad("video")
        .expect("the requested video pad");
    let audio = element
        .static_pad("audio")
        .expect("the requested audio pad");
    let caps = |text: &str| text.parse::<gst::Caps>().expect("caps");

    let offered = video.query_caps(None);
    assert!(offered.is_subset(&caps(
        "video/x-h264, stream-format=byte-stream, alignment=au"
    )));
    assert!(video.query_accept_caps(&caps(common::VIDEO_CAPS)));
    for refused in [
        "video/x-h264, stream-format=avc, alignment=au",
        "video/x-h264, stream-format=byte-stream, alignment=nal",
        "video/x-raw, format=I420, width=320, height=240, framerate=25/1",
        "video/x-h264, stream-format=byte-stream, alignment=au, profile=high-4:4:4",
        "video/x-vp8",
        common::AUDIO_CAPS,
    ] {
        assert!(!video.query_accept_caps(&caps(refused)), "{refused}");
    }

    assert!(audio.query_accept_caps(&caps(common::AUDIO_CAPS)));
    assert!(audio.query_accept_caps(&caps(
        "audio/x-opus, rate=48000, channels=2, channel-mapping-family=0"
    )));
    for refused in [
        "audio/x-opus, rate=48000, channels=6, channel-mapping-family=1",
        "audio/mpeg, mpegversion=4",
        "audio/x-raw, format=S16LE, rate=48000, channels=2, layout=interleaved",
        common::VIDEO_CAPS,
    ] {
        assert!(!audio.query_accept_caps(&caps(refused)), "{refused}");
    }
}

#[test]
fn caps_a_pad_refuses_are_an_error_that_says_what_to_put_before_it() {
    let rig = Rig::start("harness-caps-cam");
    let (element, mut bus) = streaming_element(&rig);
    let (mut video, mut audio) = harnesses(&element);
    video.play();
    audio.play();
    assert!(video.push_event(gst::event::StreamStart::new("video")));
    let avc = "video/x-h264, stream-format=avc, alignment=au"
        .parse::<gst::Caps>()
        .expect("caps");
    // A sticky event is stored whatever downstream says, so the push itself succeeds; the
    // refusal shows on the bus.
    video.push_event(gst::event::Caps::new(&avc));
    let error = bus.until("the negotiation error", |m| {
        matches!(m.view(), gst::MessageView::Error(_))
    });
    let text = common::error_text(&error).expect("an error");
    assert!(text.contains("stream-format=avc"), "{text}");
    assert!(
        text.contains("put h264parse before kvswebrtcstoragesink"),
        "{text}"
    );
    match error.view() {
        gst::MessageView::Error(e) => {
            assert!(e.error().matches(gst::CoreError::Negotiation), "{e:?}")
        }
        _ => unreachable!(),
    }
}

#[test]
fn properties_are_kept_and_secrets_are_write_only() {
    init();
    let element = gst::ElementFactory::make("kvswebrtcstoragesink")
        .build()
        .expect("the element");
    for (name, value) in [
        ("channel-name", "front-door"),
        (
            "channel-arn",
            "arn:aws:kinesisvideo:us-west-2:123456789012:channel/front-door/1",
        ),
        ("aws-region", "eu-west-1"),
        ("access-key", "AKIDEXAMPLE"),
        ("endpoint-url", "https://127.0.0.1:4443"),
        ("ca-file", "/etc/kvs/ca.pem"),
        ("client-id", "listener-1"),
    ] {
        assert_eq!(element.property::<Option<String>>(name), None, "{name}");
        element.set_property(name, value);
        assert_eq!(
            element.property::<Option<String>>(name).as_deref(),
            Some(value),
            "{name}"
        );
    }
    assert_eq!(element.property::<Role>("role"), Role::Master);
    element.set_property_from_str("role", "viewer");
    assert_eq!(element.property::<Role>("role"), Role::Viewer);
    assert_eq!(
        element.property::<IceTransportPolicy>("ice-transport-policy"),
        IceTransportPolicy::All
    );
    element.set_property_from_str("ice-transport-policy", "relay");
    assert_eq!(
        element.property::<IceTransportPolicy>("ice-transport-policy"),
        IceTransportPolicy::Relay
    );
    assert!(element.property::<bool>("sync"));
    element.set_property("sync", false);
    assert!(!element.property::<bool>("sync"));

    for secret in ["secret-key", "session-token"] {
        let pspec = element.find_property(secret).expect(secret);
        assert!(pspec.flags().contains(gst::glib::ParamFlags::WRITABLE));
        assert!(
            !pspec.flags().contains(gst::glib::ParamFlags::READABLE),
            "{secret}"
        );
        element.set_property(secret, "wJalrXUtnFEMI/K7MDENG");
    }
    let stats_spec = element.find_property("stats").expect("stats");
    assert!(!stats_spec.flags().contains(gst::glib::ParamFlags::WRITABLE));
    let stats = element.property::<gst::Structure>("stats");
    assert_eq!(stats.name(), "kvswebrtcstoragesink-stats");
    assert_eq!(stats.get::<&str>("state"), Ok("stopped"));
    assert_eq!(stats.get::<u64>("video-frames-sent"), Ok(0));
}

#[test]
fn unusable_settings_fail_the_start_naming_the_property_or_pad() {
    init();
    let start = |element: &gst::Element| {
        let bus = gst::Bus::new();
        element.set_bus(Some(&bus));
        assert!(element.set_state(gst::State::Paused).is_err());
        let _ = element.set_state(gst::State::Null);
        let mut log = BusLog::new(bus);
        let error = log.until("the start's error", |m| {
            matches!(m.view(), gst::MessageView::Error(_))
        });
        common::error_text(&error).expect("an error")
    };

    let no_channel = gst::ElementFactory::make("kvswebrtcstoragesink")
        .build()
        .expect("the element");
    request_pads(&no_channel, &["video", "audio"]);
    let text = start(&no_channel);
    assert!(text.contains("set channel-name"), "{text}");

    let video_only = gst::ElementFactory::make("kvswebrtcstoragesink")
        .property("channel-name", "front-door")
        .build()
        .expect("the element");
    request_pads(&video_only, &["video"]);
    let text = start(&video_only);
    assert!(text.contains("audio pad"), "{text}");
    assert!(text.contains("opusenc"), "{text}");

    let half_key = gst::ElementFactory::make("kvswebrtcstoragesink")
        .property("channel-name", "front-door")
        .property("access-key", "AKIDEXAMPLE")
        .build()
        .expect("the element");
    request_pads(&half_key, &["video", "audio"]);
    let text = start(&half_key);
    assert!(text.contains("secret-key is not"), "{text}");
}

#[test]
fn eos_on_both_pads_ends_the_session_after_every_frame_then_posts_eos() {
    let (rig, element, mut bus, mut video, mut audio) = streaming("harness-eos-cam");
    let (pictures, packets) = (video_buffers(), audio_buffers());
    // Interleaved by time, as a muxer-less pipeline delivers them.
    let mut packets_iter = packets.iter().peekable();
    for picture in &pictures {
        while let Some(packet) = packets_iter.next_if(|p| p.pts() <= picture.pts()) {
            assert_eq!(audio.push(packet.clone()), Ok(gst::FlowSuccess::Ok));
        }
        assert_eq!(video.push(picture.clone()), Ok(gst::FlowSuccess::Ok));
    }
    for packet in packets_iter {
        assert_eq!(audio.push(packet.clone()), Ok(gst::FlowSuccess::Ok));
    }
    assert!(audio.push_event(gst::event::Eos::new()));
    assert!(video.push_event(gst::event::Eos::new()));
    bus.until("EOS", |m| matches!(m.view(), gst::MessageView::Eos(_)));

    let stats = element.property::<gst::Structure>("stats");
    assert_eq!(stats.get::<&str>("state"), Ok("stopped"), "{stats}");
    assert_eq!(stats.get::<u64>("video-buffers"), Ok(75), "{stats}");
    assert_eq!(stats.get::<u64>("video-buffer-keyframes"), Ok(3), "{stats}");
    assert_eq!(stats.get::<u64>("video-frames-sent"), Ok(75), "{stats}");
    assert_eq!(
        stats.get::<u64>("audio-frames-sent"),
        Ok(packets.len() as u64),
        "{stats}"
    );
    // The final statistics came before EOS.
    assert!(
        !bus.element_messages("stats").is_empty(),
        "{:#?}",
        bus.summary()
    );
    let sessions = rig.wait_for_sessions("every frame received", |s| {
        s.first().is_some_and(|s| {
            s.media.video.frames == 75 && s.media.audio.frames == packets.len() as u64
        })
    });
    assert!(
        sessions[0].media.violations.is_empty(),
        "{:?}",
        sessions[0].media.violations
    );
    assert!(bus.errors().is_empty(), "{:#?}", bus.errors());
}

#[test]
fn eos_before_any_keyframe_is_an_error_saying_nothing_was_ingested() {
    let (_rig, _element, mut bus, mut video, mut audio) = streaming("harness-no-idr-cam");
    // The clip's pictures after its first IDR, up to the next one: P frames only.
    let deltas: Vec<_> = video_buffers()
        .into_iter()
        .skip(1)
        .take_while(|b| b.flags().contains(gst::BufferFlags::DELTA_UNIT))
        .collect();
    assert!(deltas.len() >= 10);
    for buffer in &deltas {
        assert_eq!(video.push(buffer.clone()), Ok(gst::FlowSuccess::Ok));
    }
    for packet in audio_buffers().into_iter().take(20) {
        assert_eq!(audio.push(packet), Ok(gst::FlowSuccess::Ok));
    }
    assert!(audio.push_event(gst::event::Eos::new()));
    assert!(
        !video.push_event(gst::event::Eos::new()),
        "EOS does not go on"
    );
    let error = bus.until("the error", |m| {
        matches!(m.view(), gst::MessageView::Error(_))
    });
    let text = common::error_text(&error).expect("an error");
    assert!(text.contains("before its first keyframe"), "{text}");
    assert!(
        text.contains(&format!("{} video buffers", deltas.len())),
        "{text}"
    );
    assert!(
        !bus.seen
            .iter()
            .any(|m| matches!(m.view(), gst::MessageView::Eos(_))),
        "no EOS after the error"
    );
}

#[test]
fn a_keyframe_request_arrives_upstream_as_force_key_unit() {
    let (_rig, element, mut bus, mut video, mut audio) = streaming("harness-fku-cam");
    let pictures = video_buffers();
    let packets = audio_buffers();
    // The first picture waits until media flows; a new session asks the encoder for a
    // keyframe (and the storage peer sends its PLI).
    assert_eq!(video.push(pictures[0].clone()), Ok(gst::FlowSuccess::Ok));
    assert_eq!(audio.push(packets[0].clone()), Ok(gst::FlowSuccess::Ok));
    bus.until("connected", |m| is_element_message(m, "connected"));

    let deadline = std::time::Instant::now() + WAIT;
    let force_key_unit = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no force-key-unit event upstream within {WAIT:?}"
        );
        // Bounded by the harness (60 s at most), and by the deadline above.
        let event = video.pull_upstream_event().expect("an upstream event");
        if let Ok(parsed) = gst_video::UpstreamForceKeyUnitEvent::parse(&event) {
            break parsed;
        }
    };
    assert!(force_key_unit.all_headers, "SPS and PPS with the IDR");
    let stats = element.property::<gst::Structure>("stats");
    assert!(
        stats.get::<u64>("force-key-unit-sent").unwrap_or(0) >= 1,
        "{stats}"
    );
}
