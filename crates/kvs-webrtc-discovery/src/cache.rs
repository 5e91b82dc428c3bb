//! A small expiring cache in which concurrent callers for one key share one load.
//!
//! Each key has its own async mutex. The first caller that finds the slot empty or expired runs
//! the load while holding it; callers that arrive meanwhile wait on the mutex and then find the
//! fresh value. A failed load caches nothing, so the next caller tries again. Time is an input
//! (`now`), so expiry is tested without waiting.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// How a cache has been used since the client was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that went to the service (first use, expiry, invalidation, forced refresh).
    pub misses: u64,
    /// Invalidations that dropped an entry: an error showed it stale, or on request. A
    /// channel looked up by name is cached under its ARN too; both go in one invalidation.
    pub invalidations: u64,
}

type Slot<V> = Arc<tokio::sync::Mutex<Option<Entry<V>>>>;

struct Entry<V> {
    value: V,
    expires_at: SystemTime,
}

pub(crate) struct ExpiringCache<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
    max_entries: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
}

/// Whether a value came from the cache or from a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Cache,
    Loaded,
}

impl<K: Eq + Hash + Clone, V: Clone> ExpiringCache<K, V> {
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            max_entries: max_entries.max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        }
    }

    /// The cached value for `key` if it has not expired at `now()`, else the result of `load`,
    /// which returns the value and when it expires. `refresh` skips the cached value.
    pub(crate) async fn get_or_load<E, F, Fut>(
        &self,
        key: &K,
        now: impl Fn() -> SystemTime,
        refresh: bool,
        load: F,
    ) -> Result<(V, Source), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(V, SystemTime), E>>,
    {
        let slot = self.slot(key, now());
        let mut entry = slot.lock().await;
        if !refresh {
            if let Some(cached) = entry.as_ref().filter(|e| now() < e.expires_at) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok((cached.value.clone(), Source::Cache));
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let (value, expires_at) = load().await?;
        *entry = Some(Entry {
            value: value.clone(),
            expires_at,
        });
        Ok((value, Source::Loaded))
    }

    /// Store `value` under `key` as well (another name for what was just loaded), unless a load
    /// for `key` is running now (its result wins).
    pub(crate) fn insert(&self, key: &K, value: V, expires_at: SystemTime, now: SystemTime) {
        let slot = self.slot(key, now);
        if let Ok(mut entry) = slot.try_lock() {
            *entry = Some(Entry { value, expires_at });
        };
    }

    /// Forget every key for which `matches` is true (counted as one invalidation: the keys are
    /// one thing's several names). A load running now still stores its result.
    pub(crate) fn invalidate_where(&self, matches: impl Fn(&K) -> bool) {
        let keys: Vec<K> = self
            .lock_slots()
            .keys()
            .filter(|k| matches(k))
            .cloned()
            .collect();
        let mut forgot = false;
        for key in keys {
            forgot |= self.forget(&key);
        }
        if forgot {
            self.invalidations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops `key`'s entry; whether there was a slot for it.
    fn forget(&self, key: &K) -> bool {
        let slot = self.lock_slots().get(key).cloned();
        let Some(slot) = slot else {
            return false;
        };
        if let Ok(mut entry) = slot.try_lock() {
            *entry = None;
        } else {
            // A load holds the slot; replace the slot so later callers do not see its result.
            self.lock_slots().remove(key);
        }
        true
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
        }
    }

    fn slot(&self, key: &K, now: SystemTime) -> Slot<V> {
        let mut slots = self.lock_slots();
        if let Some(slot) = slots.get(key) {
            return slot.clone();
        }
        if slots.len() >= self.max_entries {
            // Bounded: drop expired or empty entries nobody is loading, then, if still full,
            // any idle entry.
            slots.retain(|_, slot| match slot.try_lock() {
                Ok(entry) => entry.as_ref().is_some_and(|e| now < e.expires_at),
                Err(_) => true,
            });
            if slots.len() >= self.max_entries {
                let idle = slots
                    .iter()
                    .find(|(_, slot)| slot.try_lock().is_ok())
                    .map(|(k, _)| k.clone());
                if let Some(idle) = idle {
                    slots.remove(&idle);
                }
            }
        }
        slots.entry(key.clone()).or_default().clone()
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, HashMap<K, Slot<V>>> {
        // The map holds no invariant a panic could break.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    async fn load_value(
        cache: &ExpiringCache<&'static str, u32>,
        now: SystemTime,
        value: u32,
    ) -> (u32, Source) {
        cache
            .get_or_load::<(), _, _>(
                &"k",
                || now,
                false,
                || async move { Ok((value, now + Duration::from_secs(10))) },
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn values_are_served_until_they_expire() {
        let cache = ExpiringCache::new(8);
        assert_eq!(load_value(&cache, t(0), 1).await, (1, Source::Loaded));
        assert_eq!(load_value(&cache, t(9), 2).await, (1, Source::Cache));
        assert_eq!(load_value(&cache, t(10), 3).await, (3, Source::Loaded));
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 1,
                misses: 2,
                invalidations: 0
            }
        );
    }

    #[tokio::test]
    async fn a_value_stored_under_a_second_key_is_served_until_it_expires() {
        let cache = ExpiringCache::new(8);
        load_value(&cache, t(0), 1).await;
        cache.insert(&"alias", 1, t(60), t(0));
        let alias = |now| {
            cache.get_or_load::<(), _, _>(
                &"alias",
                move || now,
                false,
                || async { Ok((9, t(200))) },
            )
        };
        assert_eq!(alias(t(59)).await.unwrap(), (1, Source::Cache));
        assert_eq!(alias(t(60)).await.unwrap(), (9, Source::Loaded));
        // Both names of one thing dropped together count once.
        cache.invalidate_where(|_| true);
        assert_eq!(cache.stats().invalidations, 1);
        assert_eq!(load_value(&cache, t(61), 2).await, (2, Source::Loaded));
    }

    #[tokio::test]
    async fn invalidation_and_refresh_force_a_load() {
        let cache = ExpiringCache::new(8);
        load_value(&cache, t(0), 1).await;
        cache.invalidate_where(|k| *k == "k");
        assert_eq!(load_value(&cache, t(1), 2).await, (2, Source::Loaded));
        let refreshed = cache
            .get_or_load::<(), _, _>(&"k", || t(2), true, || async { Ok((3, t(100))) })
            .await
            .unwrap();
        assert_eq!(refreshed, (3, Source::Loaded));
        assert_eq!(cache.stats().invalidations, 1);
    }

    #[tokio::test]
    async fn failed_loads_cache_nothing() {
        let cache: ExpiringCache<&str, u32> = ExpiringCache::new(8);
        let failed = cache
            .get_or_load(&"k", || t(0), false, || async { Err("boom") })
            .await;
        assert_eq!(failed, Err("boom"));
        assert_eq!(load_value(&cache, t(0), 7).await, (7, Source::Loaded));
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_load() {
        let cache = Arc::new(ExpiringCache::<&'static str, u32>::new(8));
        let loads = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, loads, mut released) = (cache.clone(), loads.clone(), released.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_load::<(), _, _>(
                        &"k",
                        || t(0),
                        false,
                        || async move {
                            loads.fetch_add(1, Ordering::SeqCst);
                            released.wait_for(|r| *r).await.unwrap();
                            Ok((42, t(60)))
                        },
                    )
                    .await
                    .unwrap()
                    .0
            }));
        }
        // Every task is queued behind the first load before it is released.
        while cache.stats().misses == 0 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 42);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(cache.stats().hits, 7);
    }

    #[tokio::test]
    async fn the_map_is_bounded() {
        let cache = ExpiringCache::<u32, u32>::new(4);
        for key in 0..100 {
            cache
                .get_or_load::<(), _, _>(&key, || t(0), false, || async { Ok((key, t(60))) })
                .await
                .unwrap();
        }
        assert!(cache.lock_slots().len() <= 4);
    }
}
