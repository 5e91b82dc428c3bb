//! The protocol of one storage session, sans-IO: when the offer and the candidate go out, what
//! the client's signals do (candidates buffered until the answer, the answer checked and
//! accepted), the answer, connect and lifetime deadlines, keyframe requests, media in and out,
//! and why the session ends. str0m's [`Rtc`] (itself sans-IO) lives inside.
//!
//! No socket, task, channel or clock: the driver (`peer.rs`) calls the `handle_*` methods with
//! the current time, then drains [`StorageSession::poll_output`] until [`PeerOutput::Timeout`]
//! (str0m's single-mutation rule, extended to this session), and sleeps until that deadline or
//! the next input.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use kvs_media::AudioCodec;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use super::answer::{self, Answerer};
use crate::config::Timings;
use crate::faults::OfferFaults;
use crate::link::Role;
use crate::relay::{FrameKind, RelayedFrame, SpeakerSelector};
use crate::sessions::SessionState;
use crate::wire::{self, Action};

/// Why a session ended (shown by the inspection API).
pub(crate) type EndReason = String;

/// A change for the session's inspection record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionUpdate {
    /// The offer and one candidate were sent.
    OfferSent,
    /// A remote candidate was accepted.
    CandidateReceived,
    /// The answer was refused, with this description.
    AnswerRejected(String),
    /// The session moved to this state.
    State(SessionState),
}

/// Media received from the client, for the recording and the relay.
#[derive(Debug)]
pub(crate) struct ReceivedMedia {
    /// Video (one access unit) or audio (one Opus packet).
    pub(crate) kind: FrameKind,
    /// Media time in the codec's clock.
    pub(crate) time: MediaTime,
    /// When its first packet arrived.
    pub(crate) network_time: Instant,
    /// False when packets were lost before it.
    pub(crate) contiguous: bool,
    /// The payload.
    pub(crate) data: Arc<[u8]>,
}

