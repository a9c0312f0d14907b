//! The order counts behind `total_orders`: one row per (status, shard),
//! changed inside the same transaction as the orders they count.

use crate::StorageError;
use crate::queries::Queries;

pub(crate) const SHARDS: i16 = 16;

/// A shard for one write. Concurrent writers mostly pick different rows, so
/// on MySQL they rarely wait for each other's row lock.
pub(crate) fn random_shard() -> i16 {
    rand::random_range(0..SHARDS)
}

/// A change to one counter row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CountChange {
    pub status: &'static str,
    pub shard: i16,
    pub delta: i64,
}

/// Applies the changes in (status, shard) order. Called last in every write
/// transaction, so counter row locks are the last ones taken and every
/// transaction takes them in the same order: no deadlock cycle can form on
/// them.
pub(crate) async fn apply<C: Queries>(
    conn: &mut C,
    mut changes: Vec<CountChange>,
) -> Result<(), StorageError> {
    changes.sort();
    for change in changes.into_iter().filter(|change| change.delta != 0) {
        let touched = conn
            .add_to_count(change.status, change.shard, change.delta)
            .await?;
        if touched != 1 {
            // The migration creates every (status, shard) row.
            return Err(StorageError::CorruptRow(format!(
                "no order_counts row for ({}, {})",
                change.status, change.shard
            )));
        }
    }
    Ok(())
}

/// Moves one order between two different statuses' rows of `shard`, in
/// one statement. Its row locks are taken in primary key (status) order, as
/// `apply` takes them.
pub(crate) async fn move_one<C: Queries>(
    conn: &mut C,
    from: &'static str,
    to: &'static str,
    shard: i16,
) -> Result<(), StorageError> {
    debug_assert_ne!(from, to);
    let touched = conn.move_count(from, to, shard).await?;
    if touched != 2 {
        return Err(StorageError::CorruptRow(format!(
            "moving a count from {from} to {to} touched {touched} order_counts rows of shard {shard}"
        )));
    }
    Ok(())
}

/// The number of orders (of one status).
pub(crate) async fn total<C: Queries>(
    conn: &mut C,
    status: Option<&str>,
) -> Result<u64, StorageError> {
    let shards = conn.count_shards(status).await?;
    Ok(shards.into_iter().sum::<i64>().max(0) as u64)
}
