//! The cache seen through HTTP, against the real Redis and MariaDB.

use cache::redis::{self, AsyncCommands};
use serde_json::{Value, json};

use crate::support::{MysqlDatabase, Options, TestApp, service_available, unique};

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open("redis://127.0.0.1:6379/0")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn cached_bodies_are_the_exact_response_bytes_under_the_originals_keys() {
    if !service_available("Redis", 6379) {
        return;
    }
    let prefix = format!("{}:", unique("http_cache"));
    let app = TestApp::start(Options {
        cache: true,
        key_prefix: Some(prefix.clone()),
        ..Options::default()
    })
    .await;
    let order = app.create("Alice").await;
    let id = order["order_id"].as_str().unwrap();
    let list_body = app.get("/orders").await.bytes().await.unwrap();
    let detail_body = app
        .get(&format!("/orders/{id}"))
        .await
        .bytes()
        .await
        .unwrap();

    let mut redis = redis().await;
    let version: i64 = redis
        .get(format!("{prefix}orders:list:version"))
        .await
        .unwrap();
    assert_eq!(version, 1, "one write, one bump");
    let cached_list: Vec<u8> = redis
        .get(format!("{prefix}orders:list:{version}"))
        .await
        .unwrap();
    assert_eq!(cached_list, list_body.to_vec());
    let cached_detail: Vec<u8> = redis
        .get(format!("{prefix}orders:detail:{id}"))
        .await
        .unwrap();
    assert_eq!(cached_detail, detail_body.to_vec());

    // A hit answers the same bytes.
    assert_eq!(app.get("/orders").await.bytes().await.unwrap(), list_body);
    let keys: Vec<String> = redis.keys(format!("{prefix}*")).await.unwrap();
    let _: () = redis.del(keys).await.unwrap();
}

#[tokio::test]
async fn two_instances_on_one_database_and_one_redis_see_each_others_writes() {
    if !service_available("Redis", 6379) {
        return;
    }
    let Some(database) = MysqlDatabase::create() else {
        return;
    };
    let prefix = format!("{}:", unique("two"));
    let options = || Options {
        cache: true,
        key_prefix: Some(prefix.clone()),
        database_url: Some(database.url_via(3306)),
        ..Options::default()
    };
    let a = TestApp::start(options()).await;
    let b = TestApp::start(options()).await;

    let order = a.create("Shared").await;
    let id = order["order_id"].as_str().unwrap().to_owned();
    let detail = format!("/orders/{id}");
    // Warm both caches.
    for app in [&a, &b] {
        assert_eq!(
            app.get("/orders").await.json::<Value>().await.unwrap()["total_orders"],
            1
        );
        assert_eq!(app.get(&detail).await.status(), 200);
    }
    for status in ["processing", "ready", "completed"] {
        let patch = a
            .client
            .patch(a.url(&format!("{detail}/status")))
            .json(&json!({"status": status}))
            .send()
            .await
            .unwrap();
        assert_eq!(patch.status(), 200);
        let seen: Value = b.get(&detail).await.json().await.unwrap();
        assert_eq!(seen["status"], status, "B sees A's write at once");
        let listed: Value = b.get("/orders").await.json().await.unwrap();
        assert_eq!(listed["orders"][0]["status"], status);
    }
    let second = b.create("From B").await;
    let listed: Value = a.get("/orders").await.json().await.unwrap();
    assert_eq!(listed["total_orders"], 2);
    assert_eq!(listed["orders"][0]["order_id"], second["order_id"]);

    assert_eq!(
        b.client
            .delete(b.url(&detail))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(a.get(&detail).await.status(), 404);
    assert_eq!(a.admin("/admin/reset", json!({})).await.status(), 200);
    assert_eq!(
        b.get("/orders").await.json::<Value>().await.unwrap()["total_orders"],
        0
    );
    assert_eq!(
        b.get(&format!("/orders/{}", second["order_id"].as_str().unwrap()))
            .await
            .status(),
        404
    );

    let mut redis = redis().await;
    let keys: Vec<String> = redis.keys(format!("{prefix}*")).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis.del(keys).await.unwrap();
    }
}
