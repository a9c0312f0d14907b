//! Three server processes on one MariaDB database and one Redis prefix,
//! behind HAProxy (Debian's package), under the mixed workload: one
//! instance is killed with SIGKILL and another restarted mid-run (then the
//! killed one comes back). No acknowledged write may be lost, no read
//! after an acknowledged write may show older state, through the load
//! balancer or directly on any instance, and only requests in flight on the
//! killed instance may fail.
//!
//! HAProxy, as the README advises: health checks on `/readyz` (a stopping
//! instance answers 503 there for `SHUTDOWN_DELAY_MS`, so it is taken out
//! before it stops accepting), retries only of connections that failed
//! before a request was sent (`retry-on conn-failure`, redispatched to
//! another instance), and a new backend connection per request
//! (`http-server-close`), so that no request goes out on an idle
//! connection an instance is closing.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::deploy::tool;
use crate::server_process::ServerProcess;
use crate::support::{MysqlDatabase, service_available, unique};
use crate::workload::{Direct, Workload, assert_all_present};

const INSTANCES: usize = 3;
const CLIENTS: usize = 6;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn haproxy_config(port: u16, backends: &[u16]) -> String {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(n, backend)| format!("    server s{n} 127.0.0.1:{backend} check\n"))
        .collect();
    format!(
        "global
    maxconn 2000

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 10s
    # A connection refused (an instance just killed or not yet up) is tried
    # again on another instance: nothing was sent, so this is safe for
    # every method. A request sent and unanswered is not retried.
    retries 3
    retry-on conn-failure
    option redispatch 1
    # One backend connection per request: none sits idle while an
    # instance closes it.
    option http-server-close

frontend orders
    bind 127.0.0.1:{port}
    default_backend instances

backend instances
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
    default-server inter 100ms fall 2 rise 2
{servers}"
    )
}

struct Haproxy(Child);

