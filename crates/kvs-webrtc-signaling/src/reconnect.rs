//! The reconnect policy between sockets, sans-IO (in the manner of [`SocketSession`]
//! (crate::session::SocketSession)): after a socket's run ends, when to try again, whether to
//! refresh the ICE servers or the endpoint first, and when to give up.
//!
//! It owns no socket, task or clock. The driver reports what happened
//! ([`Reconnect::handle_ended`], [`Reconnect::handle_ice_servers_refreshed`],
//! [`Reconnect::handle_connect_failed`], [`Reconnect::handle_connected`], the time reaching its
//! deadline through [`Reconnect::handle_timeout`]), then drains [`Reconnect::poll_output`]
//! until it returns [`Output::Timeout`] or [`Output::Wait`].
//!
//! The rules:
//! - GO_AWAY and RECONNECT_ICE_SERVER reconnect at once (the latter after refreshing the ICE
//!   servers); a dropped socket and every failed attempt wait [`Backoff::delay`] with full
//!   jitter, the ceiling doubling per attempt.
//! - An attempt that failed with an error meaning the endpoint may be stale (not found,
//!   unreachable, access denied) looks the endpoint up again on the next attempt.
//! - After `max_attempts` failed attempts, give up with the last reason.

use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::connection::ConnectionState;
use crate::error::ErrorKind;
use crate::session::Ended;

/// What the policy asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    /// Publish this connection state.
    State(ConnectionState),
    /// Ask for fresh ICE servers (GetIceServerConfig, forced), then report
    /// [`Reconnect::handle_ice_servers_refreshed`].
    RefreshIceServers,
    /// Open a new socket (looking the endpoint up again when `refresh_endpoint`), then report
    /// [`Reconnect::handle_connected`] or [`Reconnect::handle_connect_failed`].
    Connect {
        /// Look the signaling endpoint up again instead of using the cached one.
        refresh_endpoint: bool,
    },
    /// The connection is over for good (the state is `Closed` with this reason).
    Close(String),
    /// Nothing to do before this instant (or a command from the caller).
    Timeout(Instant),
    /// Nothing to do until the driver reports what it was asked to do (or the socket ends).
    Wait,
}

#[derive(Debug)]
enum Phase {
    /// A socket is open (or the connection closed): nothing to do.
    Idle,
    /// The ICE servers are being refreshed before an immediate reconnect.
    Refreshing,
    /// Waiting until `at` for attempt `attempt`.
    Waiting { at: Instant },
    /// An attempt is under way.
    Connecting,
    /// Closed for good.
    Closed,
}

/// The reconnect policy of one connection; see the module docs.
#[derive(Debug)]
pub(crate) struct Reconnect {
    backoff: Backoff,
    max_attempts: Option<u32>,
    phase: Phase,
    /// The attempt being waited for or made (1-based); 0 while connected.
    attempt: u32,
    /// The first attempt goes at once (GO_AWAY, RECONNECT_ICE_SERVER).
    immediate: bool,
    /// Why the last socket ended or the last attempt failed.
    reason: String,
    /// The next attempt looks the endpoint up again.
    refresh_endpoint: bool,
    /// Reconnections so far.
    reconnects: u32,
    outputs: std::collections::VecDeque<Output>,
    /// xorshift64 state for the jitter.
    rng: u64,
}

impl Reconnect {
    /// A policy for a connection whose first socket is open.
    pub(crate) fn new(backoff: Backoff, max_attempts: Option<u32>, jitter_seed: u64) -> Self {
        Self {
            backoff,
            max_attempts,
            phase: Phase::Idle,
            attempt: 0,
            immediate: false,
            reason: String::new(),
            refresh_endpoint: false,
            reconnects: 0,
            outputs: Default::default(),
            rng: spread(jitter_seed),
        }
    }

    /// A socket's run ended.
    pub(crate) fn handle_ended(&mut self, now: Instant, ended: Ended) {
        match ended {
            Ended::ByCaller => self.close("closed by the caller".into()),
            Ended::GoAway => {
                self.immediate = true;
                self.reason = "the service sent GO_AWAY".into();
                self.schedule(now);
            }
            Ended::ReconnectIceServer => {
                self.immediate = true;
                self.reason = "the service sent RECONNECT_ICE_SERVER".into();
                self.phase = Phase::Refreshing;
                self.outputs.push_back(Output::RefreshIceServers);
            }
            Ended::Dropped(reason) => {
                self.immediate = false;
                self.reason = reason;
                self.schedule(now);
            }
        }
    }

