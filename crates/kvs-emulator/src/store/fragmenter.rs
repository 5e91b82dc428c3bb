//! Cuts a storage session's media into fragments as Kinesis Video does: a fragment starts at a
//! video keyframe and ends where the next keyframe starts the next one. Sans-IO: frames go in
//! with their producer timestamp and the server's clock, finished fragments come out of
//! [`Fragmenter::poll_fragment`]; no file, clock or task is touched here.
//!
//! Rules (the service's, as `kvs-archived-media.md` records them):
//! - frames before the first keyframe are not stored (nothing could decode them);
//! - a fragment longer than [`FragmenterLimits::max_duration_ms`] or larger than
//!   [`FragmenterLimits::max_bytes`] is closed there, and frames are dropped (counted) until the
//!   next keyframe opens the next one;
//! - audio arrives interleaved with video, not in timestamp order: a fragment that a keyframe
//!   closed stays open for audio stamped before the cut until audio stamped after it arrives,
//!   or video has moved [`FragmenterLimits::audio_grace_ms`] past the cut;
//! - and the other way round: audio stamped at or after the newest video frame is held until
//!   video passes it, so that audio stamped after a keyframe that has not arrived yet goes into
//!   the fragment that keyframe opens, not the one before it. Audio more than
//!   [`FragmenterLimits::audio_grace_ms`] ahead of video (video stalled or ended) is not held.

use std::collections::VecDeque;

use kvs_media::mkv::{VideoParams, AUDIO_TRACK, VIDEO_TRACK};

/// One frame as the store keeps it: video in AVCC form, audio as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredFrame {
    /// [`VIDEO_TRACK`] or [`AUDIO_TRACK`].
    pub track: u64,
    /// Producer timestamp, milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// Whether the frame is a keyframe (always true for audio).
    pub keyframe: bool,
    /// The payload.
    pub data: Vec<u8>,
}

/// A finished fragment, before it is numbered and written.
#[derive(Debug, Clone)]
pub(crate) struct Fragment {
    /// Producer timestamp of its first (key)frame, ms since the epoch.
    pub producer_start_ms: i64,
    /// Server clock when its first frame arrived, ms since the epoch.
    pub server_start_ms: i64,
    /// From its first frame to the next fragment's first frame (or the end of its last frame).
    pub duration_ms: i64,
    /// The video's codec private data (SPS and PPS) at the keyframe that opened it.
    pub video: VideoParams,
    /// Its frames, video and audio, in arrival order.
    pub frames: Vec<StoredFrame>,
    /// Payload bytes.
    pub bytes: usize,
}

impl Fragment {
    /// Producer timestamp where it ends: the next fragment's start, ms since the epoch.
    pub(crate) fn end_ms(&self) -> i64 {
        self.producer_start_ms + self.duration_ms
    }
}

/// Bounds on one fragment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FragmenterLimits {
    /// Longest fragment (the service: 20 s).
    pub max_duration_ms: i64,
    /// Largest fragment payload (the service: 50 MB).
    pub max_bytes: usize,
    /// How long a closed fragment waits for late audio, in video time.
    pub audio_grace_ms: i64,
}

impl Default for FragmenterLimits {
    fn default() -> Self {
        Self {
            max_duration_ms: 20_000,
            max_bytes: 50 * 1024 * 1024,
            audio_grace_ms: 500,
        }
    }
}

/// The sans-IO fragmenter of one storage session.
#[derive(Debug)]
pub(crate) struct Fragmenter {
    limits: FragmenterLimits,
    open: Option<Fragment>,
    /// Closed by a keyframe, still taking audio stamped before `closing_until_ms`.
    closing: Option<Fragment>,
    /// Audio stamped at or after the newest video frame, in arrival order, until video passes it.
    audio_ahead: VecDeque<StoredFrame>,
    done: VecDeque<Fragment>,
    last_video_ms: Option<i64>,
    last_video_gap_ms: i64,
    last_audio_ms: Option<i64>,
    /// The spacing of audio frames, the playing time of the last one (AAC-LC at 48 kHz: 21 ms).
    last_audio_gap_ms: i64,
    dropped: u64,
}

