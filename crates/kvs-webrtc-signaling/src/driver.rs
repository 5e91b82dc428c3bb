//! The background task that owns the socket: reads frames into events, sends queued messages
//! at the service's rates, pings, and reconnects (backoff with jitter, a fresh presigned URL
//! each time) when the socket drops or the service says GO_AWAY or RECONNECT_ICE_SERVER.

use std::collections::VecDeque;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::config::Config;
use crate::connection::{Command, ConnectionState, Event, Rejection};
use crate::error::ErrorKind;
use crate::limits::SendRates;
use crate::message::{parse_incoming, Action, Incoming, Outgoing};
use crate::transport::{self, Socket, Target};

/// How many sent messages are remembered to name the action of a STATUS_RESPONSE.
const REMEMBERED_SENDS: usize = 256;

pub(crate) struct Driver {
    pub(crate) config: Config,
    pub(crate) target: Target,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) state: watch::Sender<ConnectionState>,
}

/// Why a socket's run ended.
enum Ended {
    /// The caller closed or dropped the connection.
    ByCaller,
    /// GO_AWAY: reconnect at once.
    GoAway,
    /// RECONNECT_ICE_SERVER: refresh ICE servers, then reconnect at once.
    ReconnectIceServer,
    /// The socket broke or went silent: reconnect with backoff.
    Dropped(String),
}

struct Queued {
    message: Outgoing,
    correlation_id: String,
}

impl Driver {
    pub(crate) async fn run(mut self, socket: Socket) {
        let mut socket = socket;
        let mut reconnects = 0u32;
        loop {
            let ended = self.serve(&mut socket).await;
            let _ = tokio::time::timeout(self.config.connect_timeout, socket.close(None)).await;
            let (immediate, reason) = match ended {
                Ended::ByCaller => return self.closed("closed by the caller").await,
                Ended::GoAway => (true, "the service sent GO_AWAY".to_owned()),
                Ended::ReconnectIceServer => {
                    self.refresh_ice_servers().await;
                    (true, "the service sent RECONNECT_ICE_SERVER".to_owned())
                }
                Ended::Dropped(reason) => (false, reason),
            };
            tracing::info!(%reason, "signaling socket ended; reconnecting");
            self.fail_queued();
            match self.reconnect(immediate, reason).await {
                Some(new_socket) => {
                    socket = new_socket;
                    reconnects += 1;
                    let connected = ConnectionState::Connected { reconnects };
                    if !self.set_state(connected).await {
                        return;
                    }
                }
                None => return,
            }
        }
    }

