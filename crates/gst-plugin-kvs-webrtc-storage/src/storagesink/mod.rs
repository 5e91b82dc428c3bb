//! The `kvswebrtcstoragesink` element.

use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;

mod imp;

/// The element's debug category (`GST_DEBUG=kvswebrtcstoragesink:5`).
pub(crate) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        crate::ELEMENT_NAME,
        gst::DebugColorFlags::empty(),
        Some("Kinesis Video WebRTC storage sink"),
    )
});

glib::wrapper! {
    /// `kvswebrtcstoragesink`: a bin with the request pads `video` (H.264 byte-stream, one
    /// access unit per buffer) and `audio` (Opus) that ingests them into a Kinesis video
    /// stream through a signaling channel's WebRTC storage session.
    ///
    /// Element messages on the bus (structure names; all start with
    /// `kvswebrtcstoragesink-`):
    ///
    /// | name | fields |
    /// | --- | --- |
    /// | `-state` | `state` (`connecting-signaling`, `joining`, `backing-off`, `connecting-media`, `streaming`, `stopped`) |
    /// | `-joining` | `reason`, `attempt` (u32), `rejoin` (bool: not the first join) |
    /// | `-offer-answered` | `replaced-session` (bool) |
    /// | `-connected` | `after-offer` (clock time) |
    /// | `-first-frame` | `track` (`video`, `audio`): the first frame of a session went out |
    /// | `-keyframe-requested` | the storage peer asked for a keyframe (a force-key-unit event went upstream) |
    /// | `-source-ended` | `track` |
    /// | `-relay-allocated` / `-relay-failed` | `server`, `transport`, `relayed` / `server`, `reason` |
    /// | `-stopped` | `reason` |
    /// | `-events-lost` | `count` |
    ///
    /// The library's warnings are `GST_ELEMENT_WARNING`s, its errors `GST_ELEMENT_ERROR`s with
    /// its message. The `stats` property is a `kvswebrtcstoragesink-stats` structure.
    pub struct StorageSink(ObjectSubclass<imp::StorageSink>)
        @extends gst::Bin, gst::Element, gst::Object,
        @implements gst::ChildProxy;
}

/// Which side of the storage session the element joins as (`role` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, glib::Enum)]
#[enum_type(name = "GstKvsWebrtcStorageRole")]
pub enum Role {
    /// The channel's master (`JoinStorageSession`): sends video and audio.
    #[default]
    #[enum_value(name = "Master: JoinStorageSession, video and audio", nick = "master")]
    Master = 0,
    /// A viewer (`JoinStorageSessionAsViewer`, with `client-id`): sends audio only.
    #[enum_value(
        name = "Viewer: JoinStorageSessionAsViewer with client-id, audio only",
        nick = "viewer"
    )]
    Viewer = 1,
}

/// Which local candidates the storage peer is offered (`ice-transport-policy` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, glib::Enum)]
#[enum_type(name = "GstKvsWebrtcStorageIceTransportPolicy")]
pub enum IceTransportPolicy {
    /// Host, server-reflexive and relayed candidates.
    #[default]
    #[enum_value(name = "All candidates", nick = "all")]
    All = 0,
    /// Relayed candidates only, through the channel's TURN servers.
    #[enum_value(name = "Relayed candidates only (TURN)", nick = "relay")]
    Relay = 1,
}

/// Register `kvswebrtcstoragesink` with `plugin`.
pub(crate) fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        crate::ELEMENT_NAME,
        gst::Rank::NONE,
        StorageSink::static_type(),
    )
}
