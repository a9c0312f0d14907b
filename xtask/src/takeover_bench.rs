//! `cargo xtask bench-takeover`: how long `server migrate-original --apply`
//! takes on a database of the original's holding N orders (1 to 5 items
//! each), and its peak RSS. The fixture is written in the original's own
//! tables (as its models create them, ORIGINAL-SCHEMA.md) in a throwaway SQLite file and a throwaway
//! MariaDB database; the release server migrates it as a child process.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection};
use domain::fake::{CUSTOMERS, PRODUCTS, STATUSES};
use rand::Rng;
use storage::original::{ORIGINAL_MYSQL_DDL, ORIGINAL_SQLITE_DDL};

use crate::bench::Backend;
use crate::error::XtaskError;
use crate::mysql_admin::ScratchDatabase;
use crate::scratch::{TempDir, unique_suffix};

/// Orders per INSERT while building the fixture.
const FIXTURE_CHUNK: u64 = 2_000;

/// The original's seeder's names, items and statuses.
#[derive(Debug, Clone)]
pub struct TakeoverOptions {
    pub orders: u64,
    pub backends: Vec<Backend>,
    /// `mysql://user[:pass]@host:port`, no database.
    pub mysql_server: String,
    /// The server binary that migrates (the release build by default).
    pub server: std::path::PathBuf,
}

#[derive(Debug, Clone)]
pub struct TakeoverRun {
    pub backend: Backend,
    pub orders: u64,
    pub items: u64,
    pub fixture: Duration,
    pub migration: Duration,
    pub peak_rss_kib: u64,
}

/// The original's rows as SQL text, a chunk of orders at a time: the
/// statements and how many items they hold.
fn fixture_chunk(rng: &mut impl Rng, count: u64) -> (String, u64) {
    let mut orders = String::from("INSERT INTO orders (id, customer_name, status) VALUES ");
    let mut items = String::from("INSERT INTO order_items (item_name, quantity, order_id) VALUES ");
    let mut item_count = 0;
    for i in 0..count {
        // str(uuid.uuid4()), as the original made them.
        let id = uuid_v4(rng.random());
        if i > 0 {
            orders.push(',');
        }
        let _ = write!(
            orders,
            "('{id}','{}','{}')",
            CUSTOMERS[rng.random_range(0..CUSTOMERS.len())],
            STATUSES[rng.random_range(0..STATUSES.len())].as_str()
        );
        for _ in 0..rng.random_range(1..=5) {
            if item_count > 0 {
                items.push(',');
            }
            let _ = write!(
                items,
                "('{}',{},'{id}')",
                PRODUCTS[rng.random_range(0..PRODUCTS.len())],
                rng.random_range(1..=5)
            );
            item_count += 1;
        }
    }
    (format!("{orders};{items};"), item_count)
}

