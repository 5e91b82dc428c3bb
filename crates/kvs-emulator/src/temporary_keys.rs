//! Temporary credentials the emulator hands out (the IoT credentials endpoint's), which its SigV4
//! checks accept beside the configured keys until they expire.
//!
//! Like AWS STS credentials, each carries a session token that every request must sign, and an
//! expiration after which requests are refused with `ExpiredTokenException`. Keys stay known for
//! a day after they expire (so a late request still hears "expired", not "invalid"); older ones
//! are forgotten when new keys are issued.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::config::AccessKey;

/// How long an expired key is still recognised (and refused as expired).
const REMEMBER_EXPIRED: Duration = Duration::from_secs(24 * 3600);

/// One temporary key: what the endpoint returned to a device.
#[derive(Debug, Clone)]
pub(crate) struct TemporaryKey {
    /// The key pair and its session token (always set).
    pub key: AccessKey,
    /// Requests signed after this instant are refused.
    pub expiration: SystemTime,
    /// The thing the credentials were issued to.
    pub thing: String,
}

/// The runtime store of temporary keys, by access key id.
#[derive(Default)]
pub(crate) struct TemporaryKeys(Mutex<HashMap<String, TemporaryKey>>);

impl TemporaryKeys {
    /// Issue a fresh key for `thing`, valid for `duration` from `now`.
    pub(crate) fn issue(&self, thing: &str, duration: Duration, now: SystemTime) -> TemporaryKey {
        let random = AccessKey::random();
        let id = format!("ASIA{}", random.access_key_id.trim_start_matches("AKIA"));
        let token: String = (0..3)
            .map(|_| AccessKey::random().secret_access_key)
            .collect::<Vec<_>>()
            .join("");
        let issued = TemporaryKey {
            key: AccessKey::new(id, random.secret_access_key).with_session_token(token),
            expiration: whole_seconds(now + duration),
            thing: thing.to_owned(),
        };
        let mut keys = self.0.lock().unwrap_or_else(|e| e.into_inner());
        keys.retain(|_, k| k.expiration + REMEMBER_EXPIRED > now);
        keys.insert(issued.key.access_key_id.clone(), issued.clone());
        issued
    }

    /// The key with this id, expired or not.
    pub(crate) fn get(&self, access_key_id: &str) -> Option<TemporaryKey> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(access_key_id)
            .cloned()
    }
}

/// `t` without its fraction of a second: the expiration a device is told (ISO 8601 to the
/// second) is then exactly the one enforced.
fn whole_seconds(t: SystemTime) -> SystemTime {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs())
}

impl std::fmt::Debug for TemporaryKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|k| k.len()).unwrap_or(0);
        f.debug_struct("TemporaryKeys").field("keys", &n).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_keys_are_distinct_session_keys_found_by_id() {
        let store = TemporaryKeys::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let a = store.issue("cam-1", Duration::from_secs(60), now);
        let b = store.issue("cam-1", Duration::from_secs(60), now);
        assert_ne!(a.key.access_key_id, b.key.access_key_id);
        assert!(a.key.access_key_id.starts_with("ASIA"));
        assert!(a.key.session_token.is_some());
        assert_eq!(a.expiration, now + Duration::from_secs(60));
        // Told to the second, so enforced to the second.
        let c = store.issue(
            "cam-1",
            Duration::from_secs(60),
            now + Duration::from_millis(999),
        );
        assert_eq!(c.expiration, now + Duration::from_secs(60));
        let found = store.get(&a.key.access_key_id).unwrap();
        assert_eq!(found.thing, "cam-1");
        assert_eq!(found.key.secret_access_key, a.key.secret_access_key);
        assert!(store.get("ASIANOPE").is_none());
    }

    #[test]
    fn long_expired_keys_are_forgotten_when_new_ones_are_issued() {
        let store = TemporaryKeys::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let old = store.issue("cam-1", Duration::from_secs(1), now);
        let later = now + REMEMBER_EXPIRED;
        store.issue(
            "cam-1",
            Duration::from_secs(1),
            later - Duration::from_secs(2),
        );
        assert!(
            store.get(&old.key.access_key_id).is_some(),
            "still remembered"
        );
        store.issue(
            "cam-1",
            Duration::from_secs(1),
            later + Duration::from_secs(2),
        );
        assert!(store.get(&old.key.access_key_id).is_none());
    }
}
