use serde_json::{Value, json};

use crate::support::{ADMIN, TestApp};

#[tokio::test]
async fn the_originals_smoke_flow() {
    let app = TestApp::sqlite().await;
    // README: create, then list.
    let response = app
        .post_json(
            "/orders",
            &json!({"customer_name": "Alice", "items": [{"name": "Pen", "quantity": 2}]}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = response.json().await.unwrap();
    let id = order["order_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/orders/{id}"));
    assert_eq!(order["customer_name"], "Alice");
    assert_eq!(order["status"], "received");
    assert_eq!(order["items"], json!([{"name": "Pen", "quantity": 2}]));
    assert_eq!(order["version"], 1);
    assert_eq!(order["created_at"], order["updated_at"]);
    assert!(order["created_at"].as_str().unwrap().ends_with('Z'));
    let parsed = uuid_version(&id);
    assert_eq!(parsed, 7, "order ids are UUIDv7");

    let list: Value = app.get("/orders").await.json().await.unwrap();
    assert_eq!(list["total_orders"], 1);
    assert_eq!(list["orders"][0], order);
    assert!(list.get("next_cursor").is_none());

    let detail = app.get(&location).await;
    assert_eq!(detail.status(), 200);
    assert_eq!(detail.json::<Value>().await.unwrap(), order);

    let updated: Value = app
        .client
        .patch(app.url(&format!("/orders/{id}/status")))
        .json(&json!({"status": "shipped"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["status"], "shipped");
    assert_eq!(updated["version"], 2);
    assert!(updated["updated_at"].as_str() >= order["updated_at"].as_str());

    let deleted = app.client.delete(app.url(&location)).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(
        deleted.json::<Value>().await.unwrap(),
        json!({"message": format!("Order '{id}' has been deleted.")})
    );
    assert_eq!(app.get(&location).await.status(), 404);

    // Admin seed and reset.
    let seeded = app.admin("/admin/seed", json!({"count": 25})).await;
    assert_eq!(seeded.status(), 201);
    assert_eq!(
        seeded.json::<Value>().await.unwrap(),
        json!({"message": "Seeded 25 fake orders.", "created": 25})
    );
    let list: Value = app.get("/orders").await.json().await.unwrap();
    assert_eq!(list["total_orders"], 25);
    let reset = app
        .client
        .post(app.url("/admin/reset"))
        .json(&json!({"password": ADMIN}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(
        reset.json::<Value>().await.unwrap(),
        json!({"message": "All orders have been removed.", "deleted_orders": 25})
    );
    let list: Value = app.get("/orders").await.json().await.unwrap();
    assert_eq!(list, json!({"total_orders": 0, "orders": []}));
}

fn uuid_version(id: &str) -> u32 {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    assert_eq!(hex.len(), 32, "{id}");
    hex[12..13].parse::<u32>().unwrap()
}

#[tokio::test]
async fn lists_are_newest_first_and_pages_walk_everything() {
    let app = TestApp::sqlite().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            app.create(&format!("Customer {i}")).await["order_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for id in ids.iter().take(4) {
        let response = app
            .client
            .patch(app.url(&format!("/orders/{id}/status")))
            .json(&json!({"status": "ready"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    ids.reverse();

    let full: Value = app.get("/orders").await.json().await.unwrap();
    let listed: Vec<&str> = full["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/orders?limit=5&cursor={cursor}"),
            None => "/orders?limit=5".to_owned(),
        };
        let page: Value = app.get(&path).await.json().await.unwrap();
        assert_eq!(
            page["total_orders"], 12,
            "total is the filter's count, not the page's"
        );
        for order in page["orders"].as_array().unwrap() {
            seen.push(order["order_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert!(page["next_cursor"].is_null());
                break;
            }
        }
    }
    assert_eq!(seen, ids);

    let ready: Value = app.get("/orders?status=ready").await.json().await.unwrap();
    assert_eq!(ready["total_orders"], 4);
    assert!(
        ready["orders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "ready")
    );
    let page: Value = app
        .get("/orders?status=received&limit=3")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total_orders"], 8);
    assert_eq!(page["orders"].as_array().unwrap().len(), 3);
    assert!(page["next_cursor"].is_string());
}

#[tokio::test]
async fn idempotent_create() {
    let app = TestApp::sqlite().await;
    let body = json!({"customer_name": "Idem", "items": [{"name": "Pen", "quantity": 1}]});
    let send = |key: &'static str, body: Value| {
        let request = app
            .client
            .post(app.url("/orders"))
            .header("Idempotency-Key", key)
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    let first = send("key-1", body.clone()).await;
    assert_eq!(first.status(), 201);
    let first_body = first.text().await.unwrap();
    let retry = send("key-1", body.clone()).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.text().await.unwrap(), first_body);

    let other = send(
        "key-1",
        json!({"customer_name": "Other", "items": [{"name": "Pen", "quantity": 1}]}),
    )
    .await;
    crate::support::expect_error(other, 422, "idempotency_key_reused").await;

    let concurrent: Vec<_> = (0..8).map(|_| send("key-2", body.clone())).collect();
    let mut bodies = Vec::new();
    for response in futures_join(concurrent).await {
        assert_eq!(response.status(), 201);
        bodies.push(response.text().await.unwrap());
    }
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "one order for one key"
    );
    let list: Value = app.get("/orders").await.json().await.unwrap();
    assert_eq!(list["total_orders"], 2);

    let long_key = "k".repeat(256);
    let response = app
        .client
        .post(app.url("/orders"))
        .header("Idempotency-Key", long_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    crate::support::expect_error(response, 400, "invalid_idempotency_key").await;
}

async fn futures_join<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

/// A list of about 11 KB: well over the 1 KiB from which responses are
/// compressed.
async fn sqlite_with_fifty_orders() -> TestApp {
    let app = TestApp::sqlite().await;
    assert_eq!(
        app.admin("/admin/seed", json!({"count": 50}))
            .await
            .status(),
        201
    );
    app
}

#[tokio::test]
async fn large_responses_are_compressed_for_clients_that_accept_it() {
    let app = sqlite_with_fifty_orders().await;
    // Raw HTTP: reqwest may decompress on its own (and drop the header)
    // depending on the features other crates of the workspace turn on.
    for encoding in ["gzip", "br"] {
        let head = raw_head(
            app.server.port,
            "/orders",
            &format!("Accept-Encoding: {encoding}\r\n"),
        );
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(
            head.contains(&format!("content-encoding: {encoding}")),
            "{head}"
        );
    }
    let plain = raw_head(app.server.port, "/orders", "");
    assert!(!plain.contains("content-encoding"), "{plain}");
}

#[tokio::test]
async fn responses_under_one_kib_are_sent_as_they_are() {
    let app = TestApp::sqlite().await;
    let order = app.create("Alice").await;
    let path = format!("/orders/{}", order["order_id"].as_str().unwrap());
    for encoding in ["gzip", "br", "gzip, deflate, br, zstd"] {
        let (head, body) = raw_get(
            app.server.port,
            &path,
            &format!("Accept-Encoding: {encoding}\r\n"),
        );
        assert!(body.len() < 1024, "a small order: {} bytes", body.len());
        assert_eq!(header(&head, "content-encoding"), None, "{head}");
        assert_eq!(
            header(&head, "content-length"),
            Some(body.len().to_string().as_str()),
            "{head}"
        );
        let sent: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent, order);
    }
}

/// The status line and headers of a GET, lower-cased, and the body as sent,
/// read over a plain socket so that no client library rewrites them.
fn raw_get(port: u16, path: &str, extra_headers: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\n{extra_headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..end]).to_lowercase();
    (head, response[end + 4..].to_vec())
}

fn raw_head(port: u16, path: &str, extra_headers: &str) -> String {
    raw_get(port, path, extra_headers).0
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

#[tokio::test]
async fn a_list_is_sent_gzipped_as_compressed_once_with_the_same_etag() {
    use std::io::Read;
    let app = sqlite_with_fifty_orders().await;
    let port = app.server.port;
    let (plain_head, plain) = raw_get(port, "/orders", "");
    let (head, gzipped) = raw_get(port, "/orders", "Accept-Encoding: gzip, deflate\r\n");
    let (_, again) = raw_get(port, "/orders", "Accept-Encoding: gzip\r\n");

    assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{head}");
    assert!(
        header(&head, "vary").is_some_and(|vary| vary.contains("accept-encoding")),
        "{head}"
    );
    assert_eq!(
        header(&head, "content-length"),
        Some(gzipped.len().to_string().as_str()),
        "sent whole, with its length: {head}"
    );
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gzipped[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain, "the same list in either encoding");
    assert_eq!(header(&head, "etag"), header(&plain_head, "etag"));
    assert_eq!(again, gzipped, "the kept encoding is sent again");
    assert_eq!(header(&plain_head, "content-encoding"), None);
}