fn uuid_v4(bits: u128) -> String {
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

async fn build_fixture(backend: Backend, url: &str, orders: u64) -> Result<u64, XtaskError> {
    let mut rng = rand::rng();
    let mut items = 0;
    match backend {
        Backend::Sqlite => {
            let path = url.strip_prefix("sqlite:///").unwrap_or(url);
            let mut conn = <diesel::SqliteConnection as diesel::Connection>::establish(path)
                .map_err(|e| XtaskError::Failed(format!("opening {path}: {e}")))?;
            let sqlite = |conn: &mut diesel::SqliteConnection, sql: &str| {
                conn.batch_execute(sql)
                    .map_err(|e| XtaskError::Failed(format!("building the SQLite fixture: {e}")))
            };
            sqlite(
                &mut conn,
                &format!("PRAGMA foreign_keys = OFF; {ORIGINAL_SQLITE_DDL} BEGIN;"),
            )?;
            let mut made = 0;
            while made < orders {
                let count = FIXTURE_CHUNK.min(orders - made);
                let (sql, chunk_items) = fixture_chunk(&mut rng, count);
                sqlite(&mut conn, &sql)?;
                made += count;
                items += chunk_items;
            }
            sqlite(&mut conn, "COMMIT;")?;
        }
        Backend::Mysql => {
            let fail =
                |e: diesel::result::Error| XtaskError::Mysql(format!("building the fixture: {e}"));
            let mut conn = AsyncMysqlConnection::establish(url)
                .await
                .map_err(|e| XtaskError::Mysql(format!("connecting to {url}: {e}")))?;
            conn.batch_execute(ORIGINAL_MYSQL_DDL).await.map_err(fail)?;
            let mut made = 0;
            while made < orders {
                let count = FIXTURE_CHUNK.min(orders - made);
                let (sql, chunk_items) = fixture_chunk(&mut rng, count);
                conn.batch_execute(&sql).await.map_err(fail)?;
                made += count;
                items += chunk_items;
            }
        }
    }
    Ok(items)
}

/// Runs `server migrate-original --apply`, sampling its peak RSS (`VmHWM`)
/// until it exits.
fn migrate(
    server: &Path,
    workdir: &Path,
    url: &str,
) -> Result<(Duration, u64, String), XtaskError> {
    let started = Instant::now();
    let mut child = Command::new(server)
        .args(["migrate-original", "--apply"])
        .current_dir(workdir)
        .env("DATABASE_URL", url)
        .env("CACHE_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| XtaskError::io(format!("starting {}", server.display()), e))?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(hwm) = status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        {
            peak = peak.max(hwm);
        }
        if let Some(status) = child
            .try_wait()
            .map_err(|e| XtaskError::io("waiting for the migration", e))?
        {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut out, &mut stdout);
    }
    if !status.success() {
        return Err(XtaskError::Failed(format!(
            "server migrate-original --apply: {status}\n{stdout}"
        )));
    }
    Ok((elapsed, peak, stdout))
}

pub async fn run(options: &TakeoverOptions) -> Result<Vec<TakeoverRun>, XtaskError> {
    let mut runs = Vec::new();
    for &backend in &options.backends {
        let dir = TempDir::new("takeover-bench")?;
        let scratch = match backend {
            Backend::Sqlite => None,
            Backend::Mysql => Some(
                ScratchDatabase::create(
                    &options.mysql_server,
                    &format!("takeover_bench_{}", unique_suffix()),
                )
                .await?,
            ),
        };
        let url = scratch
            .as_ref()
            .map_or_else(|| dir.sqlite_url("database.db"), ScratchDatabase::url);
        println!(
            "{backend:?}: writing {} orders in the original's tables",
            options.orders
        );
        let started = Instant::now();
        let items = build_fixture(backend, &url, options.orders).await?;
        let fixture = started.elapsed();
        println!("{backend:?}: migrating");
        let (migration, peak_rss_kib, stdout) = migrate(&options.server, dir.path(), &url)?;
        let expected = format!("Migrated {} orders and {items} items", options.orders);
        if !stdout.contains(&expected) {
            return Err(XtaskError::Failed(format!(
                "expected \"{expected}\" from the migration, got:\n{stdout}"
            )));
        }
        runs.push(TakeoverRun {
            backend,
            orders: options.orders,
            items,
            fixture,
            migration,
            peak_rss_kib,
        });
        if let Some(scratch) = scratch {
            scratch.drop_database().await?;
        }
    }
    Ok(runs)
}

pub fn markdown(runs: &[TakeoverRun]) -> String {
    let mut out = String::from(
        "| backend | orders | items | migration s | orders/s | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for run in runs {
        let _ = writeln!(
            out,
            "| {:?} | {} | {} | {:.1} | {:.0} | {:.1} |",
            run.backend,
            run.orders,
            run.items,
            run.migration.as_secs_f64(),
            run.orders as f64 / run.migration.as_secs_f64(),
            run.peak_rss_kib as f64 / 1024.0
        );
    }
    out
}
