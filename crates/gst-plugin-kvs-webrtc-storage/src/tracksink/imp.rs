//! The track sink's implementation; see the module docs of `tracksink`.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use gst::glib;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use kvs_webrtc_ingest::{AudioPacket, Track, VideoFrame};
use tokio::sync::watch;

use crate::caps;
use crate::session::{lock, Attached, Session, Writer};
use crate::storagesink::CAT;

/// The implementation of [`super::TrackSink`].
pub(crate) struct TrackSink {
    track: OnceLock<Track>,
    /// The session and this track's writer, from READY→PAUSED until EOS or stop.
    attached: Mutex<Option<Attached>>,
    /// `true` between `unlock` and `unlock_stop`: every wait of this sink returns.
    flush: watch::Sender<bool>,
    flushing: watch::Receiver<bool>,
}

impl Default for TrackSink {
    fn default() -> Self {
        let (flush, flushing) = watch::channel(false);
        Self {
            track: OnceLock::new(),
            attached: Mutex::new(None),
            flush,
            flushing,
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for TrackSink {
    const NAME: &'static str = "GstKvsWebrtcStorageTrackSink";
    type Type = super::TrackSink;
    type ParentType = gst_base::BaseSink;
}

impl TrackSink {
    pub(super) fn set_track(&self, track: Track) {
        let _ = self.track.set(track);
    }

    pub(super) fn attach(&self, attached: Attached) {
        *lock(&self.attached) = Some(attached);
    }

    pub(super) fn detach(&self) {
        // Dropping the writer ends the track in the library, if the session still runs.
        lock(&self.attached).take();
    }

    fn track(&self) -> Track {
        // Set by `TrackSink::new`, the only constructor the bin uses.
        self.track.get().copied().unwrap_or(Track::Video)
    }

    fn session(&self) -> Option<Arc<Session>> {
        lock(&self.attached)
            .as_ref()
            .map(|a| Arc::clone(&a.session))
    }

    /// EOS: drop the writer (the library ends the track). After the last track, wait until
    /// the library has sent everything and ended. `false` when EOS must not go on (an error
    /// was posted, or a flush).
    fn on_eos(&self) -> bool {
        let Some(Attached { session, writer }) = lock(&self.attached).take() else {
            return true;
        };
        let track = writer.track();
        drop(writer);
        gst::debug!(CAT, imp = self, "EOS on the {} pad", track.as_str());
        if !session.track_ended(track) {
            return true;
        }
        if session.ended_without_keyframe() {
            return false;
        }
        session.finish(&self.flushing).is_ok()
    }
}

impl ObjectImpl for TrackSink {}

impl GstObjectImpl for TrackSink {}

impl ElementImpl for TrackSink {
    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: OnceLock<Vec<gst::PadTemplate>> = OnceLock::new();
        TEMPLATES.get_or_init(|| {
            let mut any = caps::video();
            any.merge(caps::audio());
            // The class template covers both tracks; each sink answers for its own
            // (`BaseSinkImpl::caps`).
            vec![gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &any,
            )
            .expect("a sink pad template from fixed caps is valid")]
        })
    }
}

impl BaseSinkImpl for TrackSink {
    // `start` and `stop` are the base class's (NULL→READY, READY→NULL); the bin attaches the
    // session at READY→PAUSED and detaches it at PAUSED→READY.

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.flush.send_replace(true);
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.flush.send_replace(false);
        Ok(())
    }

    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let caps = caps::of(self.track());
        Some(match filter {
            Some(filter) => filter.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        gst::debug!(CAT, imp = self, "caps {caps}");
        caps::check(self.track(), caps).map_err(|message| gst::loggable_error!(CAT, "{message}"))
    }

    fn event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view() {
            if !self.on_eos() {
                return false;
            }
        }
        self.parent_event(event)
    }

    /// The first buffer waits here until media flows (a wait `unlock` ends), before the base
    /// class prerolls or syncs it: a non-live pipeline's clock starts once frames can go out.
    fn prepare(&self, _buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let session = self.session().ok_or(gst::FlowError::Flushing)?;
        session.wait_streaming(&self.flushing)?;
        Ok(gst::FlowSuccess::Ok)
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let attached = lock(&self.attached);
        let Some(Attached { session, writer }) = attached.as_ref() else {
            return Err(gst::FlowError::Flushing);
        };
        // Both pads' buffers go in on one timeline: their PTS as running time.
        let segment = self.obj().segment();
        let running_time = segment
            .downcast_ref::<gst::ClockTime>()
            .and_then(|segment| segment.to_running_time(buffer.pts()));
        let Some(running_time) = running_time else {
            gst::debug!(
                CAT,
                imp = self,
                "dropping {buffer:?}: no PTS in the segment"
            );
            session.count_clipped();
            return Ok(gst::FlowSuccess::Ok);
        };
        let timestamp = Duration::from_nanos(running_time.nseconds());
        let data = buffer
            .map_readable()
            .map_err(|_| {
                gst::element_imp_error!(self, gst::StreamError::Failed, ["unreadable buffer"]);
                gst::FlowError::Error
            })?
            .as_slice()
            .to_vec();
        match writer {
            Writer::Video(writer) => {
                let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                let frame = VideoFrame { data, timestamp };
                session.write_video(writer, frame, keyframe, &self.flushing)
            }
            Writer::Audio(writer) => {
                let packet = AudioPacket { data, timestamp };
                session.write_audio(writer, packet, &self.flushing)
            }
        }
    }
}
