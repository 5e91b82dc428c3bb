//! The storage peer: a real WebRTC peer (str0m) that plays the service's side of a storage
//! session. It is the controlling peer: it sends the offer (no `senderClientId`), trickles its
//! candidate, checks the answer, connects ICE and DTLS-SRTP, asks for keyframes and feeds what it
//! receives to the [`MediaSink`].
//!
//! str0m is sans-IO; this task is its driver: one UDP socket on 127.0.0.1, the session's inbound
//! signaling queue, the channel's media relay and str0m's timeouts, with the drain-to-timeout
//! rule of str0m's run loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};

use super::answer::{self, Answerer};
use crate::faults::OfferFaults;
use crate::link::{Connection, Outbound, PeerInput, Role};
use crate::media::sink::MediaSink;
use crate::relay::{ChannelRelay, FrameKind, RelayedFrame, SpeakerSelector};
use crate::sessions::{SessionHandle, SessionState};
use crate::shared::Shared;
use crate::wire::{self, Action, Rejection};

/// How often the inspection snapshot of the media statistics is refreshed.
const STATS_REFRESH: Duration = Duration::from_millis(250);
/// How often a viewer checks that the master is still in the session.
const VIEWER_CHECK: Duration = Duration::from_secs(1);

/// Why a session ended (shown by the inspection API).
type EndReason = String;

/// Run one storage session to its end; never panics on peer input.
pub(crate) async fn run(
    shared: Arc<Shared>,
    handle: Arc<SessionHandle>,
    role: Role,
    inbound: mpsc::Receiver<PeerInput>,
    faults: OfferFaults,
) {
    let channel_arn = handle.snapshot().channel_arn;
    let channel_name = channel_arn
        .split('/')
        .nth(1)
        .unwrap_or("channel")
        .to_owned();
    let dir = shared.config.recordings_dir.join(&channel_name);
    let file = match &role {
        Role::Master => format!("session-{}-master.mkv", handle.id),
        Role::Viewer(id) => format!("session-{}-viewer-{id}.mkv", handle.id),
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::error!(dir = %dir.display(), error = %e, "cannot create the recordings directory");
    }
    let mut sink = MediaSink::new(dir.join(file), shared.config.limits.max_media_frame);
    let mut peer = Peer {
        shared: &shared,
        handle: &handle,
        role: &role,
        channel_arn: &channel_arn,
        faults,
        pending_candidates: Vec::new(),
        want_keyframe: false,
        last_stats: Instant::now(),
        relay: shared.relays.channel(&channel_arn),
        connected: false,
        speaker: SpeakerSelector::default(),
    };
    let reason = match peer.drive(inbound, &mut sink).await {
        Ok(reason) => reason,
        Err(e) => format!("storage peer failed: {e}"),
    };
    tracing::info!(session = handle.id, %reason, "storage session ended");
    let stats = sink.finish();
    handle.update(|i| {
        i.state = SessionState::Ended;
        i.end_reason.get_or_insert(reason);
        i.media = stats;
    });
    shared
        .sessions
        .finished(&handle, &role, shared.config.timings.viewer_slot_hold);
}

struct Peer<'a> {
    shared: &'a Shared,
    handle: &'a SessionHandle,
    role: &'a Role,
    channel_arn: &'a str,
    faults: OfferFaults,
    pending_candidates: Vec<Candidate>,
    want_keyframe: bool,
    last_stats: Instant,
    /// The channel's relay: the master's media to viewers, viewer audio to the master.
    relay: Arc<ChannelRelay>,
    connected: bool,
    /// For the master: which viewer's audio it hears.
    speaker: SpeakerSelector,
}

/// The next relayed frame, or never when this peer does not listen (yet).
async fn next_relayed(
    feed: &mut Option<broadcast::Receiver<RelayedFrame>>,
) -> Result<RelayedFrame, RecvError> {
    match feed {
        Some(feed) => feed.recv().await,
        None => std::future::pending().await,
    }
}

fn storage_rtc(now: Instant) -> Rtc {
    // H.264 first (several profiles), then VP8 so that answerers must pick; Opus for audio
    // (protocol notes §5.2, §8.6).
    let mut config = RtcConfig::new().clear_codecs();
    let codecs = config.codec_config();
    codecs.add_h264(102.into(), Some(103.into()), true, 0x42e01f);
    codecs.add_h264(104.into(), Some(105.into()), true, 0x42001f);
    codecs.add_h264(106.into(), Some(107.into()), true, 0x4d001f);
    codecs.add_h264(108.into(), Some(109.into()), true, 0x64001f);
    codecs.enable_vp8(true);
    codecs.enable_opus(true, false);
    config.build(now)
}

