//! Turning request JSON and query strings into domain types. Shapes and
//! types are checked here (a string is never a number, a float never an
//! integer); the rules themselves live in the domain's `parse` functions.

use actix_web::http::header::HeaderMap;
use domain::{
    Cursor, FieldPath, IdempotencyKey, InvalidInput, Limit, ListQuery, NewItem, NewOrder,
    OrderStatus, PageRequest, Quantity, ValidationError,
};
use serde_json::{Map, Value};

use crate::error::ApiError;

fn present<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    object.get(field).filter(|value| !value.is_null())
}

/// A `POST /orders` body. A missing member is pointed at by its own path
/// (the first one missing when both are), as is a body that is not an
/// object at all: it lacks `customer_name` first.
pub fn new_order(body: Option<Value>) -> Result<NewOrder, InvalidInput> {
    use ValidationError::*;
    let name_path = FieldPath::field("customer_name");
    let items_path = FieldPath::field("items");
    let object = match body {
        Some(Value::Object(object)) => object,
        _ => return Err(MissingOrderFields.at(name_path)),
    };
    let Some(name) = present(&object, "customer_name") else {
        return Err(MissingOrderFields.at(name_path));
    };
    let Some(items) = present(&object, "items") else {
        return Err(MissingOrderFields.at(items_path));
    };
    let Value::String(name) = name else {
        return Err(CustomerName.at(name_path));
    };
    let customer_name = domain::CustomerName::parse(name).map_err(|rule| rule.at(name_path))?;
    let Value::Array(items) = items else {
        return Err(MissingOrderFields.at(items_path));
    };
    if items.is_empty() {
        return Err(MissingOrderFields.at(items_path));
    }
    if items.len() > domain::ITEMS_MAX {
        return Err(ItemCount.at(items_path));
    }
    let items = items
        .iter()
        .enumerate()
        .map(|(index, item)| new_item(item, items_path.index(index)))
        .collect::<Result<_, _>>()?;
    NewOrder::new(customer_name, items).map_err(|rule| rule.at(items_path))
}

/// One element of `items`, at `path`. A missing member is pointed at by
/// its own path (`name` first when both are missing).
fn new_item(item: &Value, path: FieldPath) -> Result<NewItem, InvalidInput> {
    use ValidationError::*;
    let Value::Object(item) = item else {
        return Err(ItemNotObject.at(path));
    };
    let name_path = path.key("name");
    let quantity_path = path.key("quantity");
    let Some(name) = present(item, "name") else {
        return Err(ItemFieldsMissing.at(name_path));
    };
    let Some(quantity) = present(item, "quantity") else {
        return Err(ItemFieldsMissing.at(quantity_path));
    };
    let Value::String(name) = name else {
        return Err(ItemName.at(name_path));
    };
    let Some(quantity) = integer(quantity) else {
        return Err(QuantityNotInteger.at(quantity_path));
    };
    Ok(NewItem {
        name: domain::ItemName::parse(name).map_err(|rule| rule.at(name_path))?,
        quantity: Quantity::parse(quantity).map_err(|rule| rule.at(quantity_path))?,
    })
}

/// A JSON number that is an integer, as JSON Schema has it: `2` and `2.0`
/// alike (the document says `type: integer`, which admits both), never
/// `2.5`. Integers beyond i64 saturate, so that they are too large rather
/// than "not an integer".
fn integer(value: &Value) -> Option<i64> {
    let Value::Number(number) = value else {
        return None;
    };
    if let Some(integer) = number.as_i64() {
        return Some(integer);
    }
    if number.is_u64() {
        return Some(i64::MAX);
    }
    let float = number.as_f64().filter(|float| float.fract() == 0.0)?;
    // `as` saturates at i64's bounds.
    Some(float as i64)
}

fn invalid_status() -> ApiError {
    ApiError::invalid(
        "invalid_status",
        domain::ParseStatusError.to_string(),
        FieldPath::field("status"),
    )
}

pub fn status_change(body: Option<Value>) -> Result<OrderStatus, ApiError> {
    let status = match &body {
        Some(Value::Object(object)) => present(object, "status"),
        _ => None,
    };
    match status {
        None => Err(ApiError::invalid(
            "missing_status",
            "Request must include 'status'.",
            FieldPath::field("status"),
        )),
        Some(Value::String(status)) => status.parse().map_err(|_| invalid_status()),
        Some(_) => Err(invalid_status()),
    }
}

/// The `Idempotency-Key` of a `POST /orders`, tied to the order it came
/// with; `None` when the request has none.
pub fn idempotency_key(
    headers: &HeaderMap,
    order: &NewOrder,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let invalid = |rule: ValidationError| rule.at(FieldPath::field("Idempotency-Key"));
    let raw = raw
        .to_str()
        .map_err(|_| invalid(ValidationError::IdempotencyKey))?;
    Ok(Some(IdempotencyKey::parse(raw, order).map_err(invalid)?))
}

/// `GET /orders` parameters as sent; unknown ones are ignored. Read from
/// the query string's pairs rather than through serde, so that even a
/// repeated parameter is reported with its name as the `field`.
#[derive(Debug, Default)]
pub struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
    status: Option<String>,
}

