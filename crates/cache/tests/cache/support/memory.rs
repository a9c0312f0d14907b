//! A stand-in for the database: an in-memory `OrderRepository` that counts
//! its calls per operation, can hold one call between "state read" and
//! "return" (to force an interleaving without sleeps), and can fail a call.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use domain::{
    CacheState, Created, Cursor, Health, IdempotencyKey, ListDocument, ListQuery, NewOrder, Order,
    OrderDocument, OrderId, OrderRepository, OrderStatus, PoolStats, RepoError, RepoStats,
    ResetOutcome, StatusUpdate, Timestamp, Version,
};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Get,
    List,
    UpdateStatus,
    Delete,
    Reset,
    Seed,
}

const OPS: usize = 7;

/// Cheap to clone: clones share one store, like two service instances
/// sharing one database.
#[derive(Clone, Default)]
pub struct MemoryRepo {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    calls: [AtomicUsize; OPS],
    holds: Mutex<HashMap<Op, HoldPoint>>,
    failures: Mutex<HashMap<Op, usize>>,
}

#[derive(Default)]
struct State {
    orders: BTreeMap<OrderId, Order>,
    idempotency: HashMap<String, (u64, OrderId)>,
}

struct HoldPoint {
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// The test's side of a held call.
pub struct Hold {
    reached: Option<oneshot::Receiver<()>>,
    release: oneshot::Sender<()>,
}

impl Hold {
    /// Waits until the held call has read the state and stopped.
    pub async fn reached(&mut self) {
        if let Some(reached) = self.reached.take() {
            reached
                .await
                .expect("the held call was dropped before it got there");
        }
    }

    /// Lets the held call return. Dropping the `Hold` does too.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

fn injected_failure() -> RepoError {
    RepoError::Unavailable("injected: the database is down".into())
}

impl MemoryRepo {
    /// The ids of every order held, read directly (no call is counted):
    /// how a test learns the ids of orders `seed` made.
    pub fn order_ids(&self) -> Vec<OrderId> {
        self.state().orders.keys().copied().collect()
    }

    pub fn calls(&self, op: Op) -> usize {
        self.shared.calls[op as usize].load(Ordering::SeqCst)
    }

    /// The next call of `op` stops after reading the state until released.
    pub fn hold_next(&self, op: Op) -> Hold {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        self.shared.holds.lock().unwrap().insert(
            op,
            HoldPoint {
                reached: reached_tx,
                release: release_rx,
            },
        );
        Hold {
            reached: Some(reached_rx),
            release: release_tx,
        }
    }

