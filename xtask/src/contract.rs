//! What the responses of the orders API must look like (API.md), checked by
//! the load test on every response. A response with the right status and a
//! body the original's clients could not read is a failure all the same: the
//! web front end reads `total_orders`, `orders`, `order_id`,
//! `customer_name`, `status` and `items`.

use std::str::FromStr;

use domain::{OrderId, OrderStatus};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("status {actual}, expected {expected}")]
    Status { expected: u16, actual: u16 },
    #[error("unparsable body: {0}")]
    Body(String),
    #[error("{0}")]
    Field(String),
}

fn field(message: impl Into<String>) -> ContractError {
    ContractError::Field(message.into())
}

pub fn expect_status(actual: u16, expected: u16) -> Result<(), ContractError> {
    if actual == expected {
        Ok(())
    } else {
        Err(ContractError::Status { expected, actual })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemBody {
    pub name: String,
    pub quantity: u32,
}

/// The body `POST /orders` sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewOrderBody {
    pub customer_name: String,
    pub items: Vec<ItemBody>,
}

impl NewOrderBody {
    /// A random order like the original's load scenario created, from the
    /// seeder's names so that the data looks alike.
    pub fn random(rng: &mut impl rand::Rng) -> Self {
        use rand::seq::IndexedRandom;
        let items = (0..rng.random_range(1..=3))
            .map(|_| ItemBody {
                name: (*domain::fake::PRODUCTS.choose(rng).expect("not empty")).to_owned(),
                quantity: rng.random_range(1..=5),
            })
            .collect();
        Self {
            customer_name: (*domain::fake::CUSTOMERS.choose(rng).expect("not empty")).to_owned(),
            items,
        }
    }
}

#[derive(Debug, Deserialize)]
struct OrderWire {
    order_id: String,
    customer_name: String,
    status: String,
    items: Vec<ItemBody>,
    created_at: String,
    updated_at: String,
    version: u64,
}

/// An order that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedOrder {
    pub id: OrderId,
    pub customer_name: String,
    pub status: OrderStatus,
    pub items: Vec<ItemBody>,
}

impl TryFrom<OrderWire> for CheckedOrder {
    type Error = ContractError;

