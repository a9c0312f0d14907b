//! The scale part (`--only scale`): the full list, `GET /orders` without
//! parameters (every order, ~320 bytes each: ~32 MB at 100,000 orders,
//! ~320 MB at 1,000,000), on a table grown to each size through
//! `POST /admin/seed`, and what it does to writes beside it and to the
//! original's mixed scenario with its waits. One section per backend.
//!
//! At each size, in this order, each step on a server of its own started
//! under a fresh Redis key prefix (so Redis holds nothing for it; the
//! prefix's keys are removed when it stops):
//! 1. seeding up to the size, in calls of at most 100,000;
//! 2. cold: a fresh server asked for the list once, `--scale-cold-runs`
//!    times (the database's own caches are warm by then: this is a
//!    restarted server, not a rebooted machine);
//! 3. on one more server, kept for steps 3 to 6: `POST /orders` then the
//!    list, `--scale-write-runs` times, one client;
//! 4. the cached list, `--scale-connections` connections flat out;
//! 5. writers alone (create, ship, delete their own order), then the same
//!    beside `--scale-readers` connections listing flat out;
//! 6. the original's mixed scenario with its waits.
//!
//! Every body is counted as it streams in and never held whole, and every
//! request may take `--scale-request-timeout` (120 s): a slow full list is
//! reported as slow, not failed.

use std::time::{Duration, Instant};

use hyper::Method;

use super::driver::{
    CONNECTION_ERROR, Call, DriveResult, KindResult, Streamed, TIMED_OUT, percentile_ms,
    request_once, request_streamed,
};
use super::report::{Row, Section};
use super::server::ServerProcess;
use super::workloads::{self, Mixed, OneOf, Paced, Repeat, WriteCycle};
use super::{Backend, Run, Timing};
use crate::error::XtaskError;
use crate::scratch::unique_suffix;

#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// Table sizes, measured from the smallest up (the table only grows).
    pub sizes: Vec<u64>,
    pub backends: Vec<Backend>,
    /// Fresh servers each asked for the list once.
    pub cold_runs: usize,
    /// Rounds of one `POST /orders` and then the list.
    pub write_runs: usize,
    /// Connections of the cached list and of the writers.
    pub connections: usize,
    /// Connections listing flat out beside the writers.
    pub readers: usize,
    /// Users of the mixed scenario with waits.
    pub mixed_users: usize,
    pub mixed_duration: Duration,
    /// How long any one request may take before it counts as failed.
    pub request_timeout: Duration,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        Self {
            sizes: vec![1_000, 100_000, 1_000_000],
            backends: vec![Backend::Sqlite, Backend::Mysql],
            cold_runs: 5,
            write_runs: 20,
            connections: 4,
            readers: 8,
            mixed_users: 50,
            mixed_duration: Duration::from_secs(40),
            request_timeout: Duration::from_secs(120),
        }
    }
}

/// The issue's goals. Most are stated at 100,000 orders and seeding at
/// 1,000,000; at other sizes the value is shown beside the goal with no
/// verdict.
const GOAL_SIZE: u64 = 100_000;
const SEED_GOAL_SIZE: u64 = 1_000_000;
const AFTER_WRITE_GOAL_MS: f64 = 50.0;
const GB_PER_CORE_GOAL: f64 = 1.0;
const WRITE_P99_RATIO_GOAL: f64 = 2.0;
const MIXED_P99_GOAL_MS: f64 = 50.0;
const RSS_GOAL_MIB: f64 = 128.0;
/// The original's think time between a mixed user's tasks.
const MIXED_WAIT: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3));

/// The request kinds this part reports that the workloads do not name.
const SEED: &str = "POST /admin/seed";
const COLD_LIST: &str = "cold GET /orders";
const FIRST_LIST: &str = "first GET /orders after seeding";
const LIST_AFTER_WRITE: &str = "GET /orders after a write";
const WRITE_KINDS: [&str; 3] = [workloads::CREATE, workloads::STATUS, workloads::DELETE];

