//! Rate limits and the admin lockout through the HTTP API: the 429 and the
//! RateLimit header fields, one budget for two server processes on one
//! Redis, the per-process limit (counted) when Redis is down, growing
//! lockouts of an address that guesses the admin password, and
//! `X-Forwarded-For` believed only from `TRUSTED_PROXIES`. Each test has
//! its own key prefix and database.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, Response};
use serde_json::{Value, json};

use crate::server_process::ServerProcess;
use crate::support::{
    ADMIN, MysqlDatabase, Options, TestApp, ci, expect_error, service_available, unique,
};

/// 6 a minute (one every 10 s, so that no test sees a refill by accident)
/// with a burst of 3.
const PER_MINUTE: &str = "6";
const BURST: u32 = 3;

fn limited(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("RATE_LIMIT_PER_MINUTE", PER_MINUTE.to_owned()),
        ("RATE_LIMIT_BURST", BURST.to_string()),
        // The default 50 ms can pass on a machine busy with the rest of the
        // suite, and a check that times out is answered per process: these
        // tests count on Redis answering while it is up. A Redis that is
        // down refuses at once, whatever the bound.
        ("CACHE_TIMEOUT_MS", "2000".to_owned()),
    ];
    vars.extend(extra.iter().map(|(key, value)| (*key, (*value).to_owned())));
    vars
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap())
}

/// `"default";r=<r>;t=<t>` as (r, t).
fn limit_field(response: &Response) -> (u32, u64) {
    let value = header(response, "ratelimit").expect("a RateLimit field");
    let rest = value
        .strip_prefix("\"default\";r=")
        .unwrap_or_else(|| panic!("{value}"));
    let (r, t) = rest.split_once(";t=").unwrap_or_else(|| panic!("{value}"));
    (r.parse().unwrap(), t.parse().unwrap())
}

async fn metric(client: &Client, base: &str, name: &str) -> u64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// The burst is served with the fields counting down, then a 429 with
/// `Retry-After` and the fields; the operational endpoints stay open; a
/// refused write changes nothing.
async fn the_burst_then_429(app: &TestApp, stored_orders: impl Fn() -> Option<u64>) {
    for expected in (0..BURST).rev() {
        let response = app.get("/orders").await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            header(&response, "ratelimit-policy"),
            Some("\"default\";q=6;w=60")
        );
        let (remaining, reset) = limit_field(&response);
        assert_eq!(remaining, expected);
        assert!((1..=10).contains(&reset), "{reset}");
    }
    let refused = app.get("/orders").await;
    assert_eq!(
        header(&refused, "ratelimit-policy"),
        Some("\"default\";q=6;w=60")
    );
    let (remaining, reset) = limit_field(&refused);
    assert_eq!(remaining, 0);
    let retry_after: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    // One interval (10 s) to wait, less what has passed; never before t.
    assert!((8..=10).contains(&retry_after), "{retry_after}");
    assert!(
        retry_after >= reset,
        "Retry-After {retry_after} before t={reset}"
    );
    let body = expect_error(refused, 429, "too_many_requests").await;
    assert!(
        body["error"].as_str().unwrap().contains("retry in"),
        "{body}"
    );

    let refused_write = app
        .post_json(
            "/orders",
            &json!({"customer_name": "Mallory", "items": [{"name": "Pen", "quantity": 1}]}),
        )
        .await;
    expect_error(refused_write, 429, "too_many_requests").await;
    if let Some(count) = stored_orders() {
        assert_eq!(count, 0, "a refused write writes nothing");
    }

    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(header(&response, "ratelimit").is_none(), "{path}");
    }
    assert_eq!(
        metric(
            &app.client,
            &app.server.url(),
            "rate_limited_requests_total"
        )
        .await,
        2
    );
    assert_eq!(
        metric(&app.client, &app.server.url(), "rate_limit_fallbacks_total").await,
        0,
        "Redis answered every check"
    );
}

#[tokio::test]
async fn over_the_limit_is_a_429_with_retry_after_and_the_ratelimit_fields_on_sqlite() {
    if !service_available("Redis", 6379) {
        return;
    }
    let app = TestApp::start(Options {
        cache: true,
        extra: limited(&[]),
        ..Options::default()
    })
    .await;
    the_burst_then_429(&app, || None).await;
}

#[tokio::test]
async fn over_the_limit_is_a_429_with_retry_after_and_the_ratelimit_fields_on_mariadb() {
    if !service_available("Redis", 6379) {
        return;
    }
    let Some(database) = MysqlDatabase::create() else {
        return;
    };
    let app = TestApp::start(Options {
        cache: true,
        database_url: Some(database.url_via(3306)),
        extra: limited(&[]),
        ..Options::default()
    })
    .await;
    the_burst_then_429(&app, || Some(database.stored_orders())).await;
}

