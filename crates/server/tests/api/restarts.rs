//! Restarts and deploys that drop nothing: the binary on a listening
//! socket the test holds, as systemd holds `orders.socket`, restarted three
//! times under clients that keep reading and writing on keep-alive
//! connections. Not one request may fail, and every acknowledged write
//! must be there afterwards.
//!
//! It fails when the server binds a port of its own instead of serving the
//! inherited socket (nothing would answer on the test's socket), and when
//! a stop drops connections (a client's request on a connection closed
//! under it fails).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::server_process::ServerProcess;
use crate::support::{service_available, unique};
use crate::workload::{Workload, assert_all_present};

const CLIENTS: usize = 6;
const RESTARTS: usize = 3;

#[derive(Clone, Copy, Debug)]
enum Restart {
    /// A rolling handover: start the new process on the same socket, wait
    /// until it serves, then SIGTERM the old one.
    NewBeforeOld,
    /// `systemctl restart`: SIGTERM the old process, wait for its exit,
    /// then start the new one; meanwhile connections wait in the backlog.
    StopThenStart,
}

/// A keep-alive connection that has had one answer and sits idle: a
/// client may send its next request on it at any time, also the moment the
/// server is told to stop. A pooling client would notice a connection the
/// server closed and open another; this one, like a client whose request
/// crossed the server's close, does not.
struct IdleConnection(BufReader<TcpStream>);

impl IdleConnection {
    fn open(address: SocketAddr) -> Self {
        let stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut connection = Self(BufReader::new(stream));
        let head = connection.request().expect("a first answer");
        assert!(!head.contains("connection: close"), "{head}");
        connection
    }

    /// `GET /healthz` on the connection; the answer's head, lower case.
    fn request(&mut self) -> Result<String, String> {
        self.0
            .get_mut()
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: orders\r\n\r\n")
            .map_err(|error| format!("write: {error}"))?;
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let read = self
                .0
                .read_line(&mut line)
                .map_err(|error| format!("read: {error}"))?;
            if read == 0 {
                return Err(format!("closed by the server after {head:?}"));
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |length| length.trim().parse().unwrap());
        let mut body = vec![0; length];
        self.0
            .read_exact(&mut body)
            .map_err(|error| format!("body: {error}"))?;
        Ok(head)
    }
}

/// SIGTERM to `old`, then a request on a connection that was idle: it
/// must be answered, and told to close; then a clean exit.
fn stop_with_a_request_on_an_idle_connection(old: ServerProcess, mut idle: IdleConnection) {
    old.signal("TERM");
    std::thread::sleep(Duration::from_millis(100));
    let head = idle
        .request()
        .unwrap_or_else(|error| panic!("a request on an idle connection at the stop: {error}"));
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    // Requests still in flight on `old` (a write waiting for the SQLite
    // lock the new process holds) finish before it exits.
    old.wait_stopped();
}

fn environment(dir: &std::path::Path, cache: bool) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (
            "DATABASE_URL",
            format!("sqlite:///{}", dir.join("orders.db").display()),
        ),
        // Were these used instead of the inherited socket, nothing would
        // answer the test's clients.
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        ("WORKERS", "2".to_owned()),
    ];
    if cache {
        env.push(("REDIS_URL", "redis://127.0.0.1:6379/0".to_owned()));
        env.push(("CACHE_KEY_PREFIX", format!("{}:", unique("restarts"))));
    } else {
        env.push(("CACHE_DISABLED", "true".to_owned()));
    }
    env
}

async fn restarted_three_times_under_load(restart: Restart, cache: bool) {
    let dir = tempfile::tempdir().unwrap();
    let env = environment(dir.path(), cache);
    // The test holds the socket all along, as systemd does.
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", socket.local_addr().unwrap());

    let mut current = ServerProcess::start(dir.path(), "server-0", &env, Some(&socket));
    current.wait_serving();
    let workload = Workload::start(&url, CLIENTS, Vec::new());
    workload.wait_requests(200).await;

    for generation in 1..=RESTARTS {
        let name = format!("server-{generation}");
        let old = current;
        let (dir_path, env, socket) = (
            dir.path().to_owned(),
            env.clone(),
            socket.try_clone().unwrap(),
        );
        current = tokio::task::spawn_blocking(move || match restart {
            Restart::NewBeforeOld => {
                // Accepted by the old process: the only one serving yet.
                let idle = IdleConnection::open(socket.local_addr().unwrap());
                let mut new = ServerProcess::start(&dir_path, &name, &env, Some(&socket));
                new.wait_serving();
                // Both serve the socket for a moment.
                std::thread::sleep(Duration::from_millis(300));
                stop_with_a_request_on_an_idle_connection(old, idle);
                new
            }
            Restart::StopThenStart => {
                let idle = IdleConnection::open(socket.local_addr().unwrap());
                stop_with_a_request_on_an_idle_connection(old, idle);
                // Nothing accepts now: connections wait in the backlog.
                std::thread::sleep(Duration::from_millis(300));
                let mut new = ServerProcess::start(&dir_path, &name, &env, Some(&socket));
                new.wait_serving();
                new
            }
        })
        .await
        .unwrap();
        // Traffic on the new process before the next restart.
        workload.wait_requests(200).await;
    }

    let ledger = workload.finish().await;
    assert!(
        ledger.failures.is_empty(),
        "{restart:?}: {} of {} requests failed: {:#?}",
        ledger.failures.len(),
        ledger.requests,
        &ledger.failures[..ledger.failures.len().min(10)]
    );
    assert!(ledger.stale.is_empty(), "{restart:?}: {:#?}", ledger.stale);
    assert_all_present(&url, &ledger).await;
    let log = current.log();
    assert!(log.contains(r#""socket":"inherited""#), "{log}");
    current.stop();
    eprintln!(
        "{restart:?}: {} requests, {} orders, no failure",
        ledger.requests,
        ledger.orders.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_handover_on_an_inherited_socket_drops_no_request() {
    let cache = service_available("Redis", 6379);
    restarted_three_times_under_load(Restart::NewBeforeOld, cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_then_start_on_an_inherited_socket_drops_no_request() {
    restarted_three_times_under_load(Restart::StopThenStart, false).await;
}

#[test]
fn an_inherited_descriptor_that_is_not_a_tcp_listener_stops_the_start_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let output = std::process::Command::new("sh")
        .args([
            "-c",
            r#"exec 3<&0 0</dev/null; LISTEN_FDS=1 LISTEN_PID=$$ exec "$0""#,
            env!("CARGO_BIN_EXE_server"),
        ])
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(udp)))
        .current_dir(dir.path())
        .env_clear()
        .env("CACHE_DISABLED", "true")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("socket activation") && stderr.contains("not a TCP socket"),
        "{stderr}"
    );
}