impl Fragmenter {
    /// A fragmenter with these limits.
    pub(crate) fn new(limits: FragmenterLimits) -> Self {
        Self {
            limits,
            open: None,
            closing: None,
            audio_ahead: VecDeque::new(),
            done: VecDeque::new(),
            last_video_ms: None,
            last_video_gap_ms: 40,
            last_audio_ms: None,
            last_audio_gap_ms: 21,
            dropped: 0,
        }
    }

    /// Frames not stored: before the first keyframe, or after a fragment hit a limit.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// One video access unit (AVCC). `params` are the parameter sets in force; a keyframe
    /// without them cannot open a fragment.
    pub(crate) fn video(
        &mut self,
        server_now_ms: i64,
        timestamp_ms: i64,
        keyframe: bool,
        params: Option<&VideoParams>,
        data: Vec<u8>,
    ) {
        if let Some(last) = self.last_video_ms {
            if timestamp_ms > last {
                self.last_video_gap_ms = (timestamp_ms - last).min(1000);
            }
        }
        self.last_video_ms = Some(timestamp_ms);
        // Audio stamped before this frame belongs before it, whatever fragment it opens.
        self.release_audio_ahead(timestamp_ms);
        self.release_closing_once_past(timestamp_ms - self.limits.audio_grace_ms);
        let frame = StoredFrame {
            track: VIDEO_TRACK,
            timestamp_ms,
            keyframe,
            data,
        };
        if keyframe {
            if let Some(params) = params {
                if let Some(mut previous) = self.open.take() {
                    previous.duration_ms = timestamp_ms - previous.producer_start_ms;
                    self.close(previous, true);
                }
                self.open = Some(Fragment {
                    producer_start_ms: timestamp_ms,
                    server_start_ms: server_now_ms,
                    duration_ms: 0,
                    video: params.clone(),
                    bytes: frame.data.len(),
                    frames: vec![frame],
                });
                return;
            }
        }
        self.append(frame);
    }

    /// One audio frame.
    pub(crate) fn audio(&mut self, timestamp_ms: i64, data: Vec<u8>) {
        if let Some(last) = self.last_audio_ms.replace(timestamp_ms) {
            if timestamp_ms > last {
                self.last_audio_gap_ms = (timestamp_ms - last).min(1000);
            }
        }
        let frame = StoredFrame {
            track: AUDIO_TRACK,
            timestamp_ms,
            keyframe: true,
            data,
        };
        if self
            .last_video_ms
            .is_some_and(|video_ms| timestamp_ms >= video_ms)
        {
            // Audio comes in timestamp order: none is left for a closed fragment it is past.
            self.release_closing_once_past(timestamp_ms);
            // Ahead of video: a keyframe stamped before it may still come.
            self.audio_ahead.push_back(frame);
            self.release_audio_ahead(timestamp_ms - self.limits.audio_grace_ms);
            return;
        }
        self.place_audio(frame);
    }

    /// Puts an audio frame into the fragment its timestamp belongs to.
    fn place_audio(&mut self, frame: StoredFrame) {
        let timestamp_ms = frame.timestamp_ms;
        if let Some(closing) = self.closing.as_mut() {
            if timestamp_ms < closing.end_ms() {
                closing.bytes += frame.data.len();
                closing.frames.push(frame);
                return;
            }
            self.release_closing_once_past(i64::MAX);
        }
        match &self.open {
            Some(open) if timestamp_ms >= open.producer_start_ms => self.append(frame),
            // Before the first keyframe, or older than the fragment it would go into.
            _ => self.dropped += 1,
        }
    }