#[tokio::test]
async fn without_the_settings_nothing_is_limited_and_no_field_is_sent() {
    let app = TestApp::sqlite().await;
    for _ in 0..30 {
        let response = app.get("/orders").await;
        assert_eq!(response.status(), 200);
        assert!(header(&response, "ratelimit").is_none());
        assert!(header(&response, "ratelimit-policy").is_none());
    }
}

/// A server process on a socket of the test's (socket activation), so its
/// address is known before it starts.
fn start_instance(
    dir: &std::path::Path,
    name: &str,
    prefix: &str,
) -> (ServerProcess, String, TcpListener) {
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", socket.local_addr().unwrap());
    let mut env = limited(&[]);
    env.extend([
        (
            "DATABASE_URL",
            format!("sqlite:///{}", dir.join(format!("{name}.db")).display()),
        ),
        ("REDIS_URL", "redis://127.0.0.1:6379/0".to_owned()),
        ("CACHE_KEY_PREFIX", prefix.to_owned()),
        ("WORKERS", "1".to_owned()),
    ]);
    let mut process = ServerProcess::start(dir, name, &env, Some(&socket));
    process.wait_serving();
    (process, url, socket)
}

#[tokio::test]
async fn two_instances_on_one_redis_share_one_budget() {
    if !service_available("Redis", 6379) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("{}:", unique("limits_shared"));
    let (first, first_url, _first_socket) = start_instance(dir.path(), "first", &prefix);
    let (second, second_url, _second_socket) = start_instance(dir.path(), "second", &prefix);
    let client = Client::new();
    let get = |url: &String| client.get(format!("{url}/orders")).send();
    // The burst spent across both: each alone would have allowed 3.
    let mut remaining = Vec::new();
    for url in [&first_url, &second_url, &first_url] {
        let response = get(url).await.unwrap();
        assert_eq!(response.status(), 200);
        remaining.push(limit_field(&response).0);
    }
    assert_eq!(remaining, [2, 1, 0], "one countdown for both instances");
    for url in [&second_url, &first_url] {
        let response = get(url).await.unwrap();
        expect_error(response, 429, "too_many_requests").await;
    }
    assert_eq!(
        metric(&client, &second_url, "rate_limited_requests_total").await,
        1
    );
    for url in [&first_url, &second_url] {
        assert_eq!(metric(&client, url, "rate_limit_fallbacks_total").await, 0);
    }
    first.stop();
    second.stop();
}

