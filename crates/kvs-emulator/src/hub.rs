//! Who is connected to which channel, and delivery of frames to them.
//!
//! Each socket has a bounded outbound queue. A frame that does not fit is dropped and counted (the
//! service does not deliver to clients that do not read either); a socket never blocks another.
//!
//! Peer-to-peer messages for a recipient that is not connected are kept for the channel's
//! `MessageTtlSeconds` and delivered, in order, when it connects (protocol notes §8.5).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::api_error::ApiError;
use crate::link::{Connection, Outbound, Role};

/// A snapshot of one connection, for the inspection API.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    /// Emulator-wide connection id.
    pub id: u64,
    /// Channel ARN.
    pub channel_arn: String,
    /// `MASTER` or `VIEWER`.
    pub role: &'static str,
    /// Viewer client id.
    pub client_id: Option<String>,
    /// Frames dropped because the client did not read fast enough.
    pub dropped_frames: u64,
}

#[derive(Default)]
struct ChannelConnections {
    master: Option<Arc<Connection>>,
    viewers: HashMap<String, Arc<Connection>>,
}

/// Messages held per offline recipient; the oldest go first beyond this.
const HELD_PER_RECIPIENT: usize = 100;
/// Offline recipients with held messages; beyond this, messages to new ones are dropped.
const HELD_RECIPIENTS: usize = 10_000;

/// Messages waiting for an offline recipient, with when each expires.
type HeldMessages = HashMap<(String, Role), VecDeque<(Instant, String)>>;

/// All signaling sockets of the emulator.
pub(crate) struct Hub {
    channels: Mutex<HashMap<String, ChannelConnections>>,
    held: Mutex<HeldMessages>,
    next_id: AtomicU64,
    queue: usize,
    max_viewers: usize,
}

impl Hub {
    pub(crate) fn new(queue: usize, max_viewers: usize) -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            queue: queue.max(1),
            max_viewers,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ChannelConnections>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a socket. A new master replaces the old one, a viewer replaces its own id; both
    /// close the replaced socket. Too many viewers is ClientLimitExceeded.
    pub(crate) fn register(
        &self,
        channel_arn: &str,
        role: Role,
    ) -> Result<(Arc<Connection>, mpsc::Receiver<Outbound>), ApiError> {
        let (tx, rx) = mpsc::channel(self.queue);
        let conn = Arc::new(Connection::new(
            self.next_id.fetch_add(1, Ordering::Relaxed),
            channel_arn,
            role.clone(),
            tx,
        ));
        let replaced = {
            let mut channels = self.lock();
            let entry = channels.entry(channel_arn.to_owned()).or_default();
            match &role {
                Role::Master => entry.master.replace(conn.clone()),
                Role::Viewer(id) => {
                    if !entry.viewers.contains_key(id) && entry.viewers.len() >= self.max_viewers {
                        return Err(ApiError::client_limit(format!(
                            "The number of viewers connected to the channel exceeds the maximum of {}.",
                            self.max_viewers
                        )));
                    }
                    entry.viewers.insert(id.clone(), conn.clone())
                }
            }
        };
        if let Some(old) = replaced {
            tracing::info!(
                old = old.id,
                new = conn.id,
                "a newer connection replaces this one"
            );
            old.send(Outbound::Close("replaced by a newer connection".into()));
        }
        self.deliver_held(&conn, Instant::now());
        Ok((conn, rx))
    }

