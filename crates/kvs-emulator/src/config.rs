//! Everything a user can tune: region, account, credentials, TLS, timings and limits.
//!
//! Defaults follow the real service (protocol notes §3.6, §4, §8); tests shorten the timings.

use std::path::PathBuf;
use std::time::Duration;

use crate::throttle::Throttling;

/// An access key the emulator accepts.
#[derive(Clone)]
pub struct AccessKey {
    /// The access key id, e.g. `AKIAEMULATOR...`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token that requests signed with this key must carry (and sign), if any.
    pub session_token: Option<String>,
}

impl AccessKey {
    /// A key pair without a session token.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// The same key, with a session token that requests must carry.
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    /// A fresh random key pair, printed at start when the user configures none.
    pub fn random() -> Self {
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let id: String = (0..13)
            .map(|_| UPPER[rand::random_range(0..UPPER.len())] as char)
            .collect();
        let secret: String = (0..40)
            .map(|_| SECRET[rand::random_range(0..SECRET.len())] as char)
            .collect();
        Self::new(format!("AKIAEMU{id}"), secret)
    }
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret or the token.
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

/// How the emulator's listeners speak.
#[derive(Debug, Clone)]
pub enum TlsMode {
    /// HTTPS and WSS with a CA kept in this directory: created on first start, reused after.
    GeneratedCa {
        /// Directory holding `ca.pem` and `ca.key`.
        dir: PathBuf,
    },
    /// HTTPS and WSS with a CA the user gives (PEM certificate and PEM private key).
    ProvidedCa {
        /// The CA certificate.
        cert_pem: PathBuf,
        /// The CA private key.
        key_pem: PathBuf,
    },
    /// Plain HTTP and WS. Only for clients that cannot trust a CA; never the default.
    Plain,
}

/// Timings of the emulated service.
#[derive(Debug, Clone)]
pub struct Timings {
    /// A signaling socket without frames for this long is closed (AWS: 10 minutes).
    pub signaling_idle_timeout: Duration,
    /// A signaling socket is closed after this long in any case (AWS: 1 hour).
    pub signaling_max_lifetime: Duration,
    /// After GO_AWAY the socket is closed after this grace (AWS: 1 minute).
    pub go_away_grace: Duration,
    /// Delay between an accepted JoinStorageSession and the storage peer's offer.
    pub offer_delay: Duration,
    /// A storage session ends after this long (AWS: 1 hour).
    pub storage_session_max_duration: Duration,
    /// A storage peer whose answer has not arrived after this long gives up.
    pub answer_timeout: Duration,
    /// A storage peer that cannot connect its ICE and DTLS in this long gives up.
    pub connect_timeout: Duration,
    /// A connected storage session whose client has answered none of the storage peer's ICE
    /// connectivity checks (sent every few seconds) for this long ends: the client is gone
    /// (`kill -9`, a lost network). RFC 7675 §5.1: consent expires after 30 s.
    pub consent_timeout: Duration,
    /// A viewer may stay in a storage session without a master for this long (AWS: 3 minutes).
    pub viewer_without_master: Duration,
    /// A viewer's slot stays taken this long after it left (AWS: 1 minute).
    pub viewer_slot_hold: Duration,
    /// Largest accepted clock skew of SigV4 requests (AWS: 5 minutes).
    pub max_clock_skew: Duration,
    /// How long GetIceServerConfig's TURN credentials are valid (`Ttl`; AWS: 300 s). Shorter
    /// values let tests watch credentials expire mid-session.
    pub ice_server_ttl: Duration,
    /// A GetMedia response that has had no fragment to send for this long ends (AWS: "the
    /// reading of the HTTP response payload will timeout after 3 seconds if there are no
    /// ingested fragments available"); the reader resumes with the last continuation token.
    pub get_media_idle_timeout: Duration,
    /// A GetMedia response ends after this long in any case, and the reader resumes with the
    /// last continuation token. AWS publishes no figure; the emulator's default is 1 hour.
    pub get_media_max_duration: Duration,
    /// LIVE HLS and DASH sessions need a fragment that ended this recently (AWS: 30 s): an
    /// older newest fragment makes `GetHLSStreamingSessionURL` and `GetDASHStreamingSessionURL`
    /// a `ResourceNotFoundException`. Tests
    /// shorten it to see the refusal without waiting half a minute.
    pub live_playback_recent_media: Duration,
    /// The shortest `Expires` that `GetHLSStreamingSessionURL` and
    /// `GetDASHStreamingSessionURL` accept (AWS: 300 s, also the default when absent).
    /// Emulator only: tests lower it to watch a session's token expire. Whole seconds from 1
    /// to 300 count; a value outside is taken as the nearest of them.
    pub min_playback_session_expires: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            signaling_idle_timeout: Duration::from_secs(600),
            signaling_max_lifetime: Duration::from_secs(3600),
            go_away_grace: Duration::from_secs(60),
            offer_delay: Duration::from_millis(200),
            storage_session_max_duration: Duration::from_secs(3600),
            answer_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            consent_timeout: Duration::from_secs(30),
            viewer_without_master: Duration::from_secs(180),
            viewer_slot_hold: Duration::from_secs(60),
            max_clock_skew: Duration::from_secs(300),
            ice_server_ttl: Duration::from_secs(300),
            get_media_idle_timeout: Duration::from_secs(3),
            get_media_max_duration: Duration::from_secs(3600),
            live_playback_recent_media: Duration::from_secs(30),
            min_playback_session_expires: Duration::from_secs(300),
        }
    }
}

