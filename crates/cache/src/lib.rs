//! The Redis cache of the orders service: [`CachedRepository`] wraps any
//! [`OrderRepository`] and implements it again, keeping the original
//! service's keys and serving cached bodies as the exact bytes stored.
//!
//! # Keys (`{p}` is [`CacheConfig::key_prefix`], empty by default)
//!
//! | key | holds |
//! |---|---|
//! | `{p}orders:list:version` | integer, absent = 0; `INCR` after every committed write |
//! | `{p}orders:list:{v}` | `GET /orders` body (no parameters) at version `v` |
//! | `{p}orders:list:{v}:{canonical}` | other list queries ([`ListQuery::canonical`]) |
//! | `{p}orders:detail:{order_id}` | `GET /orders/{id}` body |
//! | `{p}orders:detail-lease:{order_id}` | token of the one reader allowed to fill that detail key (5 s) |
//! | `{p}orders:list-stamp:{v}[:{canonical}]` | random name of the list payload beside it |
//! | `{p}orders:detail-epoch` | a random integer, replaced by every full invalidation and whenever a script finds it or the version missing |
//! | `{p}ratelimit:ip:{address}`, `{p}ratelimit:key:{prefix}` | the rate limiter's budgets ([`RedisRateStore`]), not the cache's |
//!
//! Payloads expire after the TTL ± 10 %.
//!
//! # Consistency
//!
//! Once a write has returned, no read returns the state before it:
//! - **list**: a reader reads the version *before* the database (one Lua
//!   script reads the version and the payload under it). A reader that read
//!   old rows read an old version, and stores (only if that version is still
//!   current) under a key no later reader asks for. The version is read
//!   with the epoch, which changes when Redis has lost the version, so a
//!   number that comes round again after a restart is a new pair (see the
//!   `scripts` module).
//! - **detail**: on a miss the reader takes a lease (a random token) and
//!   notes the epoch, in the same script; after the database read it stores
//!   only if its lease is still there and the epoch unchanged. A writer,
//!   after commit, `INCR`s the version and deletes the detail key *and the
//!   lease* in one round trip, so a reader that read the old row cannot
//!   store it. Reset and seed bump the version and the epoch, then delete
//!   every detail key with `SCAN` + `UNLINK` (the epoch closes the SCAN's
//!   race, see `RedisCache::purge`).
//! - **stampede**: concurrent misses of one key in this process share one
//!   inner call (per list version and query, per order and lease token).
//!
//! # Faults
//!
//! Every Redis operation is bounded by [`CacheConfig::timeout`]; a circuit
//! breaker skips Redis after 3 consecutive failures (1 s cool-down, doubling
//! to 10 s, one probe per cool-down). A request never fails because of the
//! cache. A write whose invalidation failed or was skipped, or an opening
//! of the breaker, marks the cache "dirty": reads then bypass it, and a
//! background repair (a full invalidation, as reset does) must succeed
//! before it is used again. Other instances that could reach Redis all
//! along are not told of such a write until then; once this instance's
//! repair runs, the version and epoch bumps reach them too. Until then they
//! may serve the pre-write entry, for at most the TTL.
//!
//! # TLS
//!
//! `rediss://` uses rustls, trusting the system's authorities or only
//! [`CacheConfig::ca_certificates`]. A handshake that fails is a failed
//! connection like any other: counted, logged, and served around.

mod breaker;
mod connection;
mod dirty;
mod error;
mod flight;
mod keys;
mod near;
mod rate_limit;
mod redis_cache;
mod scripts;
mod stats;
mod tls;
mod warnings;

use std::sync::Arc;
use std::time::Duration;

pub use deadpool_redis::redis;
use domain::{
    CacheState, Created, Health, IdempotencyKey, ListDocument, ListQuery, NewOrder, OrderDocument,
    OrderId, OrderRepository, OrderStatus, RepoError, RepoStats, ResetOutcome, StatusUpdate,
    Version,
};
pub use error::CacheError;
pub use rate_limit::RedisRateStore;
pub use tls::CaCertificates;

use crate::redis_cache::{DetailLookup, ListLookup, RedisCache};

