//! The tokio side: sockets, the signaling connection, join calls, sources and pacing, all fed
//! into the sans-IO [`IngestCore`] and its outputs carried out. Nothing here decides anything
//! about the protocol.

// The tokio side reads the clock and hands `now` to the sans-IO parts (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kvs_webrtc_discovery::Role;
use kvs_webrtc_signaling::{
    Action, ConnectionState, Event as SignalingEvent, SignalingConnection, SignalingMessage,
};
use str0m::Candidate;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument as _;

use crate::config::{Config, IceTransportPolicy};
use crate::error::{Error, ErrorChain, ErrorKind};
use crate::event::{IngestEvent, JoinReason, Stats, Track};
use crate::handle::IngestSession;
use crate::ice_servers::{IceOutput, IceServerLifecycle, IceServersFound};
use crate::net::{self, HostSockets};
use crate::outbox::SignalingOutbox;
use crate::pacing::{Pacer, Released, SEND_AHEAD};
use crate::publish::StatsPublisher;
use crate::reflexive::ReflexiveGatherer;
use crate::relay::{RelayEvent, Relays, TurnServerEntry};
use crate::relay_io::{RelayIo, RelayIoEvent};
use crate::session::{CoreConfig, IngestCore, JoinFailure, Output, Side};
use crate::source::{AudioPacket, Feed, OpenedSource, Picture, SourceItem};

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
    if let Some(first) = start.video.as_ref().and_then(|v| v.first.as_ref()) {
        core.observe_video(first);
    }
    let mut pacer = Pacer::new(
        start.video.as_ref().map(|v| v.paced),
        start.audio.as_ref().map(|a| a.paced),
        start.config.timings.max_lateness,
        SEND_AHEAD,
    );
    let video = start.video.map(|mut source| {
        if let Some(first) = source.first.take() {
            pacer.push_video(first);
        }
        Feed::new(source)
    });
    let audio = start.audio.map(|mut source| {
        if let Some(first) = source.first.take() {
            pacer.push_audio(first);
        }
        Feed::new(source)
    });
    let (events_tx, events) = mpsc::channel(256);
    let (stats_tx, stats) = watch::channel(Stats::default());
    let (stop, stop_rx) = watch::channel(false);
    let (join_tx, join_rx) = mpsc::channel(8);
    let span = tracing::info_span!("ingest", channel = %channel_arn);
    let driver = Driver {
        core,
        outbox: SignalingOutbox::start(start.connection.sender(), events_tx.clone()),
        connection: start.connection,
        discovery: start.config.discovery().clone(),
        channel_arn: channel_arn.clone(),
        viewer_id: start.viewer_id,
        sockets,
        video,
        audio,
        pacer,
        events: events_tx,
        stats: stats_tx,
        publisher: StatsPublisher::default(),
        stop: stop_rx,
        join_tx,
        join_rx,
        failure: None,
        stopping: false,
        ice: IceServerLifecycle::new(policy),
        ice_lookup: None,
        stun_lookup: None,
        gatherer: None,
        relays: Relays::new(start.config.turn_allocate_timeout),
        relay_io: RelayIo::new(
            if service_is_local {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            } else {
                std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            },
            Arc::clone(&start.config.turn_tls),
            start.config.turn_allocate_timeout,
        ),
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
    /// The tracks' sources (their frames go to the pacer).
    video: Option<Feed<Picture>>,
    audio: Option<Feed<AudioPacket>>,
    /// When each frame goes out.
    pacer: Pacer,
    events: mpsc::Sender<IngestEvent>,
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
    /// When the ICE servers are looked up, and what follows from their answers.
    ice: IceServerLifecycle,
    /// The ICE servers being looked up (GetIceServerConfig, DNS).
    ice_lookup: Option<oneshot::Receiver<IceLookup>>,
    /// The STUN servers being resolved (DNS).
    stun_lookup: Option<oneshot::Receiver<Vec<std::net::SocketAddr>>>,
    /// Server-reflexive candidate gathering, once the servers are known.
    gatherer: Option<ReflexiveGatherer>,
    /// The TURN allocations (sans-IO) and their sockets.
    relays: Relays,
    relay_io: RelayIo,
}

/// What a GetIceServerConfig lookup found, or why it failed.
type IceLookup = Result<IceServersFound, String>;

/// Look up the channel's ICE servers in the background: the TURN servers of
/// GetIceServerConfig with their credentials, and the STUN servers (the region's STUN URL and
/// the UDP TURN servers) resolved. A failure only means no server-reflexive or relayed
/// candidate from this lookup.
fn spawn_ice_lookup(
    discovery: kvs_webrtc_discovery::Client,
    channel_arn: String,
) -> oneshot::Receiver<IceLookup> {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(
        async move {
            let lookup = discovery.ice_servers().channel(channel_arn).send().await;
            let _ = tx.send(
                lookup
                    .map(|ice| ice_servers_found(Instant::now(), &ice))
                    .map_err(|e| e.to_string()),
            );
        }
        .in_current_span(),
    );
    rx
}