    /// The next `count` calls of `op` fail (after any hold), as a database
    /// outage would.
    pub fn fail_next(&self, op: Op, count: usize) {
        self.shared.failures.lock().unwrap().insert(op, count);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    fn count(&self, op: Op) {
        self.shared.calls[op as usize].fetch_add(1, Ordering::SeqCst);
    }

    /// The point between "state read" and "return".
    async fn checkpoint(&self, op: Op) -> Result<(), RepoError> {
        let hold = self.shared.holds.lock().unwrap().remove(&op);
        if let Some(hold) = hold {
            let _ = hold.reached.send(());
            let _ = hold.release.await;
        }
        let mut failures = self.shared.failures.lock().unwrap();
        match failures.get_mut(&op) {
            Some(left) if *left > 0 => {
                *left -= 1;
                Err(injected_failure())
            }
            _ => Ok(()),
        }
    }
}

impl OrderRepository for MemoryRepo {
    async fn create(
        &self,
        order: NewOrder,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Created, RepoError> {
        self.count(Op::Create);
        let created = {
            let mut state = self.state();
            let replay = idempotency
                .as_ref()
                .and_then(|key| state.idempotency.get(key.key()).copied());
            match (replay, &idempotency) {
                (Some((fingerprint, id)), Some(key)) if fingerprint == key.fingerprint() => {
                    Created {
                        document: OrderDocument::render(&state.orders[&id]),
                        replayed: true,
                    }
                }
                (Some(_), _) => return Err(RepoError::IdempotencyMismatch),
                (None, _) => {
                    let stored = Order::create(&order, Timestamp::now());
                    if let Some(key) = &idempotency {
                        state
                            .idempotency
                            .insert(key.key().to_owned(), (key.fingerprint(), stored.id));
                    }
                    let document = OrderDocument::render(&stored);
                    state.orders.insert(stored.id, stored);
                    Created {
                        document,
                        replayed: false,
                    }
                }
            }
        };
        self.checkpoint(Op::Create).await?;
        Ok(created)
    }

    async fn get(&self, id: OrderId) -> Result<Option<OrderDocument>, RepoError> {
        self.count(Op::Get);
        let found = self.state().orders.get(&id).map(OrderDocument::render);
        self.checkpoint(Op::Get).await?;
        Ok(found)
    }

    async fn list(&self, query: ListQuery) -> Result<ListDocument, RepoError> {
        self.count(Op::List);
        let document = {
            let state = self.state();
            let matching: Vec<&Order> = state
                .orders
                .values()
                .rev()
                .filter(|order| query.status.is_none_or(|status| order.status == status))
                .collect();
            let total = matching.len() as u64;
            let (page, next_cursor) = match query.page {
                None => (matching, None),
                Some(page) => {
                    let after: Vec<&Order> = matching
                        .into_iter()
                        .filter(|order| {
                            page.after
                                .is_none_or(|cursor| order.id < cursor.last_seen())
                        })
                        .collect();
                    let limit = usize::from(page.limit.get());
                    let next = (after.len() > limit).then(|| Cursor::after(after[limit - 1].id));
                    (after.into_iter().take(limit).collect(), Some(next))
                }
            };
            let rendered: Vec<OrderDocument> =
                page.into_iter().map(OrderDocument::render).collect();
            ListDocument::render(
                total,
                rendered.iter().map(|document| &document.body()[..]),
                next_cursor,
            )
        };
        self.checkpoint(Op::List).await?;
        Ok(document)
    }

    async fn update_status(
        &self,
        id: OrderId,
        status: OrderStatus,
        expected: Option<Version>,
    ) -> Result<StatusUpdate, RepoError> {
        self.count(Op::UpdateStatus);
        let update = {
            let mut state = self.state();
            match state.orders.get_mut(&id) {
                None => StatusUpdate::NotFound,
                Some(order) if expected.is_some_and(|expected| expected != order.version) => {
                    StatusUpdate::VersionMismatch {
                        current: order.version,
                    }
                }
                Some(order) => {
                    order.status = status;
                    order.version = order.version.next();
                    order.updated_at = Timestamp::now();
                    StatusUpdate::Updated(OrderDocument::render(order))
                }
            }
        };
        self.checkpoint(Op::UpdateStatus).await?;
        Ok(update)
    }

    async fn delete(&self, id: OrderId) -> Result<bool, RepoError> {
        self.count(Op::Delete);
        let deleted = self.state().orders.remove(&id).is_some();
        self.checkpoint(Op::Delete).await?;
        Ok(deleted)
    }

    async fn reset(&self) -> Result<ResetOutcome, RepoError> {
        self.count(Op::Reset);
        let outcome = {
            let mut state = self.state();
            let items = state
                .orders
                .values()
                .map(|order| order.items.len() as u64)
                .sum();
            let orders = state.orders.len() as u64;
            state.orders.clear();
            ResetOutcome { orders, items }
        };
        self.checkpoint(Op::Reset).await?;
        Ok(outcome)
    }

    async fn seed(&self, count: u64) -> Result<u64, RepoError> {
        self.count(Op::Seed);
        {
            let now = Timestamp::now();
            let mut rng = rand::rng();
            let mut state = self.state();
            for _ in 0..count {
                let order = domain::fake::order(&mut rng, now);
                state.orders.insert(order.id, order);
            }
        }
        self.checkpoint(Op::Seed).await?;
        Ok(count)
    }

    async fn health(&self) -> Health {
        Health {
            database_ok: true,
            cache: CacheState::Disabled,
        }
    }

    fn stats(&self) -> RepoStats {
        RepoStats {
            pool: PoolStats {
                max_size: 7,
                ..PoolStats::default()
            },
            cache: None,
        }
    }
}
