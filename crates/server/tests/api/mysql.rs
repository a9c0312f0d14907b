//! The same flow on MariaDB, reached through both URL forms of the original.

use serde_json::{Value, json};

use crate::support::{MysqlDatabase, Options, TestApp};

async fn flow(app: &TestApp) {
    let order = app.create("Maria").await;
    let id = order["order_id"].as_str().unwrap();
    let detail: Value = app
        .get(&format!("/orders/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail, order);
    let patch = app
        .client
        .patch(app.url(&format!("/orders/{id}/status")))
        .json(&json!({"status": "shipped"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 200);
    assert_eq!(
        app.admin("/admin/seed", json!({"count": 40}))
            .await
            .status(),
        201
    );
    let page: Value = app
        .get("/orders?limit=10&status=shipped")
        .await
        .json()
        .await
        .unwrap();
    assert!(page["total_orders"].as_u64().unwrap() >= 1);
    let full: Value = app.get("/orders").await.json().await.unwrap();
    assert_eq!(full["total_orders"], 41);
    assert_eq!(
        app.client
            .delete(app.url(&format!("/orders/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let reset: Value = app
        .admin("/admin/reset", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reset["deleted_orders"], 40);
}

#[tokio::test]
async fn pymysql_style_database_url() {
    let Some(database) = MysqlDatabase::create() else {
        return;
    };
    let url = format!("mysql+pymysql://root:@127.0.0.1:3306/{}", database.name);
    let app = TestApp::start(Options {
        database_url: Some(url),
        ..Options::default()
    })
    .await;
    flow(&app).await;
    app.create("Proof").await;
    assert_eq!(database.stored_orders(), 1, "written to MariaDB");
}

#[tokio::test]
async fn db_parts_override_the_url() {
    let Some(database) = MysqlDatabase::create() else {
        return;
    };
    let app = TestApp::start(Options {
        database_url: Some("sqlite:///ignored.db".to_owned()),
        extra: vec![
            ("DB_USER", "root".to_owned()),
            ("DB_PASS", String::new()),
            ("DB_HOST", "127.0.0.1".to_owned()),
            ("DB_NAME", database.name.clone()),
        ],
        ..Options::default()
    })
    .await;
    flow(&app).await;
    app.create("Proof").await;
    assert_eq!(database.stored_orders(), 1, "written to MariaDB");
}
