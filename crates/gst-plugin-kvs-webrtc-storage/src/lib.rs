//! A GStreamer plugin with one element, **`kvswebrtcstoragesink`**: it feeds H.264 video and
//! Opus audio from any pipeline into a Kinesis video stream through WebRTC ingestion, over
//! [`kvs_webrtc_ingest`] (discovery, the signaling socket, `JoinStorageSession`, the storage
//! peer's offer, re-joins after faults).
//!
//! ```text
//! gst-launch-1.0 \
//!   v4l2src ! videoconvert ! x264enc tune=zerolatency key-int-max=50 ! h264parse ! \
//!     kvswebrtcstoragesink name=kvs channel-name=front-door aws-region=us-west-2 \
//!   pulsesrc ! audioconvert ! audioresample ! opusenc ! kvs.audio
//! ```
//!
//! # The element
//! A bin with two request pads, `video` (H.264, `stream-format=byte-stream, alignment=au`:
//! `h264parse` converts to it) and `audio` (Opus, mono or stereo). Each pad leads to a
//! `GstBaseSink` of its own inside the bin (so `sync`, preroll and `unlock`/`unlock_stop` are
//! the base class's), which pushes every buffer through [`kvs_webrtc_ingest::VideoSource::push`]
//! / [`kvs_webrtc_ingest::AudioSource::push`] with its PTS (as running time, the one timeline of
//! both pads). The first buffer waits until the storage session streams, so that a file or a
//! test source is ingested from its first frame.
//!
//! * The storage peer's keyframe requests become upstream `GstForceKeyUnit` events on the video
//!   pad: `x264enc` (any `GstVideoEncoder`) encodes an IDR next.
//! * The library's events become element messages on the bus (`kvswebrtcstoragesink-state`,
//!   `-joining` with `rejoin`, `-connected`, `-first-frame`, `-keyframe-requested`, ...; see
//!   [`StorageSink`]); its warnings become `GST_ELEMENT_WARNING`s and its errors
//!   `GST_ELEMENT_ERROR`s carrying its message.
//! * EOS on every pad ends the session once the last frame went out; then the bin posts EOS.
//! * The `stats` property holds the library's statistics and the element's own counters.
//!
//! Properties are read when the element goes from READY to PAUSED: `channel-name` (or
//! `channel-arn`), `aws-region`, `access-key`/`secret-key`/`session-token` or `iot-certificate`
//! (a device certificate exchanged at the AWS IoT credentials endpoint through
//! [`kvs_iot_credentials`], with `kvssink`'s fields; else the standard credential chain),
//! `endpoint-url`, `ca-file`, `ice-transport-policy`, `role`, `client-id`, `sync`. Secrets are
//! write-only and never logged.
//!
//! # Async glue
//! The library is async; GStreamer calls from its own threads (and from applications' async
//! code). The element spawns the session on one static tokio runtime (`runtime.rs`) and waits
//! for it from streaming threads with a small executor of its own, each wait abortable by
//! `unlock` (flushing, a state change to READY or NULL).

mod caps;
mod messages;
mod runtime;
mod session;
mod settings;
mod storagesink;
mod tracksink;

pub use storagesink::{IceTransportPolicy, Role, StorageSink};

/// The element's name in pipelines.
pub const ELEMENT_NAME: &str = "kvswebrtcstoragesink";

/// Register the plugin's element (GStreamer calls this when it loads the library).
fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    storagesink::register(plugin)
}

/// What `gst::plugin_define!` generates: the descriptor GStreamer reads from the library
/// (`gst_plugin_kvswebrtcstorage_get_desc`) and the static registration.
#[allow(missing_docs, unreachable_pub)]
mod plugin {
    use super::plugin_init;

    gst::plugin_define!(
        kvswebrtcstorage,
        env!("CARGO_PKG_DESCRIPTION"),
        plugin_init,
        env!("CARGO_PKG_VERSION"),
        // GStreamer's spelling of the crate's license (Apache-2.0).
        "Apache 2.0",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_REPOSITORY")
    );
}

/// Register the plugin in this process without loading it from `GST_PLUGIN_PATH` (an
/// application or a test that links this crate): after `gst::init()`, call this once and
/// `kvswebrtcstoragesink` can be made by name.
///
/// # Errors
/// GStreamer refused the registration (already registered under another plugin, say).
pub fn plugin_register_static() -> Result<(), gst::glib::BoolError> {
    plugin::plugin_register_static()
}
