//! Taking over a database of the original service (`server migrate-original`)
//! and giving it back, on real SQLite files and per-test MariaDB databases
//! built from the original's own DDL (ORIGINAL-SCHEMA.md).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{MysqlDatabase, Options, TestApp, service_available, unique};

const SERVER: &str = env!("CARGO_BIN_EXE_server");

/// Exactly as the original's SQLAlchemy models create them.
const ORIGINAL_SQLITE: &str = "CREATE TABLE orders (
	id VARCHAR(36) NOT NULL, 
	customer_name VARCHAR(80) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE order_items (
	id INTEGER NOT NULL, 
	item_name VARCHAR(80) NOT NULL, 
	quantity INTEGER NOT NULL, 
	order_id VARCHAR(36) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(order_id) REFERENCES orders (id)
);";

const ORIGINAL_MYSQL: &str = "CREATE TABLE `orders` (
  `id` varchar(36) NOT NULL,
  `customer_name` varchar(80) NOT NULL,
  `status` varchar(20) NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
CREATE TABLE `order_items` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `item_name` varchar(80) NOT NULL,
  `quantity` int(11) NOT NULL,
  `order_id` varchar(36) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `order_id` (`order_id`),
  CONSTRAINT `order_items_ibfk_1` FOREIGN KEY (`order_id`) REFERENCES `orders` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;";

/// Every decision flag: what the quirks fixture needs.
const ALL_DECISIONS: &[&str] = &[
    "--normalize-ids",
    "--bad-ids=reassign",
    "--fill-blank-names=(no name)",
    "--truncate-long-names",
    "--trim-names",
    "--map-status-variants",
    "--map-status=on the truck, finally!!=shipped",
    "--unknown-status=cancelled",
    "--empty-orders=keep",
    "--clamp-quantities",
    "--drop-orphan-items",
];

/// An order as the original stored it, and as it must read back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    id: String,
    customer_name: String,
    status: String,
    items: Vec<(String, i64)>,
}

fn row(id: &str, name: &str, status: &str, items: &[(&str, i64)]) -> Row {
    Row {
        id: id.to_owned(),
        customer_name: name.to_owned(),
        status: status.to_owned(),
        items: items.iter().map(|(n, q)| ((*n).to_owned(), *q)).collect(),
    }
}

/// Random-looking version 4 UUIDs, reproducible.
fn uuid4(seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (a, b) = (next(), next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// `n` plain orders of 1 to 5 items.
fn plain(n: u64) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            id: uuid4(i),
            customer_name: format!("Customer {i}"),
            status: [
                "received",
                "processing",
                "shipped",
                "delivered",
                "cancelled",
            ][(i % 5) as usize]
                .to_owned(),
            items: (0..=(i % 5))
                .map(|j| (format!("Item {j} of {i}"), (j + 1) as i64))
                .collect(),
        })
        .collect()
}

