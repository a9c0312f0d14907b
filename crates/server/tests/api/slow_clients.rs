//! Slow and abusive clients: connections trickling their headers or their
//! body a byte a second are closed at the configured bounds while ordinary
//! clients are served as fast as ever (slowloris); headers too large or
//! too many get a 431; connections past `MAX_CONNECTIONS` wait.

use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::server_process::ServerProcess;
use crate::support::{Options, TestApp, expect_error};

/// What one trickling connection saw.
struct Trickled {
    /// From the end of what it sent at once to the server's close.
    closed_after: Duration,
    /// Everything the server sent before closing.
    response: String,
}

/// Sends `head` at once, then one byte of `drip` a second (over and over)
/// until the server closes the connection; reads whatever it answers.
async fn trickle(address: String, head: String, drip: &'static [u8]) -> Trickled {
    let stream = TcpStream::connect(&address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let dripping = async move {
        for byte in drip.iter().cycle() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
        }
        // The server no longer reads: wait for its close.
        std::future::pending::<()>().await;
    };
    let reading = async {
        let mut response = Vec::new();
        // An error (a reset) ends the connection as well as an EOF does.
        let _ = reader.read_to_end(&mut response).await;
        response
    };
    let response = tokio::select! {
        response = reading => response,
        () = dripping => unreachable!(),
    };
    Trickled {
        closed_after: started.elapsed(),
        response: String::from_utf8_lossy(&response).into_owned(),
    }
}

