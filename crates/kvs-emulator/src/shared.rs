//! State shared by every listener and task of one emulator.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::EmulatorConfig;
use crate::faults::Faults;
use crate::hub::Hub;
use crate::registry::Registry;
use crate::relay::Relays;
use crate::sessions::Sessions;
use crate::sigv4::Expectation;
use crate::throttle::Throttle;
use crate::turn_server::TurnService;

/// The base URLs of the emulated endpoints.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// Control plane (`kinesisvideo`), also the home of the `/_emulator/` inspection API.
    pub control_plane: String,
    /// Channel HTTPS endpoint: the signaling REST API.
    pub https: String,
    /// Channel WSS endpoint: the signaling WebSocket.
    pub wss: String,
    /// Channel WEBRTC endpoint: the storage API.
    pub webrtc: String,
    /// The IoT credentials endpoint, `host:port` as AWS gives it (`aws iot describe-endpoint
    /// --endpoint-type iot:CredentialProvider`, no scheme); `None` with plain HTTP.
    pub iot_credentials: Option<String>,
}

pub(crate) struct Shared {
    pub config: EmulatorConfig,
    pub endpoints: Endpoints,
    pub registry: Mutex<Registry>,
    pub hub: Hub,
    pub sessions: Sessions,
    /// Media relays between a channel's master and viewers.
    pub relays: Relays,
    pub faults: Faults,
    /// Per-API rate limits.
    pub throttle: Throttle,
    /// The TURN server GetIceServerConfig returns.
    pub turn: TurnService,
    pub shutdown: CancellationToken,
    /// Storage-peer tasks; shutdown waits for them so recordings are finalized.
    pub peers: TaskTracker,
    /// How many times each AWS operation was called.
    pub calls: CallCounts,
    /// Bounds on reading request bodies (all HTTP listeners).
    pub body_reads: crate::http_util::BodyReads,
    /// Storage peers outside the emulator, by channel.
    pub external_peers: crate::external_peers::ExternalPeers,
    /// Log lines the lossy log writer dropped, when the emulator was told its counter.
    pub log_drops: Option<tracing_appender::non_blocking::ErrorCounter>,
    /// Every Kinesis video stream's fragments.
    pub stores: crate::store::StreamStores,
    /// Temporary keys the IoT credentials endpoint handed out.
    pub temporary_keys: crate::temporary_keys::TemporaryKeys,
    /// Signs and checks HLS session tokens.
    pub playback_key: crate::playback::token::TokenKey,
    /// The player page's libraries, once fetched.
    pub player_scripts: crate::player::scripts::ScriptCache,
}

/// Calls per AWS operation (known operation names only, so the map stays small), counted once
/// the request reached a known operation, whether it then succeeded or not. Tests use it to see
/// what a client really sent (e.g. that a cache saved a lookup).
#[derive(Default)]
pub(crate) struct CallCounts(Mutex<BTreeMap<&'static str, u64>>);

impl CallCounts {
    pub(crate) fn record(&self, operation: &'static str) {
        let mut calls = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *calls.entry(operation).or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Shared {
    pub(crate) fn expectation(&self, now: SystemTime) -> Expectation<'_> {
        Expectation {
            keys: &self.config.access_keys,
            temporary: Some(&self.temporary_keys),
            region: &self.config.region,
            service: "kinesisvideo",
            now,
            max_skew: self.config.timings.max_clock_skew,
        }
    }

    pub(crate) fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding the lock is a bug; the data is still consistent enough to serve.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}
