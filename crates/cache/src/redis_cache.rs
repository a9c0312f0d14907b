//! Everything the decorator does with Redis: guarded calls (breaker and
//! timeout), the read steps (lookup, then fill after the database read),
//! the invalidations, and the repair of a dirty cache.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{self, RedisResult, Value};
use domain::{CacheState, ListDocument, ListQuery, OrderDocument, OrderId, OrderRepository};
use futures::future::{BoxFuture, FutureExt};
use rand::Rng;

use crate::breaker::{Admission, Breaker};
use crate::connection::Connections;
use crate::dirty::Dirty;
use crate::flight::{Flights, Outcome};
use crate::keys::Keys;
use crate::near::NearLists;
use crate::scripts::{Scripts, fresh_epoch};
use crate::stats::{Counters, Space};
use crate::warnings::Warnings;
use crate::{CacheConfig, CacheError};

/// How long a reader may hold the right to fill a detail key. Longer than
/// any sane database read; a reader slower than this just doesn't store.
const LEASE_TTL: Duration = Duration::from_secs(5);

/// Keys per `SCAN` step of a full invalidation.
const SCAN_BATCH: usize = 1000;
/// Tries at telling Redis of a write before the cache is marked dirty.
const WRITE_ATTEMPTS: usize = 2;
/// The pause between tries at repairing a dirty cache before an exit.
const SETTLE_RETRY: Duration = Duration::from_millis(100);

/// What a list lookup found.
pub(crate) enum ListLookup {
    Hit(ListDocument),
    /// Not cached under the generation read before the database.
    Miss(Generation),
    /// The cache must not be used for this read.
    Bypass,
}

/// What a detail lookup found.
pub(crate) enum DetailLookup {
    Hit(OrderDocument),
    Miss(Lease),
    Bypass,
}

/// The list version and the epoch it was read under: a fill stores only
/// while both are unchanged, and flights are keyed by both, since after a
/// loss of Redis's data version numbers come round again under a new epoch
/// (see the `scripts` module).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Generation {
    epoch: String,
    version: u64,
}

/// The fill right of a detail key as the lookup left it.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    /// The token in force: ours when `acquired`, another reader's otherwise.
    pub(crate) holder: String,
    pub(crate) acquired: bool,
    /// The detail epoch when the lease was looked at.
    epoch: String,
}

pub(crate) struct RedisCache {
    timeout: Duration,
    ttl: Duration,
    keys: Keys,
    scripts: Scripts,
    breaker: Breaker,
    warnings: Warnings,
    dirty: Dirty,
    repairing: AtomicBool,
    /// This thread's connection (see [`Connections`]).
    connections: Connections,
    near: NearLists,
    pub(crate) counters: Counters,
    /// Keyed by (generation read before the database, canonical query).
    pub(crate) list_flights: Flights<(Generation, Option<String>), ListDocument>,
    /// Keyed by (order, lease token in force).
    pub(crate) detail_flights: Flights<(OrderId, String), Option<OrderDocument>>,
}

impl RedisCache {
    /// Builds the pool without connecting: connections are made on first
    /// use, so a Redis that is down at start delays nothing.
    pub(crate) fn new(config: &CacheConfig) -> Result<Self, CacheError> {
        let connections = Connections::new(config)?;
        Ok(Self {
            timeout: config.timeout,
            ttl: config.ttl,
            keys: Keys::new(&config.key_prefix),
            scripts: Scripts::new(),
            breaker: Breaker::default(),
            warnings: Warnings::default(),
            dirty: Dirty::default(),
            repairing: AtomicBool::new(false),
            connections,
            near: NearLists::default(),
            counters: Counters::default(),
            list_flights: Flights::default(),
            detail_flights: Flights::default(),
        })
    }

