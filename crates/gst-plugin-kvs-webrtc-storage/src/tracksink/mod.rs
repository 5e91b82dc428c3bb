//! The sink behind each of the bin's pads: a `GstBaseSink` (sync, preroll, `unlock`) that
//! hands its track's buffers to the library. Private to the bin; not registered as a factory.

use gst::glib;
use gst::subclass::prelude::*;
use kvs_webrtc_ingest::Track;

use crate::session::Attached;

mod imp;

glib::wrapper! {
    /// One track's sink inside `kvswebrtcstoragesink`.
    pub(crate) struct TrackSink(ObjectSubclass<imp::TrackSink>)
        @extends gst_base::BaseSink, gst::Element, gst::Object;
}

impl TrackSink {
    /// A sink for `track`, named `<track>-sink`.
    pub(crate) fn new(track: Track) -> Self {
        let sink: Self = glib::Object::builder()
            .property("name", format!("{}-sink", track.as_str()))
            // Nobody reads the last buffer back; do not keep it alive.
            .property("enable-last-sample", false)
            .build();
        sink.imp().set_track(track);
        sink
    }

    /// Give it the session and its track's writer (before it starts).
    pub(crate) fn attach(&self, attached: Attached) {
        self.imp().attach(attached);
    }

    /// Let go of the session and the writer (the bin stops, or the start failed).
    pub(crate) fn detach(&self) {
        self.imp().detach();
    }
}
