//! The ICE servers' lifecycle, sans-IO: GetIceServerConfig at the start, again before the TURN
//! credentials expire (and after a failed refresh, 5 s later, while the old credentials keep
//! serving), the STUN servers resolved once, and the relay-only rule: with
//! [`IceTransportPolicy::Relay`], an ingestion that cannot have a TURN relay ends, naming each
//! server and why.
//!
//! The driver makes the calls this asks for ([`IceOutput::Lookup`],
//! [`IceOutput::ResolveStun`]) and reports their answers; RECONNECT_ICE_SERVER's refreshed
//! servers come in the same way.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::IceTransportPolicy;
use crate::relay::{Relays, TurnServerEntry};

/// How long after a failed refresh it is tried again.
const REFRESH_RETRY: Duration = Duration::from_secs(5);

/// What one GetIceServerConfig answer gave.
#[derive(Clone)]
pub(crate) struct IceServersFound {
    /// The TURN servers with their credentials.
    pub(crate) turn: Vec<TurnServerEntry>,
    /// When to refresh them (their TTL minus the discovery grace).
    pub(crate) refresh_at: Instant,
    /// The STUN servers' URIs (the region's STUN URL and the TURN servers, which answer
    /// Binding requests too); resolved apart, so that a slow DNS answer for the region's STUN
    /// name never delays the TURN allocations.
    pub(crate) stun_uris: Vec<String>,
}

/// What the lifecycle asks the driver to do.
#[derive(Clone)]
pub(crate) enum IceOutput {
    /// Call GetIceServerConfig and report with [`IceServerLifecycle::handle_lookup`].
    Lookup,
    /// Resolve these STUN servers (once) and start gathering server-reflexive candidates.
    ResolveStun(Vec<String>),
    /// Allocate on these TURN servers (new credentials, or the first ones).
    TurnServers(Vec<TurnServerEntry>),
    /// Tell the application (a refresh failed; the old credentials still serve).
    Warning(String),
    /// Relay-only, and no relay can be had: end the ingestion with this reason.
    RelayOnlyFailed(String),
}

/// See the module docs.
pub(crate) struct IceServerLifecycle {
    policy: IceTransportPolicy,
    /// A GetIceServerConfig call is on its way.
    in_flight: bool,
    /// Some lookup has answered (the first answer starts STUN; later ones only refresh).
    answered: bool,
    refresh_at: Option<Instant>,
    /// The relay-only failure was reported.
    failed: bool,
    outputs: VecDeque<IceOutput>,
}

impl IceServerLifecycle {
    /// Look the servers up at once.
    pub(crate) fn new(policy: IceTransportPolicy) -> Self {
        Self {
            policy,
            in_flight: true,
            answered: false,
            refresh_at: None,
            failed: false,
            outputs: VecDeque::from([IceOutput::Lookup]),
        }
    }

    /// GetIceServerConfig answered (a lookup asked for, or RECONNECT_ICE_SERVER's servers):
    /// the servers, or why not.
    pub(crate) fn handle_lookup(&mut self, now: Instant, result: Result<IceServersFound, String>) {
        self.in_flight = false;
        match result {
            Ok(found) => {
                self.refresh_at = Some(found.refresh_at);
                if !self.answered && self.policy == IceTransportPolicy::All {
                    self.outputs
                        .push_back(IceOutput::ResolveStun(found.stun_uris));
                }
                self.answered = true;
                self.outputs.push_back(IceOutput::TurnServers(found.turn));
            }
            Err(error) if !self.answered => {
                tracing::warn!(%error, "no ICE servers: no server-reflexive or relayed candidates");
                if self.policy == IceTransportPolicy::Relay {
                    self.fail(format!("GetIceServerConfig failed: {error}"));
                }
            }
            Err(error) => {
                self.outputs.push_back(IceOutput::Warning(format!(
                    "refreshing the TURN credentials failed, retrying in {} s: {error}",
                    REFRESH_RETRY.as_secs()
                )));
                self.refresh_at = Some(now + REFRESH_RETRY);
            }
        }
    }

