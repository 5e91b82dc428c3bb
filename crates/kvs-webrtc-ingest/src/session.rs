//! The ingestion protocol, sans-IO: join → offer → answer → media → re-join, for as long as
//! the caller wants media to flow. str0m's [`Rtc`] (itself sans-IO) is the WebRTC peer of the
//! current storage session.
//!
//! No socket, task, channel or clock here. The driver (`driver.rs`) feeds inputs with the
//! current time (`handle_*`), then drains [`IngestCore::poll_output`] until
//! [`Output::Timeout`] (str0m's single-mutation rule, extended to this state machine), and
//! sleeps until that deadline or the next input. The tests drive it with simulated time.
//!
//! The rules (protocol notes §1.2, §3.4, §4.1, §4.2):
//! * join once the signaling socket is connected, and again after every reconnection (a new
//!   join is the only way to get a new offer);
//! * no offer within the offer timeout (6 s) → join again at once; a throttled or failed join
//!   → join again after an exponential backoff; either way at most `max_join_attempts` in a
//!   row without a connected session;
//! * candidates that arrive before the offer are kept and added after it;
//! * a new offer replaces the running session (the most recent join wins);
//! * ICE/DTLS not connected in time, a lost media connection, a rejected answer and the
//!   session-duration limit all lead to a new join;
//! * every session starts its video at a keyframe.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvs_webrtc_signaling::Backoff;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output as RtcOutput, Rtc};

use crate::error::{BoxError, Error, ErrorKind};
use crate::event::{IngestEvent, IngestState, JoinReason, Stats, Track};
use crate::media::{Prepared, VideoPrep};
use crate::packetize::H264Packetizer;
use crate::source::Picture;
use rtp_sender::{random_first_seq_no, RtpSender};

/// Candidates kept while no offer has arrived.
const MAX_EARLY_CANDIDATES: usize = 64;
/// The least time the session stays up after the last frame, for NACKs of the last packets
/// (three round trips, when the round trip is known and longer).
pub(crate) const FINISH_LINGER_MIN: Duration = Duration::from_millis(100);
/// The most time the session stays up after the last frame.
pub(crate) const FINISH_LINGER_MAX: Duration = Duration::from_secs(1);

/// How long things may take; the defaults are the AWS SDKs' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timings {
    /// How long to wait for the storage peer's offer after a join (the C and JS SDKs: 6 s).
    pub offer_timeout: Duration,
    /// How long ICE and DTLS may take after the answer (the JS SDK: 30 s).
    pub connect_timeout: Duration,
    /// Join again after a session has been connected this long; the service ends storage
    /// sessions after 1 hour.
    pub session_refresh: Duration,
    /// The backoff between joins after a throttled or failed join or a rejected answer.
    pub join_backoff: Backoff,
    /// Joins in a row without a connected session before giving up.
    pub max_join_attempts: u32,
    /// A keyframe request this soon after a keyframe went out is taken as asking for that
    /// one (it is still on its way), and does not restart the video at the next keyframe.
    pub keyframe_request_grace: Duration,
    /// A frame due longer ago than this is dropped (with the rest of its group of pictures):
    /// the sender fell behind and catches up instead of building a backlog.
    pub max_lateness: Duration,
    /// How early a frame of a file or pipe source may leave (pushed frames leave as they
    /// come): the frames due within this window leave together, in one wake-up of the sender.
    /// Longer means fewer wake-ups, so less CPU per packet where few sessions run, and
    /// burstier traffic. The default, 80 ms, wakes once per 100 ms at 25 fps (two pictures
    /// and their audio at once) and costs a fifth less CPU per packet than 40 ms for one
    /// session (`benches/sender_figures.rs`). Zero sends each frame at its time. At most 1 s.
    pub send_ahead: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            offer_timeout: Duration::from_secs(6),
            connect_timeout: Duration::from_secs(30),
            session_refresh: Duration::from_secs(59 * 60),
            join_backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(16),
            },
            max_join_attempts: 10,
            keyframe_request_grace: Duration::from_millis(500),
            max_lateness: Duration::from_secs(1),
            send_ahead: crate::pacing::SEND_AHEAD,
        }
    }
}

/// Which side of the storage session we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The video producer: sends H.264 and Opus.
    Master,
    /// A viewer: sends Opus or nothing, never video.
    Viewer,
}

/// Fixed facts of one ingestion.
#[derive(Debug, Clone)]
pub(crate) struct CoreConfig {
    pub(crate) side: Side,
    pub(crate) timings: Timings,
    pub(crate) sends_video: bool,
    pub(crate) sends_audio: bool,
    /// Seed of the backoff jitter (tests fix it).
    pub(crate) jitter_seed: u64,
}