/// One of every quirk ORIGINAL-SCHEMA.md lists (the ones `mysql` can hold
/// when `mysql` is true) with what each reads back as under ALL_DECISIONS.
fn quirks(mysql: bool) -> Vec<(Row, Row)> {
    let same = |r: Row| (r.clone(), r);
    let mut quirks = vec![
        (
            row(&uuid4(1_000_001), "   ", "received", &[("Pen", 1)]),
            row(&uuid4(1_000_001), "(no name)", "received", &[("Pen", 1)]),
        ),
        (
            row(
                &uuid4(1_000_002),
                " Bob ",
                "SHIPPED",
                &[("  ", 3), ("Ink ", 0)],
            ),
            row(
                &uuid4(1_000_002),
                "Bob",
                "shipped",
                &[("(no name)", 3), ("Ink", 1)],
            ),
        ),
        (
            row(&uuid4(1_000_003), "Eve", "shipped ", &[("Pad", -4)]),
            row(&uuid4(1_000_003), "Eve", "shipped", &[("Pad", 1)]),
        ),
        (
            row(&uuid4(1_000_004), "Fay", "  ", &[("Cup", 2_000_000)]),
            row(&uuid4(1_000_004), "Fay", "cancelled", &[("Cup", 1_000_000)]),
        ),
        (
            row(&uuid4(1_000_005), "Gus", "received", &[]),
            row(&uuid4(1_000_005), "Gus", "received", &[]),
        ),
        (
            row(
                &uuid4(1_000_006).to_uppercase(),
                "Hal",
                "ready",
                &[("Mug", 1)],
            ),
            row(&uuid4(1_000_006), "Hal", "ready", &[("Mug", 1)]),
        ),
        same(row(
            &uuid4(1_000_007),
            "Zoë 🍕",
            "delivered",
            &[("Crème brûlée", 2), ("42", 7)],
        )),
        same(row(
            &uuid4(1_000_008),
            "42",
            "completed",
            &[("a", 1), ("b", 2), ("c", 3)],
        )),
    ];
    if !mysql {
        // Too long for the columns of a strict MySQL: only SQLite holds them.
        quirks.push((
            row(
                &uuid4(1_000_009),
                &"x".repeat(81),
                "on the truck, finally!!",
                &[("y".repeat(90).as_str(), 1_000_000_000_000)],
            ),
            row(
                &uuid4(1_000_009),
                &"x".repeat(80),
                "shipped",
                &[("y".repeat(80).as_str(), 1_000_000)],
            ),
        ));
    }
    quirks
}

const NOT_A_UUID: &str = "order-17";

/// Plain orders beside the quirks.
const PLAIN: u64 = 25_000;

enum Backend {
    Sqlite { _dir: TempDir, path: PathBuf },
    Mysql(MysqlDatabase),
}

