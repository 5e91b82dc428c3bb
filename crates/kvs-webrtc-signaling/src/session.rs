//! The protocol state of one signaling socket, sans-IO (in the manner of str0m): the outbound
//! queue, the service's send rates, correlation ids of sent messages (to name the action of a
//! STATUS_RESPONSE), keep-alive, and why the socket's run ended.
//!
//! It owns no socket, task, channel or clock. The driver feeds it inputs (a caller command, a
//! received frame, a failed send, the time reaching its deadline) with the current time, then
//! drains [`SocketSession::poll_output`] until it returns [`Output::Timeout`] (the drain rule:
//! after every input, poll until `Timeout`), and sleeps until that deadline or the next input.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::connection::{Command, Event, Rejection};
use crate::limits::SendRates;
use crate::message::{parse_incoming, Action, Incoming, Outgoing};

/// How many sent messages are remembered to name the action of a STATUS_RESPONSE.
const REMEMBERED_SENDS: usize = 256;

/// Why a socket's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The caller closed or dropped the connection.
    ByCaller,
    /// GO_AWAY: reconnect at once.
    GoAway,
    /// RECONNECT_ICE_SERVER: refresh ICE servers, then reconnect at once.
    ReconnectIceServer,
    /// The socket broke or went silent: reconnect with backoff.
    Dropped(String),
}

/// A frame read from the socket, as the session needs to know it.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A text frame (every signaling message).
    Text(String),
    /// A binary frame (never sent by the service).
    Binary,
    /// A ping or pong (the WebSocket library answers pings itself).
    Control,
    /// The service closed the socket, with this code and reason.
    Close(String),
    /// Reading failed.
    Error(String),
    /// The stream ended.
    End,
}

/// What the session asks the driver to do.
#[derive(Debug)]
pub(crate) enum Output {
    /// Send this text frame.
    Transmit(String),
    /// Send a WebSocket ping.
    Ping,
    /// Deliver this event to the caller, waiting for room.
    Event(Event),
    /// Deliver this event if there is room (failure reports while the socket is ending must
    /// not block the teardown).
    EventIfRoom(Event),
    /// The run is over: close the socket.
    End(Ended),
    /// Nothing more to do before this instant (or the next input).
    Timeout(Instant),
}

struct Queued {
    message: Outgoing,
    correlation_id: String,
}

/// The state of one socket's run; see the module docs.
pub(crate) struct SocketSession {
    queue: VecDeque<Queued>,
    queue_capacity: usize,
    rates: SendRates,
    sent: VecDeque<(String, Action)>,
    /// When the head of the queue may be sent; `None` means now.
    send_at: Option<Instant>,
    /// The time of the last input that carried one.
    now: Instant,
    last_heard: Instant,
    next_ping: Instant,
    ping_interval: Duration,
    silence_limit: Duration,
    outputs: VecDeque<Output>,
    ended: Option<Ended>,
    end_reported: bool,
}

impl SocketSession {
    /// A session for a socket that opened at `now`.
    pub(crate) fn new(
        now: Instant,
        ping_interval: Duration,
        pong_timeout: Duration,
        queue_capacity: usize,
    ) -> Self {
        Self {
            queue: VecDeque::new(),
            queue_capacity: queue_capacity.max(1),
            rates: SendRates::new(),
            sent: VecDeque::with_capacity(REMEMBERED_SENDS),
            send_at: None,
            now,
            last_heard: now,
            next_ping: now + ping_interval,
            ping_interval,
            silence_limit: ping_interval + pong_timeout,
            outputs: VecDeque::new(),
            ended: None,
            end_reported: false,
        }
    }

    /// Whether the session takes another command now (the outbound queue has room). While it
    /// does not, the caller's sends wait in their channel.
    pub(crate) fn accepts_command(&self) -> bool {
        self.ended.is_none() && self.queue.len() < self.queue_capacity
    }

