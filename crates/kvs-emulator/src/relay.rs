//! Media relay between the participants of one channel's storage session, as the service does
//! for multi-viewer ingestion (protocol notes §1.3 step 7): the master's video and audio go to
//! every connected viewer; the viewers' audio goes to the master; a viewer's keyframe request
//! (its PLI, or joining) reaches the master as a PLI.
//!
//! The service mixes the viewers' audio for the master. Mixing Opus needs a decoder and an
//! encoder, which the emulator does not carry: it **forwards** one viewer's audio at a time
//! instead (the first one heard; another takes over after [`SPEAKER_HOLD`] of silence), with the
//! timestamps rebased so the master's audio track stays continuous across speakers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvs_media::AudioCodec;
use str0m::media::{Frequency, MediaTime};
use tokio::sync::{broadcast, Notify};

/// Frames buffered per relay direction before a slow receiver starts losing them.
const RELAY_BUFFER: usize = 256;

/// How long a forwarded viewer keeps the master's audio after its last frame.
pub(crate) const SPEAKER_HOLD: Duration = Duration::from_millis(500);

/// What a relayed frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// One H.264 access unit (Annex B), from the master.
    Video,
    /// One Opus packet.
    Audio,
}

/// One depacketized frame on its way to other participants.
#[derive(Debug, Clone)]
pub(crate) struct RelayedFrame {
    pub kind: FrameKind,
    /// The session that received it.
    pub source: u64,
    /// Media time in the codec's clock.
    pub time: MediaTime,
    pub data: Arc<[u8]>,
}

/// The relay of one channel.
pub(crate) struct ChannelRelay {
    to_viewers: broadcast::Sender<RelayedFrame>,
    to_master: broadcast::Sender<RelayedFrame>,
    keyframe_wanted: Notify,
}

impl ChannelRelay {
    fn new() -> Self {
        Self {
            to_viewers: broadcast::channel(RELAY_BUFFER).0,
            to_master: broadcast::channel(RELAY_BUFFER).0,
            keyframe_wanted: Notify::new(),
        }
    }

    /// A frame the master sent, for every viewer. Dropped when no viewer listens.
    pub(crate) fn send_to_viewers(&self, frame: RelayedFrame) {
        let _ = self.to_viewers.send(frame);
    }

    /// Audio a viewer sent, for the master. Dropped when no master listens.
    pub(crate) fn send_to_master(&self, frame: RelayedFrame) {
        let _ = self.to_master.send(frame);
    }

    /// What a viewer receives from now on.
    pub(crate) fn viewer_feed(&self) -> broadcast::Receiver<RelayedFrame> {
        self.to_viewers.subscribe()
    }

    /// What the master receives from now on.
    pub(crate) fn master_feed(&self) -> broadcast::Receiver<RelayedFrame> {
        self.to_master.subscribe()
    }

    /// A viewer needs a keyframe: the master's storage peer sends a PLI. Requests made while
    /// none is pending collapse into one.
    pub(crate) fn request_keyframe(&self) {
        self.keyframe_wanted.notify_one();
    }

    /// Resolves when a viewer asked for a keyframe.
    pub(crate) async fn keyframe_requested(&self) {
        self.keyframe_wanted.notified().await;
    }
}

/// The relays of every channel, made on first use.
#[derive(Default)]
pub(crate) struct Relays(Mutex<HashMap<String, Arc<ChannelRelay>>>);

impl Relays {
    /// The relay of a channel.
    pub(crate) fn channel(&self, channel_arn: &str) -> Arc<ChannelRelay> {
        let mut relays = self.0.lock().unwrap_or_else(|e| e.into_inner());
        relays
            .entry(channel_arn.to_owned())
            .or_insert_with(|| Arc::new(ChannelRelay::new()))
            .clone()
    }

    /// Forget a deleted channel's relay (sessions still holding it keep their copy).
    pub(crate) fn remove(&self, channel_arn: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(channel_arn);
    }
}

