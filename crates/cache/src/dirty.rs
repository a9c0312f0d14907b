//! The "dirty" mark: set when a write could not tell Redis about itself
//! (its invalidation failed or the breaker skipped it), and when the breaker
//! opens (contact was lost; Redis may have restarted from an old snapshot,
//! or another write's invalidation may have been lost with it). While it is
//! set, reads bypass the cache entirely. Only a full invalidation that
//! *started after* the last mark clears it: a mark made while a purge runs
//! may belong to a write that the purge did not cover.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Dirty {
    /// Bumped by every mark.
    marked: AtomicU64,
    /// The highest `marked` value that a completed purge covered.
    cleaned: AtomicU64,
}

/// What a purge covers: the marks made before it began.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Generation(u64);

impl Dirty {
    pub(crate) fn mark(&self) {
        self.marked.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn is_set(&self) -> bool {
        self.marked.load(Ordering::Acquire) != self.cleaned.load(Ordering::Acquire)
    }

    /// Call before a full invalidation starts.
    pub(crate) fn generation(&self) -> Generation {
        Generation(self.marked.load(Ordering::Acquire))
    }

    /// Call when a full invalidation that began at `generation` succeeded.
    pub(crate) fn cleaned(&self, generation: Generation) {
        self.cleaned.fetch_max(generation.0, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purge_clears_only_the_marks_made_before_it() {
        let dirty = Dirty::default();
        assert!(!dirty.is_set());
        dirty.mark();
        assert!(dirty.is_set());
        let purge = dirty.generation();
        dirty.mark();
        dirty.cleaned(purge);
        assert!(dirty.is_set(), "the second mark came during the purge");
        let purge = dirty.generation();
        dirty.cleaned(purge);
        assert!(!dirty.is_set());
    }
}
