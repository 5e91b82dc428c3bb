//! The candidates beyond the host ones, on the tokio side: the ICE servers' lookups
//! (GetIceServerConfig, STUN DNS), server-reflexive gathering and the TURN relays' sockets,
//! driven by three sans-IO parts ([`IceServerLifecycle`], [`ReflexiveGatherer`], [`Relays`])
//! whose outputs this carries out. What concerns the session (peer data that came through a
//! relay, new or withdrawn candidates, relay counters) goes to the core; what concerns the
//! application or signaling comes out of [`Gathering::poll_output`].

// The tokio side reads the clock and hands `now` to the sans-IO parts (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use str0m::Candidate;
use tokio::sync::oneshot;
use tracing::Instrument as _;

use crate::config::Config;
use crate::event::IngestEvent;
use crate::ice_servers::{IceOutput, IceServerLifecycle, IceServersFound};
use crate::net::{self, Datagram, HostSockets};
use crate::reflexive::{GatherOutput, ReflexiveGatherer};
use crate::relay::{RelayEvent, RelayOutput, Relays, TurnServerEntry};
use crate::relay_io::{RelayIo, RelayIoEvent};
use crate::session::IngestCore;

/// What the gathering asks the driver to do.
#[derive(Debug)]
pub(crate) enum GatheringOutput {
    /// Tell the application.
    Event(IngestEvent),
    /// Send this (relayed, permission now in place) candidate to the storage peer.
    SendCandidate { candidate: String, mid: String },
    /// The policy is relay-only and no TURN server gave an allocation: the ingestion fails,
    /// for this reason (each server and why).
    RelayOnlyFailed(String),
}

/// Something the gathering's background work produced; see [`Gathering::next_wake`].
pub(crate) enum GatheringWake {
    IceServers(IceLookup),
    StunServers(Vec<SocketAddr>),
    Relay(RelayIoEvent),
}

/// What a GetIceServerConfig lookup found, or why it failed.
pub(crate) type IceLookup = Result<IceServersFound, String>;

/// The gathering of one ingestion; see the module docs.
pub(crate) struct Gathering {
    discovery: kvs_webrtc_discovery::Client,
    channel_arn: String,
    /// When the ICE servers are looked up, and what follows from their answers.
    ice: IceServerLifecycle,
    /// The ICE servers being looked up (GetIceServerConfig, DNS).
    ice_lookup: Option<oneshot::Receiver<IceLookup>>,
    /// The STUN servers being resolved (DNS).
    stun_lookup: Option<oneshot::Receiver<Vec<SocketAddr>>>,
    /// Server-reflexive candidate gathering, once the servers are known.
    gatherer: Option<ReflexiveGatherer>,
    /// The TURN allocations (sans-IO) and their sockets.
    relays: Relays,
    relay_io: RelayIo,
    outputs: VecDeque<GatheringOutput>,
}

impl Gathering {
    pub(crate) fn new(config: &Config, channel_arn: String, service_is_local: bool) -> Self {
        Self {
            discovery: config.discovery().clone(),
            channel_arn,
            ice: IceServerLifecycle::new(config.ice_transport_policy),
            ice_lookup: None,
            stun_lookup: None,
            gatherer: None,
            relays: Relays::new(config.turn_allocate_timeout),
            relay_io: RelayIo::new(
                IpAddr::V4(if service_is_local {
                    Ipv4Addr::LOCALHOST
                } else {
                    Ipv4Addr::UNSPECIFIED
                }),
                Arc::clone(&config.turn_tls),
                config.turn_allocate_timeout,
            ),
            outputs: VecDeque::new(),
        }
    }

    /// Wait for a lookup's answer or a relay socket's report (never, when none is pending).
    /// Cancel-safe.
    pub(crate) async fn next_wake(&mut self) -> GatheringWake {
        tokio::select! {
            lookup = async { self.ice_lookup.as_mut().expect("guarded").await }, if self.ice_lookup.is_some() => {
                GatheringWake::IceServers(lookup.unwrap_or_else(|_| Err("the lookup task ended".into())))
            }
            servers = async { self.stun_lookup.as_mut().expect("guarded").await }, if self.stun_lookup.is_some() => {
                GatheringWake::StunServers(servers.unwrap_or_default())
            }
            Some(relay) = self.relay_io.recv() => GatheringWake::Relay(relay),
        }
    }

