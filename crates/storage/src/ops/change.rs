use domain::{Item, OrderDocument, OrderId, OrderStatus, StatusUpdate, Timestamp, Version};

use crate::changes::{self, Change};
use crate::counts::{self, CountChange};
use crate::models::{ItemRow, OrderRow, parse_status, version_to_column};
use crate::queries::Queries;
use crate::transaction::write_transaction;
use crate::{Storage, StorageError};

/// Sets the status, bumps the version (always: a PATCH is a change request,
/// even to the same status) and `updated_at`, and moves the order between
/// the status counts.
pub(crate) async fn update_status(
    storage: &Storage,
    id: OrderId,
    status: OrderStatus,
    expected: Option<Version>,
) -> Result<StatusUpdate, StorageError> {
    let id = id.to_text();
    let now = Timestamp::now().as_millis();
    let shard = counts::random_shard();
    let update = write_transaction!(storage.pools(), |conn| {
        let Some(row) = conn.lock_order(&id).await? else {
            return Ok(StatusUpdate::NotFound);
        };
        if let Some(expected) = expected
            && row.version() != expected
        {
            return Ok(StatusUpdate::VersionMismatch {
                current: row.version(),
            });
        }
        let old_status = parse_status(&row.status)?;
        let version = row.version().next();
        conn.set_status(&id, status.as_str(), now, version_to_column(version))
            .await?;
        let items: Vec<Item> = conn
            .items_by_order_ids(&[id.as_str()])
            .await?
            .into_iter()
            .map(ItemRow::into_item)
            .collect();
        if old_status != status {
            counts::move_one(conn, old_status.as_str(), status.as_str(), shard).await?;
        }
        changes::record(
            conn,
            Change::Status {
                id: &id,
                version: version_to_column(version),
            },
            now,
        )
        .await?;
        let updated = OrderRow {
            status: status.as_str().to_owned(),
            updated_at: now,
            version: version_to_column(version),
            ..row
        };
        Ok(StatusUpdate::Updated(OrderDocument::render(
            &updated.into_order(items)?,
        )))
    })?;
    if let StatusUpdate::Updated(document) = &update {
        storage.fragments().insert(document);
        super::maybe_prune_changes(storage, now);
    }
    Ok(update)
}

/// Deletes the order (its items go by the foreign key's cascade) and takes
/// it off its status count.
pub(crate) async fn delete(storage: &Storage, id: OrderId) -> Result<bool, StorageError> {
    let id = id.to_text();
    let shard = counts::random_shard();
    let now = Timestamp::now().as_millis();
    let deleted = write_transaction!(storage.pools(), |conn| {
        let Some(row) = conn.lock_order(&id).await? else {
            return Ok(false);
        };
        let status = parse_status(&row.status)?;
        conn.delete_order(&id).await?;
        counts::apply(
            conn,
            vec![CountChange {
                status: status.as_str(),
                shard,
                delta: -1,
            }],
        )
        .await?;
        changes::record(conn, Change::Deleted { id: &id }, now).await?;
        Ok(true)
    })?;
    if deleted {
        super::maybe_prune_changes(storage, now);
    }
    Ok(deleted)
}