/// A join that failed: the discovery error's kind, which decides between joining again and
/// giving up, and the error itself (the source of the ingestion's error if it gives up).
#[derive(Debug)]
pub(crate) struct JoinFailure {
    pub(crate) kind: kvs_webrtc_discovery::ErrorKind,
    pub(crate) error: BoxError,
}

impl From<kvs_webrtc_discovery::Error> for JoinFailure {
    fn from(error: kvs_webrtc_discovery::Error) -> Self {
        Self {
            kind: error.kind(),
            error: Box::new(error),
        }
    }
}

impl JoinFailure {
    /// Throttled (ClientLimitExceeded), a server error or a network failure: join again later.
    /// Anything else (access denied, unknown channel, storage disabled) will not get better.
    fn is_retryable(&self) -> bool {
        use kvs_webrtc_discovery::ErrorKind as D;
        matches!(self.kind, D::Throttled | D::Network | D::Service)
    }
}

/// What the core asks its driver to do.
#[derive(Debug)]
pub(crate) enum Output {
    /// Call JoinStorageSession (or ...AsViewer) and report with
    /// [`IngestCore::handle_join_result`].
    Join,
    /// Send this SDP answer on the signaling socket.
    SendAnswer(String),
    /// Send this local candidate (`candidate:` line) for the answer's first m-line.
    SendCandidate {
        /// The candidate line, without `a=`.
        candidate: String,
        /// The m-line's mid.
        mid: String,
    },
    /// Send this datagram from `source` (one of the local candidates' sockets).
    Transmit {
        /// The local address to send from.
        source: SocketAddr,
        /// Where to.
        destination: SocketAddr,
        /// The bytes.
        contents: Vec<u8>,
    },
    /// The storage peer has a candidate at this address (TURN relays install a permission
    /// for it before its first connectivity check arrives).
    PeerAddress(std::net::IpAddr),
    /// Tell the caller.
    Event(IngestEvent),
    /// A live video source should produce a keyframe soon.
    KeyframeWanted,
    /// Stopped for good, with this reason; the error is set when it gave up (or hit a fatal
    /// error) rather than being stopped.
    Ended {
        /// Why.
        reason: String,
        /// The ingestion's error, when it failed.
        error: Option<Error>,
    },
    /// Nothing to do before this instant (or the next input).
    Timeout(Instant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No signaling socket; join once it connects.
    WaitingForSignaling,
    /// A join is in flight.
    Joining,
    /// Join again at this instant.
    BackingOff(Instant),
    /// Joined; an offer is due before this instant.
    AwaitingOffer(Instant),
    /// Answered; connected is due before this instant.
    Answered(Instant),
    /// Connected; join again (for a fresh session) at this instant.
    Streaming(Instant),
}

/// The WebRTC peer of one storage session.
struct Peer {
    rtc: Rtc,
    video: Option<RtpSender>,
    audio: Option<RtpSender>,
    packetizer: H264Packetizer,
    offered_at: Instant,
    /// ICE and DTLS are up: media written now is sent.
    connected: bool,
    last_keyframe_sent: Option<Instant>,
    first_video_sent: bool,
    first_audio_sent: bool,
}

impl Peer {
    fn video_mid(&self) -> Option<Mid> {
        self.video.as_ref().map(RtpSender::mid)
    }

    fn audio_mid(&self) -> Option<Mid> {
        self.audio.as_ref().map(RtpSender::mid)
    }