impl Peer<'_> {
    fn send_to_client(&self, frame: String) -> bool {
        match self.shared.hub.find(self.channel_arn, self.role) {
            Some(conn) => conn.send(Outbound::Text(frame)),
            None => false,
        }
    }

    fn reject(&self, from: &Connection, correlation_id: Option<String>, description: String) {
        let rejection = Rejection {
            correlation_id,
            error_type: "InvalidArgumentException",
            status_code: 400,
            description,
        };
        if let Some(frame) = wire::status_response(&rejection) {
            from.send(Outbound::Text(frame));
        }
    }

    async fn drive(
        &mut self,
        mut inbound: mpsc::Receiver<PeerInput>,
        sink: &mut MediaSink,
    ) -> Result<EndReason, Box<dyn std::error::Error + Send + Sync>> {
        let timings = &self.shared.config.timings;
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local = socket.local_addr()?;
        let mut rtc = storage_rtc(Instant::now());
        let mut change = rtc.sdp_api();
        let video_direction = match self.role {
            Role::Master => Direction::RecvOnly,
            Role::Viewer(_) => Direction::SendOnly,
        };
        let video_mid = change.add_media(MediaKind::Video, video_direction, None, None, None);
        let audio_mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().ok_or("the offer had no changes")?;
        let mut pending: Option<SdpPendingOffer> = Some(pending);
        let candidate = Candidate::host(local, "udp")?;
        let candidate_line = candidate.to_sdp_string();
        rtc.add_local_candidate(candidate);

        // The service answers JoinStorageSession first and sends the offer a little later.
        let delay = timings.offer_delay + self.faults.extra_delay.unwrap_or_default();
        tokio::select! {
            _ = self.handle.cancel.cancelled() => return Ok("superseded by a newer join".into()),
            _ = self.shared.shutdown.cancelled() => return Ok("emulator shutting down".into()),
            _ = tokio::time::sleep(delay) => {}
        }
        if self.faults.drop_offer {
            tracing::info!(session = self.handle.id, "offer dropped (fault)");
        } else {
            let offer_frame = wire::event(
                "SDP_OFFER",
                None,
                &wire::encode_sdp("offer", &offer.to_sdp_string()),
            );
            let candidate_frame = wire::event(
                "ICE_CANDIDATE",
                None,
                // The video m-line comes first in the offer (added first above).
                &wire::encode_candidate(&candidate_line, &video_mid.to_string(), 0),
            );
            let frames = if self.faults.candidates_first {
                [candidate_frame, offer_frame]
            } else {
                [offer_frame, candidate_frame]
            };
            for frame in frames {
                if !self.send_to_client(frame) {
                    return Ok("no signaling socket was connected to receive the offer".into());
                }
            }
            self.handle.update(|i| {
                i.offers_sent += 1;
                i.candidates_sent += 1;
                i.state = SessionState::OfferSent;
            });
            tracing::info!(session = self.handle.id, "offer and candidate sent");
        }

        let started = tokio::time::Instant::now();
        let max_end = started + timings.storage_session_max_duration;
        let mut deadline = (
            started + timings.answer_timeout,
            "no answer arrived in time",
        );
        let mut viewer_alone_since: Option<tokio::time::Instant> = None;
        let mut viewer_tick = tokio::time::interval(VIEWER_CHECK);
        let mut buf = vec![0u8; 2048];
        let relay = self.relay.clone();
        let is_master = matches!(self.role, Role::Master);
        // Subscribed once connected: media written before that would be dropped by str0m.
        let mut feed: Option<broadcast::Receiver<RelayedFrame>> = None;
        loop {
            // Drain str0m to its next timeout (the single-mutation rule).
            let timeout = loop {
                match rtc.poll_output()? {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        if let Err(e) = socket.send_to(&t.contents, t.destination).await {
                            tracing::debug!(error = %e, "UDP send failed");
                        }
                    }
                    Output::Event(event) => {
                        if let Some(end) =
                            self.on_event(event, video_mid, audio_mid, sink, &mut deadline)
                        {
                            return Ok(end);
                        }
                    }
                }
            };
            if self.want_keyframe {
                if let Some(stream) = rtc.direct_api().stream_rx_by_mid(video_mid, None) {
                    stream.request_keyframe(KeyframeRequestKind::Pli);
                    sink.keyframe_requested(Instant::now());
                    self.want_keyframe = false;
                    continue;
                }
            }
            if self.connected && feed.is_none() {
                if is_master {
                    feed = Some(relay.master_feed());
                } else {
                    feed = Some(relay.viewer_feed());
                    // A viewer starts with a keyframe of the master's video.
                    relay.request_keyframe();
                }
            }
            if self.last_stats.elapsed() >= STATS_REFRESH {
                self.last_stats = Instant::now();
                let stats = sink.stats().clone();
                self.handle.update(|i| i.media = stats);
            }
            let wake = tokio::time::Instant::from_std(timeout.max(Instant::now()));
            let input = tokio::select! {
                _ = self.handle.cancel.cancelled() => return Ok("superseded by a newer join".into()),
                _ = self.shared.shutdown.cancelled() => return Ok("emulator shutting down".into()),
                _ = tokio::time::sleep_until(deadline.0) => return Ok(deadline.1.into()),
                _ = tokio::time::sleep_until(max_end) => return Ok("maximum session duration reached".into()),
                _ = tokio::time::sleep_until(wake) => Input::Timeout(Instant::now()),
                received = socket.recv_from(&mut buf) => {
                    let (n, source) = received?;
                    match buf[..n].try_into() {
                        Ok(contents) => Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents }),
                        Err(_) => continue,
                    }
                }
                message = inbound.recv() => {
                    let Some(PeerInput::Signal { action, payload, correlation_id, from }) = message else {
                        return Ok("emulator shutting down".into());
                    };
                    match self.on_signal(&mut rtc, &mut pending, action, &payload, correlation_id, &from) {
                        Ok(Some(new_deadline)) => deadline = new_deadline,
                        Ok(None) => {}
                        Err(end) => return Ok(end),
                    }
                    continue;
                }
                relayed = next_relayed(&mut feed) => {
                    self.forward(&mut rtc, relayed, video_mid, audio_mid);
                    continue;
                }
                _ = relay.keyframe_requested(), if is_master && self.connected => {
                    self.want_keyframe = true;
                    continue;
                }
                _ = viewer_tick.tick(), if !is_master => {
                    if self.shared.sessions.has_master(self.channel_arn) {
                        viewer_alone_since = None;
                    } else {
                        let since = *viewer_alone_since.get_or_insert_with(tokio::time::Instant::now);
                        if since.elapsed() >= timings.viewer_without_master {
                            return Ok("viewer without a master for too long".into());
                        }
                    }
                    continue;
                }
            };
            rtc.handle_input(input)?;
        }
    }

    /// Handle a message from the client. Returns a new deadline, or the reason to end.
    fn on_signal(
        &mut self,
        rtc: &mut Rtc,
        pending: &mut Option<SdpPendingOffer>,
        action: Action,
        payload: &str,
        correlation_id: Option<String>,
        from: &Connection,
    ) -> Result<Option<(tokio::time::Instant, &'static str)>, EndReason> {
        let Some(body) = wire::decode_payload(payload) else {
            self.reject(
                from,
                correlation_id,
                "messagePayload is not base64 of a JSON object.".into(),
            );
            return Ok(None);
        };
        match action {
            Action::SdpOffer => {
                self.reject(
                    from,
                    correlation_id,
                    "The storage session sends the offer; send an SDP_ANSWER.".into(),
                );
                Ok(None)
            }
            Action::IceCandidate => {
                let line = body.get("candidate").and_then(|c| c.as_str()).unwrap_or("");
                let line = line.trim().trim_start_matches("a=");
                if line.is_empty() {
                    return Ok(None); // end-of-candidates
                }
                match Candidate::from_sdp_string(line) {
                    Ok(candidate) => {
                        self.handle.update(|i| i.candidates_received += 1);
                        if pending.is_some() {
                            // Not answered yet: keep it until the answer sets the remote ICE credentials.
                            self.pending_candidates.push(candidate);
                        } else {
                            rtc.add_remote_candidate(candidate);
                        }
                    }
                    Err(e) => {
                        self.reject(
                            from,
                            correlation_id,
                            format!("The ICE candidate could not be parsed: {e}"),
                        );
                    }
                }
                Ok(None)
            }
            Action::SdpAnswer => {
                let Some(offer) = pending.take() else {
                    self.reject(
                        from,
                        correlation_id,
                        "An answer was already accepted for this offer.".into(),
                    );
                    return Ok(None);
                };
                let sdp = match (
                    body.get("type").and_then(|t| t.as_str()),
                    body.get("sdp").and_then(|s| s.as_str()),
                ) {
                    (Some("answer"), Some(sdp)) => sdp.to_owned(),
                    _ => {
                        *pending = Some(offer);
                        self.reject(
                            from,
                            correlation_id,
                            "The payload must be {\"type\":\"answer\",\"sdp\":...}.".into(),
                        );
                        return Ok(None);
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
                let accepted = checked.and_then(|()| {
                    let parsed = SdpAnswer::from_sdp_string(&sdp)
                        .map_err(|e| format!("The answer SDP could not be parsed: {e}"))?;
                    rtc.sdp_api()
                        .accept_answer(offer, parsed)
                        .map_err(|e| format!("The answer does not match the offer: {e}"))
                });
                if let Err(description) = accepted {
                    tracing::info!(session = self.handle.id, reason = %description, "answer rejected");
                    self.handle
                        .update(|i| i.answer_rejected = Some(description.clone()));
                    self.reject(from, correlation_id, description);
                    return Err("the answer was rejected".into());
                }
                for candidate in self.pending_candidates.drain(..) {
                    rtc.add_remote_candidate(candidate);
                }
                self.handle.update(|i| i.state = SessionState::Answered);
                tracing::info!(session = self.handle.id, "answer accepted");
                let connect_by =
                    tokio::time::Instant::now() + self.shared.config.timings.connect_timeout;
                Ok(Some((connect_by, "ICE and DTLS did not connect in time")))
            }
        }
    }

    /// Write a frame from another participant to this peer's client.
    fn forward(
        &mut self,
        rtc: &mut Rtc,
        relayed: Result<RelayedFrame, RecvError>,
        video_mid: Mid,
        audio_mid: Mid,
    ) {
        let frame = match relayed {
            Ok(frame) => frame,
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(
                    session = self.handle.id,
                    missed,
                    "relay lagged; frames skipped"
                );
                if !matches!(self.role, Role::Master) {
                    self.relay.request_keyframe();
                }
                return;
            }
            Err(RecvError::Closed) => return,
        };
        let (mid, codec, time) = match (self.role, frame.kind) {
            (Role::Viewer(_), FrameKind::Video) => (video_mid, Codec::H264, frame.time),
            (Role::Viewer(_), FrameKind::Audio) => (audio_mid, Codec::Opus, frame.time),
            (Role::Master, FrameKind::Audio) => match self.speaker.admit(&frame, Instant::now()) {
                Some(time) => (audio_mid, Codec::Opus, time),
                None => return,
            },
            (Role::Master, FrameKind::Video) => return,
        };
        let Some(writer) = rtc.writer(mid) else {
            return;
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
        else {
            return;
        };
        if let Err(e) = writer.write(pt, Instant::now(), time, frame.data.to_vec()) {
            tracing::debug!(session = self.handle.id, error = %e, "relayed frame not written");
        }
    }

    fn on_event(
        &mut self,
        event: Event,
        video_mid: Mid,
        audio_mid: Mid,
        sink: &mut MediaSink,
        deadline: &mut (tokio::time::Instant, &'static str),
    ) -> Option<EndReason> {
        match event {
            Event::Connected => {
                tracing::info!(session = self.handle.id, "storage peer connected");
                self.handle.update(|i| i.state = SessionState::Connected);
                // No connect deadline any more; the session may now last its full duration.
                *deadline = (
                    tokio::time::Instant::now()
                        + self.shared.config.timings.storage_session_max_duration,
                    "maximum session duration reached",
                );
                self.connected = true;
                if matches!(self.role, Role::Master) {
                    self.want_keyframe = true;
                }
            }
            Event::KeyframeRequest(_) => {
                // A viewer's client asks for a keyframe of the video it gets from the master.
                self.relay.request_keyframe();
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Some("ICE disconnected".into());
            }
            Event::MediaData(data) => {
                let time_us = data.time.as_micros();
                let kind = if data.mid == video_mid {
                    if sink.on_video(&data.data, time_us, data.network_time, data.contiguous) {
                        self.want_keyframe = true;
                    }
                    FrameKind::Video
                } else if data.mid == audio_mid {
                    sink.on_audio(&data.data, time_us, data.network_time);
                    FrameKind::Audio
                } else {
                    return None;
                };
                let frame = RelayedFrame {
                    kind,
                    source: self.handle.id,
                    time: data.time,
                    data: data.data,
                };
                match self.role {
                    Role::Master => self.relay.send_to_viewers(frame),
                    // Viewers send no video (the answer check refuses it); their audio goes up.
                    Role::Viewer(_) if kind == FrameKind::Audio => self.relay.send_to_master(frame),
                    Role::Viewer(_) => {}
                }
            }
            _ => {}
        }
        None
    }
}
