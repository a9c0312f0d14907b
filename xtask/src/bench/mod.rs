//! `cargo xtask bench`: the release server as a child process on a
//! throwaway database, driven at full speed, one workload at a time.

pub mod driver;
pub mod keys;
pub mod report;
pub mod scale;
pub mod server;
pub mod workloads;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use domain::OrderId;
use hyper::Method;

use crate::contract;
use crate::error::XtaskError;
use crate::mysql_admin::ScratchDatabase;
use crate::scratch::{TempDir, unique_suffix};
use driver::{Call, Conversation, DriveResult, drive_with, request_once};
use report::{BenchReport, Machine, Row, Section};
pub use scale::ScaleOptions;
use server::{ServerCommand, ServerProcess};
use workloads::{Mixed, PageWalk, Repeat};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Every workload on SQLite, cache on.
    Sqlite,
    /// Every workload on MariaDB, cache on.
    Mysql,
    /// A keyset page with the cache off at growing table sizes.
    Cold,
    /// The full list (every order) at 1,000 to 1,000,000 orders, and
    /// writes and the waited mixed scenario beside it. Not in the default
    /// run: it takes many minutes at 1,000,000.
    Scale,
    /// A cached detail with API_KEY_REQUIRED=all and a valid key against
    /// none, on SQLite, with the database checkouts each run made.
    Keys,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Sqlite,
    Mysql,
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub parts: Vec<Part>,
    pub duration: Duration,
    /// Run, unmeasured, before each measurement: fills the cache and the
    /// connection pools, as a service that has been up a while has them.
    pub warmup: Duration,
    pub connections: usize,
    /// The mixed scenario's users (32, as the original was measured).
    pub mixed_users: usize,
    pub cold_sizes: Vec<u64>,
    pub cold_backends: Vec<Backend>,
    /// The scale part's sizes, backends and loads.
    pub scale: ScaleOptions,
    pub redis_url: String,
    /// `mysql://user[:pass]@host:port`, no database.
    pub mysql_server: String,
    /// A server to start as it is; otherwise the release build.
    pub server_command: Option<ServerCommand>,
    /// The ceiling (plain actix-web, `xtask/ceiling`) to measure beside a
    /// given `server_command`; with the release build, its release build.
    /// Started with the file of bytes to send as a last argument.
    pub ceiling_command: Option<ServerCommand>,
    pub output_dir: PathBuf,
}

/// The workspace root: xtask's parent directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `cargo build --release -p server -p ceiling`, and where it put the
/// server's binary and the ceiling's.
pub fn build_release() -> Result<(PathBuf, PathBuf), XtaskError> {
    const ARGS: [&str; 6] = ["build", "--release", "-p", "server", "-p", "ceiling"];
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(ARGS)
        .current_dir(&root)
        .status()
        .map_err(|e| XtaskError::io(format!("running cargo {}", ARGS.join(" ")), e))?;
    if !status.success() {
        return Err(XtaskError::Failed(format!(
            "cargo {}: {status}",
            ARGS.join(" ")
        )));
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let release = target.join("release");
    Ok((release.join("server"), release.join("ceiling")))
}

const GENERATOR: &str = "one thread (a current-thread tokio runtime) driving keep-alive HTTP/1.1 \
connections with hyper, each sending its next request as soon as the last response's body is read \
(no waits); it never uses more than one core. The server (RUST_LOG=warn, so no access log) runs \
with its default workers and shares the machine's cores with it, so these are lower bounds of what \
the server does on a machine of its own. The CPU columns (percent of one core) say which side was \
the limit: a generator near 100% means the server had room to spare.";

fn shown(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".into(), |v| format!("{v:.0}"))
}

fn rss_note(peak_kib: u64) -> String {
    format!(
        "server peak RSS over the whole run, seeding included: {:.1} MiB (goal: under 64 MiB)",
        peak_kib as f64 / 1024.0
    )
}

/// How long one measurement warms up and runs, and how long each of its
/// requests may take (`None`: until 5 s after the end).
#[derive(Debug, Clone, Copy)]
struct Timing {
    warmup: Duration,
    duration: Duration,
    request_timeout: Option<Duration>,
}

/// Everything one server run needs besides its database.
struct Run<'a> {
    options: &'a BenchOptions,
    server: &'a ServerCommand,
    workdir: &'a Path,
    admin_password: String,
    key_prefix: String,
}

