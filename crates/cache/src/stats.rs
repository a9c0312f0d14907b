//! Hits, misses and errors per key space, as lock-free counters.
//!
//! A hit is a read served from Redis. A miss is a read that went to the
//! database: the key was absent or unusable, or the cache was bypassed
//! (breaker open, dirty, Redis failed). An error is a Redis operation that
//! failed or timed out; an invalidation touches both key spaces and counts
//! in both.

use std::sync::atomic::{AtomicU64, Ordering};

use domain::{CacheStats, KeySpaceStats};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Space {
    List,
    Detail,
    /// Invalidations: the version, detail keys and leases at once.
    Both,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    list: SpaceCounters,
    detail: SpaceCounters,
}

#[derive(Debug, Default)]
struct SpaceCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
}

impl SpaceCounters {
    fn snapshot(&self) -> KeySpaceStats {
        KeySpaceStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

impl Counters {
    pub(crate) fn hit(&self, space: Space) {
        self.each(space, |c| &c.hits);
    }

    pub(crate) fn miss(&self, space: Space) {
        self.each(space, |c| &c.misses);
    }

    pub(crate) fn error(&self, space: Space) {
        self.each(space, |c| &c.errors);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
            list: self.list.snapshot(),
            detail: self.detail.snapshot(),
        }
    }

    fn each(&self, space: Space, counter: impl Fn(&SpaceCounters) -> &AtomicU64) {
        let spaces: &[&SpaceCounters] = match space {
            Space::List => &[&self.list],
            Space::Detail => &[&self.detail],
            Space::Both => &[&self.list, &self.detail],
        };
        for space in spaces {
            counter(space).fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_space() {
        let counters = Counters::default();
        counters.hit(Space::List);
        counters.miss(Space::Detail);
        counters.error(Space::Both);
        let stats = counters.snapshot();
        assert_eq!(
            (stats.list.hits, stats.list.misses, stats.list.errors),
            (1, 0, 1)
        );
        assert_eq!(
            (stats.detail.hits, stats.detail.misses, stats.detail.errors),
            (0, 1, 1)
        );
    }
}
