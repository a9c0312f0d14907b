use std::collections::HashMap;

use bytes::Bytes;
use domain::{Cursor, Item, ListDocument, ListQuery, OrderDocument, OrderId, Version};

use crate::counts;
use crate::models::{ItemRow, OrderRow, parse_id};
use crate::queries::Queries;
use crate::transaction::{read_transaction, with_connection};
use crate::{Storage, StorageError};

/// Ids per `IN (...)` list: far below SQLite's and MySQL's bind limits, and
/// a page holds at most 1,001 rows anyway.
const IDS_PER_QUERY: usize = 1000;

pub(crate) async fn get(
    storage: &Storage,
    id: OrderId,
) -> Result<Option<OrderDocument>, StorageError> {
    let id = id.to_text();
    let rows = with_connection!(storage.pools(), |conn| {
        let rows = conn.order_with_items(&id).await?;
        Ok(rows)
    })?;
    let mut rows = rows.into_iter();
    let Some((order, first_item)) = rows.next() else {
        return Ok(None);
    };
    let items = first_item
        .into_iter()
        .chain(rows.filter_map(|(_, item)| item))
        .map(ItemRow::into_item)
        .collect();
    let document = OrderDocument::render(&order.into_order(items)?);
    storage.fragments().insert(&document);
    Ok(Some(document))
}

/// What a list transaction read: the ids and versions in list order, the
/// bodies already rendered for some of them, and the rows of the others.
struct ListRead {
    keys: Vec<(OrderId, Version)>,
    cached: Vec<Option<Bytes>>,
    loaded: Vec<(OrderRow, Vec<Item>)>,
    total: u64,
    next_cursor: Option<Option<Cursor>>,
}

/// Newest first. The ids and versions come first; only the orders without a
/// cached fragment are loaded (all of them in two statements when most are
/// missing, else by id), and the list body is joined from the fragments.
pub(crate) async fn list(
    storage: &Storage,
    query: ListQuery,
) -> Result<ListDocument, StorageError> {
    if query.is_full() {
        return crate::full_list::read(storage).await;
    }
    let status = query.status.map(|status| status.as_str());
    let page = query.page;
    let before = page
        .and_then(|page| page.after)
        .map(|cursor| cursor.last_seen().to_text());
    let limit = page.map(|page| usize::from(page.limit.get()));
    let fragments = storage.fragments();

    let read = read_transaction!(storage.pools(), |conn| {
        // One row past the page says whether there is a next page.
        let mut versions = conn
            .order_versions(
                status,
                before.as_deref(),
                limit.map(|limit| limit as i64 + 1),
            )
            .await?;
        let next_cursor = match limit {
            None => None,
            Some(limit) if versions.len() > limit => {
                versions.truncate(limit);
                let last = versions.last().map(|(id, _)| parse_id(id)).transpose()?;
                Some(last.map(Cursor::after))
            }
            Some(_) => Some(None),
        };
        let total = match page {
            // Every matching order is in the list: its length is the count.
            None => versions.len() as u64,
            Some(_) => counts::total(conn, status).await?,
        };
        let keys = versions
            .iter()
            .map(|(id, version)| Ok((parse_id(id)?, Version::new(*version as u64))))
            .collect::<Result<Vec<_>, StorageError>>()?;
        let cached = fragments.lookup(&keys);
        let missing: Vec<&str> = versions
            .iter()
            .zip(&cached)
            .filter(|(_, body)| body.is_none())
            .map(|(row, _)| row.0.as_str())
            .collect();
        let loaded = if missing.is_empty() {
            Vec::new()
        } else if page.is_none() && missing.len() * 2 > versions.len() {
            let orders = conn.all_orders(status).await?;
            let items = conn.all_items(status).await?;
            attach_items(orders, items)
        } else {
            load_by_ids(conn, &missing).await?
        };
        Ok(ListRead {
            keys,
            cached,
            loaded,
            total,
            next_cursor,
        })
    })?;
    assemble(storage, read)
}

/// Renders the loaded orders (remembering them as fragments) and joins
/// every body in list order.
fn assemble(storage: &Storage, read: ListRead) -> Result<ListDocument, StorageError> {
    let ListRead {
        keys,
        cached,
        loaded,
        total,
        next_cursor,
    } = read;
    let mut rendered: HashMap<OrderId, OrderDocument> = HashMap::with_capacity(loaded.len());
    for (row, items) in loaded {
        let document = OrderDocument::render(&row.into_order(items)?);
        rendered.insert(document.id(), document);
    }
    storage.fragments().insert_many(rendered.values());
    let mut bodies = Vec::with_capacity(keys.len());
    for ((id, _), cached) in keys.iter().zip(cached) {
        let body = match cached {
            Some(body) => body,
            None => rendered
                .get(id)
                .map(|document| document.body().clone())
                .ok_or_else(|| StorageError::CorruptRow(format!("order {id} vanished mid-read")))?,
        };
        bodies.push(body);
    }
    Ok(ListDocument::render(
        total,
        bodies.iter().map(|body| &body[..]),
        next_cursor,
    ))
}

async fn load_by_ids<C: Queries>(
    conn: &mut C,
    ids: &[&str],
) -> Result<Vec<(OrderRow, Vec<Item>)>, StorageError> {
    let mut orders = Vec::with_capacity(ids.len());
    let mut items = Vec::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        orders.extend(conn.orders_by_ids(chunk).await?);
        items.extend(conn.items_by_order_ids(chunk).await?);
    }
    Ok(attach_items(orders, items))
}

/// Groups item rows (sorted by order, then position) under their orders.
fn attach_items(orders: Vec<OrderRow>, items: Vec<ItemRow>) -> Vec<(OrderRow, Vec<Item>)> {
    let mut by_order: HashMap<String, Vec<Item>> = HashMap::with_capacity(orders.len());
    for mut row in items {
        let order_id = std::mem::take(&mut row.order_id);
        by_order.entry(order_id).or_default().push(row.into_item());
    }
    orders
        .into_iter()
        .map(|order| {
            let items = by_order.remove(&order.id).unwrap_or_default();
            (order, items)
        })
        .collect()
}
