//! `POST /orders` and `PATCH /orders/{id}/status` bodies, from raw bytes
//! through the JSON parse to the domain types.

use domain::{ITEMS_MAX, NAME_MAX_CHARS, QUANTITY_MAX};
use http::parsers::{json_body, new_order, status_change};

use crate::answered;

pub fn order_body(data: &[u8]) {
    let body = match json_body(data, true) {
        Ok(body) => body,
        Err(error) => {
            assert_eq!(answered(&error), 400);
            return;
        }
    };
    match new_order(body) {
        Ok(order) => {
            let name = order.customer_name().as_str();
            assert!(!name.is_empty() && name.chars().count() <= NAME_MAX_CHARS);
            assert_eq!(name, name.trim());
            assert!((1..=ITEMS_MAX).contains(&order.items().len()));
            for item in order.items() {
                let item_name = item.name.as_str();
                assert!(!item_name.is_empty() && item_name.chars().count() <= NAME_MAX_CHARS);
                assert!((1..=QUANTITY_MAX).contains(&i64::from(item.quantity.get())));
            }
        }
        Err(invalid) => {
            let error = http::ApiError::from(invalid);
            assert_eq!(answered(&error), 400);
            assert!(error.field().is_some(), "a rejected order names its field");
        }
    }
}

pub fn status_body(data: &[u8]) {
    let body = match json_body(data, true) {
        Ok(body) => body,
        Err(error) => {
            assert_eq!(answered(&error), 400);
            return;
        }
    };
    match status_change(body) {
        Ok(status) => {
            // A status read is one the contract spells.
            assert_eq!(
                status.to_string().parse::<domain::OrderStatus>().ok(),
                Some(status)
            );
        }
        Err(error) => {
            assert_eq!(answered(&error), 400);
            assert_eq!(
                error.field().map(ToString::to_string).as_deref(),
                Some("status")
            );
        }
    }
}