    /// The session ended: close what is open.
    pub(crate) fn finish(&mut self) {
        self.release_audio_ahead(i64::MAX);
        self.release_closing_once_past(i64::MAX);
        if let Some(mut open) = self.open.take() {
            let end = open
                .frames
                .iter()
                .map(|f| {
                    f.timestamp_ms
                        + if f.track == VIDEO_TRACK {
                            self.last_video_gap_ms
                        } else {
                            self.last_audio_gap_ms
                        }
                })
                .max()
                .unwrap_or(open.producer_start_ms);
            open.duration_ms = end - open.producer_start_ms;
            self.close(open, false);
            self.release_closing_once_past(i64::MAX);
        }
    }

    /// The fragments still taking frames: the closing one, then the open one.
    pub(crate) fn pending(&self) -> impl Iterator<Item = &Fragment> {
        self.closing.iter().chain(self.open.iter())
    }

    /// The next finished fragment, oldest first.
    pub(crate) fn poll_fragment(&mut self) -> Option<Fragment> {
        self.done.pop_front()
    }

    fn append(&mut self, frame: StoredFrame) {
        let Some(open) = self.open.as_mut() else {
            self.dropped += 1;
            return;
        };
        let span = frame.timestamp_ms - open.producer_start_ms;
        if span > self.limits.max_duration_ms
            || open.bytes + frame.data.len() > self.limits.max_bytes
        {
            tracing::warn!(
                span_ms = span,
                bytes = open.bytes,
                "a fragment reached the service's limit without a keyframe; frames are dropped until the next one"
            );
            if let Some(mut full) = self.open.take() {
                full.duration_ms = span.clamp(0, self.limits.max_duration_ms);
                self.close(full, false);
            }
            self.dropped += 1;
            return;
        }
        open.bytes += frame.data.len();
        open.frames.push(frame);
    }

    /// A fragment is finished; one closed by a keyframe may still take late audio.
    fn close(&mut self, fragment: Fragment, await_audio: bool) {
        self.release_closing_once_past(i64::MAX);
        if await_audio {
            self.closing = Some(fragment);
        } else {
            self.done.push_back(fragment);
        }
    }

    /// Places the held audio stamped before `before_ms`, in arrival order.
    fn release_audio_ahead(&mut self, before_ms: i64) {
        if !self
            .audio_ahead
            .iter()
            .any(|frame| frame.timestamp_ms < before_ms)
        {
            return;
        }
        let held = std::mem::take(&mut self.audio_ahead);
        for frame in held {
            if frame.timestamp_ms < before_ms {
                self.place_audio(frame);
            } else {
                self.audio_ahead.push_back(frame);
            }
        }
    }

    /// Releases the closing fragment once `horizon_ms` (how far video or audio has come) is at
    /// or past its end.
    fn release_closing_once_past(&mut self, horizon_ms: i64) {
        let ready = self
            .closing
            .as_ref()
            .is_some_and(|c| horizon_ms >= c.end_ms());
        if ready {
            if let Some(closing) = self.closing.take() {
                self.done.push_back(closing);
            }
        }
    }
}