    /// Take in what [`Gathering::next_wake`] returned.
    pub(crate) fn handle_wake(&mut self, now: Instant, wake: GatheringWake, sockets: &HostSockets) {
        match wake {
            GatheringWake::IceServers(lookup) => {
                self.ice_lookup = None;
                self.ice.handle_lookup(now, lookup);
            }
            GatheringWake::StunServers(servers) => {
                self.stun_lookup = None;
                tracing::debug!(?servers, "STUN servers");
                self.gatherer = Some(ReflexiveGatherer::new(&sockets.locals(), &servers));
            }
            GatheringWake::Relay(RelayIoEvent::Connected { id, local, server }) => {
                self.relays.connected(now, id, local, server)
            }
            GatheringWake::Relay(RelayIoEvent::Received { id, bytes }) => {
                self.relays.handle_input(now, id, &bytes)
            }
            GatheringWake::Relay(RelayIoEvent::Failed { id, reason }) => {
                self.relays.connection_failed(now, id, reason)
            }
        }
    }

    /// Fresh ICE servers from signaling (RECONNECT_ICE_SERVER): new allocations.
    pub(crate) fn handle_ice_servers(
        &mut self,
        now: Instant,
        servers: &kvs_webrtc_discovery::IceServers,
    ) {
        tracing::info!(
            turn_servers = servers.turn_servers().len(),
            "ICE servers refreshed (RECONNECT_ICE_SERVER): new TURN allocations"
        );
        self.ice
            .handle_lookup(now, Ok(ice_servers_found(now, servers)));
    }

    /// A datagram on a host socket: `true` when it was a STUN server's answer (consumed).
    pub(crate) fn handle_datagram(&mut self, datagram: &Datagram) -> bool {
        self.gatherer
            .as_mut()
            .is_some_and(|g| g.handle_input(datagram.local, datagram.source, &datagram.contents))
    }

    /// A candidate the core wants to send: `Some` when it may go now (a relayed one waits for
    /// its permissions and comes back as [`GatheringOutput::SendCandidate`]).
    pub(crate) fn gate_candidate(
        &mut self,
        now: Instant,
        candidate: String,
        mid: String,
    ) -> Option<(String, String)> {
        self.relays.gate_candidate(now, candidate, mid)
    }

    /// Whether the core's transmit from `source` goes through a relay.
    pub(crate) fn owns(&self, source: SocketAddr) -> bool {
        self.relays.owns(source)
    }

    /// Relay the core's `contents` from relayed address `source` to `destination`.
    pub(crate) fn send(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
        core: &mut IngestCore,
    ) {
        self.relays.send(now, source, destination, contents);
        self.pump_relays(now, core);
    }

    /// The storage peer has a candidate at `ip`: permissions for it on every relay.
    pub(crate) fn peer_address(&mut self, now: Instant, ip: IpAddr, core: &mut IngestCore) {
        self.relays.peer_address(now, ip);
        self.pump_relays(now, core);
    }

    /// The earliest deadline of the parts.
    pub(crate) fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        [
            self.gatherer.as_ref().and_then(|g| g.poll_timeout(now)),
            self.relays.poll_timeout(now),
            self.ice.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Wake each part whose deadline has come.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.relays.poll_timeout(now).is_some_and(|at| now >= at) {
            self.relays.handle_timeout(now);
        }
        self.ice.handle_timeout(now);
    }

    /// Carry out what the parts ask: lookups, allocations, sockets, STUN requests; peer data
    /// and candidates go to the core.
    pub(crate) async fn pump(
        &mut self,
        now: Instant,
        core: &mut IngestCore,
        sockets: &mut HostSockets,
    ) {
        self.pump_relays(now, core);
        self.pump_ice(now, core);
        if let Some(gatherer) = &mut self.gatherer {
            while let Some(output) = gatherer.poll_output(now) {
                match output {
                    GatherOutput::Transmit {
                        local,
                        server,
                        request,
                    } => sockets.send(local, server, &request).await,
                    GatherOutput::Candidate(candidate) => {
                        tracing::info!(candidate = %candidate.to_sdp_string(), "server-reflexive candidate");
                        core.add_gathered_candidate(candidate);
                    }
                }
            }
            core.note_stun_answers(gatherer.answers());
            if gatherer.is_done() {
                self.gatherer = None;
            }
        }
    }

