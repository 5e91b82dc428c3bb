//! The background task that owns the socket: it moves frames, commands, events and time
//! between the socket, the caller and two sans-IO parts, [`SocketSession`] (one socket's
//! protocol state: queue, rates, keep-alive) and [`Reconnect`] (when to connect again, with a
//! fresh presigned URL each time). It decides nothing itself.

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::config::Config;
use crate::connection::{Command, ConnectionState, Event};
use crate::reconnect::{Output, Reconnect};
use crate::session::{self, Ended, Frame, SocketSession};
use crate::transport::{self, Socket, Target};

pub(crate) struct Driver {
    pub(crate) config: Config,
    pub(crate) target: Target,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) state: watch::Sender<ConnectionState>,
    /// Events waiting for room in `events`: the socket is read meanwhile (so the keep-alive
    /// measures the socket, not the caller), and a reconnect does not drop them.
    pub(crate) held: std::collections::VecDeque<Event>,
    /// Messages dropped because `held` was full, not yet reported.
    pub(crate) lost: u64,
}

impl Driver {
    pub(crate) async fn run(mut self, socket: Socket) {
        let mut socket = Some(socket);
        let mut policy = Reconnect::new(
            self.config.backoff,
            self.config.max_reconnect_attempts,
            rand::random(),
        );
        loop {
            if let Some(open) = &mut socket {
                let ended = self.serve(open).await;
                let _ = tokio::time::timeout(self.config.connect_timeout, open.close(None)).await;
                socket = None;
                if ended != Ended::ByCaller {
                    tracing::info!(?ended, "signaling socket ended; reconnecting");
                    self.fail_queued();
                }
                policy.handle_ended(Instant::now().into_std(), ended);
            }
            // Carry out the policy's outputs until it waits.
            let wait_until = loop {
                match policy.poll_output() {
                    Output::State(state) => self.set_state(state),
                    Output::RefreshIceServers => {
                        self.refresh_ice_servers().await;
                        policy.handle_ice_servers_refreshed(Instant::now().into_std());
                    }
                    Output::Connect { refresh_endpoint } => {
                        match transport::open(&self.config, &self.target, refresh_endpoint).await {
                            Ok((opened, _)) => {
                                socket = Some(opened);
                                policy.handle_connected();
                            }
                            Err(err) => {
                                tracing::info!(error = %err, "signaling reconnect failed");
                                policy.handle_connect_failed(
                                    Instant::now().into_std(),
                                    err.kind(),
                                    err.to_string(),
                                );
                            }
                        }
                    }
                    Output::Close(reason) => return self.closed(&reason).await,
                    Output::Timeout(at) => break Some(Instant::from_std(at)),
                    Output::Wait => break None,
                }
            };
            let Some(deadline) = wait_until else {
                // Connected again. (The policy waits only for what the loop above awaited.)
                debug_assert!(socket.is_some());
                if socket.is_none() {
                    return self.closed("the reconnect policy stopped").await;
                }
                continue;
            };
            // Wait for the next attempt, delivering what is held meanwhile (never waiting for
            // the caller to read), but leave as soon as the caller closes.
            let delivering = !self.held.is_empty() || self.lost > 0;
            tokio::select! {
                permit = self.events.clone().reserve_owned(), if delivering => match permit {
                    Ok(permit) => {
                        permit.send(self.next_held());
                    }
                    Err(_) => policy.handle_close(),
                },
                () = sleep_until(deadline) => policy.handle_timeout(Instant::now().into_std()),
                command = self.commands.recv() => match command {
                    Some(Command::Send { message, correlation_id }) => {
                        self.hold(Event::SendFailed { correlation_id, action: message.action() });
                    }
                    Some(Command::Close) | None => policy.handle_close(),
                },
            }
        }
    }