/// A `redis-server` of this test's own on a free port, stopped by its PID.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        match redis.spawn() {
            Ok(()) => Some(redis),
            Err(error) => {
                assert!(!ci(), "redis-server cannot start and CI=true: {error}");
                eprintln!("note: redis-server cannot start ({error}); skipping");
                None
            }
        }
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// SIGKILL by PID, and waits for it to be gone.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args(["-KILL", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            child.wait().unwrap();
        }
    }

    /// SIGSTOP by PID: the port still accepts, nothing answers.
    fn hang(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// A fresh (empty) server on the same port.
    fn restart(&mut self) {
        self.kill();
        self.spawn().expect("redis-server restarts");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn with_redis_down_requests_are_served_under_the_per_process_limit() {
    let Some(mut redis) = OwnRedis::start() else {
        return;
    };
    let app = TestApp::start(Options {
        cache: true,
        extra: {
            let mut extra = limited(&[]);
            extra.push(("REDIS_URL", redis.url()));
            extra
        },
        ..Options::default()
    })
    .await;
    let base = app.server.url();
    // Redis answers: one of the shared budget spent.
    let first = app.get("/orders").await;
    assert_eq!(first.status(), 200);
    assert_eq!(limit_field(&first).0, BURST - 1);
    assert_eq!(
        metric(&app.client, &base, "rate_limit_fallbacks_total").await,
        0
    );

    redis.kill();
    // Every request is answered, none with an error: the process's own
    // budget (a full one: it never saw the shared one) is spent, then 429s.
    let mut statuses = Vec::new();
    for _ in 0..BURST + 2 {
        statuses.push(app.get("/orders").await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let fallbacks = metric(&app.client, &base, "rate_limit_fallbacks_total").await;
    assert_eq!(
        fallbacks,
        u64::from(BURST) + 2,
        "each check while Redis is down"
    );
    assert_eq!(
        metric(&app.client, &base, "rate_limited_requests_total").await,
        2
    );
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["cache"], "unavailable");

    // Redis back, empty: once the pause after the failure is over, the
    // shared (full) budget answers again, though the process's is spent.
    redis.restart();
    tokio::time::sleep(ratelimit::STORE_RETRY + Duration::from_millis(300)).await;
    let back = app.get("/orders").await;
    assert_eq!(back.status(), 200);
    assert_eq!(limit_field(&back).0, BURST - 1, "the shared budget, afresh");
    assert_eq!(
        metric(&app.client, &base, "rate_limit_fallbacks_total").await,
        fallbacks,
        "no fallback once Redis answers"
    );
}

async fn reset_from(app: &TestApp, client: &str, password: &str) -> Response {
    app.client
        .post(app.url("/admin/reset"))
        .header("X-Forwarded-For", client)
        .header("X-Admin-Password", password)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn guessing_the_admin_password_is_locked_out_with_growing_delays() {
    // The default policy (5 failures); the test's requests all come from
    // 127.0.0.1, which is trusted so that they can speak for two clients.
    let app = TestApp::start(Options {
        extra: vec![("TRUSTED_PROXIES", "127.0.0.1".to_owned())],
        ..Options::default()
    })
    .await;
    let base = app.server.url();
    let attacker = "203.0.113.66";
    for _ in 0..5 {
        expect_error(
            reset_from(&app, attacker, "guess").await,
            401,
            "unauthorized",
        )
        .await;
    }
    // Locked out: even the right password is not looked at.
    let locked = reset_from(&app, attacker, ADMIN).await;
    assert_eq!(header(&locked, "retry-after"), Some("1"));
    expect_error(locked, 429, "admin_locked_out").await;
    // Another address is not affected.
    assert_eq!(reset_from(&app, "198.51.100.1", ADMIN).await.status(), 200);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    expect_error(
        reset_from(&app, attacker, "guess").await,
        401,
        "unauthorized",
    )
    .await;
    let locked = reset_from(&app, attacker, "guess").await;
    assert_eq!(
        header(&locked, "retry-after"),
        Some("2"),
        "the delay doubled"
    );
    expect_error(locked, 429, "admin_locked_out").await;

    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(reset_from(&app, attacker, ADMIN).await.status(), 200);
    // The success cleared the record: one failure is one failure again.
    expect_error(
        reset_from(&app, attacker, "guess").await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(reset_from(&app, attacker, ADMIN).await.status(), 200);

    assert_eq!(
        metric(&app.client, &base, "admin_auth_failures_total").await,
        7
    );
    assert_eq!(
        metric(&app.client, &base, "admin_auth_lockouts_total").await,
        2
    );
    assert_eq!(
        metric(&app.client, &base, "rate_limited_requests_total").await,
        0
    );
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    if !service_available("Redis", 6379) {
        return;
    }
    let get_as = async |app: &TestApp, forwarded: &str| {
        app.client
            .get(app.url("/orders"))
            .header("X-Forwarded-For", forwarded)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    // No trusted proxy: the header is the client's word, ignored; every
    // request is 127.0.0.1's.
    let untrusting = TestApp::start(Options {
        cache: true,
        extra: limited(&[]),
        ..Options::default()
    })
    .await;
    let mut statuses = Vec::new();
    for forwarded in ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"] {
        statuses.push(get_as(&untrusting, forwarded).await);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);

    // 127.0.0.1 trusted: the right-most address it forwards is the client.
    let trusting = TestApp::start(Options {
        cache: true,
        extra: limited(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")]),
        ..Options::default()
    })
    .await;
    for _ in 0..BURST {
        assert_eq!(get_as(&trusting, "203.0.113.1").await, 200);
    }
    assert_eq!(get_as(&trusting, "203.0.113.1").await, 429);
    // A client cannot escape by writing addresses of its own to the left.
    assert_eq!(get_as(&trusting, "192.0.2.77, 203.0.113.1").await, 429);
    // Through another trusted proxy (10.1.2.3) it is still the same client.
    assert_eq!(get_as(&trusting, "203.0.113.1, 10.1.2.3").await, 429);
    // Another client has its own budget.
    assert_eq!(get_as(&trusting, "203.0.113.2").await, 200);
    assert_eq!(get_as(&trusting, "203.0.113.1, 198.51.100.9").await, 200);
}

#[tokio::test]
async fn a_hung_redis_stalls_no_request() {
    let Some(redis) = OwnRedis::start() else {
        return;
    };
    let app = TestApp::start(Options {
        cache: true,
        extra: vec![
            ("RATE_LIMIT_PER_MINUTE", "600".to_owned()),
            ("REDIS_URL", redis.url()),
            ("CACHE_TIMEOUT_MS", "300".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    assert_eq!(app.get("/orders").await.status(), 200);
    redis.hang();
    // The first check waits out its bound, then Redis is skipped for a
    // second (one try a second after that): twenty requests cost a few
    // bounds (the cache's breaker takes three before it opens), not
    // twenty, which would be 6 s for the limiter alone.
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(app.get("/orders").await.status(), 200);
    }
    let elapsed = started.elapsed();
    eprintln!("twenty requests with Redis hung: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert!(
        metric(&app.client, &app.server.url(), "rate_limit_fallbacks_total").await >= 20,
        "served per process while Redis hangs"
    );
}