impl Backend {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("database.db");
        Self::Sqlite { _dir: dir, path }
    }

    fn mysql() -> Option<Self> {
        MysqlDatabase::create().map(Self::Mysql)
    }

    fn is_mysql(&self) -> bool {
        matches!(self, Self::Mysql(_))
    }

    fn url(&self) -> String {
        match self {
            Self::Sqlite { path, .. } => format!("sqlite:///{}", path.display()),
            Self::Mysql(database) => format!("mysql://root@127.0.0.1:3306/{}", database.name),
        }
    }

    async fn run_sql(&self, sql: &str) {
        match self {
            Self::Sqlite { path, .. } => {
                let mut conn = sqlite_connection(path);
                // Diesel turns foreign keys on; the original never did.
                conn.batch_execute("PRAGMA foreign_keys = OFF;").unwrap();
                conn.batch_execute(sql)
                    .unwrap_or_else(|error| panic!("{error}: {}", &sql[..sql.len().min(300)]));
            }
            Self::Mysql(_) => {
                let mut conn = AsyncMysqlConnection::establish(&self.url()).await.unwrap();
                conn.batch_execute(sql).await.unwrap();
            }
        }
    }

    async fn strings(&self, sql: &str) -> Vec<String> {
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = Text)]
            name: String,
        }
        let rows: Vec<Name> = match self {
            Self::Sqlite { path, .. } => {
                let mut conn = sqlite_connection(path);
                diesel::RunQueryDsl::load(diesel::sql_query(sql), &mut conn).unwrap()
            }
            Self::Mysql(_) => {
                let mut conn = AsyncMysqlConnection::establish(&self.url()).await.unwrap();
                diesel_async::RunQueryDsl::load(diesel::sql_query(sql), &mut conn)
                    .await
                    .unwrap()
            }
        };
        rows.into_iter().map(|row| row.name).collect()
    }

    async fn tables(&self) -> BTreeSet<String> {
        let sql = match self {
            Self::Sqlite { .. } => "SELECT name FROM sqlite_master WHERE type = 'table'",
            Self::Mysql(_) => {
                "SELECT CAST(table_name AS CHAR) AS name FROM information_schema.tables WHERE table_schema = DATABASE()"
            }
        };
        self.strings(sql).await.into_iter().collect()
    }

    /// The original's tables as the original reads them: orders by id,
    /// each with its items in `order_items.id` order.
    async fn original_rows(&self) -> Vec<Row> {
        #[derive(QueryableByName)]
        struct Joined {
            #[diesel(sql_type = Text)]
            id: String,
            #[diesel(sql_type = Text)]
            customer_name: String,
            #[diesel(sql_type = Text)]
            status: String,
            #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
            item_name: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
            quantity: Option<i64>,
        }
        let sql = "SELECT o.id, o.customer_name, o.status, i.item_name, CAST(i.quantity AS SIGNED) AS quantity \
                   FROM orders o LEFT JOIN order_items i ON i.order_id = o.id ORDER BY o.id, i.id";
        let sqlite_sql = sql.replace("AS SIGNED", "AS INTEGER");
        let joined: Vec<Joined> = match self {
            Self::Sqlite { path, .. } => {
                let mut conn = sqlite_connection(path);
                diesel::RunQueryDsl::load(diesel::sql_query(sqlite_sql), &mut conn).unwrap()
            }
            Self::Mysql(_) => {
                let mut conn = AsyncMysqlConnection::establish(&self.url()).await.unwrap();
                diesel_async::RunQueryDsl::load(diesel::sql_query(sql), &mut conn)
                    .await
                    .unwrap()
            }
        };
        let mut rows: Vec<Row> = Vec::new();
        for j in joined {
            if rows.last().is_none_or(|last| last.id != j.id) {
                rows.push(row(&j.id, &j.customer_name, &j.status, &[]));
            }
            if let (Some(name), Some(quantity)) = (j.item_name, j.quantity) {
                rows.last_mut().unwrap().items.push((name, quantity));
            }
        }
        rows
    }

    /// Creates the original's tables holding `orders` (and `orphans`:
    /// items whose order does not exist, written with checks off as a
    /// script would).
    async fn original(&self, orders: &[Row], orphans: &[(&str, &str)]) {
        let ddl = if self.is_mysql() {
            ORIGINAL_MYSQL
        } else {
            ORIGINAL_SQLITE
        };
        self.run_sql(ddl).await;
        let quote = |text: &str| format!("'{}'", text.replace('\'', "''"));
        for chunk in orders.chunks(2_000) {
            let values: Vec<String> = chunk
                .iter()
                .map(|r| {
                    format!(
                        "({}, {}, {})",
                        quote(&r.id),
                        quote(&r.customer_name),
                        quote(&r.status)
                    )
                })
                .collect();
            let items: Vec<String> = chunk
                .iter()
                .flat_map(|r| {
                    r.items.iter().map(move |(name, quantity)| {
                        format!("({}, {quantity}, {})", quote(name), quote(&r.id))
                    })
                })
                .collect();
            let mut sql = format!(
                "INSERT INTO orders (id, customer_name, status) VALUES {};",
                values.join(", ")
            );
            if !items.is_empty() {
                sql.push_str(&format!(
                    "INSERT INTO order_items (item_name, quantity, order_id) VALUES {};",
                    items.join(", ")
                ));
            }
            self.run_sql(&sql).await;
        }
        for (order_id, name) in orphans {
            let off = if self.is_mysql() {
                "SET foreign_key_checks = 0;"
            } else {
                ""
            };
            self.run_sql(&format!(
                "{off}INSERT INTO order_items (item_name, quantity, order_id) VALUES ({}, 1, {});",
                quote(name),
                quote(order_id)
            ))
            .await;
        }
    }

    /// MySQL goes on with a statement whose client was killed (a switch
    /// under way is finished or undone before anyone looks), and closes a
    /// stopped server's connections a moment later: the migration refuses
    /// to run while any other session uses the database.
    async fn wait_until_idle(&self) {
        let Self::Mysql(database) = self else { return };
        let sql = format!(
            "SELECT CAST(COUNT(*) AS CHAR) AS name FROM information_schema.processlist \
             WHERE db = '{}' AND id <> CONNECTION_ID()",
            database.name
        );
        for _ in 0..200 {
            if self.strings(&sql).await == ["0"] {
                // This check's own connection, too.
                Self::let_connections_close().await;
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the killed migration's statements never finished");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(SERVER);
        command
            .arg("migrate-original")
            .args(args)
            .env_clear()
            .env("DATABASE_URL", self.url())
            .env("CACHE_DISABLED", "true");
        if let Self::Sqlite { path, .. } = self {
            command.current_dir(path.parent().unwrap());
        }
        command
    }

    /// Runs the command once the database is idle (on MySQL it refuses to
    /// run beside other sessions, such as this test's last connection).
    async fn migrate(&self, args: &[&str]) -> Output {
        self.wait_until_idle().await;
        self.command(args).output().unwrap()
    }

    /// A dropped connection of this test's closes in a task of its
    /// runtime, which a blocking wait on a child process would stall.
    async fn let_connections_close() {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    async fn app(
        &self,
        extra: Vec<(&'static str, String)>,
        cache: bool,
        prefix: Option<String>,
    ) -> TestApp {
        TestApp::start(Options {
            database_url: Some(self.url()),
            cache,
            key_prefix: prefix,
            extra,
            ..Options::default()
        })
        .await
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Orders as the API lists them, in the list's order.
async fn listed(app: &TestApp) -> Vec<Row> {
    let body: Value = app.get("/orders").await.json().await.unwrap();
    assert_eq!(
        body["total_orders"],
        body["orders"].as_array().unwrap().len()
    );
    body["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(as_row)
        .collect()
}

fn as_row(order: &Value) -> Row {
    Row {
        id: order["order_id"].as_str().unwrap().to_owned(),
        customer_name: order["customer_name"].as_str().unwrap().to_owned(),
        status: order["status"].as_str().unwrap().to_owned(),
        items: order["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                (
                    item["name"].as_str().unwrap().to_owned(),
                    item["quantity"].as_i64().unwrap(),
                )
            })
            .collect(),
    }
}

/// In Rust's order: a MySQL collation orders ids its own way.
fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort();
    rows
}

fn newest_first(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by(|a, b| b.id.cmp(&a.id));
    rows
}

// ---------------------------------------------------------------- refusal

#[tokio::test]
async fn a_refused_start_leaves_an_original_sqlite_file_byte_for_byte() {
    let backend = Backend::sqlite();
    backend.original(&plain(50), &[]).await;
    let Backend::Sqlite { path, .. } = &backend else {
        unreachable!()
    };
    let before = std::fs::read(path).unwrap();
    let dir = path.parent().unwrap();
    let files_before: BTreeSet<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();

    let output = Command::new(SERVER)
        .current_dir(dir)
        .env_clear()
        .env("DATABASE_URL", backend.url())
        .env("CACHE_DISABLED", "true")
        .env("PORT", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("original service's tables"), "{stderr}");
    assert!(stderr.contains("server migrate-original"), "{stderr}");

    // The dry run writes nothing either.
    let dry = backend.migrate(&[]).await;
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));

    assert_eq!(std::fs::read(path).unwrap(), before, "the file changed");
    let files_after: BTreeSet<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files_after, files_before, "a journal or WAL file was left");
}

