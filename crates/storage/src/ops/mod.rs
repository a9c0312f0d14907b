//! The repository's operations, each a function of `Storage`. They run
//! inside a spawned task (see `storage.rs`), so a caller that stops waiting
//! never cuts a transaction in half.

mod admin;
mod change;
mod create;
mod read;

use crate::queries::Queries as _;

pub(crate) use admin::{ITEMS_PER_INSERT, ORDERS_PER_INSERT, count, ping, reset, seed};
pub(crate) use change::{delete, update_status};
pub(crate) use create::create;
pub(crate) use read::{get, list};

/// Now and then (one write in `changes::PRUNE_ONE_IN`), deletes the
/// changes older than a day, detached: best effort, and on SQLite it
/// queues with the other writes, which the caller's answer need not wait
/// for.
pub(crate) fn maybe_prune_changes(storage: &crate::Storage, now_ms: i64) {
    if !rand::random_ratio(1, crate::changes::PRUNE_ONE_IN) {
        return;
    }
    let storage = storage.clone();
    let cutoff = crate::changes::prune_cutoff(now_ms);
    tokio::spawn(tracing::Instrument::in_current_span(async move {
        let result: Result<usize, crate::StorageError> = async {
            crate::transaction::write_transaction!(storage.pools(), |conn| {
                let pruned = conn.prune_changes(cutoff).await?;
                Ok(pruned)
            })
        }
        .await;
        match result {
            Ok(pruned) => tracing::debug!(pruned, "pruned the change log"),
            Err(error) => tracing::warn!(%error, "pruning the change log failed"),
        }
    }));
}