    /// Run one socket until it ends.
    async fn serve(&mut self, socket: &mut Socket) -> Ended {
        let mut queue: VecDeque<Queued> = VecDeque::new();
        let mut rates = SendRates::new();
        let mut sent: VecDeque<(String, Action)> = VecDeque::with_capacity(REMEMBERED_SENDS);
        let mut send_at: Option<Instant> = None;
        let mut last_heard = Instant::now();
        let mut next_ping = last_heard + self.config.ping_interval;
        let silence_limit = self.config.ping_interval + self.config.pong_timeout;
        loop {
            let ready = match send_at {
                Some(at) => at,
                None => Instant::now(),
            };
            tokio::select! {
                command = self.commands.recv(), if queue.len() < self.config.outbound_queue => {
                    match command {
                        Some(Command::Send { message, correlation_id }) => {
                            queue.push_back(Queued { message, correlation_id });
                        }
                        Some(Command::Close) | None => return Ended::ByCaller,
                    }
                }
                frame = socket.next() => {
                    last_heard = Instant::now();
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(close))) => {
                            let why = close.map(|c| format!("{} {}", c.code, c.reason)).unwrap_or_default();
                            return Ended::Dropped(format!("the service closed the socket ({why})"));
                        }
                        Some(Ok(Message::Binary(_))) => {
                            if !self.emit(Event::UnknownFrame { reason: "a binary frame".into() }).await {
                                return Ended::ByCaller;
                            }
                            continue;
                        }
                        Some(Ok(_)) => continue, // ping, pong: tungstenite answers pings itself
                        Some(Err(e)) => return Ended::Dropped(format!("the socket failed: {e}")),
                        None => return Ended::Dropped("the socket ended".into()),
                    };
                    let event = match parse_incoming(text.as_str()) {
                        Incoming::Message(message) => Event::Message(message),
                        Incoming::StatusResponse(status) => match status.correlation_id.clone() {
                            Some(id) => {
                                let action = sent.iter().find(|(sent_id, _)| *sent_id == id).map(|(_, a)| *a);
                                Event::Rejected(Rejection { correlation_id: id, action, status })
                            }
                            None => Event::StatusResponse(status),
                        },
                        Incoming::GoAway => {
                            self.emit(Event::GoAway).await;
                            return Ended::GoAway;
                        }
                        Incoming::ReconnectIceServer => {
                            self.emit(Event::ReconnectIceServer).await;
                            return Ended::ReconnectIceServer;
                        }
                        Incoming::Unknown { reason } => {
                            tracing::debug!(%reason, "ignoring a signaling frame");
                            Event::UnknownFrame { reason }
                        }
                    };
                    if !self.emit(event).await {
                        return Ended::ByCaller;
                    }
                }
                () = sleep_until(ready), if !queue.is_empty() => {
                    let Some(head) = queue.front() else { continue };
                    let now = Instant::now();
                    if let Some(later) = rates.take(head.message.action(), now) {
                        send_at = Some(later);
                        continue;
                    }
                    send_at = None;
                    let Some(Queued { message, correlation_id }) = queue.pop_front() else { continue };
                    let frame = message.to_frame(&correlation_id);
                    if let Err(e) = socket.send(Message::text(frame)).await {
                        queue.push_front(Queued { message, correlation_id });
                        self.fail(queue);
                        return Ended::Dropped(format!("sending failed: {e}"));
                    }
                    if sent.len() == REMEMBERED_SENDS {
                        sent.pop_front();
                    }
                    sent.push_back((correlation_id, message.action()));
                }
                () = sleep_until(next_ping) => {
                    if last_heard.elapsed() >= silence_limit {
                        self.fail(queue);
                        return Ended::Dropped(format!("nothing heard for {silence_limit:?} (keep-alive)"));
                    }
                    next_ping = Instant::now() + self.config.ping_interval;
                    if let Err(e) = socket.send(Message::Ping(Default::default())).await {
                        self.fail(queue);
                        return Ended::Dropped(format!("the keep-alive ping failed: {e}"));
                    }
                }
            }
        }
    }

    /// Try to connect until it works, the caller closes, or the attempts run out.
    async fn reconnect(&mut self, immediate: bool, mut reason: String) -> Option<Socket> {
        let mut refresh = false;
        for attempt in 1u32.. {
            if self
                .config
                .max_reconnect_attempts
                .is_some_and(|max| attempt > max)
            {
                self.closed(&format!(
                    "gave up after {} reconnect attempts; last: {reason}",
                    attempt - 1
                ))
                .await;
                return None;
            }
            let delay = if immediate && attempt == 1 {
                std::time::Duration::ZERO
            } else {
                self.config
                    .backoff
                    .delay(attempt - 1, rand::random::<f64>())
            };
            let state = ConnectionState::Reconnecting {
                attempt,
                delay,
                reason: reason.clone(),
            };
            if !self.set_state(state).await {
                return None;
            }
            // Wait, but leave as soon as the caller closes.
            let deadline = Instant::now() + delay;
            loop {
                tokio::select! {
                    () = sleep_until(deadline) => break,
                    command = self.commands.recv() => match command {
                        Some(Command::Send { message, correlation_id }) => {
                            self.emit(Event::SendFailed { correlation_id, action: message.action() }).await;
                        }
                        Some(Command::Close) | None => {
                            self.closed("closed by the caller").await;
                            return None;
                        }
                    },
                }
            }
            match transport::open(&self.config, &self.target, refresh).await {
                Ok((socket, _)) => return Some(socket),
                Err(err) => {
                    tracing::info!(attempt, error = %err, "signaling reconnect failed");
                    // An endpoint that is gone or refuses us may be stale: look it up again.
                    refresh = matches!(
                        err.kind(),
                        ErrorKind::ChannelNotFound | ErrorKind::Network | ErrorKind::AccessDenied
                    );
                    reason = err.to_string();
                }
            }
        }
        None
    }

    async fn refresh_ice_servers(&mut self) {
        let mut request = self
            .config
            .discovery
            .ice_servers()
            .channel(self.target.channel.to_string())
            .role(self.target.role)
            .require_storage(self.target.require_storage)
            .force_refresh(true);
        if let Some(id) = &self.target.client_id {
            request = request.client_id(id.as_str());
        }
        let event = match request.send().await {
            Ok(servers) => Event::IceServersRefreshed(servers),
            Err(err) => Event::IceServersRefreshFailed(err),
        };
        self.emit(event).await;
    }

    /// Report the messages still queued in the channel as not sent.
    fn fail_queued(&mut self) {
        while let Ok(command) = self.commands.try_recv() {
            if let Command::Send {
                message,
                correlation_id,
            } = command
            {
                self.try_emit(Event::SendFailed {
                    correlation_id,
                    action: message.action(),
                });
            }
        }
    }

    fn fail(&self, queue: VecDeque<Queued>) {
        for queued in queue {
            self.try_emit(Event::SendFailed {
                correlation_id: queued.correlation_id,
                action: queued.message.action(),
            });
        }
    }

    async fn closed(&mut self, reason: &str) {
        tracing::info!(%reason, "signaling connection closed");
        self.commands.close();
        self.fail_queued();
        self.set_state(ConnectionState::Closed {
            reason: reason.to_owned(),
        })
        .await;
    }

    async fn set_state(&self, state: ConnectionState) -> bool {
        self.state.send_replace(state.clone());
        self.emit(Event::StateChanged(state)).await
    }

    /// Deliver an event; `false` when nobody listens any more.
    async fn emit(&self, event: Event) -> bool {
        self.events.send(event).await.is_ok()
    }

    /// Deliver an event if there is room (failure reports while tearing down must not block).
    fn try_emit(&self, event: Event) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.events.try_send(event) {
            tracing::warn!(?event, "event queue full; dropping a send-failure report");
        }
    }
}