    /// The next thing for the driver to do.
    pub(crate) fn poll_output(&mut self) -> Option<GatheringOutput> {
        self.outputs.pop_front()
    }

    /// The ingestion ended: release the allocations, and let the relays' last media and
    /// deallocations reach the servers (bounded by `grace`) before the sockets close.
    pub(crate) async fn shutdown(&mut self, grace: Duration) {
        let now = Instant::now();
        self.relays.close_all(now);
        self.flush_relay_sockets(now);
        self.relay_io.shutdown(grace).await;
    }

    /// What the ICE servers' lifecycle asks: lookups, STUN resolution, allocations on new
    /// TURN servers, warnings, the relay-only failure.
    fn pump_ice(&mut self, now: Instant, core: &mut IngestCore) {
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
                    self.pump_relays(now, core);
                }
                IceOutput::Warning(warning) => self
                    .outputs
                    .push_back(GatheringOutput::Event(IngestEvent::Warning(warning))),
                IceOutput::RelayOnlyFailed(why) => self
                    .outputs
                    .push_back(GatheringOutput::RelayOnlyFailed(why)),
            }
        }
    }

    /// Everything the relays ask.
    fn pump_relays(&mut self, now: Instant, core: &mut IngestCore) {
        // Relays superseded before the latest answered session are released.
        self.relays.sessions_answered(now, core.sessions_answered());
        while let Some(output) = self.relays.poll_output(now) {
            match output {
                RelayOutput::Open { id, uri, transport } => self.relay_io.open(id, uri, transport),
                RelayOutput::Transmit { id, bytes } => self.relay_io.send(id, bytes),
                RelayOutput::Close(id) => self.relay_io.close(id),
                RelayOutput::Received(relayed) => {
                    core.handle_datagram(now, relayed.peer, relayed.relayed, &relayed.data)
                }
                RelayOutput::Candidate { line, mid } => {
                    self.outputs.push_back(GatheringOutput::SendCandidate {
                        candidate: line,
                        mid,
                    })
                }
                RelayOutput::Event(event) => self.on_relay_event(event, core),
            }
        }
        self.ice.check_relays(&self.relays);
    }

    /// Only the socket work of the relays (at the end, when nothing goes to the core any
    /// more).
    fn flush_relay_sockets(&mut self, now: Instant) {
        while let Some(output) = self.relays.poll_output(now) {
            match output {
                RelayOutput::Open { id, uri, transport } => self.relay_io.open(id, uri, transport),
                RelayOutput::Transmit { id, bytes } => self.relay_io.send(id, bytes),
                RelayOutput::Close(id) => self.relay_io.close(id),
                RelayOutput::Received(_)
                | RelayOutput::Candidate { .. }
                | RelayOutput::Event(_) => {}
            }
        }
    }

    fn on_relay_event(&mut self, event: RelayEvent, core: &mut IngestCore) {
        match event {
            RelayEvent::Allocated {
                uri,
                transport,
                relayed,
                local,
            } => match Candidate::relayed(relayed, local, "udp") {
                Ok(candidate) => {
                    core.note_relay_allocated();
                    core.add_gathered_candidate(candidate);
                    self.outputs
                        .push_back(GatheringOutput::Event(IngestEvent::RelayAllocated {
                            server: uri,
                            transport: transport.to_string(),
                            relayed,
                        }));
                }
                Err(e) => tracing::warn!(%relayed, error = %e, "relayed candidate refused"),
            },
            RelayEvent::Failed { uri, reason } => {
                core.note_relay_failed();
                self.outputs
                    .push_back(GatheringOutput::Event(IngestEvent::RelayFailed {
                        server: uri,
                        reason,
                    }));
            }
            RelayEvent::Superseded { relayed } => core.remove_local_candidate(relayed),
        }
    }
}

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
fn spawn_stun_resolution(uris: Vec<String>) -> oneshot::Receiver<Vec<SocketAddr>> {
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

/// The instant of a `SystemTime` refresh deadline (now if it passed).
fn refresh_instant(now: Instant, at: SystemTime) -> Instant {
    now + at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}
