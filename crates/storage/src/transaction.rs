//! How operations get a connection: each macro expands its body once per
//! backend, with `$conn` bound to that backend's concrete connection, so the
//! same code compiles to SQLite and to MySQL queries. A connection is taken
//! from the pool, used, and given back before anything else is awaited, so
//! no operation ever holds one connection while waiting for another.

use std::future::Future;
use std::time::Duration;

use crate::StorageError;

/// Attempts of a MySQL write transaction that keeps losing to deadlocks or
/// lock waits before the error is returned.
pub(crate) const MAX_ATTEMPTS: u32 = 3;

/// Fixes the error type of an async block, so `?` inside it knows what to
/// convert into.
pub(crate) fn typed<T, F>(future: F) -> F
where
    F: Future<Output = Result<T, StorageError>>,
{
    future
}

/// A short random pause before retrying, so two transactions that deadlocked
/// do not collide again in lockstep.
pub(crate) fn retry_pause(attempt: u32) -> Duration {
    Duration::from_millis(rand::random_range(1..=10) * u64::from(attempt))
}

/// Runs `$body` (which evaluates to `Result<T, StorageError>`) on one pooled
/// connection, outside any transaction: for single statements.
macro_rules! with_connection {
    ($pools:expr, |$conn:ident| $body:expr) => {
        match $pools {
            $crate::pool::Pools::Sqlite(pool, ..) => {
                let mut object = pool.get().await?;
                let result = $crate::transaction::typed(async {
                    let $conn = &mut *object;
                    $body
                })
                .await;
                $crate::pool::discard_if_broken(object, &result);
                result
            }
            $crate::pool::Pools::Mysql(pool) => {
                let mut object = pool.get().await?;
                let result = $crate::transaction::typed(async {
                    let $conn = &mut *object;
                    $body
                })
                .await;
                $crate::pool::discard_if_broken(object, &result);
                result
            }
        }
    };
}

/// Runs `$body` in a read transaction, so that its statements see one
/// snapshot (a list's rows, items and total agree with each other).
macro_rules! read_transaction {
    ($pools:expr, |$conn:ident| $body:expr) => {
        match $pools {
            $crate::pool::Pools::Sqlite(pool, ..) => {
                let mut object = pool.get().await?;
                let result = diesel_async::AsyncConnection::transaction(
                    &mut *object,
                    async |$conn| -> Result<_, $crate::StorageError> { $body },
                )
                .await;
                $crate::pool::discard_if_broken(object, &result);
                result
            }
            $crate::pool::Pools::Mysql(pool) => {
                let mut object = pool.get().await?;
                let result = diesel_async::AsyncConnection::transaction(
                    &mut *object,
                    async |$conn| -> Result<_, $crate::StorageError> { $body },
                )
                .await;
                $crate::pool::discard_if_broken(object, &result);
                result
            }
        }
    };
}

/// Runs `$body` in a write transaction. On SQLite it starts with `BEGIN
/// IMMEDIATE`: a deferred transaction that reads and then writes fails with
/// SQLITE_BUSY at its first write when another writer got in first, while
/// an immediate one takes the write lock up front. Writers of this process
/// wait for their turn in the `WriteGate` first, so only other processes'
/// writers are left to `busy_timeout`. On MySQL the whole transaction is
/// retried when it loses a deadlock or a lock wait, which InnoDB resolves
/// by rolling it back.
///
/// The body may run more than once, so it borrows its inputs.
macro_rules! write_transaction {
    ($pools:expr, |$conn:ident| $body:expr) => {
        match $pools {
            $crate::pool::Pools::Sqlite(pool, gate, _) => {
                let _turn = gate.enter().await?;
                let mut object = pool.get().await?;
                let result = object
                    .immediate_transaction(async |$conn| -> Result<_, $crate::StorageError> {
                        $body
                    })
                    .await;
                $crate::pool::discard_if_broken(object, &result);
                result
            }
            $crate::pool::Pools::Mysql(pool) => {
                let mut object = pool.get().await?;
                let mut attempt = 1;
                let result = loop {
                    let result = diesel_async::AsyncConnection::transaction(
                        &mut *object,
                        async |$conn| -> Result<_, $crate::StorageError> { $body },
                    )
                    .await;
                    match result {
                        Err(error)
                            if error.is_lock_conflict()
                                && attempt < $crate::transaction::MAX_ATTEMPTS =>
                        {
                            tracing::debug!(attempt, %error, "retrying a transaction after a lock conflict");
                            tokio::time::sleep($crate::transaction::retry_pause(attempt)).await;
                            attempt += 1;
                        }
                        result => break result,
                    }
                };
                $crate::pool::discard_if_broken(object, &result);
                result
            }
        }
    };
}

pub(crate) use {read_transaction, with_connection, write_transaction};