const HEADER_TRICKLERS: usize = 200;
const BODY_TRICKLERS: usize = 100;
const ORDINARY_REQUESTS: usize = 200;
const HEADER_TIMEOUT: Duration = Duration::from_secs(4);
const BODY_TIMEOUT: Duration = Duration::from_secs(4);
/// How late past its bound a trickling connection may be closed: actix
/// lingers up to a second for the client to stop sending after its 408.
const SLACK: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_connections_are_closed_while_ordinary_clients_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap().to_string();
    let env = vec![
        (
            "DATABASE_URL",
            format!("sqlite:///{}", dir.path().join("orders.db").display()),
        ),
        ("CACHE_DISABLED", "true".to_owned()),
        ("WORKERS", "2".to_owned()),
        (
            "REQUEST_HEADER_TIMEOUT_MS",
            HEADER_TIMEOUT.as_millis().to_string(),
        ),
        (
            "REQUEST_BODY_TIMEOUT_MS",
            BODY_TIMEOUT.as_millis().to_string(),
        ),
    ];
    let mut server = ServerProcess::start(dir.path(), "server", &env, Some(&socket));
    server.wait_serving();
    let url = format!("http://{address}");
    // A new connection for every ordinary request: the server must go on
    // accepting, not only answer connections it already has.
    let client = Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let created: serde_json::Value = client
        .post(format!("{url}/orders"))
        .json(&json!({"customer_name": "Alice", "items": [{"name": "Pen", "quantity": 2}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order = format!("{url}/orders/{}", created["order_id"].as_str().unwrap());

    // Headers that never end, and bodies that never end after complete
    // headers.
    let mut headers = Vec::new();
    for _ in 0..HEADER_TRICKLERS {
        let head = "GET /orders HTTP/1.1\r\nHost: orders\r\nX-Slow: ".to_owned();
        headers.push(tokio::spawn(trickle(address.clone(), head, b"abcdefgh")));
    }
    let mut bodies = Vec::new();
    for _ in 0..BODY_TRICKLERS {
        let head = "POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Type: application/json\r\n\
                    Content-Length: 1000\r\n\r\n{\"customer_name\": \""
            .to_owned();
        bodies.push(tokio::spawn(trickle(address.clone(), head, b"abcdefgh")));
    }
    let tricklers_started = Instant::now();
    // Let every trickling connection be accepted and start dripping.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let mut latencies = Vec::with_capacity(ORDINARY_REQUESTS);
    for _ in 0..ORDINARY_REQUESTS {
        let started = Instant::now();
        let response = client.get(&order).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        latencies.push(started.elapsed());
    }
    let ordinary_done = tricklers_started.elapsed();
    latencies.sort();
    let p99 = latencies[ORDINARY_REQUESTS * 99 / 100 - 1];
    let header_results: Vec<Trickled> = futures_join(headers).await;
    let body_results: Vec<Trickled> = futures_join(bodies).await;
    eprintln!(
        "ordinary requests under {} trickling connections: median {:?}, p99 {p99:?}, max {:?}",
        HEADER_TRICKLERS + BODY_TRICKLERS,
        latencies[ORDINARY_REQUESTS / 2],
        latencies[ORDINARY_REQUESTS - 1]
    );
    assert!(
        p99 < Duration::from_millis(50),
        "p99 {p99:?} under slowloris: {latencies:?}"
    );
    // The ordinary requests all ran while every trickling connection was
    // still open.
    assert!(
        ordinary_done < HEADER_TIMEOUT.min(BODY_TIMEOUT),
        "the ordinary requests took {ordinary_done:?}, past the first close"
    );

    for result in &header_results {
        assert!(
            result.closed_after + Duration::from_millis(200) >= HEADER_TIMEOUT
                && result.closed_after <= HEADER_TIMEOUT + SLACK,
            "a connection trickling its headers closed after {:?}",
            result.closed_after
        );
        assert!(
            result.response.starts_with("HTTP/1.1 408"),
            "{:?}",
            result.response
        );
    }
    for result in &body_results {
        assert!(
            result.closed_after + Duration::from_millis(200) >= BODY_TIMEOUT
                && result.closed_after <= BODY_TIMEOUT + SLACK,
            "a connection trickling its body closed after {:?}",
            result.closed_after
        );
        assert!(
            result.response.starts_with("HTTP/1.1 408"),
            "{:?}",
            result.response
        );
        assert!(
            result.response.contains(r#""code":"request_timeout""#),
            "{:?}",
            result.response
        );
    }
    assert!(server.running());
    server.stop();
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<Trickled>>) -> Vec<Trickled> {
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        let result = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("a trickling connection was never closed")
            .unwrap();
        results.push(result);
    }
    results
}

#[tokio::test]
async fn headers_too_large_or_too_many_get_a_431() {
    let app = TestApp::start(Options {
        extra: vec![
            ("MAX_HEADER_BYTES", "4096".to_owned()),
            ("MAX_HEADERS", "20".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let url = app.url("/orders");

    let large = app
        .client
        .get(&url)
        .header("X-Large", "a".repeat(5000))
        .send()
        .await
        .unwrap();
    let body = expect_error(large, 431, "headers_too_large").await;
    assert!(body["error"].as_str().unwrap().contains("4096"), "{body}");

    let mut many = app.client.get(&url);
    for n in 0..25 {
        many = many.header(format!("X-Header-{n}"), "x");
    }
    let body = expect_error(many.send().await.unwrap(), 431, "headers_too_large").await;
    assert!(
        body["error"].as_str().unwrap().contains("at most 20"),
        "{body}"
    );

    // Within the bounds, as before.
    let mut fine = app.client.get(&url).header("X-Large", "a".repeat(3000));
    for n in 0..10 {
        fine = fine.header(format!("X-Header-{n}"), "x");
    }
    assert_eq!(fine.send().await.unwrap().status(), 200);

    // Past actix-web's own bounds (96 headers, a 128 KiB head) it answers
    // itself, before any middleware: a 431 without a body.
    let mut beyond = app.client.get(&url);
    for n in 0..100 {
        beyond = beyond.header(format!("X-Header-{n}"), "x");
    }
    let beyond = beyond.send().await.unwrap();
    assert_eq!(beyond.status(), 431);
    assert!(beyond.bytes().await.unwrap().is_empty());
    app.server.stop().await;
}

#[tokio::test]
async fn connections_past_the_bound_wait_until_one_closes() {
    // Two workers, one connection each.
    let app = TestApp::start(Options {
        extra: vec![
            ("MAX_CONNECTIONS", "2".to_owned()),
            ("REQUEST_HEADER_TIMEOUT_MS", "60000".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let address = format!("127.0.0.1:{}", app.server.port);
    let held = [
        TcpStream::connect(&address).await.unwrap(),
        TcpStream::connect(&address).await.unwrap(),
    ];
    // Let the server accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut third = TcpStream::connect(&address).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let waited = tokio::time::timeout(
        Duration::from_millis(1000),
        third.read_to_end(&mut response),
    )
    .await;
    assert!(
        waited.is_err(),
        "answered past MAX_CONNECTIONS: {:?}",
        String::from_utf8_lossy(&response)
    );
    drop(held);
    tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut response))
        .await
        .expect("answered once a connection closed")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&response)
    );
    app.server.stop().await;
}
