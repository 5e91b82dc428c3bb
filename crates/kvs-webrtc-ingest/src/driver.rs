//! The tokio side: sockets, the signaling connection, join calls, sources and pacing, all fed
//! into the sans-IO [`IngestCore`] and its outputs carried out. Nothing here decides anything
//! about the protocol.

// The tokio side reads the clock and hands `now` to the sans-IO parts (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kvs_webrtc_discovery::Role;
use kvs_webrtc_signaling::{
    Action, ConnectionState, Event as SignalingEvent, SignalingConnection, SignalingMessage,
};
use tokio::sync::{mpsc, watch};
use tracing::Instrument as _;

use crate::config::{Config, IceTransportPolicy};
use crate::error::{Error, ErrorChain, ErrorKind};
use crate::event::{EventSink, IngestEvent, JoinReason, Stats};
use crate::gathering::{Gathering, GatheringOutput, GatheringWake};
use crate::handle::IngestSession;
use crate::net::{self, HostSockets};
use crate::outbox::SignalingOutbox;
use crate::publish::StatsPublisher;
use crate::session::{CoreConfig, IngestCore, JoinFailure, Output, Side};
use crate::source::{AudioPacket, OpenedSource, Picture};
use crate::tracks::{TrackOutput, Tracks};
use crate::wake::{Deadlines, WakeGrid, WAKE_STEP};

/// The instant every session's wake-up grid goes through: one per process, so that sessions
/// wake together (see `wake.rs`).
static WAKE_EPOCH: OnceLock<Instant> = OnceLock::new();

/// Everything a session starts from.
pub(crate) struct Start {
    pub(crate) config: Arc<Config>,
    pub(crate) connection: SignalingConnection,
    pub(crate) viewer_id: Option<String>,
    pub(crate) video: Option<OpenedSource<Picture>>,
    pub(crate) audio: Option<OpenedSource<AudioPacket>>,
}

/// Bind the sockets and start the session task.
pub(crate) async fn start(start: Start) -> Result<IngestSession, Error> {
    let discovery = start.connection.discovery().clone();
    let channel_arn = discovery.channel().arn().to_string();
    let service_is_local = net::is_local_url(discovery.endpoints().wss());
    let sockets = HostSockets::bind(service_is_local).await?;
    let policy = start.config.ice_transport_policy;
    let now = Instant::now();
    let mut core = IngestCore::new(
        now,
        CoreConfig {
            side: if start.viewer_id.is_some() {
                Side::Viewer
            } else {
                Side::Master
            },
            timings: start.config.timings,
            sends_video: start.video.is_some(),
            sends_audio: start.audio.is_some(),
            jitter_seed: rand::random(),
        },
    );
    if policy == IceTransportPolicy::All {
        for candidate in sockets.candidates() {
            core.add_local_candidate(candidate);
        }
    }
    let tracks = Tracks::new(
        start.video,
        start.audio,
        start.config.timings.max_lateness,
        start.config.timings.send_ahead,
        &mut core,
    );
    let (events_tx, events) = mpsc::channel(start.config.event_queue);
    let event_sink = EventSink::new(events_tx);
    let (stats_tx, stats) = watch::channel(Stats::default());
    let (stop, stop_rx) = watch::channel(false);
    let (join_tx, join_rx) = mpsc::channel(8);
    let span = tracing::info_span!("ingest", channel = %channel_arn);
    let driver = Driver {
        core,
        outbox: SignalingOutbox::start(start.connection.sender(), event_sink.clone()),
        connection: start.connection,
        discovery: start.config.discovery().clone(),
        channel_arn: channel_arn.clone(),
        viewer_id: start.viewer_id,
        sockets,
        tracks,
        events: event_sink,
        stats: stats_tx,
        publisher: StatsPublisher::default(),
        stop: stop_rx,
        join_tx,
        join_rx,
        failure: None,
        stopping: false,
        gathering: Gathering::new(&start.config, channel_arn.clone(), service_is_local),
        grid: WakeGrid::new(*WAKE_EPOCH.get_or_init(Instant::now), WAKE_STEP),
    };
    let task = tokio::spawn(driver.run().instrument(span));
    Ok(IngestSession {
        events,
        stats,
        stop,
        task: Some(task),
        channel_arn,
    })
}

struct Driver {
    core: IngestCore,
    connection: SignalingConnection,
    /// Sends the answer and candidates without holding up media.
    outbox: SignalingOutbox,
    discovery: kvs_webrtc_discovery::Client,
    channel_arn: String,
    viewer_id: Option<String>,
    sockets: HostSockets,
    /// The tracks' sources and their pacing.
    tracks: Tracks,
    /// The application's events (never waited for).
    events: EventSink,
    stats: watch::Sender<Stats>,
    /// When the statistics are published.
    publisher: StatsPublisher,
    stop: watch::Receiver<bool>,
    join_tx: mpsc::Sender<Result<(), kvs_webrtc_discovery::Error>>,
    join_rx: mpsc::Receiver<Result<(), kvs_webrtc_discovery::Error>>,
    /// The error that ends the session, when it is more precise than the core's reason.
    failure: Option<Error>,
    /// The sources ended and the core was told to stop.
    stopping: bool,
    /// Server-reflexive and relayed candidates: the ICE servers, STUN, TURN.
    gathering: Gathering,
    /// Where wake-ups may fall.
    grid: WakeGrid,
}