    fn try_from(wire: OrderWire) -> Result<Self, ContractError> {
        let id = OrderId::from_str(&wire.order_id)
            .map_err(|_| field(format!("order_id {:?} is not a UUID", wire.order_id)))?;
        let status = OrderStatus::from_str(&wire.status)
            .map_err(|_| field(format!("status {:?} is not an allowed status", wire.status)))?;
        if wire.customer_name.trim().is_empty() {
            return Err(field(format!("order {id}: empty customer_name")));
        }
        if wire.items.is_empty() {
            return Err(field(format!("order {id}: no items")));
        }
        if let Some(item) = wire
            .items
            .iter()
            .find(|item| item.name.is_empty() || item.quantity == 0)
        {
            return Err(field(format!("order {id}: invalid item {item:?}")));
        }
        if wire.version == 0 || wire.created_at.is_empty() || wire.updated_at.is_empty() {
            return Err(field(format!("order {id}: missing version or timestamps")));
        }
        Ok(Self {
            id,
            customer_name: wire.customer_name,
            status,
            items: wire.items,
        })
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ContractError> {
    serde_json::from_slice(body).map_err(|err| ContractError::Body(err.to_string()))
}

/// The body of `GET /orders/{id}`, `POST /orders` and a status change.
pub fn order(body: &[u8]) -> Result<CheckedOrder, ContractError> {
    parse::<OrderWire>(body)?.try_into()
}

/// `GET /orders/{id}`: the order asked for.
pub fn detail(body: &[u8], id: OrderId) -> Result<CheckedOrder, ContractError> {
    let order = order(body)?;
    if order.id != id {
        return Err(field(format!("asked for {id}, got {}", order.id)));
    }
    Ok(order)
}

/// `POST /orders`: the order sent, `received`, at the `Location` it names.
pub fn created(
    body: &[u8],
    location: Option<&str>,
    sent: &NewOrderBody,
) -> Result<CheckedOrder, ContractError> {
    let order = order(body)?;
    if order.status != OrderStatus::Received {
        return Err(field(format!(
            "new order is {}, not received",
            order.status
        )));
    }
    if order.customer_name != sent.customer_name || order.items != sent.items {
        return Err(field(format!(
            "order {} differs from what was sent",
            order.id
        )));
    }
    let expected_location = format!("/orders/{}", order.id);
    if location != Some(expected_location.as_str()) {
        return Err(field(format!(
            "Location {location:?}, expected {expected_location:?}"
        )));
    }
    Ok(order)
}

/// `PATCH /orders/{id}/status`: the order, now in the status asked for.
pub fn status_changed(
    body: &[u8],
    id: OrderId,
    status: OrderStatus,
) -> Result<CheckedOrder, ContractError> {
    let order = detail(body, id)?;
    if order.status != status {
        return Err(field(format!(
            "order {id} is {} after asking for {status}",
            order.status
        )));
    }
    Ok(order)
}

/// `DELETE /orders/{id}`: the original's message.
pub fn deleted(body: &[u8], id: OrderId) -> Result<(), ContractError> {
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    let message = parse::<Message>(body)?.message;
    let expected = format!("Order '{id}' has been deleted.");
    if message != expected {
        return Err(field(format!("message {message:?}, expected {expected:?}")));
    }
    Ok(())
}

#[derive(Deserialize)]
struct ListWire {
    total_orders: u64,
    orders: Vec<OrderWire>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// `GET /orders` without parameters: every order, newest first, and
/// `total_orders` counting them.
pub fn list(body: &[u8]) -> Result<Vec<CheckedOrder>, ContractError> {
    let wire = parse::<ListWire>(body)?;
    if wire.total_orders != wire.orders.len() as u64 {
        return Err(field(format!(
            "total_orders {} but {} orders",
            wire.total_orders,
            wire.orders.len()
        )));
    }
    let orders = wire
        .orders
        .into_iter()
        .map(CheckedOrder::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    newest_first(&orders)?;
    Ok(orders)
}

/// A keyset page: at most `limit` orders, newest first, and the cursor of
/// the next page (`None` on the last).
pub fn page(
    body: &[u8],
    limit: usize,
) -> Result<(Vec<CheckedOrder>, Option<String>), ContractError> {
    let wire = parse::<ListWire>(body)?;
    if wire.orders.len() > limit || (wire.orders.len() as u64) > wire.total_orders {
        return Err(field(format!(
            "page of {} orders for limit {limit}, total_orders {}",
            wire.orders.len(),
            wire.total_orders
        )));
    }
    let orders = wire
        .orders
        .into_iter()
        .map(CheckedOrder::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    newest_first(&orders)?;
    Ok((orders, wire.next_cursor))
}

/// Ids are UUIDv7, so id order is creation order.
fn newest_first(orders: &[CheckedOrder]) -> Result<(), ContractError> {
    match orders.windows(2).find(|pair| pair[0].id <= pair[1].id) {
        Some(pair) => Err(field(format!(
            "not newest first: {} before {}",
            pair[0].id, pair[1].id
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order_json(id: OrderId, status: &str) -> String {
        format!(
            r#"{{"order_id":"{id}","customer_name":"Alice","status":"{status}","items":[{{"name":"Pen","quantity":2}}],"created_at":"2026-11-25T10:00:00.123Z","updated_at":"2026-11-25T10:00:00.123Z","version":1}}"#
        )
    }

    #[test]
    fn a_valid_list_passes_and_keeps_its_ids() {
        let (older, newer) = (OrderId::new(), OrderId::new());
        let body = format!(
            r#"{{"total_orders":2,"orders":[{},{}]}}"#,
            order_json(newer, "received"),
            order_json(older, "shipped")
        );
        let orders = list(body.as_bytes()).unwrap();
        assert_eq!(
            orders.iter().map(|o| o.id).collect::<Vec<_>>(),
            [newer, older]
        );
    }

    #[test]
    fn broken_lists_are_refused() {
        let id = OrderId::new();
        let wrong_total = format!(
            r#"{{"total_orders":5,"orders":[{}]}}"#,
            order_json(id, "received")
        );
        assert!(matches!(
            list(wrong_total.as_bytes()),
            Err(ContractError::Field(_))
        ));
        let bad_status = format!(
            r#"{{"total_orders":1,"orders":[{}]}}"#,
            order_json(id, "lost")
        );
        assert!(matches!(
            list(bad_status.as_bytes()),
            Err(ContractError::Field(_))
        ));
        assert!(matches!(list(b"<html>"), Err(ContractError::Body(_))));
        assert!(matches!(
            list(br#"{"orders":[]}"#),
            Err(ContractError::Body(_))
        ));
        let (older, newer) = (OrderId::new(), OrderId::new());
        let oldest_first = format!(
            r#"{{"total_orders":2,"orders":[{},{}]}}"#,
            order_json(older, "received"),
            order_json(newer, "received")
        );
        assert!(list(oldest_first.as_bytes()).is_err());
    }

    #[test]
    fn created_must_echo_the_request_and_name_its_location() {
        let id = OrderId::new();
        let sent = NewOrderBody {
            customer_name: "Alice".into(),
            items: vec![ItemBody {
                name: "Pen".into(),
                quantity: 2,
            }],
        };
        let body = order_json(id, "received");
        let location = format!("/orders/{id}");
        assert_eq!(
            created(body.as_bytes(), Some(&location), &sent).unwrap().id,
            id
        );
        assert!(created(body.as_bytes(), None, &sent).is_err());
        let other = NewOrderBody {
            customer_name: "Bob".into(),
            ..sent.clone()
        };
        assert!(created(body.as_bytes(), Some(&location), &other).is_err());
        let shipped = order_json(id, "shipped");
        assert!(created(shipped.as_bytes(), Some(&location), &sent).is_err());
    }

    #[test]
    fn detail_status_and_delete_checks() {
        let id = OrderId::new();
        let body = order_json(id, "completed");
        assert!(detail(body.as_bytes(), id).is_ok());
        assert!(detail(body.as_bytes(), OrderId::new()).is_err());
        assert!(status_changed(body.as_bytes(), id, OrderStatus::Completed).is_ok());
        assert!(status_changed(body.as_bytes(), id, OrderStatus::Shipped).is_err());
        let message = format!(r#"{{"message":"Order '{id}' has been deleted."}}"#);
        assert!(deleted(message.as_bytes(), id).is_ok());
        assert!(deleted(message.as_bytes(), OrderId::new()).is_err());
        assert_eq!(
            expect_status(404, 200),
            Err(ContractError::Status {
                expected: 200,
                actual: 404
            })
        );
    }

    #[test]
    fn pages_are_bounded_and_carry_the_cursor() {
        let id = OrderId::new();
        let body = format!(
            r#"{{"total_orders":7,"orders":[{}],"next_cursor":"abc"}}"#,
            order_json(id, "ready")
        );
        let (orders, next) = page(body.as_bytes(), 1).unwrap();
        assert_eq!((orders.len(), next.as_deref()), (1, Some("abc")));
        assert!(page(body.as_bytes(), 0).is_err());
    }
}