/// How the cache is set up; the server fills it from the environment.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `redis://` or `rediss://` (TLS), with the redis crate's URL options
    /// (`rediss://host/#insecure` skips the certificate checks).
    pub redis_url: String,
    /// `REDIS_CA_CERT`: the authorities a `rediss://` Redis's certificate
    /// must chain to; `None` trusts the system's.
    pub ca_certificates: Option<CaCertificates>,
    /// `ORDERS_CACHE_TTL`: payload lifetime (± 10 % jitter).
    pub ttl: Duration,
    /// `CACHE_TIMEOUT_MS`: the bound on every Redis operation.
    pub timeout: Duration,
    /// `CACHE_DISABLED`: no pool, no connection, pure pass-through.
    pub disabled: bool,
    /// Put before every key; empty in production so the keys are the
    /// original's, unique per test so tests can share one Redis.
    pub key_prefix: String,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            redis_url: "redis://localhost:6379/0".to_owned(),
            ca_certificates: None,
            ttl: Duration::from_secs(30),
            timeout: Duration::from_millis(50),
            disabled: false,
            key_prefix: String::new(),
        }
    }
}

/// An [`OrderRepository`] with a Redis cache in front of `R`'s reads.
pub struct CachedRepository<R> {
    inner: Arc<R>,
    /// `None` when the cache is disabled.
    cache: Option<Arc<RedisCache>>,
}

impl<R> Clone for CachedRepository<R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            cache: self.cache.clone(),
        }
    }
}

impl<R: OrderRepository> CachedRepository<R> {
    /// Does no I/O. Disabled: no pool is even built. Enabled: the pool
    /// connects on first use, so a Redis that is absent at start fails
    /// nothing. Fails only on a URL that is not a Redis URL, or certificate
    /// authorities given for a URL without TLS.
    pub fn new(inner: R, config: CacheConfig) -> Result<Self, CacheError> {
        let cache = if config.disabled {
            None
        } else {
            Some(Arc::new(RedisCache::new(&config)?))
        };
        Ok(Self {
            inner: Arc::new(inner),
            cache,
        })
    }

    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// What reset and seed do to the cache: a new list version, a new
    /// detail epoch, every detail key deleted. For callers that changed the
    /// database behind the repository's back (xtask's bulk operations).
    /// Ok when the cache is disabled.
    pub async fn invalidate_all(&self) -> Result<(), CacheError> {
        match &self.cache {
            Some(cache) => cache.invalidate_all().await,
            None => Ok(()),
        }
    }

    /// Before the process exits: if a write could not tell Redis about
    /// itself and the repair has not run yet, run it now, retrying until
    /// `within` has passed. Otherwise the entries from before that write
    /// would outlive this process on every other instance (until their TTL),
    /// and no one would be left to purge them. True when the cache is clean
    /// (or disabled) at the end.
    pub async fn settle(&self, within: Duration) -> bool {
        match &self.cache {
            Some(cache) => cache.settle(within).await,
            None => true,
        }
    }
}

/// The same full invalidation without a repository: for tools that changed
/// a database this service may not even open (a migration from or back to
/// the original service). Ok when the cache is disabled.
pub async fn invalidate_all(config: &CacheConfig) -> Result<(), CacheError> {
    if config.disabled {
        return Ok(());
    }
    RedisCache::new(config)?.invalidate_all().await
}

type Cache = Option<Arc<RedisCache>>;

async fn after_bulk_write(cache: &Cache) {
    if let Some(cache) = cache {
        // A failure has already marked the cache dirty and been logged.
        let _ = cache.invalidate_all().await;
    }
}

async fn after_order_write(cache: &Cache, id: OrderId) {
    if let Some(cache) = cache {
        cache.order_written(id).await;
    }
}

/// Runs a write and its invalidation as one task, so that a caller that
/// goes away after the commit (a dropped request, a forced shutdown) cannot
/// skip the invalidation and leave a stale entry behind.
async fn detached<T: Send + 'static>(
    write: impl Future<Output = Result<T, RepoError>> + Send + 'static,
) -> Result<T, RepoError> {
    tokio::spawn(tracing::Instrument::in_current_span(write))
        .await
        .unwrap_or_else(|error| Err(RepoError::Internal(Box::new(error))))
}