impl Run<'_> {
    async fn start(
        &self,
        label: &str,
        database_url: &str,
        cache: bool,
    ) -> Result<ServerProcess, XtaskError> {
        self.start_with_prefix(label, database_url, cache, &self.key_prefix)
            .await
    }

    /// [`Self::start`] under the Redis key prefix `key_prefix`.
    async fn start_with_prefix(
        &self,
        label: &str,
        database_url: &str,
        cache: bool,
        key_prefix: &str,
    ) -> Result<ServerProcess, XtaskError> {
        self.start_with_env(label, database_url, cache, key_prefix, &[])
            .await
    }

    /// [`Self::start_with_prefix`] with more variables.
    async fn start_with_env(
        &self,
        label: &str,
        database_url: &str,
        cache: bool,
        key_prefix: &str,
        extra: &[(&'static str, String)],
    ) -> Result<ServerProcess, XtaskError> {
        let mut env = vec![
            ("DATABASE_URL", database_url.to_owned()),
            ("REDIS_URL", self.options.redis_url.clone()),
            ("CACHE_KEY_PREFIX", key_prefix.to_owned()),
            ("ADMIN_PASSWORD", self.admin_password.clone()),
            ("RUST_LOG", "warn".to_owned()),
        ];
        if !cache {
            env.push(("CACHE_DISABLED", "true".to_owned()));
        }
        env.extend(extra.iter().cloned());
        let log = self.options.output_dir.join(format!("server-{label}.log"));
        std::fs::create_dir_all(&self.options.output_dir).map_err(|e| {
            XtaskError::io(format!("creating {}", self.options.output_dir.display()), e)
        })?;
        ServerProcess::start(self.server, self.workdir, &env, log).await
    }

    async fn admin(
        &self,
        server: &ServerProcess,
        path: &str,
        body: serde_json::Value,
        expected: u16,
    ) -> Result<(), XtaskError> {
        let call = Call::get("admin", path).with_body(Method::POST, body, expected);
        let (status, body) = request_once(
            server.addr,
            &call,
            &[("x-admin-password", &self.admin_password)],
            Duration::from_secs(600),
        )
        .await
        .map_err(|e| XtaskError::io(format!("POST {path}"), e))?;
        if status != expected {
            return Err(XtaskError::Failed(format!(
                "POST {path}: {status} {}",
                String::from_utf8_lossy(&body)
            )));
        }
        Ok(())
    }

    /// Adds `count` orders through `POST /admin/seed` (at most 100,000 a
    /// call); returns how long it took.
    async fn seed(&self, server: &ServerProcess, mut count: u64) -> Result<Duration, XtaskError> {
        let started = Instant::now();
        while count > 0 {
            let chunk = count.min(domain::fake::MAX_SEED);
            self.admin(
                server,
                "/admin/seed",
                serde_json::json!({ "count": chunk }),
                201,
            )
            .await?;
            count -= chunk;
        }
        Ok(started.elapsed())
    }

    /// Back to exactly 1,000 seeded orders; returns their ids.
    async fn fresh_thousand(
        &self,
        server: &ServerProcess,
    ) -> Result<Arc<Vec<OrderId>>, XtaskError> {
        self.admin(server, "/admin/reset", serde_json::json!({}), 200)
            .await?;
        self.seed(server, 1000).await?;
        let call = Call::get("ids", "/orders?limit=1000");
        let (status, body) = request_once(server.addr, &call, &[], Duration::from_secs(30))
            .await
            .map_err(|e| XtaskError::io("GET /orders?limit=1000", e))?;
        let (orders, _) = contract::expect_status(status, 200)
            .and_then(|()| contract::page(&body, 1000))
            .map_err(|e| XtaskError::Failed(format!("listing the seeded orders: {e}")))?;
        if orders.len() != 1000 {
            return Err(XtaskError::Failed(format!(
                "seeded 1000 orders, listed {}",
                orders.len()
            )));
        }
        Ok(Arc::new(orders.into_iter().map(|order| order.id).collect()))
    }

    /// Warms up, then measures one workload; the row carries the server's
    /// peak RSS during it.
    async fn measure<C, F>(
        &self,
        server: &ServerProcess,
        workload: &str,
        connections: usize,
        make: F,
    ) -> Result<(Row, DriveResult), XtaskError>
    where
        C: Conversation,
        F: Fn(usize) -> C + Send + Clone + 'static,
    {
        let timing = Timing {
            warmup: self.options.warmup,
            duration: self.options.duration,
            request_timeout: None,
        };
        self.measure_with(server, workload, connections, timing, make)
            .await
    }

    /// [`Self::measure`] with its own warm-up, duration and request time
    /// limit.
    async fn measure_with<C, F>(
        &self,
        server: &ServerProcess,
        workload: &str,
        connections: usize,
        timing: Timing,
        make: F,
    ) -> Result<(Row, DriveResult), XtaskError>
    where
        C: Conversation,
        F: Fn(usize) -> C + Send + Clone + 'static,
    {
        let peak_per_workload = server.reset_peak_rss();
        if !timing.warmup.is_zero() {
            drive_with(
                server.addr,
                connections,
                timing.warmup,
                timing.request_timeout,
                make.clone(),
            )
            .await
            .map_err(|e| XtaskError::io(format!("warming up {workload}"), e))?;
        }
        let cpu_before = server.cpu_time();
        let result = drive_with(
            server.addr,
            connections,
            timing.duration,
            timing.request_timeout,
            make,
        )
        .await
        .map_err(|e| XtaskError::io(format!("driving {workload}"), e))?;
        let server_cpu = server
            .cpu_time()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        let mut row = Row::new(workload, &result, server.peak_rss_kib(), server_cpu);
        if !peak_per_workload {
            row.workload.push_str(" (RSS: peak since start)");
        }
        println!(
            "  {:<40} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}  peak RSS {} MiB  CPU server {}% generator {}%",
            row.workload,
            row.requests_per_second,
            row.p50_ms,
            row.p99_ms,
            row.errors,
            shown(row.peak_rss_mib),
            shown(row.server_cpu_percent),
            shown(row.generator_cpu_percent),
        );
        Ok((row, result))
    }

    /// The cached workloads on one database; with a `ceiling`, plain
    /// actix-web sending the same list bytes, measured right after the
    /// server's list so that both see the machine in the same state.
    async fn cached_section(
        &self,
        title: &str,
        label: &str,
        database_url: &str,
        ceiling: Option<&ServerCommand>,
    ) -> Result<Section, XtaskError> {
        println!("{title}");
        let server = self.start(label, database_url, true).await?;
        let connections = self.options.connections;
        let mut rows = Vec::new();
        let mut notes = Vec::new();

        let (healthz, _) = self
            .measure(&server, "GET /healthz", connections, |_| {
                Repeat::new(workloads::HEALTHZ, Arc::default(), 0)
            })
            .await?;
        let ids = self.fresh_thousand(&server).await?;
        let detail_ids = ids.clone();
        let (detail, _) = self
            .measure(&server, "cached GET /orders/{id}", connections, move |c| {
                Repeat::new(workloads::DETAIL, detail_ids.clone(), c)
            })
            .await?;
        let detail_ids = ids.clone();
        let (detail_browser, _) = self
            .measure(
                &server,
                "cached GET /orders/{id}, browser Accept-Encoding",
                connections,
                move |c| Repeat::new(workloads::DETAIL_BROWSER, detail_ids.clone(), c),
            )
            .await?;
        let (list, _) = self
            .measure(
                &server,
                "cached GET /orders (1,000 orders)",
                connections,
                |c| Repeat::new(workloads::LIST, Arc::default(), c),
            )
            .await?;
        let ceiling_rows = match ceiling {
            Some(ceiling) => {
                let list_body = self.list_body(&server).await?;
                Some(self.ceiling_rows(label, ceiling, &list_body).await?)
            }
            None => None,
        };
        let (list_gzip, _) = self
            .measure(
                &server,
                "cached GET /orders (1,000 orders), gzip",
                connections,
                |c| Repeat::new(workloads::LIST_GZIP, Arc::default(), c),
            )
            .await?;
        let (create, _) = self
            .measure(&server, "POST /orders", connections, |c| {
                Repeat::new(workloads::CREATE, Arc::default(), c)
            })
            .await?;
        // Creating added orders; the status changes and the mixed scenario
        // start again from the original's 1,000.
        let ids = self.fresh_thousand(&server).await?;
        let (status, _) = self
            .measure(
                &server,
                "PATCH /orders/{id}/status",
                connections,
                move |c| Repeat::new(workloads::STATUS, ids.clone(), c),
            )
            .await?;
        self.fresh_thousand(&server).await?;
        let mixed_title = format!(
            "mixed scenario, no waits ({} users)",
            self.options.mixed_users
        );
        let (mixed, mixed_kinds) = self
            .measure(&server, &mixed_title, self.options.mixed_users, Mixed::new)
            .await?;
        let lifetime_peak = server.lifetime_peak_rss_kib();
        server.stop();

        let share =
            |row: &Row| 100.0 * row.requests_per_second / healthz.requests_per_second.max(1e-9);
        notes.push(format!(
            "cached detail at {:.0}% of /healthz requests/s (goal: 60% or more)",
            share(&detail)
        ));
        notes.push(format!(
            "cached list at {:.0}% of /healthz requests/s (goal: 25% or more); {:.0}% asked with Accept-Encoding: gzip",
            share(&list),
            share(&list_gzip)
        ));
        notes.push(format!(
            "mixed: {:.0} requests/s, p99 {:.1} ms (goal on MariaDB: 1,100 requests/s or more, p99 under 50 ms)",
            mixed.requests_per_second, mixed.p99_ms
        ));
        notes.push(format!("mixed by request kind: {}", mixed_kinds.by_kind()));
        if let Some([trivial, bytes]) = &ceiling_rows {
            notes.push(format!(
                "plain actix-web sends the same list bytes from memory at {:.0}% of its trivial \
                 handler's requests/s; the server's cached list is at {:.0}% of its rate",
                100.0 * bytes.requests_per_second / trivial.requests_per_second.max(1e-9),
                100.0 * list.requests_per_second / bytes.requests_per_second.max(1e-9),
            ));
        }
        notes.extend(lifetime_peak.map(rss_note));
        rows.extend([healthz, detail, detail_browser, list]);
        rows.extend(ceiling_rows.into_iter().flatten());
        rows.extend([list_gzip, create, status, mixed]);
        Ok(Section {
            title: title.to_owned(),
            rows,
            notes,
            wide: false,
        })
    }

    /// `GET /orders` as the cached list workload received it.
    async fn list_body(&self, server: &ServerProcess) -> Result<Bytes, XtaskError> {
        let call = Call::get(workloads::LIST, "/orders");
        let (status, body) = request_once(server.addr, &call, &[], Duration::from_secs(30))
            .await
            .map_err(|e| XtaskError::io("GET /orders", e))?;
        contract::expect_status(status, 200)
            .map_err(|e| XtaskError::Failed(format!("reading the list: {e}")))?;
        Ok(body)
    }

    /// The ceiling (`xtask/ceiling`: plain actix-web, no handler or
    /// middleware of ours) on its trivial handler and on `list_body` from
    /// memory: what the framework with its defaults reaches on this
    /// machine.
    async fn ceiling_rows(
        &self,
        label: &str,
        command: &ServerCommand,
        list_body: &Bytes,
    ) -> Result<[Row; 2], XtaskError> {
        let file = self.workdir.join(format!("list-{label}.json"));
        std::fs::write(&file, list_body)
            .map_err(|e| XtaskError::io(format!("writing {}", file.display()), e))?;
        let mut command = command.clone();
        command.args.push(file.display().to_string());
        let log = self.options.output_dir.join(format!("ceiling-{label}.log"));
        let ceiling = ServerProcess::start(&command, self.workdir, &[], log).await?;
        let connections = self.options.connections;
        let (trivial, _) = self
            .measure(
                &ceiling,
                "plain actix-web: trivial handler",
                connections,
                |_| Repeat::new(workloads::HEALTHZ, Arc::default(), 0),
            )
            .await?;
        let (bytes, _) = self
            .measure(
                &ceiling,
                "plain actix-web: the same list bytes",
                connections,
                |c| Repeat::new(workloads::CEILING_BODY, Arc::default(), c),
            )
            .await?;
        ceiling.stop();
        Ok([trivial, bytes])
    }

    /// The cost of a keyset page with the cache off as the table grows.
    async fn cold_section(
        &self,
        title: &str,
        label: &str,
        database_url: &str,
    ) -> Result<Section, XtaskError> {
        println!("{title}");
        let server = self.start(label, database_url, false).await?;
        let mut rows: Vec<Row> = Vec::new();
        let mut notes = Vec::new();
        let mut seeded = 0;
        // Seeding is measured too: 100,000 orders in one transaction is
        // the server's heaviest request.
        for &size in &self.options.cold_sizes {
            let adding = size.saturating_sub(seeded);
            let took = self.seed(&server, adding).await?;
            seeded = size;
            notes.push(format!(
                "seeded {adding} orders through POST /admin/seed in {:.2} s ({:.0} orders/s)",
                took.as_secs_f64(),
                adding as f64 / took.as_secs_f64().max(1e-9)
            ));
            let workload = format!("{} at {size} orders", workloads::PAGE);
            let (row, _) = self
                .measure(&server, &workload, self.options.connections, |_| {
                    PageWalk::new()
                })
                .await?;
            rows.push(row);
        }
        notes.extend(server.lifetime_peak_rss_kib().map(rss_note));
        server.stop();
        if let (Some(first), Some(last)) = (rows.first(), rows.last())
            && rows.len() > 1
        {
            notes.push(format!(
                "p50 at the largest size is {:.2}x the smallest's (goal: 1.5x or less); requests/s {:.2}x",
                last.p50_ms / first.p50_ms.max(1e-9),
                last.requests_per_second / first.requests_per_second.max(1e-9)
            ));
        }
        notes.push("each connection walks the pages with next_cursor from the first to the last and round again".to_owned());
        Ok(Section {
            title: title.to_owned(),
            rows,
            notes,
            wide: false,
        })
    }
}

pub async fn run(options: &BenchOptions) -> Result<BenchReport, XtaskError> {
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    // The server starts in a temp directory: a relative path would resolve
    // there.
    let absolute = |command: &ServerCommand| -> Result<ServerCommand, XtaskError> {
        Ok(ServerCommand {
            program: std::path::absolute(&command.program).map_err(|e| {
                XtaskError::io(format!("resolving {}", command.program.display()), e)
            })?,
            args: command.args.clone(),
        })
    };
    let (server, ceiling) = match &options.server_command {
        Some(command) => (
            absolute(command)?,
            options.ceiling_command.as_ref().map(absolute).transpose()?,
        ),
        None => {
            let (server, ceiling) = build_release()?;
            (
                ServerCommand::bare(server),
                Some(ServerCommand::bare(ceiling)),
            )
        }
    };
    let workdir = TempDir::new("orders-bench")?;
    let run = Run {
        options,
        server: &server,
        workdir: workdir.path(),
        admin_password: format!("bench-{}", unique_suffix()),
        key_prefix: format!("bench-{}:", unique_suffix()),
    };
    let mut sections = Vec::new();

    if options.parts.contains(&Part::Sqlite) {
        sections.push(
            run.cached_section(
                "SQLite, cache on, 1,000 orders",
                "sqlite",
                &workdir.sqlite_url("bench.db"),
                ceiling.as_ref(),
            )
            .await?,
        );
    }
    if options.parts.contains(&Part::Mysql) {
        let database = ScratchDatabase::create(&options.mysql_server, "orders_bench").await?;
        let section = run
            .cached_section(
                "MariaDB, cache on, 1,000 orders",
                "mysql",
                &database.url(),
                ceiling.as_ref(),
            )
            .await;
        database.drop_database().await?;
        sections.push(section?);
    }
    if options.parts.contains(&Part::Cold) {
        for backend in &options.cold_backends {
            match backend {
                Backend::Sqlite => {
                    sections.push(
                        run.cold_section(
                            "Cold keyset page, SQLite, cache off",
                            "cold-sqlite",
                            &workdir.sqlite_url("cold.db"),
                        )
                        .await?,
                    );
                }
                Backend::Mysql => {
                    let database =
                        ScratchDatabase::create(&options.mysql_server, "orders_bench_cold").await?;
                    let section = run
                        .cold_section(
                            "Cold keyset page, MariaDB, cache off",
                            "cold-mysql",
                            &database.url(),
                        )
                        .await;
                    database.drop_database().await?;
                    sections.push(section?);
                }
            }
        }
    }
    if options.parts.contains(&Part::Scale) {
        for &backend in &options.scale.backends {
            match backend {
                Backend::Sqlite => {
                    sections.push(
                        run.scale_section(backend, &workdir.sqlite_url("scale.db"))
                            .await?,
                    );
                }
                Backend::Mysql => {
                    let database =
                        ScratchDatabase::create(&options.mysql_server, "orders_bench_scale")
                            .await?;
                    let section = run.scale_section(backend, &database.url()).await;
                    database.drop_database().await?;
                    sections.push(section?);
                }
            }
        }
    }
    if options.parts.contains(&Part::Keys) {
        sections.push(
            run.keys_section(
                "API keys, cached GET /orders/{id}, SQLite",
                &workdir.sqlite_url("keys.db"),
            )
            .await?,
        );
    }
    // The cached runs' keys; they would expire, but the version counters
    // would not. Failing to remove them spoils no measurement.
    if let Err(error) =
        crate::redis_reset::delete_prefixed(&options.redis_url, &run.key_prefix).await
    {
        eprintln!(
            "warning: could not remove the bench's Redis keys ({}*): {error}",
            run.key_prefix
        );
    }

    Ok(BenchReport {
        started_at,
        machine: Machine::this(),
        generator: GENERATOR.to_owned(),
        server: format!("{} {}", server.program.display(), server.args.join(" "))
            .trim_end()
            .to_owned(),
        seconds_per_workload: options.duration.as_secs_f64(),
        connections: options.connections,
        sections,
    })
}
