//! Test support: a real server on a free port with its own database (a
//! temp SQLite file or a fresh MariaDB database) and its own Redis key
//! prefix, so that tests run in parallel without seeing each other.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use reqwest::{Client, Response};
use serde_json::Value;
use server::{RunningServer, Settings};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};

pub const ADMIN: &str = "s3cret";

pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::AtomicU64;
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{micros}_{n}", std::process::id())
}

/// True when a service answers on the loopback port; under `CI=true` a
/// missing service fails the test instead of skipping it.
pub fn service_available(name: &str, port: u16) -> bool {
    let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    if !up {
        assert!(
            !ci(),
            "{name} is not running on 127.0.0.1:{port} and CI=true"
        );
        eprintln!("note: {name} is not running on 127.0.0.1:{port}; skipping");
    }
    up
}

fn mysql(sql: &str) {
    let status = Command::new("mysql")
        .args(["-h127.0.0.1", "-P3306", "-uroot", "-e", sql])
        .status()
        .expect("the mysql client runs");
    assert!(status.success(), "mysql -e {sql:?} failed");
}

/// A MariaDB database that exists for one test.
pub struct MysqlDatabase {
    pub name: String,
}

impl MysqlDatabase {
    pub fn create() -> Option<Self> {
        if !service_available("MariaDB", 3306) {
            return None;
        }
        let name = unique("orders_api");
        mysql(&format!("CREATE DATABASE `{name}`"));
        Some(Self { name })
    }

    /// Orders stored in this database, counted by the mysql client: proof
    /// that a server wrote here.
    pub fn stored_orders(&self) -> u64 {
        let sql = format!("SELECT COUNT(*) FROM `{}`.orders", self.name);
        let output = Command::new("mysql")
            .args(["-h127.0.0.1", "-P3306", "-uroot", "-N", "-B", "-e", &sql])
            .output()
            .expect("the mysql client runs");
        assert!(
            output.status.success(),
            "mysql -e {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    pub fn url_via(&self, port: u16) -> String {
        // prefer_socket=false: otherwise mysql_async switches to the Unix
        // socket after connecting, which would bypass a fault proxy.
        format!(
            "mysql://root@127.0.0.1:{port}/{}?prefer_socket=false",
            self.name
        )
    }
}

impl Drop for MysqlDatabase {
    fn drop(&mut self) {
        // A server stopped mid-request can leave a pooled connection in an
        // open transaction whose metadata lock would keep DROP DATABASE
        // waiting for ever: end the database's sessions first.
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "mysql -h127.0.0.1 -uroot -N -e \"SELECT id FROM information_schema.processlist WHERE db = '{}'\" \
                     | while read id; do mysql -h127.0.0.1 -uroot -e \"KILL $id\"; done",
                    self.name
                ),
            ])
            .status();
        let _ = Command::new("mysql")
            .args([
                "-h127.0.0.1",
                "-uroot",
                "-e",
                &format!("DROP DATABASE IF EXISTS `{}`", self.name),
            ])
            .status();
    }
}

pub struct TestApp {
    pub server: RunningServer,
    pub client: Client,
    _dir: TempDir,
}

pub struct Options {
    pub admin: bool,
    pub cache: bool,
    pub database_url: Option<String>,
    pub key_prefix: Option<String>,
    pub extra: Vec<(&'static str, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            admin: true,
            cache: false,
            database_url: None,
            key_prefix: None,
            extra: Vec::new(),
        }
    }
}

impl TestApp {
    pub async fn sqlite() -> Self {
        Self::start(Options::default()).await
    }

    pub async fn start(options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = options
            .database_url
            .unwrap_or_else(|| format!("sqlite:///{}", dir.path().join("orders.db").display()));
        let mut vars: HashMap<String, String> = [
            ("DATABASE_URL", database_url),
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", "0".to_owned()),
            ("WORKERS", "2".to_owned()),
            ("CACHE_DISABLED", (!options.cache).to_string()),
            (
                "CACHE_KEY_PREFIX",
                options
                    .key_prefix
                    .unwrap_or_else(|| format!("{}:", unique("api"))),
            ),
            ("REDIS_URL", "redis://127.0.0.1:6379/0".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        if options.admin {
            vars.insert("ADMIN_PASSWORD".into(), ADMIN.into());
        }
        for (key, value) in options.extra {
            vars.insert(key.to_owned(), value);
        }
        let settings = Settings::from_vars(vars).unwrap();
        // DEBUG_LOG=1 (with RUST_LOG) shows the in-process server's logs.
        if std::env::var_os("DEBUG_LOG").is_some() {
            server::init_logging(&settings.log);
        }
        let server = server::spawn(settings).await.unwrap();
        Self {
            server,
            client: Client::new(),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn create(&self, name: &str) -> Value {
        let response = self
            .post_json(
                "/orders",
                &serde_json::json!({"customer_name": name, "items": [{"name": "Pen", "quantity": 2}]}),
            )
            .await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    pub async fn admin(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .header("X-Admin-Password", ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// Asserts a JSON error response and returns its body.
pub async fn expect_error(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|error| !error.is_empty()),
        "{body}"
    );
    body
}

/// A TCP proxy in front of a real service, to cut it off and bring it back
/// without touching the service: `Up` forwards; `Refuse` closes every
/// connection at once (a dead server); `Blackhole` closes the open ones and
/// accepts new ones that never answer (a hung server); `Freeze` keeps every
/// connection open but silent, the ones in use included (a stopped server
/// or a network that drops packets).
pub struct FaultProxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Fault {
    Up = 0,
    Refuse = 1,
    Blackhole = 2,
    Freeze = 3,
}

impl FaultProxy {
    pub async fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(Fault::Up as u8));
        let task = {
            let mode = mode.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let mode_now = mode.load(Ordering::SeqCst);
                    let mode = mode.clone();
                    tokio::spawn(async move {
                        if mode_now == Fault::Refuse as u8 {
                            return;
                        }
                        if mode_now == Fault::Blackhole as u8 || mode_now == Fault::Freeze as u8 {
                            // Hold the connection open and never answer.
                            let _held = client;
                            return std::future::pending::<()>().await;
                        }
                        let Ok(upstream) = TcpStream::connect(("127.0.0.1", target_port)).await
                        else {
                            return;
                        };
                        let (mut client, mut upstream) = (client, upstream);
                        let watcher = async {
                            loop {
                                if mode.load(Ordering::SeqCst) != Fault::Up as u8 {
                                    return;
                                }
                                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            }
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                            _ = watcher => {}
                        }
                        if mode.load(Ordering::SeqCst) == Fault::Freeze as u8 {
                            let _held = (client, upstream);
                            std::future::pending::<()>().await
                        }
                    });
                }
            })
        };
        Self { port, mode, task }
    }

    pub fn set(&self, fault: Fault) {
        self.mode.store(fault as u8, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
