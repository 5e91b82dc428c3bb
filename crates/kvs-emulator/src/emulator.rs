//! Starting and stopping an emulator: [`Emulator::builder`] → [`EmulatorHandle`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::Request;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AccessKey, EmulatorConfig, Limits, Timings, TlsMode, TurnMode};
use crate::error::{Error, ErrorKind};
use crate::faults::Faults;
use crate::hosts::AllowedHosts;
use crate::http_server::{self, Handler, HttpResponse, ListenerConfig};
use crate::hub::Hub;
use crate::impairment::{Direction, Impairment};
use crate::player::scripts::PlayerScripts;
use crate::registry::{Registry, ResourceRef};
use crate::sessions::{SessionInfo, Sessions};
use crate::shared::{Endpoints, Shared};
use crate::throttle::{Throttle, Throttling};
use crate::tls::{self, TlsMaterial};
use crate::turn_server::TurnService;

/// What a listener does with each request.
type Serve = fn(Arc<Shared>, Request<Incoming>) -> BoxFuture<'static, HttpResponse>;

/// One endpoint the emulator serves: its listener's name (in logs), whether it speaks
/// WebSocket, where its URL goes in [`Endpoints`], and how it serves. A new API (the
/// archived-media and media endpoints) joins by adding a row.
struct EndpointRow {
    name: &'static str,
    websocket: bool,
    /// The control plane may have a fixed port; the channel endpoints always take a free one.
    control_plane: bool,
    url: fn(&mut Endpoints) -> &mut String,
    serve: Serve,
}

const ENDPOINTS: [EndpointRow; 4] = [
    EndpointRow {
        name: "control-plane",
        websocket: false,
        control_plane: true,
        url: |e| &mut e.control_plane,
        serve: |s, r| Box::pin(crate::control_plane::handle(s, r)),
    },
    EndpointRow {
        name: "signaling-https",
        websocket: false,
        control_plane: false,
        url: |e| &mut e.https,
        serve: |s, r| Box::pin(crate::ice_config::handle(s, r)),
    },
    EndpointRow {
        name: "signaling-wss",
        websocket: true,
        control_plane: false,
        url: |e| &mut e.wss,
        serve: |s, r| Box::pin(crate::signaling::socket::handle(s, r)),
    },
    EndpointRow {
        name: "storage-webrtc",
        websocket: false,
        control_plane: false,
        url: |e| &mut e.webrtc,
        serve: |s, r| Box::pin(crate::storage::api::handle(s, r)),
    },
];

/// `scheme://address`, without the port when it is the scheme's default: the C SDK refuses a
/// URL with a port (`https://127.0.0.2`, not `https://127.0.0.2:443`).
fn base_url(scheme: &str, addr: SocketAddr) -> String {
    let default = match scheme {
        "https" | "wss" => 443,
        _ => 80,
    };
    match addr.ip() {
        _ if addr.port() != default => format!("{scheme}://{addr}"),
        IpAddr::V4(ip) => format!("{scheme}://{ip}"),
        IpAddr::V6(ip) => format!("{scheme}://[{ip}]"),
    }
}

/// Why a listener could not bind, with what to do about the usual causes.
fn listen_error(addr: SocketAddr, error: std::io::Error) -> Error {
    let hint = match error.kind() {
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
            "; ports below 1024 need root, the CAP_NET_BIND_SERVICE capability (sudo setcap \
             cap_net_bind_service=+ep <kvs-emulator binary>) or sudo sysctl \
             net.ipv4.ip_unprivileged_port_start={}",
            addr.port()
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "; {} is not an address of this machine (macOS: sudo ifconfig lo0 alias {} up)",
            addr.ip(),
            addr.ip()
        ),
        std::io::ErrorKind::AddrInUse => "; another program listens there".to_owned(),
        _ => String::new(),
    };
    Error::io(
        ErrorKind::Listen,
        format!("cannot listen on {addr}{hint}"),
        error,
    )
}

/// Entry point: `Emulator::builder().start().await`.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// A builder with the defaults of [`EmulatorConfig`].
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder {
            config: EmulatorConfig::default(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            control_plane_port: 0,
            shared_port: None,
            iot_port: 0,
            temporary: false,
            log_drops: None,
        }
    }
}