#[tokio::test]
async fn a_refused_start_adds_no_table_to_mysql_and_strangers_are_named() {
    let Some(backend) = Backend::mysql() else {
        return;
    };
    backend.original(&plain(20), &[]).await;
    let before = backend.tables().await;
    let started = server::spawn(
        server::Settings::from_vars(
            [
                ("DATABASE_URL", backend.url()),
                ("PORT", "0".to_owned()),
                ("CACHE_DISABLED", "true".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        )
        .unwrap(),
    )
    .await;
    let error = started
        .err()
        .expect("the server refused to start")
        .to_string();
    assert!(error.contains("server migrate-original"), "{error}");
    assert_eq!(backend.tables().await, before);

    // A database of someone else's: refused, naming what it holds.
    let Some(stranger) = Backend::mysql() else {
        return;
    };
    stranger
        .run_sql("CREATE TABLE invoices (id INT PRIMARY KEY)")
        .await;
    let output = Command::new(SERVER)
        .env_clear()
        .env("DATABASE_URL", stranger.url())
        .env("CACHE_DISABLED", "true")
        .env("PORT", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("invoices") && stderr.contains("neither"),
        "{stderr}"
    );
    assert_eq!(
        stranger.tables().await,
        BTreeSet::from(["invoices".to_owned()])
    );
}

// ---------------------------------------------------------------- quirks

async fn every_quirk_is_reported_then_migrated_as_decided(backend: Backend) {
    let quirks = quirks(backend.is_mysql());
    // More than two batches of 10,000, so quirks and orphans fall on
    // several batches and their edges.
    let mut stored: Vec<Row> = plain(PLAIN);
    stored.extend(quirks.iter().map(|(stored, _)| stored.clone()));
    stored.push(row(NOT_A_UUID, "Ida", "received", &[("Box", 1)]));
    // Orphans whose order ids sort before, among and after the others.
    let orphans = [
        ("0", "First lost"),
        ("7", "Middle lost"),
        ("gone", "Last lost"),
    ];
    backend.original(&stored, &orphans).await;
    let tables_before = backend.tables().await;

    let dry = backend.migrate(&[]).await;
    let report = text(&dry.stdout);
    assert_eq!(dry.status.code(), Some(3), "{report}{}", text(&dry.stderr));
    let kinds = [
        ("customer name: empty", "--fill-blank-names"),
        ("customer name: leading or trailing spaces", "--trim-names"),
        (
            "status: a known status in another case",
            "--map-status-variants",
        ),
        (
            "status: not one of the contract's statuses",
            "--unknown-status",
        ),
        ("order without items", "--empty-orders"),
        ("item name: empty", "--fill-blank-names"),
        ("quantity: below 1 or above 1,000,000", "--clamp-quantities"),
        ("item whose order does not exist", "--drop-orphan-items"),
        ("order id: a UUID not in lower-case", "--normalize-ids"),
        ("order id: not a UUID", "--bad-ids"),
    ];
    for (kind, flag) in kinds {
        assert!(report.contains(kind), "{kind} missing from:\n{report}");
        assert!(report.contains(flag), "{flag} missing from:\n{report}");
    }
    assert!(
        report.contains("item whose order does not exist (3 rows)"),
        "{report}"
    );
    if !backend.is_mysql() {
        assert!(
            report.contains("customer name: over 80 characters"),
            "{report}"
        );
        assert!(report.contains("\"on the truck, finally!!\""), "{report}");
    }
    assert!(
        report.contains(&format!("{} orders and", stored.len())),
        "{report}"
    );

    // Apply without decisions refuses and changes nothing.
    let refused = backend.migrate(&["--apply"]).await;
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused.stdout));
    assert_eq!(backend.tables().await, tables_before);
    assert_eq!(
        sorted(backend.original_rows().await),
        sorted(stored.clone())
    );

    let mut args = vec!["--apply"];
    args.extend(ALL_DECISIONS);
    let applied = backend.migrate(&args).await;
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}{}",
        text(&applied.stdout),
        text(&applied.stderr)
    );
    assert!(
        text(&applied.stderr).contains("migrate-original: orders"),
        "no progress shown"
    );

    let app = backend.app(vec![], false, None).await;
    let listed = listed(&app).await;
    // Every order as the original stored it, modulo the decisions, in the
    // original's order (id descending).
    let mut expected: Vec<Row> = plain(PLAIN);
    expected.extend(quirks.iter().map(|(_, migrated)| migrated.clone()));
    let reassigned = listed
        .iter()
        .find(|r| r.customer_name == "Ida")
        .expect("the order with a bad id was kept under a new id");
    assert!(reassigned.id.parse::<domain::OrderId>().is_ok());
    expected.push(row(&reassigned.id, "Ida", "received", &[("Box", 1)]));
    assert_eq!(listed, newest_first(expected.clone()));

    // Migrated orders behave as any other: detail with ETag, status filter,
    // keyset pages, conditional PATCH.
    let first = &expected[0];
    let detail = app.get(&format!("/orders/{}", first.id)).await;
    assert_eq!(detail.status(), 200);
    assert_eq!(detail.headers()["etag"], "\"1\"");
    let body: Value = detail.json().await.unwrap();
    assert_eq!(body["version"], 1);
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    let shipped: Value = app
        .get("/orders?status=shipped")
        .await
        .json()
        .await
        .unwrap();
    let shipped_expected = expected.iter().filter(|r| r.status == "shipped").count();
    assert_eq!(shipped["total_orders"], shipped_expected, "{shipped}");
    assert_eq!(
        shipped["orders"].as_array().unwrap().len(),
        shipped_expected
    );
    let mut walked = Vec::new();
    let mut path = "/orders?limit=997".to_owned();
    loop {
        let page: Value = app.get(&path).await.json().await.unwrap();
        assert_eq!(page["total_orders"], expected.len());
        walked.extend(page["orders"].as_array().unwrap().iter().map(as_row));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/orders?limit=997&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked, listed);
    let patched = app
        .client
        .patch(app.url(&format!("/orders/{}/status", first.id)))
        .header("If-Match", "\"1\"")
        .json(&json!({"status": "completed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);

    // The original's rows are kept until dropped explicitly.
    let tables = backend.tables().await;
    assert!(
        tables.contains("original_orders") && tables.contains("original_order_items"),
        "{tables:?}"
    );
    app.server.stop().await;
    let dropped = backend.migrate(&["--drop-backup"]).await;
    assert_eq!(dropped.status.code(), Some(0), "{}", text(&dropped.stderr));
    let tables = backend.tables().await;
    assert!(
        !tables.contains("original_orders") && !tables.contains("original_order_items"),
        "{tables:?}"
    );
}

#[tokio::test]
async fn every_quirk_is_reported_then_migrated_as_decided_on_sqlite() {
    every_quirk_is_reported_then_migrated_as_decided(Backend::sqlite()).await;
}

#[tokio::test]
async fn every_quirk_is_reported_then_migrated_as_decided_on_mysql() {
    if let Some(backend) = Backend::mysql() {
        every_quirk_is_reported_then_migrated_as_decided(backend).await;
    }
}

// ---------------------------------------------------------------- kill -9

/// Starts `--apply` and kills it with SIGKILL once its progress output has
/// shown `lines` lines (or the line naming the switch, for `usize::MAX`).
/// The test's own look at the file. It waits for a lock, as the service's
/// connections do: a process that just stopped may still be checkpointing
/// its WAL on close, and a reader that opens then sees SQLITE_BUSY.
fn sqlite_connection(path: &std::path::Path) -> SqliteConnection {
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    conn.batch_execute("PRAGMA busy_timeout = 10000;").unwrap();
    conn
}

fn kill_apply_after(backend: &Backend, lines: usize) {
    let mut child = backend
        .command(&["--apply"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    for (seen, line) in stderr.lines().enumerate() {
        let line = line.unwrap();
        if seen + 1 >= lines || line.contains("switching") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

async fn interrupted_migrations_leave_the_database_whole(backend: Backend) {
    let stored = plain(60_000);
    backend.original(&stored, &[]).await;
    let original_rows = sorted(backend.original_rows().await);
    let mut outcomes = BTreeSet::new();
    for lines in [1, 3, usize::MAX] {
        backend.wait_until_idle().await;
        kill_apply_after(&backend, lines);
        backend.wait_until_idle().await;
        // First look: the read-only dry run, on what the kill left (on
        // SQLite, maybe a hot journal it must see past).
        let dry = backend.migrate(&[]).await;
        assert_eq!(
            dry.status.code(),
            Some(0),
            "{}{}",
            text(&dry.stdout),
            text(&dry.stderr)
        );
        let tables = backend.tables().await;
        let migrated = tables.contains("original_orders");
        if migrated {
            // Fully migrated: the service starts and serves every order.
            let app = backend.app(vec![], false, None).await;
            assert_eq!(listed(&app).await.len(), stored.len());
            app.server.stop().await;
            outcomes.insert("migrated");
            break;
        }
        // As it was: the original's rows, all of them; the service still
        // refuses to start on it.
        assert_eq!(
            sorted(backend.original_rows().await),
            original_rows,
            "after a kill at {lines}"
        );
        let refused = Command::new(SERVER)
            .env_clear()
            .env("DATABASE_URL", backend.url())
            .env("CACHE_DISABLED", "true")
            .env("PORT", "0")
            .output()
            .unwrap();
        assert!(
            text(&refused.stderr).contains("migrate-original"),
            "{}",
            text(&refused.stderr)
        );
        outcomes.insert("as it was");
    }
    assert!(
        outcomes.contains("as it was"),
        "no kill landed before the switch"
    );
    // A rerun finishes, whatever the kills left.
    backend.wait_until_idle().await;
    let rerun = backend.migrate(&["--apply"]).await;
    assert_eq!(
        rerun.status.code(),
        Some(0),
        "{}{}",
        text(&rerun.stdout),
        text(&rerun.stderr)
    );
    let app = backend.app(vec![], false, None).await;
    assert_eq!(listed(&app).await, newest_first(stored));
    app.server.stop().await;
    let leftovers: Vec<String> = backend
        .tables()
        .await
        .into_iter()
        .filter(|t| t.ends_with("_migrating") || t.starts_with("retired_"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn interrupted_migrations_leave_sqlite_as_it_was_or_migrated() {
    interrupted_migrations_leave_the_database_whole(Backend::sqlite()).await;
}

#[tokio::test]
async fn interrupted_migrations_leave_mysql_as_it_was_or_migrated() {
    if let Some(backend) = Backend::mysql() {
        interrupted_migrations_leave_the_database_whole(backend).await;
    }
}

// ---------------------------------------------------------------- round trip

async fn round_trip(backend: Backend) {
    // A batch and a bit: rollback numbers items across batches.
    let stored = plain(10_500);
    backend.original(&stored, &[]).await;
    if backend.is_mysql() {
        // Another session on the database (a live original): refused.
        let mut live = AsyncMysqlConnection::establish(&backend.url())
            .await
            .unwrap();
        let refused = backend.command(&["--apply"]).output().unwrap();
        assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stdout));
        assert!(
            text(&refused.stderr).contains("other connection"),
            "{}",
            text(&refused.stderr)
        );
        assert_eq!(
            backend.tables().await,
            BTreeSet::from(["order_items".to_owned(), "orders".to_owned()])
        );
        live.batch_execute("SELECT 1").await.unwrap();
        drop(live);
        backend.wait_until_idle().await;
    }
    let applied = backend.migrate(&["--apply"]).await;
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied.stderr));

    let app = backend.app(vec![], false, None).await;
    let created = app.create("Newcomer").await;
    let two = app
        .post_json(
            "/orders",
            &json!({"customer_name": "Second", "items": [{"name": "A", "quantity": 1}, {"name": "B", "quantity": 2}, {"name": "C", "quantity": 3}]}),
        )
        .await;
    assert_eq!(two.status(), 201);
    let changed = app
        .client
        .patch(app.url(&format!("/orders/{}/status", stored[3].id)))
        .json(&json!({"status": "preparing"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let deleted = app
        .client
        .delete(app.url(&format!("/orders/{}", stored[5].id)))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let current = listed(&app).await;
    assert!(current.iter().any(|r| r.id == created["order_id"]));
    if backend.is_mysql() {
        // A running service is another session: its writes would be lost.
        let refused = backend.command(&["--rollback"]).output().unwrap();
        assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stdout));
        assert!(
            text(&refused.stderr).contains("other connection"),
            "{}",
            text(&refused.stderr)
        );
        assert!(backend.tables().await.contains("order_counts"));
    }
    app.server.stop().await;
    backend.wait_until_idle().await;

    let rolled = backend.migrate(&["--rollback"]).await;
    assert_eq!(
        rolled.status.code(),
        Some(0),
        "{}{}",
        text(&rolled.stdout),
        text(&rolled.stderr)
    );
    // Exactly the original's two tables, holding exactly the current orders.
    assert_eq!(
        backend.tables().await,
        BTreeSet::from(["order_items".to_owned(), "orders".to_owned()])
    );
    assert_eq!(sorted(backend.original_rows().await), sorted(current));
    // A rerun (to retry the cache, say) finds it done.
    let again = backend.migrate(&["--rollback"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    // ... and the round trip can start again.
    let dry = backend.migrate(&[]).await;
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stdout));
}

#[tokio::test]
async fn round_trip_to_the_original_and_back_on_sqlite() {
    round_trip(Backend::sqlite()).await;
}

#[tokio::test]
async fn round_trip_to_the_original_and_back_on_mysql() {
    if let Some(backend) = Backend::mysql() {
        round_trip(backend).await;
    }
}

// ---------------------------------------------------------------- cache

#[tokio::test]
async fn the_originals_cached_bodies_are_never_served() {
    if !service_available("Redis", 6379) {
        return;
    }
    let backend = Backend::sqlite();
    let stored = plain(10);
    backend.original(&stored, &[]).await;
    let prefix = format!("{}:", unique("takeover"));
    // What the original left in Redis, in its format and under its keys.
    let list = json!({"orders": stored.iter().map(|r| json!({
        "customer_name": r.customer_name, "items": [], "order_id": r.id, "status": "stale"
    })).collect::<Vec<_>>(), "total_orders": stored.len()})
    .to_string();
    let detail = |r: &Row| {
        json!({"customer_name": r.customer_name, "items": [], "order_id": r.id, "status": "stale"})
            .to_string()
    };
    let client = cache::redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let mut pipe = cache::redis::pipe();
    pipe.set(format!("{prefix}orders:list:version"), 7)
        .set(format!("{prefix}orders:list:7"), &list);
    for r in &stored {
        pipe.set(format!("{prefix}orders:detail:{}", r.id), detail(r));
    }
    let () = pipe.query_async(&mut redis).await.unwrap();

    // A server started on that Redis before the migration (on a database
    // of its own) does not serve them either.
    let bystander = Backend::sqlite();
    let early = bystander.app(vec![], true, Some(prefix.clone())).await;
    let response = early.get(&format!("/orders/{}", stored[0].id)).await;
    assert_eq!(response.status(), 404);
    let body: Value = early.get("/orders").await.json().await.unwrap();
    assert_eq!(body["total_orders"], 0, "{body}");
    early.server.stop().await;

    let applied = backend
        .command(&["--apply"])
        .env("CACHE_DISABLED", "false")
        .env("REDIS_URL", "redis://127.0.0.1:6379/0")
        .env("CACHE_KEY_PREFIX", &prefix)
        .output()
        .unwrap();
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}{}",
        text(&applied.stdout),
        text(&applied.stderr)
    );
    assert!(text(&applied.stdout).contains("cache at REDIS_URL was invalidated"));
    let version: i64 = cache::redis::cmd("GET")
        .arg(format!("{prefix}orders:list:version"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(version > 7, "the list version did not move: {version}");

    let app = backend.app(vec![], true, Some(prefix.clone())).await;
    for _ in 0..2 {
        let listed = app.get("/orders").await.text().await.unwrap();
        assert_ne!(listed, list);
        assert!(!listed.contains("stale"), "{listed}");
        for r in &stored {
            let body = app
                .get(&format!("/orders/{}", r.id))
                .await
                .text()
                .await
                .unwrap();
            assert_ne!(body, detail(r));
            assert!(body.contains("\"version\":1"), "{body}");
        }
    }
    app.server.stop().await;
    let keys: Vec<String> = cache::redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    if !keys.is_empty() {
        let () = cache::redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
}