impl Haproxy {
    fn start(binary: &Path, config: &Path, port: u16) -> Self {
        let check = Command::new(binary)
            .args(["-c", "-q", "-f"])
            .arg(config)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "haproxy -c: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(binary)
            .args(["-db", "-f"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self(child)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the load balancer sends requests to `instance` again, by
/// asking `/readyz` directly and then leaving its checks time to rise.
fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ =
                stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "instance on {port} never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    // rise 2 at inter 100ms.
    std::thread::sleep(Duration::from_millis(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_behind_haproxy_lose_nothing_when_one_is_killed_and_one_restarted() {
    let Some(haproxy) = tool("haproxy", "HAPROXY") else {
        return;
    };
    if !service_available("Redis", 6379) {
        return;
    }
    let Some(database) = MysqlDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("{}:", unique("balanced"));
    let ports: Vec<u16> = (0..INSTANCES).map(|_| free_port()).collect();
    let env = |port: u16| {
        vec![
            ("DATABASE_URL", database.url_via(3306)),
            ("DB_POOL_SIZE", "4".to_owned()),
            ("REDIS_URL", "redis://127.0.0.1:6379/0".to_owned()),
            ("CACHE_KEY_PREFIX", prefix.clone()),
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", port.to_string()),
            ("WORKERS", "2".to_owned()),
            // Longer than HAProxy's fall 2 at inter 100ms.
            ("SHUTDOWN_DELAY_MS", "1000".to_owned()),
        ]
    };
    let start = |n: usize, generation: usize| {
        let mut process = ServerProcess::start(
            dir.path(),
            &format!("s{n}-{generation}"),
            &env(ports[n]),
            None,
        );
        process.wait_serving();
        wait_ready(ports[n]);
        process
    };
    let mut instances: Vec<Option<ServerProcess>> = Vec::new();
    for n in 0..INSTANCES {
        // One at a time: the first runs the migrations.
        instances.push(Some(tokio::task::block_in_place(|| start(n, 0))));
    }

    let lb_port = free_port();
    let config = dir.path().join("haproxy.cfg");
    std::fs::write(&config, haproxy_config(lb_port, &ports)).unwrap();
    let _haproxy = tokio::task::block_in_place(|| Haproxy::start(&haproxy, &config, lb_port));
    let lb = format!("http://127.0.0.1:{lb_port}");
    let direct: Vec<Direct> = ports
        .iter()
        .map(|port| Direct::new(format!("http://127.0.0.1:{port}")))
        .collect();

    let workload = Workload::start(&lb, CLIENTS, direct.clone());
    workload.wait_requests(300).await;

    // SIGKILL instance 0 mid-run.
    direct[0].set_up(false);
    // The kill lands between these two instants: from the signal sent (by
    // `kill`, a process of its own) to the process reaped, when its sockets
    // are closed and HAProxy's connections to it are refused (and retried).
    let kill_sent = Instant::now();
    instances[0].as_ref().unwrap().signal("KILL");
    tokio::task::block_in_place(|| {
        instances[0]
            .as_mut()
            .unwrap()
            .wait_exit(Duration::from_secs(5))
    });
    let kill_done = Instant::now();
    instances[0] = None;
    workload.wait_requests(300).await;

    // Restart instance 1 gracefully, on its port.
    direct[1].set_up(false);
    let old = instances[1].take().unwrap();
    // The clients go on meanwhile (on the other workers).
    instances[1] = Some(tokio::task::block_in_place(|| {
        old.stop();
        start(1, 1)
    }));
    direct[1].set_up(true);
    workload.wait_requests(300).await;

    // The killed instance comes back: it must not serve older state.
    instances[0] = Some(tokio::task::block_in_place(|| start(0, 1)));
    direct[0].set_up(true);
    workload.wait_requests(300).await;

    let ledger = workload.finish().await;
    assert!(ledger.stale.is_empty(), "{:#?}", ledger.stale);
    // Only requests in flight on the killed instance may fail: sent before
    // the kill, answered (with an error) after it, at most one per client.
    let in_flight_at_kill = |failure: &&crate::workload::Failure| {
        failure.started <= kill_done && failure.ended >= kill_sent
    };
    let others: Vec<_> = ledger
        .failures
        .iter()
        .filter(|failure| !in_flight_at_kill(failure))
        .collect();
    assert!(
        others.is_empty(),
        "{} failures not in flight at the kill (sent {:?} after the kill began, ended {:?} after): {others:#?}",
        others.len(),
        others
            .iter()
            .map(|f| f.started.saturating_duration_since(kill_sent))
            .collect::<Vec<_>>(),
        others
            .iter()
            .map(|f| f.ended.saturating_duration_since(kill_sent))
            .collect::<Vec<_>>(),
    );
    assert!(ledger.failures.len() <= CLIENTS, "{:#?}", ledger.failures);
    assert!(ledger.direct_reads > 0);
    for url in std::iter::once(lb.clone()).chain(direct.iter().map(|d| d.url.clone())) {
        assert_all_present(&url, &ledger).await;
    }
    // Nothing stored that was not acknowledged, but for creates in flight
    // at the kill.
    let stored = database.stored_orders() as usize;
    let failed_creates = ledger
        .failures
        .iter()
        .filter(|failure| failure.what.starts_with("POST"))
        .count();
    assert!(
        (ledger.orders.len()..=ledger.orders.len() + failed_creates).contains(&stored),
        "{stored} stored, {} acknowledged, {failed_creates} creates failed",
        ledger.orders.len()
    );
    for instance in instances.into_iter().flatten() {
        tokio::task::block_in_place(|| instance.stop());
    }
    eprintln!(
        "balanced: {} requests, {} direct reads, {} orders, {} failed in flight at the kill",
        ledger.requests,
        ledger.direct_reads,
        ledger.orders.len(),
        ledger.failures.len()
    );
}
