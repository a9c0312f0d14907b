//! The per-process store: each subject's TAT in a map, on this process's
//! monotonic clock. It serves every check when there is no shared store
//! (`CACHE_DISABLED`), and the checks the shared store could not answer.
//!
//! Memory is bounded: a client address is a subject, and anyone can send
//! from many addresses. A TAT in the past is the same as none (a full
//! bucket), so those entries are dropped first; if the map is still full
//! of live subjects, the ones closest to a full bucket (the smallest TATs)
//! go, which at worst gives them back their burst early.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::gcra::{self, Decision, Quota};

/// Subjects held by default: about 10 MB at most.
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug)]
pub struct MemoryStore {
    origin: Instant,
    capacity: usize,
    tats: Mutex<HashMap<String, u64>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl MemoryStore {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            origin: Instant::now(),
            capacity: capacity.max(1),
            tats: Mutex::new(HashMap::new()),
        }
    }

    /// Microseconds on this store's clock.
    pub fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub fn check(&self, key: &str, quota: &Quota) -> Decision {
        self.check_at(key, quota, self.now())
    }

    /// A check at `now` (microseconds on this store's clock).
    pub fn check_at(&self, key: &str, quota: &Quota, now: u64) -> Decision {
        let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
        let (decision, next) = gcra::check(quota, tats.get(key).copied(), now);
        if let Some(next) = next {
            if !tats.contains_key(key) && tats.len() >= self.capacity {
                evict(&mut tats, self.capacity, now);
            }
            tats.insert(key.to_owned(), next);
        }
        decision
    }

    pub fn len(&self) -> usize {
        self.tats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Makes room in a full map: every subject whose TAT has passed, then, if
/// that freed less than a quarter, the smallest TATs down to three
/// quarters of the capacity (so that the sort is paid once per many
/// inserts, not on each).
fn evict(tats: &mut HashMap<String, u64>, capacity: usize, now: u64) {
    tats.retain(|_, tat| *tat > now);
    let target = capacity - capacity / 4;
    if tats.len() <= target {
        return;
    }
    let mut by_tat: Vec<(u64, String)> = tats.iter().map(|(k, t)| (*t, k.clone())).collect();
    by_tat.sort_unstable();
    for (_, key) in by_tat.into_iter().take(tats.len() - target) {
        tats.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000;

    #[test]
    fn subjects_have_their_own_buckets() {
        let store = MemoryStore::default();
        let quota = Quota::new(60, 2).unwrap();
        assert!(store.check_at("a", &quota, 0).allowed);
        assert!(store.check_at("a", &quota, 0).allowed);
        assert!(!store.check_at("a", &quota, 0).allowed);
        assert!(store.check_at("b", &quota, 0).allowed);
        assert!(store.check_at("a", &quota, SECOND).allowed);
    }

    #[test]
    fn expired_subjects_are_evicted_first() {
        let store = MemoryStore::with_capacity(4);
        let quota = Quota::new(60, 10).unwrap();
        for key in ["old1", "old2", "old3"] {
            store.check_at(key, &quota, 0);
        }
        // A subject with a bucket in use at the time of the eviction.
        for _ in 0..5 {
            store.check_at("busy", &quota, 10 * SECOND);
        }
        assert_eq!(store.len(), 4);
        // Full: the three whose TATs (1 s) have passed go, "busy" stays.
        store.check_at("new", &quota, 10 * SECOND);
        assert_eq!(store.len(), 2);
        // "busy" still has its spent bucket: 5 of 10 left, not a full one.
        assert_eq!(store.check_at("busy", &quota, 10 * SECOND).remaining, 4);
    }

    #[test]
    fn live_subjects_are_evicted_nearest_to_a_full_bucket_first() {
        let store = MemoryStore::with_capacity(4);
        let quota = Quota::new(60, 100).unwrap();
        // Subject i spends i + 1 requests: TATs i + 1 seconds ahead.
        for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
            for _ in 0..=i {
                store.check_at(key, &quota, 0);
            }
        }
        store.check_at("e", &quota, 0);
        // Down to three quarters (3), then "e" in: "a" went, the least spent.
        assert_eq!(store.len(), 4);
        assert_eq!(
            store.check_at("a", &quota, 0).remaining,
            99,
            "a starts afresh"
        );
        assert_eq!(
            store.check_at("d", &quota, 0).remaining,
            95,
            "d is remembered"
        );
    }

    #[test]
    fn refusals_store_nothing() {
        let store = MemoryStore::with_capacity(10);
        let quota = Quota::new(1, 1).unwrap();
        assert!(store.check_at("x", &quota, 0).allowed);
        for _ in 0..100 {
            assert!(!store.check_at("x", &quota, 0).allowed);
        }
        assert_eq!(store.len(), 1);
    }
}
