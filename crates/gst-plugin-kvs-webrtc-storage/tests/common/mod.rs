//! What the plugin's test suites share: GStreamer with the element registered, an emulator
//! with a storage channel (and the element's properties to reach it), bounded waits on a bus,
//! and the sample clip as GStreamer buffers.

#![allow(dead_code, unreachable_pub, clippy::disallowed_methods)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gst::prelude::*;
use kvs_emulator::SessionInfo;
use kvs_test_support::{IngestSetup, WAIT};

/// GStreamer initialized and `kvswebrtcstoragesink` registered, once per process.
pub fn init() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        gst::init().expect("GStreamer initializes");
        gstkvswebrtcstorage::plugin_register_static().expect("the plugin registers");
    });
}

/// An emulator with one storage channel, on a runtime of its own (the tests' threads stay
/// plain threads, as GStreamer applications' are), and its CA in a file for `ca-file`.
pub struct Rig {
    pub setup: IngestSetup,
    ca_file: tempfile::NamedTempFile,
    pub runtime: tokio::runtime::Runtime,
}

impl Rig {
    /// Start it with the storage channel `channel`.
    pub fn start(channel: &str) -> Self {
        init();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("emulator")
            .enable_all()
            .build()
            .expect("a runtime for the emulator");
        let setup = runtime.block_on(IngestSetup::start(channel));
        let ca_file = tempfile::NamedTempFile::new().expect("a temporary file");
        std::fs::write(ca_file.path(), &setup.emulator.ca_pem).expect("the CA written");
        Self {
            setup,
            ca_file,
            runtime,
        }
    }

    /// The element's properties that reach the emulator as a user reaches AWS: the channel,
    /// the region, a key, the endpoint and the CA file.
    pub fn properties(&self) -> Vec<(&'static str, String)> {
        let service = &self.setup.emulator.service;
        vec![
            ("channel-name", self.setup.channel.clone()),
            ("aws-region", service.region.clone()),
            ("access-key", service.key.access_key_id.clone()),
            ("secret-key", service.key.secret_access_key.clone()),
            ("endpoint-url", service.endpoint.clone()),
            ("ca-file", self.ca_file.path().display().to_string()),
        ]
    }

    /// The properties as `gst-launch-1.0` takes them (`name=value ...`).
    pub fn launch_properties(&self) -> String {
        self.properties()
            .iter()
            .map(|(name, value)| format!("{name}=\"{value}\""))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A `kvswebrtcstoragesink` set up for this emulator.
    pub fn element(&self) -> gst::Element {
        let mut builder = gst::ElementFactory::make("kvswebrtcstoragesink");
        for (name, value) in self.properties() {
            builder = builder.property(name, value);
        }
        builder.build().expect("kvswebrtcstoragesink")
    }

    /// Set this emulator's properties on `element` (one made by a pipeline description).
    pub fn configure(&self, element: &gst::Element) {
        for (name, value) in self.properties() {
            element.set_property(name, value);
        }
    }

    /// The storage sessions, newest last.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.setup.emulator.sessions()
    }

    /// Wait (bounded) until the storage sessions satisfy `done`.
    pub fn wait_for_sessions(
        &self,
        what: &str,
        done: impl Fn(&[SessionInfo]) -> bool,
    ) -> Vec<SessionInfo> {
        self.runtime
            .block_on(self.setup.emulator.wait_for_sessions(what, done))
    }

    /// Inject a fault through the emulator's fault API.
    pub fn inject_fault(&self, fault: serde_json::Value) {
        self.setup.emulator.inject_fault(fault);
    }
}

/// The messages a bus delivered, read with bounded waits.
pub struct BusLog {
    bus: gst::Bus,
    pub seen: Vec<gst::Message>,
}

impl BusLog {
    pub fn new(bus: gst::Bus) -> Self {
        Self {
            bus,
            seen: Vec::new(),
        }
    }

    /// Read messages until one satisfies `done` (returned), within [`WAIT`]. An error message
    /// that `done` does not accept fails the test with its text.
    pub fn until(&mut self, what: &str, done: impl Fn(&gst::Message) -> bool) -> gst::Message {
        self.until_within(WAIT, what, done)
    }

