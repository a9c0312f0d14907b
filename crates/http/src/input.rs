//! Turning request JSON and query strings into domain types. Shapes and
//! types are checked here (a string is never a number, a float never an
//! integer); the rules themselves live in the domain's `parse` functions.

use domain::{
    Cursor, CustomerName, ItemName, Limit, ListQuery, NewItem, NewOrder, OrderStatus, PageRequest,
    Quantity, ValidationError,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::ApiError;

fn present<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    object.get(field).filter(|value| !value.is_null())
}

pub fn new_order(body: Option<Value>) -> Result<NewOrder, ValidationError> {
    let Some(Value::Object(object)) = body else {
        return Err(ValidationError::MissingOrderFields);
    };
    let (Some(name), Some(items)) = (present(&object, "customer_name"), present(&object, "items"))
    else {
        return Err(ValidationError::MissingOrderFields);
    };
    let Value::String(name) = name else {
        return Err(ValidationError::CustomerName);
    };
    let customer_name = CustomerName::parse(name)?;
    let Value::Array(items) = items else {
        return Err(ValidationError::MissingOrderFields);
    };
    if items.is_empty() {
        return Err(ValidationError::MissingOrderFields);
    }
    if items.len() > domain::ITEMS_MAX {
        return Err(ValidationError::ItemCount);
    }
    let items = items.iter().map(new_item).collect::<Result<_, _>>()?;
    NewOrder::new(customer_name, items)
}

fn new_item(item: &Value) -> Result<NewItem, ValidationError> {
    let Value::Object(item) = item else {
        return Err(ValidationError::ItemNotObject);
    };
    let (Some(name), Some(quantity)) = (present(item, "name"), present(item, "quantity")) else {
        return Err(ValidationError::ItemFieldsMissing);
    };
    let Value::String(name) = name else {
        return Err(ValidationError::ItemName);
    };
    let quantity = match quantity {
        Value::Number(number) if number.is_i64() => number.as_i64().unwrap_or_default(),
        // Larger than i64 but still an integer: too large, not "not an integer".
        Value::Number(number) if number.is_u64() => i64::MAX,
        _ => return Err(ValidationError::QuantityNotInteger),
    };
    Ok(NewItem {
        name: ItemName::parse(name)?,
        quantity: Quantity::parse(quantity)?,
    })
}

fn invalid_status() -> ApiError {
    ApiError::bad_request("invalid_status", domain::ParseStatusError.to_string())
}

pub fn status_change(body: Option<Value>) -> Result<OrderStatus, ApiError> {
    let status = match &body {
        Some(Value::Object(object)) => present(object, "status"),
        _ => None,
    };
    match status {
        None => Err(ApiError::bad_request(
            "missing_status",
            "Request must include 'status'.",
        )),
        Some(Value::String(status)) => status.parse().map_err(|_| invalid_status()),
        Some(_) => Err(invalid_status()),
    }
}

/// `GET /orders` parameters as sent; unknown ones are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
    status: Option<String>,
}

impl TryFrom<ListParams> for ListQuery {
    type Error = ApiError;

    fn try_from(params: ListParams) -> Result<Self, ApiError> {
        let status = params
            .status
            .map(|status| status.parse().map_err(|_| invalid_status()))
            .transpose()?;
        let limit = params
            .limit
            .map(|limit| {
                limit.parse().ok().and_then(Limit::new).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_limit",
                        "'limit' must be an integer from 1 to 1000.",
                    )
                })
            })
            .transpose()?;
        let after = params
            .cursor
            .map(|cursor| {
                Cursor::decode(&cursor).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_cursor",
                        "'cursor' is not valid: pass the 'next_cursor' of the previous page.",
                    )
                })
            })
            .transpose()?;
        // A cursor alone still asks for a page, of the default size.
        let page = (limit.is_some() || after.is_some()).then(|| PageRequest {
            limit: limit.unwrap_or(Limit::DEFAULT),
            after,
        });
        Ok(ListQuery { status, page })
    }
}

