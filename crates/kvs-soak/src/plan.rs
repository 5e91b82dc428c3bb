//! Which fault comes when, and to which session, sans-IO: the matrix is walked in order, one
//! fault every interval, each to the next session in turn (one further on with each round),
//! so that every kind hits every session over a long enough run.

use std::time::Duration;

/// One kind of fault of the matrix, as the emulator's fault API injects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Fault {
    /// The service asks the client to reconnect its signaling socket.
    GoAway,
    /// The signaling socket is dropped.
    SocketDrop,
    /// The signaling socket stops answering (pongs too), like a half-open connection.
    FrozenSocket,
    /// The service asks for new ICE servers and a reconnection.
    ReconnectIceServer,
    /// The next answer is rejected (after a GO_AWAY that makes the client join again).
    RejectedAnswer,
    /// The next joins are throttled (after a GO_AWAY that makes the client join again).
    ThrottledJoin,
    /// The storage peer's path loses 5 % of the packets each way, with 30 ms ± 20 ms of
    /// delay, for [`IMPAIRMENT_BURST`]; then it is cleared. Nothing to join again for.
    ImpairmentBurst,
}

/// How long an impairment burst lasts.
pub(crate) const IMPAIRMENT_BURST: Duration = Duration::from_secs(10);

/// The matrix, in the order it is walked.
pub(crate) const MATRIX: [Fault; 7] = [
    Fault::GoAway,
    Fault::SocketDrop,
    Fault::FrozenSocket,
    Fault::ReconnectIceServer,
    Fault::RejectedAnswer,
    Fault::ThrottledJoin,
    Fault::ImpairmentBurst,
];

impl Fault {
    /// The fault API requests that inject it (in order), for `channel`.
    pub(crate) fn requests(self, channel: &str) -> Vec<serde_json::Value> {
        let one = |fault: &str| serde_json::json!({ "channel": channel, "fault": fault });
        match self {
            Self::GoAway => vec![one("GO_AWAY")],
            Self::SocketDrop => vec![one("CLOSE_SOCKET")],
            Self::FrozenSocket => vec![one("FREEZE_SOCKET")],
            Self::ReconnectIceServer => vec![one("RECONNECT_ICE_SERVER")],
            Self::RejectedAnswer => vec![one("REJECT_NEXT_ANSWER"), one("GO_AWAY")],
            Self::ThrottledJoin => vec![
                serde_json::json!({ "channel": channel, "fault": "CLIENT_LIMIT_EXCEEDED", "count": 2 }),
                one("GO_AWAY"),
            ],
            Self::ImpairmentBurst => vec![serde_json::json!({
                "channel": channel, "fault": "IMPAIR",
                "loss": 0.05, "delayMs": 30, "jitterMs": 20,
            })],
        }
    }

    /// The requests that end the fault, and when (after injecting it), if it does not end
    /// by itself.
    pub(crate) fn clearing(self, channel: &str) -> Option<(Duration, Vec<serde_json::Value>)> {
        match self {
            Self::ImpairmentBurst => Some((
                IMPAIRMENT_BURST,
                vec![serde_json::json!({ "channel": channel, "fault": "CLEAR_IMPAIRMENT" })],
            )),
            _ => None,
        }
    }

    /// Whether the client must join a new storage session to recover.
    pub(crate) fn needs_a_new_session(self) -> bool {
        !matches!(self, Self::ImpairmentBurst)
    }

    /// A short name for the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::GoAway => "GO_AWAY",
            Self::SocketDrop => "socket drop",
            Self::FrozenSocket => "frozen socket",
            Self::ReconnectIceServer => "RECONNECT_ICE_SERVER",
            Self::RejectedAnswer => "rejected answer",
            Self::ThrottledJoin => "throttled join",
            Self::ImpairmentBurst => "impairment burst",
        }
    }
}

/// The `n`-th fault of a run (from 0): its kind and the session (of `sessions`) it hits.
pub(crate) fn nth(n: usize, sessions: usize) -> (Fault, usize) {
    let (round, kind) = (n / MATRIX.len(), n % MATRIX.len());
    // Each round of the matrix starts one session further on, so that every kind meets every
    // session even when the number of sessions shares a factor with the matrix's length.
    (MATRIX[kind], (kind + round) % sessions.max(1))
}

/// When the `n`-th fault is injected, counted from the end of the warm-up.
pub(crate) fn at(n: usize, every: Duration) -> Duration {
    every * (n as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reaches_every_session_over_a_long_run() {
        let sessions = 4;
        let mut seen = std::collections::HashSet::new();
        for n in 0..MATRIX.len() * sessions {
            seen.insert(nth(n, sessions));
        }
        assert_eq!(seen.len(), MATRIX.len() * sessions);
        assert_eq!(nth(0, 4), (Fault::GoAway, 0));
        assert_eq!(nth(1, 4), (Fault::SocketDrop, 1));
        assert_eq!(nth(8, 4), (Fault::SocketDrop, 2));
        assert_eq!(at(0, Duration::from_secs(60)), Duration::from_secs(60));
    }

    #[test]
    fn faults_that_act_at_the_next_join_are_followed_by_a_go_away() {
        for fault in [Fault::RejectedAnswer, Fault::ThrottledJoin] {
            let requests = fault.requests("cam-1");
            assert_eq!(requests.len(), 2);
            assert_eq!(requests[1]["fault"], "GO_AWAY");
            assert_eq!(requests[0]["channel"], "cam-1");
        }
    }

    #[test]
    fn only_the_impairment_burst_is_cleared_and_needs_no_new_session() {
        let burst = Fault::ImpairmentBurst;
        assert_eq!(burst.requests("cam-1")[0]["fault"], "IMPAIR");
        let (after, clear) = burst.clearing("cam-1").expect("cleared");
        assert_eq!(after, IMPAIRMENT_BURST);
        assert_eq!(clear[0]["fault"], "CLEAR_IMPAIRMENT");
        assert!(!burst.needs_a_new_session());
        for fault in MATRIX.into_iter().filter(|f| *f != burst) {
            assert!(fault.clearing("cam-1").is_none(), "{fault:?}");
            assert!(fault.needs_a_new_session(), "{fault:?}");
        }
    }
}
