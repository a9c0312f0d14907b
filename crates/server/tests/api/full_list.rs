//! `GET /orders` when the list is sent as parts (20,000 orders, lists
//! streamed from 64 KiB, 1 MiB of chunks in memory, the rest spooled),
//! through the real server, with the cache on and off.

use std::collections::HashSet;
use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Options, TestApp, service_available};

const ORDERS: u64 = 20_000;

async fn streaming_app(cache: bool) -> Option<(TestApp, tempfile::TempDir)> {
    if cache && !service_available("Redis", 6379) {
        return None;
    }
    let spool = tempfile::tempdir().unwrap();
    let app = TestApp::start(Options {
        cache,
        extra: vec![
            ("LIST_STREAM_ABOVE_KB", "64".to_owned()),
            ("LIST_MEMORY_MB", "1".to_owned()),
            ("LIST_SPOOL_DIR", spool.path().display().to_string()),
        ],
        ..Options::default()
    })
    .await;
    let seeded = app.admin("/admin/seed", json!({ "count": ORDERS })).await;
    assert_eq!(seeded.status(), 201);
    Some((app, spool))
}

fn well_formed(body: &[u8]) -> Vec<String> {
    let list: Value = serde_json::from_slice(body).unwrap();
    let ids: Vec<String> = list["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|order| order["order_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(list["total_orders"].as_u64().unwrap(), ids.len() as u64);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    ids
}

/// A client that never asks for or decodes an encoding itself (the
/// workspace's reqwest has gzip when built beside goose).
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .build()
        .unwrap()
}

