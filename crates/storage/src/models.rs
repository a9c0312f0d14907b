//! Rows as the tables hold them, and their conversions to and from the
//! domain's types. Nothing here leaves the crate.

use bytes::Bytes;
use diesel::prelude::*;
use domain::{Item, Order, OrderDocument, OrderId, OrderStatus, Timestamp, Version};

use crate::StorageError;
use crate::schema::{idempotency_keys, list_chunks, order_items, orders};

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = orders)]
pub(crate) struct OrderRow {
    pub id: String,
    pub customer_name: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = order_items)]
pub(crate) struct ItemRow {
    pub order_id: String,
    pub name: String,
    pub quantity: i32,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = idempotency_keys)]
pub(crate) struct IdempotencyRow {
    pub fingerprint: i64,
    pub order_id: String,
    pub response: Vec<u8>,
    pub created_at: i64,
}

/// A kept chunk of the full list without its body (see the migration
/// `kept_list`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = list_chunks)]
pub(crate) struct KeptRow {
    pub from_id: String,
    pub below_id: Option<String>,
    pub epoch: i64,
    pub seq: i64,
    pub order_count: i64,
    pub digest: i64,
    pub kept_at: i64,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = list_chunks)]
pub(crate) struct KeptInsert<'a> {
    pub from_id: &'a str,
    pub below_id: Option<&'a str>,
    pub epoch: i64,
    pub seq: i64,
    pub order_count: i64,
    pub digest: i64,
    pub body: &'a [u8],
    pub kept_at: i64,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = orders)]
pub(crate) struct OrderInsert<'a> {
    pub id: String,
    pub customer_name: &'a str,
    pub status: &'static str,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = order_items)]
pub(crate) struct ItemInsert<'a> {
    pub order_id: &'a str,
    pub position: i32,
    pub name: &'a str,
    pub quantity: i32,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = idempotency_keys)]
pub(crate) struct IdempotencyInsert<'a> {
    pub idem_key: &'a str,
    pub fingerprint: i64,
    pub order_id: &'a str,
    pub response: &'a [u8],
    pub created_at: i64,
}

impl<'a> OrderInsert<'a> {
    pub fn from_order(order: &'a Order) -> Self {
        Self {
            id: order.id.to_text(),
            customer_name: &order.customer_name,
            status: order.status.as_str(),
            created_at: order.created_at.as_millis(),
            updated_at: order.updated_at.as_millis(),
            version: version_to_column(order.version),
        }
    }
}

/// The item rows of one order, numbered in the order they were given.
pub(crate) fn item_inserts<'a>(
    order_id: &'a str,
    items: &'a [Item],
) -> impl Iterator<Item = ItemInsert<'a>> + 'a {
    items
        .iter()
        .zip(0..)
        .map(move |(item, position)| ItemInsert {
            order_id,
            position,
            name: &item.name,
            // Quantities are at most 1,000,000 (domain::Quantity), far inside i32.
            quantity: item.quantity as i32,
        })
}

pub(crate) fn version_to_column(version: Version) -> i64 {
    version.get() as i64
}

/// The fingerprint is a u64 digest; the column is a signed BIGINT, so its
/// bits are stored as they are.
pub(crate) fn fingerprint_to_column(fingerprint: u64) -> i64 {
    fingerprint as i64
}

pub(crate) fn parse_id(text: &str) -> Result<OrderId, StorageError> {
    text.parse()
        .map_err(|_| StorageError::CorruptRow(format!("order id {text:?} is not a UUID")))
}

pub(crate) fn parse_status(text: &str) -> Result<OrderStatus, StorageError> {
    text.parse()
        .map_err(|_| StorageError::CorruptRow(format!("unknown order status {text:?}")))
}

impl OrderRow {
    pub fn version(&self) -> Version {
        Version::new(self.version.max(0) as u64)
    }

    pub fn into_order(self, items: Vec<Item>) -> Result<Order, StorageError> {
        Ok(Order {
            id: parse_id(&self.id)?,
            status: parse_status(&self.status)?,
            version: self.version(),
            customer_name: self.customer_name,
            items,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
        })
    }
}

impl ItemRow {
    pub fn into_item(self) -> Item {
        Item {
            name: self.name,
            quantity: self.quantity.max(0) as u32,
        }
    }
}

impl IdempotencyRow {
    /// The stored 201 body, checked to still be a rendered order.
    pub fn into_document(self) -> Result<OrderDocument, StorageError> {
        let id = parse_id(&self.order_id)?;
        OrderDocument::from_rendered(id, Bytes::from(self.response)).ok_or_else(|| {
            StorageError::CorruptRow(format!(
                "the stored response of idempotent order {id} is not a rendered order"
            ))
        })
    }
}
