//! `Storage`: the pools and the fragment cache behind one cheap handle, and
//! its implementation of the domain's repository trait.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use domain::{
    CacheState, Created, Health, IdempotencyKey, ListDocument, ListQuery, NewOrder, OrderDocument,
    OrderId, OrderRepository, OrderStatus, PoolStats, RepoError, RepoStats, ResetOutcome,
    StatusUpdate, Version,
};

use crate::fragments::{DEFAULT_BUDGET_BYTES, Fragments};
use crate::full_list::{FullListConfig, FullListStats, FullLists};
use crate::pool::Pools;
use crate::{DatabaseUrl, StorageError, ops};

/// How a `Storage` connects.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub url: DatabaseUrl,
    /// Connections in the pool; 0 picks the backend's default (8 for
    /// SQLite, 16 for MySQL).
    pub pool_size: usize,
    /// The longest wait for a connection: to get one from a busy pool, to
    /// open one, or to check an idle one. A database that cannot be reached
    /// is reported as unavailable after about this long, never a hang.
    pub pool_timeout: Duration,
    /// How `GET /orders` without parameters is held and sent.
    pub full_list: FullListConfig,
}

impl StorageConfig {
    pub const DEFAULT_POOL_TIMEOUT: Duration = Duration::from_secs(3);

    /// The backend's default pool size and a 3 second pool timeout.
    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            url,
            pool_size: 0,
            pool_timeout: Self::DEFAULT_POOL_TIMEOUT,
            full_list: FullListConfig::default(),
        }
    }
}

/// How long `health` waits for `SELECT 1`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the bulk admin operations (seed, reset) may take before their
/// caller is told the database is unavailable, and a full list at most
/// (it is cut sooner once its refresh stops moving).
const BULK_BUDGET: Duration = Duration::from_secs(120);

/// The orders store on SQLite or MySQL/MariaDB. Cloning is cheap and every
/// clone shares the pool.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    pools: Pools,
    fragments: Fragments,
    full_lists: FullLists,
    /// Connections the pool has handed out since the start.
    checkouts: Arc<AtomicU64>,
    /// How long a caller waits for one ordinary operation. Pool waits are
    /// bounded by the pool, but a query on a connection to a database that
    /// hangs (stopped, or a network that drops packets) is not: without
    /// this bound the request would wait for TCP to give up.
    budget: Duration,
    /// The runtime `connect` ran on, where every operation runs. A socket is
    /// driven by the runtime that opened it: pooled connections opened on a
    /// caller's runtime (an HTTP worker's single-thread one) would stall
    /// every other caller's queries whenever that runtime is busy.
    runtime: tokio::runtime::Handle,
}

impl Storage {
    /// Builds the pool, checks that the database answers within the pool
    /// timeout, and runs the embedded migrations of its backend. Needs a
    /// tokio runtime of either flavor.
    pub async fn connect(config: &StorageConfig) -> Result<Storage, StorageError> {
        let checkouts = Arc::new(AtomicU64::new(0));
        let pools = Pools::connect(config, checkouts.clone()).await?;
        tracing::info!(url = %config.url, "database connected and migrated");
        Ok(Storage {
            inner: Arc::new(Inner {
                pools,
                fragments: Fragments::new(DEFAULT_BUDGET_BYTES),
                full_lists: FullLists::new(config.full_list.clone()),
                checkouts,
                budget: config.pool_timeout * 3,
                runtime: tokio::runtime::Handle::current(),
            }),
        })
    }

    /// The real number of orders and items (counted, not from the counters).
    pub async fn count(&self) -> Result<(u64, u64), RepoError> {
        let storage = self.clone();
        self.spawned(BULK_BUDGET, async move { ops::count(&storage).await })
            .await
    }

    /// Where the chunks of the full list came from, since the start.
    pub fn full_list_stats(&self) -> FullListStats {
        self.inner.full_lists.stats()
    }

    /// Waits, at most `wait`, for the full list's refresh in progress and
    /// its keeper to finish writing the list to the database, so that the
    /// next process to start loads it instead of walking the tables;
    /// whether they finished. A stopping server calls it last.
    pub async fn full_list_kept(&self, wait: Duration) -> bool {
        self.inner.full_lists.kept(wait).await
    }

    /// Runs `task` on the runtime that connected, detached.
    pub(crate) fn spawn_detached(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.inner
            .runtime
            .spawn(tracing::Instrument::in_current_span(task));
    }

    pub(crate) fn pools(&self) -> &Pools {
        &self.inner.pools
    }

    pub(crate) fn fragments(&self) -> &Fragments {
        &self.inner.fragments
    }

    /// How long one ordinary operation may take.
    pub(crate) fn budget(&self) -> Duration {
        self.inner.budget
    }