enum Wake {
    Stop,
    Timer,
    Datagram(net::Datagram),
    Signaling(Option<SignalingEvent>),
    Joined(Result<(), kvs_webrtc_discovery::Error>),
    /// Frames were taken from a source.
    Media,
    Gathering(GatheringWake),
}

impl Driver {
    async fn run(mut self) -> Result<Stats, Error> {
        let result = loop {
            self.gathering
                .pump(Instant::now(), &mut self.core, &mut self.sockets)
                .await;
            self.take_gathering_outputs();
            let deadline = match self.drain().await {
                Ok(deadline) => deadline,
                Err(ended) => break ended,
            };
            // What was gathered for the sockets leaves before anything is awaited.
            self.sockets.flush().await;
            // Events lost while the application did not read are reported once it does.
            self.events.report_lost();
            let now = Instant::now();
            if self.publisher.poll_publish(now, self.core.stats()) {
                self.stats.send_replace(self.core.stats().clone());
            }
            let wake_at = self.wake_at(now, deadline);
            let wake = tokio::select! {
                biased;
                _ = self.stop.changed() => Wake::Stop,
                _ = tokio::time::sleep_until(wake_at.into()) => Wake::Timer,
                d = self.sockets.recv() => Wake::Datagram(d),
                e = self.connection.next_event() => Wake::Signaling(e),
                Some(r) = self.join_rx.recv() => Wake::Joined(r),
                () = self.tracks.fill() => Wake::Media,
                w = self.gathering.next_wake() => Wake::Gathering(w),
            };
            let now = Instant::now();
            match wake {
                Wake::Stop => self.core.stop("stopped by the application"),
                Wake::Timer => {
                    // Each part is woken only at its own deadline (str0m's timeout handling is
                    // not free, and most wakes are for media that fell due).
                    if now >= deadline {
                        self.core.handle_timeout(now);
                    }
                    self.gathering.handle_timeout(now);
                }
                Wake::Datagram(d) => {
                    if !self.gathering.handle_datagram(&d) {
                        self.core
                            .handle_datagram(now, d.source, d.local, &d.contents)
                    }
                }
                Wake::Gathering(wake) => self.gathering.handle_wake(now, wake, &self.sockets),
                Wake::Signaling(event) => self.on_signaling(now, event),
                Wake::Joined(result) => self
                    .core
                    .handle_join_result(now, result.map_err(JoinFailure::from)),
                Wake::Media => {}
            }
            self.tracks.pump(Instant::now(), &mut self.core);
            self.take_track_outputs();
        };
        // What the core sent last (a DTLS close) leaves the host sockets.
        self.sockets.flush().await;
        // The TURN allocations are released, and the last media (and the deallocations)
        // reach the servers before their sockets close.
        self.gathering.shutdown(Duration::from_secs(2)).await;
        let stats = self.core.stats().clone();
        self.stats.send_replace(stats.clone());
        self.events.report_lost();
        self.connection.close().await;
        match self.failure.take().or(result) {
            Some(failure) => Err(failure),
            None => Ok(stats),
        }
    }

    /// When to wake: the core's `deadline` and the other parts', on the wake-up grid. Paced
    /// frames and the statistics may be a little late; once media flows, so may the core's and
    /// the gathering's timers, which while connecting decide the time to the first frame and
    /// are kept exactly.
    fn wake_at(&mut self, now: Instant, deadline: Instant) -> Instant {
        let streaming = self.core.is_streaming();
        let timers = [Some(deadline), self.gathering.poll_timeout(now)];
        let deadlines = Deadlines::default()
            .flexible(self.tracks.poll_timeout(now, streaming))
            .flexible(self.publisher.poll_timeout(self.core.stats()));
        let deadlines = timers.into_iter().fold(deadlines, |d, timer| {
            if streaming {
                d.flexible(timer)
            } else {
                d.exact(timer)
            }
        });
        self.grid.wake_at(now, deadlines).unwrap_or(deadline)
    }

    /// Carry out the core's outputs until it waits; `Err` when it ended (with its error when
    /// it failed).
    async fn drain(&mut self) -> Result<Instant, Option<Error>> {
        loop {
            match self.core.poll_output() {
                Output::Timeout(at) => return Ok(at),
                Output::Join => self.spawn_join(),
                Output::SendAnswer(sdp) => self.outbox.answer(sdp),
                Output::SendCandidate { candidate, mid } => {
                    if let Some((candidate, mid)) =
                        self.gathering
                            .gate_candidate(Instant::now(), candidate, mid)
                    {
                        self.outbox.candidate(candidate, mid);
                    }
                }
                Output::Transmit {
                    source,
                    destination,
                    contents,
                } => {
                    if self.gathering.owns(source) {
                        let now = Instant::now();
                        self.gathering
                            .send(now, source, destination, &contents, &mut self.core);
                    } else {
                        self.sockets.send(source, destination, &contents).await
                    }
                }
                Output::PeerAddress(ip) => {
                    self.gathering
                        .peer_address(Instant::now(), ip, &mut self.core)
                }
                Output::Event(event) => self.emit(event),
                Output::KeyframeWanted => self.tracks.request_keyframe(),
                Output::Ended { reason, error } => {
                    tracing::info!(%reason, "ingestion ended");
                    self.emit(IngestEvent::Stopped { reason });
                    return Err(error);
                }
            }
        }
    }

