use std::future::Future;

use crate::{
    IdempotencyKey, ListDocument, ListQuery, NewOrder, OrderDocument, OrderId, OrderStatus, Version,
};

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in a repository, in terms a caller can act on. The
/// underlying cause is kept as the error's source for logs; it is never
/// shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The database cannot be reached, or no connection could be had in
    /// time. Transient: the caller may answer 503 and retry later.
    #[error("the database is unavailable")]
    Unavailable(#[source] BoxError),
    /// An `Idempotency-Key` already used for a request with another body.
    #[error("the idempotency key was already used with a different request")]
    IdempotencyMismatch,
    /// Anything else: a bug or a broken invariant.
    #[error("the repository failed")]
    Internal(#[source] BoxError),
}

/// The result of `create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub document: OrderDocument,
    /// True when an earlier request with the same idempotency key made this
    /// order and nothing new was created.
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusUpdate {
    Updated(OrderDocument),
    NotFound,
    /// The caller asked for a precondition (`If-Match`) that no longer holds.
    VersionMismatch {
        current: Version,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResetOutcome {
    pub orders: u64,
    pub items: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    Ok,
    Disabled,
    Unavailable,
}

impl CacheState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Disabled => "disabled",
            Self::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub database_ok: bool,
    pub cache: CacheState,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub max_size: u64,
    pub size: u64,
    pub available: u64,
    pub waiting: u64,
    /// Connections handed out since the start: each is one trip to the
    /// database (or more).
    pub checkouts: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeySpaceStats {
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub list: KeySpaceStats,
    pub detail: KeySpaceStats,
}

/// Counters for `/metrics`; each layer fills in its own part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepoStats {
    pub pool: PoolStats,
    pub cache: Option<CacheStats>,
}

/// The orders store. Storage implements it on a database; the cache wraps
/// any implementation and implements it again. Reads return rendered
/// documents (exact response bytes) so that a cached body is served as is.
///
/// Futures are `Send` so that implementations may be driven from any
/// runtime and wrapped by decorators that spawn.
pub trait OrderRepository: Send + Sync + 'static {
    /// Stores a new order in one transaction. With an idempotency key, a
    /// retry of the same request within 24 hours returns the first result
    /// (`replayed`) and a different request is `IdempotencyMismatch`.
    fn create(
        &self,
        order: NewOrder,
        idempotency: Option<IdempotencyKey>,
    ) -> impl Future<Output = Result<Created, RepoError>> + Send;

    fn get(
        &self,
        id: OrderId,
    ) -> impl Future<Output = Result<Option<OrderDocument>, RepoError>> + Send;

    /// Newest first; a page when `query.page` is set.
    fn list(
        &self,
        query: ListQuery,
    ) -> impl Future<Output = Result<ListDocument, RepoError>> + Send;

    /// Sets the status, bumps `version` and `updated_at`. With `expected`,
    /// only when the order is still at that version.
    fn update_status(
        &self,
        id: OrderId,
        status: OrderStatus,
        expected: Option<Version>,
    ) -> impl Future<Output = Result<StatusUpdate, RepoError>> + Send;

    /// Deletes the order and its items; false when there was none.
    fn delete(&self, id: OrderId) -> impl Future<Output = Result<bool, RepoError>> + Send;

    /// Deletes every order and item.
    fn reset(&self) -> impl Future<Output = Result<ResetOutcome, RepoError>> + Send;

    /// Inserts `count` random demo orders (see [`crate::fake`]) in one
    /// transaction and returns how many. The orders are made as they are
    /// inserted, so a large seed never holds all of them in memory.
    fn seed(&self, count: u64) -> impl Future<Output = Result<u64, RepoError>> + Send;

    fn health(&self) -> impl Future<Output = Health> + Send;

    fn stats(&self) -> RepoStats;
}
