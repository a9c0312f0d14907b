//! Dependencies failing under a running server: it answers quickly, never
//! crashes, and recovers by itself.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Fault, FaultProxy, MysqlDatabase, Options, TestApp, expect_error};

#[tokio::test]
async fn database_outage_is_a_quick_503_and_recovery_is_automatic() {
    let Some(database) = MysqlDatabase::create() else {
        return;
    };
    let proxy = FaultProxy::start(3306).await;
    let app = TestApp::start(Options {
        database_url: Some(database.url_via(proxy.port)),
        extra: vec![("DB_POOL_TIMEOUT_MS", "1000".to_owned())],
        ..Options::default()
    })
    .await;
    let id = app.create("Before").await["order_id"]
        .as_str()
        .unwrap()
        .to_owned();

    for fault in [Fault::Refuse, Fault::Blackhole, Fault::Freeze] {
        proxy.set(fault);
        tokio::time::sleep(Duration::from_millis(100)).await;
        for path in ["/orders".to_owned(), format!("/orders/{id}")] {
            let started = Instant::now();
            let response = app.get(&path).await;
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{fault:?}: answered in {:?}",
                started.elapsed()
            );
            let body = expect_error(response, 503, "database_unavailable").await;
            assert!(
                !body["error"].as_str().unwrap().contains("mysql"),
                "no database message leaks"
            );
        }
        let started = Instant::now();
        let write = app
            .post_json(
                "/orders",
                &json!({"customer_name": "During", "items": [{"name": "Pen", "quantity": 1}]}),
            )
            .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        expect_error(write, 503, "database_unavailable").await;
        let ready = app.get("/readyz").await;
        assert_eq!(ready.status(), 503);
        let ready: Value = ready.json().await.unwrap();
        assert_eq!(
            (ready["database"].as_str(), ready["code"].as_str()),
            (Some("unavailable"), Some("database_unavailable"))
        );
        assert!(ready["error"].is_string());
        assert_eq!(
            app.get("/healthz").await.status(),
            200,
            "the process stays up"
        );

        proxy.set(Fault::Up);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let response = app.get(&format!("/orders/{id}")).await;
            if response.status() == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{fault:?}: no recovery, still {}",
                response.status()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(app.get("/readyz").await.status(), 200);
    }
    let list: Value = app.get("/orders").await.json().await.unwrap();
    assert_eq!(
        list["total_orders"], 1,
        "the failed write left nothing behind"
    );
}

#[tokio::test]
async fn a_missing_redis_costs_nothing_but_readiness() {
    // Nothing listens on this port: every cache call fails at once.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::start(Options {
        cache: true,
        extra: vec![("REDIS_URL", format!("redis://127.0.0.1:{free}/0"))],
        ..Options::default()
    })
    .await;
    let id = app.create("No cache").await["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..20 {
        assert_eq!(app.get("/orders").await.status(), 200);
        assert_eq!(app.get(&format!("/orders/{id}")).await.status(), 200);
    }
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({"status": "degraded", "database": "ok", "cache": "unavailable"})
    );
}