    /// Carry out what the gathering asks: events, released candidates, the relay-only failure.
    fn take_gathering_outputs(&mut self) {
        while let Some(output) = self.gathering.poll_output() {
            match output {
                GatheringOutput::Event(event) => self.emit(event),
                GatheringOutput::SendCandidate { candidate, mid } => {
                    self.outbox.candidate(candidate, mid)
                }
                GatheringOutput::RelayOnlyFailed(why) => self.fail_relay_only(why),
            }
        }
    }

    /// A source's end or failure; once every source has ended and its last frame went out,
    /// the ingestion is over.
    fn take_track_outputs(&mut self) {
        while let Some(output) = self.tracks.poll_output() {
            match output {
                TrackOutput::Ended(track) => self.emit(IngestEvent::SourceEnded(track)),
                TrackOutput::Failed(error) => {
                    self.core.stop(&ErrorChain(&error).to_string());
                    self.failure = Some(error);
                }
            }
        }
        if !self.stopping && self.tracks.is_done() {
            self.stopping = true;
            self.core.finish(Instant::now(), "the media sources ended");
        }
    }

    /// Relay-only and no relay: end with an error that names each server and why.
    fn fail_relay_only(&mut self, why: String) {
        if self.failure.is_some() {
            return;
        }
        let message = format!(
            "the ICE transport policy is relay-only and no TURN server gave an allocation: {why}"
        );
        self.failure = Some(Error::new(ErrorKind::Relay, message.clone()));
        self.core.stop(&message);
    }

    fn emit(&mut self, event: IngestEvent) {
        match &event {
            IngestEvent::Warning(w) => tracing::warn!("{w}"),
            IngestEvent::Joining { reason, attempt } => {
                tracing::info!(%reason, attempt, "joining the storage session")
            }
            other => tracing::info!(event = ?other),
        }
        self.events.send(event);
    }

    fn spawn_join(&mut self) {
        let discovery = self.discovery.clone();
        let channel = self.channel_arn.clone();
        let viewer = self.viewer_id.clone();
        let tx = self.join_tx.clone();
        let role = if viewer.is_some() {
            Role::Viewer
        } else {
            Role::Master
        };
        tokio::spawn(
            async move {
                let result = discovery
                    .join_storage_session()
                    .channel(channel)
                    .role(role)
                    .set_client_id(viewer)
                    .send()
                    .await
                    .map(drop);
                let _ = tx.send(result).await;
            }
            .in_current_span(),
        );
    }

    fn on_signaling(&mut self, now: Instant, event: Option<SignalingEvent>) {
        let Some(event) = event else {
            self.failure = Some(Error::new(
                ErrorKind::GaveUp,
                "the signaling connection ended",
            ));
            self.core.stop("the signaling connection ended");
            return;
        };
        match event {
            SignalingEvent::StateChanged(ConnectionState::Connected { reconnects }) => {
                self.core.handle_signaling_connected(now, reconnects)
            }
            SignalingEvent::StateChanged(ConnectionState::Reconnecting { reason, .. }) => {
                tracing::info!(%reason, "signaling reconnecting");
                self.core.handle_signaling_lost();
            }
            SignalingEvent::StateChanged(ConnectionState::Closed { reason }) => {
                self.failure = Some(Error::new(
                    ErrorKind::GaveUp,
                    format!("the signaling connection closed: {reason}"),
                ));
                self.core.stop("the signaling connection closed");
            }
            SignalingEvent::Message(SignalingMessage::Offer { description, .. }) => {
                self.core.handle_offer(now, &description.sdp)
            }
            SignalingEvent::Message(SignalingMessage::IceCandidate { candidate, .. }) => {
                self.core.handle_remote_candidate(&candidate.candidate)
            }
            SignalingEvent::Rejected(rejection) if rejection.action == Some(Action::SdpAnswer) => {
                let description = rejection
                    .status
                    .description
                    .unwrap_or_else(|| "no description".into());
                self.core.handle_answer_rejected(now, description);
            }
            SignalingEvent::Rejected(rejection) => self.emit(IngestEvent::Warning(format!(
                "the service rejected a {:?} message: {}",
                rejection.action,
                rejection.status.description.unwrap_or_default()
            ))),
            SignalingEvent::GoAway => self.core.handle_service_notice(JoinReason::GoAway),
            SignalingEvent::ReconnectIceServer => self
                .core
                .handle_service_notice(JoinReason::ReconnectIceServer),
            SignalingEvent::IceServersRefreshed(servers) => {
                self.gathering.handle_ice_servers(now, &servers)
            }
            other => tracing::debug!(event = ?other, "signaling event"),
        }
    }
}
