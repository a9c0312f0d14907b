//! Connections to Redis, made as configured (the URL, TLS and CA settings,
//! `crate::tls`) and bounded by `CACHE_TIMEOUT_MS`; shared by the cache and
//! the rate limiter's store, each with its own.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::ThreadId;

use deadpool_redis::redis::AsyncConnectionConfig;
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::{Connection, Manager, Pool, Runtime};

use crate::{CacheConfig, CacheError};

/// Connections the pool may make at once (each one is then taken out of
/// it, see [`Connections`]).
const POOL_SIZE: usize = 16;

/// One connection per thread that uses Redis, made by the pool and taken
/// out of it. A multiplexed connection pipelines concurrent commands by
/// itself, and taking one from the pool for every command would cost a
/// PING round trip (deadpool-redis checks each connection it lends). Per
/// thread because a connection is driven by a task of the runtime that
/// made it: an HTTP worker (a single-thread runtime) then reads its cache
/// hits without waking any other thread, and no worker waits on another's
/// busy loop. Forgotten when a call fails in a way that may have broken
/// it ([`Connections::unpin`]), so the next call makes a fresh one.
pub(crate) struct Connections {
    pool: Pool,
    pinned: Mutex<HashMap<ThreadId, MultiplexedConnection>>,
}

impl Connections {
    /// Builds the pool without connecting: connections are made on first
    /// use, so a Redis that is down at start delays nothing.
    pub(crate) fn new(config: &CacheConfig) -> Result<Self, CacheError> {
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout));
        let manager = Manager::new_with_config(crate::tls::connection_info(config)?, connection)
            .map_err(CacheError::InvalidUrl)?;
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(config.timeout))
            .create_timeout(Some(config.timeout))
            .recycle_timeout(Some(config.timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(CacheError::Build)?;
        Ok(Self {
            pool,
            pinned: Mutex::new(HashMap::new()),
        })
    }

    /// This thread's connection, made now if it has none.
    pub(crate) async fn get(&self) -> Result<MultiplexedConnection, CacheError> {
        let thread = std::thread::current().id();
        if let Some(pinned) = self.pinned().get(&thread) {
            return Ok(MultiplexedConnection::clone(pinned));
        }
        // The pool never holds an idle connection (each is taken), so this
        // makes a new one, driven by the current thread's runtime.
        let pooled = self.pool.get().await.map_err(CacheError::Connection)?;
        let connection = Connection::take(pooled);
        Ok(MultiplexedConnection::clone(
            self.pinned().entry(thread).or_insert(connection),
        ))
    }

    /// Forgets this thread's connection after a failure: it may be broken.
    pub(crate) fn unpin(&self) {
        self.pinned().remove(&std::thread::current().id());
    }

    fn pinned(&self) -> MutexGuard<'_, HashMap<ThreadId, MultiplexedConnection>> {
        // A map of connections stays valid after any panic.
        self.pinned.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