/// Configures an emulator before it starts.
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    config: EmulatorConfig,
    bind: IpAddr,
    control_plane_port: u16,
    /// With [`EmulatorBuilder::every_endpoint_on_port`]: the one port.
    shared_port: Option<u16>,
    /// The IoT credentials endpoint's port (0: any free one).
    iot_port: u16,
    temporary: bool,
    log_drops: Option<tracing_appender::non_blocking::ErrorCounter>,
}

impl EmulatorBuilder {
    /// Replace the whole configuration.
    pub fn config(mut self, config: EmulatorConfig) -> Self {
        self.config = config;
        self
    }

    /// The region the emulator claims to be.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.config.region = region.into();
        self
    }

    /// Accept this key (call again for more). Without any, a random key is made at start.
    pub fn access_key(mut self, key: AccessKey) -> Self {
        self.config.access_keys.push(key);
        self
    }

    /// How listeners speak.
    pub fn tls(mut self, tls: TlsMode) -> Self {
        self.config.tls = tls;
        self
    }

    /// Where recordings go.
    pub fn recordings_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.recordings_dir = dir.into();
        self
    }

    /// Where streams keep their fragments (default `kvs-emulator-data/streams`).
    pub fn streams_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.streams_dir = dir.into();
        self
    }

    /// Where the player page (`/_emulator/v1/player.html`) gets hls.js and dash.js (default:
    /// the npm registry, on first use).
    pub fn player_scripts(mut self, scripts: PlayerScripts) -> Self {
        self.config.player_scripts = scripts;
        self
    }

    /// Keep the channels and streams in `file` across restarts (default: in memory only). A
    /// restart with the same file and [`EmulatorBuilder::streams_dir`] serves every stored
    /// fragment again through the AWS APIs. [`EmulatorBuilder::temporary`] leaves it as set.
    pub fn registry_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.config.registry_file = Some(file.into());
        self
    }

    /// Keep the generated CA, the recordings and the streams in a fresh temporary directory that is deleted
    /// when the handle is dropped: one call for tests, examples and benchmarks. Overrides
    /// [`EmulatorBuilder::recordings_dir`] and a [`TlsMode::GeneratedCa`] directory (a provided
    /// CA or plain HTTP stay as set).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), kvs_emulator::Error> {
    /// let emulator = kvs_emulator::Emulator::builder().temporary().start().await?;
    /// let recordings = emulator.recordings_dir().to_path_buf();
    /// assert!(recordings.is_dir());
    /// drop(emulator);
    /// assert!(!recordings.exists());
    /// # Ok(()) }
    /// ```
    pub fn temporary(mut self) -> Self {
        self.temporary = true;
        self
    }

    /// Change timings (tests shorten them).
    pub fn timings(mut self, change: impl FnOnce(&mut Timings)) -> Self {
        change(&mut self.config.timings);
        self
    }

    /// Change limits.
    pub fn limits(mut self, change: impl FnOnce(&mut Limits)) -> Self {
        change(&mut self.config.limits);
        self
    }

    /// Which TURN server GetIceServerConfig returns (default: an embedded one on a free UDP
    /// port). See [`TurnMode`].
    pub fn turn(mut self, turn: TurnMode) -> Self {
        self.config.turn = turn;
        self
    }

    /// Per-API request rates (default: [`Throttling::aws_defaults`]; tests that hammer one
    /// channel may want [`Throttling::disabled`]).
    pub fn throttling(mut self, throttling: Throttling) -> Self {
        self.config.throttling = throttling;
        self
    }

    /// The address listeners bind (default 127.0.0.1).
    pub fn bind(mut self, addr: IpAddr) -> Self {
        self.bind = addr;
        self
    }

    /// A fixed port for the control plane (default: any free port). Channel endpoints use free
    /// ports; clients learn them from GetSignalingChannelEndpoint.
    pub fn control_plane_port(mut self, port: u16) -> Self {
        self.control_plane_port = port;
        self.shared_port = None;
        self
    }

    /// Add a role alias to the IoT credentials endpoint, or change one's duration (the default
    /// alias, [`DEFAULT_ROLE_ALIAS`](crate::DEFAULT_ROLE_ALIAS), is always there, valid 3600 s
    /// unless changed here). Emulator only: any duration of at least 1 s is accepted (AWS:
    /// 900 s to 12 h), so that tests can watch credentials expire and be refreshed.
    pub fn role_alias(mut self, name: impl Into<String>, duration: Duration) -> Self {
        self.config
            .role_aliases
            .insert(name.into(), duration.max(Duration::from_secs(1)));
        self
    }

    /// A fixed port for the IoT credentials endpoint (default: any free port), on the bind
    /// address.
    pub fn iot_credentials_port(mut self, port: u16) -> Self {
        self.iot_port = port;
        self
    }

    /// Serve every endpoint on `port`, each on its own loopback address, as AWS serves each
    /// endpoint on 443 under a host name of its own: the control plane on the bind address
    /// (127.0.0.1 by default), the channel's HTTPS, WSS and WEBRTC endpoints on the next three
    /// (127.0.0.2, .3, .4). The certificate covers each address, and URLs leave out the port
    /// when it is the scheme's default (`https://127.0.0.2`). With 443 this is what the AWS KVS
    /// WebRTC C SDK needs: it connects every endpoint on port 443 and refuses a URL with a
    /// port. Replaces [`EmulatorBuilder::control_plane_port`].
    ///
    /// Ports below 1024 need root, the `CAP_NET_BIND_SERVICE` capability
    /// (`sudo setcap cap_net_bind_service=+ep <binary>`) or
    /// `sudo sysctl net.ipv4.ip_unprivileged_port_start=443`. Linux routes all of 127.0.0.0/8
    /// to loopback; on macOS add the addresses first (`sudo ifconfig lo0 alias 127.0.0.2 up`,
    /// `.3`, `.4`).
    pub fn every_endpoint_on_port(mut self, port: u16) -> Self {
        self.shared_port = Some(port);
        self
    }

    /// Where each endpoint of [`ENDPOINTS`] listens.
    fn listen_addresses(&self) -> Result<Vec<SocketAddr>, Error> {
        let Some(port) = self.shared_port else {
            return Ok(ENDPOINTS
                .iter()
                .map(|row| {
                    let port = if row.control_plane {
                        self.control_plane_port
                    } else {
                        0
                    };
                    SocketAddr::new(self.bind, port)
                })
                .collect());
        };
        let bad = || {
            Error::new(
                ErrorKind::Config,
                format!(
                    "every endpoint on one port needs an IPv4 loopback bind address with {} \
                     more after it (e.g. 127.0.0.1), not {}",
                    ENDPOINTS.len() - 1,
                    self.bind
                ),
            )
        };
        let IpAddr::V4(base) = self.bind else {
            return Err(bad());
        };
        (0..ENDPOINTS.len() as u32)
            .map(|i| {
                let ip = u32::from(base)
                    .checked_add(i)
                    .map(Ipv4Addr::from)
                    .filter(Ipv4Addr::is_loopback)
                    .ok_or_else(bad)?;
                Ok(SocketAddr::new(IpAddr::V4(ip), port))
            })
            .collect()
    }

    /// The drop counter of a lossy `tracing-appender` log writer (as `kvs-emulator serve` logs):
    /// the inspection API's `state` reports it as `logLinesDropped`, so that log lines lost to
    /// a stderr nobody reads are seen.
    pub fn log_lines_dropped(
        mut self,
        counter: tracing_appender::non_blocking::ErrorCounter,
    ) -> Self {
        self.log_drops = Some(counter);
        self
    }

    /// Bind the listeners and start serving.
    pub async fn start(self) -> Result<EmulatorHandle, Error> {
        let addresses = self.listen_addresses()?;
        let mut config = self.config;
        let temporary_dir = if self.temporary {
            let dir = tempfile::Builder::new()
                .prefix("kvs-emulator-")
                .tempdir()
                .map_err(|e| {
                    Error::io(
                        ErrorKind::Recording,
                        "cannot create a temporary directory",
                        e,
                    )
                })?;
            if let TlsMode::GeneratedCa { dir: ca } = &mut config.tls {
                *ca = dir.path().join("ca");
            }
            config.recordings_dir = dir.path().join("recordings");
            config.streams_dir = dir.path().join("streams");
            Some(dir)
        } else {
            None
        };
        if config.access_keys.is_empty() {
            config.access_keys.push(AccessKey::random());
        }
        // Absolute, so that the paths in `startup_info` work from any client's directory.
        let absolute = |path: &std::path::Path, kind: ErrorKind| {
            std::path::absolute(path)
                .map_err(|e| Error::io(kind, format!("cannot resolve {}", path.display()), e))
        };
        if let TlsMode::GeneratedCa { dir } = &mut config.tls {
            *dir = absolute(dir, ErrorKind::Tls)?;
        }
        config.recordings_dir = absolute(&config.recordings_dir, ErrorKind::Recording)?;
        config.streams_dir = absolute(&config.streams_dir, ErrorKind::Recording)?;
        if let Some(file) = &mut config.registry_file {
            *file = absolute(file, ErrorKind::Resources)?;
        }
        let registry = Registry::open(config.registry_file.clone())?;
        let mut bound: Vec<IpAddr> = addresses.iter().map(SocketAddr::ip).collect();
        bound.dedup();
        let tls = match &config.tls {
            TlsMode::GeneratedCa { dir } => Some(tls::generated_ca(dir, &bound)?),
            TlsMode::ProvidedCa { cert_pem, key_pem } => {
                Some(tls::provided_ca(cert_pem, key_pem, &bound)?)
            }
            TlsMode::Plain => None,
        };
        std::fs::create_dir_all(&config.recordings_dir).map_err(|e| {
            Error::io(
                ErrorKind::Recording,
                format!("cannot create {}", config.recordings_dir.display()),
                e,
            )
        })?;
        let (http_scheme, ws_scheme) = if tls.is_some() {
            ("https", "wss")
        } else {
            ("http", "ws")
        };
        let mut endpoints = Endpoints::default();
        let mut listeners = Vec::with_capacity(ENDPOINTS.len());
        for (row, addr) in ENDPOINTS.iter().zip(addresses) {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| listen_error(addr, e))?;
            let local = listener
                .local_addr()
                .map_err(|e| Error::io(ErrorKind::Listen, "listener has no address", e))?;
            let scheme = if row.websocket {
                ws_scheme
            } else {
                http_scheme
            };
            *(row.url)(&mut endpoints) = base_url(scheme, local);
            listeners.push((listener, row));
        }
        // The IoT credentials endpoint: mutual TLS only, so none with plain HTTP.
        let iot_listener = match &tls {
            Some(_) => {
                let addr = SocketAddr::new(self.bind, self.iot_port);
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|e| listen_error(addr, e))?;
                let local = listener
                    .local_addr()
                    .map_err(|e| Error::io(ErrorKind::Listen, "listener has no address", e))?;
                endpoints.iot_credentials = Some(local.to_string());
                Some(listener)
            }
            None => None,
        };
        let shutdown = CancellationToken::new();
        let turn = TurnService::start(&config.turn, self.bind, shutdown.clone()).await?;
        let shared = Arc::new(Shared {
            turn,
            throttle: Throttle::new(config.throttling.clone()),
            hub: Hub::new(
                config.limits.signaling_outbound_queue,
                config.limits.viewers_per_channel,
            ),
            sessions: Sessions::new(
                config.limits.storage_peer_inbound_queue,
                config.limits.ended_sessions_kept,
            ),
            relays: Default::default(),
            faults: Faults::default(),
            registry: Mutex::new(registry),
            endpoints,
            shutdown: shutdown.clone(),
            peers: TaskTracker::new(),
            calls: Default::default(),
            external_peers: Default::default(),
            temporary_keys: Default::default(),
            playback_key: crate::playback::token::TokenKey::random(),
            player_scripts: crate::player::scripts::ScriptCache::default(),
            log_drops: self.log_drops,
            stores: crate::store::StreamStores::new(
                config.streams_dir.clone(),
                config.limits.max_stream_store_bytes,
            ),
            body_reads: crate::http_util::BodyReads::new(
                config.limits.max_connections,
                config.limits.body_read_timeout,
            ),
            config,
        });

        let mut servers = JoinSet::new();
        let limits = &shared.config.limits;
        let hosts = Arc::new(AllowedHosts::new(&bound, &[]));
        let acceptor = tls.as_ref().map(|t| t.acceptor.clone());
        for (listener, row) in listeners {
            let serve = row.serve;
            let for_requests = shared.clone();
            let handler: Handler = Arc::new(move |r| serve(for_requests.clone(), r));
            let config = ListenerConfig {
                name: row.name,
                max_connections: limits.max_connections,
                handshake_timeout: limits.handshake_timeout,
                request_head_timeout: limits.request_head_timeout,
                hosts: hosts.clone(),
            };
            servers.spawn(http_server::serve(
                listener,
                acceptor.clone(),
                handler,
                shutdown.clone(),
                config,
            ));
        }
        if let (Some(listener), Some(tls)) = (iot_listener, &tls) {
            let for_requests = shared.clone();
            let verifier = tls.device_verifier.clone();
            let handler: Handler = Arc::new(move |r| {
                Box::pin(crate::iot::handle(
                    for_requests.clone(),
                    verifier.clone(),
                    r,
                ))
            });
            let config = ListenerConfig {
                name: "iot-credentials",
                max_connections: limits.max_connections,
                handshake_timeout: limits.handshake_timeout,
                request_head_timeout: limits.request_head_timeout,
                hosts: hosts.clone(),
            };
            servers.spawn(http_server::serve(
                listener,
                Some(tls.device_acceptor.clone()),
                handler,
                shutdown.clone(),
                config,
            ));
        }
        tracing::info!(control_plane = %shared.endpoints.control_plane, region = %shared.config.region, "kvs-emulator started");
        Ok(EmulatorHandle {
            shared,
            servers,
            tls,
            _temporary_dir: temporary_dir,
        })
    }
}