    /// The ICE servers were refreshed (or the refresh failed: it is reported apart).
    pub(crate) fn handle_ice_servers_refreshed(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Refreshing) {
            self.schedule(now);
        }
    }

    /// The caller closed the connection while no socket was open.
    pub(crate) fn handle_close(&mut self) {
        self.close("closed by the caller".into());
    }

    /// The attempt failed.
    pub(crate) fn handle_connect_failed(&mut self, now: Instant, kind: ErrorKind, reason: String) {
        if !matches!(self.phase, Phase::Connecting) {
            return;
        }
        self.refresh_endpoint = matches!(
            kind,
            ErrorKind::ChannelNotFound | ErrorKind::Network | ErrorKind::AccessDenied
        );
        self.reason = reason;
        self.schedule(now);
    }

    /// The attempt opened a socket.
    pub(crate) fn handle_connected(&mut self) {
        if !matches!(self.phase, Phase::Connecting) {
            return;
        }
        self.phase = Phase::Idle;
        self.attempt = 0;
        self.refresh_endpoint = false;
        self.reconnects += 1;
        self.outputs
            .push_back(Output::State(ConnectionState::Connected {
                reconnects: self.reconnects,
            }));
    }

    /// The time may have reached the deadline.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if let Phase::Waiting { at } = self.phase {
            if now >= at {
                self.phase = Phase::Connecting;
                self.outputs.push_back(Output::Connect {
                    refresh_endpoint: self.refresh_endpoint,
                });
            }
        }
    }

    /// The next thing to do; see [`Output`].
    pub(crate) fn poll_output(&mut self) -> Output {
        if let Some(output) = self.outputs.pop_front() {
            return output;
        }
        match self.phase {
            Phase::Waiting { at } => Output::Timeout(at),
            Phase::Idle | Phase::Refreshing | Phase::Connecting | Phase::Closed => Output::Wait,
        }
    }

    /// Whether the connection is closed for good.
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Plan the next attempt, or give up.
    fn schedule(&mut self, now: Instant) {
        self.attempt += 1;
        if self.max_attempts.is_some_and(|max| self.attempt > max) {
            let message = format!(
                "gave up after {} reconnect attempts; last: {}",
                self.attempt - 1,
                self.reason
            );
            self.close(message);
            return;
        }
        let delay = if self.immediate && self.attempt == 1 {
            Duration::ZERO
        } else {
            let jitter = self.next_jitter();
            self.backoff.delay(self.attempt - 1, jitter)
        };
        self.outputs
            .push_back(Output::State(ConnectionState::Reconnecting {
                attempt: self.attempt,
                delay,
                reason: self.reason.clone(),
            }));
        self.phase = Phase::Waiting { at: now + delay };
        // A zero delay needs no wake-up.
        self.handle_timeout(now);
    }

    fn close(&mut self, reason: String) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        self.phase = Phase::Closed;
        self.outputs.push_back(Output::Close(reason));
    }

    /// A uniform value in `[0, 1)`.
    fn next_jitter(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A seed's bits spread over the whole word (splitmix64's finaliser), so that a small seed does