    /// The m-line candidates are trickled for.
    fn first_mid(&self) -> Option<Mid> {
        self.video_mid().or(self.audio_mid())
    }
}

/// The state machine; see the module docs.
pub(crate) struct IngestCore {
    config: CoreConfig,
    phase: Phase,
    signaling_connected: bool,
    /// Set by GO_AWAY / RECONNECT_ICE_SERVER: the reason of the join after the reconnect.
    next_join_reason: Option<JoinReason>,
    /// The reason of the join in flight or about to be made.
    join_reason: JoinReason,
    /// Joins since the last connected session.
    attempts: u32,
    early_candidates: Vec<Candidate>,
    local_candidates: Vec<Candidate>,
    peer: Option<Peer>,
    video: VideoPrep,
    /// A picture's RTP payloads on their way into str0m (kept to reuse its buffer).
    payloads: Vec<Arc<[u8]>>,
    stats: Stats,
    /// Egress byte counters at the last statistics event, per track, for the bitrate.
    last_egress: [(u64, Option<Instant>); 2],
    outputs: VecDeque<Output>,
    ended: bool,
    rng: u64,
    /// The time of the latest input: the core's clock (it never reads a real one).
    now: Instant,
    /// Offers answered.
    sessions_answered: u64,
    /// The peer that answers the next offer, made when a join is accepted (see
    /// [`answer::Answerer`]).
    answerer: Option<answer::Answerer>,
    /// The sources ended: stop at this instant, with this reason ([`IngestCore::finish`]).
    finishing: Option<(Instant, String)>,
}

impl IngestCore {
    /// A core that will join once the signaling socket is connected.
    pub(crate) fn new(now: Instant, config: CoreConfig) -> Self {
        let rng = config.jitter_seed | 1;
        Self {
            config,
            phase: Phase::WaitingForSignaling,
            signaling_connected: false,
            next_join_reason: None,
            join_reason: JoinReason::Start,
            attempts: 0,
            early_candidates: Vec::new(),
            local_candidates: Vec::new(),
            peer: None,
            video: VideoPrep::default(),
            payloads: Vec::new(),
            stats: Stats::default(),
            last_egress: [(0, None); 2],
            outputs: VecDeque::new(),
            ended: false,
            rng,
            now,
            sessions_answered: 0,
            answerer: None,
            finishing: None,
        }
    }

