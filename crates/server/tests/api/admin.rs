use serde_json::{Value, json};

use crate::support::{ADMIN, Options, TestApp, expect_error};

#[tokio::test]
async fn admin_is_forbidden_while_no_password_is_set() {
    let app = TestApp::start(Options {
        admin: false,
        ..Options::default()
    })
    .await;
    let response = app
        .client
        .post(app.url("/admin/seed"))
        .header("X-Admin-Password", "")
        .json(&json!({"count": 1}))
        .send()
        .await
        .unwrap();
    let body = expect_error(response, 403, "admin_disabled").await;
    assert!(body["error"].as_str().unwrap().contains("ADMIN_PASSWORD"));
    let response = app
        .client
        .post(app.url("/admin/reset"))
        .send()
        .await
        .unwrap();
    expect_error(response, 403, "admin_disabled").await;
}

#[tokio::test]
async fn wrong_or_missing_passwords_are_401_and_change_nothing() {
    let app = TestApp::sqlite().await;
    app.create("Keep").await;
    for request in [
        app.client.post(app.url("/admin/reset")),
        app.client
            .post(app.url("/admin/reset"))
            .header("X-Admin-Password", "nope"),
        app.client
            .post(app.url("/admin/reset"))
            .json(&json!({"password": "nope"})),
        app.client
            .post(app.url("/admin/seed"))
            .json(&json!({"count": 3})),
        // Broken JSON without a header password is still "unauthorized".
        app.client
            .post(app.url("/admin/seed"))
            .header("content-type", "application/json")
            .body("{"),
    ] {
        let body = expect_error(request.send().await.unwrap(), 401, "unauthorized").await;
        assert_eq!(body["error"], "Unauthorized.");
    }
    let list: Value = app.get("/orders").await.json().await.unwrap();
    assert_eq!(list["total_orders"], 1);
}

#[tokio::test]
async fn seed_counts_are_checked_and_bare_integers_accepted() {
    let app = TestApp::sqlite().await;
    for (body, message) in [
        (
            json!({}),
            "Request body must include an integer 'count' value.",
        ),
        (
            json!({"count": "5"}),
            "Request body must include an integer 'count' value.",
        ),
        (json!({"count": 0}), "'count' must be greater than zero."),
        (json!({"count": 100_001}), "'count' must be at most 100000."),
    ] {
        let error = expect_error(app.admin("/admin/seed", body).await, 400, "invalid_count").await;
        assert_eq!(error["error"], message);
    }
    let bare = app.admin("/admin/seed", json!(3)).await;
    assert_eq!(bare.status(), 201);
    let with_body_password = app
        .client
        .post(app.url("/admin/seed"))
        .json(&json!({"count": 2, "password": ADMIN}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_body_password.status(), 201);
    let list: Value = app.get("/orders").await.json().await.unwrap();
    assert_eq!(list["total_orders"], 5);
    for order in list["orders"].as_array().unwrap() {
        let items = order["items"].as_array().unwrap();
        assert!((1..=5).contains(&items.len()));
        assert!(
            [
                "received",
                "processing",
                "shipped",
                "delivered",
                "cancelled"
            ]
            .contains(&order["status"].as_str().unwrap())
        );
    }
}