struct BackendGoals {
    name: &'static str,
    seed_million: Duration,
    cold_ms: f64,
}

fn goals(backend: Backend) -> BackendGoals {
    match backend {
        Backend::Sqlite => BackendGoals {
            name: "SQLite",
            seed_million: Duration::from_secs(20),
            cold_ms: 200.0,
        },
        Backend::Mysql => BackendGoals {
            name: "MariaDB",
            seed_million: Duration::from_secs(60),
            cold_ms: 400.0,
        },
    }
}

/// 1234567 as "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// "met" or "MISSED" at the goal's own size; nothing at another.
fn verdict(at_goal_size: bool, met: bool) -> &'static str {
    match (at_goal_size, met) {
        (false, _) => "",
        (true, true) => ": met",
        (true, false) => ": MISSED",
    }
}

/// `total_orders` from the first bytes of a list body.
pub fn total_in_head(head: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"total_orders\":";
    let start = head.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits: Vec<u8> = head[start..]
        .iter()
        .copied()
        .skip_while(u8::is_ascii_whitespace)
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// A list whose `total_orders` is not the table's size.
const WRONG_TOTAL: &str = "wrong total_orders";

fn io_cause(error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::TimedOut {
        TIMED_OUT.to_owned()
    } else {
        CONNECTION_ERROR.to_owned()
    }
}

/// What went wrong with a full list that should hold `expected` orders,
/// if anything, and the body bytes it brought.
fn list_outcome(outcome: &std::io::Result<Streamed>, expected: u64) -> (Option<String>, u64) {
    match outcome {
        Ok(streamed) if streamed.status == 200 => (
            (total_in_head(&streamed.head) != Some(expected)).then(|| WRONG_TOTAL.to_owned()),
            streamed.body_bytes,
        ),
        Ok(streamed) => (
            Some(format!("status {}", streamed.status)),
            streamed.body_bytes,
        ),
        Err(error) => (Some(io_cause(error)), 0),
    }
}

fn micros(elapsed: Duration) -> u32 {
    elapsed.as_micros().min(u128::from(u32::MAX)) as u32
}

fn kib_to_mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|kib| kib as f64 / 1024.0)
}

fn mib(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}"))
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0}"))
}

/// Requests made one after another: their latencies and errors, as the
/// driver's results are, over the time the requests themselves took.
#[derive(Default)]
struct Sequential {
    result: DriveResult,
}

impl Sequential {
    /// One request of `kind`; `error` says what went wrong, if anything.
    fn record(
        &mut self,
        kind: &'static str,
        elapsed: Duration,
        error: Option<String>,
        body_bytes: u64,
    ) {
        let index = match self.result.kinds.iter().position(|k| k.kind == kind) {
            Some(index) => index,
            None => {
                self.result.kinds.push(KindResult {
                    kind,
                    ..KindResult::default()
                });
                self.result.kinds.len() - 1
            }
        };
        let entry = &mut self.result.kinds[index];
        entry.latencies_us.push(micros(elapsed));
        if let Some(error) = error {
            entry.add_error(error);
        }
        entry.body_bytes += body_bytes;
        self.result.elapsed += elapsed;
    }

    fn kind(&self, kind: &str) -> DriveResult {
        let mut only = self.result.only(kind);
        only.elapsed = Duration::from_micros(
            only.kinds
                .iter()
                .flat_map(|k| &k.latencies_us)
                .map(|&us| u64::from(us))
                .sum(),
        );
        only
    }
}

/// What the writers did: p99 over every write kind, and errors per kind.
fn writes_summary(result: &DriveResult) -> (f64, String, u64) {
    let mut latencies: Vec<u32> = WRITE_KINDS
        .iter()
        .flat_map(|kind| result.only(kind).kinds)
        .flat_map(|kind| kind.latencies_us)
        .collect();
    latencies.sort_unstable();
    let errors: Vec<String> = WRITE_KINDS
        .iter()
        .map(|kind| format!("{kind} {}", result.only(kind).errors()))
        .collect();
    let total = WRITE_KINDS
        .iter()
        .map(|kind| result.only(kind).errors())
        .sum();
    (percentile_ms(&latencies, 0.99), errors.join(", "), total)
}

