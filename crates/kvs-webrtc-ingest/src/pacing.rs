//! When each frame goes out, sans-IO: file and pipe sources are paced by their timestamps on
//! one media clock for both tracks, pushed frames go out as they arrive, and a frame that falls
//! more than [`Timings::max_lateness`](crate::Timings::max_lateness) behind is dropped instead
//! of queued (the sender catches up rather than building a backlog).
//!
//! The driver feeds each track's next frame with `Pacer::push_*` when [`Pacer::wants`] says so,
//! then drains [`Pacer::poll_output`] (the frames that are due, or dropped as late) and sleeps
//! until [`Pacer::poll_timeout`]. The clock starts when media first flows: the earliest
//! waiting frame plays at that instant.
//!
//! A paced frame may leave up to [`Timings::send_ahead`](crate::Timings::send_ahead) before its
//! time, so that the frames due close together (two pictures and the audio packets around
//! them) leave in one wake-up of the sender rather than in one each; the storage peer orders
//! media by its RTP timestamps. Woken at the earliest waiting frame's time, the sender takes
//! every frame due within the send-ahead: with the default 80 ms, at 25 fps with 20 ms Opus,
//! that is one wake-up every 100 ms.
//!
//! [`Pacer::wallclock`] gives the wall-clock instant that goes with a frame's RTP time in the
//! sender reports. For a paced frame that is its time on the media clock less the send-ahead,
//! the same offset on both tracks whenever each frame actually left, so that early frames do
//! not skew the tracks' mappings apart (lip sync), and never in the future (str0m sends no
//! report for a mapping that lies ahead).

use std::time::{Duration, Instant};

use crate::event::Track;

/// How early a paced frame may leave by default (see the module docs).
pub(crate) const SEND_AHEAD: Duration = Duration::from_millis(80);
use crate::source::{AudioPacket, Picture};

/// A frame with a presentation time.
pub(crate) trait Timed {
    /// When it plays, on the source's clock.
    fn timestamp(&self) -> Duration;
}

impl Timed for Picture {
    fn timestamp(&self) -> Duration {
        self.timestamp
    }
}

impl Timed for AudioPacket {
    fn timestamp(&self) -> Duration {
        self.timestamp
    }
}

/// What [`Pacer::poll_output`] hands out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Released {
    /// Send this video frame now.
    Video(Picture),
    /// Send this audio packet now.
    Audio(AudioPacket),
    /// A frame of this track was due longer ago than the lateness bound and was dropped.
    Late(Track),
}

/// One track: the frame waiting for its time.
#[derive(Debug)]
struct TrackPacer<T> {
    next: Option<T>,
    /// Paced by timestamps (files, pipes) or sent on arrival (pushed frames).
    paced: bool,
    ended: bool,
}

/// Whether a track's waiting frame is due at `now`.
enum Decision {
    Wait,
    Send,
    Late,
}

impl<T: Timed> TrackPacer<T> {
    fn new(paced: bool) -> Self {
        Self {
            next: None,
            paced,
            ended: false,
        }
    }

    /// When the waiting frame is due: at once when unpaced, on the clock when paced, or not
    /// yet known (paced, clock not started).
    fn due(&self, clock: Option<(Instant, Duration)>, now: Instant) -> Option<Instant> {
        let timestamp = self.next.as_ref()?.timestamp();
        if !self.paced {
            return Some(now);
        }
        clock.map(|(at, origin)| at + timestamp.saturating_sub(origin))
    }

    fn decide(
        &self,
        clock: Option<(Instant, Duration)>,
        now: Instant,
        max_lateness: Duration,
        ahead: Duration,
    ) -> Decision {
        match self.due(clock, now) {
            Some(due) if due > now + ahead => Decision::Wait,
            Some(due) if now.saturating_duration_since(due) > max_lateness => Decision::Late,
            Some(_) => Decision::Send,
            None => Decision::Wait,
        }
    }

