//! The decision for one request: the shared store when there is one and it
//! answers in time, the per-process store otherwise. Never an error: a
//! limiter that cannot reach Redis limits per process (each instance then
//! allows the whole quota, so N instances allow up to N times it) rather
//! than failing or waving requests through.
//!
//! After a failure the shared store is left alone for [`STORE_RETRY`], one
//! request then tries it again: a Redis that is down or hung costs the
//! requests nothing but that one try per second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::RateLimitError;
use crate::gcra::{Decision, Quota};
use crate::memory::MemoryStore;
use crate::store::RateStore;
use crate::subject::Subject;

/// How long the shared store is skipped after it failed.
pub const STORE_RETRY: Duration = Duration::from_secs(1);
/// At most one warning about the shared store per this interval.
const WARN_INTERVAL: Duration = Duration::from_secs(5);

/// Where a decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The shared store.
    Shared,
    /// The per-process store, there being no shared one.
    Process,
    /// The per-process store, because the shared one failed or is being
    /// skipped after a failure.
    Fallback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub decision: Decision,
    pub source: Source,
}

pub struct Limiter {
    quota: Option<Quota>,
    shared: Option<Arc<dyn RateStore>>,
    /// A bound of its own on the shared store's answer, whatever the store
    /// does about time.
    timeout: Duration,
    memory: MemoryStore,
    skip_until: Mutex<Option<Instant>>,
    last_warning: Mutex<Option<Instant>>,
    held_back: AtomicU64,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("quota", &self.quota)
            .field("shared", &self.shared.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// `quota: None` limits nothing; `shared: None` limits per process.
    pub fn new(
        quota: Option<Quota>,
        shared: Option<Arc<dyn RateStore>>,
        timeout: Duration,
    ) -> Self {
        Self::with_memory(quota, shared, timeout, MemoryStore::default())
    }

    pub fn with_memory(
        quota: Option<Quota>,
        shared: Option<Arc<dyn RateStore>>,
        timeout: Duration,
        memory: MemoryStore,
    ) -> Self {
        Self {
            quota,
            shared,
            timeout,
            memory,
            skip_until: Mutex::new(None),
            last_warning: Mutex::new(None),
            held_back: AtomicU64::new(0),
        }
    }

    /// A limiter that limits nothing.
    pub fn off() -> Self {
        Self::new(None, None, Duration::ZERO)
    }

    pub fn quota(&self) -> Option<&Quota> {
        self.quota.as_ref()
    }

    /// `None` when rate limiting is off.
    pub async fn check(&self, subject: &Subject) -> Option<Checked> {
        let quota = self.quota.as_ref()?;
        let key = subject.storage_key();
        let Some(shared) = &self.shared else {
            return Some(Checked {
                decision: self.memory.check(&key, quota),
                source: Source::Process,
            });
        };
        if self.may_try_shared(Instant::now()) {
            let answer = tokio::time::timeout(self.timeout, shared.check(&key, quota))
                .await
                .unwrap_or(Err(RateLimitError::Timeout(self.timeout)));
            match answer {
                Ok(decision) => {
                    self.lock_skip().take();
                    return Some(Checked {
                        decision,
                        source: Source::Shared,
                    });
                }
                Err(error) => {
                    *self.lock_skip() = Some(Instant::now() + STORE_RETRY);
                    self.warn(&error);
                }
            }
        }
        Some(Checked {
            decision: self.memory.check(&key, quota),
            source: Source::Fallback,
        })
    }

    /// Whether this check may ask the shared store. The first check after
    /// the pause pushes the next try one pause further, so that while the
    /// store stays down only one check a pause waits on it.
    fn may_try_shared(&self, now: Instant) -> bool {
        let mut skip = self.lock_skip();
        match *skip {
            Some(until) if now < until => false,
            Some(_) => {
                *skip = Some(now + STORE_RETRY);
                true
            }
            None => true,
        }
    }

    fn lock_skip(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // An instant stays valid after any panic.
        self.skip_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn warn(&self, error: &RateLimitError) {
        let now = Instant::now();
        {
            let mut last = self
                .last_warning
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|at| now.duration_since(at) < WARN_INTERVAL) {
                self.held_back.fetch_add(1, Ordering::Relaxed);
                return;
            }
            *last = Some(now);
        }
        tracing::warn!(
            %error,
            similar_warnings_held_back = self.held_back.swap(0, Ordering::Relaxed),
            "rate-limit store unavailable; limiting per process"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use futures::future::BoxFuture;

    use super::*;

    /// A shared store that fails, hangs or answers as told, counting calls.
    struct Scripted {
        mode: Mutex<Mode>,
        calls: AtomicUsize,
        inner: MemoryStore,
    }

    #[derive(Clone, Copy)]
    enum Mode {
        Answer,
        Fail,
        Hang,
    }

    impl Scripted {
        fn new(mode: Mode) -> Arc<Self> {
            Arc::new(Self {
                mode: Mutex::new(mode),
                calls: AtomicUsize::new(0),
                inner: MemoryStore::default(),
            })
        }

        fn set(&self, mode: Mode) {
            *self.mode.lock().unwrap() = mode;
        }
    }

    impl RateStore for Scripted {
        fn check<'a>(
            &'a self,
            key: &'a str,
            quota: &'a Quota,
        ) -> BoxFuture<'a, Result<Decision, RateLimitError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mode = *self.mode.lock().unwrap();
            Box::pin(async move {
                match mode {
                    Mode::Answer => Ok(self.inner.check(key, quota)),
                    Mode::Fail => Err(RateLimitError::Store("refused".into())),
                    Mode::Hang => std::future::pending().await,
                }
            })
        }
    }

    fn limiter(store: &Arc<Scripted>, per_minute: u32) -> Limiter {
        let shared: Arc<dyn RateStore> = store.clone();
        Limiter::new(
            Some(Quota::new(per_minute, per_minute).unwrap()),
            Some(shared),
            Duration::from_millis(50),
        )
    }

    fn subject() -> Subject {
        Subject::address("192.0.2.1".parse().unwrap())
    }

    #[tokio::test]
    async fn off_limits_nothing() {
        assert_eq!(Limiter::off().check(&subject()).await, None);
    }

    #[tokio::test]
    async fn the_shared_store_answers_when_it_can() {
        let store = Scripted::new(Mode::Answer);
        let limiter = limiter(&store, 2);
        let sources: Vec<_> = [
            limiter.check(&subject()).await.unwrap(),
            limiter.check(&subject()).await.unwrap(),
            limiter.check(&subject()).await.unwrap(),
        ]
        .iter()
        .map(|checked| (checked.source, checked.decision.allowed))
        .collect();
        assert_eq!(
            sources,
            [
                (Source::Shared, true),
                (Source::Shared, true),
                (Source::Shared, false)
            ]
        );
    }

    #[tokio::test]
    async fn a_failing_store_is_replaced_by_the_process_limit_and_skipped_for_a_while() {
        let store = Scripted::new(Mode::Fail);
        let limiter = limiter(&store, 3);
        let mut allowed = 0;
        for _ in 0..10 {
            let checked = limiter.check(&subject()).await.unwrap();
            assert_eq!(checked.source, Source::Fallback);
            allowed += usize::from(checked.decision.allowed);
        }
        assert_eq!(allowed, 3, "the process applies the quota itself");
        assert_eq!(
            store.calls.load(Ordering::SeqCst),
            1,
            "tried once, then skipped"
        );
        store.set(Mode::Answer);
        std::thread::sleep(STORE_RETRY);
        let checked = limiter.check(&subject()).await.unwrap();
        assert_eq!(
            checked.source,
            Source::Shared,
            "tried again after the pause"
        );
    }

    #[tokio::test]
    async fn a_hung_store_costs_its_timeout_once() {
        let store = Scripted::new(Mode::Hang);
        let limiter = limiter(&store, 100);
        let checked = limiter.check(&subject()).await.unwrap();
        assert_eq!(checked.source, Source::Fallback);
        assert!(checked.decision.allowed);
        limiter.check(&subject()).await.unwrap();
        assert_eq!(store.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn without_a_shared_store_the_process_limits() {
        let limiter = Limiter::new(Some(Quota::new(1, 1).unwrap()), None, Duration::ZERO);
        let first = limiter.check(&subject()).await.unwrap();
        assert_eq!(
            (first.source, first.decision.allowed),
            (Source::Process, true)
        );
        assert!(!limiter.check(&subject()).await.unwrap().decision.allowed);
    }
}
