//! The registry of external storage peers (see `storage::external`, which serves them): which
//! channel has one, and the queue its joins are handed over on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::link::{PeerInput, Role};
use crate::sessions::SessionHandle;

/// A join handed to an external peer.
pub(crate) struct Join {
    pub(crate) handle: Arc<SessionHandle>,
    pub(crate) role: Role,
    pub(crate) inbound: mpsc::Receiver<PeerInput>,
}

/// The registered external peers, by channel ARN (with a registration number, so that a peer
/// that leaves removes only its own registration).
#[derive(Default)]
pub(crate) struct ExternalPeers {
    slots: Mutex<HashMap<String, (u64, mpsc::Sender<Join>)>>,
    next: std::sync::atomic::AtomicU64,
}

impl ExternalPeers {
    /// Hand a join to the channel's external peer; gives it back when there is none.
    pub(crate) fn take(&self, channel_arn: &str, join: Join) -> Result<(), Join> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.get(channel_arn) {
            Some((_, tx)) => tx.try_send(join).map_err(|e| e.into_inner()),
            None => Err(join),
        }
    }

    /// The channels that have an external peer now.
    pub(crate) fn channels(&self) -> Vec<String> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut channels: Vec<String> = slots.keys().cloned().collect();
        channels.sort();
        channels
    }

    pub(crate) fn register(&self, channel_arn: &str) -> (u64, mpsc::Receiver<Join>) {
        let (tx, rx) = mpsc::channel(4);
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A newer registration replaces an older one (its joins stop coming).
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(channel_arn.to_owned(), (id, tx));
        (id, rx)
    }

    pub(crate) fn unregister(&self, channel_arn: &str, id: u64) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.get(channel_arn).is_some_and(|(slot, _)| *slot == id) {
            slots.remove(channel_arn);
        }
    }
}