/// What the session asks its driver to do.
#[derive(Debug)]
pub(crate) enum PeerOutput {
    /// Send this frame to the client's signaling socket. If there is none, call
    /// [`StorageSession::handle_client_gone`].
    ToClient(String),
    /// Answer the sender of the last signal with a STATUS_RESPONSE (400
    /// InvalidArgumentException) carrying this description.
    Reject {
        /// The signal's correlation id.
        correlation_id: Option<String>,
        /// What was wrong.
        description: String,
    },
    /// Send this UDP datagram.
    Transmit {
        /// Where to.
        destination: SocketAddr,
        /// The bytes.
        contents: Vec<u8>,
    },
    /// Update the inspection record.
    Update(SessionUpdate),
    /// Media arrived: record it and relay it.
    Media(ReceivedMedia),
    /// A keyframe request (PLI) went to the client.
    KeyframeRequested,
    /// Ask the channel's master for a keyframe (through the relay).
    RelayKeyframe,
    /// ICE and DTLS connected: start taking relayed media.
    Connected,
    /// The session is over.
    End(EndReason),
    /// Nothing to do before this instant (or the next input).
    Timeout(Instant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Joined; the offer goes out at this time.
    WaitingToOffer(Instant),
    /// The offer is out (or was dropped by a fault).
    Offered,
}

/// The state of one storage session; see the module docs.
pub(crate) struct StorageSession {
    rtc: Rtc,
    role: Role,
    faults: OfferFaults,
    timings: Timings,
    video_mid: Mid,
    audio_mid: Mid,
    offer_sdp: String,
    candidate_line: String,
    pending: Option<SdpPendingOffer>,
    pending_candidates: Vec<Candidate>,
    phase: Phase,
    /// The next deadline that ends the session, and the reason it gives.
    deadline: Option<(Instant, &'static str)>,
    /// The session's maximum lifetime, counted from the offer.
    max_end: Option<Instant>,
    local: SocketAddr,
    connected: bool,
    /// When the client's consent expires unless it answers another connectivity check (RFC
    /// 7675); set once connected.
    consent_until: Option<Instant>,
    /// The time of the latest input.
    last_now: Instant,
    want_keyframe: bool,
    speaker: SpeakerSelector,
    viewer_alone_since: Option<Instant>,
    outputs: std::collections::VecDeque<PeerOutput>,
    ended: Option<EndReason>,
}

/// The codecs the storage peer offers: H.264 first (several profiles), then VP8 so that
/// answerers must pick; [`AudioCodec::INGESTED`] (Opus) for audio (protocol notes §5.2, §8.6).
fn storage_rtc(now: Instant) -> Rtc {
    let mut config = RtcConfig::new().clear_codecs();
    let codecs = config.codec_config();
    codecs.add_h264(102.into(), Some(103.into()), true, 0x42e01f);
    codecs.add_h264(104.into(), Some(105.into()), true, 0x42001f);
    codecs.add_h264(106.into(), Some(107.into()), true, 0x4d001f);
    codecs.add_h264(108.into(), Some(109.into()), true, 0x64001f);
    codecs.enable_vp8(true);
    match AudioCodec::INGESTED {
        AudioCodec::Opus => codecs.enable_opus(true, false),
    }
    config.build(now)
}

/// Whether a datagram is a STUN Binding success response (RFC 8489 §5, §6: message type
/// 0x0101 and the magic cookie): the client answered one of the storage peer's connectivity
/// checks, which renews its consent (RFC 7675 §5.1).
fn is_binding_success(datagram: &[u8]) -> bool {
    datagram.len() >= 20
        && datagram[..2] == [0x01, 0x01]
        && datagram[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

/// str0m's name of an audio codec.
fn str0m_audio(codec: AudioCodec) -> Codec {
    match codec {
        AudioCodec::Opus => Codec::Opus,
    }
}

impl StorageSession {
    /// A session joined at `now` whose peer receives on `local`. The offer goes out after the
    /// offer delay (plus any injected delay).
    pub(crate) fn new(
        now: Instant,
        role: Role,
        faults: OfferFaults,
        timings: Timings,
        local: SocketAddr,
    ) -> Result<Self, EndReason> {
        let mut rtc = storage_rtc(now);
        let mut change = rtc.sdp_api();
        let video_direction = match role {
            Role::Master => Direction::RecvOnly,
            Role::Viewer(_) => Direction::SendOnly,
        };
        let video_mid = change.add_media(MediaKind::Video, video_direction, None, None, None);
        let audio_mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().ok_or("the offer had no changes")?;
        let candidate =
            Candidate::host(local, "udp").map_err(|e| format!("no host candidate: {e}"))?;
        let candidate_line = candidate.to_sdp_string();
        rtc.add_local_candidate(candidate);
        let offer_at = now + timings.offer_delay + faults.extra_delay.unwrap_or_default();
        Ok(Self {
            rtc,
            role,
            faults,
            timings,
            video_mid,
            audio_mid,
            offer_sdp: offer.to_sdp_string(),
            candidate_line,
            pending: Some(pending),
            pending_candidates: Vec::new(),
            phase: Phase::WaitingToOffer(offer_at),
            deadline: None,
            max_end: None,
            local,
            connected: false,
            consent_until: None,
            last_now: now,
            want_keyframe: false,
            speaker: SpeakerSelector::default(),
            viewer_alone_since: None,
            outputs: std::collections::VecDeque::new(),
            ended: None,
        })
    }

    /// Whether the offer is out: the driver reads the client's signals only from then on.
    pub(crate) fn offer_sent(&self) -> bool {
        self.phase == Phase::Offered
    }

    /// Whether ICE and DTLS are connected.
    pub(crate) fn is_connected(&self) -> bool {
        self.connected
    }

    /// The time reached the last [`PeerOutput::Timeout`] (or later).
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.ended.is_some() {
            return;
        }
        self.last_now = now;
        if matches!(self.phase, Phase::WaitingToOffer(at) if now >= at) {
            self.send_offer(now);
        }
        if let Some((at, reason)) = self.deadline {
            if now >= at {
                return self.end(reason.into());
            }
        }
        if self.max_end.is_some_and(|at| now >= at) {
            return self.end("maximum session duration reached".into());
        }
        if self.consent_until.is_some_and(|at| now >= at) {
            return self.end(format!(
                "ICE consent expired: the client answered no connectivity check for {} s",
                self.timings.consent_timeout.as_secs()
            ));
        }
        self.rtc_input(Input::Timeout(now));
    }

    /// A datagram arrived on the peer's socket.
    pub(crate) fn handle_datagram(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) {
        if self.ended.is_some() {
            return;
        }
        self.last_now = now;
        if self.connected && is_binding_success(contents) {
            self.consent_until = Some(now + self.timings.consent_timeout);
        }
        let Ok(contents) = contents.try_into() else {
            return; // not STUN, DTLS or RTP: ignored, as str0m would
        };
        self.rtc_input(Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        ));
    }

    /// The client's signaling socket could not take a frame: the session cannot go on.
    pub(crate) fn handle_client_gone(&mut self) {
        // Nothing queued for the client or the record matters once it cannot be reached.
        self.outputs.clear();
        self.end("no signaling socket was connected to receive the offer".into());
    }

    /// The session was stopped from outside (a newer join, the emulator shutting down).
    pub(crate) fn handle_stop(&mut self, reason: &str) {
        self.end(reason.into());
    }

    /// The recording saw a gap or missing parameters: ask the client for a keyframe.
    pub(crate) fn request_keyframe(&mut self) {
        self.want_keyframe = true;
    }

    /// For a viewer: whether the channel has a master at `now`. A viewer alone longer than
    /// the service allows is ended.
    pub(crate) fn handle_master_presence(&mut self, now: Instant, present: bool) {
        if present {
            self.viewer_alone_since = None;
            return;
        }
        let since = *self.viewer_alone_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.timings.viewer_without_master {
            self.end("viewer without a master for too long".into());
        }
    }

    /// A signal from the client.
    pub(crate) fn handle_signal(
        &mut self,
        action: Action,
        payload: &str,
        correlation_id: Option<String>,
        now: Instant,
    ) {
        if self.ended.is_some() {
            return;
        }
        let Some(body) = wire::decode_payload(payload) else {
            return self.reject(
                correlation_id,
                "messagePayload is not base64 of a JSON object.",
            );
        };
        match action {
            Action::SdpOffer => self.reject(
                correlation_id,
                "The storage session sends the offer; send an SDP_ANSWER.",
            ),
            Action::IceCandidate => {
                let line = body.get("candidate").and_then(|c| c.as_str()).unwrap_or("");
                let line = line.trim().trim_start_matches("a=");
                if line.is_empty() {
                    return; // end-of-candidates
                }
                match Candidate::from_sdp_string(line) {
                    Ok(candidate) => {
                        self.update(SessionUpdate::CandidateReceived);
                        if self.pending.is_some() {
                            // Not answered yet: kept until the answer sets the remote ICE credentials.
                            self.pending_candidates.push(candidate);
                        } else {
                            self.rtc.add_remote_candidate(candidate);
                        }
                    }
                    Err(e) => self.reject(
                        correlation_id,
                        &format!("The ICE candidate could not be parsed: {e}"),
                    ),
                }
            }
            Action::SdpAnswer => {
                let Some(offer) = self.pending.take() else {
                    return self.reject(
                        correlation_id,
                        "An answer was already accepted for this offer.",
                    );
                };
                let sdp = match (
                    body.get("type").and_then(|t| t.as_str()),
                    body.get("sdp").and_then(|s| s.as_str()),
                ) {
                    (Some("answer"), Some(sdp)) => sdp.to_owned(),
                    _ => {
                        self.pending = Some(offer);
                        return self.reject(
                            correlation_id,
                            "The payload must be {\"type\":\"answer\",\"sdp\":...}.",
                        );
                    }
                };
                let answerer = match self.role {
                    Role::Master => Answerer::Master,
                    Role::Viewer(_) => Answerer::Viewer,
                };
                let checked = if self.faults.reject_answer {
                    Err(
                        "The storage session rejected the answer (fault injected by the emulator)."
                            .to_owned(),
                    )
                } else {
                    answer::check(&sdp, answerer)
                };
                let rtc = &mut self.rtc;
                let ours = rtc.direct_api().local_ice_credentials().ufrag.len();
                let checked = checked
                    .and_then(|()| answer::check_ice_ufrags(&sdp, ours))
                    .and_then(|()| {
                        kvs_media::sdp::check_payload_types(&sdp)
                            .map_err(|rule| format!("The answer breaks a rule: {rule}."))
                    });
                let accepted = checked.and_then(|()| {
                    let parsed = SdpAnswer::from_sdp_string(&sdp)
                        .map_err(|e| format!("The answer SDP could not be parsed: {e}"))?;
                    rtc.sdp_api()
                        .accept_answer(offer, parsed)
                        .map_err(|e| format!("The answer does not match the offer: {e}"))
                });
                if let Err(description) = accepted {
                    self.update(SessionUpdate::AnswerRejected(description.clone()));
                    self.reject(correlation_id, &description);
                    return self.end("the answer was rejected".into());
                }
                for candidate in self.pending_candidates.drain(..) {
                    self.rtc.add_remote_candidate(candidate);
                }
                self.update(SessionUpdate::State(SessionState::Answered));
                self.deadline = Some((
                    now + self.timings.connect_timeout,
                    "ICE and DTLS did not connect in time",
                ));
            }
        }
    }

    /// A frame from another participant of the channel, for this peer's client.
    pub(crate) fn handle_relayed(&mut self, now: Instant, frame: &RelayedFrame) {
        if self.ended.is_some() {
            return;
        }
        let (mid, codec, time) = match (&self.role, frame.kind) {
            (Role::Viewer(_), FrameKind::Video) => (self.video_mid, Codec::H264, frame.time),
            (Role::Viewer(_), FrameKind::Audio) => (
                self.audio_mid,
                str0m_audio(AudioCodec::INGESTED),
                frame.time,
            ),
            (Role::Master, FrameKind::Audio) => match self.speaker.admit(frame, now) {
                Some(time) => (self.audio_mid, str0m_audio(AudioCodec::INGESTED), time),
                None => return,
            },
            (Role::Master, FrameKind::Video) => return,
        };
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
        else {
            return;
        };
        if let Err(e) = writer.write(pt, now, time, frame.data.to_vec()) {
            tracing::debug!(error = %e, "relayed frame not written");
        }
    }

    /// The relay skipped frames for this peer (it read too slowly).
    pub(crate) fn handle_relay_lagged(&mut self) {
        if !matches!(self.role, Role::Master) {
            self.outputs.push_back(PeerOutput::RelayKeyframe);
        }
    }

    /// The next thing to do; drain until [`PeerOutput::Timeout`] after every input. After
    /// [`PeerOutput::End`] only `End` follows.
    pub(crate) fn poll_output(&mut self) -> PeerOutput {
        loop {
            if let Some(output) = self.outputs.pop_front() {
                return output;
            }
            if let Some(reason) = &self.ended {
                return PeerOutput::End(reason.clone());
            }
            let rtc_timeout = match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => at,
                Ok(Output::Transmit(t)) => {
                    return PeerOutput::Transmit {
                        destination: t.destination,
                        contents: t.contents.to_vec(),
                    }
                }
                Ok(Output::Event(event)) => {
                    self.on_event(event);
                    continue;
                }
                Err(e) => {
                    self.end(format!("storage peer failed: {e}"));
                    continue;
                }
            };
            if self.want_keyframe {
                if let Some(stream) = self.rtc.direct_api().stream_rx_by_mid(self.video_mid, None) {
                    stream.request_keyframe(KeyframeRequestKind::Pli);
                    self.want_keyframe = false;
                    self.outputs.push_back(PeerOutput::KeyframeRequested);
                    continue;
                }
            }
            let mut next = rtc_timeout;
            if let Phase::WaitingToOffer(at) = self.phase {
                next = next.min(at);
            }
            if let Some((at, _)) = self.deadline {
                next = next.min(at);
            }
            if let Some(at) = self.max_end {
                next = next.min(at);
            }
            if let Some(at) = self.consent_until {
                next = next.min(at);
            }
            return PeerOutput::Timeout(next);
        }
    }