/// A running emulator. Dropping it without [`EmulatorHandle::shutdown`] stops the listeners but
/// does not wait for recordings to be finalized.
pub struct EmulatorHandle {
    shared: Arc<Shared>,
    servers: JoinSet<()>,
    tls: Option<TlsMaterial>,
    /// With [`EmulatorBuilder::temporary`]: removed when the handle is dropped (after
    /// [`EmulatorHandle::shutdown`] has finalized the recordings).
    _temporary_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for EmulatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorHandle")
            .field("endpoints", &self.shared.endpoints)
            .finish_non_exhaustive()
    }
}

impl EmulatorHandle {
    /// Where recordings are written (`<dir>/<channel>/session-<id>-<role>.mkv`), absolute.
    pub fn recordings_dir(&self) -> &std::path::Path {
        &self.shared.config.recordings_dir
    }

    /// The endpoints the emulator serves.
    pub fn endpoints(&self) -> &Endpoints {
        &self.shared.endpoints
    }

    /// The control-plane URL, for `endpoint_url` in AWS clients.
    pub fn endpoint_url(&self) -> &str {
        &self.shared.endpoints.control_plane
    }

    /// The region the emulator claims to be.
    pub fn region(&self) -> &str {
        &self.shared.config.region
    }

    /// The first accepted key (the generated one when none was configured).
    pub fn access_key(&self) -> &AccessKey {
        &self.shared.config.access_keys[0]
    }

