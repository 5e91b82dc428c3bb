//! What a caller holds: the connection (events and state), senders, and the event types.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kvs_webrtc_discovery::{Discovery, IceServers};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::{Error, ErrorKind};
use crate::message::{Action, IceCandidate, Outgoing, SignalingMessage, StatusResponse};

/// The socket's state. Every change is also delivered as [`Event::StateChanged`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Open. `reconnects` counts the reconnections so far; after each one a storage client
    /// must call JoinStorageSession again to get a new offer.
    Connected {
        /// Reconnections since [`ConnectFluentBuilder::send`](crate::ConnectFluentBuilder::send).
        reconnects: u32,
    },
    /// Waiting `delay`, then trying to connect again.
    Reconnecting {
        /// 1 for the first attempt after a drop.
        attempt: u32,
        /// The wait before this attempt.
        delay: Duration,
        /// Why the previous socket ended or the previous attempt failed.
        reason: String,
    },
    /// Closed for good: by [`SignalingConnection::close`], by dropping the connection, or
    /// because reconnecting gave up.
    Closed {
        /// Why.
        reason: String,
    },
}

/// The service rejected a message this connection sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The correlation id [`SignalingSender::send`] returned.
    pub correlation_id: String,
    /// What was rejected, when the message is still remembered (the last 256 are).
    pub action: Option<Action>,
    /// The service's STATUS_RESPONSE.
    pub status: StatusResponse,
}

/// Something that happened on the connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The state changed.
    StateChanged(ConnectionState),
    /// A message arrived.
    Message(SignalingMessage),
    /// A sent message was rejected (STATUS_RESPONSE).
    Rejected(Rejection),
    /// A STATUS_RESPONSE that names no message this connection sent.
    StatusResponse(StatusResponse),
    /// The service asked us to leave (GO_AWAY); the client reconnects now.
    GoAway,
    /// The relay servers are going away (RECONNECT_ICE_SERVER); the client refreshes the ICE
    /// servers and reconnects.
    ReconnectIceServer,
    /// New ICE servers after RECONNECT_ICE_SERVER; give them to the peer connection.
    IceServersRefreshed(IceServers),
    /// Refreshing the ICE servers failed; the old ones may soon stop working.
    IceServersRefreshFailed(kvs_webrtc_discovery::Error),
    /// A queued message was not sent because the socket dropped first.
    SendFailed {
        /// Its correlation id.
        correlation_id: String,
        /// What it was.
        action: Action,
    },
    /// Received messages were dropped because events were not read: the event queue was full
    /// and the background task already held its maximum (`held_messages`) of further messages. The socket
    /// is read regardless (so a slow reader never causes a keep-alive reconnect); this is the
    /// only way messages are lost, and it is counted here.
    MessagesLost {
        /// How many messages were dropped since the last report.
        count: u64,
    },
    /// A frame that could not be understood was ignored.
    UnknownFrame {
        /// Why it was not understood.
        reason: String,
    },
}

pub(crate) enum Command {
    Send {
        message: Outgoing,
        correlation_id: String,
    },
    Close,
}

/// Sends messages on a connection; cheap to clone and usable from any task.
#[derive(Debug, Clone)]
pub struct SignalingSender {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<ConnectionState>,
    next_id: Arc<AtomicU64>,
    id_prefix: Arc<str>,
}

impl SignalingSender {
    /// Queue `message` for sending and return its correlation id. Messages leave in order,
    /// paced to the service's rates; if the service rejects one, [`Event::Rejected`] carries
    /// this id. Waits while the outbound queue is full.
    ///
    /// # Errors
    /// [`ErrorKind::NotConnected`] while reconnecting (a message for the old socket's peer
    /// would be stale), [`ErrorKind::Closed`] after the connection ended.
    pub async fn send(&self, message: Outgoing) -> Result<String, Error> {
        match &*self.state.borrow() {
            ConnectionState::Connected { .. } => {}
            ConnectionState::Closed { reason } => {
                return Err(Error::new(
                    ErrorKind::Closed,
                    format!("the signaling connection is closed ({reason})"),
                ))
            }
            ConnectionState::Reconnecting { .. } => {
                return Err(Error::new(
                    ErrorKind::NotConnected,
                    "the signaling socket is reconnecting; send again after it is connected",
                ))
            }
        }
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let correlation_id = format!("{}_{n}", self.id_prefix);
        self.commands
            .send(Command::Send {
                message,
                correlation_id: correlation_id.clone(),
            })
            .await
            .map_err(|_| Error::new(ErrorKind::Closed, "the signaling connection is closed"))?;
        Ok(correlation_id)
    }

    /// Send an SDP answer.
    ///
    /// # Errors
    /// [`ErrorKind::MessageTooLarge`], or as [`SignalingSender::send`].
    pub async fn send_answer(&self, sdp: impl Into<String>) -> Result<String, Error> {
        self.send(Outgoing::answer(sdp)?).await
    }

    /// Send an ICE candidate.
    ///
    /// # Errors
    /// [`ErrorKind::MessageTooLarge`], or as [`SignalingSender::send`].
    pub async fn send_ice_candidate(&self, candidate: &IceCandidate) -> Result<String, Error> {
        self.send(Outgoing::ice_candidate(candidate)?).await
    }
}

/// An open signaling connection that reconnects by itself. Read its events with
/// [`next_event`](SignalingConnection::next_event) promptly. Backpressure: the socket is always
/// read (the keep-alive measures the socket, not the reader); events wait in the bounded event
/// queue, then up to `held_messages` (default 4096) more received messages wait in the background task, across
/// reconnects; beyond that, messages are dropped and reported as [`Event::MessagesLost`].
/// Dropping the connection closes the socket.
#[derive(Debug)]
pub struct SignalingConnection {
    pub(crate) sender: SignalingSender,
    pub(crate) events: mpsc::Receiver<Event>,
    pub(crate) discovery: Discovery,
    pub(crate) task: Option<JoinHandle<()>>,
}

impl SignalingConnection {
    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        state: watch::Receiver<ConnectionState>,
        events: mpsc::Receiver<Event>,
        discovery: Discovery,
        task: JoinHandle<()>,
        id_prefix: String,
    ) -> Self {
        Self {
            sender: SignalingSender {
                commands,
                state,
                next_id: Arc::new(AtomicU64::new(1)),
                id_prefix: id_prefix.into(),
            },
            events,
            discovery,
            task: Some(task),
        }
    }

    /// A sender for this connection.
    pub fn sender(&self) -> SignalingSender {
        self.sender.clone()
    }

    /// The next event; `None` once the connection is closed and every event was read.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// The current state.
    pub fn state(&self) -> ConnectionState {
        self.sender.state.borrow().clone()
    }

    /// The discovery the first connection used (channel ARN, endpoints, storage client).
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// Close the socket and wait until the background task has ended.
    pub async fn close(mut self) {
        let _ = self.sender.commands.send(Command::Close).await;
        // Unread events must not block the task's last ones.
        self.events.close();
        while self.events.recv().await.is_some() {}
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<SignalingConnection>();
        check::<SignalingSender>();
        check::<Event>();
    }
}
