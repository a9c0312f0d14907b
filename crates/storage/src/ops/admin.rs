use std::collections::BTreeMap;

use domain::{Order, ResetOutcome};

use crate::counts::{self, CountChange};
use crate::models::{ItemInsert, OrderInsert, item_inserts};
use crate::queries::Queries;
use crate::transaction::{with_connection, write_transaction};
use crate::{Storage, StorageError};

/// Rows per multi-row INSERT. SQLite allows 32,766 bound parameters per
/// statement and MySQL 65,535 per prepared statement: 5,000 orders of 6
/// columns and 8,000 items of 4 stay under both, and at about 100 bytes a
/// row well under MySQL's default 16 MiB max_allowed_packet.
const ORDERS_PER_INSERT: usize = 5_000;
const ITEMS_PER_INSERT: usize = 8_000;

/// Deletes every order, item, count and idempotency key in one transaction.
pub(crate) async fn reset(storage: &Storage) -> Result<ResetOutcome, StorageError> {
    let outcome = write_transaction!(storage.pools(), |conn| {
        // Items first and explicitly, to count them.
        let items = conn.delete_all_items().await?;
        let orders = conn.delete_all_orders().await?;
        conn.delete_all_idempotency().await?;
        conn.clear_counts().await?;
        Ok(ResetOutcome {
            orders: orders as u64,
            items: items as u64,
        })
    })?;
    storage.fragments().clear();
    Ok(outcome)
}

/// Inserts fully formed orders in one transaction with multi-row INSERTs.
pub(crate) async fn seed(storage: &Storage, orders: Vec<Order>) -> Result<u64, StorageError> {
    let mut per_status: BTreeMap<&'static str, i64> = BTreeMap::new();
    for order in &orders {
        *per_status.entry(order.status.as_str()).or_default() += 1;
    }
    let shard = counts::random_shard();
    let changes: Vec<CountChange> = per_status
        .into_iter()
        .map(|(status, delta)| CountChange {
            status,
            shard,
            delta,
        })
        .collect();
    write_transaction!(storage.pools(), |conn| {
        // Rows are made one chunk at a time (orders, then their items, for
        // the foreign key), so a 100,000-order seed never holds the row
        // structures of all of them at once.
        for chunk in orders.chunks(ORDERS_PER_INSERT) {
            let order_rows: Vec<OrderInsert<'_>> =
                chunk.iter().map(OrderInsert::from_order).collect();
            conn.insert_orders(&order_rows).await?;
            let item_rows: Vec<ItemInsert<'_>> = order_rows
                .iter()
                .zip(chunk)
                .flat_map(|(row, order)| item_inserts(&row.id, &order.items))
                .collect();
            for items in item_rows.chunks(ITEMS_PER_INSERT) {
                conn.insert_items(items).await?;
            }
        }
        counts::apply(conn, changes.clone()).await?;
        Ok(orders.len() as u64)
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
