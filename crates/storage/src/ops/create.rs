use domain::{Created, IdempotencyKey, NewOrder, Order, OrderDocument, Timestamp};

use crate::changes::{self, Change};
use crate::counts::{self, CountChange};
use crate::models::{
    IdempotencyInsert, IdempotencyRow, ItemInsert, OrderInsert, fingerprint_to_column, item_inserts,
};
use crate::queries::Queries;
use crate::transaction::write_transaction;
use crate::{Storage, StorageError};

/// How long a key protects against a duplicate create (API.md: 24 hours).
const IDEMPOTENCY_TTL_MS: i64 = 24 * 60 * 60 * 1000;

/// One keyed create in this many also deletes every expired key. Expired
/// keys are otherwise only replaced when reused, or deleted by `reset`; the
/// occasional purge keeps the table at about one day of keys without a
/// background task, and costs one indexed range delete.
const PURGE_ONE_IN: u32 = 64;

enum Outcome {
    Created,
    Replayed(IdempotencyRow),
}

/// Stores a new order. With a key, the key's record is written first in the
/// same transaction: of two concurrent requests with one key, the second
/// waits on the first's uncommitted key row and then fails on the unique
/// key; it is rolled back and retried once, and then finds the winner's
/// record and replays it.
pub(crate) async fn create(
    storage: &Storage,
    new: NewOrder,
    idempotency: Option<IdempotencyKey>,
) -> Result<Created, StorageError> {
    let now = Timestamp::now();
    let order = Order::create(&new, now);
    let document = OrderDocument::render(&order);
    let order_row = OrderInsert::from_order(&order);
    let item_rows: Vec<ItemInsert<'_>> = item_inserts(&order_row.id, &order.items).collect();
    let count = CountChange {
        status: order.status.as_str(),
        shard: counts::random_shard(),
        delta: 1,
    };
    let key_row = idempotency.as_ref().map(|key| IdempotencyInsert {
        idem_key: key.key(),
        fingerprint: fingerprint_to_column(key.fingerprint()),
        order_id: &order_row.id,
        response: document.body(),
        created_at: now.as_millis(),
    });
    let fresh_after = now.as_millis() - IDEMPOTENCY_TTL_MS;

    let mut attempt = 1;
    let outcome = loop {
        let result = write_transaction!(storage.pools(), |conn| {
            if let Some(key_row) = &key_row {
                if let Some(previous) = conn.find_idempotency(key_row.idem_key).await? {
                    if previous.created_at > fresh_after {
                        return if previous.fingerprint == key_row.fingerprint {
                            Ok(Outcome::Replayed(previous))
                        } else {
                            Err(StorageError::IdempotencyMismatch)
                        };
                    }
                    conn.delete_idempotency(key_row.idem_key).await?;
                }
                conn.insert_idempotency(key_row).await?;
            }
            conn.insert_orders(std::slice::from_ref(&order_row)).await?;
            conn.insert_items(&item_rows).await?;
            counts::apply(conn, vec![count]).await?;
            changes::record(
                conn,
                Change::Created {
                    id: &order_row.id,
                    version: order_row.version,
                },
                now.as_millis(),
            )
            .await?;
            Ok(Outcome::Created)
        });
        match result {
            Err(error) if error.is_unique_violation() && key_row.is_some() && attempt == 1 => {
                attempt += 1;
            }
            result => break result?,
        }
    };

    match outcome {
        Outcome::Replayed(previous) => Ok(Created {
            document: previous.into_document()?,
            replayed: true,
        }),
        Outcome::Created => {
            storage.fragments().insert(&document);
            if key_row.is_some() && rand::random_ratio(1, PURGE_ONE_IN) {
                // Detached: best effort, and on SQLite it queues with the
                // other writes, which this create's answer need not wait for.
                let storage = storage.clone();
                tokio::spawn(tracing::Instrument::in_current_span(async move {
                    purge_expired_keys(&storage, fresh_after).await
                }));
            }
            super::maybe_prune_changes(storage, now.as_millis());
            Ok(Created {
                document,
                replayed: false,
            })
        }
    }
}

/// Best effort: the order is already stored, so a failure is only logged.
/// A write like any other: on SQLite it waits for its turn with the rest.
/// Returns how many keys went.
async fn purge_expired_keys(storage: &Storage, cutoff: i64) -> Option<usize> {
    let result: Result<usize, StorageError> = async {
        write_transaction!(storage.pools(), |conn| {
            let purged = conn.purge_idempotency(cutoff).await?;
            Ok(purged)
        })
    }
    .await;
    match result {
        Ok(purged) => {
            tracing::debug!(purged, "purged expired idempotency keys");
            Some(purged)
        }
        Err(error) => {
            tracing::warn!(%error, "purging expired idempotency keys failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StorageConfig;
    use crate::storage::temp_sqlite;
    use crate::transaction::with_connection;

    #[tokio::test]
    async fn purge_removes_expired_keys_and_keeps_fresh_ones() {
        let (_dir, storage) = temp_sqlite(StorageConfig::DEFAULT_POOL_TIMEOUT).await;
        let key = |idem_key, created_at| IdempotencyInsert {
            idem_key,
            fingerprint: 1,
            order_id: "0190a0b0-0000-7000-8000-000000000000",
            response: b"{}",
            created_at,
        };
        let cutoff = 1_000_000;
        let stored: Result<(), StorageError> = async {
            write_transaction!(storage.pools(), |conn| {
                conn.insert_idempotency(&key("old", cutoff - 1)).await?;
                conn.insert_idempotency(&key("fresh", cutoff)).await?;
                Ok(())
            })
        }
        .await;
        stored.unwrap();

        assert_eq!(purge_expired_keys(&storage, cutoff).await, Some(1));
        let left: Result<_, StorageError> = async {
            with_connection!(storage.pools(), |conn| {
                Ok((
                    conn.find_idempotency("old").await?,
                    conn.find_idempotency("fresh").await?,
                ))
            })
        }
        .await;
        let (old, fresh) = left.unwrap();
        assert!(old.is_none());
        assert!(fresh.is_some());
    }
}