    /// The CA certificate (PEM) clients must trust, when TLS is on.
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_cert_pem.as_str())
    }

    /// Where the CA certificate is, when TLS is on.
    pub fn ca_cert_path(&self) -> Option<&std::path::Path> {
        self.tls.as_ref().map(|t| t.ca_cert_path.as_path())
    }

    /// An [`aws_types::SdkConfig`] that points AWS SDK clients at this emulator: its region, its
    /// first access key, the control-plane `endpoint_url` and an HTTPS client that trusts the
    /// emulator's CA (and nothing else; verification stays on). Hand it to any `aws-sdk-*`
    /// client or to our discovery crate.
    ///
    /// # Errors
    /// Fails only if the CA certificate cannot be loaded into a trust store.
    pub fn sdk_config(&self) -> Result<aws_types::SdkConfig, Error> {
        let http = match self.ca_cert_pem() {
            Some(pem) => crate::sdk_client::https_client_trusting(pem)?,
            None => aws_smithy_http_client::Builder::new().build_http(),
        };
        Ok(aws_types::SdkConfig::builder()
            .behavior_version(
                aws_smithy_runtime_api::client::behavior_version::BehaviorVersion::latest(),
            )
            .region(aws_types::region::Region::new(
                self.shared.config.region.clone(),
            ))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    self.access_key().credentials(),
                ),
            )
            .endpoint_url(self.shared.endpoints.control_plane.clone())
            .http_client(http)
            .build())
    }

    /// Seed what a device's owner sets up once: a `SINGLE_MASTER` channel `name`, a stream
    /// `<name>-stream` with 24 h retention, and media storage ENABLED between them. Returns the
    /// channel ARN. For tests and demos that are about what happens after setup; the control
    /// plane API does the same over the wire.
    ///
    /// # Errors
    /// The service error message, e.g. when the channel or stream name is taken.
    pub fn create_storage_channel(&self, name: &str) -> Result<String, String> {
        let config = &self.shared.config;
        let now = std::time::SystemTime::now();
        let mut registry = self.shared.registry();
        let seed = |registry: &mut Registry| {
            let channel = registry.create_channel(
                &config.region,
                &config.account_id,
                name,
                "SINGLE_MASTER",
                60,
                now,
            )?;
            let stream = registry.create_stream(
                &config.region,
                &config.account_id,
                &format!("{name}-stream"),
                None,
                None,
                None,
                24,
                now,
            )?;
            registry.update_media_storage(
                &channel.arn,
                Some(&stream.arn),
                true,
                config.limits.storage_enabled_channels,
            )?;
            Ok::<_, crate::api_error::ApiError>(channel.arn)
        };
        seed(&mut registry).map_err(|e| e.message)
    }

    /// [`EmulatorHandle::create_storage_channel`], or, when the channel `name` exists already
    /// (kept in a [`EmulatorBuilder::registry_file`] from an earlier run) with media storage
    /// enabled, that channel. Returns the channel ARN.
    ///
    /// # Errors
    /// The service error message; a channel `name` without media storage enabled is one.
    pub fn create_or_reuse_storage_channel(&self, name: &str) -> Result<String, String> {
        {
            let registry = self.shared.registry();
            if let Ok(channel) = registry.channel(ResourceRef::Name(name)) {
                return match channel.storage_stream() {
                    Some(_) => Ok(channel.arn.clone()),
                    None => Err(format!(
                        "the channel {name} exists without media storage enabled"
                    )),
                };
            }
        }
        self.create_storage_channel(name)
    }

    /// The name of the Kinesis video stream that `channel` (a name or ARN) stores its media in,
    /// when media storage is enabled for it.
    pub fn storage_stream_name(&self, channel: &str) -> Option<String> {
        let registry = self.shared.registry();
        let stream_arn = registry
            .channel(ResourceRef::name_or_arn(channel))
            .ok()?
            .storage_stream()?
            .to_owned();
        registry
            .stream(ResourceRef::Arn(&stream_arn))
            .ok()
            .map(|s| s.name.clone())
    }

    /// The player page of `stream` (`/_emulator/v1/player.html`): any browser plays the
    /// stream there (LIVE over HLS; `&protocol=DASH`, `&mode=ON_DEMAND` change it) beside its
    /// newest fragments and GetImages thumbnails. A browser that does not trust the emulator's
    /// CA shows a warning first.
    pub fn player_page_url(&self, stream: &str) -> String {
        format!(
            "{}{}/player.html?stream={}",
            self.shared.endpoints.control_plane,
            crate::inspect::PREFIX,
            crate::sigv4::uri_encode(stream)
        )
    }

    /// A LIVE HLS streaming session URL of `stream`, as `GetHLSStreamingSessionURL` answers it,
    /// valid for 12 hours (the longest `Expires`): ffplay, hls.js, and VLC or Safari once they
    /// trust the emulator's CA, play it. Blocking: it reads the stream's index from disk.
    ///
    /// # Errors
    /// The service's error message: no such stream, no media stored in the last 30 s.
    pub fn live_hls_url(&self, stream: &str) -> Result<String, String> {
        crate::player::session_url(
            &self.shared,
            stream,
            crate::playback::token::Protocol::Hls,
            "LIVE",
        )
        .map_err(|e| format!("{}: {}", e.code, e.message))
    }

    /// Arm or fire a fault, exactly as `POST /_emulator/v1/faults` with this JSON body does
    /// (see [`crate::inspect`]), and return the reply document.
    ///
    /// ```no_run
    /// # async fn run(emulator: kvs_emulator::EmulatorHandle) {
    /// emulator
    ///     .inject_fault(serde_json::json!({ "channel": "front-door", "fault": "GO_AWAY" }))
    ///     .expect("the channel exists");
    /// # }
    /// ```
    ///
    /// # Errors
    /// The inspection API's refusal message (unknown channel or fault kind, missing field).
    pub fn inject_fault(&self, body: serde_json::Value) -> Result<serde_json::Value, String> {
        crate::inspect::apply_fault(&self.shared, &body).map_err(|(_, message)| message)
    }

    /// Impair the storage-peer paths of `channel` (a name or ARN) until
    /// [`EmulatorHandle::clear_impairment`]: what the storage peer's UDP socket sends
    /// (`FromStoragePeer`), receives (`ToStoragePeer`) or both is lost, delayed, reordered,
    /// duplicated or capped as `impairment` says, with randomness from `seed`. The same as the
    /// fault API's `IMPAIR`; sessions running now are impaired from their next datagram.
    ///
    /// ```no_run
    /// # fn run(emulator: kvs_emulator::EmulatorHandle) {
    /// use kvs_emulator::{Direction, Impairment};
    /// let lossy = Impairment { loss: 0.05, delay_ms: 30, jitter_ms: 20, ..Impairment::default() };
    /// emulator.impair("front-door", lossy, Direction::Both, 1).expect("a channel");
    /// emulator.clear_impairment("front-door").expect("a channel");
    /// # }
    /// ```
    ///
    /// # Errors
    /// No such channel, or a value out of range.
    pub fn impair(
        &self,
        channel: &str,
        impairment: Impairment,
        direction: Direction,
        seed: u64,
    ) -> Result<(), String> {
        let mut body = serde_json::to_value(impairment).map_err(|e| e.to_string())?;
        if let Some(fields) = body.as_object_mut() {
            fields.insert("channel".into(), channel.into());
            fields.insert("fault".into(), "IMPAIR".into());
            fields.insert(
                "direction".into(),
                serde_json::to_value(direction).map_err(|e| e.to_string())?,
            );
            fields.insert("seed".into(), seed.into());
        }
        self.inject_fault(body).map(|_| ())
    }

    /// Stop impairing the storage-peer paths of `channel` (a name or ARN); datagrams already
    /// delayed still arrive.
    ///
    /// # Errors
    /// No such channel.
    pub fn clear_impairment(&self, channel: &str) -> Result<(), String> {
        self.inject_fault(serde_json::json!({ "channel": channel, "fault": "CLEAR_IMPAIRMENT" }))
            .map(|_| ())
    }

    /// How many times each AWS operation was called, by its path name
    /// (`getSignalingChannelEndpoint`, `getIceServerConfig`, `joinStorageSession`, ...).
    pub fn calls(&self) -> std::collections::BTreeMap<String, u64> {
        self.shared
            .calls
            .snapshot()
            .into_iter()
            .map(|(op, n)| (op.to_owned(), n))
            .collect()
    }

    /// Live signaling connections, as `GET /_emulator/v1/connections` lists them.
    pub fn connections(&self) -> serde_json::Value {
        serde_json::json!(self.shared.hub.connections())
    }

    /// The channels (ARNs) whose storage sessions an external peer plays, registered through
    /// `wss://<endpoint>/_emulator/v1/storage-peer?channel=<name or ARN>` (see the `storage::external` module docs).
    pub fn external_storage_peers(&self) -> Vec<String> {
        self.shared.external_peers.channels()
    }

    /// Storage sessions: the live ones, then the last
    /// [`Limits::ended_sessions_kept`](crate::Limits::ended_sessions_kept) that ended (100 by
    /// default), oldest first.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.shared.sessions.snapshot()
    }

    /// The one JSON line `kvs-emulator serve` prints: endpoint, region, CA and test credentials.
    pub fn startup_info(&self) -> serde_json::Value {
        let key = self.access_key();
        serde_json::json!({
            "endpoint": self.shared.endpoints.control_plane,
            "region": self.shared.config.region,
            "caCertPath": self.ca_cert_path().map(|p| p.display().to_string()),
            "accessKeyId": key.access_key_id,
            "secretAccessKey": key.secret_access_key,
            "sessionToken": key.session_token,
            "inspectionUrl": format!("{}{}", self.shared.endpoints.control_plane, crate::inspect::PREFIX),
            "playerPage": format!("{}{}/player.html", self.shared.endpoints.control_plane, crate::inspect::PREFIX),
            "recordingsDir": self.shared.config.recordings_dir.display().to_string(),
            "turnUris": self.shared.turn.uris(),
            "iotCredentials": self.shared.endpoints.iot_credentials,
            "roleAliases": self.shared.config.role_aliases.iter()
                .map(|(name, d)| (name.clone(), d.as_secs()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        })
    }

    /// A device identity for `thing`, as AWS IoT's `create-keys-and-certificate` followed by
    /// `attach-thing-principal` gives: a certificate (PEM) issued by the emulator's CA and a
    /// fresh private key (PEM, PKCS#8). The certificate is attached to `thing` (its subject's
    /// common name is the thing name) and gets credentials from
    /// [`Endpoints::iot_credentials`]. Fails with plain HTTP (no CA) or a thing name outside
    /// AWS's `[a-zA-Z0-9_:-]{1,128}`.
    pub fn issue_device_certificate(&self, thing: &str) -> Result<(String, String), Error> {
        let tls = self.tls.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                "device certificates need the emulator's CA: it serves plain HTTP",
            )
        })?;
        tls.issue_device_certificate(thing)
    }

    /// Stop accepting, close sockets, end every storage session and wait until recordings are
    /// finalized.
    ///
    /// Returns where the finalized recordings are; with [`EmulatorBuilder::temporary`] they stay
    /// until the returned [`Stopped`] is dropped.
    pub async fn shutdown(mut self) -> Stopped {
        self.shared.shutdown.cancel();
        while self.servers.join_next().await.is_some() {}
        self.shared.peers.close();
        self.shared.peers.wait().await;
        tracing::info!("kvs-emulator stopped");
        Stopped {
            recordings_dir: self.shared.config.recordings_dir.clone(),
            streams_dir: self.shared.config.streams_dir.clone(),
            _temporary_dir: self._temporary_dir.take(),
        }
    }
}