/// not start the xorshift sequence with tiny values; never zero.
fn spread(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: Option<u32>) -> Reconnect {
        Reconnect::new(Backoff::default(), max_attempts, 42)
    }

    /// Every output up to the first `Timeout` or `Wait`, and that one.
    fn drain(policy: &mut Reconnect) -> (Vec<Output>, Output) {
        let mut outputs = Vec::new();
        loop {
            match policy.poll_output() {
                last @ (Output::Timeout(_) | Output::Wait) => return (outputs, last),
                output => outputs.push(output),
            }
        }
    }

    fn reconnecting(output: &Output) -> (u32, Duration) {
        match output {
            Output::State(ConnectionState::Reconnecting { attempt, delay, .. }) => {
                (*attempt, *delay)
            }
            other => panic!("expected a Reconnecting state, got {other:?}"),
        }
    }

    #[test]
    fn go_away_reconnects_at_once() {
        let mut p = policy(None);
        let t0 = Instant::now();
        p.handle_ended(t0, Ended::GoAway);
        let (outputs, last) = drain(&mut p);
        assert_eq!(reconnecting(&outputs[0]), (1, Duration::ZERO));
        assert_eq!(
            outputs[1],
            Output::Connect {
                refresh_endpoint: false
            }
        );
        assert_eq!(last, Output::Wait);
        p.handle_connected();
        let (outputs, _) = drain(&mut p);
        assert_eq!(
            outputs,
            [Output::State(ConnectionState::Connected { reconnects: 1 })]
        );
    }

    #[test]
    fn reconnect_ice_server_refreshes_first_then_reconnects_at_once() {
        let mut p = policy(None);
        let t0 = Instant::now();
        p.handle_ended(t0, Ended::ReconnectIceServer);
        let (outputs, last) = drain(&mut p);
        assert_eq!(outputs, [Output::RefreshIceServers]);
        assert_eq!(
            last,
            Output::Wait,
            "no attempt before the servers are fresh"
        );
        p.handle_ice_servers_refreshed(t0 + Duration::from_millis(30));
        let (outputs, _) = drain(&mut p);
        assert_eq!(reconnecting(&outputs[0]).1, Duration::ZERO);
        assert!(matches!(outputs[1], Output::Connect { .. }));
    }

    #[test]
    fn a_dropped_socket_waits_the_backoff_and_not_a_moment_less() {
        let mut p = policy(None);
        let t0 = Instant::now();
        p.handle_ended(t0, Ended::Dropped("reset".into()));
        let (outputs, last) = drain(&mut p);
        let (attempt, delay) = reconnecting(&outputs[0]);
        assert_eq!(attempt, 1);
        assert!(delay <= Duration::from_millis(100), "{delay:?}");
        assert_eq!(outputs.len(), 1, "no attempt yet: {outputs:?}");
        if delay > Duration::ZERO {
            assert_eq!(last, Output::Timeout(t0 + delay));
            p.handle_timeout(t0 + delay - Duration::from_nanos(1));
            assert_eq!(p.poll_output(), Output::Timeout(t0 + delay), "too early");
        }
        p.handle_timeout(t0 + delay);
        assert!(matches!(p.poll_output(), Output::Connect { .. }));
    }

    #[test]
    fn failed_attempts_double_the_ceiling_up_to_the_cap() {
        let mut p = policy(None);
        let mut now = Instant::now();
        p.handle_ended(now, Ended::GoAway);
        drain(&mut p);
        let mut delays = Vec::new();
        for _ in 0..40 {
            p.handle_connect_failed(now, ErrorKind::Network, "refused".into());
            let (outputs, last) = drain(&mut p);
            let (attempt, delay) = reconnecting(&outputs[0]);
            delays.push((attempt, delay));
            if let Output::Timeout(at) = last {
                now = at;
            }
            p.handle_timeout(now);
            assert!(matches!(p.poll_output(), Output::Connect { .. }));
        }
        for (attempt, delay) in &delays {
            let ceiling = Backoff::default().delay(attempt - 1, 1.0);
            assert!(
                delay <= &ceiling,
                "attempt {attempt}: {delay:?} > {ceiling:?}"
            );
        }
        // Full jitter: the delays spread under the ceiling rather than sitting on it.
        let capped: Vec<_> = delays.iter().filter(|(a, _)| *a > 8).collect();
        assert!(capped.iter().any(|(_, d)| *d > Duration::from_secs(5)));
        assert!(capped.iter().any(|(_, d)| *d < Duration::from_secs(5)));
        assert!(delays.iter().all(|(_, d)| *d <= Duration::from_secs(10)));
    }

    #[test]
    fn a_stale_endpoint_is_looked_up_again_only_after_errors_that_mean_it() {
        for (kind, refresh) in [
            (ErrorKind::ChannelNotFound, true),
            (ErrorKind::Network, true),
            (ErrorKind::AccessDenied, true),
            (ErrorKind::Throttled, false),
            (ErrorKind::Discovery, false),
        ] {
            let mut p = policy(None);
            let t0 = Instant::now();
            p.handle_ended(t0, Ended::GoAway);
            drain(&mut p);
            p.handle_connect_failed(t0, kind, "failed".into());
            let far = t0 + Duration::from_secs(60);
            drain(&mut p);
            p.handle_timeout(far);
            assert_eq!(
                p.poll_output(),
                Output::Connect {
                    refresh_endpoint: refresh
                },
                "{kind:?}"
            );
            // A success forgets it.
            p.handle_connected();
            drain(&mut p);
            p.handle_ended(far, Ended::GoAway);
            let (outputs, _) = drain(&mut p);
            assert_eq!(
                outputs[1],
                Output::Connect {
                    refresh_endpoint: false
                }
            );
        }
    }

    #[test]
    fn gives_up_after_the_last_attempt_with_its_reason() {
        let mut p = policy(Some(2));
        let t0 = Instant::now();
        p.handle_ended(t0, Ended::GoAway);
        drain(&mut p);
        p.handle_connect_failed(t0, ErrorKind::Network, "first".into());
        drain(&mut p);
        p.handle_timeout(t0 + Duration::from_secs(60));
        assert!(matches!(p.poll_output(), Output::Connect { .. }));
        p.handle_connect_failed(t0, ErrorKind::Network, "connection refused".into());
        let (outputs, last) = drain(&mut p);
        assert_eq!(
            outputs,
            [Output::Close(
                "gave up after 2 reconnect attempts; last: connection refused".into()
            )]
        );
        assert_eq!(last, Output::Wait);
        assert!(p.is_closed());
    }

    #[test]
    fn the_caller_closing_ends_it_once() {
        let mut p = policy(None);
        let t0 = Instant::now();
        p.handle_ended(t0, Ended::Dropped("reset".into()));
        drain(&mut p);
        p.handle_close();
        p.handle_close();
        let (outputs, _) = drain(&mut p);
        assert_eq!(outputs, [Output::Close("closed by the caller".into())]);
        // A late timeout does nothing.
        p.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(p.poll_output(), Output::Wait);
    }
}