    /// The waiting frame if it is due (`Some(Ok)`), or taken away as late (`Some(Err)`).
    fn release(
        &mut self,
        clock: Option<(Instant, Duration)>,
        now: Instant,
        max_lateness: Duration,
        ahead: Duration,
    ) -> Option<Result<T, ()>> {
        match self.decide(clock, now, max_lateness, ahead) {
            Decision::Wait => None,
            Decision::Send => self.next.take().map(Ok),
            Decision::Late => self.next.take().map(|_| Err(())),
        }
    }
}

/// Both tracks and the media clock they share.
#[derive(Debug)]
pub(crate) struct Pacer {
    video: Option<TrackPacer<Picture>>,
    audio: Option<TrackPacer<AudioPacket>>,
    /// This instant plays this source time (set when media first flows).
    clock: Option<(Instant, Duration)>,
    max_lateness: Duration,
    /// How early a paced frame may leave.
    ahead: Duration,
}

impl Pacer {
    /// A pacer for the tracks that are sent (`Some(paced)` each); paced frames leave up to
    /// `ahead` before their time.
    pub(crate) fn new(
        video: Option<bool>,
        audio: Option<bool>,
        max_lateness: Duration,
        ahead: Duration,
    ) -> Self {
        Self {
            video: video.map(TrackPacer::new),
            audio: audio.map(TrackPacer::new),
            clock: None,
            max_lateness,
            ahead,
        }
    }

    /// Whether `track` has room for its next frame (and has not ended).
    pub(crate) fn wants(&self, track: Track) -> bool {
        match track {
            Track::Video => self
                .video
                .as_ref()
                .is_some_and(|t| t.next.is_none() && !t.ended),
            Track::Audio => self
                .audio
                .as_ref()
                .is_some_and(|t| t.next.is_none() && !t.ended),
        }
    }

    /// The video track's next frame (call when [`Pacer::wants`] it).
    pub(crate) fn push_video(&mut self, frame: Picture) {
        if let Some(t) = &mut self.video {
            t.next = Some(frame);
        }
    }

    /// The audio track's next packet (call when [`Pacer::wants`] it).
    pub(crate) fn push_audio(&mut self, packet: AudioPacket) {
        if let Some(t) = &mut self.audio {
            t.next = Some(packet);
        }
    }

    /// `track`'s source has no more frames (its waiting one still goes out).
    pub(crate) fn end(&mut self, track: Track) {
        match track {
            Track::Video => self.video.as_mut().map(|t| t.ended = true),
            Track::Audio => self.audio.as_mut().map(|t| t.ended = true),
        };
    }

    /// Every track ended and its last frame went out.
    pub(crate) fn is_done(&self) -> bool {
        let done = |ended: bool, waiting: bool| ended && !waiting;
        self.video
            .as_ref()
            .is_none_or(|t| done(t.ended, t.next.is_some()))
            && self
                .audio
                .as_ref()
                .is_none_or(|t| done(t.ended, t.next.is_some()))
    }

    /// The next frame that is due at `now` (or was dropped as late). `streaming`: a session
    /// carries media now; the clock starts with the first call that says so.
    pub(crate) fn poll_output(&mut self, now: Instant, streaming: bool) -> Option<Released> {
        self.start_clock(now, streaming);
        let (clock, lateness, ahead) = (self.clock, self.max_lateness, self.ahead);
        let video = self
            .video
            .as_mut()
            .and_then(|t| t.release(clock, now, lateness, ahead));
        if let Some(released) = video {
            return Some(released.map_or(Released::Late(Track::Video), Released::Video));
        }
        let audio = self
            .audio
            .as_mut()
            .and_then(|t| t.release(clock, now, lateness, ahead));
        audio.map(|released| released.map_or(Released::Late(Track::Audio), Released::Audio))
    }

    /// The wall-clock instant that goes with the RTP time of a frame of `track` stamped
    /// `timestamp` and released at `now` (see the module docs): its time on the media clock
    /// less the send-ahead when paced, `now` when sent as it arrives. A frame stamped before
    /// the clock's origin gets the origin's instant.
    pub(crate) fn wallclock(&self, track: Track, timestamp: Duration, now: Instant) -> Instant {
        let paced = match track {
            Track::Video => self.video.as_ref().is_some_and(|t| t.paced),
            Track::Audio => self.audio.as_ref().is_some_and(|t| t.paced),
        };
        match self.clock {
            Some((at, origin)) if paced => {
                let on_clock = at + timestamp.saturating_sub(origin);
                on_clock
                    .checked_sub(self.ahead)
                    .unwrap_or(on_clock)
                    .min(now)
            }
            _ => now,
        }
    }

