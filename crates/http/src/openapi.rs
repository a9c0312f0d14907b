//! The OpenAPI 3.1 description, generated from the handlers' annotations
//! and these wire shapes. The shapes only describe JSON that the domain
//! renders; they are never used to produce responses.

#![allow(dead_code)]

use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(title = "Orders service", description = "Customer orders with a Redis read cache."),
    paths(
        crate::orders::list, crate::orders::create, crate::orders::get,
        crate::orders::update_status, crate::orders::delete,
        crate::admin::reset, crate::admin::seed,
        crate::ops::healthz, crate::ops::readyz, crate::ops::metrics,
    ),
    tags(
        (name = "orders", description = "The original service's order endpoints"),
        (name = "admin", description = "Demo data; need ADMIN_PASSWORD"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Received,
    Processing,
    Preparing,
    Ready,
    Shipped,
    Delivered,
    Completed,
    Cancelled,
}

#[derive(Serialize, ToSchema)]
pub struct Item {
    /// 1 to 80 characters.
    name: String,
    /// 1 to 1,000,000.
    quantity: u32,
}

#[derive(Serialize, ToSchema)]
pub struct Order {
    /// UUIDv7: id order is creation order.
    #[schema(format = "uuid")]
    order_id: String,
    customer_name: String,
    status: Status,
    items: Vec<Item>,
    #[schema(format = "date-time")]
    created_at: String,
    #[schema(format = "date-time")]
    updated_at: String,
    /// 1 on creation, +1 on every change; the order's ETag.
    version: u64,
}

#[derive(Serialize, ToSchema)]
pub struct OrderList {
    /// Orders matching the filter, not the page size.
    total_orders: u64,
    orders: Vec<Order>,
    /// Only on paginated requests; null on the last page.
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct NewOrder {
    /// 1 to 80 characters after trimming.
    customer_name: String,
    /// 1 to 100 items.
    items: Vec<Item>,
}

#[derive(Serialize, ToSchema)]
pub struct StatusChange {
    status: Status,
}

#[derive(Serialize, ToSchema)]
pub struct Message {
    message: String,
}

#[derive(Serialize, ToSchema)]
pub struct ResetResult {
    message: String,
    deleted_orders: u64,
}

#[derive(Serialize, ToSchema)]
pub struct SeedRequest {
    /// 1 to 100,000.
    count: u32,
    /// Used when the X-Admin-Password header is absent.
    password: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SeedResult {
    message: String,
    created: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Error {
    /// A message a person can act on.
    error: String,
    /// A stable snake_case identifier.
    code: String,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// ok, degraded (cache unavailable), unavailable (database down) or
    /// stopping (a graceful stop has begun).
    status: String,
    database: String,
    /// ok, disabled or unavailable.
    cache: String,
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    use super::ApiDoc;

    /// The schema's statuses are written out for the document; they must
    /// stay the domain's, which is what the API accepts.
    #[test]
    fn documented_statuses_are_the_domains() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let documented: Vec<&str> = doc["components"]["schemas"]["Status"]["enum"]
            .as_array()
            .expect("Status is an enum schema")
            .iter()
            .map(|value| value.as_str().unwrap())
            .collect();
        let domain: Vec<&str> = domain::OrderStatus::ALL.map(|s| s.as_str()).to_vec();
        assert_eq!(documented, domain);
    }

    /// Conditional requests and idempotent creation are told by headers; a
    /// client generated from the document needs them.
    #[test]
    fn conditional_and_idempotency_headers_are_documented() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let operation = |path: &str, method: &str| doc["paths"][path][method].clone();
        let header_params = |path: &str, method: &str| -> Vec<String> {
            operation(path, method)["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "header")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let response_headers = |path: &str, method: &str, status: &str| -> Vec<String> {
            operation(path, method)["responses"][status]["headers"]
                .as_object()
                .map(|headers| headers.keys().cloned().collect())
                .unwrap_or_default()
        };
        for (path, method, status) in [
            ("/orders", "get", "200"),
            ("/orders/{order_id}", "get", "200"),
            ("/orders", "post", "201"),
            ("/orders/{order_id}/status", "patch", "200"),
        ] {
            assert!(
                response_headers(path, method, status).contains(&"ETag".to_owned()),
                "{method} {path}"
            );
        }
        for path in ["/orders", "/orders/{order_id}"] {
            assert!(header_params(path, "get").contains(&"If-None-Match".to_owned()));
        }
        assert!(
            header_params("/orders/{order_id}/status", "patch").contains(&"If-Match".to_owned())
        );
        assert!(header_params("/orders", "post").contains(&"Idempotency-Key".to_owned()));
        assert!(
            response_headers("/orders", "post", "201").contains(&"Idempotent-Replayed".to_owned())
        );
    }
}
