//! The registry of storage sessions (live and ended) that every listener shares: which session
//! is the channel's master or a viewer, their inboxes, cancellation and inspection snapshots.
//! The storage peers that play the sessions are in `storage::peer`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::link::{PeerInput, Role};
use crate::media::sink::MediaStats;

/// Where a storage session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionState {
    /// Joined; the offer is not sent yet.
    Starting,
    /// The offer went out; waiting for the answer.
    OfferSent,
    /// The answer was accepted; ICE and DTLS are connecting.
    Answered,
    /// Media can flow.
    Connected,
    /// Over; see `endReason`.
    Ended,
}

/// One storage session as the inspection API reports it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// Emulator-wide session id.
    pub id: u64,
    /// Channel ARN.
    pub channel_arn: String,
    /// The stream the channel stores into.
    pub stream_arn: String,
    /// `MASTER` or `VIEWER`.
    pub role: &'static str,
    /// The viewer's client id.
    pub client_id: Option<String>,
    /// Where the session is.
    pub state: SessionState,
    /// When the join was accepted, milliseconds since the epoch.
    pub joined_unix_ms: u64,
    /// Offers sent (0 when the offer was dropped by a fault or nobody was connected).
    pub offers_sent: u32,
    /// ICE candidates sent and received.
    pub candidates_sent: u32,
    /// ICE candidates received from the client.
    pub candidates_received: u32,
    /// Why an answer was refused, if one was.
    pub answer_rejected: Option<String>,
    /// Signaling messages dropped because the peer's queue was full.
    pub dropped_inputs: u64,
    /// Why the session ended.
    pub end_reason: Option<String>,
    /// What media arrived.
    pub media: MediaStats,
    /// The last report of an external storage peer (`storage-peer` WebSocket), as it sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_report: Option<serde_json::Value>,
}

pub(crate) struct SessionHandle {
    pub id: u64,
    inbound: mpsc::Sender<PeerInput>,
    pub cancel: CancellationToken,
    pub info: Mutex<SessionInfo>,
    dropped: AtomicU64,
}