/// One row per request kind of `result`, named `prefix: kind`, with the
/// peak RSS of the workload they ran in. The server's CPU belongs to the
/// workload, not to a kind: it is in the notes.
fn kind_rows(prefix: &str, result: &DriveResult, peak_rss_mib: Option<f64>) -> Vec<Row> {
    result
        .kinds
        .iter()
        .map(|kind| {
            let only = result.only(kind.kind);
            let mut row = Row::new(format!("{prefix}: {}", kind.kind), &only, None, None)
                .with_body_rate(&only);
            row.peak_rss_mib = peak_rss_mib;
            row
        })
        .collect()
}

/// Everything measured at one size, for the notes.
struct SizeRun<'r, 'a> {
    run: &'r Run<'a>,
    backend: Backend,
    database_url: &'r str,
    size: u64,
    label: String,
    rows: Vec<Row>,
    notes: Vec<String>,
    /// Each step's peak RSS in MiB.
    peaks: Vec<(&'static str, Option<f64>)>,
}

impl Run<'_> {
    /// A server under a Redis key prefix nobody used yet (inside the
    /// bench's own, which is removed at the end anyway).
    async fn fresh_server(
        &self,
        label: &str,
        database_url: &str,
    ) -> Result<(ServerProcess, String), XtaskError> {
        let prefix = format!("{}scale-{}:", self.key_prefix, unique_suffix());
        let server = self
            .start_with_prefix(label, database_url, true, &prefix)
            .await?;
        Ok((server, prefix))
    }

    /// Stops `server` with SIGTERM (waiting up to 30 s, as a deployment's
    /// stop timeout does) and removes its keys: a cached 320 MB list under
    /// every prefix would pile up in Redis.
    async fn stop_fresh(&self, server: ServerProcess, prefix: &str) {
        server.stop_gracefully(Duration::from_secs(30)).await;
        if let Err(error) =
            crate::redis_reset::delete_prefixed(&self.options.redis_url, prefix).await
        {
            eprintln!("warning: could not remove the Redis keys {prefix}*: {error}");
        }
    }

    /// `total_orders` as a one-order page gives it.
    async fn total_orders(&self, server: &ServerProcess) -> Result<u64, XtaskError> {
        let call = Call::get("total", "/orders?limit=1");
        let (status, body) = request_once(server.addr, &call, &[], self.scale().request_timeout)
            .await
            .map_err(|e| XtaskError::io("GET /orders?limit=1", e))?;
        if status != 200 {
            return Err(XtaskError::Failed(format!(
                "GET /orders?limit=1: {status} {}",
                String::from_utf8_lossy(&body)
            )));
        }
        total_in_head(&body).ok_or_else(|| {
            XtaskError::Failed(format!(
                "GET /orders?limit=1 gave no total_orders: {}",
                String::from_utf8_lossy(&body)
            ))
        })
    }

    fn scale(&self) -> &ScaleOptions {
        &self.options.scale
    }

    /// The scale part on one backend's database, empty at the start.
    pub(super) async fn scale_section(
        &self,
        backend: Backend,
        database_url: &str,
    ) -> Result<Section, XtaskError> {
        let goals = goals(backend);
        let options = self.scale();
        let title = format!(
            "Scale: the full list (GET /orders, every order), {}, cache on",
            goals.name
        );
        println!("{title}");
        let mut sizes = options.sizes.clone();
        sizes.sort_unstable();
        sizes.dedup();
        let mut rows = Vec::new();
        let mut notes = Vec::new();
        let mut seeding_so_far = Duration::ZERO;
        for size in sizes {
            let mut at = SizeRun {
                run: self,
                backend,
                database_url,
                size,
                label: format!(
                    "scale-{}-{size}",
                    goals.name.to_ascii_lowercase().replace(' ', "-")
                ),
                rows: Vec::new(),
                notes: Vec::new(),
                peaks: Vec::new(),
            };
            println!("  at {} orders", thousands(size));
            seeding_so_far += at.seed(seeding_so_far).await?;
            at.cold().await?;
            at.on_one_server().await?;
            at.rss_note();
            rows.append(&mut at.rows);
            notes.append(&mut at.notes);
        }
        notes.push(format!(
            "every step on a server of its own under a fresh Redis key prefix; each request may take \
             {} s (a slow one is slow, not failed); bodies are counted as they stream in; sizes grow \
             by seeding, the writes in between add a few orders. MB are 10^6 bytes, GB 10^9",
            options.request_timeout.as_secs_f64()
        ));
        Ok(Section {
            title,
            rows,
            notes,
            wide: true,
        })
    }
}