    /// When a waiting frame is next due: now when the clock would start (media flows and a
    /// paced frame waits), `None` when nothing waits or the clock waits for media.
    pub(crate) fn poll_timeout(&self, now: Instant, streaming: bool) -> Option<Instant> {
        let clock = match self.clock {
            None if streaming && self.earliest_waiting().is_some() => return Some(now),
            clock => clock,
        };
        let video = self.video.as_ref().and_then(|t| t.due(clock, now));
        let audio = self.audio.as_ref().and_then(|t| t.due(clock, now));
        // Woken at the earliest frame's own time, it takes along those due within the
        // send-ahead: that is what merges the wake-ups.
        match (video, audio) {
            (Some(v), Some(a)) => Some(v.min(a)),
            (x, None) | (None, x) => x,
        }
    }

    fn earliest_waiting(&self) -> Option<Duration> {
        let video = self
            .video
            .as_ref()
            .and_then(|t| t.next.as_ref().map(Timed::timestamp));
        let audio = self
            .audio
            .as_ref()
            .and_then(|t| t.next.as_ref().map(Timed::timestamp));
        video.into_iter().chain(audio).min()
    }

    fn start_clock(&mut self, now: Instant, streaming: bool) {
        if self.clock.is_none() && streaming {
            self.clock = self.earliest_waiting().map(|origin| (now, origin));
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests take their start time from the clock
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A pacer with the 1 s lateness bound and no send-ahead: frames leave at their times.
    fn exact(video: Option<bool>, audio: Option<bool>) -> Pacer {
        Pacer::new(video, audio, Duration::from_secs(1), Duration::ZERO)
    }

    fn frame(ms: u64) -> Picture {
        Picture {
            data: vec![0, 0, 0, 1, 0x65],
            timestamp: Duration::from_millis(ms),
            keyframe: true,
            parameter_sets: false,
        }
    }

    fn packet(ms: u64) -> AudioPacket {
        AudioPacket {
            data: vec![0xF8],
            timestamp: Duration::from_millis(ms),
        }
    }

    fn timestamp(released: &Released) -> Option<Duration> {
        match released {
            Released::Video(f) => Some(f.timestamp),
            Released::Audio(p) => Some(p.timestamp),
            Released::Late(_) => None,
        }
    }

    /// Give each track its next frame from its queue (front first) when it wants one; end it
    /// when the queue is empty.
    fn refill(pacer: &mut Pacer, video: &mut Vec<Picture>, audio: &mut Vec<AudioPacket>) {
        if pacer.wants(Track::Video) {
            match video.is_empty() {
                false => pacer.push_video(video.remove(0)),
                true => pacer.end(Track::Video),
            }
        }
        if pacer.wants(Track::Audio) {
            match audio.is_empty() {
                false => pacer.push_audio(audio.remove(0)),
                true => pacer.end(Track::Audio),
            }
        }
    }

    /// Drive `pacer` in simulated time, waking exactly at its timeouts (and when media starts
    /// to flow, `streaming_from` after `t0`): what was released, and when.
    fn run(
        pacer: &mut Pacer,
        t0: Instant,
        streaming_from: Duration,
        mut video: Vec<Picture>,
        mut audio: Vec<AudioPacket>,
    ) -> Vec<(Duration, Released)> {
        let mut now = t0;
        let mut out = Vec::new();
        loop {
            let streaming = now >= t0 + streaming_from;
            refill(pacer, &mut video, &mut audio);
            while let Some(released) = pacer.poll_output(now, streaming) {
                out.push((now - t0, released));
                refill(pacer, &mut video, &mut audio);
            }
            if pacer.is_done() {
                return out;
            }
            let mut next = pacer.poll_timeout(now, streaming);
            if !streaming {
                let start = t0 + streaming_from;
                next = Some(next.map_or(start, |n| n.min(start)));
            }
            let Some(next) = next else { return out };
            assert!(
                next > now,
                "a timeout at {next:?} with nothing due would spin"
            );
            now = next;
        }
    }

    #[test]
    fn paced_frames_go_out_at_their_timestamps_on_one_clock_from_when_media_flows() {
        let t0 = Instant::now();
        let mut pacer = exact(Some(true), Some(true));
        let video = (0..5).map(|i| frame(1000 + i * 40)).collect();
        let audio = (0..10).map(|i| packet(1000 + i * 20)).collect();
        // The session connects 300 ms in: the clock starts then, at the earliest frame.
        let out = run(&mut pacer, t0, 300 * MS, video, audio);
        let sent: Vec<(Duration, Duration)> = out
            .iter()
            .filter_map(|(at, r)| timestamp(r).map(|ts| (*at, ts)))
            .collect();
        assert_eq!(sent.len(), 15, "{out:?}");
        for (at, ts) in &sent {
            assert_eq!(*at, 300 * MS + (*ts - 1000 * MS), "{ts:?} left at {at:?}");
        }
        assert!(pacer.is_done());
    }

    /// With the send-ahead, the frames due within 80 ms of the earliest leave together: at 25
    /// fps with 20 ms audio, one wake-up every 100 ms instead of one per frame, and nothing
    /// later than its time.
    #[test]
    fn frames_due_within_the_send_ahead_leave_together() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(Some(true), Some(true), Duration::from_secs(1), SEND_AHEAD);
        let video = (0..25).map(|i| frame(i * 40)).collect();
        let audio = (0..50).map(|i| packet(i * 20)).collect();
        let out = run(&mut pacer, t0, Duration::ZERO, video, audio);
        let wakes: std::collections::BTreeSet<Duration> = out.iter().map(|(at, _)| *at).collect();
        assert_eq!(out.len(), 75, "{out:?}");
        // Frames from 0 to 980 ms: wake-ups at 0, 100, ..., 900.
        assert_eq!(wakes.len(), 10, "one wake-up per 100 ms: {wakes:?}");
        for (at, released) in &out {
            let ts = timestamp(released).expect("nothing late");
            assert!(*at <= ts && ts - *at <= SEND_AHEAD, "{ts:?} left at {at:?}");
        }
    }

    /// Sender reports pair each track's RTP time with the wall clock given here: frames that
    /// left early by different amounts still map onto one timeline, never in the future.
    #[test]
    fn the_reports_wallclock_is_the_media_time_less_the_send_ahead_on_both_tracks() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(Some(true), Some(true), Duration::from_secs(1), SEND_AHEAD);
        let video = (0..25).map(|i| frame(1000 + i * 40)).collect();
        let audio = (0..50).map(|i| packet(1000 + i * 20)).collect();
        let out = run(&mut pacer, t0, Duration::ZERO, video, audio);
        assert_eq!(out.len(), 75, "{out:?}");
        let mut early = std::collections::BTreeSet::new();
        for (at, released) in &out {
            let (track, ts) = match released {
                Released::Video(f) => (Track::Video, f.timestamp),
                Released::Audio(p) => (Track::Audio, p.timestamp),
                Released::Late(_) => panic!("nothing is late: {out:?}"),
            };
            let now = t0 + *at;
            let wallclock = pacer.wallclock(track, ts, now);
            // The clock started at the first frame (1000 ms) at t0.
            let on_clock = t0 + (ts - 1000 * MS);
            assert_eq!(wallclock, on_clock - SEND_AHEAD, "{track:?} {ts:?}");
            assert!(
                wallclock <= now,
                "{track:?} {ts:?} is reported in the future"
            );
            early.insert(on_clock - now);
        }
        assert!(
            early.len() > 1,
            "frames left early by different amounts ({early:?}), and yet map alike"
        );
    }

