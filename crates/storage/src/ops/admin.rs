use std::collections::BTreeMap;

use domain::{Order, ResetOutcome, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::changes::{self, Change};
use crate::counts::{self, CountChange};
use crate::models::{ItemInsert, OrderInsert, item_inserts};
use crate::queries::Queries;
use crate::transaction::{with_connection, write_transaction};
use crate::{Storage, StorageError};

/// Rows per multi-row INSERT. SQLite allows 32,766 bound parameters per
/// statement and MySQL 65,535 per prepared statement: 5,000 orders of 6
/// columns and 8,000 items of 4 stay under both, and at about 100 bytes a
/// row well under MySQL's default 16 MiB max_allowed_packet.
pub(crate) const ORDERS_PER_INSERT: usize = 5_000;
pub(crate) const ITEMS_PER_INSERT: usize = 8_000;

/// Deletes every order, item, count, idempotency key and kept list chunk
/// in one transaction.
pub(crate) async fn reset(storage: &Storage) -> Result<ResetOutcome, StorageError> {
    let outcome = write_transaction!(storage.pools(), |conn| {
        // Items first and explicitly, to count them.
        let items = conn.delete_all_items().await?;
        let orders = conn.delete_all_orders().await?;
        conn.delete_all_idempotency().await?;
        conn.clear_counts().await?;
        conn.delete_all_kept().await?;
        changes::record(conn, Change::Reset, Timestamp::now().as_millis()).await?;
        Ok(ResetOutcome {
            orders: orders as u64,
            items: items as u64,
        })
    })?;
    storage.fragments().clear();
    Ok(outcome)
}

/// Inserts `count` random demo orders in one transaction with multi-row
/// INSERTs. Orders are made one chunk at a time, inserted, then dropped, so
/// a 100,000-order seed holds at most `ORDERS_PER_INSERT` of them at once.
pub(crate) async fn seed(storage: &Storage, count: u64) -> Result<u64, StorageError> {
    let shard = counts::random_shard();
    write_transaction!(storage.pools(), |conn| {
        // The body runs again when MySQL rolls it back on a deadlock: each
        // attempt makes new orders and counts them afresh, so nothing of a
        // rolled-back attempt is reused or counted twice. `ThreadRng` is not
        // `Send`; a `StdRng` seeded from it can be held across the awaits.
        let mut rng = StdRng::from_rng(&mut rand::rng());
        let now = Timestamp::now();
        let mut per_status: BTreeMap<&'static str, i64> = BTreeMap::new();
        let mut inserted = 0;
        let mut lowest: Option<String> = None;
        while inserted < count {
            let size = (count - inserted).min(ORDERS_PER_INSERT as u64);
            let chunk: Vec<Order> = (0..size)
                .map(|_| domain::fake::order(&mut rng, now))
                .collect();
            for order in &chunk {
                *per_status.entry(order.status.as_str()).or_default() += 1;
            }
            // Orders before their items, for the foreign key.
            let order_rows: Vec<OrderInsert<'_>> =
                chunk.iter().map(OrderInsert::from_order).collect();
            if let Some(low) = order_rows.iter().map(|row| &row.id).min()
                && lowest.as_ref().is_none_or(|lowest| low < lowest)
            {
                lowest = Some(low.clone());
            }
            conn.insert_orders(&order_rows).await?;
            let item_rows: Vec<ItemInsert<'_>> = order_rows
                .iter()
                .zip(&chunk)
                .flat_map(|(row, order)| item_inserts(&row.id, &order.items))
                .collect();
            for items in item_rows.chunks(ITEMS_PER_INSERT) {
                conn.insert_items(items).await?;
            }
            inserted += size;
        }
        let changes: Vec<CountChange> = per_status
            .into_iter()
            .map(|(status, delta)| CountChange {
                status,
                shard,
                delta,
            })
            .collect();
        counts::apply(conn, changes).await?;
        if let Some(from) = &lowest {
            changes::record(conn, Change::Seeded { from }, now.as_millis()).await?;
        }
        Ok(inserted)
    })
}

/// Real row counts (orders, items): a scan of both tables, for tools.
pub(crate) async fn count(storage: &Storage) -> Result<(u64, u64), StorageError> {
    let (orders, items) = with_connection!(storage.pools(), |conn| Ok(conn.count_rows().await?))?;
    Ok((orders.max(0) as u64, items.max(0) as u64))
}

pub(crate) async fn ping(storage: &Storage) -> Result<(), StorageError> {
    with_connection!(storage.pools(), |conn| {
        conn.ping().await?;
        Ok(())
    })
}