/// Picks which viewer the master hears and rebases its audio timestamps onto one continuous
/// 48 kHz timeline.
#[derive(Debug, Default)]
pub(crate) struct SpeakerSelector {
    current: Option<Speaker>,
    /// The end of the last forwarded frame on the master's timeline.
    next_out: Option<u64>,
}

#[derive(Debug)]
struct Speaker {
    source: u64,
    last_heard: Instant,
    /// Added to the speaker's own timestamps (48 kHz ticks) to land on the output timeline.
    offset: i128,
}

impl SpeakerSelector {
    /// The output time of a viewer's audio frame, or `None` when another viewer has the floor.
    pub(crate) fn admit(&mut self, frame: &RelayedFrame, now: Instant) -> Option<MediaTime> {
        let ticks = frame.time.rebase(Frequency::FORTY_EIGHT_KHZ).numer();
        let switch = match &self.current {
            Some(s) if s.source == frame.source => false,
            Some(s) => now.duration_since(s.last_heard) >= SPEAKER_HOLD,
            None => true,
        };
        if switch {
            let start = self.next_out.unwrap_or(ticks);
            self.current = Some(Speaker {
                source: frame.source,
                last_heard: now,
                offset: i128::from(start) - i128::from(ticks),
            });
        }
        let speaker = self.current.as_mut()?;
        if speaker.source != frame.source {
            return None;
        }
        speaker.last_heard = now;
        let out = u64::try_from(i128::from(ticks) + speaker.offset).ok()?;
        // One nominal frame: the step assumed between consecutive frames.
        self.next_out = Some(out + AudioCodec::INGESTED.nominal_frame_ticks());
        Some(MediaTime::new(out, Frequency::FORTY_EIGHT_KHZ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(source: u64, ticks: u64) -> RelayedFrame {
        RelayedFrame {
            kind: FrameKind::Audio,
            source,
            time: MediaTime::new(ticks, Frequency::FORTY_EIGHT_KHZ),
            data: Arc::from(&[0xF8u8, 0xFF, 0xFE][..]),
        }
    }

    #[test]
    fn one_viewer_is_heard_at_a_time_and_the_timeline_stays_continuous() {
        let mut selector = SpeakerSelector::default();
        let t0 = Instant::now();
        let first = selector.admit(&audio(1, 10_000), t0).unwrap();
        assert_eq!(first.numer(), 10_000);
        assert_eq!(
            selector.admit(&audio(1, 10_960), t0).unwrap().numer(),
            10_960
        );
        // Another viewer talking at the same time is not forwarded...
        assert!(selector.admit(&audio(2, 500_000), t0).is_none());
        // ... until the first has been quiet for the hold time; then its audio continues the
        // master's timeline right after the last forwarded frame.
        let later = t0 + SPEAKER_HOLD;
        let switched = selector.admit(&audio(2, 500_960), later).unwrap();
        assert_eq!(switched.numer(), 11_920);
        assert_eq!(
            selector.admit(&audio(2, 501_920), later).unwrap().numer(),
            12_880
        );
        assert!(selector.admit(&audio(1, 11_920), later).is_none());
    }

    #[tokio::test]
    async fn frames_reach_subscribers_and_keyframe_requests_collapse() {
        let relays = Relays::default();
        let relay = relays.channel("arn:c");
        let mut viewer = relay.viewer_feed();
        relay.send_to_viewers(audio(7, 960));
        assert_eq!(viewer.recv().await.unwrap().source, 7);
        let mut master = relays.channel("arn:c").master_feed();
        relay.send_to_master(audio(8, 960));
        assert_eq!(master.recv().await.unwrap().source, 8);
        relay.request_keyframe();
        relay.request_keyframe();
        tokio::time::timeout(Duration::from_secs(1), relay.keyframe_requested())
            .await
            .expect("a pending request resolves");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), relay.keyframe_requested())
                .await
                .is_err(),
            "two requests before the master looked are one PLI"
        );
    }
}