    fn send_offer(&mut self, now: Instant) {
        self.phase = Phase::Offered;
        if self.faults.drop_offer {
            tracing::info!("offer dropped (fault)");
        } else {
            let offer = wire::event(
                "SDP_OFFER",
                None,
                &wire::encode_sdp("offer", &self.offer_sdp),
            );
            // The video m-line comes first in the offer (added first).
            let candidate = wire::event(
                "ICE_CANDIDATE",
                None,
                &wire::encode_candidate(&self.candidate_line, &self.video_mid.to_string(), 0),
            );
            let frames = if self.faults.candidates_first {
                [candidate, offer]
            } else {
                [offer, candidate]
            };
            self.outputs.extend(frames.map(PeerOutput::ToClient));
            self.update(SessionUpdate::OfferSent);
            self.update(SessionUpdate::State(SessionState::OfferSent));
        }
        self.deadline = Some((
            now + self.timings.answer_timeout,
            "no answer arrived in time",
        ));
        self.max_end = Some(now + self.timings.storage_session_max_duration);
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.update(SessionUpdate::State(SessionState::Connected));
                // No connect deadline any more; the lifetime limit and consent still hold.
                self.deadline = None;
                self.connected = true;
                self.consent_until = Some(self.last_now + self.timings.consent_timeout);
                self.outputs.push_back(PeerOutput::Connected);
                if matches!(self.role, Role::Master) {
                    self.want_keyframe = true;
                } else {
                    // A viewer starts with a keyframe of the master's video.
                    self.outputs.push_back(PeerOutput::RelayKeyframe);
                }
            }
            Event::KeyframeRequest(_) => {
                // A viewer's client asks for a keyframe of the video it gets from the master.
                self.outputs.push_back(PeerOutput::RelayKeyframe);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.end("ICE disconnected".into());
            }
            // The client left and said so: a DTLS close_notify (the C SDK's
            // closePeerConnection(), our client's stop). str0m answers it as it closes.
            Event::Closed => {
                self.end("the client closed the connection (DTLS close_notify)".into());
            }
            Event::MediaData(data) => {
                let kind = if data.mid == self.video_mid {
                    FrameKind::Video
                } else if data.mid == self.audio_mid {
                    FrameKind::Audio
                } else {
                    return;
                };
                self.outputs.push_back(PeerOutput::Media(ReceivedMedia {
                    kind,
                    time: data.time,
                    network_time: data.network_time,
                    contiguous: data.contiguous,
                    data: data.data,
                }));
            }
            _ => {}
        }
    }

    fn rtc_input(&mut self, input: Input<'_>) {
        if let Err(e) = self.rtc.handle_input(input) {
            self.end(format!("storage peer failed: {e}"));
        }
    }

    fn reject(&mut self, correlation_id: Option<String>, description: &str) {
        self.outputs.push_back(PeerOutput::Reject {
            correlation_id,
            description: description.to_owned(),
        });
    }

    fn update(&mut self, update: SessionUpdate) {
        self.outputs.push_back(PeerOutput::Update(update));
    }

    fn end(&mut self, reason: EndReason) {
        if self.ended.is_none() {
            self.ended = Some(reason);
        }
    }
}

#[cfg(test)]
mod tests;