impl SizeRun<'_, '_> {
    fn size_name(&self) -> String {
        format!("{} orders", thousands(self.size))
    }

    /// Step 1: seeds up to the size through `POST /admin/seed`; returns
    /// how long the seeding took.
    async fn seed(&mut self, before: Duration) -> Result<Duration, XtaskError> {
        let goal = goals(self.backend).seed_million;
        let (server, prefix) = self
            .run
            .fresh_server(&format!("{}-seed", self.label), self.database_url)
            .await?;
        let current = self.run.total_orders(&server).await?;
        let adding = self.size.saturating_sub(current);
        server.reset_peak_rss();
        let cpu_before = server.cpu_time();
        let mut calls = Sequential::default();
        let mut left = adding;
        while left > 0 {
            let chunk = left.min(domain::fake::MAX_SEED);
            let started = Instant::now();
            let outcome = self
                .run
                .admin(
                    &server,
                    "/admin/seed",
                    serde_json::json!({ "count": chunk }),
                    201,
                )
                .await;
            let error = outcome.as_ref().err().map(ToString::to_string);
            calls.record(SEED, started.elapsed(), error, 0);
            outcome?;
            left -= chunk;
        }
        let took = calls.result.elapsed;
        let cpu = server
            .cpu_time()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        let peak = server.peak_rss_kib();
        self.run.stop_fresh(server, &prefix).await;
        if adding == 0 {
            self.notes.push(format!(
                "{}: the table already held {} orders, nothing seeded",
                self.size_name(),
                thousands(current)
            ));
            return Ok(Duration::ZERO);
        }
        let row = Row::new(
            format!(
                "seed +{} orders to {} ({} calls)",
                thousands(adding),
                thousands(self.size),
                calls.result.requests()
            ),
            &calls.result,
            peak,
            cpu,
        );
        println!(
            "    seeded {} orders in {:.2} s",
            thousands(adding),
            took.as_secs_f64()
        );
        self.peaks.push(("seeding", row.peak_rss_mib));
        self.rows.push(row);
        let so_far = before + took;
        let rate = |orders: u64, time: Duration| {
            thousands((orders as f64 / time.as_secs_f64().max(1e-9)).round() as u64)
        };
        let at_goal = self.size == SEED_GOAL_SIZE;
        self.notes.push(format!(
            "{}: seeded +{} in {:.3} s ({} orders/s); from empty to {} in {:.3} s ({} orders/s) \
             (goal: 1,000,000 in under {} s, {} orders/s){}",
            self.size_name(),
            thousands(adding),
            took.as_secs_f64(),
            rate(adding, took),
            thousands(self.size),
            so_far.as_secs_f64(),
            rate(self.size, so_far),
            goal.as_secs(),
            rate(SEED_GOAL_SIZE, goal),
            verdict(at_goal, so_far < goal),
        ));
        Ok(took)
    }

