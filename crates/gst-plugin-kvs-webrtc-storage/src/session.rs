//! One ingestion session per started element: the library's [`IngestSession`] on the shared
//! runtime, its events posted on the bus, the storage peer's keyframe requests sent upstream,
//! and what the pads' streaming threads wait for.
//!
//! Lifecycle: [`Session::start`] (READY→PAUSED) spawns the session; the first buffer of each pad
//! waits in [`Session::wait_streaming`] until media flows; [`Session::track_ended`] and
//! [`Session::finish`] end it at EOS; [`Session::stop`] (PAUSED→READY) ends it at any point,
//! joining included.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gst::prelude::*;
use kvs_webrtc_ingest::{
    AudioPacket, AudioSource, AudioWriter, ErrorChain, IngestEvent, IngestState, Stats, Stopper,
    Track, VideoFrame, VideoSource, VideoWriter,
};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::messages::{self, ElementCounts};
use crate::runtime::{wait_abortable, Aborted};
use crate::settings::{ingest_error_domain, Plan, StartError};
use crate::storagesink::CAT;

/// How long the last EOS waits for the library to send what it was given and end.
const FINISH_LIMIT: Duration = Duration::from_secs(10);
/// How long a stop waits for the session to close its connections before abandoning it.
const STOP_LIMIT: Duration = Duration::from_secs(5);
/// How long a pad whose writes fail waits for the session's end to be reported.
const END_REPORT_LIMIT: Duration = Duration::from_secs(5);

/// Where the session is, as the pads see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Connecting, joining: buffers wait.
    Starting,
    /// Media flowed at least once (re-joins later drop frames inside the library).
    Streaming,
    /// Ended; `failed` when an error was posted for it.
    Ended { failed: bool },
}

#[derive(Debug, Default)]
struct Control {
    /// Set by [`Session::stop`]; the session's end is then not an error.
    stopping: bool,
    stopper: Option<Stopper>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Counters {
    video_buffers: AtomicU64,
    video_keyframes: AtomicU64,
    audio_buffers: AtomicU64,
    clipped: AtomicU64,
    force_key_unit_sent: AtomicU64,
}

/// The open tracks: which pads have not seen EOS yet.
#[derive(Debug, Clone, Copy)]
struct Open {
    video: bool,
    audio: bool,
}

/// The video track as the session starts it: the library's source, the writer's keyframe
/// requests, and the pad that sends them upstream.
#[derive(Debug)]
pub(crate) struct VideoInput {
    pub(crate) source: VideoSource,
    pub(crate) keyframe_requests: watch::Receiver<u64>,
    pub(crate) pad: gst::Pad,
}

/// One element's ingestion; see the module docs.
#[derive(Debug)]
pub(crate) struct Session {
    element: gst::glib::WeakRef<gst::Element>,
    runtime: &'static Runtime,
    phase: watch::Sender<Phase>,
    control: Mutex<Control>,
    /// The library's statistics while it runs; its final ones after.
    stats: Mutex<StatsSource>,
    counters: Counters,
    open: Mutex<Open>,
    /// Whether the session has a video track.
    has_video: bool,
}

#[derive(Debug)]
enum StatsSource {
    None,
    Live(watch::Receiver<Stats>),
    Final(Box<Stats>),
}

/// Lock `mutex`, whether or not another thread panicked while holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind; keep going.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Session {
    /// Start ingesting: the connection and the join run on `runtime`; this returns at once.
    pub(crate) fn start(
        runtime: &'static Runtime,
        element: &gst::Element,
        plan: Plan,
        video: Option<VideoInput>,
        audio: Option<AudioSource>,
    ) -> Arc<Self> {
        let session = Arc::new(Self {
            element: element.downgrade(),
            runtime,
            phase: watch::Sender::new(Phase::Starting),
            control: Mutex::default(),
            stats: Mutex::new(StatsSource::None),
            counters: Counters::default(),
            open: Mutex::new(Open {
                video: video.is_some(),
                audio: audio.is_some(),
            }),
            has_video: video.is_some(),
        });
        let video = video.map(|input| {
            runtime.spawn(
                Arc::clone(&session).forward_keyframe_requests(input.keyframe_requests, input.pad),
            );
            input.source
        });
        let task = runtime.spawn(Arc::clone(&session).run(plan, video, audio));
        lock(&session.control).task = Some(task);
        session
    }

    fn post(&self, message: impl FnOnce(&gst::Element)) {
        if let Some(element) = self.element.upgrade() {
            message(&element);
        }
    }

    fn is_stopping(&self) -> bool {
        lock(&self.control).stopping
    }