impl ListParams {
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let mut params = Self::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let (slot, field) = match name.as_ref() {
                "limit" => (&mut params.limit, "limit"),
                "cursor" => (&mut params.cursor, "cursor"),
                "status" => (&mut params.status, "status"),
                _ => continue,
            };
            if slot.is_some() {
                // serde_urlencoded's wording, which this answer had before.
                return Err(ApiError::invalid(
                    "invalid_query",
                    format!("Invalid query string: duplicate field `{field}`."),
                    FieldPath::field(field),
                ));
            }
            *slot = Some(value.into_owned());
        }
        Ok(params)
    }
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
                    ApiError::invalid(
                        "invalid_limit",
                        "'limit' must be an integer from 1 to 1000.",
                        FieldPath::field("limit"),
                    )
                })
            })
            .transpose()?;
        let after = params
            .cursor
            .map(|cursor| {
                Cursor::decode(&cursor).ok_or_else(|| {
                    ApiError::invalid(
                        "invalid_cursor",
                        "'cursor' is not valid: pass the 'next_cursor' of the previous page.",
                        FieldPath::field("cursor"),
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
    let count = count.and_then(integer);
    let invalid =
        |message: String| ApiError::invalid("invalid_count", message, FieldPath::field("count"));
    match count {
        None => Err(invalid(
            "Request body must include an integer 'count' value.".to_owned(),
        )),
        Some(..=0) => Err(invalid("'count' must be greater than zero.".to_owned())),
        Some(count) if count as u64 > domain::fake::MAX_SEED => Err(invalid(format!(
            "'count' must be at most {}.",
            domain::fake::MAX_SEED
        ))),
        Some(count) => Ok(count as u64),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The rule an order body breaks and the path of the value breaking it.
    fn order(body: Value) -> Result<NewOrder, (ValidationError, String)> {
        new_order(Some(body)).map_err(|error| (error.rule, error.field.to_string()))
    }

    #[test]
    fn a_valid_order_parses() {
        let parsed = order(json!({"customer_name": " Alice ", "items": [{"name": "Pen", "quantity": 2}], "extra": 1})).unwrap();
        assert_eq!(parsed.customer_name().as_str(), "Alice");
        assert_eq!(parsed.items()[0].quantity.get(), 2);
    }

    #[test]
    fn shapes_and_types_are_checked_and_located() {
        use ValidationError::*;
        let at = |rule: ValidationError, field: &str| Err((rule, field.to_owned()));
        let none = new_order(None).unwrap_err();
        assert_eq!(
            (none.rule, none.field.to_string()),
            (MissingOrderFields, "customer_name".to_owned())
        );
        assert_eq!(
            order(json!([1, 2])),
            at(MissingOrderFields, "customer_name")
        );
        assert_eq!(order(json!("x")), at(MissingOrderFields, "customer_name"));
        assert_eq!(
            order(json!({"customer_name": "A"})),
            at(MissingOrderFields, "items")
        );
        assert_eq!(
            order(json!({"items": [{"name": "P", "quantity": 1}]})),
            at(MissingOrderFields, "customer_name")
        );
        assert_eq!(
            order(json!({"customer_name": "A", "items": []})),
            at(MissingOrderFields, "items")
        );
        assert_eq!(
            order(json!({"customer_name": 5, "items": [{"name": "P", "quantity": 1}]})),
            at(CustomerName, "customer_name")
        );
        assert_eq!(
            order(json!({"customer_name": "A", "items": [{"name": "P", "quantity": 1}, 3]})),
            at(ItemNotObject, "items[1]")
        );
        assert_eq!(
            order(json!({"customer_name": "A", "items": [{"name": "P"}]})),
            at(ItemFieldsMissing, "items[0].quantity")
        );
        assert_eq!(
            order(json!({"customer_name": "A", "items": [{"quantity": 1}]})),
            at(ItemFieldsMissing, "items[0].name")
        );
        assert_eq!(
            order(json!({"customer_name": "A", "items": [{"name": 7, "quantity": 1}]})),
            at(ItemName, "items[0].name")
        );
        for quantity in [json!("7"), json!(2.9), json!(true)] {
            assert_eq!(
                order(
                    json!({"customer_name": "A", "items": [{"name": "P", "quantity": 1}, {"name": "P", "quantity": quantity}]})
                ),
                at(QuantityNotInteger, "items[1].quantity")
            );
        }
        assert_eq!(
            order(json!({"customer_name": "A", "items": [{"name": "P", "quantity": 0}]})),
            at(QuantityNotPositive, "items[0].quantity")
        );
        assert_eq!(
            order(json!({"customer_name": "A", "items": [{"name": "P", "quantity": u64::MAX}]})),
            at(QuantityTooLarge, "items[0].quantity")
        );
        let many: Vec<Value> = (0..101)
            .map(|_| json!({"name": "P", "quantity": 1}))
            .collect();
        assert_eq!(
            order(json!({"customer_name": "A", "items": many})),
            at(ItemCount, "items")
        );
    }

    #[test]
    fn integral_floats_are_integers() {
        let parsed =
            order(json!({"customer_name": "A", "items": [{"name": "P", "quantity": 3.0}]}));
        assert_eq!(parsed.unwrap().items()[0].quantity.get(), 3);
        assert_eq!(
            order(json!({"customer_name": "A", "items": [{"name": "P", "quantity": 1e300}]})),
            Err((
                ValidationError::QuantityTooLarge,
                "items[0].quantity".to_owned()
            ))
        );
        assert_eq!(seed_count(Some(&json!(4.0))).unwrap(), 4);
        assert!(seed_count(Some(&json!({"count": 4.5}))).is_err());
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
    fn query_strings_are_read_by_name() {
        let params = ListParams::parse("limit=5&other=1&status=shipped").unwrap();
        let query = ListQuery::try_from(params).unwrap();
        assert_eq!(query.page.unwrap().limit.get(), 5);
        assert_eq!(query.status, Some(OrderStatus::Shipped));
        let twice = ListParams::parse("limit=5&limit=6").unwrap_err();
        assert_eq!(twice.code(), "invalid_query");
        assert_eq!(twice.field().unwrap().to_string(), "limit");
        assert_eq!(
            twice.to_string(),
            "Invalid query string: duplicate field `limit`."
        );
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