    /// Step 2: the list from a server that has just started, each time a
    /// new one.
    async fn cold(&mut self) -> Result<(), XtaskError> {
        let goal_ms = goals(self.backend).cold_ms;
        let options = self.run.scale();
        let list = Call::get(workloads::LIST, "/orders");
        let mut requests = Sequential::default();
        let mut peak: Option<u64> = None;
        let mut cpu = Duration::ZERO;
        let mut cpu_known = true;
        let mut body = None;
        let mut wrong_totals = Vec::new();
        // The first list after the seed walks the tables (nothing is kept
        // in the database yet) and keeps it as its server stops; each
        // later fresh server loads what is kept, as a restarted or another
        // instance does.
        for run in 0..=options.cold_runs {
            let kind = if run == 0 { FIRST_LIST } else { COLD_LIST };
            let (server, prefix) = self
                .run
                .fresh_server(&format!("{}-cold", self.label), self.database_url)
                .await?;
            server.reset_peak_rss();
            let cpu_before = server.cpu_time();
            let started = Instant::now();
            let outcome = request_streamed(server.addr, &list, options.request_timeout).await;
            let elapsed = started.elapsed();
            match server.cpu_time().zip(cpu_before) {
                Some((after, before)) if run > 0 => cpu += after.saturating_sub(before),
                Some(_) => {}
                None => cpu_known = false,
            }
            peak = peak.max(server.peak_rss_kib());
            self.run.stop_fresh(server, &prefix).await;
            if let Ok(streamed) = &outcome
                && streamed.status == 200
            {
                let total = total_in_head(&streamed.head);
                if total != Some(self.size) {
                    wrong_totals.push(total);
                }
                body = Some(streamed.body_bytes);
            }
            if let Err(error) = &outcome {
                eprintln!("    cold GET /orders failed: {error}");
            }
            let (error, bytes) = list_outcome(&outcome, self.size);
            requests.record(kind, elapsed, error, bytes);
        }
        let first = requests.kind(FIRST_LIST);
        self.error_note("the first list after seeding", &first);
        self.notes.push(format!(
            "{}: the first full list after seeding (a walk of the tables, then kept in the \
             database as its server stops): {:.1} ms",
            self.size_name(),
            percentile_ms(&first.kinds[0].latencies_us, 1.0),
        ));
        if options.cold_runs == 0 {
            return Ok(());
        }
        let result = requests.kind(COLD_LIST);
        self.error_note("the cold list", &result);
        let row = Row::new(
            format!(
                "cold GET /orders, {}, a fresh server each time, the list kept in the database",
                self.size_name()
            ),
            &result,
            peak,
            cpu_known.then_some(cpu),
        )
        .with_body_rate(&result);
        let mut sorted = result.kinds[0].latencies_us.clone();
        sorted.sort_unstable();
        let median = percentile_ms(&sorted, 0.5);
        let max = percentile_ms(&sorted, 1.0);
        println!("    cold list: median {median:.1} ms, max {max:.1} ms");
        if let Some(bytes) = body {
            self.notes.push(format!(
                "{}: the full list is {:.1} MB ({:.0} bytes per order)",
                self.size_name(),
                bytes as f64 / 1e6,
                bytes as f64 / self.size.max(1) as f64
            ));
        }
        if !wrong_totals.is_empty() {
            self.notes.push(format!(
                "{}: cold lists gave total_orders {wrong_totals:?}, not {} (counted as errors)",
                self.size_name(),
                self.size
            ));
        }
        self.notes.push(format!(
            "{}: cold full list, time to the last byte over {} fresh servers: median {median:.1} ms, \
             max {max:.1} ms (goal at 100,000 orders: under {goal_ms:.0} ms){}",
            self.size_name(),
            options.cold_runs,
            verdict(
                self.size == GOAL_SIZE,
                max < goal_ms && result.errors() == 0
            ),
        ));
        self.peaks.push(("cold list", row.peak_rss_mib));
        self.rows.push(row);
        Ok(())
    }

    /// Steps 3 to 6 on one server.
    async fn on_one_server(&mut self) -> Result<(), XtaskError> {
        let (server, prefix) = self
            .run
            .fresh_server(&format!("{}-main", self.label), self.database_url)
            .await?;
        let outcome = self.on(&server).await;
        self.run.stop_fresh(server, &prefix).await;
        outcome
    }