    /// Connect, join, and relay the library's events until the session ends.
    async fn run(
        self: Arc<Self>,
        plan: Plan,
        video: Option<VideoSource>,
        audio: Option<AudioSource>,
    ) {
        gst::info!(CAT, "starting ingestion into channel {}", plan.channel);
        let started = async {
            let client = plan.client().await?;
            let mut ingest = client.ingest().channel(&plan.channel);
            if let Some(id) = &plan.viewer {
                ingest = ingest.viewer(id);
            }
            if let Some(video) = video {
                ingest = ingest.video(video);
            }
            if let Some(audio) = audio {
                ingest = ingest.audio(audio);
            }
            Ok::<_, StartError>(ingest.send().await?)
        };
        let mut ingest = match started.await {
            Ok(ingest) => ingest,
            Err(e) => {
                self.fail(e.domain(), &e.text());
                return;
            }
        };
        let mut stats = ingest.watch_stats();
        {
            let mut control = lock(&self.control);
            if control.stopping {
                ingest.stopper().stop();
            } else {
                control.stopper = Some(ingest.stopper());
            }
        }
        *lock(&self.stats) = StatsSource::Live(stats.clone());
        let mut stats_open = true;
        loop {
            tokio::select! {
                event = ingest.next_event() => match event {
                    Some(event) => self.on_event(event),
                    None => break,
                },
                // Streaming is also read off the statistics, so that it is seen even if its
                // event was lost from a full queue.
                changed = stats.changed(), if stats_open => match changed {
                    Ok(()) => {
                        if stats.borrow_and_update().state == IngestState::Streaming {
                            self.streaming();
                        }
                    }
                    Err(_) => stats_open = false,
                },
            }
        }
        let outcome = ingest.wait().await;
        let last = match &outcome {
            Ok(stats) => stats.clone(),
            Err(_) => stats.borrow().clone(),
        };
        gst::info!(
            CAT,
            "ingestion ended: {} video frames, {} audio packets sent",
            last.video.frames_sent,
            last.audio.frames_sent
        );
        *lock(&self.stats) = StatsSource::Final(Box::new(last));
        // The final statistics on the bus (before EOS, which waits for the end).
        let final_stats = self.stats();
        self.post(|element| {
            let _ = element.post_message(
                gst::message::Element::builder(final_stats)
                    .src(element)
                    .build(),
            );
        });
        match outcome {
            Ok(_) => {
                self.phase.send_replace(Phase::Ended { failed: false });
            }
            Err(e) => self.fail(ingest_error_domain(e.kind()), &ErrorChain(&e).to_string()),
        }
    }

    /// The session failed: post the library's message (unless the element is stopping it) and
    /// release the pads' waits.
    fn fail(&self, domain: gst::ResourceError, text: &str) {
        let reported = !self.is_stopping();
        if reported {
            gst::error!(CAT, "ingestion failed: {text}");
            self.post(|element| gst::element_error!(element, domain, ("{}", text)));
        }
        self.phase.send_replace(Phase::Ended { failed: reported });
    }

    fn streaming(&self) {
        self.phase.send_if_modified(|phase| {
            let first = *phase == Phase::Starting;
            if first {
                *phase = Phase::Streaming;
            }
            first
        });
    }

    fn on_event(&self, event: IngestEvent) {
        gst::debug!(CAT, "ingestion event {event:?}");
        match &event {
            IngestEvent::Connected { .. } => self.streaming(),
            IngestEvent::Warning(text) => {
                gst::warning!(CAT, "{text}");
                self.post(|element| {
                    gst::element_warning!(element, gst::ResourceError::Write, ("{}", text));
                });
            }
            _ => {}
        }
        if let Some(structure) = messages::event_structure(&event) {
            self.post(|element| {
                let _ = element.post_message(
                    gst::message::Element::builder(structure)
                        .src(element)
                        .build(),
                );
            });
        }
    }

    /// Each keyframe request of the storage peer (PLI/FIR, and each new session) becomes an
    /// upstream force-key-unit event on the video pad, for the encoder. Ends with the session.
    async fn forward_keyframe_requests(
        self: Arc<Self>,
        mut requests: watch::Receiver<u64>,
        pad: gst::Pad,
    ) {
        while requests.changed().await.is_ok() {
            let count = *requests.borrow_and_update();
            self.counters
                .force_key_unit_sent
                .fetch_add(1, Ordering::Relaxed);
            let pad = pad.clone();
            // Pushing an event upstream may take upstream elements' locks: off the runtime's
            // worker.
            let pushed = self
                .runtime
                .spawn_blocking(move || {
                    let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                        .all_headers(true)
                        .build();
                    pad.push_event(event)
                })
                .await
                .unwrap_or(false);
            gst::debug!(
                CAT,
                "keyframe request {count}: force-key-unit sent upstream (handled: {pushed})"
            );
        }
    }

