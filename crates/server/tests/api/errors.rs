use serde_json::{Value, json};

use crate::support::{TestApp, expect_error};

async fn create_error(app: &TestApp, body: Value) -> Value {
    let response = app.post_json("/orders", &body).await;
    assert_eq!(response.status(), 400, "{body}");
    response.json().await.unwrap()
}

const MISSING: &str = "Request must include 'customer_name' and a non-empty list of 'items'.";
const CUSTOMER_NAME: &str = "'customer_name' must be a string of 1 to 80 characters.";
const NOT_INTEGER: &str = "Quantity must be an integer.";

/// Every 400 of `POST /orders`' body: the original's wording, its code and
/// the path of the value that broke the rule.
#[tokio::test]
async fn invalid_orders_are_400_with_the_field_and_rule_and_change_nothing() {
    let app = TestApp::sqlite().await;
    let item = json!({"name": "Pen", "quantity": 1});
    let cases = [
        (json!({}), MISSING, "missing_fields", "customer_name"),
        (json!([1, 2]), MISSING, "missing_fields", "customer_name"),
        (json!("text"), MISSING, "missing_fields", "customer_name"),
        (json!(42), MISSING, "missing_fields", "customer_name"),
        (json!(null), MISSING, "missing_fields", "customer_name"),
        (
            json!({"items": [item], "customer_name": null}),
            MISSING,
            "missing_fields",
            "customer_name",
        ),
        (
            json!({"customer_name": "A"}),
            MISSING,
            "missing_fields",
            "items",
        ),
        (
            json!({"customer_name": "A", "items": []}),
            MISSING,
            "missing_fields",
            "items",
        ),
        (
            json!({"customer_name": "A", "items": {"name": "Pen"}}),
            MISSING,
            "missing_fields",
            "items",
        ),
        (
            json!({"customer_name": "  ", "items": [item]}),
            CUSTOMER_NAME,
            "invalid_customer_name",
            "customer_name",
        ),
        (
            json!({"customer_name": "a".repeat(81), "items": [item]}),
            CUSTOMER_NAME,
            "invalid_customer_name",
            "customer_name",
        ),
        (
            json!({"customer_name": 12, "items": [item]}),
            CUSTOMER_NAME,
            "invalid_customer_name",
            "customer_name",
        ),
        (
            json!({"customer_name": "A", "items": ["Pen"]}),
            "Each item must be an object with 'name' and 'quantity'.",
            "invalid_item",
            "items[0]",
        ),
        (
            json!({"customer_name": "A", "items": [item, "Pen", item]}),
            "Each item must be an object with 'name' and 'quantity'.",
            "invalid_item",
            "items[1]",
        ),
        (
            json!({"customer_name": "A", "items": [{"name": "Pen"}]}),
            "Each item requires 'name' and 'quantity'.",
            "invalid_item",
            "items[0].quantity",
        ),
        (
            json!({"customer_name": "A", "items": [item, item, {"quantity": 1}]}),
            "Each item requires 'name' and 'quantity'.",
            "invalid_item",
            "items[2].name",
        ),
        (
            json!({"customer_name": "A", "items": [{"name": "x".repeat(81), "quantity": 1}]}),
            "Each item's 'name' must be a string of 1 to 80 characters.",
            "invalid_item_name",
            "items[0].name",
        ),
        (
            json!({"customer_name": "A", "items": [item, {"name": 7, "quantity": 1}]}),
            "Each item's 'name' must be a string of 1 to 80 characters.",
            "invalid_item_name",
            "items[1].name",
        ),
        (
            json!({"customer_name": "A", "items": [{"name": "Pen", "quantity": "7"}]}),
            NOT_INTEGER,
            "invalid_quantity",
            "items[0].quantity",
        ),
        (
            json!({"customer_name": "A", "items": [item, {"name": "Pen", "quantity": 2.9}]}),
            NOT_INTEGER,
            "invalid_quantity",
            "items[1].quantity",
        ),
        (
            json!({"customer_name": "A", "items": [{"name": "Pen", "quantity": true}]}),
            NOT_INTEGER,
            "invalid_quantity",
            "items[0].quantity",
        ),
        (
            json!({"customer_name": "A", "items": [item, item, {"name": "Pen", "quantity": 0}]}),
            "Quantity must be greater than zero.",
            "invalid_quantity",
            "items[2].quantity",
        ),
        (
            json!({"customer_name": "A", "items": [{"name": "Pen", "quantity": 1_000_001}]}),
            "Quantity must be at most 1000000.",
            "invalid_quantity",
            "items[0].quantity",
        ),
        (
            json!({"customer_name": "A", "items": vec![item.clone(); 101]}),
            "'items' must be a non-empty list of at most 100 items.",
            "invalid_items",
            "items",
        ),
    ];
    for (body, message, code, field) in cases {
        let error = create_error(&app, body.clone()).await;
        assert_eq!(
            (&error["error"], &error["code"], &error["field"]),
            (&json!(message), &json!(code), &json!(field)),
            "{body}"
        );
    }
    let list: Value = app.get("/orders").await.json().await.unwrap();
    assert_eq!(
        list["total_orders"], 0,
        "no invalid request stored anything"
    );
}

