//! State shared by every listener and task of one emulator.

use std::sync::Mutex;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::EmulatorConfig;
use crate::faults::Faults;
use crate::registry::Registry;
use crate::signaling::hub::Hub;
use crate::sigv4::Expectation;
use crate::storage::Sessions;

/// The base URLs of the emulated endpoints.
#[derive(Debug, Clone, serde::Serialize)]
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
}

pub(crate) struct Shared {
    pub config: EmulatorConfig,
    pub endpoints: Endpoints,
    pub registry: Mutex<Registry>,
    pub hub: Hub,
    pub sessions: Sessions,
    pub faults: Faults,
    pub shutdown: CancellationToken,
    /// Storage-peer tasks; shutdown waits for them so recordings are finalized.
    pub peers: TaskTracker,
}

impl Shared {
    pub fn expectation(&self, now: SystemTime) -> Expectation<'_> {
        Expectation {
            keys: &self.config.access_keys,
            region: &self.config.region,
            service: "kinesisvideo",
            now,
            max_skew: self.config.timings.max_clock_skew,
        }
    }

    pub fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding the lock is a bug; the data is still consistent enough to serve.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}