    /// The statistics so far.
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Whether media written now would be sent: a session is connected. (While a new join for
    /// a fresh session is under way, the old session keeps carrying media until the new offer
    /// replaces it.)
    pub(crate) fn is_streaming(&self) -> bool {
        self.peer.as_ref().is_some_and(|p| p.connected)
    }

    /// A local candidate (a host socket now; relayed ones with the TURN client) that every
    /// session offers from now on.
    pub(crate) fn add_local_candidate(&mut self, candidate: Candidate) {
        self.local_candidates.push(candidate);
    }

    /// A candidate found after the start (server-reflexive now, relayed with the TURN client):
    /// offered by every later session, and trickled to the current one.
    pub(crate) fn add_gathered_candidate(&mut self, candidate: Candidate) {
        let line = candidate.to_sdp_string();
        self.local_candidates.push(candidate.clone());
        self.stats.gathered_candidates += 1;
        if let Some(peer) = &mut self.peer {
            let mid = peer.first_mid().map(|mid| mid.to_string());
            peer.rtc.add_local_candidate(candidate);
            if let Some(mid) = mid {
                self.outputs.push_back(Output::SendCandidate {
                    candidate: line,
                    mid,
                });
            }
        }
    }

    /// Stop offering the local candidate at `address` to later sessions (a TURN allocation
    /// superseded by one with newer credentials). The running session keeps using it.
    pub(crate) fn remove_local_candidate(&mut self, address: SocketAddr) {
        self.local_candidates.retain(|c| c.addr() != address);
    }

    /// How many offers have been answered (each is a new storage session).
    pub(crate) fn sessions_answered(&self) -> u64 {
        self.sessions_answered
    }

    /// A TURN allocation was granted (for the statistics).
    pub(crate) fn note_relay_allocated(&mut self) {
        self.stats.relay_allocations += 1;
    }

    /// A TURN allocation failed (for the statistics).
    pub(crate) fn note_relay_failed(&mut self) {
        self.stats.relay_failures += 1;
    }

    /// How many STUN servers answered (for the statistics).
    pub(crate) fn note_stun_answers(&mut self, answers: u64) {
        self.stats.stun_answers = answers;
    }

    /// Remember a picture's parameter sets (for the answer's H.264 profile) before any
    /// session exists.
    pub(crate) fn observe_video(&mut self, picture: &Picture) {
        self.video.observe(picture);
    }

    // ----- inputs -----

    /// The signaling socket is (again) connected.
    pub(crate) fn handle_signaling_connected(&mut self, now: Instant, reconnects: u32) {
        self.tick(now);
        if self.ended {
            return;
        }
        self.signaling_connected = true;
        let reason = self.next_join_reason.take().unwrap_or(if reconnects == 0 {
            JoinReason::Start
        } else {
            JoinReason::SignalingReconnected
        });
        self.join(now, reason);
    }

    /// The signaling socket dropped; it reconnects by itself. Media keeps flowing meanwhile.
    pub(crate) fn handle_signaling_lost(&mut self) {
        self.signaling_connected = false;
        if matches!(
            self.phase,
            Phase::Joining | Phase::BackingOff(_) | Phase::AwaitingOffer(_)
        ) {
            self.set_phase(Phase::WaitingForSignaling);
        }
    }

    /// GO_AWAY or RECONNECT_ICE_SERVER: the socket reconnects, and the join after it says why.
    pub(crate) fn handle_service_notice(&mut self, reason: JoinReason) {
        self.next_join_reason = Some(reason);
    }

    /// The result of the join asked for by [`Output::Join`]: accepted (the offer should
    /// follow), failed for a while (join again after the backoff), or refused for good.
    pub(crate) fn handle_join_result(&mut self, now: Instant, result: Result<(), JoinFailure>) {
        self.tick(now);
        if self.ended {
            return;
        }
        match result {
            Ok(()) => {
                if self.phase == Phase::Joining {
                    // Made while the offer is on its way, not once it has come.
                    self.answerer = Some(answer::Answerer::new(now, self.video.sps()));
                    self.set_phase(Phase::AwaitingOffer(
                        now + self.config.timings.offer_timeout,
                    ));
                }
            }
            Err(failure) if failure.is_retryable() => {
                if self.phase == Phase::Joining {
                    let e = failure.error.to_string();
                    self.event(IngestEvent::Warning(format!(
                        "joining failed, retrying: {e}"
                    )));
                    self.retry_later(now, JoinReason::JoinFailed(e));
                }
            }
            Err(failure) => {
                let reason = failure.error.to_string();
                let error = Error::new(failure.kind.into(), "joining the storage session failed")
                    .with_source(failure.error);
                self.end_with(reason, Some(error));
            }
        }
    }

    /// The storage peer's SDP offer.
    pub(crate) fn handle_offer(&mut self, now: Instant, sdp: &str) {
        self.tick(now);
        if self.ended {
            return;
        }
        let replaced_session = self.peer.is_some();
        if let Some(mut old) = self.peer.take() {
            old.rtc.disconnect();
        }
        match self.answer(now, sdp) {
            Ok((peer, answer)) => {
                let mid = peer
                    .first_mid()
                    .map(|mid| mid.to_string())
                    .unwrap_or_else(|| "0".into());
                self.peer = Some(peer);
                self.sessions_answered += 1;
                self.outputs.push_back(Output::SendAnswer(answer));
                for candidate in &self.local_candidates {
                    self.outputs.push_back(Output::SendCandidate {
                        candidate: candidate.to_sdp_string(),
                        mid: mid.clone(),
                    });
                }
                for line in sdp.lines() {
                    if let Some(candidate) = line
                        .trim()
                        .strip_prefix("a=")
                        .filter(|l| l.starts_with("candidate:"))
                        .and_then(|l| Candidate::from_sdp_string(l).ok())
                    {
                        self.outputs
                            .push_back(Output::PeerAddress(candidate.addr().ip()));
                    }
                }
                let early = std::mem::take(&mut self.early_candidates);
                if let Some(peer) = &mut self.peer {
                    for candidate in early {
                        self.outputs
                            .push_back(Output::PeerAddress(candidate.addr().ip()));
                        peer.rtc.add_remote_candidate(candidate);
                    }
                }
                self.video.wait_for_keyframe();
                self.event(IngestEvent::OfferAnswered { replaced_session });
                self.set_phase(Phase::Answered(now + self.config.timings.connect_timeout));
            }
            Err(e) => {
                // An offer we cannot answer will not get better by joining again.
                self.end(format!("the storage offer cannot be answered: {e}"), true);
            }
        }
    }

    /// A candidate from the storage peer (a `candidate:` line).
    pub(crate) fn handle_remote_candidate(&mut self, line: &str) {
        let line = line.trim().trim_start_matches("a=");
        if line.is_empty() || self.ended {
            return; // end-of-candidates
        }
        let candidate = match Candidate::from_sdp_string(line) {
            Ok(c) => c,
            Err(e) => {
                self.event(IngestEvent::Warning(format!(
                    "ignored a remote candidate that does not parse ({e})"
                )));
                return;
            }
        };
        match &mut self.peer {
            Some(peer) => {
                self.outputs
                    .push_back(Output::PeerAddress(candidate.addr().ip()));
                peer.rtc.add_remote_candidate(candidate)
            }
            None if self.early_candidates.len() < MAX_EARLY_CANDIDATES => {
                self.early_candidates.push(candidate)
            }
            None => {}
        }
    }

    /// The storage session rejected our answer (STATUS_RESPONSE).
    pub(crate) fn handle_answer_rejected(&mut self, now: Instant, description: String) {
        self.tick(now);
        if self.ended || self.peer.is_none() {
            return;
        }
        self.drop_peer();
        self.event(IngestEvent::Warning(format!(
            "the storage session rejected the answer: {description}"
        )));
        self.retry_later(now, JoinReason::AnswerRejected(description));
    }

    /// A datagram arrived on the socket bound to `destination`.
    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        self.tick(now);
        let Some(peer) = &mut self.peer else { return };
        let Ok(contents) = contents.try_into() else {
            return; // not STUN, DTLS or RTP
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        if let Err(e) = peer.rtc.handle_input(input) {
            self.media_lost(now, format!("WebRTC failed: {e}"));
        }
    }

    /// Time reached the last [`Output::Timeout`] (or later).
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        if self.ended {
            return;
        }
        if let Some((at, reason)) = self.finishing.take() {
            if now >= at {
                if let Some(peer) = &mut self.peer {
                    // Retransmissions due now go out before the close.
                    let _ = peer.rtc.handle_input(Input::Timeout(now));
                }
                self.stop(&reason);
                return;
            }
            self.finishing = Some((at, reason));
        }
        match self.phase {
            Phase::BackingOff(at) if now >= at => {
                let reason = self.join_reason.clone();
                self.join(now, reason);
            }
            Phase::AwaitingOffer(at) if now >= at => {
                self.event(IngestEvent::Warning(format!(
                    "no offer within {:?} of joining",
                    self.config.timings.offer_timeout
                )));
                self.join(now, JoinReason::NoOffer);
            }
            Phase::Answered(at) if now >= at => {
                self.drop_peer();
                self.join(now, JoinReason::ConnectTimeout);
            }
            Phase::Streaming(at) if now >= at => {
                self.join(now, JoinReason::SessionLimit);
            }
            _ => {}
        }
        if let Some(peer) = &mut self.peer {
            if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                self.media_lost(now, format!("WebRTC failed: {e}"));
            }
        }
    }