    /// Run one socket until it ends: the protocol state is a [`SocketSession`]; this loop only
    /// moves frames, commands and time between it and the socket.
    async fn serve(&mut self, socket: &mut Socket) -> Ended {
        let mut session = SocketSession::new(
            Instant::now().into_std(),
            self.config.ping_interval,
            self.config.pong_timeout,
            self.config.outbound_queue,
        );
        loop {
            // Drain the session after every input (see session.rs).
            let deadline = loop {
                match session.poll_output() {
                    session::Output::Transmit(frame) => {
                        if let Err(e) = socket.send(Message::text(frame)).await {
                            session.handle_send_error(&e.to_string());
                        }
                    }
                    session::Output::Ping => {
                        if let Err(e) = socket.send(Message::Ping(Default::default())).await {
                            session.handle_send_error(&format!("the keep-alive ping: {e}"));
                        }
                    }
                    session::Output::Event(event) => self.hold(event),
                    session::Output::EventIfRoom(event) => self.try_emit(event),
                    session::Output::End(ended) => return ended,
                    session::Output::Timeout(at) => break Instant::from_std(at),
                }
            };
            let delivering = !self.held.is_empty() || self.lost > 0;
            tokio::select! {
                permit = self.events.clone().reserve_owned(), if delivering => match permit {
                    Ok(permit) => {
                        permit.send(self.next_held());
                    }
                    // Nobody listens any more: as if the caller closed.
                    Err(_) => session.handle_command(None),
                },
                command = self.commands.recv(), if session.accepts_command() => {
                    session.handle_command(command);
                }
                frame = socket.next() => {
                    let frame = match frame {
                        Some(Ok(Message::Text(text))) => Frame::Text(text.as_str().to_owned()),
                        Some(Ok(Message::Close(close))) => Frame::Close(
                            close.map(|c| format!("{} {}", c.code, c.reason)).unwrap_or_default(),
                        ),
                        Some(Ok(Message::Binary(_))) => Frame::Binary,
                        Some(Ok(_)) => Frame::Control,
                        Some(Err(e)) => Frame::Error(e.to_string()),
                        None => Frame::End,
                    };
                    session.handle_frame(Instant::now().into_std(), frame);
                }
                () = sleep_until(deadline) => session.handle_timeout(Instant::now().into_std()),
            }
        }
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
        self.hold(event);
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

    async fn closed(&mut self, reason: &str) {
        tracing::info!(%reason, "signaling connection closed");
        self.commands.close();
        self.fail_queued();
        let state = ConnectionState::Closed {
            reason: reason.to_owned(),
        };
        self.state.send_replace(state.clone());
        // The connection is over: nothing else waits on this task any more.
        self.emit(Event::StateChanged(state)).await;
    }

    /// Publish a state and queue its event (held if the caller is not reading: never waits).
    fn set_state(&mut self, state: ConnectionState) {
        self.state.send_replace(state.clone());
        self.hold(Event::StateChanged(state));
    }

    /// Deliver an event after the held ones, waiting for room; `false` when nobody listens
    /// any more. (Used between sockets, where there is no socket to keep reading.)
    async fn emit(&mut self, event: Event) -> bool {
        while !self.held.is_empty() || self.lost > 0 {
            let next = self.next_held();
            if self.events.send(next).await.is_err() {
                return false;
            }
        }
        self.events.send(event).await.is_ok()
    }

    /// Queue an event without waiting: straight into the caller's queue when it has room and
    /// nothing is held, else held (messages beyond `held_messages` are dropped and counted).
    fn hold(&mut self, event: Event) {
        let event = if self.held.is_empty() && self.lost == 0 {
            match self.events.try_send(event) {
                Ok(()) => return,
                Err(
                    mpsc::error::TrySendError::Full(event)
                    | mpsc::error::TrySendError::Closed(event),
                ) => event,
            }
        } else {
            event
        };
        // While the caller does not read, reconnect attempts come and go: only the latest
        // attempt's state is worth holding.
        if let (
            Event::StateChanged(ConnectionState::Reconnecting { .. }),
            Some(Event::StateChanged(ConnectionState::Reconnecting { .. })),
        ) = (&event, self.held.back())
        {
            *self.held.back_mut().expect("checked") = event;
            return;
        }
        if matches!(event, Event::Message(_)) && self.held.len() >= self.config.held_messages {
            self.lost += 1;
            tracing::warn!(
                lost = self.lost,
                "the event queue is full; a received message was dropped"
            );
        } else {
            self.held.push_back(event);
        }
    }

    /// The next event to deliver: the loss report first (it covers messages that came before
    /// the held ones that are still waiting), then the held events in order.
    fn next_held(&mut self) -> Event {
        if self.lost > 0 {
            return Event::MessagesLost {
                count: std::mem::take(&mut self.lost),
            };
        }
        self.held
            .pop_front()
            .expect("next_held is called only when something is held")
    }

    /// Deliver an event if there is room (failure reports while tearing down must not block).
    fn try_emit(&self, event: Event) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.events.try_send(event) {
            tracing::warn!(?event, "event queue full; dropping a send-failure report");
        }
    }
}