/// Parameter sets of a 320x240 constrained-baseline stream, for tests.
#[cfg(test)]
pub(crate) fn test_params() -> VideoParams {
    VideoParams {
        width: 320,
        height: 240,
        sps: vec![0x67, 0x42, 0xe0, 0x1f],
        pps: vec![0x68, 0xce],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> VideoParams {
        test_params()
    }

    /// Feed `seconds` of 25 fps video with a keyframe every `gop` frames and 20 ms audio frames
    /// arriving `audio_lead_ms` ahead of the video they accompany (behind it when negative);
    /// server time runs 300 ms behind producer time.
    fn feed(f: &mut Fragmenter, start_ms: i64, seconds: i64, gop: i64, audio_lead_ms: i64) {
        let p = params();
        let mut audio_ms = start_ms;
        for i in 0..seconds * 25 {
            let t = start_ms + i * 40;
            f.video(t + 300, t, i % gop == 0, Some(&p), vec![0; 100]);
            while audio_ms <= t + audio_lead_ms && audio_ms < start_ms + seconds * 1000 {
                f.audio(audio_ms, vec![1; 10]);
                audio_ms += 20;
            }
        }
        while audio_ms < start_ms + seconds * 1000 {
            f.audio(audio_ms, vec![1; 10]);
            audio_ms += 20;
        }
    }

    fn drain(f: &mut Fragmenter) -> Vec<Fragment> {
        std::iter::from_fn(|| f.poll_fragment()).collect()
    }

    #[test]
    fn fragments_start_at_keyframes_and_last_until_the_next_one() {
        // Audio behind video (it waits in the closed fragment), level with it, and ahead of
        // it by up to a sender's send-ahead (it waits for the keyframe that may come).
        for audio_lead_ms in [-10, 0, 30, 80] {
            let mut f = Fragmenter::new(FragmenterLimits::default());
            feed(&mut f, 1_000_000, 10, 50, audio_lead_ms);
            f.finish();
            check_two_second_fragments(&drain(&mut f));
        }
    }

    fn check_two_second_fragments(fragments: &[Fragment]) {
        assert_eq!(fragments.len(), 5, "10 s with a keyframe every 2 s");
        for (i, frag) in fragments.iter().enumerate() {
            assert_eq!(frag.producer_start_ms, 1_000_000 + i as i64 * 2000);
            assert_eq!(frag.server_start_ms, frag.producer_start_ms + 300);
            assert_eq!(frag.duration_ms, 2000, "fragment {i}");
            let first = &frag.frames[0];
            assert!(first.keyframe && first.track == VIDEO_TRACK);
            assert_eq!(
                frag.frames
                    .iter()
                    .filter(|x| x.track == VIDEO_TRACK)
                    .count(),
                50
            );
            assert_eq!(
                frag.frames
                    .iter()
                    .filter(|x| x.track == AUDIO_TRACK)
                    .count(),
                100
            );
            assert!(frag
                .frames
                .iter()
                .all(|x| (frag.producer_start_ms..frag.producer_start_ms + 2000)
                    .contains(&x.timestamp_ms)));
            assert_eq!(frag.bytes, 50 * 100 + 100 * 10);
        }
    }

    #[test]
    fn audio_stamped_after_a_keyframe_that_has_not_come_goes_into_the_fragment_it_opens() {
        let mut f = Fragmenter::new(FragmenterLimits::default());
        let p = params();
        f.video(0, 0, true, Some(&p), vec![0]);
        f.video(40, 40, false, Some(&p), vec![0]);
        // Sent ahead: audio up to 100 ms arrives before the keyframe at 80 ms.
        for t in [20, 40, 60, 80, 100] {
            f.audio(t, vec![1]);
        }
        f.video(80, 80, true, Some(&p), vec![0]);
        f.video(120, 120, false, Some(&p), vec![0]);
        f.finish();
        let audio_of = |frag: &Fragment| -> Vec<i64> {
            frag.frames
                .iter()
                .filter(|x| x.track == AUDIO_TRACK)
                .map(|x| x.timestamp_ms)
                .collect()
        };
        let fragments = drain(&mut f);
        assert_eq!(fragments.len(), 2);
        assert_eq!(audio_of(&fragments[0]), vec![20, 40, 60]);
        assert_eq!(audio_of(&fragments[1]), vec![80, 100]);
    }

    #[test]
    fn audio_ahead_of_stalled_video_waits_no_longer_than_the_grace() {
        let mut f = Fragmenter::new(FragmenterLimits::default());
        let p = params();
        f.video(0, 0, true, Some(&p), vec![0]);
        for t in (0..=600).step_by(20) {
            f.audio(t, vec![1]);
        }
        // Video stopped at 0 ms: audio 500 ms older than the newest is placed, the rest waits.
        let placed = f
            .pending()
            .flat_map(|frag| frag.frames.iter())
            .filter(|x| x.track == AUDIO_TRACK)
            .count();
        assert_eq!(placed, 5, "0..100 ms");
        f.finish();
        let fragments = drain(&mut f);
        assert_eq!(fragments.len(), 1);
        assert_eq!(fragments[0].frames.len(), 1 + 31, "nothing lost at the end");
    }

    #[test]
    fn late_audio_goes_into_the_fragment_it_belongs_to() {
        let mut f = Fragmenter::new(FragmenterLimits::default());
        let p = params();
        f.video(0, 0, true, Some(&p), vec![0]);
        f.video(40, 40, false, Some(&p), vec![0]);
        f.video(80, 80, true, Some(&p), vec![0]);
        assert!(f.poll_fragment().is_none(), "held for audio before the cut");
        f.audio(60, vec![1]);
        f.audio(90, vec![1]);
        let first = f.poll_fragment().expect("released by audio after the cut");
        assert_eq!(first.duration_ms, 80);
        assert_eq!(first.frames.last().map(|x| x.timestamp_ms), Some(60));
        f.finish();
        let second = f.poll_fragment().expect("the open one at the end");
        assert_eq!(second.frames.len(), 2);
        assert_eq!(
            second.duration_ms, 40,
            "the last video frame plus the gap before it"
        );
    }

    #[test]
    fn a_closed_fragment_is_released_when_audio_never_comes() {
        let mut f = Fragmenter::new(FragmenterLimits::default());
        let p = params();
        let mut released_at = None;
        for i in 0..30 {
            f.video(i * 40, i * 40, i == 0 || i == 10, Some(&p), vec![0]);
            if released_at.is_none() && !f.done.is_empty() {
                released_at = Some(i * 40);
            }
        }
        // The first fragment ends at 400 ms; with no audio it waits until video reaches 900 ms.
        assert_eq!(released_at, Some(920));
        let released: Vec<_> = drain(&mut f).iter().map(|x| x.producer_start_ms).collect();
        assert_eq!(released, vec![0]);
    }

    #[test]
    fn nothing_before_the_first_keyframe_is_stored() {
        let mut f = Fragmenter::new(FragmenterLimits::default());
        let p = params();
        f.audio(0, vec![1]);
        f.video(0, 0, false, Some(&p), vec![0]);
        f.video(40, 40, true, None, vec![0]);
        f.video(80, 80, true, Some(&p), vec![0]);
        f.finish();
        let fragments = drain(&mut f);
        assert_eq!(fragments.len(), 1);
        assert_eq!(fragments[0].producer_start_ms, 80);
        assert_eq!(f.dropped(), 3);
    }

    #[test]
    fn a_fragment_without_keyframes_is_cut_at_the_limit_and_the_rest_dropped() {
        let limits = FragmenterLimits {
            max_duration_ms: 1000,
            ..FragmenterLimits::default()
        };
        let mut f = Fragmenter::new(limits);
        let p = params();
        for i in 0..50 {
            f.video(i * 40, i * 40, i == 0 || i == 40, Some(&p), vec![0; 10]);
        }
        f.finish();
        let fragments = drain(&mut f);
        assert_eq!(fragments.len(), 2);
        assert_eq!(fragments[0].duration_ms, 1000);
        assert_eq!(fragments[0].frames.len(), 26, "0..=1000 ms");
        assert_eq!(fragments[1].producer_start_ms, 1600);
        assert_eq!(f.dropped(), 14, "1040..1560 ms");
    }

    #[test]
    fn a_fragment_is_cut_at_the_size_limit() {
        let limits = FragmenterLimits {
            max_bytes: 1000,
            ..FragmenterLimits::default()
        };
        let mut f = Fragmenter::new(limits);
        let p = params();
        for i in 0..20 {
            f.video(i * 40, i * 40, i == 0, Some(&p), vec![0; 100]);
        }
        f.finish();
        let fragments = drain(&mut f);
        assert_eq!(fragments.len(), 1);
        assert_eq!(fragments[0].bytes, 1000);
        assert_eq!(f.dropped(), 10);
    }
}