    /// [`BusLog::until`] with its own bound.
    pub fn until_within(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn(&gst::Message) -> bool,
    ) -> gst::Message {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self
                .bus
                .timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64))
                .unwrap_or_else(|| {
                    panic!(
                        "timed out after {limit:?} waiting for {what}; seen: {:#?}",
                        self.summary()
                    )
                });
            self.seen.push(message.clone());
            if done(&message) {
                return message;
            }
            if let gst::MessageView::Error(error) = message.view() {
                panic!(
                    "an error while waiting for {what}: {} ({:?})",
                    error.error(),
                    error.debug()
                );
            }
        }
    }

    /// Every message read so far, as text.
    pub fn summary(&self) -> Vec<String> {
        self.seen.iter().map(describe).collect()
    }

    /// The element messages of this name (`kvswebrtcstoragesink-<name>`) read so far.
    pub fn element_messages(&self, name: &str) -> Vec<gst::Structure> {
        let full = format!("kvswebrtcstoragesink-{name}");
        self.seen
            .iter()
            .filter_map(|m| match m.view() {
                gst::MessageView::Element(e) => e
                    .structure()
                    .filter(|s| s.name() == full.as_str())
                    .map(|s| s.to_owned()),
                _ => None,
            })
            .collect()
    }

    /// The error messages read so far, as text.
    pub fn errors(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter(|m| matches!(m.view(), gst::MessageView::Error(_)))
            .map(describe)
            .collect()
    }
}

/// A message as one line: its type, source, and error text or structure.
pub fn describe(message: &gst::Message) -> String {
    let source = message
        .src()
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    match message.view() {
        gst::MessageView::Error(e) => {
            format!("ERROR from {source}: {} ({:?})", e.error(), e.debug())
        }
        gst::MessageView::Warning(w) => {
            format!("WARNING from {source}: {} ({:?})", w.error(), w.debug())
        }
        _ => format!(
            "{:?} from {source}: {}",
            message.type_(),
            message
                .structure()
                .map(|s| s.to_string())
                .unwrap_or_default()
        ),
    }
}

/// Whether `message` is this element message (`kvswebrtcstoragesink-<name>`).
pub fn is_element_message(message: &gst::Message, name: &str) -> bool {
    match message.view() {
        gst::MessageView::Element(e) => e
            .structure()
            .is_some_and(|s| s.name() == format!("kvswebrtcstoragesink-{name}").as_str()),
        _ => false,
    }
}

/// The error text of an error message.
pub fn error_text(message: &gst::Message) -> Option<String> {
    match message.view() {
        gst::MessageView::Error(e) => Some(e.error().to_string()),
        _ => None,
    }
}

/// The sample clip's pictures as buffers (25 fps, `DELTA_UNIT` on all but IDRs).
pub fn video_buffers() -> Vec<gst::Buffer> {
    kvs_media::h264::access_units(kvs_media::sample::H264)
        .into_iter()
        .enumerate()
        .map(|(n, au)| {
            let keyframe = kvs_media::h264::NalUnits::new(au)
                .any(|unit| kvs_media::h264::nal_type(unit) == kvs_media::h264::NAL_IDR);
            let mut buffer = gst::Buffer::from_slice(au.to_vec());
            let buffer_mut = buffer.get_mut().expect("a new buffer is writable");
            buffer_mut.set_pts(gst::ClockTime::from_mseconds(40 * n as u64));
            buffer_mut.set_duration(gst::ClockTime::from_mseconds(40));
            if !keyframe {
                buffer_mut.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
            buffer
        })
        .collect()
}

/// The sample clip's Opus packets as buffers.
pub fn audio_buffers() -> Vec<gst::Buffer> {
    let mut reader =
        kvs_media::ogg::OggOpusReader::new(kvs_media::sample::OPUS).expect("the sample is Opus");
    let mut buffers = Vec::new();
    while let Some(packet) = reader.next_packet().expect("a packet") {
        let mut buffer = gst::Buffer::from_slice(packet.data);
        buffer
            .get_mut()
            .expect("a new buffer is writable")
            .set_pts(gst::ClockTime::from_nseconds(
                packet.timestamp.as_nanos() as u64
            ));
        buffers.push(buffer);
    }
    buffers
}

/// Caps the sample clip's video has on the wire.
pub const VIDEO_CAPS: &str =
    "video/x-h264, stream-format=byte-stream, alignment=au, profile=constrained-baseline, width=320, height=240, framerate=25/1";
/// Caps of the sample clip's audio.
pub const AUDIO_CAPS: &str = "audio/x-opus, rate=48000, channels=1, channel-mapping-family=0";