impl<R: OrderRepository> OrderRepository for CachedRepository<R> {
    async fn create(
        &self,
        order: NewOrder,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Created, RepoError> {
        let (inner, cache) = (Arc::clone(&self.inner), self.cache.clone());
        detached(async move {
            let created = inner.create(order, idempotency).await?;
            // A replay changed nothing, so there is nothing to invalidate.
            if !created.replayed {
                after_order_write(&cache, created.document.id()).await;
            }
            Ok(created)
        })
        .await
    }

    async fn get(&self, id: OrderId) -> Result<Option<OrderDocument>, RepoError> {
        let Some(cache) = &self.cache else {
            return self.inner.get(id).await;
        };
        match cache.detail_lookup(id).await {
            DetailLookup::Hit(document) => Ok(Some(document)),
            DetailLookup::Bypass => self.inner.get(id).await,
            DetailLookup::Miss(lease) => {
                // Joining a flight is safe only under the lease in force:
                // it still holding proves no write invalidated this order
                // since the flight's reader took it, before its read.
                let key = (id, lease.holder.clone());
                let fill = || Arc::clone(cache).detail_fill(Arc::clone(&self.inner), id, lease);
                cache
                    .detail_flights
                    .run(key, fill)
                    .await
                    .map_err(flight::unshare)
            }
        }
    }

    async fn list(&self, query: ListQuery) -> Result<ListDocument, RepoError> {
        let Some(cache) = &self.cache else {
            return self.inner.list(query).await;
        };
        let canonical = query.canonical();
        match cache.list_lookup(canonical.as_deref()).await {
            ListLookup::Hit(document) => Ok(document),
            ListLookup::Bypass => self.inner.list(query).await,
            ListLookup::Miss(generation) => {
                // The generation in the key keeps flights from spanning a
                // write (which bumps the version before it returns) or a
                // loss of Redis's data (which comes with a new epoch).
                let key = (generation.clone(), canonical);
                let fill =
                    || Arc::clone(cache).list_fill(Arc::clone(&self.inner), query, generation);
                cache
                    .list_flights
                    .run(key, fill)
                    .await
                    .map_err(flight::unshare)
            }
        }
    }

    async fn update_status(
        &self,
        id: OrderId,
        status: OrderStatus,
        expected: Option<Version>,
    ) -> Result<StatusUpdate, RepoError> {
        let (inner, cache) = (Arc::clone(&self.inner), self.cache.clone());
        detached(async move {
            let update = inner.update_status(id, status, expected).await?;
            if let StatusUpdate::Updated(document) = &update {
                after_order_write(&cache, document.id()).await;
            }
            Ok(update)
        })
        .await
    }

    async fn delete(&self, id: OrderId) -> Result<bool, RepoError> {
        let (inner, cache) = (Arc::clone(&self.inner), self.cache.clone());
        detached(async move {
            let deleted = inner.delete(id).await?;
            if deleted {
                after_order_write(&cache, id).await;
            }
            Ok(deleted)
        })
        .await
    }

    async fn reset(&self) -> Result<ResetOutcome, RepoError> {
        let (inner, cache) = (Arc::clone(&self.inner), self.cache.clone());
        detached(async move {
            let outcome = inner.reset().await?;
            after_bulk_write(&cache).await;
            Ok(outcome)
        })
        .await
    }

    async fn seed(&self, count: u64) -> Result<u64, RepoError> {
        let (inner, cache) = (Arc::clone(&self.inner), self.cache.clone());
        detached(async move {
            let created = inner.seed(count).await?;
            after_bulk_write(&cache).await;
            Ok(created)
        })
        .await
    }

    async fn health(&self) -> Health {
        let Some(cache) = &self.cache else {
            let mut health = self.inner.health().await;
            health.cache = CacheState::Disabled;
            return health;
        };
        let (mut health, cache) = futures::join!(self.inner.health(), cache.state());
        health.cache = cache;
        health
    }

    /// The inner stats with the cache's counters; `cache: None` when the
    /// cache is disabled (there is no cache layer to count).
    fn stats(&self) -> RepoStats {
        let mut stats = self.inner.stats();
        stats.cache = self.cache.as_ref().map(|cache| cache.counters.snapshot());
        stats
    }
}