    /// A picture to send now, its timestamp the RTP time (90 kHz); `wallclock` goes with that
    /// RTP time in the sender reports (see [`crate::pacing::Pacer::wallclock`]).
    pub(crate) fn write_video(&mut self, now: Instant, wallclock: Instant, picture: Picture) {
        self.tick(now);
        if !self.is_streaming() {
            self.video.observe(&picture);
            self.stats.video.dropped_not_connected += 1;
            return;
        }
        let time = picture.timestamp;
        let (data, keyframe) = match self.video.prepare(picture) {
            Prepared::WaitForKeyframe => {
                self.stats.video.dropped_waiting_for_keyframe += 1;
                return;
            }
            Prepared::Send { data, keyframe } => (data, keyframe),
        };
        let Some(peer) = &mut self.peer else { return };
        let Some(sender) = &mut peer.video else {
            return;
        };
        let bytes = data.len() as u64;
        let rtp_time = duration_in(time, 90_000) as u32;
        self.payloads.clear();
        peer.packetizer.packetize(&data, &mut self.payloads);
        if !sender.send_frame(&mut peer.rtc, wallclock, rtp_time, &mut self.payloads) {
            self.event(IngestEvent::Warning(
                "a video frame was not sent: its m-line has no send stream".into(),
            ));
            return;
        }
        let first = !std::mem::replace(&mut peer.first_video_sent, true);
        if keyframe {
            peer.last_keyframe_sent = Some(now);
        }
        let track = &mut self.stats.video;
        track.frames_sent += 1;
        track.bytes_sent += bytes;
        track.keyframes_sent += u64::from(keyframe);
        if first {
            self.event(IngestEvent::FirstFrameSent(Track::Video));
        }
    }

    /// An Opus packet to send now with this RTP time (48 kHz), paired with `wallclock` in the
    /// sender reports.
    pub(crate) fn write_audio(
        &mut self,
        now: Instant,
        wallclock: Instant,
        time: Duration,
        packet: &[u8],
    ) {
        self.tick(now);
        if !self.is_streaming() {
            self.stats.audio.dropped_not_connected += 1;
            return;
        }
        let Some(peer) = &mut self.peer else { return };
        let Some(sender) = &mut peer.audio else {
            return;
        };
        let rtp_time = duration_in(time, 48_000) as u32;
        self.payloads.clear();
        self.payloads.push(Arc::from(packet));
        if !sender.send_frame(&mut peer.rtc, wallclock, rtp_time, &mut self.payloads) {
            self.event(IngestEvent::Warning(
                "an audio packet was not sent: its m-line has no send stream".into(),
            ));
            return;
        }
        let first = !std::mem::replace(&mut peer.first_audio_sent, true);
        self.stats.audio.frames_sent += 1;
        self.stats.audio.bytes_sent += packet.len() as u64;
        if first {
            self.event(IngestEvent::FirstFrameSent(Track::Audio));
        }
    }