async fn streamed_list_in_both_encodings(cache: bool) {
    let Some((app, _spool)) = streaming_app(cache).await else {
        return;
    };
    let client = raw_client();
    let plain = client.get(app.url("/orders")).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    let length: usize = plain.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let etag = plain.headers()["etag"].clone();
    let body = plain.bytes().await.unwrap();
    assert_eq!(body.len(), length);
    assert_eq!(well_formed(&body).len() as u64, ORDERS);

    let zipped = client
        .get(app.url("/orders"))
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["etag"], etag);
    let gz = zipped.bytes().await.unwrap();
    assert!(gz.len() < body.len() / 4);
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, body);

    let unchanged = app
        .client
        .get(app.url("/orders"))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), 304);

    // A write is in the next list, whichever instance of the list held.
    let created = app.create("Streamed").await;
    let after = app.get("/orders").await;
    assert_ne!(after.headers()["etag"], etag);
    let ids = well_formed(&after.bytes().await.unwrap());
    assert_eq!(ids[0], created["order_id"].as_str().unwrap());
    assert_eq!(ids.len() as u64, ORDERS + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_list_is_sent_whole_in_both_encodings_cache_off() {
    streamed_list_in_both_encodings(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_list_is_sent_whole_in_both_encodings_cache_on() {
    streamed_list_in_both_encodings(true).await;
}

/// Readers that take a streamed list slowly (a few KiB, then a pause) do
/// not hold back writes: each write answers quickly, and the next full list
/// has it.
#[tokio::test(flavor = "multi_thread")]
async fn slow_readers_of_a_streamed_list_do_not_hold_back_writes() {
    let Some((app, _spool)) = streaming_app(false).await else {
        return;
    };
    let mut slow = Vec::new();
    for _ in 0..8 {
        let url = app.url("/orders");
        slow.push(tokio::spawn(async move {
            let mut response = reqwest::get(url).await.unwrap();
            let mut read = 0;
            while let Some(chunk) = response.chunk().await.unwrap() {
                read += chunk.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            read
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut ids = Vec::new();
    let mut slowest = Duration::ZERO;
    for n in 0..50 {
        let started = Instant::now();
        let created = app.create(&format!("Beside slow readers {n}")).await;
        let id = created["order_id"].as_str().unwrap().to_owned();
        let patched = app
            .client
            .patch(app.url(&format!("/orders/{id}/status")))
            .json(&json!({"status": "shipped"}))
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 200);
        slowest = slowest.max(started.elapsed());
        ids.push(id);
    }
    assert!(
        slow.iter().any(|reader| !reader.is_finished()),
        "the slow readers were still reading during the writes"
    );
    assert!(slowest < Duration::from_secs(2), "a write took {slowest:?}");
    let listed: HashSet<String> = well_formed(&app.get("/orders").await.bytes().await.unwrap())
        .into_iter()
        .collect();
    assert!(ids.iter().all(|id| listed.contains(id)));
    for reader in slow {
        let read = reader.await.unwrap();
        assert!(
            read > 6_000_000,
            "a slow reader got the whole list ({read} bytes)"
        );
    }
}

/// A full list makes way for an order write in flight: while a `POST
/// /orders` is under way (its body held back by the client), the list goes
/// out one 64 KiB slice per 10 ms pause at most, and once the write is
/// answered the rest follows, whole. Without the precedence the 6 MB list
/// arrives in a few tens of milliseconds.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_list_makes_way_for_a_write_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let Some((app, _spool)) = streaming_app(false).await else {
        return;
    };
    let body =
        json!({"customer_name": "Held write", "items": [{"name": "x", "quantity": 1}]}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let address = app.url("").trim_start_matches("http://").to_owned();
    let mut write = tokio::net::TcpStream::connect(address.trim_end_matches('/'))
        .await
        .unwrap();
    write
        .write_all(
            format!(
                "POST /orders HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // The head is in: the write is in flight until its answer.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut list = raw_client().get(app.url("/orders")).send().await.unwrap();
    assert_eq!(list.status(), 200);
    let mut received = Vec::new();
    let started = Instant::now();
    let held = Duration::from_millis(300);
    while let Ok(chunk) =
        tokio::time::timeout(held.saturating_sub(started.elapsed()), list.chunk()).await
    {
        let chunk = chunk
            .unwrap()
            .expect("the list is not over while the write is held");
        received.extend_from_slice(&chunk);
    }
    // At most one slice per 10 ms pause in that time: 31 slices, 2 MB.
    assert!(
        received.len() < 3_000_000,
        "{} bytes of the list went out beside the write in flight",
        received.len()
    );

    write.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(30), write.read(&mut answer))
        .await
        .expect("the held write is answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = list.chunk().await.unwrap() {
            received.extend_from_slice(&chunk);
        }
    })
    .await;
    assert!(rest.is_ok(), "the list goes on once the write is answered");
    assert_eq!(well_formed(&received).len() as u64, ORDERS);
}

/// The resident memory of a server process (`VmRSS`), in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Many clients reading a streamed list at once cost the server one part
/// each, not one list each: 32 slow readers of a 6 MB list (spooled, as at
/// 1,000,000 orders) would hold 200 MB if each response held its list; the
/// server process, on its own so that nothing else counts, grows by far
/// less while they all read.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_streamed_readers_hold_one_part_each() {
    use crate::server_process::ServerProcess;
    use crate::support::ADMIN;

    const READERS: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", socket.local_addr().unwrap().port());
    let env = [
        (
            "DATABASE_URL",
            format!("sqlite:///{}", dir.path().join("orders.db").display()),
        ),
        ("ADMIN_PASSWORD", ADMIN.to_owned()),
        ("CACHE_DISABLED", "true".to_owned()),
        ("WORKERS", "2".to_owned()),
        ("LIST_STREAM_ABOVE_KB", "64".to_owned()),
        ("LIST_MEMORY_MB", "1".to_owned()),
        ("LIST_SPOOL_DIR", dir.path().display().to_string()),
    ];
    let mut server = ServerProcess::start(dir.path(), "server", &env, Some(&socket));
    tokio::task::block_in_place(|| server.wait_serving());
    let client = raw_client();
    let seeded = client
        .post(format!("{base}/admin/seed"))
        .header("X-Admin-Password", ADMIN)
        .json(&json!({ "count": ORDERS }))
        .send()
        .await
        .unwrap();
    assert_eq!(seeded.status(), 201);
    // Built once, so the readers below share a held list.
    let whole = client.get(format!("{base}/orders")).send().await.unwrap();
    let length = whole.bytes().await.unwrap().len();
    assert!(length > 6_000_000, "{length}");

    let pid = server.pid();
    let before = resident_kib(pid);
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = std::thread::spawn({
        let sampling = sampling.clone();
        move || {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(resident_kib(pid));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        }
    });
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (client, url) = (client.clone(), format!("{base}/orders"));
            tokio::spawn(async move {
                let mut response = client.get(url).send().await.unwrap();
                let mut body = Vec::new();
                while let Some(chunk) = response.chunk().await.unwrap() {
                    body.extend_from_slice(&chunk);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                body
            })
        })
        .collect();
    for reader in readers {
        let body = reader.await.unwrap();
        assert_eq!(well_formed(&body).len() as u64, ORDERS);
    }
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let grown_mib = peak.saturating_sub(before) as f64 / 1024.0;
    eprintln!(
        "{READERS} streamed readers: the server grew by {grown_mib:.1} MiB from {before} KiB"
    );
    // One part is about 320 KB; 32 readers hold about 10 MB of them, plus
    // their connections' buffers. Whole lists would be 200 MB.
    assert!(
        grown_mib < 64.0,
        "the server grew by {grown_mib:.1} MiB ({before} KiB before, {peak} KiB at most) with {READERS} readers"
    );
    tokio::task::block_in_place(|| server.stop());
}