    #[test]
    fn frames_sent_as_they_arrive_are_reported_at_the_instant_they_leave() {
        let t0 = Instant::now();
        let mut pacer = exact(Some(false), Some(true));
        pacer.push_video(frame(5_000));
        let now = t0 + Duration::from_secs(3);
        assert_eq!(
            pacer.poll_output(now, true),
            Some(Released::Video(frame(5_000)))
        );
        assert_eq!(pacer.wallclock(Track::Video, 5_000 * MS, now), now);
        let not_started = exact(Some(true), Some(true));
        assert_eq!(
            not_started.wallclock(Track::Audio, 20 * MS, now),
            now,
            "a paced frame before the clock starts"
        );
    }

    #[test]
    fn nothing_paced_goes_out_before_media_flows() {
        let t0 = Instant::now();
        let mut pacer = exact(Some(true), None);
        pacer.push_video(frame(0));
        assert_eq!(pacer.poll_output(t0 + 5 * MS, false), None);
        assert_eq!(
            pacer.poll_timeout(t0 + 5 * MS, false),
            None,
            "waits for media"
        );
        assert_eq!(
            pacer.poll_timeout(t0 + 5 * MS, true),
            Some(t0 + 5 * MS),
            "the clock starts at once when media flows"
        );
        assert_eq!(
            pacer.poll_output(t0 + 5 * MS, true),
            Some(Released::Video(frame(0)))
        );
    }