    /// A frame was too late to send; count it (video then waits for a keyframe).
    pub(crate) fn drop_late(&mut self, track: Track) {
        match track {
            Track::Video => {
                self.stats.video.dropped_late += 1;
                self.video.wait_for_keyframe();
            }
            Track::Audio => self.stats.audio.dropped_late += 1,
        }
    }

    /// The last frame was written: stop with `reason` once the storage peer had time to ask
    /// for what it lost ([`FINISH_LINGER_MIN`]..[`FINISH_LINGER_MAX`], three round trips), so
    /// that a packet lost among the last ones is sent again rather than lost with the close.
    /// Without a connected peer it stops at once.
    pub(crate) fn finish(&mut self, now: Instant, reason: &str) {
        self.tick(now);
        if self.ended || self.finishing.is_some() {
            return;
        }
        if !self.is_streaming() {
            self.stop(reason);
            return;
        }
        let linger = self
            .stats
            .rtt
            .map_or(FINISH_LINGER_MIN, |rtt| rtt * 3)
            .clamp(FINISH_LINGER_MIN, FINISH_LINGER_MAX);
        self.finishing = Some((now + linger, reason.to_owned()));
    }

    /// Stop for good: send what is queued, close the session (a DTLS close goes out) and end.
    pub(crate) fn stop(&mut self, reason: &str) {
        if let Some(peer) = &mut self.peer {
            let now = self.now;
            let flush = |rtc: &mut Rtc, outputs: &mut VecDeque<Output>| {
                // Bounded: str0m releases queued packets on timeouts that are already due.
                for _ in 0..256 {
                    match rtc.poll_output() {
                        Ok(RtcOutput::Transmit(t)) => outputs.push_back(Output::Transmit {
                            source: t.source,
                            destination: t.destination,
                            contents: t.contents.into(),
                        }),
                        Ok(RtcOutput::Event(_)) => {}
                        Ok(RtcOutput::Timeout(at)) if at <= now => {
                            if rtc.handle_input(Input::Timeout(now)).is_err() {
                                break;
                            }
                        }
                        Ok(RtcOutput::Timeout(_)) | Err(_) => break,
                    }
                }
            };
            // Media already written goes out first, then the close: str0m's `close()` queues
            // an RTCP BYE and the DTLS close_notify that tells the storage peer the device left
            // (`disconnect()` alone sends nothing; the session then stayed up at the service).
            flush(&mut peer.rtc, &mut self.outputs);
            if peer.rtc.close().is_ok() {
                flush(&mut peer.rtc, &mut self.outputs);
            }
            peer.rtc.disconnect();
        }
        self.peer = None;
        self.end(reason.to_owned(), false);
    }

    // ----- output -----

