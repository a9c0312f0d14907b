//! A dedicated runtime for the repository's I/O.
//!
//! actix-web runs each HTTP worker on its own single-thread runtime, and a
//! socket is driven by the runtime that opened it. Pooled database
//! connections are shared by all workers, so a connection opened by one
//! worker would stall every other worker's queries whenever that worker is
//! busy. Running every database call on one multi-thread runtime keeps the
//! connections driven whatever the HTTP workers are doing. (The Redis cache
//! needs none of this: it keeps a connection per thread.)

use std::future::Future;
use std::sync::Arc;

use domain::{
    CacheState, Created, Health, IdempotencyKey, ListDocument, ListQuery, NewOrder, OrderDocument,
    OrderId, OrderRepository, OrderStatus, RepoError, RepoStats, ResetOutcome, StatusUpdate,
    Version,
};
use tokio::runtime::{Handle, Runtime};
use tracing::Instrument;

/// Owns the runtime; dropping it shuts the runtime down without blocking
/// (it may be dropped from async code).
pub struct IoRuntime(Option<Runtime>);

impl IoRuntime {
    pub fn new() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism()
            .map_or(2, usize::from)
            .max(2);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            // SQLite work runs on blocking threads, at most one per pooled
            // connection; tokio's default of 512 threads would let bursts
            // create many threads, each with its own allocator arena.
            .max_blocking_threads(16)
            .thread_name("orders-io")
            .enable_all()
            .build()
            .map(|runtime| Self(Some(runtime)))
    }

    pub fn handle(&self) -> Handle {
        self.0
            .as_ref()
            .expect("running until dropped")
            .handle()
            .clone()
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// An [`OrderRepository`] whose every call runs on the I/O runtime.
pub struct OnRuntime<R> {
    inner: Arc<R>,
    handle: Handle,
}

impl<R: OrderRepository> OnRuntime<R> {
    pub fn new(inner: R, handle: Handle) -> Self {
        Self {
            inner: Arc::new(inner),
            handle,
        }
    }

    fn run<T, Call>(
        &self,
        call: impl FnOnce(Arc<R>) -> Call,
    ) -> impl Future<Output = Result<T, RepoError>> + Send + 'static
    where
        T: Send + 'static,
        Call: Future<Output = Result<T, RepoError>> + Send + 'static,
    {
        let task = self
            .handle
            .spawn(call(Arc::clone(&self.inner)).in_current_span());
        async move {
            task.await
                .unwrap_or_else(|error| Err(RepoError::Internal(Box::new(error))))
        }
    }
}

impl<R: OrderRepository> OrderRepository for OnRuntime<R> {
    fn create(
        &self,
        order: NewOrder,
        idempotency: Option<IdempotencyKey>,
    ) -> impl Future<Output = Result<Created, RepoError>> + Send {
        self.run(move |inner| async move { inner.create(order, idempotency).await })
    }

    fn get(
        &self,
        id: OrderId,
    ) -> impl Future<Output = Result<Option<OrderDocument>, RepoError>> + Send {
        self.run(move |inner| async move { inner.get(id).await })
    }

    fn list(
        &self,
        query: ListQuery,
    ) -> impl Future<Output = Result<ListDocument, RepoError>> + Send {
        self.run(move |inner| async move { inner.list(query).await })
    }

    fn update_status(
        &self,
        id: OrderId,
        status: OrderStatus,
        expected: Option<Version>,
    ) -> impl Future<Output = Result<StatusUpdate, RepoError>> + Send {
        self.run(move |inner| async move { inner.update_status(id, status, expected).await })
    }

    fn delete(&self, id: OrderId) -> impl Future<Output = Result<bool, RepoError>> + Send {
        self.run(move |inner| async move { inner.delete(id).await })
    }

    fn reset(&self) -> impl Future<Output = Result<ResetOutcome, RepoError>> + Send {
        self.run(move |inner| async move { inner.reset().await })
    }

    fn seed(&self, count: u64) -> impl Future<Output = Result<u64, RepoError>> + Send {
        self.run(move |inner| async move { inner.seed(count).await })
    }

    fn health(&self) -> impl Future<Output = Health> + Send {
        let inner = Arc::clone(&self.inner);
        let task = self.handle.spawn(async move { inner.health().await });
        async move {
            task.await.unwrap_or(Health {
                database_ok: false,
                cache: CacheState::Unavailable,
            })
        }
    }

    fn stats(&self) -> RepoStats {
        self.inner.stats()
    }
}