/// Limits of the emulated service and of the emulator's own buffers.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Viewer sockets per channel (AWS: 10).
    pub viewers_per_channel: usize,
    /// Viewers in one storage session (AWS: 3).
    pub viewers_per_storage_session: usize,
    /// Channels with media storage enabled per account (AWS: 100).
    pub storage_enabled_channels: usize,
    /// Largest `messagePayload`, in characters (AWS: 10 000).
    pub max_message_payload: usize,
    /// SDP offers and answers a socket may send per second (AWS: 5).
    pub sdp_messages_per_second: u32,
    /// ICE candidates a socket may send per second (AWS: 20).
    pub ice_candidates_per_second: u32,
    /// Frames waiting to be written to one signaling socket; more are dropped and counted.
    pub signaling_outbound_queue: usize,
    /// Messages waiting for one storage peer; more are dropped and counted.
    pub storage_peer_inbound_queue: usize,
    /// Largest accepted HTTP request body, in bytes.
    pub max_request_body: usize,
    /// Connections per listener. When every slot is taken, a new connection takes the slot of
    /// one that has not sent a complete request head (a new one, or a kept-alive one between
    /// requests; silent ones first, the one that has waited longest first), which is closed:
    /// clients that connect and say nothing never shut out one that sends a request. Only
    /// connections serving requests make new ones wait.
    pub max_connections: usize,
    /// How long a TLS handshake may take.
    pub handshake_timeout: std::time::Duration,
    /// How long a request head may take to arrive, and how long a kept-alive connection may
    /// stay idle between requests.
    pub request_head_timeout: std::time::Duration,
    /// How long a request body may take to arrive; a slower one gets 408. Bodies still
    /// arriving after 200 ms may hold at most half the connection slots (503 beyond).
    pub body_read_timeout: std::time::Duration,
    /// Largest media frame the storage peer records; larger ones are dropped and counted.
    pub max_media_frame: usize,
    /// Bytes one stream's store may keep (default 1 GiB); past it the oldest fragments are
    /// removed, as retention would, so a long test cannot fill the disk.
    pub max_stream_store_bytes: u64,
    /// How many ended storage sessions the inspection API (`GET sessions`,
    /// [`EmulatorHandle::sessions`](crate::EmulatorHandle::sessions)) keeps, besides the live
    /// ones: the most recent; older ones are dropped (their recordings stay on disk).
    pub ended_sessions_kept: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            viewers_per_channel: 10,
            viewers_per_storage_session: 3,
            storage_enabled_channels: 100,
            max_message_payload: 10_000,
            sdp_messages_per_second: 5,
            ice_candidates_per_second: 20,
            signaling_outbound_queue: 256,
            storage_peer_inbound_queue: 64,
            max_request_body: 1024 * 1024,
            max_connections: 1024,
            handshake_timeout: std::time::Duration::from_secs(5),
            request_head_timeout: std::time::Duration::from_secs(10),
            body_read_timeout: std::time::Duration::from_secs(30),
            max_media_frame: 4 * 1024 * 1024,
            max_stream_store_bytes: 1 << 30,
            ended_sessions_kept: 100,
        }
    }
}