/// Resolve the STUN servers' addresses in the background.
fn spawn_stun_resolution(uris: Vec<String>) -> oneshot::Receiver<Vec<std::net::SocketAddr>> {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(
        async move {
            let _ = tx.send(net::stun_servers(&uris).await);
        }
        .in_current_span(),
    );
    rx
}

/// An answer's servers, its refresh time on the monotonic clock.
fn ice_servers_found(now: Instant, ice: &kvs_webrtc_discovery::IceServers) -> IceServersFound {
    let mut stun_uris = vec![ice.stun_url().to_owned()];
    for server in ice.turn_servers() {
        stun_uris.extend(server.uris().iter().cloned());
    }
    IceServersFound {
        turn: ice
            .turn_servers()
            .iter()
            .map(TurnServerEntry::from)
            .collect(),
        refresh_at: refresh_instant(now, ice.expires_at()),
        stun_uris,
    }
}

enum Wake {
    Stop,
    Timer,
    Datagram(net::Datagram),
    Signaling(Option<SignalingEvent>),
    Joined(Result<(), kvs_webrtc_discovery::Error>),
    /// Frames were taken from a source.
    Media,
    IceServers(IceLookup),
    StunServers(Vec<std::net::SocketAddr>),
    Relay(RelayIoEvent),
}

