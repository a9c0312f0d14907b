//! One SQLite writer at a time inside the process, in arrival order.
//!
//! SQLite lets one transaction write at a time. Left to `busy_timeout`, the
//! writers that find the lock taken sleep and poll with growing pauses (up
//! to 100 ms each), so under a steady stream of writes some wait far longer
//! than the writes ahead of them take: the bench's mixed workload on SQLite
//! had write p99s of 200-250 ms behind p50s of 17 ms. Queued here, each
//! writer starts as soon as the one before it commits, and does not hold a
//! pooled connection while it waits, so reads go on beside the queue.
//! Writers in other processes (a `cargo xtask seed`) still meet
//! `busy_timeout`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::StorageError;

#[derive(Debug, Clone)]
pub(crate) struct WriteGate {
    turn: Arc<Semaphore>,
    /// The longest wait for a turn: the pool's, so that a writer stuck
    /// behind a hung one fails (503) as it would waiting for a connection.
    wait: Duration,
}

impl WriteGate {
    pub(crate) fn new(wait: Duration) -> Self {
        Self {
            turn: Arc::new(Semaphore::new(1)),
            wait,
        }
    }

    /// Waits for this writer's turn; the turn ends when the permit drops.
    pub(crate) async fn enter(&self) -> Result<OwnedSemaphorePermit, StorageError> {
        match tokio::time::timeout(self.wait, self.turn.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a timeout is the only way out.
            Ok(Err(_)) | Err(_) => Err(StorageError::WriteQueue),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writers_take_turns_and_a_long_wait_fails() {
        let gate = WriteGate::new(Duration::from_millis(50));
        let first = gate.enter().await.unwrap();
        let error = gate.enter().await.unwrap_err();
        assert!(matches!(error, StorageError::WriteQueue), "{error:?}");
        drop(first);
        let _second = gate.enter().await.unwrap();
    }

    #[tokio::test]
    async fn sqlite_writes_queue_at_the_gate_and_reads_do_not() {
        use domain::{OrderId, OrderRepository, OrderStatus, RepoError, StatusUpdate};

        use crate::pool::Pools;
        use crate::storage::temp_sqlite;

        let (_dir, storage) = temp_sqlite(Duration::from_millis(200)).await;
        let Pools::Sqlite(_, gate, _) = storage.pools() else {
            unreachable!("a SQLite url")
        };
        let id = OrderId::new();

        let held = gate.enter().await.unwrap();
        let write = storage
            .update_status(id, OrderStatus::Shipped, None)
            .await
            .unwrap_err();
        assert!(matches!(write, RepoError::Unavailable(_)), "{write:?}");
        assert_eq!(storage.get(id).await.unwrap(), None, "reads pass the queue");

        drop(held);
        assert_eq!(
            storage
                .update_status(id, OrderStatus::Shipped, None)
                .await
                .unwrap(),
            StatusUpdate::NotFound
        );
    }
}