    pub(crate) fn full_lists(&self) -> &FullLists {
        &self.inner.full_lists
    }

    /// Runs an operation as its own task, on the runtime that connected: if the caller's future is dropped
    /// (a client went away, a timeout fired), the operation still runs to its
    /// end instead of stopping between two statements of a transaction. The
    /// caller waits at most `budget`, then hears that the database is
    /// unavailable while the task finishes (or fails) on its own. The task
    /// keeps the caller's span, so its log lines carry the request id.
    pub(crate) fn spawned<T: Send + 'static>(
        &self,
        budget: Duration,
        operation: impl Future<Output = Result<T, StorageError>> + Send + 'static,
    ) -> impl Future<Output = Result<T, RepoError>> + Send + 'static {
        let runtime = self.inner.runtime.clone();
        async move {
            let task = runtime.spawn(tracing::Instrument::in_current_span(operation));
            match tokio::time::timeout(budget, task).await {
                Ok(Ok(result)) => result.map_err(RepoError::from),
                Ok(Err(error)) => Err(StorageError::Task(error).into()),
                Err(_) => Err(StorageError::Timeout.into()),
            }
        }
    }
}

impl OrderRepository for Storage {
    fn create(
        &self,
        order: NewOrder,
        idempotency: Option<IdempotencyKey>,
    ) -> impl Future<Output = Result<Created, RepoError>> + Send {
        let storage = self.clone();
        self.spawned(self.inner.budget, async move {
            ops::create(&storage, order, idempotency).await
        })
    }

    fn get(
        &self,
        id: OrderId,
    ) -> impl Future<Output = Result<Option<OrderDocument>, RepoError>> + Send {
        let storage = self.clone();
        self.spawned(
            self.inner.budget,
            async move { ops::get(&storage, id).await },
        )
    }

    fn list(
        &self,
        query: ListQuery,
    ) -> impl Future<Output = Result<ListDocument, RepoError>> + Send {
        let storage = self.clone();
        // A full list waits as long as the refresh it queues behind moves
        // (a walk of a huge table), which `full_list` watches; this only
        // bounds the whole.
        let budget = if query.is_full() {
            BULK_BUDGET
        } else {
            self.inner.budget
        };
        self.spawned(budget, async move { ops::list(&storage, query).await })
    }

    fn update_status(
        &self,
        id: OrderId,
        status: OrderStatus,
        expected: Option<Version>,
    ) -> impl Future<Output = Result<StatusUpdate, RepoError>> + Send {
        let storage = self.clone();
        self.spawned(self.inner.budget, async move {
            ops::update_status(&storage, id, status, expected).await
        })
    }

    fn delete(&self, id: OrderId) -> impl Future<Output = Result<bool, RepoError>> + Send {
        let storage = self.clone();
        self.spawned(
            self.inner.budget,
            async move { ops::delete(&storage, id).await },
        )
    }

    fn reset(&self) -> impl Future<Output = Result<ResetOutcome, RepoError>> + Send {
        let storage = self.clone();
        self.spawned(BULK_BUDGET, async move { ops::reset(&storage).await })
    }

    fn seed(&self, count: u64) -> impl Future<Output = Result<u64, RepoError>> + Send {
        let storage = self.clone();
        self.spawned(BULK_BUDGET, async move { ops::seed(&storage, count).await })
    }

    /// `database_ok` when `SELECT 1` answers within two seconds. The check
    /// runs as its own task, so giving up on it cuts nothing short.
    fn health(&self) -> impl Future<Output = Health> + Send {
        let storage = self.clone();
        // `spawned` already gives up after HEALTH_TIMEOUT.
        let check = self.spawned(HEALTH_TIMEOUT, async move { ops::ping(&storage).await });
        async move {
            let database_ok = check.await.is_ok();
            Health {
                database_ok,
                cache: CacheState::Disabled,
            }
        }
    }

    fn stats(&self) -> RepoStats {
        let status = self.inner.pools.status();
        RepoStats {
            pool: PoolStats {
                max_size: status.max_size as u64,
                size: status.size as u64,
                available: status.available as u64,
                waiting: status.waiting as u64,
                checkouts: self.inner.checkouts.load(Ordering::Relaxed),
            },
            cache: None,
        }
    }
}

/// A storage on a fresh SQLite file, for the crate's own tests; the
/// directory lives as long as the returned guard.
#[cfg(test)]
pub(crate) async fn temp_sqlite(pool_timeout: Duration) -> (tempfile::TempDir, Storage) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StorageConfig::new(DatabaseUrl::Sqlite(dir.path().join("test.db")));
    config.pool_timeout = pool_timeout;
    let storage = Storage::connect(&config).await.unwrap();
    (dir, storage)
}
