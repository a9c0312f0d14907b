//! Rate-limited warnings: a dead Redis fails every request's cache call,
//! and one log line per request would drown the log. At most one warning
//! per interval, saying how many were held back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::CacheError;

pub(crate) const INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub(crate) struct Warnings {
    last: Mutex<Option<Instant>>,
    held_back: AtomicU64,
}

impl Warnings {
    pub(crate) fn warn(&self, error: &CacheError) {
        let now = Instant::now();
        {
            let mut last = self
                .last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| now.duration_since(at) < INTERVAL) {
                self.held_back.fetch_add(1, Ordering::Relaxed);
                return;
            }
            *last = Some(now);
        }
        let held_back = self.held_back.swap(0, Ordering::Relaxed);
        tracing::warn!(
            error = %error,
            cause = %Causes(error),
            similar_warnings_held_back = held_back,
            "Redis cache unavailable; serving from the database"
        );
    }
}

/// The error's source chain, `: `-separated, for one log line.
struct Causes<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut source = self.0.source();
        let mut first = true;
        while let Some(cause) = source {
            if !first {
                f.write_str(": ")?;
            }
            write!(f, "{cause}")?;
            first = false;
            source = cause.source();
        }
        Ok(())
    }
}