    /// The next thing to do; drain until [`Output::Timeout`] after every input. After
    /// [`Output::Ended`] only `Ended` follows.
    pub(crate) fn poll_output(&mut self) -> Output {
        // str0m packetizes written media on its timeouts: one that is already due is handled
        // here and now (a few times at most per call), so that media written in a burst is
        // packetized between writes, as str0m requires, without a round trip through the
        // driver's timer.
        let mut due_timeouts = 0;
        loop {
            if let Some(output) = self.outputs.pop_front() {
                return output;
            }
            if self.ended {
                return Output::Ended {
                    reason: "stopped".into(),
                    error: None,
                };
            }
            let rtc_timeout = match self.peer.as_mut().map(|p| p.rtc.poll_output()) {
                None => None,
                Some(Ok(RtcOutput::Timeout(at))) if at <= self.now && due_timeouts < 4 => {
                    due_timeouts += 1;
                    let now = self.now;
                    if let Some(Err(e)) = self
                        .peer
                        .as_mut()
                        .map(|p| p.rtc.handle_input(Input::Timeout(now)))
                    {
                        self.media_lost(now, format!("WebRTC failed: {e}"));
                    }
                    continue;
                }
                Some(Ok(RtcOutput::Timeout(at))) => Some(at),
                Some(Ok(RtcOutput::Transmit(t))) => {
                    return Output::Transmit {
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.into(),
                    }
                }
                Some(Ok(RtcOutput::Event(event))) => {
                    self.on_rtc_event(event);
                    continue;
                }
                Some(Err(e)) => {
                    self.media_lost(self.now, format!("WebRTC failed: {e}"));
                    continue;
                }
            };
            let phase_deadline = match self.phase {
                Phase::BackingOff(at)
                | Phase::AwaitingOffer(at)
                | Phase::Answered(at)
                | Phase::Streaming(at) => Some(at),
                Phase::WaitingForSignaling | Phase::Joining => None,
            };
            let phase_deadline = match (phase_deadline, &self.finishing) {
                (Some(a), Some((b, _))) => Some(a.min(*b)),
                (None, Some((b, _))) => Some(*b),
                (a, None) => a,
            };
            let next = match (rtc_timeout, phase_deadline) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                // Nothing scheduled: wait for an input (an hour stands for "no deadline").
                (None, None) => self.now + Duration::from_secs(3600),
            };
            return Output::Timeout(next);
        }
    }

    // ----- internals -----

    fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn answer(&mut self, now: Instant, sdp: &str) -> Result<(Peer, String), String> {
        let sps = self.video.sps();
        let answerer = match self.answerer.take() {
            Some(prepared) if prepared.fits(sps) => prepared,
            // No join accepted yet (an offer that came first), or the source's profile became
            // known since.
            _ => answer::Answerer::new(now, sps),
        };
        let answered = answerer.answer(
            sdp,
            &self.local_candidates,
            self.config.sends_video,
            self.config.sends_audio,
        )?;
        let sends_video = self.config.sends_video && self.config.side == Side::Master;
        let peer = Peer {
            rtc: answered.rtc,
            video: answered
                .video
                .filter(|_| sends_video)
                .map(|(mid, pt)| RtpSender::video(mid, pt, random_first_seq_no())),
            audio: answered
                .audio
                .filter(|_| self.config.sends_audio)
                .map(|(mid, pt)| RtpSender::audio(mid, pt, random_first_seq_no())),
            packetizer: H264Packetizer::new(answered.payload_limit),
            offered_at: now,
            connected: false,
            last_keyframe_sent: None,
            first_video_sent: false,
            first_audio_sent: false,
        };
        Ok((peer, answered.sdp))
    }

    fn on_rtc_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                let Some(peer) = &mut self.peer else { return };
                peer.connected = true;
                let after_offer = self.now.saturating_duration_since(peer.offered_at);
                self.attempts = 0;
                self.stats.sessions_connected += 1;
                self.video.wait_for_keyframe();
                self.outputs.push_back(Output::KeyframeWanted);
                self.event(IngestEvent::Connected { after_offer });
                let refresh = self.now + self.config.timings.session_refresh;
                self.set_phase(Phase::Streaming(refresh));
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.media_lost(self.now, "ICE disconnected".into());
            }
            Event::KeyframeRequest(request) => {
                let Some(peer) = &self.peer else { return };
                let is_video = peer.video_mid() == Some(request.mid);
                let grace = self.config.timings.keyframe_request_grace;
                let keyframe_in_flight = peer
                    .last_keyframe_sent
                    .is_some_and(|at| self.now.saturating_duration_since(at) < grace);
                if is_video {
                    self.stats.video.keyframe_requests += 1;
                    let kind_ok = matches!(
                        request.kind,
                        KeyframeRequestKind::Pli | KeyframeRequestKind::Fir
                    );
                    if kind_ok && !keyframe_in_flight {
                        self.video.wait_for_keyframe();
                        self.outputs.push_back(Output::KeyframeWanted);
                        self.event(IngestEvent::KeyframeRequested);
                    }
                }
            }
            Event::MediaEgressStats(s) => {
                let Some(peer) = &self.peer else { return };
                let (slot, track) = if peer.video_mid() == Some(s.mid) {
                    (0, &mut self.stats.video)
                } else if peer.audio_mid() == Some(s.mid) {
                    (1, &mut self.stats.audio)
                } else {
                    return;
                };
                let (last_bytes, last_at) = self.last_egress[slot];
                if let Some(at) = last_at {
                    let dt = s.timestamp.saturating_duration_since(at).as_secs_f64();
                    if dt > 0.0 && s.bytes >= last_bytes {
                        track.bitrate_bps = ((s.bytes - last_bytes) as f64 * 8.0 / dt) as u64;
                    }
                }
                self.last_egress[slot] = (s.bytes, Some(s.timestamp));
                track.packets_sent = s.packets;
                track.nacks_received = s.nacks;
                track.loss = s.loss;
                if s.rtt.is_some() {
                    self.stats.rtt = s.rtt;
                }
            }
            Event::PeerStats(s) if s.rtt.is_some() => self.stats.rtt = s.rtt,
            // In RTP mode what the peer sends arrives as packets; an Opus frame is one.
            Event::RtpPacket(packet) => {
                let Some(peer) = &mut self.peer else { return };
                let mid = peer
                    .rtc
                    .direct_api()
                    .stream_rx(&packet.header.ssrc)
                    .map(|stream| stream.mid());
                let kind = mid.and_then(|mid| peer.rtc.media(mid)).map(|m| m.kind());
                if kind == Some(MediaKind::Audio) {
                    self.stats.audio_frames_received += 1;
                }
            }
            Event::Closed => {
                self.media_lost(self.now, "the storage peer closed the connection".into());
            }
            _ => {}
        }
    }

    /// The current session's media connection is gone: join again.
    fn media_lost(&mut self, now: Instant, why: String) {
        if self.peer.is_none() {
            return;
        }
        self.drop_peer();
        self.event(IngestEvent::Warning(why.clone()));
        self.join(now, JoinReason::MediaLost(why));
    }

    fn drop_peer(&mut self) {
        if let Some(mut peer) = self.peer.take() {
            peer.rtc.disconnect();
        }
        self.last_egress = [(0, None); 2];
    }

    /// Join now if the signaling socket is up (else once it is).
    fn join(&mut self, now: Instant, reason: JoinReason) {
        if self.ended {
            return;
        }
        self.join_reason = reason.clone();
        if !self.signaling_connected {
            self.set_phase(Phase::WaitingForSignaling);
            return;
        }
        if self.give_up_if_exhausted(&reason) {
            return;
        }
        self.attempts += 1;
        self.stats.joins += 1;
        if self.stats.sessions_connected > 0 {
            self.stats.rejoins += 1;
        }
        // Candidates from an earlier offer belong to a session that is over.
        self.early_candidates.clear();
        self.outputs.push_back(Output::Join);
        self.event(IngestEvent::Joining {
            reason,
            attempt: self.attempts,
        });
        self.tick(now);
        self.set_phase(Phase::Joining);
    }

    /// End (failed) when the joins without a connected session have run out.
    fn give_up_if_exhausted(&mut self, reason: &JoinReason) -> bool {
        if self.attempts < self.config.timings.max_join_attempts {
            return false;
        }
        let why = format!(
            "gave up after {} joins without a connected session (last: {reason})",
            self.attempts
        );
        self.end(why, true);
        true
    }

    /// Join again after the backoff.
    fn retry_later(&mut self, now: Instant, reason: JoinReason) {
        if self.give_up_if_exhausted(&reason) {
            return;
        }
        self.join_reason = reason;
        let jitter = self.next_jitter();
        let delay = self
            .config
            .timings
            .join_backoff
            .delay(self.attempts.saturating_sub(1), jitter);
        self.set_phase(Phase::BackingOff(now + delay));
    }

    fn next_jitter(&mut self) -> f64 {
        // xorshift64: deterministic for a seed, good enough to spread retries.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        // Full jitter in [0.5, 1]: never retry at once.
        0.5 + (self.rng >> 11) as f64 / (1u64 << 53) as f64 / 2.0
    }

    fn set_phase(&mut self, phase: Phase) {
        let before = state_of(self.phase);
        self.phase = phase;
        let after = state_of(phase);
        if before != after {
            self.stats.state = after;
            self.event(IngestEvent::StateChanged(after));
        }
    }

    fn event(&mut self, event: IngestEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    /// End; `failed`: it gave up (the error says so, with `reason`).
    fn end(&mut self, reason: String, failed: bool) {
        let error = failed.then(|| Error::new(ErrorKind::GaveUp, reason.clone()));
        self.end_with(reason, error);
    }

    fn end_with(&mut self, reason: String, error: Option<Error>) {
        if self.ended {
            return;
        }
        if let Some(mut peer) = self.peer.take() {
            peer.rtc.disconnect();
        }
        self.stats.state = IngestState::Stopped;
        self.outputs
            .push_back(Output::Event(IngestEvent::StateChanged(
                IngestState::Stopped,
            )));
        self.outputs.push_back(Output::Ended { reason, error });
        self.ended = true;
    }
}

fn state_of(phase: Phase) -> IngestState {
    match phase {
        Phase::WaitingForSignaling => IngestState::ConnectingSignaling,
        Phase::Joining | Phase::AwaitingOffer(_) => IngestState::Joining,
        Phase::BackingOff(_) => IngestState::BackingOff,
        Phase::Answered(_) => IngestState::ConnectingMedia,
        Phase::Streaming(_) => IngestState::Streaming,
    }
}

/// `time` in units of `rate` per second.
fn duration_in(time: Duration, rate: u64) -> u64 {
    (time.as_micros() * u128::from(rate) / 1_000_000) as u64
}

mod answer;
mod rtp_sender;
#[cfg(test)]
mod tests;
