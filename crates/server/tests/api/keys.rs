//! API keys through the HTTP API and the `server api-key` command, on real
//! SQLite files and per-test MariaDB databases: each `API_KEY_REQUIRED`
//! mode, scopes, the admin password beside admin keys, revocation seen by
//! a second server process, and no key material in any output.

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reqwest::{Method, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::server_process::ServerProcess;
use crate::support::{
    ADMIN, Fault, FaultProxy, MysqlDatabase, Options, TestApp, expect_error, unique,
};

const SERVER: &str = env!("CARGO_BIN_EXE_server");

/// A database of one test, and the `server api-key` command on it.
struct Db {
    url: String,
    dir: TempDir,
    mysql: Option<MysqlDatabase>,
}

impl Db {
    fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:///{}", dir.path().join("orders.db").display());
        Db {
            url,
            dir,
            mysql: None,
        }
    }

    fn mysql() -> Option<Db> {
        let database = MysqlDatabase::create()?;
        Some(Db {
            url: format!("mysql://root@127.0.0.1:3306/{}", database.name),
            dir: tempfile::tempdir().unwrap(),
            mysql: Some(database),
        })
    }

    async fn cli(&self, args: &[&str]) -> Output {
        let mut command = Command::new(SERVER);
        command
            .arg("api-key")
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("DATABASE_URL", &self.url);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// A new key with these scopes; its whole text.
    async fn key(&self, scopes: &[&str]) -> String {
        let mut args = vec!["create"];
        for scope in scopes {
            args.extend(["--scope", scope]);
        }
        let output = self.cli(&args).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        let key = text(&output.stdout).trim().to_owned();
        assert!(key.starts_with("ok_") && key.len() == 55, "{key}");
        // The key is on stdout alone, and never on stderr.
        assert!(!text(&output.stderr).contains(&key));
        key
    }

    async fn app(&self, mode: &str, extra: Vec<(&'static str, String)>) -> TestApp {
        let mut extra = extra;
        extra.push(("API_KEY_REQUIRED", mode.to_owned()));
        TestApp::start(Options {
            database_url: Some(self.url.clone()),
            extra,
            ..Options::default()
        })
        .await
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn prefix(key: &str) -> &str {
    &key[3..11]
}

fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

fn new_order() -> Value {
    json!({"customer_name": "Ann", "items": [{"name": "Pen", "quantity": 1}]})
}

/// A 401 of the key check, with its challenge.
async fn expect_unauthorized(response: Response, code: &str) {
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    match code {
        "api_key_required" => assert_eq!(challenge, r#"Bearer realm="orders""#),
        _ => assert_eq!(challenge, r#"Bearer realm="orders", error="invalid_token""#),
    }
    expect_error(response, 401, code).await;
}

async fn expect_forbidden(response: Response, scope: &str) {
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        challenge,
        format!(r#"Bearer realm="orders", error="insufficient_scope", scope="{scope}""#)
    );
    let body = expect_error(response, 403, "insufficient_scope").await;
    assert!(body["error"].as_str().unwrap().contains(scope), "{body}");
}

async fn created_id(response: Response) -> String {
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["order_id"].as_str().unwrap().to_owned()
}

/// Every mode on one database: what needs a key, which scope, and the
/// open routes.
async fn each_mode_asks_for_what_it_says(db: Db) {
    let reader = db.key(&["orders:read"]).await;
    let writer = db.key(&["orders:write"]).await;
    let both = db.key(&["orders:read", "orders:write"]).await;
    let unknown = format!("ok_{}_{}", prefix(&reader), "x".repeat(43));

    // none: as the original, plus a check of any key shown.
    let app = db.app("none", vec![]).await;
    let id = created_id(call(&app, Method::POST, "/orders", None, Some(new_order())).await).await;
    let path = format!("/orders/{id}");
    assert_eq!(
        call(&app, Method::GET, &path, None, None).await.status(),
        200
    );
    assert_eq!(
        call(&app, Method::GET, &path, Some(&reader), None)
            .await
            .status(),
        200
    );
    // A key is not refused where no key is needed.
    assert_eq!(
        call(
            &app,
            Method::POST,
            "/orders",
            Some(&reader),
            Some(new_order())
        )
        .await
        .status(),
        201
    );
    expect_unauthorized(
        call(&app, Method::GET, &path, Some(&unknown), None).await,
        "invalid_api_key",
    )
    .await;
    expect_unauthorized(
        call(&app, Method::GET, "/orders", Some("not-a-key"), None).await,
        "invalid_api_key",
    )
    .await;
    app.server.stop().await;

    // writes: reads stay open.
    let app = db.app("writes", vec![]).await;
    assert_eq!(
        call(&app, Method::GET, &path, None, None).await.status(),
        200
    );
    assert_eq!(
        call(&app, Method::GET, "/orders", None, None)
            .await
            .status(),
        200
    );
    expect_unauthorized(
        call(&app, Method::POST, "/orders", None, Some(new_order())).await,
        "api_key_required",
    )
    .await;
    expect_forbidden(
        call(
            &app,
            Method::POST,
            "/orders",
            Some(&reader),
            Some(new_order()),
        )
        .await,
        "orders:write",
    )
    .await;
    expect_unauthorized(
        call(&app, Method::DELETE, &path, Some(&unknown), None).await,
        "invalid_api_key",
    )
    .await;
    // Refused writes changed nothing.
    assert_eq!(
        call(&app, Method::GET, &path, None, None).await.status(),
        200
    );
    let status = json!({"status": "shipped"});
    let patched = call(
        &app,
        Method::PATCH,
        &format!("{path}/status"),
        Some(&writer),
        Some(status.clone()),
    )
    .await;
    assert_eq!(patched.status(), 200);
    app.server.stop().await;

    // all: reads need orders:read, writes orders:write.
    let app = db.app("all", vec![]).await;
    expect_unauthorized(
        call(&app, Method::GET, &path, None, None).await,
        "api_key_required",
    )
    .await;
    expect_unauthorized(
        call(&app, Method::GET, "/orders", None, None).await,
        "api_key_required",
    )
    .await;
    expect_forbidden(
        call(&app, Method::GET, &path, Some(&writer), None).await,
        "orders:read",
    )
    .await;
    expect_forbidden(
        call(&app, Method::DELETE, &path, Some(&reader), None).await,
        "orders:write",
    )
    .await;
    let read = call(&app, Method::GET, &path, Some(&reader), None).await;
    assert_eq!(read.status(), 200);
    let order: Value = read.json().await.unwrap();
    assert_eq!(order["status"], "shipped");
    let id = created_id(
        call(
            &app,
            Method::POST,
            "/orders",
            Some(&both),
            Some(new_order()),
        )
        .await,
    )
    .await;
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("/orders/{id}"),
            Some(&writer),
            None
        )
        .await
        .status(),
        200
    );
    // What stays open, whatever is shown.
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"] {
        assert_eq!(
            call(&app, Method::GET, open, None, None).await.status(),
            200,
            "{open}"
        );
        assert_eq!(
            call(&app, Method::GET, open, Some(&unknown), None)
                .await
                .status(),
            200,
            "{open}"
        );
    }
    let metrics = call(&app, Method::GET, "/metrics", None, None)
        .await
        .text()
        .await
        .unwrap();
    for outcome in [
        r#"api_key_checks_total{outcome="accepted"} 3"#,
        r#"api_key_checks_total{outcome="missing"} 2"#,
        r#"api_key_checks_total{outcome="insufficient_scope"} 2"#,
    ] {
        assert!(metrics.contains(outcome), "{outcome} in {metrics}");
    }
    assert!(metrics.contains("db_pool_checkouts_total "), "{metrics}");
    app.server.stop().await;
}

#[tokio::test]
async fn each_mode_asks_for_what_it_says_on_sqlite() {
    each_mode_asks_for_what_it_says(Db::sqlite()).await;
}

#[tokio::test]
async fn each_mode_asks_for_what_it_says_on_mysql() {
    let Some(db) = Db::mysql() else { return };
    each_mode_asks_for_what_it_says(db).await;
}

async fn seed(app: &TestApp, key: Option<&str>, password: Option<&str>) -> Response {
    let mut request = app
        .client
        .post(app.url("/admin/seed"))
        .json(&json!({"count": 2}));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(password) = password {
        request = request.header("X-Admin-Password", password);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_admin_password_keeps_working_beside_admin_keys() {
    let db = Db::sqlite();
    let admin = db.key(&["admin"]).await;
    let reader = db.key(&["orders:read"]).await;
    let app = db.app("all", vec![]).await;
    // The password alone, as before, in the strictest mode.
    assert_eq!(seed(&app, None, Some(ADMIN)).await.status(), 201);
    expect_error(seed(&app, None, Some("wrong")).await, 401, "unauthorized").await;
    expect_error(seed(&app, None, None).await, 401, "unauthorized").await;
    // An admin key instead of the password.
    assert_eq!(seed(&app, Some(&admin), None).await.status(), 201);
    let reset = app
        .client
        .post(app.url("/admin/reset"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    // A key without admin: refused unless the password is right too.
    expect_forbidden(seed(&app, Some(&reader), None).await, "admin").await;
    expect_forbidden(seed(&app, Some(&reader), Some("wrong")).await, "admin").await;
    assert_eq!(seed(&app, Some(&reader), Some(ADMIN)).await.status(), 201);
    // An admin key does not read orders: scopes do not imply each other.
    expect_forbidden(
        call(&app, Method::GET, "/orders", Some(&admin), None).await,
        "orders:read",
    )
    .await;
    let listed = call(&app, Method::GET, "/orders", Some(&reader), None).await;
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed["total_orders"], 2, "only the last seed is left");
    app.server.stop().await;

    // Without ADMIN_PASSWORD an admin key still works; nothing else does.
    let app = TestApp::start(Options {
        admin: false,
        database_url: Some(db.url.clone()),
        ..Options::default()
    })
    .await;
    expect_error(seed(&app, None, Some(ADMIN)).await, 403, "admin_disabled").await;
    expect_forbidden(seed(&app, Some(&reader), None).await, "admin").await;
    assert_eq!(seed(&app, Some(&admin), None).await.status(), 201);
    app.server.stop().await;
}

async fn the_command_creates_lists_and_revokes(db: Db) {
    let created = db
        .cli(&[
            "create",
            "--scope",
            "orders:read",
            "--scope",
            "admin",
            "--name",
            "nightly export",
        ])
        .await;
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout).trim().to_owned();
    let other = db.key(&["orders:write"]).await;

    let listed = db.cli(&["list"]).await;
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let list = text(&listed.stdout);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("PREFIX"), "{list}");
    assert!(lines[1].starts_with(prefix(&key)), "{list}");
    assert!(lines[1].contains("orders:read,admin"), "{list}");
    assert!(lines[1].contains("nightly export"), "{list}");
    assert!(lines[1].trim_end().ends_with('-'), "not revoked: {list}");
    assert!(lines[2].starts_with(prefix(&other)), "{list}");
    for secret in [&key, &other] {
        assert!(!list.contains(&secret[12..]), "{list}");
        assert!(!list.contains(&sha256_hex(secret)), "{list}");
    }

    let revoked = db.cli(&["revoke", prefix(&key)]).await;
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    assert!(text(&revoked.stdout).contains(prefix(&key)));
    let again = db.cli(&["revoke", prefix(&key)]).await;
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("revoked already"),
        "{}",
        text(&again.stdout)
    );
    let list = text(&db.cli(&["list"]).await.stdout);
    let line = list
        .lines()
        .find(|line| line.starts_with(prefix(&key)))
        .unwrap();
    assert!(!line.trim_end().ends_with('-'), "a revoked time: {line}");

    // Mistakes: a clear line and a non-zero status, nothing changed.
    let unknown = db.cli(&["revoke", "ZZZZZZZZ"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("ZZZZZZZZ"));
    for bad in [
        vec!["create"],
        vec!["create", "--scope", "orders:delete"],
        vec!["revoke", "short"],
        vec!["create", "--scope", "admin", "--name", "  "],
    ] {
        let output = db.cli(&bad).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{bad:?}: {}",
            text(&output.stderr)
        );
        assert!(!text(&output.stderr).is_empty());
    }
    assert_eq!(text(&db.cli(&["list"]).await.stdout).lines().count(), 3);

    // The revoked key no longer works; the other one does.
    let app = db.app("all", vec![]).await;
    expect_unauthorized(
        call(&app, Method::GET, "/orders", Some(&key), None).await,
        "invalid_api_key",
    )
    .await;
    assert_eq!(
        call(
            &app,
            Method::POST,
            "/orders",
            Some(&other),
            Some(new_order())
        )
        .await
        .status(),
        201
    );
    app.server.stop().await;
}

#[tokio::test]
async fn the_command_creates_lists_and_revokes_on_sqlite() {
    the_command_creates_lists_and_revokes(Db::sqlite()).await;
}

#[tokio::test]
async fn the_command_creates_lists_and_revokes_on_mysql() {
    let Some(db) = Db::mysql() else { return };
    the_command_creates_lists_and_revokes(db).await;
}

/// How long each process may take to see a change: its refresh interval,
/// with room for a loaded machine.
const REFRESH_MS: u64 = 300;

async fn status_of(client: &reqwest::Client, url: &str, key: &str) -> u16 {
    client
        .get(format!("{url}/orders"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until every server answers `expected` for `key`; how long it took.
async fn until_all(urls: &[String], key: &str, expected: u16, limit: Duration) -> Duration {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let mut statuses = Vec::new();
        for url in urls {
            statuses.push(status_of(&client, url, key).await);
        }
        if statuses.iter().all(|status| *status == expected) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "still {statuses:?} after {limit:?}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two server processes on one database: a key made with the command is
/// accepted by both, a revocation refused by both within the refresh
/// interval; neither writes the key, its secret part or its hash.
async fn revocation_reaches_every_process(db: Db) {
    let sockets: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let urls: Vec<String> = sockets
        .iter()
        .map(|socket| format!("http://{}", socket.local_addr().unwrap()))
        .collect();
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        ("CACHE_DISABLED", "true".to_owned()),
        ("CACHE_KEY_PREFIX", format!("{}:", unique("keys"))),
        ("API_KEY_REQUIRED", "all".to_owned()),
        ("API_KEY_REFRESH_MS", REFRESH_MS.to_string()),
        // Everything the process says, to look for key material in it.
        ("RUST_LOG", "debug".to_owned()),
        ("WORKERS", "2".to_owned()),
    ];
    // The schema first: two processes migrating an empty MySQL database
    // at once race on its first CREATE TABLE.
    let listed = db.cli(&["list"]).await;
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let mut processes: Vec<ServerProcess> = sockets
        .iter()
        .enumerate()
        .map(|(n, socket)| {
            ServerProcess::start_capturing(
                db.dir.path(),
                &format!("server-{n}"),
                &env,
                Some(socket),
            )
        })
        .collect();
    for process in &mut processes {
        process.wait_serving();
    }

    // Made after both started: each loads it at its next refresh.
    let key = db.key(&["orders:read"]).await;
    let limit = Duration::from_millis(REFRESH_MS) + Duration::from_secs(3);
    until_all(&urls, &key, 200, limit).await;
    let revoked = db.cli(&["revoke", prefix(&key)]).await;
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let took = until_all(&urls, &key, 401, limit).await;
    eprintln!("revocation seen by both processes after {took:?}");
    // Refused for good, on both.
    tokio::time::sleep(Duration::from_millis(2 * REFRESH_MS)).await;
    until_all(&urls, &key, 401, Duration::ZERO).await;

    let hash = sha256_hex(&key);
    for process in processes {
        let output = process.output();
        assert!(
            output.contains(prefix(&key)),
            "the prefix names the key in the logs"
        );
        assert!(!output.contains(&key[12..]), "the secret is in the output");
        assert!(!output.contains(&hash), "the hash is in the output");
        assert!(
            !output.to_lowercase().contains(&hash[..16]),
            "part of the hash is in the output"
        );
        process.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_every_process_on_sqlite() {
    revocation_reaches_every_process(Db::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_every_process_on_mysql() {
    let Some(db) = Db::mysql() else { return };
    revocation_reaches_every_process(db).await;
}

/// A database last migrated before API keys existed (no `api_keys`
/// table) rolls back to the original as any other.
async fn a_rollback_needs_no_api_keys_table(db: Db) {
    let app = db.app("none", vec![]).await;
    app.create("Old").await;
    app.server.stop().await;
    // As the release before this one left it.
    let sql = "DROP TABLE api_keys; DELETE FROM __diesel_schema_migrations WHERE version = '20261203000001';";
    match &db.mysql {
        Some(database) => {
            let status = Command::new("mysql")
                .args(["-h127.0.0.1", "-P3306", "-uroot", &database.name, "-e", sql])
                .status()
                .unwrap();
            assert!(status.success());
            // The rollback refuses while other sessions use the database:
            // the stopped server's pool closes its connections.
            let idle = format!(
                "SELECT COUNT(*) FROM information_schema.processlist WHERE db = '{}'",
                database.name
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let output = Command::new("mysql")
                    .args(["-h127.0.0.1", "-P3306", "-uroot", "-N", "-B", "-e", &idle])
                    .output()
                    .unwrap();
                if text(&output.stdout).trim() == "0" {
                    break;
                }
                assert!(Instant::now() < deadline, "sessions stay open");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        None => {
            use diesel::connection::SimpleConnection;
            let path = db.dir.path().join("orders.db");
            let mut conn =
                <diesel::SqliteConnection as diesel::Connection>::establish(path.to_str().unwrap())
                    .unwrap();
            // The stopped server may still be checkpointing its WAL.
            conn.batch_execute("PRAGMA busy_timeout = 10000;").unwrap();
            conn.batch_execute(sql).unwrap();
        }
    }
    let url = db.url.clone();
    let dir = db.dir.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(SERVER)
            .args(["migrate-original", "--rollback"])
            .current_dir(dir)
            .env_clear()
            .env("DATABASE_URL", url)
            .env("CACHE_DISABLED", "true")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(
        text(&output.stdout).contains("Wrote 1 orders"),
        "{}",
        text(&output.stdout)
    );
}

#[tokio::test]
async fn a_rollback_needs_no_api_keys_table_on_sqlite() {
    a_rollback_needs_no_api_keys_table(Db::sqlite()).await;
}

#[tokio::test]
async fn a_rollback_needs_no_api_keys_table_on_mysql() {
    let Some(db) = Db::mysql() else { return };
    a_rollback_needs_no_api_keys_table(db).await;
}

/// A database that goes away locks nobody out and lets no revoked key back
/// in: the last keys loaded stay in force until a reload succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reload_keeps_the_last_keys() {
    let Some(db) = Db::mysql() else { return };
    let proxy = FaultProxy::start(3306).await;
    let valid = db.key(&["orders:read"]).await;
    let revoked = db.key(&["orders:read"]).await;
    let database = db.mysql.as_ref().unwrap();
    let app = TestApp::start(Options {
        database_url: Some(database.url_via(proxy.port)),
        extra: vec![
            ("API_KEY_REQUIRED", "all".to_owned()),
            ("API_KEY_REFRESH_MS", REFRESH_MS.to_string()),
            ("DB_POOL_TIMEOUT_MS", "500".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let revoke = db.cli(&["revoke", prefix(&revoked)]).await;
    assert!(revoke.status.success(), "{}", text(&revoke.stderr));
    until_all(
        &[app.server.url()],
        &revoked,
        401,
        Duration::from_millis(REFRESH_MS) + Duration::from_secs(3),
    )
    .await;

    proxy.set(Fault::Refuse);
    // Several reloads fail meanwhile.
    tokio::time::sleep(Duration::from_millis(4 * REFRESH_MS + 1500)).await;
    // The valid key passes the check and meets the outage (503), the
    // revoked one is still refused (401): neither needed the database.
    // (A page: the full list may be held in memory.)
    let down = call(&app, Method::GET, "/orders?limit=5", Some(&valid), None).await;
    expect_error(down, 503, "database_unavailable").await;
    expect_unauthorized(
        call(&app, Method::GET, "/orders?limit=5", Some(&revoked), None).await,
        "invalid_api_key",
    )
    .await;

    proxy.set(Fault::Up);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = call(&app, Method::GET, "/orders?limit=5", Some(&valid), None)
            .await
            .status();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still {status} after the outage");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Reloads work again: a key made now is accepted.
    let later = db.key(&["orders:read"]).await;
    until_all(
        &[app.server.url()],
        &later,
        200,
        Duration::from_millis(REFRESH_MS) + Duration::from_secs(5),
    )
    .await;
    app.server.stop().await;
}

/// The rate limit counts per key once the key check has accepted one, and
/// per address otherwise: one client's keys and its anonymous requests
/// each have their own budget.
#[tokio::test]
async fn each_key_has_its_own_rate_budget() {
    if !crate::support::service_available("Redis", 6379) {
        return;
    }
    let db = Db::sqlite();
    let first = db.key(&["orders:read"]).await;
    let second = db.key(&["orders:read"]).await;
    let app = TestApp::start(Options {
        cache: true,
        database_url: Some(db.url.clone()),
        extra: vec![
            ("RATE_LIMIT_PER_MINUTE", "6".to_owned()),
            ("RATE_LIMIT_BURST", "2".to_owned()),
            ("CACHE_TIMEOUT_MS", "2000".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let statuses = |key: Option<&'static str>| {
        let app = &app;
        let key = key.map(|which| {
            if which == "first" {
                first.clone()
            } else {
                second.clone()
            }
        });
        async move {
            let mut statuses = Vec::new();
            for _ in 0..3 {
                let response = call(app, Method::GET, "/orders", key.as_deref(), None).await;
                statuses.push(response.status().as_u16());
            }
            statuses
        }
    };
    assert_eq!(statuses(Some("first")).await, [200, 200, 429]);
    assert_eq!(statuses(Some("second")).await, [200, 200, 429]);
    assert_eq!(statuses(None).await, [200, 200, 429]);
}

/// The admin lockout is for guessing the password: guesses made beside a
/// key without `admin` (answered 403) count like any other, and an admin
/// key from a locked-out address is still served.
#[tokio::test]
async fn guesses_beside_a_key_are_locked_out_and_an_admin_key_is_not() {
    let db = Db::sqlite();
    let admin = db.key(&["admin"]).await;
    let reader = db.key(&["orders:read"]).await;
    let app = db.app("none", vec![]).await;
    for _ in 0..5 {
        expect_forbidden(seed(&app, Some(&reader), Some("guess")).await, "admin").await;
    }
    expect_error(
        seed(&app, Some(&reader), Some("guess")).await,
        429,
        "admin_locked_out",
    )
    .await;
    expect_error(seed(&app, None, Some(ADMIN)).await, 429, "admin_locked_out").await;
    assert_eq!(seed(&app, Some(&admin), None).await.status(), 201);
    app.server.stop().await;
}
