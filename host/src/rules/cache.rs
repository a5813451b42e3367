//! The Actions cache: string values with a time to live, kept in host memory per rule.
//!
//! Every execution of a rule shares its rule's [`RuleCache`] (the WIT `cache` import);
//! nothing else survives between executions. Bounded (CONTRACT.md: 256 entries, values up
//! to 2 KiB, 15 minutes unless the rule says otherwise) so that no rule can grow the
//! server's memory, and best effort: in memory only, so a restart or a change to the rule
//! starts it empty, and a full cache makes room by evicting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Entries one rule may hold.
pub const CACHE_MAX_ENTRIES: usize = 256;
/// A value, in bytes of UTF-8.
pub const CACHE_MAX_VALUE_BYTES: usize = 2 * 1024;
/// A key, in bytes of UTF-8: keys are held too, so they are bounded like values.
pub const CACHE_MAX_KEY_BYTES: usize = 256;
/// The lifetime of an entry whose rule gives none.
pub const CACHE_DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
/// The longest lifetime a rule may ask for: this is a cache of short-lived data, not storage.
pub const CACHE_MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Why an entry was not stored; the message is what the rule's author reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error("cache key is {len} bytes, over the limit of {CACHE_MAX_KEY_BYTES}")]
    KeyTooLong { len: usize },
    #[error("cache value is {len} bytes, over the limit of {CACHE_MAX_VALUE_BYTES}")]
    ValueTooLarge { len: usize },
    #[error(
        "cache ttl must be between 1 ms and {} ms, not {ttl_ms} ms",
        CACHE_MAX_TTL.as_millis()
    )]
    InvalidTtl { ttl_ms: u64 },
}

/// A live entry as a rule reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedValue {
    pub value: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

#[derive(Debug)]
struct Entry {
    value: String,
    /// Expiry is decided on the monotonic clock, so a wall-clock step cannot revive or
    /// kill entries; the wall-clock time is only reported.
    expires: Instant,
    expires_at_ms: u64,
}

/// One rule's cache. Cloning shares it: the rule's every execution holds a clone.
#[derive(Debug, Clone, Default)]
pub struct RuleCache {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl RuleCache {
    /// An empty cache.
    pub fn new() -> Self {
        RuleCache::default()
    }

    /// The live entry under `key`.
    pub fn get(&self, key: &str) -> Option<CachedValue> {
        self.get_at(key, Instant::now())
    }

    /// Stores `value` under `key` for `ttl` ([`CACHE_DEFAULT_TTL`] when `None`).
    pub fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), CacheError> {
        self.set_at(key, value, ttl, Instant::now(), SystemTime::now())
    }

    /// Removes the entry under `key`; true if it was live.
    pub fn delete(&self, key: &str) -> bool {
        let now = Instant::now();
        self.lock()
            .remove(key)
            .is_some_and(|entry| entry.expires > now)
    }