/// The `count` of `POST /admin/seed`: `{"count": N}` or a bare integer.
pub fn seed_count(body: Option<&Value>) -> Result<u64, ApiError> {
    let count = match body {
        Some(Value::Object(object)) => present(object, "count"),
        Some(number @ Value::Number(_)) => Some(number),
        _ => None,
    };
    let count = count.and_then(|count| count.as_i64().or_else(|| count.as_u64().map(|_| i64::MAX)));
    match count {
        None => Err(ApiError::bad_request(
            "invalid_count",
            "Request body must include an integer 'count' value.",
        )),
        Some(..=0) => Err(ApiError::bad_request(
            "invalid_count",
            "'count' must be greater than zero.",
        )),
        Some(count) if count as u64 > domain::fake::MAX_SEED => Err(ApiError::bad_request(
            "invalid_count",
            format!("'count' must be at most {}.", domain::fake::MAX_SEED),
        )),
        Some(count) => Ok(count as u64),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn order(body: Value) -> Result<NewOrder, ValidationError> {
        new_order(Some(body))
    }

    #[test]
    fn a_valid_order_parses() {
        let parsed = order(json!({"customer_name": " Alice ", "items": [{"name": "Pen", "quantity": 2}], "extra": 1})).unwrap();
        assert_eq!(parsed.customer_name().as_str(), "Alice");
        assert_eq!(parsed.items()[0].quantity.get(), 2);
    }

    #[test]
    fn shapes_and_types_are_checked() {
        use ValidationError::*;
        assert_eq!(new_order(None), Err(MissingOrderFields));
        assert_eq!(order(json!([1, 2])), Err(MissingOrderFields));
        assert_eq!(order(json!("x")), Err(MissingOrderFields));
        assert_eq!(
            order(json!({"customer_name": "A"})),
            Err(MissingOrderFields)
        );
        assert_eq!(
            order(json!({"customer_name": "A", "items": []})),
            Err(MissingOrderFields)
        );
        assert_eq!(
            order(json!({"customer_name": 5, "items": [{"name": "P", "quantity": 1}]})),
            Err(CustomerName)
        );
        assert_eq!(
            order(json!({"customer_name": "A", "items": [3]})),
            Err(ItemNotObject)
        );
        assert_eq!(
            order(json!({"customer_name": "A", "items": [{"name": "P"}]})),
            Err(ItemFieldsMissing)
        );
        assert_eq!(
            order(json!({"customer_name": "A", "items": [{"name": 7, "quantity": 1}]})),
            Err(ItemName)
        );
        for quantity in [json!("7"), json!(2.9), json!(true)] {
            assert_eq!(
                order(
                    json!({"customer_name": "A", "items": [{"name": "P", "quantity": quantity}]})
                ),
                Err(QuantityNotInteger)
            );
        }
        assert_eq!(
            order(json!({"customer_name": "A", "items": [{"name": "P", "quantity": 0}]})),
            Err(QuantityNotPositive)
        );
        assert_eq!(
            order(json!({"customer_name": "A", "items": [{"name": "P", "quantity": u64::MAX}]})),
            Err(QuantityTooLarge)
        );
        let many: Vec<Value> = (0..101)
            .map(|_| json!({"name": "P", "quantity": 1}))
            .collect();
        assert_eq!(
            order(json!({"customer_name": "A", "items": many})),
            Err(ItemCount)
        );
    }

    #[test]
    fn status_bodies() {
        assert!(status_change(Some(json!({"status": "shipped"}))).is_ok());
        assert_eq!(status_change(None).unwrap_err().code(), "missing_status");
        assert_eq!(
            status_change(Some(json!(["shipped"]))).unwrap_err().code(),
            "missing_status"
        );
        assert_eq!(
            status_change(Some(json!({"status": "lost"})))
                .unwrap_err()
                .code(),
            "invalid_status"
        );
        assert_eq!(
            status_change(Some(json!({"status": 3})))
                .unwrap_err()
                .code(),
            "invalid_status"
        );
    }

    #[test]
    fn seed_counts() {
        assert_eq!(seed_count(Some(&json!({"count": 5}))).unwrap(), 5);
        assert_eq!(seed_count(Some(&json!(7))).unwrap(), 7);
        assert!(seed_count(None).is_err());
        assert!(seed_count(Some(&json!({"count": "5"}))).is_err());
        assert!(seed_count(Some(&json!({"count": 0}))).is_err());
        assert!(seed_count(Some(&json!({"count": 100_001}))).is_err());
    }

    #[test]
    fn list_params() {
        let query = ListQuery::try_from(ListParams::default()).unwrap();
        assert_eq!(query, ListQuery::default());
        let params = |limit: &str| ListParams {
            limit: Some(limit.into()),
            ..Default::default()
        };
        assert!(ListQuery::try_from(params("0")).is_err());
        assert!(ListQuery::try_from(params("abc")).is_err());
        assert_eq!(
            ListQuery::try_from(params("10"))
                .unwrap()
                .page
                .unwrap()
                .limit
                .get(),
            10
        );
        let cursor_only = ListParams {
            cursor: Some("nope".into()),
            ..Default::default()
        };
        assert_eq!(
            ListQuery::try_from(cursor_only).unwrap_err().code(),
            "invalid_cursor"
        );
    }
}
