//! Single-flight: concurrent misses of one key in this process share one
//! call to the inner repository.
//!
//! The call is a `Shared` future: whoever awaits it drives it, so a leader
//! whose request is dropped does not strand its followers (they keep
//! polling the same future). The map holds only weak handles: when every
//! caller of a flight is gone the future is dropped with them, and the next
//! caller starts afresh instead of resuming a paused call.
//!
//! What makes joining a flight safe (never older than a write the joiner
//! could have seen complete) is its key, chosen by the caller: the list
//! version read from Redis, or the detail lease token in force.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use domain::RepoError;
use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};

/// A flight's result. `RepoError` is not `Clone`, so followers share it.
pub(crate) type Outcome<V> = Result<V, Arc<RepoError>>;

type Flight<V> = Shared<BoxFuture<'static, Outcome<V>>>;

pub(crate) struct Flights<K, V> {
    in_flight: Mutex<HashMap<K, WeakShared<BoxFuture<'static, Outcome<V>>>>>,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Self {
            in_flight: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, V> Flights<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone + Send + Sync + 'static,
{
    /// Joins the flight of `key`, or starts one with `call` when there is
    /// none (or only a dead one).
    pub(crate) async fn run(
        &self,
        key: K,
        call: impl FnOnce() -> BoxFuture<'static, Outcome<V>>,
    ) -> Outcome<V> {
        let flight = {
            let mut in_flight = self.lock();
            match in_flight.get(&key).and_then(WeakShared::upgrade) {
                Some(flight) => flight,
                None => {
                    let flight = call().shared();
                    if let Some(weak) = flight.downgrade() {
                        in_flight.insert(key.clone(), weak);
                    }
                    flight
                }
            }
        };
        let mut ticket = Ticket {
            flights: self,
            key,
            flight: Some(flight),
        };
        ticket.flight.as_mut().expect("set above").await
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, WeakShared<BoxFuture<'static, Outcome<V>>>>> {
        // A map of weak handles stays valid after any panic.
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One caller's hold on a flight. On drop (finished or cancelled) it lets go
/// of its handle first, then removes the map entry if the flight is over
/// (finished, or dropped by everyone), so the map never keeps dead entries.
struct Ticket<'a, K: Hash + Eq, V> {
    flights: &'a Flights<K, V>,
    key: K,
    flight: Option<Flight<V>>,
}

impl<K: Hash + Eq, V> Drop for Ticket<'_, K, V> {
    fn drop(&mut self) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        let finished = flight.peek().is_some();
        let mut in_flight = self
            .flights
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ours = in_flight
            .get(&self.key)
            .and_then(WeakShared::upgrade)
            .is_some_and(|entry| Shared::ptr_eq(&entry, &flight));
        drop(flight);
        let dead = in_flight
            .get(&self.key)
            .is_some_and(|weak| weak.upgrade().is_none());
        if (ours && finished) || dead {
            in_flight.remove(&self.key);
        }
    }
}

/// The error a follower gets: the same variant as the leader's, with the
/// leader's error as its source, so logs keep the cause.
pub(crate) fn unshare(error: Arc<RepoError>) -> RepoError {
    match &*error {
        RepoError::IdempotencyMismatch => RepoError::IdempotencyMismatch,
        RepoError::Unavailable(_) => RepoError::Unavailable(Box::new(SharedError(error))),
        RepoError::Internal(_) => RepoError::Internal(Box::new(SharedError(error))),
    }
}

#[derive(Debug)]
struct SharedError(Arc<RepoError>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_call_and_the_map_empties() {
        let flights = Arc::new(Flights::<u32, u32>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let mut callers = Vec::new();
        for _ in 0..20 {
            let flights = flights.clone();
            let calls = calls.clone();
            let mut released = released.clone();
            callers.push(tokio::spawn(async move {
                flights
                    .run(1, move || {
                        async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            released.wait_for(|r| *r).await.unwrap();
                            Ok(42)
                        }
                        .boxed()
                    })
                    .await
            }));
        }
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap(), 42);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn a_flight_dropped_by_everyone_is_forgotten() {
        let flights = Flights::<u32, u32>::default();
        let never = flights.run(1, || futures::future::pending().boxed());
        assert!(futures::poll!(Box::pin(never)).is_pending());
        assert_eq!(flights.len(), 0);
        let again = flights.run(1, || async { Ok(7) }.boxed()).await;
        assert_eq!(again.unwrap(), 7);
    }

    #[test]
    fn followers_get_the_leaders_error_kind_and_cause() {
        let cause: Box<dyn std::error::Error + Send + Sync> = "connection refused".into();
        let shared = Arc::new(RepoError::Unavailable(cause));
        let error = unshare(shared);
        assert!(matches!(error, RepoError::Unavailable(_)));
        let source = std::error::Error::source(&error).unwrap();
        assert_eq!(
            std::error::Error::source(source).unwrap().to_string(),
            "connection refused"
        );
    }
}