    async fn on(&mut self, server: &ServerProcess) -> Result<(), XtaskError> {
        let options = self.run.scale().clone();
        let timeout = Some(options.request_timeout);
        let timing = Timing {
            warmup: self.run.options.warmup,
            duration: self.run.options.duration,
            request_timeout: timeout,
        };
        // The list cached once before anything is measured.
        let list = Call::get(workloads::LIST, "/orders");
        request_streamed(server.addr, &list, options.request_timeout)
            .await
            .map_err(|e| XtaskError::io("GET /orders", e))?;
        self.after_writes(server).await?;

        // Step 4: the cached list.
        let (cached, result) = self
            .run
            .measure_with(
                server,
                &format!(
                    "cached GET /orders, {}, {} connections",
                    self.size_name(),
                    options.connections
                ),
                options.connections,
                timing,
                |c| Repeat::new(workloads::LIST, Default::default(), c),
            )
            .await?;
        let cached = cached.with_body_rate(&result);
        self.error_note("the cached list", &result);
        let body_per_second = result.body_bytes() as f64 / result.elapsed.as_secs_f64().max(1e-9);
        let cores = cached.server_cpu_percent.map(|cpu| cpu / 100.0);
        let per_core = cores.map(|cores| body_per_second / 1e9 / cores.max(1e-9));
        self.notes.push(format!(
            "{}: cached full list, {} connections: {:.1} requests/s, {:.0} MB/s of body, server CPU \
             {} % of a core (generator {} %): {} GB/s of body per core of server CPU (goal at \
             100,000 orders: {GB_PER_CORE_GOAL:.0} GB/s or more){}",
            self.size_name(),
            options.connections,
            cached.requests_per_second,
            body_per_second / 1e6,
            percent(cached.server_cpu_percent),
            percent(cached.generator_cpu_percent),
            per_core.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}")),
            verdict(
                self.size == GOAL_SIZE,
                per_core.is_some_and(|v| v >= GB_PER_CORE_GOAL) && cached.errors == 0
            ),
        ));
        self.peaks.push(("cached list", cached.peak_rss_mib));
        self.rows.push(cached);

        // Step 5: writers alone, then beside readers.
        let writers = options.connections;
        let (alone, alone_result) = self
            .run
            .measure_with(
                server,
                &format!("writes alone, {} connections", writers),
                writers,
                timing,
                WriteCycle::new,
            )
            .await?;
        self.rows.extend(kind_rows(
            &format!("writes alone ({writers} connections)"),
            &alone_result,
            alone.peak_rss_mib,
        ));
        self.peaks.push(("writes alone", alone.peak_rss_mib));
        self.error_note("writes alone", &alone_result);
        let readers = options.readers;
        let (beside, beside_result) = self
            .run
            .measure_with(
                server,
                &format!("writes beside {readers} full-list readers"),
                writers + readers,
                timing,
                move |c| {
                    if c < writers {
                        OneOf::First(WriteCycle::new(c))
                    } else {
                        OneOf::Second(Repeat::new(workloads::LIST, Default::default(), c))
                    }
                },
            )
            .await?;
        self.rows.extend(kind_rows(
            &format!("writes ({writers} connections) beside {readers} full-list readers"),
            &beside_result,
            beside.peak_rss_mib,
        ));
        self.peaks
            .push(("writes beside readers", beside.peak_rss_mib));
        let (alone_p99, alone_errors, alone_total) = writes_summary(&alone_result);
        let (beside_p99, beside_errors, beside_total) = writes_summary(&beside_result);
        let ratio = beside_p99 / alone_p99.max(1e-9);
        let readers_list = beside_result.only(workloads::LIST);
        self.notes.push(format!(
            "{}: writes alone p99 {alone_p99:.1} ms, errors {alone_errors} (server CPU {} %); \
             beside {readers} connections listing flat out ({} lists, {} errors, p50 {:.0} ms) \
             p99 {beside_p99:.1} ms, errors {beside_errors} (server CPU {} %); p99 ratio \
             {ratio:.2}x (goal: 0 write errors, {WRITE_P99_RATIO_GOAL:.0}x or less){}",
            self.size_name(),
            percent(alone.server_cpu_percent),
            readers_list.requests(),
            readers_list.errors(),
            readers_list.percentile_ms(0.5),
            percent(beside.server_cpu_percent),
            verdict(
                true,
                alone_total == 0 && beside_total == 0 && ratio <= WRITE_P99_RATIO_GOAL
            ),
        ));

