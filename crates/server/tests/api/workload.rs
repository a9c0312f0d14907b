//! A mixed workload that keeps a ledger of what the service acknowledged:
//! clients creating orders, changing their status and reading them, each
//! on keep-alive connections, while a test restarts or kills servers
//! under them. Each client owns its orders and writes them one at a time,
//! so it knows the state every read must show at least: a read older than
//! an acknowledged write is stale.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};

pub const STATUSES: [&str; 8] = [
    "received",
    "processing",
    "preparing",
    "ready",
    "shipped",
    "delivered",
    "completed",
    "cancelled",
];

/// An instance read directly as well as through the main address; its
/// generation is odd while it is down and changes at each stop and start,
/// so a read that failed while it moved is not held against it.
#[derive(Clone)]
pub struct Direct {
    pub url: String,
    pub generation: Arc<AtomicU64>,
}

impl Direct {
    pub fn new(url: String) -> Self {
        Self {
            url,
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Marks the instance down (before stopping it) or up (once it serves).
    pub fn set_up(&self, up: bool) {
        let generation = self.generation.load(Ordering::SeqCst);
        if generation.is_multiple_of(2) != up {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// What the service acknowledged about one order.
#[derive(Debug, Clone)]
pub struct Known {
    pub version: i64,
    pub status: String,
    /// A status change that got no answer: it may or may not have happened.
    pub unanswered: Option<String>,
}

#[derive(Debug)]
pub struct Failure {
    pub started: Instant,
    pub ended: Instant,
    pub what: String,
}

#[derive(Debug, Default)]
pub struct Ledger {
    pub orders: HashMap<String, Known>,
    pub requests: u64,
    pub direct_reads: u64,
    pub failures: Vec<Failure>,
    pub stale: Vec<String>,
}

impl Ledger {
    fn merge(&mut self, other: Ledger) {
        self.orders.extend(other.orders);
        self.requests += other.requests;
        self.direct_reads += other.direct_reads;
        self.failures.extend(other.failures);
        self.stale.extend(other.stale);
    }
}

pub struct Workload {
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Ledger>>,
}

fn client() -> Client {
    // As the README asks of clients: let idle connections go before the
    // server's 5 s keep-alive does, or a request sent on one as the server
    // closes it is lost (HTTP/1.1's race, stop or no stop).
    Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

impl Workload {
    /// `clients` tasks against `url`; after each acknowledged status change
    /// the order is read through `url` and from every instance in `direct`.
    pub fn start(url: &str, clients: usize, direct: Vec<Direct>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let tasks = (0..clients)
            .map(|n| {
                let worker = Worker {
                    url: url.to_owned(),
                    client: client(),
                    direct_client: client(),
                    direct: direct.clone(),
                    name: format!("client-{n}"),
                    ids: Vec::new(),
                    ledger: Ledger::default(),
                    requests: requests.clone(),
                };
                tokio::spawn(worker.run(stop.clone()))
            })
            .collect();
        Self {
            stop,
            requests,
            tasks,
        }
    }

    /// Requests answered or failed so far, by all clients.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Waits until `more` further requests have been made.
    pub async fn wait_requests(&self, more: u64) {
        let target = self.requests() + more;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.requests() < target {
            assert!(Instant::now() < deadline, "the clients stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn finish(self) -> Ledger {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Ledger::default();
        for task in self.tasks {
            all.merge(task.await.unwrap());
        }
        all
    }
}

struct Worker {
    url: String,
    client: Client,
    direct_client: Client,
    direct: Vec<Direct>,
    name: String,
    ids: Vec<String>,
    ledger: Ledger,
    requests: Arc<AtomicU64>,
}

/// The order in a 2xx answer, or what went wrong.
async fn order(response: reqwest::Result<reqwest::Response>) -> Result<Value, String> {
    let response = response.map_err(|error| format!("{error:?}"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|error| format!("{error:?}"))?;
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|error| format!("{error}: {body}"))
}

impl Worker {
    async fn run(mut self, stop: Arc<AtomicBool>) -> Ledger {
        let mut step: usize = 0;
        while !stop.load(Ordering::SeqCst) {
            if self.ids.is_empty() || step.is_multiple_of(4) {
                self.create(step).await;
            } else {
                let id = self.ids[(step * 7919) % self.ids.len()].clone();
                if step % 4 == 1 {
                    self.change_status(&id, step).await;
                } else {
                    self.read(&id, &self.url.clone(), "read").await;
                }
            }
            step += 1;
        }
        self.ledger
    }

    fn count(&mut self) {
        self.ledger.requests += 1;
        self.requests.fetch_add(1, Ordering::SeqCst);
    }

    fn failed(&mut self, started: Instant, what: String) {
        self.ledger.failures.push(Failure {
            started,
            ended: Instant::now(),
            what,
        });
    }

    async fn create(&mut self, step: usize) {
        let started = Instant::now();
        let sent = self
            .client
            .post(format!("{}/orders", self.url))
            .json(&json!({
                "customer_name": format!("{} {step}", self.name),
                "items": [{"name": "Pen", "quantity": 1 + step % 5}],
            }))
            .send()
            .await;
        self.count();
        match order(sent).await {
            Ok(order) => {
                let id = order["order_id"].as_str().unwrap().to_owned();
                self.ledger.orders.insert(
                    id.clone(),
                    Known {
                        version: order["version"].as_i64().unwrap(),
                        status: order["status"].as_str().unwrap().to_owned(),
                        unanswered: None,
                    },
                );
                self.ids.push(id);
            }
            Err(error) => self.failed(started, format!("POST /orders: {error}")),
        }
    }

    async fn change_status(&mut self, id: &str, step: usize) {
        let known = self.ledger.orders[id].clone();
        let current = STATUSES.iter().position(|s| *s == known.status).unwrap();
        let next = STATUSES[(current + 1 + step % 7) % STATUSES.len()];
        let started = Instant::now();
        let sent = self
            .client
            .patch(format!("{}/orders/{id}/status", self.url))
            .json(&json!({"status": next}))
            .send()
            .await;
        self.count();
        match order(sent).await {
            Ok(order) => {
                let acknowledged = Known {
                    version: order["version"].as_i64().unwrap(),
                    status: order["status"].as_str().unwrap().to_owned(),
                    unanswered: None,
                };
                if acknowledged.version <= known.version || acknowledged.status != next {
                    self.ledger.stale.push(format!(
                        "PATCH {id} to {next} after version {} answered {order}",
                        known.version
                    ));
                }
                self.ledger.orders.insert(id.to_owned(), acknowledged);
                // No read after an acknowledged write shows older state,
                // wherever it lands.
                self.read(id, &self.url.clone(), "read after write").await;
                for direct in self.direct.clone() {
                    self.read_direct(id, &direct).await;
                }
            }
            Err(error) => {
                self.ledger.orders.get_mut(id).unwrap().unanswered = Some(next.to_owned());
                self.failed(started, format!("PATCH {id}: {error}"));
            }
        }
    }

    /// Compares a read with the ledger, noting a stale answer.
    fn check(&mut self, id: &str, order: &Value, source: &str) {
        let known = self.ledger.orders[id].clone();
        let version = order["version"].as_i64().unwrap_or(-1);
        let status = order["status"].as_str().unwrap_or("?");
        if version == known.version && status == known.status {
            return;
        }
        if let Some(unanswered) = &known.unanswered
            && version == known.version + 1
            && status == unanswered
        {
            // The unanswered change did happen: that is the state now.
            let order = self.ledger.orders.get_mut(id).unwrap();
            order.version = version;
            order.status = status.to_owned();
            order.unanswered = None;
            return;
        }
        self.ledger.stale.push(format!(
            "{source} of {id} gave version {version} {status}, acknowledged {known:?}"
        ));
    }

    async fn read(&mut self, id: &str, url: &str, what: &str) {
        let started = Instant::now();
        let sent = self.client.get(format!("{url}/orders/{id}")).send().await;
        self.count();
        match order(sent).await {
            Ok(order) => self.check(id, &order, &format!("{what} via {url}")),
            Err(error) => self.failed(started, format!("GET {id}: {error}")),
        }
    }

    async fn read_direct(&mut self, id: &str, direct: &Direct) {
        let before = direct.generation.load(Ordering::SeqCst);
        if before % 2 == 1 {
            return;
        }
        let sent = self
            .direct_client
            .get(format!("{}/orders/{id}", direct.url))
            .send()
            .await;
        let answer = order(sent).await;
        let moved = direct.generation.load(Ordering::SeqCst) != before;
        self.ledger.direct_reads += 1;
        match answer {
            Ok(order) => self.check(id, &order, &format!("direct read from {}", direct.url)),
            Err(_) if moved => {}
            Err(error) => self.ledger.stale.push(format!(
                "direct read of {id} from {} (up all along) failed: {error}",
                direct.url
            )),
        }
    }
}

/// Every acknowledged order is there with its last acknowledged status
/// (or the one of a change that got no answer).
pub async fn assert_all_present(url: &str, ledger: &Ledger) {
    assert!(!ledger.orders.is_empty(), "no order was acknowledged");
    let client = client();
    for (id, known) in &ledger.orders {
        let order = order(client.get(format!("{url}/orders/{id}")).send().await)
            .await
            .unwrap_or_else(|error| panic!("acknowledged order {id} is missing: {error}"));
        let status = order["status"].as_str().unwrap();
        let version = order["version"].as_i64().unwrap();
        let as_acknowledged = version == known.version && status == known.status;
        let as_unanswered =
            known.unanswered.as_deref() == Some(status) && version == known.version + 1;
        assert!(
            as_acknowledged || as_unanswered,
            "{id}: stored {version} {status}, acknowledged {known:?}"
        );
    }
}