    /// Wait until media flows (at once once it has). `Err(Flushing)` for `unlock`; `Err(Error)`
    /// when the session failed (its error was posted) or was stopped.
    pub(crate) fn wait_streaming(
        &self,
        flushing: &watch::Receiver<bool>,
    ) -> Result<(), gst::FlowError> {
        let phase = *self.phase.borrow();
        let phase = match phase {
            Phase::Starting => {
                let mut phase = self.phase.subscribe();
                let reached = wait_abortable(self.runtime, flushing, None, async move {
                    phase
                        .wait_for(|p| *p != Phase::Starting)
                        .await
                        .map(|p| *p)
                        .unwrap_or(Phase::Ended { failed: false })
                });
                match reached {
                    Ok(phase) => phase,
                    Err(_) => return Err(gst::FlowError::Flushing),
                }
            }
            phase => phase,
        };
        match phase {
            Phase::Streaming => Ok(()),
            Phase::Ended { failed: true } => Err(gst::FlowError::Error),
            Phase::Starting | Phase::Ended { failed: false } => Err(gst::FlowError::Flushing),
        }
    }

    /// Write one access unit (waits while the library's queue is full).
    pub(crate) fn write_video(
        &self,
        writer: &VideoWriter,
        frame: VideoFrame,
        keyframe: bool,
        flushing: &watch::Receiver<bool>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let written = wait_abortable(self.runtime, flushing, None, writer.write(frame));
        self.written(written.map(|w| w.is_ok()), flushing, || {
            self.counters.video_buffers.fetch_add(1, Ordering::Relaxed);
            if keyframe {
                self.counters
                    .video_keyframes
                    .fetch_add(1, Ordering::Relaxed);
            }
        })
    }

    /// Write one Opus packet (waits while the library's queue is full).
    pub(crate) fn write_audio(
        &self,
        writer: &AudioWriter,
        packet: AudioPacket,
        flushing: &watch::Receiver<bool>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let written = wait_abortable(self.runtime, flushing, None, writer.write(packet));
        self.written(written.map(|w| w.is_ok()), flushing, || {
            self.counters.audio_buffers.fetch_add(1, Ordering::Relaxed);
        })
    }

    /// The flow return of one write: `count` it when the library took it; a write the library
    /// refused means the session ended; an aborted wait is a flush.
    fn written(
        &self,
        taken: Result<bool, Aborted>,
        flushing: &watch::Receiver<bool>,
        count: impl FnOnce(),
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        match taken {
            Ok(true) => {
                count();
                Ok(gst::FlowSuccess::Ok)
            }
            Ok(false) => Err(self.write_failed(flushing)),
            Err(_) => Err(gst::FlowError::Flushing),
        }
    }

    /// A buffer outside the segment, not handed to the library.
    pub(crate) fn count_clipped(&self) {
        self.counters.clipped.fetch_add(1, Ordering::Relaxed);
    }

    /// The library no longer takes frames: it has ended. Wait (bounded) until its end is
    /// reported, so that its error is on the bus before the streaming thread stops.
    fn write_failed(&self, flushing: &watch::Receiver<bool>) -> gst::FlowError {
        let mut phase = self.phase.subscribe();
        let ended = wait_abortable(self.runtime, flushing, Some(END_REPORT_LIMIT), async move {
            phase
                .wait_for(|p| matches!(p, Phase::Ended { .. }))
                .await
                .map(|p| *p)
                .ok()
        });
        match ended {
            Ok(Some(Phase::Ended { failed: true })) => gst::FlowError::Error,
            Err(Aborted::Flushing) => gst::FlowError::Flushing,
            // Stopped without an error: like a flush, the streaming thread just stops.
            _ => gst::FlowError::Flushing,
        }
    }

    /// A pad received EOS: its writer is dropped by the caller, so the library ends the track.
    /// `true` when it was the last open track.
    pub(crate) fn track_ended(&self, track: Track) -> bool {
        let mut open = lock(&self.open);
        match track {
            Track::Video => open.video = false,
            Track::Audio => open.audio = false,
        }
        !open.video && !open.audio
    }