/// A stopped emulator's finalized recordings (see [`EmulatorHandle::shutdown`]).
#[derive(Debug)]
pub struct Stopped {
    recordings_dir: PathBuf,
    streams_dir: PathBuf,
    _temporary_dir: Option<tempfile::TempDir>,
}

impl Stopped {
    /// Where the recordings are (`<dir>/<channel>/session-<id>-<role>.mkv`). With
    /// [`EmulatorBuilder::temporary`] the directory is removed when `self` is dropped.
    pub fn recordings_dir(&self) -> &std::path::Path {
        &self.recordings_dir
    }

    /// Where the streams keep their fragments (`<dir>/<stream>/fragments/<number>.mkv`).
    pub fn streams_dir(&self) -> &std::path::Path {
        &self.streams_dir
    }

    /// What GetClip returns for the newest fragments `stream` kept (as many as one clip holds:
    /// 200, 100 MB): a fragmented MP4 of H.264 and, when the stream keeps AAC, AAC. `None` when
    /// the stream kept nothing.
    ///
    /// # Errors
    /// When the stream's fragments cannot be read.
    pub fn clip(&self, stream: &str) -> std::io::Result<Option<Vec<u8>>> {
        crate::store::clip::newest_clip(&self.streams_dir, stream)
    }

    /// The server timestamps of the fragments `stream` kept, oldest first (what ListFragments
    /// reports as `ServerTimestamp`; empty when the stream kept nothing).
    ///
    /// # Errors
    /// When the stream's index cannot be read.
    pub fn fragment_server_timestamps(
        &self,
        stream: &str,
    ) -> std::io::Result<Vec<std::time::SystemTime>> {
        let stores = crate::store::StreamStores::new(self.streams_dir.clone(), u64::MAX);
        if !stores.has_data(stream) {
            return Ok(Vec::new());
        }
        Ok(stores
            .fragments(stream)?
            .iter()
            .map(|f| {
                let ms = u64::try_from(f.meta.server_timestamp_ms).unwrap_or(0);
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)
            })
            .collect())
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}
