//! What a running ingestion tells its caller: events as they happen, statistics on demand.

use std::sync::atomic::Ordering;
use std::time::Duration;

/// Where the ingestion is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IngestState {
    /// Opening the signaling socket (or waiting for it to reconnect).
    #[default]
    ConnectingSignaling,
    /// JoinStorageSession was called; waiting for its result and the storage peer's offer.
    Joining,
    /// Waiting before calling JoinStorageSession again (throttled or a server error).
    BackingOff,
    /// The offer was answered; ICE and DTLS are connecting.
    ConnectingMedia,
    /// Media is flowing to the storage peer.
    Streaming,
    /// Stopped for good.
    Stopped,
}

impl IngestState {
    /// A short lowercase name (`streaming`, `joining`, ...), for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectingSignaling => "connecting-signaling",
            Self::Joining => "joining",
            Self::BackingOff => "backing-off",
            Self::ConnectingMedia => "connecting-media",
            Self::Streaming => "streaming",
            Self::Stopped => "stopped",
        }
    }
}

/// Why the storage session is joined (again).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinReason {
    /// The first join after the signaling socket opened.
    Start,
    /// No offer arrived within the offer timeout (6 s) after a join.
    NoOffer,
    /// JoinStorageSession failed with a retryable error (throttled, server error, network).
    JoinFailed(String),
    /// The storage session rejected our answer (STATUS_RESPONSE).
    AnswerRejected(String),
    /// ICE and DTLS did not connect within the connect timeout.
    ConnectTimeout,
    /// The media connection was lost (ICE disconnected, DTLS closed, the peer ended it).
    MediaLost(String),
    /// The signaling socket reconnected after a drop; a new join gets a new offer on it.
    SignalingReconnected,
    /// The service sent GO_AWAY; the signaling socket reconnected.
    GoAway,
    /// The service sent RECONNECT_ICE_SERVER; ICE servers were refreshed and the socket
    /// reconnected.
    ReconnectIceServer,
    /// The session reached its maximum duration (1 hour at the service).
    SessionLimit,
}

impl std::fmt::Display for JoinReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Start => f.write_str("start"),
            Self::NoOffer => f.write_str("no offer arrived in time"),
            Self::JoinFailed(e) => write!(f, "JoinStorageSession failed: {e}"),
            Self::AnswerRejected(e) => write!(f, "the answer was rejected: {e}"),
            Self::ConnectTimeout => f.write_str("ICE/DTLS did not connect in time"),
            Self::MediaLost(e) => write!(f, "media connection lost: {e}"),
            Self::SignalingReconnected => f.write_str("signaling reconnected"),
            Self::GoAway => f.write_str("GO_AWAY"),
            Self::ReconnectIceServer => f.write_str("RECONNECT_ICE_SERVER"),
            Self::SessionLimit => f.write_str("session duration limit"),
        }
    }
}

/// A media track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// H.264 video.
    Video,
    /// Opus audio.
    Audio,
}

impl Track {
    /// `video` or `audio`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Video => "video",
            Self::Audio => "audio",
        }
    }
}

/// Something that happened. Read them with
/// [`IngestSession::next_event`](crate::IngestSession::next_event).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum IngestEvent {
    /// The state changed.
    StateChanged(IngestState),
    /// JoinStorageSession (or ...AsViewer) is being called.
    Joining {
        /// Why.
        reason: JoinReason,
        /// Attempts since the last connected session (1 for the first).
        attempt: u32,
    },
    /// The storage peer's offer arrived and was answered.
    OfferAnswered {
        /// Whether it replaced a running session.
        replaced_session: bool,
    },
    /// ICE and DTLS connected; media flows from now on.
    Connected {
        /// From the offer to connected.
        after_offer: Duration,
    },
    /// The first frame of a track went out in this session.
    FirstFrameSent(Track),
    /// The storage peer asked for a keyframe (PLI or FIR).
    KeyframeRequested,
    /// A media source ended (end of file without looping, a closed pipe).
    SourceEnded(Track),
    /// A TURN server granted an allocation: its relayed candidate is offered.
    RelayAllocated {
        /// The TURN URI.
        server: String,
        /// How the server is reached: `udp`, `tcp` or `tls`.
        transport: String,
        /// The relayed address.
        relayed: std::net::SocketAddr,
    },
    /// A TURN server gave no allocation (wrong credentials, unreachable, refused).
    RelayFailed {
        /// The TURN URI.
        server: String,
        /// Why, in words a user can act on.
        reason: String,
    },
    /// Something failed and was recovered from (or is about to be retried).
    Warning(String),
    /// Stopped for good; the handle's `wait`/`stop` returns the outcome.
    Stopped {
        /// Why.
        reason: String,
    },
    /// Events were dropped because the queue was full (the application did not call
    /// [`next_event`](crate::IngestSession::next_event) for a while). Delivered once there is
    /// room again, in place of what was lost; media never waits for the reader.
    EventsLost {
        /// How many events were dropped since the last report.
        count: u64,
    },
}