    /// A command from the caller (`None`: every sender is gone).
    pub(crate) fn handle_command(&mut self, command: Option<Command>) {
        match command {
            Some(Command::Send {
                message,
                correlation_id,
            }) => self.queue.push_back(Queued {
                message,
                correlation_id,
            }),
            Some(Command::Close) | None => self.end(Ended::ByCaller),
        }
    }

    /// A frame arrived at `now`.
    pub(crate) fn handle_frame(&mut self, now: Instant, frame: Frame) {
        self.now = now;
        self.last_heard = now;
        let text = match frame {
            Frame::Text(text) => text,
            Frame::Close(why) => {
                return self.end(Ended::Dropped(format!(
                    "the service closed the socket ({why})"
                )))
            }
            Frame::Binary => {
                return self.outputs.push_back(Output::Event(Event::UnknownFrame {
                    reason: "a binary frame".into(),
                }))
            }
            Frame::Control => return,
            Frame::Error(e) => return self.end(Ended::Dropped(format!("the socket failed: {e}"))),
            Frame::End => return self.end(Ended::Dropped("the socket ended".into())),
        };
        let event = match parse_incoming(&text) {
            Incoming::Message(message) => Event::Message(message),
            Incoming::StatusResponse(status) => match status.correlation_id.clone() {
                Some(id) => {
                    let action = self
                        .sent
                        .iter()
                        .find(|(sent_id, _)| *sent_id == id)
                        .map(|(_, action)| *action);
                    Event::Rejected(Rejection {
                        correlation_id: id,
                        action,
                        status,
                    })
                }
                None => Event::StatusResponse(status),
            },
            Incoming::GoAway => {
                self.outputs.push_back(Output::Event(Event::GoAway));
                return self.end(Ended::GoAway);
            }
            Incoming::ReconnectIceServer => {
                self.outputs
                    .push_back(Output::Event(Event::ReconnectIceServer));
                return self.end(Ended::ReconnectIceServer);
            }
            Incoming::Unknown { reason } => {
                tracing::debug!(%reason, "ignoring a signaling frame");
                Event::UnknownFrame { reason }
            }
        };
        self.outputs.push_back(Output::Event(event));
    }

    /// Sending the last [`Output::Transmit`] or [`Output::Ping`] failed.
    pub(crate) fn handle_send_error(&mut self, error: &str) {
        self.end(Ended::Dropped(format!("sending failed: {error}")));
    }

