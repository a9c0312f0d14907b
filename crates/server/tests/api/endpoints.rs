//! The service talks to exactly the database endpoint it was given. Behind
//! a TCP proxy on 127.0.0.1 (a tunnel, ProxySQL, a sidecar), every query
//! passes the proxy, even though the server reports a local Unix socket it
//! could move to; cutting the proxy is an outage the service reports.

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::{MysqlDatabase, Options, TestApp, expect_error};

/// A TCP proxy to a port on 127.0.0.1 that counts what passes, remembers
/// the local ports of its upstream connections (the server sees them as
/// the clients' ports), and can cut every connection and refuse new ones
/// (its port closed), then come back on the same port.
struct CountingProxy {
    port: u16,
    target: u16,
    state: Arc<ProxyState>,
    listener: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct ProxyState {
    accepted: AtomicU64,
    bytes: AtomicU64,
    upstream_ports: Mutex<HashSet<u16>>,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, state: Arc<ProxyState>) {
    let mut buffer = vec![0; 16 * 1024];
    while let Ok(read @ 1..) = from.read(&mut buffer).await {
        state.bytes.fetch_add(read as u64, Ordering::SeqCst);
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl CountingProxy {
    async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self {
            port: listener.local_addr().unwrap().port(),
            target,
            state: Arc::default(),
            listener: Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let state = self.state.clone();
        let target = self.target;
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                state.accepted.fetch_add(1, Ordering::SeqCst);
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let local = upstream.local_addr().unwrap().port();
                state.upstream_ports.lock().unwrap().insert(local);
                let (client_read, client_write) = client.into_split();
                let (upstream_read, upstream_write) = upstream.into_split();
                let connection = tokio::spawn({
                    let state = state.clone();
                    async move {
                        tokio::join!(
                            pump(client_read, upstream_write, state.clone()),
                            pump(upstream_read, client_write, state),
                        );
                    }
                });
                state.connections.lock().unwrap().push(connection);
            }
        });
        *self.listener.lock().unwrap() = Some(task);
    }

    /// Closes the port (new connections are refused) and every open
    /// connection: the database is gone, as far as the client can tell.
    fn cut(&self) {
        if let Some(listener) = self.listener.lock().unwrap().take() {
            listener.abort();
        }
        for connection in self.state.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    async fn resume(&self) {
        // The port was just released; another process could take it in
        // between, which would fail the test loudly rather than wrongly.
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the proxy's port is free again");
        self.serve(listener);
    }

    fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }

    fn bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::SeqCst)
    }

    fn upstream_ports(&self) -> HashSet<u16> {
        self.state.upstream_ports.lock().unwrap().clone()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Asked of MariaDB on 127.0.0.1:3306 with the mysql client.
fn mariadb(sql: &str) -> String {
    let output = Command::new("mysql")
        .args(["-h127.0.0.1", "-P3306", "-uroot", "-N", "-B", "-e", sql])
        .output()
        .expect("the mysql client runs");
    assert!(
        output.status.success(),
        "mysql -e {sql:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Where the server sees each connection to this database come from:
/// `127.0.0.1:<port>` over TCP, `localhost` through its socket.
fn client_hosts(database: &MysqlDatabase) -> Vec<String> {
    mariadb(&format!(
        "SELECT HOST FROM information_schema.PROCESSLIST WHERE DB = '{}'",
        database.name
    ))
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Every connection the server has for this database came through the
/// proxy, and there is at least one.
fn assert_all_through(proxy: &CountingProxy, database: &MysqlDatabase) {
    let ports = proxy.upstream_ports();
    let hosts = client_hosts(database);
    assert!(!hosts.is_empty(), "the pool keeps connections open");
    for host in &hosts {
        let through_proxy = host
            .strip_prefix("127.0.0.1:")
            .and_then(|port| port.parse::<u16>().ok())
            .is_some_and(|port| ports.contains(&port));
        assert!(
            through_proxy,
            "a connection from {host} went around the proxy (its ports: {ports:?})"
        );
    }
}

fn order_body(name: &str) -> Value {
    json!({"customer_name": name, "items": [{"name": "Pen", "quantity": 1}]})
}

#[tokio::test]
async fn every_query_goes_to_the_configured_host_and_port() {
    let Some(database) = MysqlDatabase::create() else {
        return;
    };
    let socket = mariadb("SELECT @@socket");
    assert!(
        std::path::Path::new(socket.trim()).exists(),
        "MariaDB reports a socket ({}) that the driver could move to",
        socket.trim()
    );
    let proxy = CountingProxy::start(3306).await;
    // The URL as a user writes it: nothing about sockets.
    let app = TestApp::start(Options {
        database_url: Some(format!(
            "mysql://root@127.0.0.1:{}/{}",
            proxy.port, database.name
        )),
        extra: vec![("DB_POOL_TIMEOUT_MS", "1000".to_owned())],
        ..Options::default()
    })
    .await;
    assert!(proxy.accepted() > 0);

    let id = app.create("Through").await["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in ["/orders".to_owned(), format!("/orders/{id}")] {
        let before = proxy.bytes();
        assert_eq!(app.get(&path).await.status(), 200);
        assert!(
            proxy.bytes() > before,
            "{path} was answered through the proxy"
        );
    }
    let before = proxy.bytes();
    assert_eq!(
        app.post_json("/orders", &order_body("Second"))
            .await
            .status(),
        201
    );
    assert!(proxy.bytes() > before, "the write went through the proxy");
    assert_all_through(&proxy, &database);

    proxy.cut();
    for _ in 0..2 {
        for path in ["/orders".to_owned(), format!("/orders/{id}")] {
            let started = Instant::now();
            let response = app.get(&path).await;
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{path} answered in {:?}",
                started.elapsed()
            );
            expect_error(response, 503, "database_unavailable").await;
        }
        let started = Instant::now();
        let write = app.post_json("/orders", &order_body("During")).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        expect_error(write, 503, "database_unavailable").await;
    }
    assert_eq!(app.get("/readyz").await.status(), 503);

    let accepted = proxy.accepted();
    proxy.resume().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = app.get(&format!("/orders/{id}")).await;
        if response.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery: still {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        app.post_json("/orders", &order_body("After"))
            .await
            .status(),
        201
    );
    assert!(
        proxy.accepted() > accepted,
        "new connections, through the proxy"
    );
    assert_all_through(&proxy, &database);
    assert_eq!(
        database.stored_orders(),
        3,
        "the writes refused during the cut left nothing behind"
    );
}

#[tokio::test]
async fn a_socket_is_used_only_when_the_url_names_one() {
    let Some(database) = MysqlDatabase::create() else {
        return;
    };
    let socket = mariadb("SELECT @@socket").trim().to_owned();
    let proxy = CountingProxy::start(3306).await;
    // PyMySQL's parameter: the host and port are then not used at all.
    let app = TestApp::start(Options {
        database_url: Some(format!(
            "mysql+pymysql://root@127.0.0.1:{}/{}?unix_socket={socket}",
            proxy.port, database.name
        )),
        ..Options::default()
    })
    .await;
    app.create("Socket").await;
    assert_eq!(database.stored_orders(), 1);
    assert_eq!(proxy.accepted(), 0, "nothing went to the host and port");
    let hosts = client_hosts(&database);
    assert!(
        !hosts.is_empty() && hosts.iter().all(|host| host == "localhost"),
        "every connection came through the socket: {hosts:?}"
    );
}