impl Driver {
    async fn run(mut self) -> Result<Stats, Error> {
        let result = loop {
            self.pump_relays(Instant::now());
            self.pump_ice(Instant::now());
            while let Some((candidate, mid)) = self.relays.poll_released_candidate(Instant::now()) {
                self.outbox.candidate(candidate, mid);
            }
            let deadline = match self.drain().await {
                Ok(deadline) => deadline,
                Err(ended) => break ended,
            };
            self.gather(Instant::now()).await;
            // What was gathered for the sockets leaves before anything is awaited.
            self.sockets.flush().await;
            if self
                .publisher
                .poll_publish(Instant::now(), self.core.stats())
            {
                self.stats.send_replace(self.core.stats().clone());
            }
            let streaming = self.core.is_streaming();
            let mut wake_at = self
                .pacer
                .poll_timeout(Instant::now(), streaming)
                .map_or(deadline, |due| due.min(deadline));
            if let Some(at) = self
                .gatherer
                .as_ref()
                .and_then(|g| g.poll_timeout(Instant::now()))
            {
                wake_at = wake_at.min(at);
            }
            if let Some(at) = self.relays.poll_timeout(Instant::now()) {
                wake_at = wake_at.min(at);
            }
            if let Some(at) = self.ice.poll_timeout() {
                wake_at = wake_at.min(at);
            }
            if let Some(at) = self.publisher.poll_timeout(self.core.stats()) {
                wake_at = wake_at.min(at);
            }
            // Room in the pacer that what was taken cannot fill: wait for the source.
            self.feed_pacer();
            let wants_video = self.pacer.wants(Track::Video);
            let wants_audio = self.pacer.wants(Track::Audio);
            let wake = tokio::select! {
                biased;
                _ = self.stop.changed() => Wake::Stop,
                _ = tokio::time::sleep_until(wake_at.into()) => Wake::Timer,
                d = self.sockets.recv() => Wake::Datagram(d),
                e = self.connection.next_event() => Wake::Signaling(e),
                Some(r) = self.join_rx.recv() => Wake::Joined(r),
                _ = fill(&mut self.video), if wants_video => Wake::Media,
                _ = fill(&mut self.audio), if wants_audio => Wake::Media,
                lookup = async { self.ice_lookup.as_mut().expect("guarded").await }, if self.ice_lookup.is_some() => {
                    Wake::IceServers(lookup.unwrap_or_else(|_| Err("the lookup task ended".into())))
                }
                Some(relay) = self.relay_io.recv() => Wake::Relay(relay),
                servers = async { self.stun_lookup.as_mut().expect("guarded").await }, if self.stun_lookup.is_some() => {
                    Wake::StunServers(servers.unwrap_or_default())
                }
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
                    if self.relays.poll_timeout(now).is_some_and(|at| now >= at) {
                        self.relays.handle_timeout(now);
                    }
                    self.ice.handle_timeout(now);
                }
                Wake::Datagram(d) => {
                    let stun_answer = self
                        .gatherer
                        .as_mut()
                        .is_some_and(|g| g.handle_datagram(d.local, d.source, &d.contents));
                    if !stun_answer {
                        self.core
                            .handle_datagram(now, d.source, d.local, &d.contents)
                    }
                }
                Wake::IceServers(lookup) => {
                    self.ice_lookup = None;
                    self.ice.handle_lookup(now, lookup);
                }
                Wake::Relay(event) => self.on_relay_io(now, event),
                Wake::StunServers(servers) => {
                    self.stun_lookup = None;
                    tracing::debug!(?servers, "STUN servers");
                    self.gatherer = Some(ReflexiveGatherer::new(&self.sockets.locals(), &servers));
                }
                Wake::Signaling(event) => self.on_signaling(now, event),
                Wake::Joined(result) => self
                    .core
                    .handle_join_result(now, result.map_err(JoinFailure::from)),
                Wake::Media => {}
            }
            self.pump_media(Instant::now());
            self.stop_if_sources_done();
        };
        // What the core sent last (a DTLS close) leaves the host sockets.
        self.sockets.flush().await;
        // The TURN allocations are released (their sockets write the deallocations, then
        // close on their own).
        let now = Instant::now();
        self.relays.close_all(now);
        self.flush_relays(now);
        // The last media (and the deallocations) reach the servers before the sockets close.
        self.relay_io.shutdown(Duration::from_secs(2)).await;
        // Whatever the core still had to send (DTLS close) goes out; then close signaling.
        let stats = self.core.stats().clone();
        self.stats.send_replace(stats.clone());
        self.connection.close().await;
        match self.failure.take().or(result) {
            Some(failure) => Err(failure),
            None => Ok(stats),
        }
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
                    let Some((candidate, mid)) =
                        self.relays.gate_candidate(Instant::now(), candidate, mid)
                    else {
                        continue;
                    };
                    self.outbox.candidate(candidate, mid);
                }
                Output::Transmit {
                    source,
                    destination,
                    contents,
                } => {
                    if self.relays.owns(source) {
                        let now = Instant::now();
                        self.relays.send(now, source, destination, &contents);
                        self.flush_relays(now);
                    } else {
                        self.sockets.send(source, destination, &contents).await
                    }
                }
                Output::PeerAddress(ip) => {
                    let now = Instant::now();
                    self.relays.peer_address(now, ip);
                    self.flush_relays(now);
                }
                Output::Event(event) => self.emit(event),
                Output::KeyframeWanted => {
                    if let Some(tx) = self
                        .video
                        .as_ref()
                        .and_then(|v| v.source().keyframes.as_ref())
                    {
                        tx.send_modify(|n| *n += 1);
                    }
                }
                Output::Ended { reason, error } => {
                    tracing::info!(%reason, "ingestion ended");
                    self.emit(IngestEvent::Stopped { reason });
                    return Err(error);
                }
            }
        }
    }

    /// Send the STUN requests that are due and hand new candidates to the core.
    async fn gather(&mut self, now: Instant) {
        let Some(gatherer) = &mut self.gatherer else {
            return;
        };
        while let Some((local, server, request)) = gatherer.poll_transmit(now) {
            self.sockets.send(local, server, &request).await;
        }
        while let Some(candidate) = gatherer.poll_candidate() {
            tracing::info!(candidate = %candidate.to_sdp_string(), "server-reflexive candidate");
            self.core.add_gathered_candidate(candidate);
        }
        self.core.note_stun_answers(gatherer.answers());
        if gatherer.is_done() {
            self.gatherer = None;
        }
    }

    /// Carry out what the ICE servers' lifecycle asks: lookups, STUN resolution, allocations
    /// on new TURN servers, warnings, the relay-only failure.
    fn pump_ice(&mut self, now: Instant) {
        while let Some(output) = self.ice.poll_output() {
            match output {
                IceOutput::Lookup => {
                    self.ice_lookup = Some(spawn_ice_lookup(
                        self.discovery.clone(),
                        self.channel_arn.clone(),
                    ))
                }
                IceOutput::ResolveStun(uris) => {
                    self.stun_lookup = Some(spawn_stun_resolution(uris))
                }
                IceOutput::TurnServers(servers) => {
                    self.relays.add_servers(&servers);
                    self.pump_relays(now);
                }
                IceOutput::Warning(warning) => self.emit(IngestEvent::Warning(warning)),
                IceOutput::RelayOnlyFailed(why) => self.fail_relay_only(why),
            }
        }
    }

    /// A relay socket's report.
    fn on_relay_io(&mut self, now: Instant, event: RelayIoEvent) {
        match event {
            RelayIoEvent::Connected { id, local, server } => {
                self.relays.connected(now, id, local, server)
            }
            RelayIoEvent::Received { id, bytes } => self.relays.handle_input(now, id, &bytes),
            RelayIoEvent::Failed { id, reason } => self.relays.connection_failed(now, id, reason),
        }
    }

    /// Carry out what the relays ask: open and close sockets, hand peer data to the core,
    /// offer relayed candidates, report failures.
    fn pump_relays(&mut self, now: Instant) {
        while let Some((id, uri, transport)) = self.relays.poll_open() {
            self.relay_io.open(id, uri, transport);
        }
        while let Some(relayed) = self.relays.poll_received() {
            self.core
                .handle_datagram(now, relayed.peer, relayed.relayed, &relayed.data);
        }
        while let Some(event) = self.relays.poll_event() {
            match event {
                RelayEvent::Allocated {
                    uri,
                    transport,
                    relayed,
                    local,
                } => match Candidate::relayed(relayed, local, "udp") {
                    Ok(candidate) => {
                        self.core.note_relay_allocated();
                        self.core.add_gathered_candidate(candidate);
                        self.emit(IngestEvent::RelayAllocated {
                            server: uri,
                            transport: transport.to_string(),
                            relayed,
                        });
                    }
                    Err(e) => tracing::warn!(%relayed, error = %e, "relayed candidate refused"),
                },
                RelayEvent::Failed { uri, reason } => {
                    self.core.note_relay_failed();
                    self.emit(IngestEvent::RelayFailed {
                        server: uri,
                        reason,
                    });
                }
                RelayEvent::Superseded { relayed } => self.core.remove_local_candidate(relayed),
            }
        }
        self.relays
            .sessions_answered(now, self.core.sessions_answered());
        self.flush_relays(now);
        self.ice.check_relays(&self.relays);
    }

    /// Send what the relays have for their servers; close the sockets of ended relays.
    fn flush_relays(&mut self, now: Instant) {
        while let Some((id, bytes)) = self.relays.poll_transmit(now) {
            self.relay_io.send(id, bytes);
        }
        while let Some(id) = self.relays.poll_close() {
            self.relay_io.close(id);
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
        if self.events.try_send(event).is_err() {
            tracing::debug!("event queue full or closed; event dropped");
        }
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
                tracing::info!(
                    turn_servers = servers.turn_servers().len(),
                    "ICE servers refreshed (RECONNECT_ICE_SERVER): new TURN allocations"
                );
                self.ice
                    .handle_lookup(now, Ok(ice_servers_found(now, &servers)));
            }
            other => tracing::debug!(event = ?other, "signaling event"),
        }
    }

    /// A source's next item: its frame for the pacer, or its end (cleanly or failed).
    fn on_source_item<T>(&mut self, track: Track, item: Option<SourceItem<T>>) -> Option<T> {
        match item {
            Some(SourceItem::Frame(frame)) => return Some(frame),
            Some(SourceItem::Failed(error)) => {
                self.pacer.end(track);
                self.core.stop(&ErrorChain(&error).to_string());
                self.failure = Some(error);
            }
            None => {
                self.pacer.end(track);
                self.emit(IngestEvent::SourceEnded(track));
            }
        }
        None
    }

    /// Once every source has ended and its last frame went out, the ingestion is over.
    fn stop_if_sources_done(&mut self) {
        if !self.stopping && self.pacer.is_done() {
            self.stopping = true;
            self.core.stop("the media sources ended");
        }
    }

    /// Give the pacer the frames it has room for, from those taken from the sources.
    fn feed_pacer(&mut self) {
        while self.pacer.wants(Track::Video) {
            let Some(item) = self.video.as_mut().and_then(Feed::try_next) else {
                break;
            };
            if let Some(frame) = self.on_source_item(Track::Video, item) {
                self.pacer.push_video(frame);
            }
        }
        while self.pacer.wants(Track::Audio) {
            let Some(item) = self.audio.as_mut().and_then(Feed::try_next) else {
                break;
            };
            if let Some(packet) = self.on_source_item(Track::Audio, item) {
                self.pacer.push_audio(packet);
            }
        }
    }

    /// Hand every frame whose time has come to the core, refilling the pacer from what was
    /// already taken from the sources.
    fn pump_media(&mut self, now: Instant) {
        self.feed_pacer();
        while let Some(released) = self.pacer.poll_release(now, self.core.is_streaming()) {
            match released {
                Released::Video(picture) => self.core.write_video(now, picture),
                Released::Audio(packet) => {
                    self.core.write_audio(now, packet.timestamp, &packet.data)
                }
                Released::Late(track) => self.core.drop_late(track),
            }
            self.feed_pacer();
        }
    }
}

/// Wait for a source's next frames (never, without the track).
async fn fill<T>(feed: &mut Option<Feed<T>>) {
    match feed {
        Some(feed) => feed.fill().await,
        None => std::future::pending().await,
    }
}

/// The instant of a `SystemTime` refresh deadline (now if it passed).
fn refresh_instant(now: Instant, at: std::time::SystemTime) -> Instant {
    now + at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or(Duration::ZERO)
}
