use serde_json::{Value, json};

use crate::support::{TestApp, expect_error};

#[tokio::test]
async fn etags_answer_304_and_change_with_the_data() {
    let app = TestApp::sqlite().await;
    let id = app.create("Alice").await["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/orders/{id}");

    let first = app.get(&path).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let not_modified = app
        .client
        .get(app.url(&path))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert!(not_modified.text().await.unwrap().is_empty());

    let list = app.get("/orders").await;
    let list_etag = list.headers()["etag"].to_str().unwrap().to_owned();
    let cached = app
        .client
        .get(app.url("/orders"))
        .header("If-None-Match", &list_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);

    let patch = app
        .client
        .patch(app.url(&format!("{path}/status")))
        .json(&json!({"status": "ready"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 200);
    let changed = app
        .client
        .get(app.url(&path))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let changed_list = app
        .client
        .get(app.url("/orders"))
        .header("If-None-Match", &list_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed_list.status(), 200);
}

#[tokio::test]
async fn if_match_guards_status_changes() {
    let app = TestApp::sqlite().await;
    let id = app.create("Alice").await["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = app.url(&format!("/orders/{id}/status"));
    let etag = app.get(&format!("/orders/{id}")).await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();

    let ok = app
        .client
        .patch(&path)
        .header("If-Match", &etag)
        .json(&json!({"status": "ready"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let new_etag = ok.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);

    let stale = app
        .client
        .patch(&path)
        .header("If-Match", &etag)
        .json(&json!({"status": "shipped"}))
        .send()
        .await
        .unwrap();
    expect_error(stale, 412, "precondition_failed").await;
    let order: Value = app
        .get(&format!("/orders/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        order["status"], "ready",
        "a failed precondition changes nothing"
    );

    let any = app
        .client
        .patch(&path)
        .header("If-Match", "*")
        .json(&json!({"status": "shipped"}))
        .send()
        .await
        .unwrap();
    assert_eq!(any.status(), 200);
}
