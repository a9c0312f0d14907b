use serde_json::{Value, json};

use crate::support::{Options, TestApp};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::sqlite().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(
        ready,
        json!({"status": "ok", "database": "ok", "cache": "disabled"})
    );

    app.create("Metered").await;
    app.get("/orders").await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="POST",route="/orders",status="201"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_request_duration_seconds_count{method="GET",route="/orders"}"#),
        "{text}"
    );
    assert!(text.contains("db_pool_max_connections"), "{text}");
}

#[tokio::test]
async fn readiness_reports_the_cache() {
    if !crate::support::service_available("Redis", 6379) {
        return;
    }
    let app = TestApp::start(Options {
        cache: true,
        ..Options::default()
    })
    .await;
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(
        ready,
        json!({"status": "ok", "database": "ok", "cache": "ok"})
    );
    app.create("Cached").await;
    app.get("/orders").await;
    app.get("/orders").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(r#"cache_hits_total{keyspace="list"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"cache_misses_total{keyspace="list"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn openapi_document_and_docs_page() {
    let app = TestApp::sqlite().await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for (path, method) in [
        ("/orders", "get"),
        ("/orders", "post"),
        ("/orders/{order_id}", "get"),
        ("/orders/{order_id}", "delete"),
        ("/orders/{order_id}/status", "patch"),
        ("/admin/reset", "post"),
        ("/admin/seed", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    let docs = app.get("/docs").await;
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().to_lowercase().contains("<html"));
}

#[tokio::test]
async fn cors_preflights_pass_for_the_web_front_end() {
    let app = TestApp::sqlite().await;
    for (method, headers) in [
        ("POST", "content-type"),
        ("PATCH", "content-type"),
        ("DELETE", "x-admin-password"),
        ("POST", "content-type,x-admin-password"),
    ] {
        let response = app
            .client
            .request(reqwest::Method::OPTIONS, app.url("/orders"))
            .header("Origin", "http://frontend.example:3000")
            .header("Access-Control-Request-Method", method)
            .header("Access-Control-Request-Headers", headers)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{method} preflight: {}",
            response.status()
        );
        let allowed = response.headers()["access-control-allow-origin"]
            .to_str()
            .unwrap();
        assert!(allowed == "*" || allowed == "http://frontend.example:3000");
    }
    let simple = app
        .client
        .get(app.url("/orders"))
        .header("Origin", "http://frontend.example:3000")
        .send()
        .await
        .unwrap();
    assert!(simple.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn cors_can_be_restricted() {
    let app = TestApp::start(Options {
        extra: vec![("CORS_ORIGINS", "https://shop.example".to_owned())],
        ..Options::default()
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/orders"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
    };
    assert!(
        preflight("https://shop.example")
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    if !other.status().is_success() {
        let body: Value = other.json().await.unwrap();
        assert!(body["error"].is_string(), "a rejection is JSON too: {body}");
    }
    let simple = app
        .client
        .get(app.url("/orders"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        simple.status(),
        200,
        "the server answers; the browser enforces CORS"
    );
    assert!(!simple.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = TestApp::sqlite().await;
    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
    let made = app.get("/nowhere").await;
    assert!(!made.headers()["x-request-id"].is_empty());
}
