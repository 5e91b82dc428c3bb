//! The media side of the driver: each track's [`Feed`] (frames its reader thread has ready)
//! into the sans-IO [`Pacer`], and the frames the pacer releases into the core. A source's end
//! or failure comes out of [`Tracks::poll_output`].

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::event::Track;
use crate::pacing::{Pacer, Released};
use crate::session::IngestCore;
use crate::source::{AudioPacket, Feed, OpenedSource, Picture, SourceItem};

/// What the tracks tell the driver.
#[derive(Debug)]
pub(crate) enum TrackOutput {
    /// This track's source ended cleanly.
    Ended(Track),
    /// This track's source failed: the ingestion ends with this error.
    Failed(Error),
}

/// Both tracks of one ingestion; see the module docs.
pub(crate) struct Tracks {
    video: Option<Feed<Picture>>,
    audio: Option<Feed<AudioPacket>>,
    /// When each frame goes out.
    pacer: Pacer,
    outputs: Vec<TrackOutput>,
}

impl Tracks {
    /// The tracks of these sources; the first video frame (read to check the input) tells the
    /// core the stream's parameters.
    pub(crate) fn new(
        video: Option<OpenedSource<Picture>>,
        audio: Option<OpenedSource<AudioPacket>>,
        max_lateness: Duration,
        send_ahead: Duration,
        core: &mut IngestCore,
    ) -> Self {
        if let Some(first) = video.as_ref().and_then(|v| v.first.as_ref()) {
            core.observe_video(first);
        }
        let mut pacer = Pacer::new(
            video.as_ref().map(|v| v.paced),
            audio.as_ref().map(|a| a.paced),
            max_lateness,
            send_ahead,
        );
        let video = video.map(|mut source| {
            if let Some(first) = source.first.take() {
                pacer.push_video(first);
            }
            Feed::new(source)
        });
        let audio = audio.map(|mut source| {
            if let Some(first) = source.first.take() {
                pacer.push_audio(first);
            }
            Feed::new(source)
        });
        Self {
            video,
            audio,
            pacer,
            outputs: Vec::new(),
        }
    }

    /// Wait until a source the pacer has room for has frames (never, when it wants none).
    /// Cancel-safe.
    pub(crate) async fn fill(&mut self) {
        self.feed_pacer();
        let wants_video = self.pacer.wants(Track::Video);
        let wants_audio = self.pacer.wants(Track::Audio);
        tokio::select! {
            _ = fill(&mut self.video), if wants_video => {}
            _ = fill(&mut self.audio), if wants_audio => {}
            else => std::future::pending().await,
        }
    }

    /// Hand every frame whose time has come to the core, refilling the pacer from what was
    /// already taken from the sources.
    pub(crate) fn pump(&mut self, now: Instant, core: &mut IngestCore) {
        self.feed_pacer();
        while let Some(released) = self.pacer.poll_output(now, core.is_streaming()) {
            match released {
                Released::Video(picture) => {
                    let wallclock = self.pacer.wallclock(Track::Video, picture.timestamp, now);
                    core.write_video(now, wallclock, picture);
                }
                Released::Audio(packet) => {
                    let wallclock = self.pacer.wallclock(Track::Audio, packet.timestamp, now);
                    core.write_audio(now, wallclock, packet.timestamp, &packet.data);
                }
                Released::Late(track) => core.drop_late(track),
            }
            self.feed_pacer();
        }
    }

    /// When the next frame is due.
    pub(crate) fn poll_timeout(&self, now: Instant, streaming: bool) -> Option<Instant> {
        self.pacer.poll_timeout(now, streaming)
    }

    /// A source's end or failure.
    pub(crate) fn poll_output(&mut self) -> Option<TrackOutput> {
        (!self.outputs.is_empty()).then(|| self.outputs.remove(0))
    }

    /// Every source ended and its last frame went out.
    pub(crate) fn is_done(&self) -> bool {
        self.pacer.is_done()
    }

    /// Ask a pushed video source for a keyframe (the storage peer sent PLI/FIR).
    pub(crate) fn request_keyframe(&self) {
        if let Some(keyframes) = self
            .video
            .as_ref()
            .and_then(|v| v.source().keyframes.as_ref())
        {
            keyframes.send_modify(|n| *n += 1);
        }
    }

    /// Give the pacer the frames it has room for, from those taken from the sources.
    fn feed_pacer(&mut self) {
        while self.pacer.wants(Track::Video) {
            let Some(item) = self.video.as_mut().and_then(Feed::try_next) else {
                break;
            };
            if let Some(frame) = self.on_source_item(Track::Video, item) {
                self.pacer.push_video(frame);
            }
        }
        while self.pacer.wants(Track::Audio) {
            let Some(item) = self.audio.as_mut().and_then(Feed::try_next) else {
                break;
            };
            if let Some(packet) = self.on_source_item(Track::Audio, item) {
                self.pacer.push_audio(packet);
            }
        }
    }

    /// A source's next item: its frame for the pacer, or its end (cleanly or failed).
    fn on_source_item<T>(&mut self, track: Track, item: Option<SourceItem<T>>) -> Option<T> {
        match item {
            Some(SourceItem::Frame(frame)) => return Some(frame),
            Some(SourceItem::Failed(error)) => {
                self.pacer.end(track);
                self.outputs.push(TrackOutput::Failed(error));
            }
            None => {
                self.pacer.end(track);
                self.outputs.push(TrackOutput::Ended(track));
            }
        }
        None
    }
}

/// Wait for a source's next frames (never, without the track).
async fn fill<T>(feed: &mut Option<Feed<T>>) {
    match feed {
        Some(feed) => feed.fill().await,
        None => std::future::pending().await,
    }
}