    /// Keep a frame for a recipient that is not connected, until `expires`.
    pub(crate) fn hold(
        &self,
        channel_arn: &str,
        recipient: &Role,
        frame: String,
        expires: Instant,
    ) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let key = (channel_arn.to_owned(), recipient.clone());
        if held.len() >= HELD_RECIPIENTS && !held.contains_key(&key) {
            let now = Instant::now();
            held.retain(|_, queue| {
                queue.retain(|(expires, _)| *expires > now);
                !queue.is_empty()
            });
            if held.len() >= HELD_RECIPIENTS {
                tracing::warn!(channel = %channel_arn, "too many offline recipients; message dropped");
                return;
            }
        }
        let queue = held.entry(key).or_default();
        if queue.len() >= HELD_PER_RECIPIENT {
            queue.pop_front();
        }
        queue.push_back((expires, frame));
    }

    /// Hand a newly connected socket what was kept for it and has not expired.
    fn deliver_held(&self, conn: &Connection, now: Instant) {
        // Only this recipient's queue: other expired messages are pruned by `hold` when the
        // store is full, not on every connect.
        let waiting = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(conn.channel_arn.clone(), conn.role.clone()));
        for (expires, frame) in waiting.into_iter().flatten() {
            if expires > now {
                conn.send(Outbound::Text(frame));
            }
        }
    }

    /// Messages kept for offline recipients, per channel ARN (expired ones included until their
    /// recipient connects or a full store prunes them).
    pub(crate) fn held_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts = std::collections::BTreeMap::new();
        for ((channel, _), queue) in held.iter() {
            *counts.entry(channel.clone()).or_default() += queue.len();
        }
        counts
    }

    /// Forget what was kept for a deleted channel.
    fn drop_held(&self, channel_arn: &str) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(channel, _), _| channel != channel_arn);
    }

    /// Forget a socket, unless a newer one already replaced it.
    pub(crate) fn unregister(&self, conn: &Connection) {
        let mut channels = self.lock();
        if let Some(entry) = channels.get_mut(&conn.channel_arn) {
            match &conn.role {
                Role::Master => {
                    if entry.master.as_ref().is_some_and(|m| m.id == conn.id) {
                        entry.master = None;
                    }
                }
                Role::Viewer(id) => {
                    if entry.viewers.get(id).is_some_and(|v| v.id == conn.id) {
                        entry.viewers.remove(id);
                    }
                }
            }
            if entry.master.is_none() && entry.viewers.is_empty() {
                channels.remove(&conn.channel_arn);
            }
        }
    }

    /// The current socket of a role on a channel.
    pub(crate) fn find(&self, channel_arn: &str, role: &Role) -> Option<Arc<Connection>> {
        let channels = self.lock();
        let entry = channels.get(channel_arn)?;
        match role {
            Role::Master => entry.master.clone(),
            Role::Viewer(id) => entry.viewers.get(id).cloned(),
        }
    }

    /// Close every socket of a channel.
    pub(crate) fn close_channel(&self, channel_arn: &str, reason: &str) {
        self.drop_held(channel_arn);
        let entry = self.lock().remove(channel_arn);
        if let Some(entry) = entry {
            for conn in entry.master.iter().chain(entry.viewers.values()) {
                conn.send(Outbound::Close(reason.to_owned()));
            }
        }
    }

    /// Send to the sockets of a channel that match `client_id` (None: the master; Some("*"): all).
    pub(crate) fn broadcast(
        &self,
        channel_arn: &str,
        client_id: Option<&str>,
        frame: Outbound,
    ) -> usize {
        let targets: Vec<Arc<Connection>> = {
            let channels = self.lock();
            let Some(entry) = channels.get(channel_arn) else {
                return 0;
            };
            match client_id {
                None => entry.master.iter().cloned().collect(),
                Some("*") => entry
                    .master
                    .iter()
                    .chain(entry.viewers.values())
                    .cloned()
                    .collect(),
                Some(id) => entry.viewers.get(id).into_iter().cloned().collect(),
            }
        };
        targets.iter().filter(|c| c.send(frame.clone())).count()
    }

    /// A snapshot of every connection.
    pub(crate) fn connections(&self) -> Vec<ConnectionInfo> {
        let channels = self.lock();
        let mut all: Vec<ConnectionInfo> = channels
            .values()
            .flat_map(|e| e.master.iter().chain(e.viewers.values()))
            .map(|c| ConnectionInfo {
                id: c.id,
                channel_arn: c.channel_arn.clone(),
                role: if c.role == Role::Master {
                    "MASTER"
                } else {
                    "VIEWER"
                },
                client_id: c.role.client_id().map(str::to_owned),
                dropped_frames: c.dropped(),
            })
            .collect();
        all.sort_by_key(|c| c.id);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CH: &str = "arn:aws:kinesisvideo:us-west-2:1:channel/c/1";

    #[test]
    fn a_full_outbound_queue_drops_and_counts() {
        let hub = Hub::new(2, 10);
        let (conn, mut rx) = hub.register(CH, Role::Master).unwrap();
        assert!(conn.send(Outbound::Text("1".into())));
        assert!(conn.send(Outbound::Text("2".into())));
        assert!(!conn.send(Outbound::Text("3".into())));
        assert_eq!(conn.dropped(), 1);
        assert_eq!(rx.try_recv().unwrap(), Outbound::Text("1".into()));
        assert!(conn.send(Outbound::Text("4".into())));
        assert_eq!(hub.connections()[0].dropped_frames, 1);
    }

    #[test]
    fn newest_master_wins_and_the_old_one_is_closed() {
        let hub = Hub::new(4, 10);
        let (old, mut old_rx) = hub.register(CH, Role::Master).unwrap();
        let (new, _new_rx) = hub.register(CH, Role::Master).unwrap();
        assert!(matches!(old_rx.try_recv().unwrap(), Outbound::Close(_)));
        assert_eq!(hub.find(CH, &Role::Master).unwrap().id, new.id);
        hub.unregister(&old);
        assert_eq!(
            hub.find(CH, &Role::Master).unwrap().id,
            new.id,
            "old socket must not unregister the new one"
        );
    }

    #[test]
    fn held_messages_reach_a_late_recipient_until_they_expire() {
        let hub = Hub::new(8, 10);
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(60);
        let past = now
            .checked_sub(std::time::Duration::from_millis(1))
            .unwrap();
        hub.hold(CH, &Role::Master, "offer".into(), later);
        hub.hold(CH, &Role::Master, "expired".into(), past);
        hub.hold(CH, &Role::Master, "candidate".into(), later);
        hub.hold(CH, &Role::Viewer("v".into()), "for v".into(), later);
        let (_conn, mut rx) = hub.register(CH, Role::Master).unwrap();
        assert_eq!(rx.try_recv().unwrap(), Outbound::Text("offer".into()));
        assert_eq!(rx.try_recv().unwrap(), Outbound::Text("candidate".into()));
        assert!(
            rx.try_recv().is_err(),
            "expired and other recipients' messages stay out"
        );
        let (_again, mut rx2) = hub.register(CH, Role::Master).unwrap();
        assert!(
            !matches!(rx2.try_recv(), Ok(Outbound::Text(_))),
            "delivered once"
        );
        hub.close_channel(CH, "deleted");
        let (_v, mut v_rx) = hub.register(CH, Role::Viewer("v".into())).unwrap();
        assert!(
            v_rx.try_recv().is_err(),
            "a deleted channel's messages are gone"
        );
    }

    #[test]
    fn viewer_cap_counts_distinct_ids() {
        let hub = Hub::new(4, 2);
        let _a = hub.register(CH, Role::Viewer("a".into())).unwrap();
        let _b = hub.register(CH, Role::Viewer("b".into())).unwrap();
        let _a2 = hub.register(CH, Role::Viewer("a".into())).unwrap();
        let err = hub.register(CH, Role::Viewer("c".into())).unwrap_err();
        assert_eq!(err.code, "ClientLimitExceededException");
    }
}