    #[test]
    fn a_frame_due_longer_ago_than_the_bound_is_dropped_and_the_next_goes_out() {
        let t0 = Instant::now();
        let mut pacer = exact(Some(true), None);
        pacer.push_video(frame(0));
        assert_eq!(pacer.poll_output(t0, true), Some(Released::Video(frame(0))));
        // The sender stalls for 1.5 s: the frame due at 40 ms is 1.46 s late.
        pacer.push_video(frame(40));
        let late = t0 + 1500 * MS;
        assert_eq!(
            pacer.poll_output(late, true),
            Some(Released::Late(Track::Video))
        );
        assert!(pacer.wants(Track::Video), "room for the next frame");
        // A frame still within the bound goes out, late but sent.
        pacer.push_video(frame(1000));
        assert_eq!(
            pacer.poll_output(late, true),
            Some(Released::Video(frame(1000)))
        );
    }

    #[test]
    fn exactly_the_bound_late_is_still_sent() {
        let t0 = Instant::now();
        let mut pacer = exact(None, Some(true));
        pacer.push_audio(packet(0));
        assert!(pacer.poll_output(t0, true).is_some());
        pacer.push_audio(packet(20));
        assert_eq!(
            pacer.poll_output(t0 + 1020 * MS, true),
            Some(Released::Audio(packet(20)))
        );
        pacer.push_audio(packet(40));
        assert_eq!(
            pacer.poll_output(t0 + 1041 * MS, true),
            Some(Released::Late(Track::Audio))
        );
    }

    #[test]
    fn pushed_frames_go_out_on_arrival_and_are_never_late() {
        let t0 = Instant::now();
        let mut pacer = exact(Some(false), Some(false));
        pacer.push_video(frame(10_000));
        pacer.push_audio(packet(0));
        assert_eq!(pacer.poll_timeout(t0, false), Some(t0));
        let now = t0 + Duration::from_secs(7);
        assert_eq!(
            pacer.poll_output(now, false),
            Some(Released::Video(frame(10_000)))
        );
        assert_eq!(
            pacer.poll_output(now, false),
            Some(Released::Audio(packet(0)))
        );
        assert_eq!(pacer.poll_output(now, false), None);
        assert_eq!(pacer.poll_timeout(now, false), None, "nothing waits");
    }

    #[test]
    fn ended_tracks_are_done_once_their_last_frame_went_out() {
        let t0 = Instant::now();
        let mut pacer = exact(Some(true), Some(true));
        pacer.push_video(frame(0));
        pacer.end(Track::Video);
        pacer.end(Track::Audio);
        assert!(!pacer.is_done(), "a video frame still waits");
        assert!(!pacer.wants(Track::Video));
        assert!(pacer.poll_output(t0, true).is_some());
        assert!(pacer.is_done());
    }
}