/// The application's event queue as the driver (and the signaling outbox) sees it: bounded,
/// and never waited for. An event that finds it full is counted; the count goes out as
/// [`IngestEvent::EventsLost`] before the next event that fits. Clones share the count, so an
/// event dropped by any of them is reported once.
#[derive(Debug, Clone)]
pub(crate) struct EventSink {
    queue: tokio::sync::mpsc::Sender<IngestEvent>,
    unreported: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl EventSink {
    pub(crate) fn new(queue: tokio::sync::mpsc::Sender<IngestEvent>) -> Self {
        Self {
            queue,
            unreported: Default::default(),
        }
    }

    /// Queue `event`, or count it when the queue is full. Never waits.
    pub(crate) fn send(&self, event: IngestEvent) {
        if !self.report_lost() || !self.try_send(event) {
            self.unreported.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Deliver the count of lost events if there is room: `false` when it is still waiting.
    pub(crate) fn report_lost(&self) -> bool {
        let count = self.unreported.swap(0, Ordering::Relaxed);
        if count == 0 {
            return true;
        }
        if self.try_send(IngestEvent::EventsLost { count }) {
            true
        } else {
            // Still no room: the count waits for the next chance (with what others added).
            self.unreported.fetch_add(count, Ordering::Relaxed);
            false
        }
    }

    /// `false` only when the queue is full (a closed queue has nobody to tell).
    fn try_send(&self, event: IngestEvent) -> bool {
        !matches!(
            self.queue.try_send(event),
            Err(tokio::sync::mpsc::error::TrySendError::Full(_))
        )
    }
}

/// Counters of one track.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TrackStats {
    /// Frames (access units or Opus packets) handed to WebRTC.
    pub frames_sent: u64,
    /// Their bytes.
    pub bytes_sent: u64,
    /// Video keyframes sent.
    pub keyframes_sent: u64,
    /// Frames dropped while no session was streaming.
    pub dropped_not_connected: u64,
    /// Video frames dropped while waiting for a keyframe (session start, keyframe request).
    pub dropped_waiting_for_keyframe: u64,
    /// Frames dropped because they were too late to send (the sender fell behind).
    pub dropped_late: u64,
    /// RTP packets sent (from the WebRTC stack).
    pub packets_sent: u64,
    /// NACKs received: packets the storage peer asked to have retransmitted.
    pub nacks_received: u64,
    /// Keyframe requests received (PLI and FIR).
    pub keyframe_requests: u64,
    /// The storage peer's reported loss fraction (0..1), when known.
    pub loss: Option<f32>,
    /// Bits per second over the last statistics interval (1 s).
    pub bitrate_bps: u64,
}

/// A snapshot of the ingestion's statistics.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Where the ingestion is.
    pub state: IngestState,
    /// Video counters (all sessions together).
    pub video: TrackStats,
    /// Audio counters (all sessions together).
    pub audio: TrackStats,
    /// JoinStorageSession calls made.
    pub joins: u64,
    /// Sessions that connected.
    pub sessions_connected: u64,
    /// Joins after the first connected session (re-joins).
    pub rejoins: u64,
    /// Round-trip time to the storage peer, when measured.
    pub rtt: Option<Duration>,
    /// Audio frames received from the storage peer (viewers' audio, for a master).
    pub audio_frames_received: u64,
    /// Candidates found after the start (server-reflexive through STUN).
    pub gathered_candidates: u64,
    /// STUN servers that answered a Binding request.
    pub stun_answers: u64,
    /// TURN allocations granted (relayed candidates), including those made with refreshed
    /// credentials.
    pub relay_allocations: u64,
    /// TURN allocations that failed.
    pub relay_failures: u64,
}

impl Stats {
    /// The counters of `track`.
    pub fn track(&self, track: Track) -> &TrackStats {
        match track {
            Track::Video => &self.video,
            Track::Audio => &self.audio,
        }
    }
}

#[cfg(test)]
mod sink_tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_counts_what_it_drops_and_reports_it_before_the_next_event() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        let sink = EventSink::new(tx);
        for _ in 0..5 {
            sink.send(IngestEvent::KeyframeRequested);
        }
        assert_eq!(rx.recv().await, Some(IngestEvent::KeyframeRequested));
        // One slot: the report takes it, so this event is counted too.
        sink.send(IngestEvent::SourceEnded(Track::Video));
        assert_eq!(rx.recv().await, Some(IngestEvent::KeyframeRequested));
        assert_eq!(rx.recv().await, Some(IngestEvent::EventsLost { count: 3 }));
        sink.send(IngestEvent::SourceEnded(Track::Audio));
        assert_eq!(rx.recv().await, Some(IngestEvent::EventsLost { count: 1 }));
        assert_eq!(
            rx.recv().await,
            Some(IngestEvent::SourceEnded(Track::Audio))
        );
        // Nothing waits, nothing is counted twice.
        assert!(sink.report_lost());
        assert!(rx.try_recv().is_err());
    }
}