impl SessionHandle {
    pub(crate) fn update(&self, f: impl FnOnce(&mut SessionInfo)) {
        f(&mut self.info.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub(crate) fn snapshot(&self) -> SessionInfo {
        let mut info = self.info.lock().unwrap_or_else(|e| e.into_inner()).clone();
        info.dropped_inputs = self.dropped.load(Ordering::Relaxed);
        info
    }
}

/// The most ended sessions whose room is reserved when the emulator starts (a larger
/// [`crate::Limits::ended_sessions_kept`] grows the ring as sessions end).
const RESERVED_ENDED_AT_MOST: usize = 1024;

#[derive(Default)]
struct State {
    live: HashMap<(String, Role), Arc<SessionHandle>>,
    /// Viewer slots still held after their session ended: (channel, client id) → until.
    held_slots: HashMap<(String, String), Instant>,
    ended: VecDeque<SessionInfo>,
}

/// Every storage session of the emulator: the live ones, and the last `ended_kept` that ended.
pub(crate) struct Sessions {
    state: Mutex<State>,
    next_id: AtomicU64,
    queue: usize,
    ended_kept: usize,
}

impl Sessions {
    /// Sessions whose inboxes hold `queue` messages, remembering the last `ended_kept` ended
    /// ones ([`crate::Limits::ended_sessions_kept`]).
    pub(crate) fn new(queue: usize, ended_kept: usize) -> Self {
        Self {
            // The history's ring is reserved whole: it grows no more as sessions end (a soak's
            // memory trend would otherwise show its doublings as growth).
            state: Mutex::new(State {
                ended: VecDeque::with_capacity(ended_kept.min(RESERVED_ENDED_AT_MOST)),
                ..State::default()
            }),
            next_id: AtomicU64::new(1),
            queue: queue.max(1),
            ended_kept,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a new session for (channel, role); the one it replaces is told to end.
    pub(crate) fn begin(
        &self,
        channel_arn: &str,
        stream_arn: &str,
        role: Role,
    ) -> (Arc<SessionHandle>, mpsc::Receiver<PeerInput>) {
        let (tx, rx) = mpsc::channel(self.queue);
        let handle = Arc::new(SessionHandle {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            inbound: tx,
            cancel: CancellationToken::new(),
            info: Mutex::new(SessionInfo {
                id: 0,
                channel_arn: channel_arn.to_owned(),
                stream_arn: stream_arn.to_owned(),
                role: if role == Role::Master {
                    "MASTER"
                } else {
                    "VIEWER"
                },
                client_id: role.client_id().map(str::to_owned),
                state: SessionState::Starting,
                joined_unix_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
                offers_sent: 0,
                candidates_sent: 0,
                candidates_received: 0,
                answer_rejected: None,
                dropped_inputs: 0,
                end_reason: None,
                media: MediaStats::default(),
                external_report: None,
            }),
            dropped: AtomicU64::new(0),
        });
        handle.update(|i| i.id = handle.id);
        let old = self
            .lock()
            .live
            .insert((channel_arn.to_owned(), role), handle.clone());
        if let Some(old) = old {
            tracing::info!(
                old = old.id,
                new = handle.id,
                "the most recent join takes precedence"
            );
            old.cancel.cancel();
        }
        (handle, rx)
    }

    /// A session task ended: move it to the history and, for a viewer, hold its slot.
    pub(crate) fn finished(
        &self,
        handle: &SessionHandle,
        role: &Role,
        slot_hold: std::time::Duration,
    ) {
        let info = handle.snapshot();
        let mut state = self.lock();
        let key = (info.channel_arn.clone(), role.clone());
        if state.live.get(&key).is_some_and(|h| h.id == handle.id) {
            state.live.remove(&key);
        }
        if let Role::Viewer(id) = role {
            state.held_slots.insert(
                (info.channel_arn.clone(), id.clone()),
                Instant::now() + slot_hold,
            );
        }
        if self.ended_kept > 0 {
            // Room first, so that a full ring is not reallocated to take one more.
            while state.ended.len() >= self.ended_kept {
                state.ended.pop_front();
            }
            state.ended.push_back(info);
        }
    }

    /// Viewer slots in use on a channel, not counting `client_id` (which would reuse its own).
    pub(crate) fn viewer_slots_in_use(
        &self,
        channel_arn: &str,
        client_id: &str,
        now: Instant,
    ) -> usize {
        let mut state = self.lock();
        state.held_slots.retain(|_, until| *until > now);
        let live = state
            .live
            .keys()
            .filter(|(c, r)| c == channel_arn && matches!(r, Role::Viewer(id) if id != client_id))
            .map(|(_, r)| r.client_id().unwrap_or_default().to_owned())
            .collect::<std::collections::HashSet<_>>();
        let held = state
            .held_slots
            .keys()
            .filter(|(c, id)| c == channel_arn && id != client_id && !live.contains(id))
            .count();
        live.len() + held
    }

    /// Whether the channel has a live master session.
    pub(crate) fn has_master(&self, channel_arn: &str) -> bool {
        self.lock()
            .live
            .contains_key(&(channel_arn.to_owned(), Role::Master))
    }

    /// Hand a signaling message to the session serving (channel, role).
    pub(crate) fn deliver(&self, channel_arn: &str, role: &Role, input: PeerInput) {
        let handle = self
            .lock()
            .live
            .get(&(channel_arn.to_owned(), role.clone()))
            .cloned();
        let Some(handle) = handle else {
            tracing::debug!(channel = %channel_arn, ?role, "no storage session for this message; dropped");
            return;
        };
        if handle.inbound.try_send(input).is_err() {
            let n = handle.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                session = handle.id,
                dropped = n,
                "storage peer input queue full; message dropped"
            );
        }
    }

    /// End every session of a channel.
    pub(crate) fn end_channel(&self, channel_arn: &str, reason: &str) {
        let handles: Vec<Arc<SessionHandle>> = self
            .lock()
            .live
            .iter()
            .filter(|((c, _), _)| c == channel_arn)
            .map(|(_, h)| h.clone())
            .collect();
        for h in handles {
            h.update(|i| {
                i.end_reason.get_or_insert_with(|| reason.to_owned());
            });
            h.cancel.cancel();
        }
    }

    /// Live sessions first, then ended ones (oldest first).
    pub(crate) fn snapshot(&self) -> Vec<SessionInfo> {
        let state = self.lock();
        let mut live: Vec<SessionInfo> = state.live.values().map(|h| h.snapshot()).collect();
        live.sort_by_key(|s| s.id);
        live.extend(state.ended.iter().cloned());
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Action;
    use std::time::Duration;

    const CH: &str = "arn:aws:kinesisvideo:us-west-2:1:channel/c/1";

    #[test]
    fn a_new_join_cancels_the_previous_session() {
        let sessions = Sessions::new(4, 10);
        let (first, _rx1) = sessions.begin(CH, "s", Role::Master);
        let (second, _rx2) = sessions.begin(CH, "s", Role::Master);
        assert!(first.cancel.is_cancelled());
        assert!(!second.cancel.is_cancelled());
        sessions.finished(&first, &Role::Master, Duration::ZERO);
        assert!(
            sessions.has_master(CH),
            "the old session must not remove the new one"
        );
    }

    #[test]
    fn viewer_slots_are_held_after_leaving_and_reusable_by_the_same_id() {
        let sessions = Sessions::new(4, 10);
        let viewer = Role::Viewer("v1".into());
        let (h, _rx) = sessions.begin(CH, "s", viewer.clone());
        let now = Instant::now();
        assert_eq!(sessions.viewer_slots_in_use(CH, "v2", now), 1);
        sessions.finished(&h, &viewer, Duration::from_secs(60));
        assert_eq!(
            sessions.viewer_slots_in_use(CH, "v2", Instant::now()),
            1,
            "slot held for a minute"
        );
        assert_eq!(
            sessions.viewer_slots_in_use(CH, "v1", Instant::now()),
            0,
            "same id reuses its slot"
        );
        assert_eq!(
            sessions.viewer_slots_in_use(CH, "v2", Instant::now() + Duration::from_secs(61)),
            0
        );
    }

    #[test]
    fn a_full_input_queue_drops_and_counts() {
        let sessions = Sessions::new(1, 10);
        let (h, _rx) = sessions.begin(CH, "s", Role::Master);
        let hub = crate::hub::Hub::new(1, 1);
        let (conn, _out) = hub.register(CH, Role::Master).unwrap();
        for _ in 0..3 {
            let input = PeerInput::Signal {
                action: Action::IceCandidate,
                payload: "eA==".into(),
                correlation_id: None,
                from: conn.clone(),
            };
            sessions.deliver(CH, &Role::Master, input);
        }
        assert_eq!(h.snapshot().dropped_inputs, 2);
    }

    #[test]
    fn the_ended_session_history_is_capped() {
        let sessions = Sessions::new(1, 10);
        for n in 0..15 {
            let (h, _rx) = sessions.begin(CH, &format!("s{n}"), Role::Master);
            sessions.finished(&h, &Role::Master, Duration::ZERO);
        }
        let kept = sessions.snapshot();
        assert_eq!(kept.len(), 10);
        // The oldest went first.
        assert_eq!(kept[0].stream_arn, "s5");
        let none = Sessions::new(1, 0);
        let (h, _rx) = none.begin(CH, "s", Role::Master);
        none.finished(&h, &Role::Master, Duration::ZERO);
        assert!(none.snapshot().is_empty());
    }

    #[test]
    fn the_ended_session_history_is_reserved_at_once_and_never_grows() {
        let sessions = Sessions::new(1, 100);
        let reserved = sessions.lock().ended.capacity();
        assert!(reserved >= 100, "{reserved}");
        for n in 0..250 {
            let (h, _rx) = sessions.begin(CH, &format!("s{n}"), Role::Master);
            sessions.finished(&h, &Role::Master, Duration::ZERO);
            assert_eq!(sessions.lock().ended.capacity(), reserved, "after {n}");
        }
        assert_eq!(sessions.snapshot().len(), 100);
    }
}