#[tokio::test]
async fn an_invalid_idempotency_key_points_at_its_header() {
    let app = TestApp::sqlite().await;
    let body = json!({"customer_name": "A", "items": [{"name": "Pen", "quantity": 1}]});
    let too_long = "k".repeat(256);
    let not_ascii = reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap();
    for key in [
        reqwest::header::HeaderValue::from_str(&too_long).unwrap(),
        not_ascii,
    ] {
        let response = app
            .client
            .post(app.url("/orders"))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = expect_error(response, 400, "invalid_idempotency_key").await;
        assert_eq!(
            error["error"],
            "'Idempotency-Key' must be 1 to 255 characters."
        );
        assert_eq!(error["field"], "Idempotency-Key");
    }
}

#[tokio::test]
async fn malformed_bodies_are_json_errors() {
    let app = TestApp::sqlite().await;
    let broken = app
        .client
        .post(app.url("/orders"))
        .header("content-type", "application/json")
        .body("{\"customer_name\": ")
        .send()
        .await
        .unwrap();
    let body = expect_error(broken, 400, "invalid_json").await;
    // A syntax error breaks no one value: there is no field to name.
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Request body is not valid JSON: ")
    );
    assert!(body.get("field").is_none(), "{body}");
    let wrong_type = app
        .client
        .post(app.url("/orders"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    expect_error(wrong_type, 415, "unsupported_media_type").await;
    let huge = json!({"customer_name": "A", "items": [{"name": "Pen", "quantity": 1}], "pad": "x".repeat(70 * 1024)});
    let too_large = app.post_json("/orders", &huge).await;
    expect_error(too_large, 413, "payload_too_large").await;
}

#[tokio::test]
async fn unknown_orders_routes_and_methods() {
    let app = TestApp::sqlite().await;
    let missing = "0193a1b2-0000-7000-8000-000000000000";
    let body = expect_error(
        app.get(&format!("/orders/{missing}")).await,
        404,
        "order_not_found",
    )
    .await;
    assert_eq!(
        body["error"],
        format!("Order with ID '{missing}' not found.")
    );
    let body = expect_error(app.get("/orders/not-a-uuid").await, 404, "order_not_found").await;
    assert_eq!(body["error"], "Order with ID 'not-a-uuid' not found.");
    let delete = app
        .client
        .delete(app.url(&format!("/orders/{missing}")))
        .send()
        .await
        .unwrap();
    expect_error(delete, 404, "order_not_found").await;
    // The original answers 404 before looking at a PATCH body.
    let patch = app
        .client
        .patch(app.url(&format!("/orders/{missing}/status")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(patch, 404, "order_not_found").await;

    expect_error(app.get("/nowhere").await, 404, "not_found").await;
    for (method, path, allow) in [
        (reqwest::Method::PUT, "/orders", "GET, POST"),
        (
            reqwest::Method::PATCH,
            &format!("/orders/{missing}") as &str,
            "GET, DELETE",
        ),
        (
            reqwest::Method::GET,
            &format!("/orders/{missing}/status"),
            "PATCH",
        ),
        (reqwest::Method::GET, "/admin/seed", "POST"),
        (reqwest::Method::DELETE, "/admin/reset", "POST"),
        (reqwest::Method::POST, "/healthz", "GET"),
        (reqwest::Method::POST, "/readyz", "GET"),
        (reqwest::Method::POST, "/metrics", "GET"),
        (reqwest::Method::POST, "/openapi.json", "GET"),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}"
        );
        expect_error(response, 405, "method_not_allowed").await;
    }
    // Even routes that actix answers itself get a JSON body.
    let docs = app.client.delete(app.url("/docs")).send().await.unwrap();
    assert!(docs.status().is_client_error());
    let body: Value = docs.json().await.unwrap();
    assert!(body["error"].is_string() && body["code"].is_string());
}

#[tokio::test]
async fn status_changes_are_validated() {
    let app = TestApp::sqlite().await;
    let id = app.create("Alice").await["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = app.url(&format!("/orders/{id}/status"));
    let missing = app
        .client
        .patch(&path)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let body = expect_error(missing, 400, "missing_status").await;
    assert_eq!(body["error"], "Request must include 'status'.");
    assert_eq!(body["field"], "status");
    let array = app
        .client
        .patch(&path)
        .json(&json!(["shipped"]))
        .send()
        .await
        .unwrap();
    let body = expect_error(array, 400, "missing_status").await;
    assert_eq!(body["error"], "Request must include 'status'.");
    assert_eq!(body["field"], "status");
    let unknown = app
        .client
        .patch(&path)
        .json(&json!({"status": "teleported"}))
        .send()
        .await
        .unwrap();
    let body = expect_error(unknown, 400, "invalid_status").await;
    assert_eq!(body["error"], STATUSES);
    assert_eq!(body["field"], "status");
    let number = app
        .client
        .patch(&path)
        .json(&json!({"status": 3}))
        .send()
        .await
        .unwrap();
    let body = expect_error(number, 400, "invalid_status").await;
    assert_eq!(
        (&body["error"], &body["field"]),
        (&json!(STATUSES), &json!("status"))
    );
    for status in [
        "received",
        "processing",
        "preparing",
        "ready",
        "shipped",
        "delivered",
        "completed",
        "cancelled",
    ] {
        assert!(body["error"].as_str().unwrap().contains(status));
    }
    for status in ["preparing", "ready", "completed", "cancelled"] {
        let ok = app
            .client
            .patch(&path)
            .json(&json!({"status": status}))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
    }
    let order: Value = app
        .get(&format!("/orders/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (order["status"].as_str(), order["version"].as_u64()),
        (Some("cancelled"), Some(5))
    );
}

const STATUSES: &str = "'status' must be one of: received, processing, preparing, ready, shipped, delivered, completed, cancelled.";

#[tokio::test]
async fn bad_list_parameters_point_at_the_parameter() {
    let app = TestApp::sqlite().await;
    let limit = "'limit' must be an integer from 1 to 1000.";
    let cursor = "'cursor' is not valid: pass the 'next_cursor' of the previous page.";
    for (query, code, message, field) in [
        ("limit=0", "invalid_limit", limit, "limit"),
        ("limit=1001", "invalid_limit", limit, "limit"),
        ("limit=ten", "invalid_limit", limit, "limit"),
        ("limit=", "invalid_limit", limit, "limit"),
        ("cursor=abc", "invalid_cursor", cursor, "cursor"),
        (
            "limit=5&cursor=0193a1b2-0000-7000-8000-000000000000",
            "invalid_cursor",
            cursor,
            "cursor",
        ),
        ("status=lost", "invalid_status", STATUSES, "status"),
        (
            "status=Shipped&limit=5",
            "invalid_status",
            STATUSES,
            "status",
        ),
        (
            "limit=5&limit=6",
            "invalid_query",
            "Invalid query string: duplicate field `limit`.",
            "limit",
        ),
        (
            "status=shipped&status=ready",
            "invalid_query",
            "Invalid query string: duplicate field `status`.",
            "status",
        ),
    ] {
        let body = expect_error(app.get(&format!("/orders?{query}")).await, 400, code).await;
        assert_eq!(
            (&body["error"], &body["field"]),
            (&json!(message), &json!(field)),
            "{query}"
        );
    }
}

#[tokio::test]
async fn bad_seed_counts_point_at_count() {
    let app = TestApp::sqlite().await;
    let missing = "Request body must include an integer 'count' value.";
    for (body, message) in [
        (json!({}), missing),
        (json!({"count": "5"}), missing),
        (json!({"count": 2.5}), missing),
        (json!("5"), missing),
        (json!({"count": 0}), "'count' must be greater than zero."),
        (json!(-1), "'count' must be greater than zero."),
        (json!({"count": 100_001}), "'count' must be at most 100000."),
    ] {
        let error = expect_error(
            app.admin("/admin/seed", body.clone()).await,
            400,
            "invalid_count",
        )
        .await;
        assert_eq!(
            (&error["error"], &error["field"]),
            (&json!(message), &json!("count")),
            "{body}"
        );
    }
}