        // Step 6: the original's mixed scenario with its waits.
        let users = options.mixed_users;
        let mixed_timing = Timing {
            warmup: Duration::ZERO,
            duration: options.mixed_duration,
            request_timeout: timeout,
        };
        let (mixed, mixed_result) = self
            .run
            .measure_with(
                server,
                &format!("mixed with waits, {users} users"),
                users,
                mixed_timing,
                |c| Paced::new(Mixed::new(c), c, MIXED_WAIT.0, MIXED_WAIT.1),
            )
            .await?;
        self.rows.extend(kind_rows(
            &format!("mixed, {users} users with 1-3 s waits"),
            &mixed_result,
            mixed.peak_rss_mib,
        ));
        self.peaks.push(("mixed", mixed.peak_rss_mib));
        self.error_note("the mixed scenario", &mixed_result);
        let others: Vec<(&str, f64)> = mixed_result
            .kinds
            .iter()
            .filter(|kind| kind.kind != workloads::LIST)
            .map(|kind| (kind.kind, mixed_result.only(kind.kind).percentile_ms(0.99)))
            .collect();
        let all_fast = others.iter().all(|(_, p99)| *p99 < MIXED_P99_GOAL_MS);
        let others: Vec<String> = others
            .iter()
            .map(|(kind, p99)| format!("{kind} {p99:.1} ms"))
            .collect();
        let list_kind = mixed_result.only(workloads::LIST);
        self.notes.push(format!(
            "{}: mixed with waits, {users} users for {:.0} s: {} failures of {} requests (goal: 0); \
             full list p50 {:.1} ms, p99 {:.1} ms; p99 of the other kinds: {} (goal: each under \
             {MIXED_P99_GOAL_MS:.0} ms){}",
            self.size_name(),
            options.mixed_duration.as_secs_f64(),
            mixed_result.errors(),
            mixed_result.requests(),
            list_kind.percentile_ms(0.5),
            list_kind.percentile_ms(0.99),
            if others.is_empty() {
                "none made".to_owned()
            } else {
                others.join(", ")
            },
            verdict(true, mixed_result.errors() == 0 && all_fast),
        ));
        Ok(())
    }

    /// Step 3: one client, `POST /orders` and then the list, which must
    /// hold the new order.
    async fn after_writes(&mut self, server: &ServerProcess) -> Result<(), XtaskError> {
        let options = self.run.scale().clone();
        if options.write_runs == 0 {
            return Ok(());
        }
        let create = Call::get(workloads::CREATE, "/orders").with_body(
            Method::POST,
            serde_json::json!({
                "customer_name": "Bench",
                "items": [{ "name": "Pen", "quantity": 1 }],
            }),
            201,
        );
        let list = Call::get(workloads::LIST, "/orders");
        let mut expected = self.run.total_orders(server).await?;
        server.reset_peak_rss();
        let cpu_before = server.cpu_time();
        let mut requests = Sequential::default();
        let mut stale = 0;
        for _ in 0..options.write_runs {
            let started = Instant::now();
            let created = request_once(server.addr, &create, &[], options.request_timeout).await;
            let error = match &created {
                Ok((201, _)) => None,
                Ok((status, _)) => Some(format!("status {status}")),
                Err(error) => Some(io_cause(error)),
            };
            expected += u64::from(error.is_none());
            requests.record(workloads::CREATE, started.elapsed(), error, 0);
            let started = Instant::now();
            let outcome = request_streamed(server.addr, &list, options.request_timeout).await;
            let elapsed = started.elapsed();
            let (error, bytes) = list_outcome(&outcome, expected);
            stale += u64::from(error.as_deref() == Some(WRONG_TOTAL));
            requests.record(LIST_AFTER_WRITE, elapsed, error, bytes);
        }
        let cpu = server
            .cpu_time()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        let peak = server.peak_rss_kib();
        let writes = requests.kind(workloads::CREATE);
        let lists = requests.kind(LIST_AFTER_WRITE);
        self.error_note("write then list", &requests.result);
        let mut write_row = Row::new(
            format!(
                "one client: POST /orders, then the list ({} times)",
                options.write_runs
            ),
            &writes,
            None,
            None,
        );
        write_row.peak_rss_mib = kib_to_mib(peak);
        // The server's CPU over both kinds, over the list's time: nearly
        // all of it is the list's.
        let list_row = Row::new(
            format!(
                "one client: GET /orders right after each POST, {}",
                self.size_name()
            ),
            &lists,
            peak,
            cpu,
        )
        .with_body_rate(&lists);
        let median = list_row.p50_ms;
        let p99 = list_row.p99_ms;
        println!("    list after a write: median {median:.1} ms, p99 {p99:.1} ms");
        self.notes.push(format!(
            "{}: full list right after a write, {} times: median {median:.1} ms, p99 {p99:.1} ms (of \
             {} the p99 is the max){} (goal at 100,000 orders: under {AFTER_WRITE_GOAL_MS:.0} ms){}",
            self.size_name(),
            options.write_runs,
            options.write_runs,
            if stale > 0 {
                format!("; {stale} lists without the order just created (errors)")
            } else {
                String::new()
            },
            verdict(
                self.size == GOAL_SIZE,
                p99 < AFTER_WRITE_GOAL_MS && lists.errors() == 0 && writes.errors() == 0
            ),
        ));
        self.peaks
            .push(("list after a write", list_row.peak_rss_mib));
        self.rows.push(write_row);
        self.rows.push(list_row);
        Ok(())
    }

    /// What the errors of a step were, when it had any.
    fn error_note(&mut self, step: &str, result: &DriveResult) {
        if result.errors() > 0 {
            self.notes.push(format!(
                "{}: {step} had {} errors: {}",
                self.size_name(),
                result.errors(),
                result.error_causes()
            ));
        }
    }

    /// Step 7: the peaks of every step against the goal.
    fn rss_note(&mut self) {
        let known: Vec<f64> = self.peaks.iter().filter_map(|(_, mib)| *mib).collect();
        let highest = known.iter().copied().fold(None, |max: Option<f64>, v| {
            Some(max.map_or(v, |max| max.max(v)))
        });
        let steps: Vec<String> = self
            .peaks
            .iter()
            .map(|(step, peak)| format!("{step} {}", mib(*peak)))
            .collect();
        self.notes.push(format!(
            "{}: server peak RSS per step (MiB): {}; highest {} MiB (goal: under \
             {RSS_GOAL_MIB:.0} MiB){}",
            self.size_name(),
            steps.join(", "),
            mib(highest),
            verdict(
                highest.is_some(),
                highest.is_some_and(|mib| mib < RSS_GOAL_MIB)
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn total_orders_is_read_from_the_first_bytes() {
        assert_eq!(
            total_in_head(br#"{"total_orders":100020,"orders":[{"order_id""#),
            Some(100_020)
        );
        assert_eq!(total_in_head(br#"{"total_orders": 7,"#), Some(7));
        assert_eq!(total_in_head(br#"{"orders":[]}"#), None);
    }

    #[test]
    fn sequential_requests_add_up_their_own_time() {
        let mut requests = Sequential::default();
        requests.record(COLD_LIST, Duration::from_millis(100), None, 10);
        requests.record(
            COLD_LIST,
            Duration::from_millis(300),
            Some("status 503".into()),
            30,
        );
        requests.record(SEED, Duration::from_millis(600), None, 0);
        let cold = requests.kind(COLD_LIST);
        assert_eq!(cold.elapsed, Duration::from_millis(400));
        assert_eq!(
            (cold.requests(), cold.errors(), cold.body_bytes()),
            (2, 1, 40)
        );
        assert_eq!(cold.percentile_ms(1.0), 300.0);
    }
}