/// The whole configuration of one emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// AWS region the emulator claims to be (default `us-west-2`).
    pub region: String,
    /// Account id used in ARNs (default `111122223333`).
    pub account_id: String,
    /// Accepted access keys. Empty means one random key, generated at start.
    pub access_keys: Vec<AccessKey>,
    /// How listeners speak (default: HTTPS with a CA generated in `./kvs-emulator-data/`).
    pub tls: TlsMode,
    /// Where storage sessions are recorded, one Matroska file per session.
    pub recordings_dir: PathBuf,
    /// Where each Kinesis video stream keeps its fragments (`crate::store`), one directory per
    /// stream; a restart in the same directory finds them again.
    pub streams_dir: PathBuf,
    /// Where the channels and streams are kept across restarts (`kvs-emulator serve` uses
    /// `<data dir>/registry.json`); `None` (the default): in memory only, gone with the
    /// emulator.
    pub registry_file: Option<PathBuf>,
    /// Timings.
    pub timings: Timings,
    /// Limits.
    pub limits: Limits,
    /// Accept a viewer `clientId` on `/joinStorageSession`, as the C SDK sends it.
    pub accept_viewer_on_join_storage_session: bool,
    /// The TURN server GetIceServerConfig hands out (default: an embedded one on any free port).
    pub turn: TurnMode,
    /// Per-API request rates (default: the published AWS quotas).
    pub throttling: Throttling,
    /// The IoT credentials endpoint's role aliases and how long their credentials are valid
    /// (default: [`DEFAULT_ROLE_ALIAS`](crate::DEFAULT_ROLE_ALIAS), 3600 s). Unlike AWS (900 s
    /// to 12 h), any duration of at least 1 s is accepted, so tests can watch credentials expire.
    pub role_aliases: std::collections::BTreeMap<String, Duration>,
    /// Where the player page gets its player libraries (default: the npm registry).
    pub player_scripts: crate::PlayerScripts,
}

/// Which TURN server GetIceServerConfig returns. Its credentials are always time-limited TURN
/// REST API credentials (draft-uberti-rtcweb-turn-rest, the scheme AWS documents): the username
/// is `<expiry unix seconds>:<user>` and the password `base64(HMAC-SHA1(secret, username))`,
/// valid for the 300 s TTL the response carries.
#[derive(Clone, PartialEq, Eq)]
pub enum TurnMode {
    /// Serve TURN over UDP on the bind address, on this port (0: any free port), with relay
    /// addresses on the bind address too. Clients that force relay-only ICE connect through it.
    Embedded {
        /// UDP port of the TURN listener.
        port: u16,
    },
    /// Point clients at a TURN server run elsewhere that checks TURN REST API credentials with
    /// this shared secret (coturn: `use-auth-secret` + `static-auth-secret`).
    External {
        /// The URIs to return (`turn:host:port?transport=udp`, `turns:...`), at most 4.
        uris: Vec<String>,
        /// The secret shared with that server.
        shared_secret: String,
    },
    /// No TURN server: a syntactically valid entry pointing at `127.0.0.1:3478`, for clients
    /// that only need the list to be non-empty (loopback ICE works without a relay).
    Placeholder,
}

impl std::fmt::Debug for TurnMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded { port } => f.debug_struct("Embedded").field("port", port).finish(),
            Self::External { uris, .. } => f
                .debug_struct("External")
                .field("uris", uris)
                .field("shared_secret", &"** redacted **")
                .finish(),
            Self::Placeholder => f.write_str("Placeholder"),
        }
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        let data = PathBuf::from("kvs-emulator-data");
        Self {
            region: "us-west-2".to_owned(),
            account_id: "111122223333".to_owned(),
            access_keys: Vec::new(),
            tls: TlsMode::GeneratedCa { dir: data.clone() },
            recordings_dir: data.join("recordings"),
            streams_dir: data.join("streams"),
            registry_file: None,
            timings: Timings::default(),
            limits: Limits::default(),
            accept_viewer_on_join_storage_session: true,
            turn: TurnMode::Embedded { port: 0 },
            throttling: Throttling::aws_defaults(),
            role_aliases: std::collections::BTreeMap::from([(
                crate::iot::DEFAULT_ROLE_ALIAS.to_owned(),
                crate::iot::DEFAULT_CREDENTIAL_DURATION,
            )]),
            player_scripts: crate::PlayerScripts::default(),
        }
    }
}