    /// At the last EOS: when the session has video and none of its buffers was a keyframe,
    /// nothing could be ingested (a storage session starts at a keyframe). Then post that as
    /// the error, stop, and return `true`.
    pub(crate) fn ended_without_keyframe(&self) -> bool {
        if !self.has_video || self.counters.video_keyframes.load(Ordering::Relaxed) > 0 {
            return false;
        }
        let buffers = self.counters.video_buffers.load(Ordering::Relaxed);
        let text = format!(
            "the video ended before its first keyframe (IDR), so nothing was ingested: a storage \
             session starts at a keyframe ({buffers} video buffers came, none of them one); \
             give the encoder keyframes (x264enc key-int-max=50) or start the stream at one"
        );
        gst::error!(CAT, "{text}");
        self.post(|element| gst::element_error!(element, gst::StreamError::Format, ("{}", text)));
        self.stop();
        true
    }

    /// After the last EOS: wait until the library has sent what it was given and ended (bounded;
    /// past the bound it is stopped). `Err` when it failed (the error was posted) or `unlock`.
    pub(crate) fn finish(&self, flushing: &watch::Receiver<bool>) -> Result<(), gst::FlowError> {
        let wait_end = |limit| {
            let mut phase = self.phase.subscribe();
            wait_abortable(self.runtime, flushing, Some(limit), async move {
                phase
                    .wait_for(|p| matches!(p, Phase::Ended { .. }))
                    .await
                    .map(|p| *p)
                    .unwrap_or(Phase::Ended { failed: false })
            })
        };
        let ended = match wait_end(FINISH_LIMIT) {
            Err(Aborted::TimedOut) => {
                gst::warning!(
                    CAT,
                    "the ingestion did not end within {FINISH_LIMIT:?} of EOS; stopping it"
                );
                self.request_stop();
                wait_end(STOP_LIMIT)
            }
            other => other,
        };
        match ended {
            Ok(Phase::Ended { failed: true }) => Err(gst::FlowError::Error),
            Err(Aborted::Flushing) => Err(gst::FlowError::Flushing),
            _ => Ok(()),
        }
    }

    /// Ask the session to stop without waiting; a session still connecting or joining is
    /// cancelled. Returns its task, to wait for.
    fn request_stop(&self) -> Option<JoinHandle<()>> {
        let mut control = lock(&self.control);
        control.stopping = true;
        match control.stopper.take() {
            Some(stopper) => stopper.stop(),
            // Still in `send()` (discovery, signaling, the first join): cancel it.
            None => {
                if let Some(task) = &control.task {
                    task.abort();
                }
            }
        }
        control.task.take()
    }

    /// Stop at once (the element leaves PAUSED): close the storage session and the signaling
    /// socket, or cancel the join, and wait (bounded) for it.
    pub(crate) fn stop(&self) {
        if let Some(task) = self.request_stop() {
            let (_never, flushing) = watch::channel(false);
            if wait_abortable(self.runtime, &flushing, Some(STOP_LIMIT), task).is_err() {
                gst::warning!(CAT, "the ingestion did not stop within {STOP_LIMIT:?}");
            }
        }
        self.phase.send_if_modified(|phase| {
            let ended = matches!(phase, Phase::Ended { .. });
            if !ended {
                *phase = Phase::Ended { failed: false };
            }
            !ended
        });
    }

    /// The `stats` property.
    pub(crate) fn stats(&self) -> gst::Structure {
        let counts = ElementCounts {
            video_buffers: self.counters.video_buffers.load(Ordering::Relaxed),
            video_keyframes: self.counters.video_keyframes.load(Ordering::Relaxed),
            audio_buffers: self.counters.audio_buffers.load(Ordering::Relaxed),
            clipped: self.counters.clipped.load(Ordering::Relaxed),
            force_key_unit_sent: self.counters.force_key_unit_sent.load(Ordering::Relaxed),
        };
        let stats = match &*lock(&self.stats) {
            StatsSource::None => None,
            StatsSource::Live(live) => Some(live.borrow().clone()),
            StatsSource::Final(stats) => Some((**stats).clone()),
        };
        messages::stats_structure(stats.as_ref(), counts)
    }
}

/// The session as a track sink holds it while streaming. Not `Clone`: the track's writer must
/// have one owner, whose drop at EOS ends the track in the library.
#[derive(Debug)]
pub(crate) struct Attached {
    pub(crate) session: Arc<Session>,
    pub(crate) writer: Writer,
}

/// A track's writer into the library.
#[derive(Debug)]
pub(crate) enum Writer {
    Video(VideoWriter),
    Audio(AudioWriter),
}

impl Writer {
    /// Its track.
    pub(crate) fn track(&self) -> Track {
        match self {
            Self::Video(_) => Track::Video,
            Self::Audio(_) => Track::Audio,
        }
    }
}
