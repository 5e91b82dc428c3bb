//! The storage peer's driver: a real WebRTC peer (str0m) that plays the service's side of a
//! storage session. The protocol (offer timing, answer checks, deadlines, keyframe requests,
//! media in and out) is the sans-IO [`StorageSession`]; this task only moves inputs and outputs
//! between it and the world: one UDP socket on 127.0.0.1, the session's inbound signaling queue,
//! the client's signaling socket, the channel's media relay, the recording ([`MediaSink`]) and
//! the inspection record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};

use super::path::Path;
use super::session::{EndReason, PeerOutput, ReceivedMedia, SessionUpdate, StorageSession};
use crate::faults::OfferFaults;
use crate::link::{Connection, Outbound, PeerInput, Role};
use crate::media::sink::MediaSink;
use crate::relay::{ChannelRelay, FrameKind, RelayedFrame};
use crate::sessions::{SessionHandle, SessionState};
use crate::shared::Shared;
use crate::wire::{self, Rejection};

/// How often the inspection snapshot of the media statistics is refreshed.
const STATS_REFRESH: Duration = Duration::from_millis(250);
/// How often a viewer checks that the master is still in the session.
const VIEWER_CHECK: Duration = Duration::from_secs(1);

/// Run one storage session to its end; never panics on peer input.
pub(crate) async fn run(
    shared: Arc<Shared>,
    handle: Arc<SessionHandle>,
    role: Role,
    inbound: mpsc::Receiver<PeerInput>,
    faults: OfferFaults,
) {
    let channel_arn = handle.snapshot().channel_arn;
    let channel_name = channel_arn.split('/').nth(1).unwrap_or("channel");
    let dir = shared
        .config
        .recordings_dir
        .join(super::safe_dir_name(channel_name));
    let file = match &role {
        Role::Master => format!("session-{}-master.mkv", handle.id),
        Role::Viewer(id) => format!("session-{}-viewer-{id}.mkv", handle.id),
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::error!(dir = %dir.display(), error = %e, "cannot create the recordings directory");
    }
    let mut sink = MediaSink::new(dir.join(file), shared.config.limits.max_media_frame);
    if matches!(role, Role::Master) {
        let feed = shared
            .stores
            .feed_for_channel(&shared.registry(), &channel_arn);
        if let Some(feed) = feed {
            sink.store_into(feed);
        }
    }
    let mut driver = Driver {
        relay: shared.relays.channel(&channel_arn),
        shared: &shared,
        handle: &handle,
        role: &role,
        channel_arn: &channel_arn,
        sink: &mut sink,
        last_sender: None,
        last_stats: Instant::now(),
    };
    let reason = match driver.drive(inbound, faults).await {
        Ok(reason) => reason,
        Err(e) => format!("storage peer failed: {e}"),
    };
    tracing::info!(session = handle.id, %reason, "storage session ended");
    // The recording is finalized and the store's writer drained off the runtime.
    let last_stats = sink.stats().clone();
    let stats = match tokio::task::spawn_blocking(move || sink.finish()).await {
        Ok(stats) => stats,
        Err(e) => {
            tracing::error!(session = handle.id, error = %e, "finishing the recording failed");
            last_stats
        }
    };
    handle.update(|i| {
        i.state = SessionState::Ended;
        i.end_reason.get_or_insert(reason);
        i.media = stats;
    });
    shared
        .sessions
        .finished(&handle, &role, shared.config.timings.viewer_slot_hold);
}

struct Driver<'a> {
    shared: &'a Shared,
    handle: &'a SessionHandle,
    role: &'a Role,
    channel_arn: &'a str,
    sink: &'a mut MediaSink,
    /// The channel's relay: the master's media to viewers, viewer audio to the master.
    relay: Arc<ChannelRelay>,
    /// Where the last signal came from: rejections answer it.
    last_sender: Option<Arc<Connection>>,
    last_stats: Instant,
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