    /// The time reached the last [`Output::Timeout`] (or later): send what the rates allow,
    /// ping, or give up on a silent socket.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.ended.is_some() {
            return;
        }
        if now >= self.next_ping {
            if now.saturating_duration_since(self.last_heard) >= self.silence_limit {
                return self.end(Ended::Dropped(format!(
                    "nothing heard for {:?} (keep-alive)",
                    self.silence_limit
                )));
            }
            self.next_ping = now + self.ping_interval;
            self.outputs.push_back(Output::Ping);
        }
        while let Some(head) = self.queue.front() {
            if self.send_at.is_some_and(|at| now < at) {
                break;
            }
            if let Some(later) = self.rates.take(head.message.action(), now) {
                self.send_at = Some(later);
                break;
            }
            self.send_at = None;
            let Queued {
                message,
                correlation_id,
            } = self.queue.pop_front().expect("the head exists");
            self.outputs
                .push_back(Output::Transmit(message.to_frame(&correlation_id)));
            if self.sent.len() == REMEMBERED_SENDS {
                self.sent.pop_front();
            }
            self.sent.push_back((correlation_id, message.action()));
        }
    }

    /// The next thing to do. Drain it until [`Output::Timeout`] after every input; after
    /// [`Output::End`] the session only reports `End` again.
    pub(crate) fn poll_output(&mut self) -> Output {
        if let Some(output) = self.outputs.pop_front() {
            return output;
        }
        if let Some(ended) = &self.ended {
            self.end_reported = true;
            return Output::End(ended.clone());
        }
        let deadline = match (self.queue.is_empty(), self.send_at) {
            (true, _) => self.next_ping,
            (false, Some(at)) => at.min(self.next_ping),
            // Something to send and nothing holds it back: now (the driver calls
            // handle_timeout at once).
            (false, None) => self.now,
        };
        Output::Timeout(deadline)
    }

    /// Ends the run: every message still queued is reported as not sent.
    fn end(&mut self, why: Ended) {
        if self.ended.is_some() {
            return;
        }
        for queued in self.queue.drain(..) {
            self.outputs
                .push_back(Output::EventIfRoom(Event::SendFailed {
                    correlation_id: queued.correlation_id,
                    action: queued.message.action(),
                }));
        }
        self.ended = Some(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::IceCandidate;

    const PING: Duration = Duration::from_secs(10);
    const PONG: Duration = Duration::from_secs(5);

    fn session(now: Instant) -> SocketSession {
        SocketSession::new(now, PING, PONG, 64)
    }

    fn send(session: &mut SocketSession, message: Outgoing, id: &str) {
        session.handle_command(Some(Command::Send {
            message,
            correlation_id: id.into(),
        }));
    }

    fn answer() -> Outgoing {
        Outgoing::answer("v=0\r\n").unwrap()
    }

    fn candidate() -> Outgoing {
        Outgoing::ice_candidate(&IceCandidate {
            candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        })
        .unwrap()
    }

    /// Drains outputs; returns what was transmitted, pings, events and the deadline.
    fn drain(session: &mut SocketSession) -> (Vec<String>, usize, Vec<Output>, Option<Instant>) {
        let (mut sent, mut pings, mut other) = (Vec::new(), 0, Vec::new());
        loop {
            match session.poll_output() {
                Output::Transmit(frame) => sent.push(frame),
                Output::Ping => pings += 1,
                Output::Timeout(at) => return (sent, pings, other, Some(at)),
                end @ Output::End(_) => {
                    other.push(end);
                    return (sent, pings, other, None);
                }
                output => other.push(output),
            }
        }
    }

    /// Runs the session with simulated time from `start` for `span`, always advancing to its
    /// own next deadline (no sleeps); returns the times at which frames were transmitted.
    fn run_for(session: &mut SocketSession, start: Instant, span: Duration) -> Vec<Instant> {
        let mut now = start;
        let mut sent_at = Vec::new();
        while now <= start + span {
            session.handle_timeout(now);
            let (sent, _, _, deadline) = drain(session);
            sent_at.extend(sent.iter().map(|_| now));
            // The peer keeps answering pings, so keep-alive never gives up here.
            session.handle_frame(now, Frame::Control);
            match deadline {
                Some(at) => now = at.max(now + Duration::from_millis(1)),
                None => break,
            }
        }
        sent_at
    }

    fn max_in_any_second(times: &[Instant]) -> usize {
        times
            .iter()
            .map(|start| {
                times
                    .iter()
                    .filter(|t| **t >= *start && t.duration_since(*start) < Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn sdp_messages_leave_at_five_per_second() {
        let t0 = Instant::now();
        let mut s = session(t0);
        for i in 0..12 {
            send(&mut s, answer(), &format!("a{i}"));
        }
        let times = run_for(&mut s, t0, Duration::from_secs(4));
        assert_eq!(times.len(), 12, "all sent eventually");
        assert_eq!(max_in_any_second(&times), 5, "{times:?}");
        assert!(times[5].duration_since(t0) >= Duration::from_secs(1));
    }

    #[test]
    fn candidates_leave_at_twenty_per_second_in_order() {
        let t0 = Instant::now();
        let mut s = session(t0);
        for i in 0..45 {
            send(&mut s, candidate(), &format!("c{i}"));
        }
        s.handle_timeout(t0);
        let (first, _, _, deadline) = drain(&mut s);
        assert_eq!(first.len(), 20, "a full window at once");
        assert!(
            first[0].contains("\"correlationId\":\"c0\""),
            "{}",
            first[0]
        );
        assert!(deadline.unwrap() > t0, "then wait for the window");
        let times = run_for(&mut s, t0, Duration::from_secs(4));
        assert_eq!(times.len(), 25);
        assert!(max_in_any_second(&times) <= 20);
    }

    #[test]
    fn keep_alive_pings_and_gives_up_on_silence() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let (_, _, _, deadline) = drain(&mut s);
        assert_eq!(deadline, Some(t0 + PING), "first ping after the interval");
        s.handle_timeout(t0 + PING);
        let (_, pings, _, deadline) = drain(&mut s);
        assert_eq!(pings, 1);
        assert_eq!(deadline, Some(t0 + PING * 2));
        // A pong (or any frame) counts as heard.
        s.handle_frame(t0 + PING + Duration::from_secs(1), Frame::Control);
        s.handle_timeout(t0 + PING * 2);
        assert_eq!(drain(&mut s).1, 1, "still alive: ping again");
        // Silence from then on: at the next ping time, more than ping + pong has passed.
        s.handle_timeout(t0 + PING * 3);
        let (_, pings, other, deadline) = drain(&mut s);
        assert_eq!(pings, 0);
        assert!(deadline.is_none());
        assert!(
            matches!(&other[..], [Output::End(Ended::Dropped(why))] if why.contains("keep-alive")),
            "{other:?}"
        );
    }

    #[test]
    fn a_status_response_names_the_action_it_rejects() {
        let t0 = Instant::now();
        let mut s = session(t0);
        send(&mut s, answer(), "ans-1");
        s.handle_timeout(t0);
        drain(&mut s);
        s.handle_frame(
            t0,
            Frame::Text(
                r#"{"messageType":"STATUS_RESPONSE","statusResponse":{"correlationId":"ans-1","errorType":"InvalidArgumentException","statusCode":"400"}}"#
                    .into(),
            ),
        );
        let (_, _, events, _) = drain(&mut s);
        assert!(
            matches!(&events[..], [Output::Event(Event::Rejected(r))] if r.correlation_id == "ans-1" && r.action == Some(Action::SdpAnswer)),
            "{events:?}"
        );
    }

    #[test]
    fn go_away_ends_the_run_and_reports_unsent_messages() {
        let t0 = Instant::now();
        let mut s = session(t0);
        for i in 0..7 {
            send(&mut s, answer(), &format!("a{i}"));
        }
        s.handle_timeout(t0);
        assert_eq!(drain(&mut s).0.len(), 5);
        s.handle_frame(t0, Frame::Text(r#"{"messageType":"GO_AWAY"}"#.into()));
        let (_, _, outputs, deadline) = drain(&mut s);
        assert!(deadline.is_none());
        let failed: Vec<&str> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::EventIfRoom(Event::SendFailed { correlation_id, .. }) => {
                    Some(correlation_id.as_str())
                }
                _ => None,
            })
            .collect();
        assert_eq!(failed, ["a5", "a6"]);
        assert!(matches!(
            outputs.first(),
            Some(Output::Event(Event::GoAway))
        ));
        assert!(matches!(outputs.last(), Some(Output::End(Ended::GoAway))));
        assert!(!s.accepts_command());
    }

    #[test]
    fn the_queue_bound_holds_commands_back() {
        let t0 = Instant::now();
        let mut s = SocketSession::new(t0, PING, PONG, 2);
        send(&mut s, answer(), "a");
        assert!(s.accepts_command());
        send(&mut s, answer(), "b");
        assert!(!s.accepts_command());
        s.handle_timeout(t0);
        drain(&mut s);
        assert!(s.accepts_command());
    }

    #[test]
    fn close_frames_errors_and_the_caller_end_the_run() {
        for (frame, expected) in [
            (
                Frame::Close("1000 bye".into()),
                "closed the socket (1000 bye)",
            ),
            (Frame::Error("reset".into()), "the socket failed: reset"),
            (Frame::End, "the socket ended"),
        ] {
            let mut s = session(Instant::now());
            s.handle_frame(Instant::now(), frame);
            assert!(
                matches!(s.poll_output(), Output::End(Ended::Dropped(why)) if why.contains(expected))
            );
        }
        let mut s = session(Instant::now());
        s.handle_command(None);
        assert!(matches!(s.poll_output(), Output::End(Ended::ByCaller)));
    }
}