    /// One Redis operation: skipped while the breaker is open, bounded by
    /// the timeout as a whole (pool wait, connect, command), and recorded in
    /// the breaker, the counters and the (rate-limited) log. Cancelling the
    /// command midway is safe on a multiplexed connection: its reply is
    /// dropped by the connection's driver.
    async fn call<T, F, Fut>(&self, space: Option<Space>, op: F) -> Result<T, CacheError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let Some(admission) = self.breaker.admit(Instant::now()) else {
            return Err(CacheError::CircuitOpen);
        };
        self.attempt(admission, space, op).await
    }

    /// `call` without the breaker's leave: for a write's invalidation,
    /// which is worth its timeout even while reads skip Redis. While the
    /// breaker is open it counts as a call let through before it opened
    /// (its failure changes nothing; its success closes the breaker).
    async fn call_anyway<T, F, Fut>(&self, space: Option<Space>, op: F) -> Result<T, CacheError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let admission = self
            .breaker
            .admit(Instant::now())
            .unwrap_or(Admission::Closed);
        self.attempt(admission, space, op).await
    }

    async fn attempt<T, F, Fut>(
        &self,
        admission: Admission,
        space: Option<Space>,
        op: F,
    ) -> Result<T, CacheError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let attempt = async {
            let connection = self.connection().await?;
            op(connection).await.map_err(CacheError::Command)
        };
        let result = tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or(Err(CacheError::Timeout(self.timeout)));
        match &result {
            Ok(_) => self.breaker.succeeded(),
            Err(error) => {
                if error.may_break_connection() {
                    self.unpin();
                }
                if let Some(space) = space {
                    self.counters.error(space);
                }
                if self.breaker.failed(admission, Instant::now()) {
                    // Contact is lost for a while: whatever happens to Redis
                    // meanwhile (a restart from an old snapshot, writes of
                    // other instances lost with it) is unknown, so it is
                    // purged before it is trusted again.
                    self.dirty.mark();
                }
                self.warnings.warn(error);
            }
        }
        result
    }

    async fn connection(&self) -> Result<MultiplexedConnection, CacheError> {
        self.connections.get().await
    }

    fn unpin(&self) {
        self.connections.unpin();
    }

    /// Whether reads may use Redis now. While dirty they may not, and a
    /// repair is started in the background (not in the request's time).
    fn usable(self: &Arc<Self>) -> bool {
        if !self.dirty.is_set() {
            return true;
        }
        self.start_repair();
        false
    }

    fn start_repair(self: &Arc<Self>) {
        if !self.breaker.would_admit(Instant::now()) || self.repairing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            let _done = ClearOnDrop(&cache.repairing);
            if let Err(error) = cache.invalidate_all().await {
                tracing::debug!(%error, "cache repair failed; will retry");
            }
        });
    }

    fn ttl_millis(&self) -> u64 {
        let base = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX / 2);
        let spread = base / 10;
        rand::rng()
            .random_range(base - spread..=base + spread)
            .max(1)
    }

    // ----- list -----

    pub(crate) async fn list_lookup(self: &Arc<Self>, canonical: Option<&str>) -> ListLookup {
        if !self.usable() {
            self.counters.miss(Space::List);
            return ListLookup::Bypass;
        }
        let version_key = self.keys.list_version();
        let head = self.keys.list_head();
        let stamp_head = self.keys.list_stamp_head();
        let suffix = Keys::list_suffix(canonical);
        let epoch_key = self.keys.detail_epoch();
        let held = self.near.stamp(&suffix);
        let fresh = fresh_epoch();
        let reply = self
            .call(Some(Space::List), |mut conn| {
                let (suffix, held) = (&suffix, &held);
                async move {
                    let mut invocation = self.scripts.list_read.prepare_invoke();
                    invocation
                        .key(&version_key)
                        .key(&epoch_key)
                        .arg(&head)
                        .arg(suffix)
                        .arg(&stamp_head)
                        .arg(held)
                        .arg(&fresh);
                    invocation
                        .invoke_async::<(String, String, Option<Bytes>, Option<String>)>(&mut conn)
                        .await
                }
            })
            .await;
        let lookup = match reply {
            Ok((epoch, version, body, stamp)) => match version.parse::<u64>() {
                Ok(version) => match (body, stamp) {
                    (None, Some(stamp)) => match self.near.body(&suffix, &stamp) {
                        Some(document) => ListLookup::Hit(document),
                        // Dropped since the stamp was read: fetch again.
                        None => ListLookup::Miss(Generation { epoch, version }),
                    },
                    (Some(body), stamp) if is_list_body(&body) => {
                        let document = ListDocument::from_rendered(body);
                        if let Some(stamp) = stamp {
                            self.near.keep(&suffix, stamp, document.clone());
                        }
                        ListLookup::Hit(document)
                    }
                    // Absent, or not a list body: filled (and overwritten)
                    // after the database read.
                    _ => ListLookup::Miss(Generation { epoch, version }),
                },
                Err(_) => {
                    self.counters.error(Space::List);
                    self.warnings.warn(&CacheError::Reply(format!(
                        "{} is not an integer: {version:?}",
                        self.keys.list_version()
                    )));
                    ListLookup::Bypass
                }
            },
            Err(_) => ListLookup::Bypass,
        };
        match &lookup {
            ListLookup::Hit(_) => self.counters.hit(Space::List),
            _ => self.counters.miss(Space::List),
        }
        lookup
    }

    /// The flight body of a list miss: the database read, then the store
    /// under the generation read before it (only if still current).
    pub(crate) fn list_fill<R: OrderRepository>(
        self: Arc<Self>,
        inner: Arc<R>,
        query: ListQuery,
        generation: Generation,
    ) -> BoxFuture<'static, Outcome<ListDocument>> {
        async move {
            let document = inner.list(query).await.map_err(Arc::new)?;
            self.list_store(query, &generation, &document).await;
            Ok(document)
        }
        .boxed()
    }

    /// A failed store only costs the next reader a database read.
    async fn list_store(&self, query: ListQuery, generation: &Generation, document: &ListDocument) {
        let canonical = query.canonical();
        let version_key = self.keys.list_version();
        let epoch_key = self.keys.detail_epoch();
        let head = self.keys.list_head();
        let suffix = Keys::list_suffix(canonical.as_deref());
        let ttl = self.ttl_millis();
        // A list sent as parts is too large to copy into Redis (32 MB at
        // 100,000 orders): storage holds it, checked against the database's
        // change log on every read, so it is never stale either.
        let Some(body) = document.whole() else {
            return;
        };
        let stamp_head = self.keys.list_stamp_head();
        let stamp = format!("{:016x}", rand::rng().random::<u64>());
        let stored = self
            .call(Some(Space::List), |mut conn| {
                let (suffix, stamp) = (&suffix, &stamp);
                async move {
                    let mut invocation = self.scripts.list_store.prepare_invoke();
                    invocation
                        .key(&version_key)
                        .key(&epoch_key)
                        .arg(&head)
                        .arg(suffix)
                        .arg(generation.version)
                        .arg(&generation.epoch)
                        .arg(body.as_ref())
                        .arg(ttl)
                        .arg(&stamp_head)
                        .arg(stamp);
                    invocation.invoke_async::<i64>(&mut conn).await
                }
            })
            .await;
        if matches!(stored, Ok(1)) {
            self.near.keep(&suffix, stamp, document.clone());
        }
    }

    // ----- detail -----

    pub(crate) async fn detail_lookup(self: &Arc<Self>, id: OrderId) -> DetailLookup {
        if !self.usable() {
            self.counters.miss(Space::Detail);
            return DetailLookup::Bypass;
        }
        let detail_key = self.keys.detail(id);
        // A plain GET first: hits are the common case, and a GET costs Redis
        // far less than a script. Only a miss runs the lease script (which
        // looks again, atomically with taking the lease).
        let plain = self
            .call(Some(Space::Detail), |mut conn| {
                let detail_key = &detail_key;
                async move {
                    redis::cmd("GET")
                        .arg(detail_key)
                        .query_async::<Option<Bytes>>(&mut conn)
                        .await
                }
            })
            .await;
        let reply = match plain {
            Ok(Some(body)) => match OrderDocument::from_rendered(id, body) {
                Some(document) => Ok(DetailReply::Rendered(document)),
                // Not bytes we rendered (the original service's body under
                // the same key, say): the script treats it as a miss, so
                // this reader takes the lease and its fill replaces it.
                None => self.detail_read(id, detail_key).await,
            },
            Ok(None) => self.detail_read(id, detail_key).await,
            Err(error) => Err(error),
        };
        let lookup = match reply {
            Ok(DetailReply::Rendered(document)) => DetailLookup::Hit(document),
            Ok(DetailReply::Hit(body)) => match OrderDocument::from_rendered(id, body) {
                Some(document) => DetailLookup::Hit(document),
                None => {
                    // The script's test of the body passed and ours did not
                    // (a version number too large to be real): drop it so
                    // the next reader can fill it, and read the database.
                    self.counters.error(Space::Detail);
                    let detail_key = self.keys.detail(id);
                    let _deleted = self
                        .call(Some(Space::Detail), |mut conn| async move {
                            redis::cmd("DEL")
                                .arg(&detail_key)
                                .query_async::<i64>(&mut conn)
                                .await
                        })
                        .await;
                    DetailLookup::Bypass
                }
            },
            Ok(DetailReply::Miss(lease)) => DetailLookup::Miss(lease),
            Err(CacheError::Reply(message)) => {
                self.counters.error(Space::Detail);
                self.warnings.warn(&CacheError::Reply(message));
                DetailLookup::Bypass
            }
            Err(_) => DetailLookup::Bypass,
        };
        match &lookup {
            DetailLookup::Hit(_) => self.counters.hit(Space::Detail),
            _ => self.counters.miss(Space::Detail),
        }
        lookup
    }

    /// The lease script of a detail miss.
    async fn detail_read(
        &self,
        id: OrderId,
        detail_key: String,
    ) -> Result<DetailReply, CacheError> {
        let lease_key = self.keys.lease(id);
        let epoch_key = self.keys.detail_epoch();
        let token = format!("{:032x}", rand::random::<u128>());
        let lease_ms = LEASE_TTL.as_millis() as u64;
        let fresh = fresh_epoch();
        self.call(Some(Space::Detail), |mut conn| async move {
            let mut invocation = self.scripts.detail_read.prepare_invoke();
            invocation
                .key(&detail_key)
                .key(&lease_key)
                .key(&epoch_key)
                .arg(&token)
                .arg(lease_ms)
                .arg(&fresh);
            invocation.invoke_async::<Vec<Value>>(&mut conn).await
        })
        .await
        .and_then(parse_detail_reply)
    }

    /// The flight body of a detail miss: the database read, then, if this
    /// reader holds the lease, the conditional store (or the lease's
    /// release when there is nothing to store).
    pub(crate) fn detail_fill<R: OrderRepository>(
        self: Arc<Self>,
        inner: Arc<R>,
        id: OrderId,
        lease: Lease,
    ) -> BoxFuture<'static, Outcome<Option<OrderDocument>>> {
        async move {
            let found = inner.get(id).await;
            if lease.acquired {
                match &found {
                    Ok(Some(document)) => self.detail_store(id, &lease, document).await,
                    _ => self.lease_release(id, &lease.holder).await,
                }
            }
            found.map_err(Arc::new)
        }
        .boxed()
    }

    async fn detail_store(&self, id: OrderId, lease: &Lease, document: &OrderDocument) {
        let detail_key = self.keys.detail(id);
        let lease_key = self.keys.lease(id);
        let epoch_key = self.keys.detail_epoch();
        let ttl = self.ttl_millis();
        let body = document.body();
        let _stored = self
            .call(Some(Space::Detail), |mut conn| async move {
                let mut invocation = self.scripts.detail_store.prepare_invoke();
                invocation
                    .key(&detail_key)
                    .key(&lease_key)
                    .key(&epoch_key)
                    .arg(&lease.holder)
                    .arg(&lease.epoch)
                    .arg(body.as_ref())
                    .arg(ttl);
                invocation.invoke_async::<i64>(&mut conn).await
            })
            .await;
    }

    async fn lease_release(&self, id: OrderId, token: &str) {
        let lease_key = self.keys.lease(id);
        let _released = self
            .call(Some(Space::Detail), |mut conn| async move {
                let mut invocation = self.scripts.lease_release.prepare_invoke();
                invocation.key(&lease_key).arg(token);
                invocation.invoke_async::<i64>(&mut conn).await
            })
            .await;
    }

    // ----- writes -----

    /// After a committed change of one order: bump the list version and drop
    /// the order's detail key and lease, in one round trip. Dropping the
    /// lease is what makes a fill that read the old row fail its store.
    ///
    /// Until Redis has been told, other instances serve the entry from
    /// before this write; so the write tries even while the breaker skips
    /// Redis for reads (under CPU starvation a few 50 ms timeouts open it
    /// while Redis is fine), and after a timeout with the breaker closed it
    /// tries again: the script may then run twice, which only bumps the
    /// version once more. With Redis hung a write costs up to two timeouts. A failure never fails the write: the cache is
    /// marked dirty and its repair starts now, not at this process's next
    /// read, as this process may be on its way out (see `settle`).
    pub(crate) async fn order_written(self: &Arc<Self>, id: OrderId) {
        let version_key = self.keys.list_version();
        let epoch_key = self.keys.detail_epoch();
        let detail_key = self.keys.detail(id);
        let lease_key = self.keys.lease(id);
        let fresh = fresh_epoch();
        for _ in 0..WRITE_ATTEMPTS {
            let result = self
                .call_anyway(Some(Space::Both), |mut conn| {
                    let (version_key, epoch_key) = (&version_key, &epoch_key);
                    let (detail_key, lease_key, fresh) = (&detail_key, &lease_key, &fresh);
                    async move {
                        let mut invocation = self.scripts.order_written.prepare_invoke();
                        invocation
                            .key(version_key)
                            .key(epoch_key)
                            .key(detail_key)
                            .key(lease_key)
                            .arg(fresh);
                        invocation.invoke_async::<i64>(&mut conn).await
                    }
                })
                .await;
            match result {
                Ok(_) => return,
                // Only a slow reply is worth another try at once: a refused
                // connection or an error reply would fail the same way, and
                // with the breaker open (Redis failing for a while) one try
                // per write is enough.
                Err(CacheError::Timeout(_)) if self.breaker.would_admit(Instant::now()) => {}
                Err(_) => break,
            }
        }
        self.dirty.mark();
        self.start_repair();
    }

    /// Everything goes: a new list version, a new detail epoch, and every
    /// detail key deleted. On success it clears the dirty marks made before
    /// it began; on failure it marks the cache dirty (so reads bypass it
    /// until a later purge succeeds).
    pub(crate) async fn invalidate_all(&self) -> Result<(), CacheError> {
        let generation = self.dirty.generation();
        match self.purge().await {
            Ok(()) => {
                self.dirty.cleaned(generation);
                Ok(())
            }
            Err(error) => {
                self.dirty.mark();
                Err(error)
            }
        }
    }

    /// See `CachedRepository::settle`. The breaker admits a probe once its
    /// cool-down has passed, so a short wait between tries is enough.
    pub(crate) async fn settle(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.dirty.is_set() {
            if self.invalidate_all().await.is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(SETTLE_RETRY).await;
        }
        true
    }

    async fn purge(&self) -> Result<(), CacheError> {
        let version_key = self.keys.list_version();
        let epoch_key = self.keys.detail_epoch();
        // The epoch moves (to a fresh value) before the SCAN starts. SCAN only guarantees
        // to see keys that exist for its whole run: a reader that read the
        // old row before the purge could store its detail key into a slot
        // the SCAN has already passed, and that key would survive. Such a
        // reader took its lease under the old epoch, and the store script
        // refuses to store once the epoch has moved; a reader that sees the
        // new epoch read the database after the change. Old list keys need
        // no deleting: no reader asks for an old version again.
        let fresh = fresh_epoch();
        self.call(Some(Space::Both), |mut conn| async move {
            let mut invocation = self.scripts.purge_begin.prepare_invoke();
            invocation.key(&version_key).key(&epoch_key).arg(&fresh);
            invocation.invoke_async::<i64>(&mut conn).await
        })
        .await?;

        // SCAN + UNLINK in batches, never KEYS (which blocks Redis for the
        // whole keyspace). Each step unlinks what the previous one found and
        // scans on, in one round trip and under its own timeout.
        let pattern = self.keys.detail_pattern();
        let mut cursor = String::from("0");
        let mut found: Vec<Vec<u8>> = Vec::new();
        loop {
            let (pattern, cursor_ref, unlink) = (&pattern, &cursor, &found);
            let (next, batch) = self
                .call(Some(Space::Detail), |mut conn| async move {
                    let mut pipe = redis::pipe();
                    if !unlink.is_empty() {
                        pipe.cmd("UNLINK").arg(unlink).ignore();
                    }
                    pipe.cmd("SCAN")
                        .arg(cursor_ref)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(SCAN_BATCH);
                    let ((next, batch),) = pipe
                        .query_async::<((String, Vec<Vec<u8>>),)>(&mut conn)
                        .await?;
                    Ok((next, batch))
                })
                .await?;
            found = batch;
            if next == "0" {
                break;
            }
            cursor = next;
        }
        if !found.is_empty() {
            let unlink = &found;
            self.call(Some(Space::Detail), |mut conn| async move {
                redis::cmd("UNLINK")
                    .arg(unlink)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await?;
        }
        Ok(())
    }

    // ----- health -----

    /// Ok when the breaker lets a PING through and it answers in time. Also
    /// starts a pending repair, so a service with no traffic but a polled
    /// `/readyz` recovers too.
    pub(crate) async fn state(self: &Arc<Self>) -> CacheState {
        let _ = self.usable();
        let pong = self
            .call(None, |mut conn| async move {
                redis::cmd("PING").query_async::<String>(&mut conn).await
            })
            .await;
        match pong {
            Ok(_) => CacheState::Ok,
            Err(_) => CacheState::Unavailable,
        }
    }
}

fn is_list_body(body: &[u8]) -> bool {
    body.starts_with(b"{\"total_orders\":") && body.ends_with(b"}")
}

enum DetailReply {
    /// A plain `GET` found bytes we rendered.
    Rendered(OrderDocument),
    /// The lease script found a body that looks like ours.
    Hit(Bytes),
    Miss(Lease),
}

/// `{1, payload}` or `{0, holder, acquired, epoch}` (see `DETAIL_READ`).
fn parse_detail_reply(reply: Vec<Value>) -> Result<DetailReply, CacheError> {
    let unexpected = |reply: &[Value]| CacheError::Reply(format!("detail read: {reply:?}"));
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    let reply = match <[Value; 2]>::try_from(reply) {
        Ok([Value::Int(1), Value::BulkString(body)]) => {
            return Ok(DetailReply::Hit(Bytes::from(body)));
        }
        Ok(other) => return Err(unexpected(&other)),
        Err(reply) => reply,
    };
    match <[Value; 4]>::try_from(reply) {
        Ok(
            [
                Value::Int(0),
                Value::BulkString(holder),
                Value::Int(acquired),
                Value::BulkString(epoch),
            ],
        ) => Ok(DetailReply::Miss(Lease {
            holder: text(holder),
            acquired: acquired == 1,
            epoch: text(epoch),
        })),
        Ok(other) => Err(unexpected(&other)),
        Err(reply) => Err(unexpected(&reply)),
    }
}

struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
