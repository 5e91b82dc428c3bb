//! What the signaling side and the storage side of the emulator hand each other: a signaling
//! connection (its role and outbound queue) and the signaling messages a storage peer receives.
//! Both sides import this module; neither imports the other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::wire::Action;

/// A connection's role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Role {
    Master,
    Viewer(String),
}

impl Role {
    pub(crate) fn client_id(&self) -> Option<&str> {
        match self {
            Role::Master => None,
            Role::Viewer(id) => Some(id),
        }
    }
}

/// What the socket task is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outbound {
    /// Write this text frame.
    Text(String),
    /// Send GO_AWAY, then close after the grace period.
    GoAway,
    /// Close the socket now, with this reason.
    Close(String),
    /// Stop reading and writing (no pong either) until closed: a half-open connection.
    Freeze,
}

/// One signaling socket as the rest of the emulator sees it.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) id: u64,
    pub(crate) channel_arn: String,
    pub(crate) role: Role,
    tx: mpsc::Sender<Outbound>,
    dropped: AtomicU64,
}

impl Connection {
    /// A connection whose frames go to `tx` (the socket task holds the receiver).
    pub(crate) fn new(id: u64, channel_arn: &str, role: Role, tx: mpsc::Sender<Outbound>) -> Self {
        Self {
            id,
            channel_arn: channel_arn.to_owned(),
            role,
            tx,
            dropped: AtomicU64::new(0),
        }
    }

    /// Queue a frame; false (and counted) when the queue is full or the socket is gone.
    pub(crate) fn send(&self, frame: Outbound) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    connection = self.id,
                    dropped = n,
                    "signaling outbound queue full; frame dropped"
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Frames dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A signaling message for a storage peer.
#[derive(Debug)]
pub(crate) enum PeerInput {
    Signal {
        action: Action,
        payload: String,
        correlation_id: Option<String>,
        from: Arc<Connection>,
    },
}
