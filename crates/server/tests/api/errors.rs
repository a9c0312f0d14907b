use serde_json::{Value, json};

use crate::support::{TestApp, expect_error};

async fn create_error(app: &TestApp, body: Value) -> Value {
    let response = app.post_json("/orders", &body).await;
    assert_eq!(response.status(), 400, "{body}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn invalid_orders_are_400_with_the_field_and_rule_and_change_nothing() {
    let app = TestApp::sqlite().await;
    let item = json!({"name": "Pen", "quantity": 1});
    let cases = [
        (
            json!({}),
            "Request must include 'customer_name' and a non-empty list of 'items'.",
        ),
        (
            json!([1, 2]),
            "Request must include 'customer_name' and a non-empty list of 'items'.",
        ),
        (
            json!("text"),
            "Request must include 'customer_name' and a non-empty list of 'items'.",
        ),
        (
            json!(42),
            "Request must include 'customer_name' and a non-empty list of 'items'.",
        ),
        (
            json!({"customer_name": "A", "items": []}),
            "Request must include 'customer_name' and a non-empty list of 'items'.",
        ),
        (
            json!({"customer_name": "  ", "items": [item]}),
            "'customer_name' must be a string of 1 to 80 characters.",
        ),
        (
            json!({"customer_name": "a".repeat(81), "items": [item]}),
            "'customer_name' must be a string of 1 to 80 characters.",
        ),
        (
            json!({"customer_name": 12, "items": [item]}),
            "'customer_name' must be a string of 1 to 80 characters.",
        ),
        (
            json!({"customer_name": "A", "items": ["Pen"]}),
            "Each item must be an object with 'name' and 'quantity'.",
        ),
        (
            json!({"customer_name": "A", "items": [{"name": "Pen"}]}),
            "Each item requires 'name' and 'quantity'.",
        ),
        (
            json!({"customer_name": "A", "items": [{"name": "x".repeat(81), "quantity": 1}]}),
            "Each item's 'name' must be a string of 1 to 80 characters.",
        ),
        (
            json!({"customer_name": "A", "items": [{"name": "Pen", "quantity": "7"}]}),
            "Quantity must be an integer.",
        ),
        (
            json!({"customer_name": "A", "items": [{"name": "Pen", "quantity": 2.9}]}),
            "Quantity must be an integer.",
        ),
        (
            json!({"customer_name": "A", "items": [{"name": "Pen", "quantity": true}]}),
            "Quantity must be an integer.",
        ),
        (
            json!({"customer_name": "A", "items": [{"name": "Pen", "quantity": 0}]}),
            "Quantity must be greater than zero.",
        ),
        (
            json!({"customer_name": "A", "items": [{"name": "Pen", "quantity": 1_000_001}]}),
            "Quantity must be at most 1000000.",
        ),
        (
            json!({"customer_name": "A", "items": vec![item.clone(); 101]}),
            "'items' must be a non-empty list of at most 100 items.",
        ),
    ];
    for (body, message) in cases {
        let error = create_error(&app, body.clone()).await;
        assert_eq!(error["error"], message, "{body}");
        assert!(error["code"].is_string());
    }
    let list: Value = app.get("/orders").await.json().await.unwrap();
    assert_eq!(
        list["total_orders"], 0,
        "no invalid request stored anything"
    );
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
    expect_error(broken, 400, "invalid_json").await;
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
    let array = app
        .client
        .patch(&path)
        .json(&json!(["shipped"]))
        .send()
        .await
        .unwrap();
    expect_error(array, 400, "missing_status").await;
    let unknown = app
        .client
        .patch(&path)
        .json(&json!({"status": "teleported"}))
        .send()
        .await
        .unwrap();
    let body = expect_error(unknown, 400, "invalid_status").await;
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

#[tokio::test]
async fn bad_list_parameters() {
    let app = TestApp::sqlite().await;
    expect_error(app.get("/orders?limit=0").await, 400, "invalid_limit").await;
    expect_error(app.get("/orders?limit=1001").await, 400, "invalid_limit").await;
    expect_error(app.get("/orders?limit=ten").await, 400, "invalid_limit").await;
    expect_error(app.get("/orders?cursor=abc").await, 400, "invalid_cursor").await;
    expect_error(app.get("/orders?status=lost").await, 400, "invalid_status").await;
}