/// Send one datagram; a failure is only logged (UDP).
async fn send(socket: &UdpSocket, to: std::net::SocketAddr, bytes: &[u8]) {
    if let Err(e) = socket.send_to(bytes, to).await {
        tracing::debug!(error = %e, "UDP send failed");
    }
}

impl Driver<'_> {
    async fn drive(
        &mut self,
        mut inbound: mpsc::Receiver<PeerInput>,
        faults: OfferFaults,
    ) -> Result<EndReason, Box<dyn std::error::Error + Send + Sync>> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        crate::udp_buffers::enlarge_receive_buffer(&socket);
        let local = socket.local_addr()?;
        let mut session = StorageSession::new(
            Instant::now(),
            self.role.clone(),
            faults,
            self.shared.config.timings.clone(),
            local,
        )?;
        let is_master = matches!(self.role, Role::Master);
        let relay = self.relay.clone();
        // Subscribed once connected: media written before that would be dropped by str0m.
        let mut feed: Option<broadcast::Receiver<RelayedFrame>> = None;
        let mut viewer_tick = tokio::time::interval(VIEWER_CHECK);
        let mut buf = vec![0u8; 2048];
        let mut path = Path::new();
        loop {
            // The channel's impairment as it is now, and what it delivers now.
            path.refresh(&self.shared.faults, self.channel_arn);
            let now = Instant::now();
            while let Some((source, bytes)) = path.due_received(now) {
                session.handle_datagram(now, source, &bytes);
            }
            // Drain the session to its next timeout (the single-mutation rule).
            let timeout = loop {
                match session.poll_output() {
                    PeerOutput::Timeout(at) => break at,
                    PeerOutput::End(reason) => {
                        let (to_peer, from_peer) = path.counters();
                        if to_peer.offered != to_peer.delivered
                            || from_peer.offered != from_peer.delivered
                        {
                            tracing::info!(
                                session = self.handle.id,
                                ?to_peer,
                                ?from_peer,
                                "impaired path"
                            );
                        }
                        return Ok(reason);
                    }
                    PeerOutput::Transmit {
                        destination,
                        contents,
                    } => {
                        if let Some((to, bytes)) = path.send(Instant::now(), destination, contents)
                        {
                            send(&socket, to, &bytes).await;
                        }
                    }
                    PeerOutput::ToClient(frame) => {
                        if !self.send_to_client(frame) {
                            session.handle_client_gone();
                        }
                    }
                    PeerOutput::Reject {
                        correlation_id,
                        description,
                    } => self.reject(correlation_id, description),
                    PeerOutput::Update(update) => self.record(update),
                    PeerOutput::Media(media) => {
                        if self.on_media(media) {
                            session.request_keyframe();
                        }
                    }
                    PeerOutput::KeyframeRequested => self.sink.keyframe_requested(Instant::now()),
                    PeerOutput::RelayKeyframe => relay.request_keyframe(),
                    PeerOutput::Connected => {
                        tracing::info!(session = self.handle.id, "storage peer connected");
                        feed = Some(if is_master {
                            relay.master_feed()
                        } else {
                            relay.viewer_feed()
                        });
                    }
                }
            };
            if self.last_stats.elapsed() >= STATS_REFRESH {
                self.last_stats = Instant::now();
                let stats = self.sink.stats().clone();
                self.handle.update(|i| i.media = stats);
            }
            while let Some((to, bytes)) = path.due_to_send(Instant::now()) {
                send(&socket, to, &bytes).await;
            }
            let timeout = path.next_due().map_or(timeout, |due| due.min(timeout));
            let wake = tokio::time::Instant::from_std(timeout.max(Instant::now()));
            tokio::select! {
                _ = self.handle.cancel.cancelled() => session.handle_stop("superseded by a newer join"),
                _ = self.shared.shutdown.cancelled() => session.handle_stop("emulator shutting down"),
                _ = tokio::time::sleep_until(wake) => session.handle_timeout(Instant::now()),
                received = socket.recv_from(&mut buf) => {
                    let (n, source) = received?;
                    let now = Instant::now();
                    if let Some((source, bytes)) = path.receive(now, source, &buf[..n]) {
                        session.handle_datagram(now, source, &bytes);
                    }
                }
                message = inbound.recv(), if session.offer_sent() => match message {
                    Some(PeerInput::Signal { action, payload, correlation_id, from }) => {
                        self.last_sender = Some(from);
                        session.handle_signal(action, &payload, correlation_id, Instant::now());
                    }
                    None => session.handle_stop("emulator shutting down"),
                },
                relayed = next_relayed(&mut feed) => match relayed {
                    Ok(frame) => session.handle_relayed(Instant::now(), &frame),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(session = self.handle.id, missed, "relay lagged; frames skipped");
                        session.handle_relay_lagged();
                    }
                    Err(RecvError::Closed) => {}
                },
                _ = relay.keyframe_requested(), if is_master && session.is_connected() => {
                    session.request_keyframe();
                }
                _ = viewer_tick.tick(), if !is_master => {
                    let present = self.shared.sessions.has_master(self.channel_arn);
                    session.handle_master_presence(Instant::now(), present);
                }
            }
        }
    }

    fn send_to_client(&self, frame: String) -> bool {
        match self.shared.hub.find(self.channel_arn, self.role) {
            Some(conn) => conn.send(Outbound::Text(frame)),
            None => false,
        }
    }

    fn reject(&self, correlation_id: Option<String>, description: String) {
        let Some(from) = &self.last_sender else {
            return;
        };
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

    fn record(&self, update: SessionUpdate) {
        match update {
            SessionUpdate::OfferSent => {
                tracing::info!(session = self.handle.id, "offer and candidate sent");
                self.handle.update(|i| {
                    i.offers_sent += 1;
                    i.candidates_sent += 1;
                });
            }
            SessionUpdate::CandidateReceived => self.handle.update(|i| i.candidates_received += 1),
            SessionUpdate::AnswerRejected(description) => {
                tracing::info!(session = self.handle.id, reason = %description, "answer rejected");
                self.handle
                    .update(|i| i.answer_rejected = Some(description));
            }
            SessionUpdate::State(state) => {
                if state == SessionState::Answered {
                    tracing::info!(session = self.handle.id, "answer accepted");
                }
                self.handle.update(|i| i.state = state);
            }
        }
    }

    /// Records media and relays it; true when the recording wants a keyframe.
    fn on_media(&mut self, media: ReceivedMedia) -> bool {
        let time_us = media.time.as_micros();
        let want_keyframe = match media.kind {
            FrameKind::Video => {
                self.sink
                    .on_video(&media.data, time_us, media.network_time, media.contiguous)
            }
            FrameKind::Audio => {
                self.sink.on_audio(&media.data, time_us, media.network_time);
                false
            }
        };
        let frame = RelayedFrame {
            kind: media.kind,
            source: self.handle.id,
            time: media.time,
            data: media.data,
        };
        match self.role {
            Role::Master => self.relay.send_to_viewers(frame),
            // Viewers send no video (the answer check refuses it); their audio goes up.
            Role::Viewer(_) if frame.kind == FrameKind::Audio => self.relay.send_to_master(frame),
            Role::Viewer(_) => {}
        }
        want_keyframe
    }
}

#[cfg(test)]
mod tests {
    use crate::storage::safe_dir_name;
    use std::path::{Component, Path};

    #[test]
    fn every_valid_channel_name_stays_inside_the_recordings_directory() {
        for name in [".", "..", "...", "front-door", "a.b", "_"] {
            let dir = safe_dir_name(name);
            let components: Vec<_> = Path::new(&dir).components().collect();
            assert!(
                matches!(components[..], [Component::Normal(_)]),
                "{name} -> {dir}"
            );
        }
        assert_eq!(safe_dir_name(".."), "%2E%2E");
        assert_eq!(safe_dir_name("front-door"), "front-door");
    }
}