    /// Time passed: refresh when due.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.refresh_at.is_some_and(|at| now >= at) && !self.in_flight {
            self.refresh_at = None;
            self.in_flight = true;
            tracing::info!("refreshing the TURN credentials before they expire");
            self.outputs.push_back(IceOutput::Lookup);
        }
    }

    /// The relay-only rule, once the relays have changed: relayed candidates are the only
    /// ones offered, so when every relay has failed and no lookup can bring new ones, the
    /// ingestion cannot work.
    pub(crate) fn check_relays(&mut self, relays: &Relays) {
        if self.policy == IceTransportPolicy::Relay && relays.none_can_work() && !self.in_flight {
            self.fail(relays.failures());
        }
    }

    /// The next thing to do.
    pub(crate) fn poll_output(&mut self) -> Option<IceOutput> {
        self.outputs.pop_front()
    }

    /// When [`IceServerLifecycle::handle_timeout`] is next due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.refresh_at.filter(|_| !self.in_flight)
    }

    fn fail(&mut self, why: String) {
        if !std::mem::replace(&mut self.failed, true) {
            self.outputs.push_back(IceOutput::RelayOnlyFailed(why));
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests take their start time from the clock
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(270);

    fn found(now: Instant) -> IceServersFound {
        IceServersFound {
            turn: vec![TurnServerEntry {
                uris: vec!["turn:127.0.0.1:3478?transport=udp".into()],
                username: "1700000000:user".into(),
                password: "secret".into(),
            }],
            refresh_at: now + TTL,
            stun_uris: vec!["stun:stun.example:443".into()],
        }
    }

    /// What the lifecycle asks for, by name.
    fn drain(ice: &mut IceServerLifecycle) -> Vec<String> {
        std::iter::from_fn(|| ice.poll_output())
            .map(|o| match o {
                IceOutput::Lookup => "lookup".to_owned(),
                IceOutput::ResolveStun(uris) => format!("stun {}", uris.join(",")),
                IceOutput::TurnServers(servers) => format!("turn {}", servers.len()),
                IceOutput::Warning(w) => format!("warning {w}"),
                IceOutput::RelayOnlyFailed(why) => format!("failed {why}"),
            })
            .collect()
    }

    #[test]
    fn servers_are_looked_up_then_refreshed_before_their_credentials_expire() {
        let t0 = Instant::now();
        let mut ice = IceServerLifecycle::new(IceTransportPolicy::All);
        assert_eq!(drain(&mut ice), ["lookup"]);
        assert_eq!(ice.poll_timeout(), None, "nothing to refresh while asking");
        ice.handle_lookup(t0, Ok(found(t0)));
        assert_eq!(drain(&mut ice), ["stun stun:stun.example:443", "turn 1"]);
        assert_eq!(ice.poll_timeout(), Some(t0 + TTL));
        ice.handle_timeout(t0 + TTL - Duration::from_millis(1));
        assert!(drain(&mut ice).is_empty(), "not before the refresh time");
        ice.handle_timeout(t0 + TTL);
        assert_eq!(drain(&mut ice), ["lookup"]);
        let t1 = t0 + TTL + Duration::from_millis(80);
        ice.handle_lookup(t1, Ok(found(t1)));
        assert_eq!(drain(&mut ice), ["turn 1"], "STUN is resolved once");
        assert_eq!(ice.poll_timeout(), Some(t1 + TTL));
    }

    #[test]
    fn a_failed_refresh_is_tried_again_after_5_s_and_warns() {
        let t0 = Instant::now();
        let mut ice = IceServerLifecycle::new(IceTransportPolicy::Relay);
        drain(&mut ice);
        ice.handle_lookup(t0, Ok(found(t0)));
        assert_eq!(drain(&mut ice), ["turn 1"], "no STUN for relay-only");
        ice.handle_timeout(t0 + TTL);
        drain(&mut ice);
        let t1 = t0 + TTL;
        ice.handle_lookup(t1, Err("ClientLimitExceededException".into()));
        let outputs = drain(&mut ice);
        assert_eq!(outputs.len(), 1);
        assert!(outputs[0]
            .starts_with("warning refreshing the TURN credentials failed, retrying in 5 s"));
        assert_eq!(ice.poll_timeout(), Some(t1 + REFRESH_RETRY));
        ice.handle_timeout(t1 + REFRESH_RETRY);
        assert_eq!(drain(&mut ice), ["lookup"]);
    }

    #[test]
    fn relay_only_fails_when_the_first_lookup_fails_but_all_carries_on() {
        let t0 = Instant::now();
        let mut relay_only = IceServerLifecycle::new(IceTransportPolicy::Relay);
        drain(&mut relay_only);
        relay_only.handle_lookup(t0, Err("AccessDeniedException".into()));
        assert_eq!(
            drain(&mut relay_only),
            ["failed GetIceServerConfig failed: AccessDeniedException"]
        );
        let mut all = IceServerLifecycle::new(IceTransportPolicy::All);
        drain(&mut all);
        all.handle_lookup(t0, Err("AccessDeniedException".into()));
        assert!(drain(&mut all).is_empty(), "host candidates still work");
        assert_eq!(all.poll_timeout(), None);
    }

    #[test]
    fn relay_only_fails_once_every_relay_failed_and_no_lookup_is_on_its_way() {
        let t0 = Instant::now();
        let mut ice = IceServerLifecycle::new(IceTransportPolicy::Relay);
        drain(&mut ice);
        let mut relays = Relays::new(Duration::from_secs(2));
        // Only a TURN-over-DTLS URI, which is skipped: no relay can work.
        relays.add_servers(&[TurnServerEntry {
            uris: vec!["turns:127.0.0.1:5349?transport=udp".into()],
            username: "u".into(),
            password: "p".into(),
        }]);
        assert!(relays.none_can_work());
        ice.check_relays(&relays);
        assert!(
            drain(&mut ice).is_empty(),
            "the lookup may still bring servers"
        );
        ice.handle_lookup(t0, Ok(found(t0)));
        drain(&mut ice);
        ice.check_relays(&relays);
        let outputs = drain(&mut ice);
        assert_eq!(outputs.len(), 1, "{outputs:?}");
        assert!(outputs[0].starts_with("failed "), "{outputs:?}");
        ice.check_relays(&relays);
        assert!(drain(&mut ice).is_empty(), "reported once");
        let mut all = IceServerLifecycle::new(IceTransportPolicy::All);
        all.handle_lookup(t0, Ok(found(t0)));
        drain(&mut all);
        all.check_relays(&relays);
        assert!(
            drain(&mut all).is_empty(),
            "policy all carries on without relays"
        );
    }
}
