//! The `Idempotency-Key` header of `POST /orders`, as raw header bytes.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use domain::{CustomerName, IDEMPOTENCY_KEY_MAX, ItemName, NewItem, NewOrder, Quantity};
use http::parsers;

use crate::answered;

fn order() -> NewOrder {
    let item = NewItem {
        name: ItemName::parse("Widget").expect("a valid name"),
        quantity: Quantity::parse(1).expect("a valid quantity"),
    };
    NewOrder::new(
        CustomerName::parse("Ada").expect("a valid name"),
        vec![item],
    )
    .expect("a valid order")
}

pub fn idempotency_key(data: &[u8]) {
    // Bytes no HTTP parser would pass as a field value never reach us.
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static("idempotency-key"), value);
    let order = order();
    match parsers::idempotency_key(&headers, &order) {
        Ok(Some(key)) => {
            assert_eq!(key.key().as_bytes(), data, "the key is kept as sent");
            assert!((1..=IDEMPOTENCY_KEY_MAX).contains(&key.key().len()));
            assert_eq!(key.fingerprint(), order.fingerprint());
        }
        Ok(None) => panic!("a request with the header has a key or an error"),
        Err(error) => {
            assert_eq!(answered(&error), 400);
            assert_eq!(
                error.field().map(ToString::to_string).as_deref(),
                Some("Idempotency-Key")
            );
        }
    }
}