    /// Live entries now.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.lock().values().filter(|e| e.expires > now).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters to a cache, so a poisoned lock is simply taken over.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get_at(&self, key: &str, now: Instant) -> Option<CachedValue> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(entry) if entry.expires > now => Some(CachedValue {
                value: entry.value.clone(),
                expires_at_ms: entry.expires_at_ms,
            }),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn set_at(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
        now: Instant,
        wall: SystemTime,
    ) -> Result<(), CacheError> {
        if key.len() > CACHE_MAX_KEY_BYTES {
            return Err(CacheError::KeyTooLong { len: key.len() });
        }
        if value.len() > CACHE_MAX_VALUE_BYTES {
            return Err(CacheError::ValueTooLarge { len: value.len() });
        }
        let ttl = ttl.unwrap_or(CACHE_DEFAULT_TTL);
        if ttl.is_zero() || ttl > CACHE_MAX_TTL {
            return Err(CacheError::InvalidTtl {
                ttl_ms: ttl.as_millis().try_into().unwrap_or(u64::MAX),
            });
        }
        let wall_ms: u64 = wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis().try_into().unwrap_or(u64::MAX))
            .unwrap_or(0);
        let entry = Entry {
            value: value.to_string(),
            expires: now + ttl,
            expires_at_ms: wall_ms.saturating_add(ttl.as_millis().try_into().unwrap_or(u64::MAX)),
        };
        let mut entries = self.lock();
        if !entries.contains_key(key) && entries.len() >= CACHE_MAX_ENTRIES {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= CACHE_MAX_ENTRIES {
                // The entry that would have gone first anyway makes room.
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| k.clone());
                if let Some(soonest) = soonest {
                    entries.remove(&soonest);
                }
            }
        }
        entries.insert(key.to_string(), entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lives_until_its_ttl() {
        let cache = RuleCache::new();
        let now = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_000);
        cache
            .set_at("k", "v", Some(Duration::from_secs(10)), now, wall)
            .unwrap();
        let got = cache.get_at("k", now + Duration::from_secs(9)).unwrap();
        assert_eq!(got.value, "v");
        assert_eq!(got.expires_at_ms, 1_010_000);
        assert_eq!(cache.get_at("k", now + Duration::from_secs(10)), None);
    }

    #[test]
    fn the_default_ttl_is_fifteen_minutes() {
        let cache = RuleCache::new();
        let now = Instant::now();
        cache
            .set_at("k", "v", None, now, SystemTime::now())
            .unwrap();
        assert!(cache.get_at("k", now + Duration::from_secs(899)).is_some());
        assert!(cache.get_at("k", now + Duration::from_secs(900)).is_none());
    }

    #[test]
    fn limits_are_refused_with_their_reason() {
        let cache = RuleCache::new();
        let big = "x".repeat(CACHE_MAX_VALUE_BYTES + 1);
        assert_eq!(
            cache.set("k", &big, None),
            Err(CacheError::ValueTooLarge { len: 2049 })
        );
        assert!(cache.set("k", &big[..2048], None).is_ok());
        let long_key = "k".repeat(CACHE_MAX_KEY_BYTES + 1);
        assert!(matches!(
            cache.set(&long_key, "v", None),
            Err(CacheError::KeyTooLong { .. })
        ));
        assert!(matches!(
            cache.set("k", "v", Some(Duration::ZERO)),
            Err(CacheError::InvalidTtl { ttl_ms: 0 })
        ));
        assert!(matches!(
            cache.set("k", "v", Some(CACHE_MAX_TTL + Duration::from_millis(1))),
            Err(CacheError::InvalidTtl { .. })
        ));
    }

    #[test]
    fn a_full_cache_evicts_the_entry_closest_to_expiry() {
        let cache = RuleCache::new();
        let now = Instant::now();
        let wall = SystemTime::now();
        for i in 0..CACHE_MAX_ENTRIES {
            let ttl = Duration::from_secs(100 + i as u64);
            cache
                .set_at(&format!("k{i}"), "v", Some(ttl), now, wall)
                .unwrap();
        }
        cache.set_at("new", "v", None, now, wall).unwrap();
        assert_eq!(cache.len(), CACHE_MAX_ENTRIES);
        assert!(cache.get_at("k0", now).is_none());
        assert!(cache.get_at("k1", now).is_some());
        assert!(cache.get_at("new", now).is_some());
        // Replacing an existing key never evicts another.
        cache.set_at("k1", "w", None, now, wall).unwrap();
        assert!(cache.get_at("k2", now).is_some());
    }

    #[test]
    fn expired_entries_make_room_before_live_ones_are_evicted() {
        let cache = RuleCache::new();
        let now = Instant::now();
        let wall = SystemTime::now();
        cache
            .set_at("short", "v", Some(Duration::from_millis(1)), now, wall)
            .unwrap();
        for i in 1..CACHE_MAX_ENTRIES {
            cache
                .set_at(&format!("k{i}"), "v", None, now, wall)
                .unwrap();
        }
        let later = now + Duration::from_secs(1);
        cache.set_at("new", "v", None, later, wall).unwrap();
        for i in 1..CACHE_MAX_ENTRIES {
            assert!(cache.get_at(&format!("k{i}"), later).is_some(), "k{i}");
        }
    }

    #[test]
    fn clones_share_and_new_caches_do_not() {
        let a = RuleCache::new();
        let shared = a.clone();
        let other = RuleCache::new();
        a.set("k", "v", None).unwrap();
        assert_eq!(shared.get("k").map(|c| c.value), Some("v".into()));
        assert_eq!(other.get("k"), None);
        assert!(shared.delete("k"));
        assert!(!a.delete("k"));
    }
}
