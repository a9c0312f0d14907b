//! Each test gets a database of its own: a SQLite file in a temporary
//! directory, or a MySQL database `orders_test_<epoch>_<random>` on the
//! MariaDB of `MYSQL_TEST_URL` (default `mysql://root@127.0.0.1:3306`),
//! dropped when the test ends, panics included. Leftovers of killed runs
//! older than an hour are dropped by the next run.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};
use storage::{DatabaseUrl, Storage, StorageConfig};
use tempfile::TempDir;

pub struct TestDb {
    pub storage: Storage,
    place: Place,
}

enum Place {
    Sqlite {
        _dir: TempDir,
        path: std::path::PathBuf,
    },
    Mysql(MysqlDatabase),
}

fn mysql_server_url() -> String {
    std::env::var("MYSQL_TEST_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true"))
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.db");
        let storage = Storage::connect(&StorageConfig::new(DatabaseUrl::Sqlite(path.clone())))
            .await
            .unwrap();
        TestDb {
            storage,
            place: Place::Sqlite { _dir: dir, path },
        }
    }

    /// `None` (with a note) when MariaDB is not reachable, unless `CI=true`,
    /// where that is a failure.
    pub async fn mysql() -> Option<TestDb> {
        let server = mysql_server_url();
        let admin = tokio::time::timeout(
            Duration::from_secs(5),
            AsyncMysqlConnection::establish(&format!("{server}/mysql")),
        )
        .await;
        let mut admin = match admin {
            Ok(Ok(conn)) => conn,
            failure => {
                let reason = match failure {
                    Ok(Err(error)) => error.to_string(),
                    _ => "no answer within 5 s".to_owned(),
                };
                assert!(
                    !in_ci(),
                    "MariaDB at {server} is required when CI=true: {reason}"
                );
                eprintln!("note: MariaDB at {server} is not reachable; skipping a MySQL test");
                return None;
            }
        };
        drop_stale_databases(&mut admin).await;
        let name = format!(
            "orders_test_{}_{:08x}",
            epoch_seconds(),
            rand::random::<u32>()
        );
        admin
            .batch_execute(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .await
            .unwrap();
        let database = MysqlDatabase {
            server: server.clone(),
            name: name.clone(),
        };
        let url = DatabaseUrl::parse(&format!("{server}/{name}")).unwrap();
        let storage = Storage::connect(&StorageConfig::new(url)).await.unwrap();
        Some(TestDb {
            storage,
            place: Place::Mysql(database),
        })
    }

    pub fn is_mysql(&self) -> bool {
        matches!(self.place, Place::Mysql(_))
    }

    /// Runs raw SQL on the test's database, behind the storage's back (to
    /// age an idempotency key, say).
    pub async fn execute(&self, sql: &str) {
        match &self.place {
            Place::Sqlite { path, .. } => {
                let path = path.to_str().unwrap().to_owned();
                let sql = sql.to_owned();
                tokio::task::spawn_blocking(move || {
                    let mut conn =
                        <diesel::SqliteConnection as diesel::Connection>::establish(&path).unwrap();
                    conn.batch_execute("PRAGMA busy_timeout = 5000").unwrap();
                    conn.batch_execute(&sql).unwrap();
                })
                .await
                .unwrap();
            }
            Place::Mysql(database) => {
                let mut conn = AsyncMysqlConnection::establish(&database.url())
                    .await
                    .unwrap();
                conn.batch_execute(sql).await.unwrap();
            }
        }
    }
}

impl TestDb {
    /// Another storage on the same database, as a second instance of the
    /// service would have, with its own full-list settings.
    pub async fn another_instance(&self, full_list: storage::FullListConfig) -> Storage {
        let url = match &self.place {
            Place::Sqlite { path, .. } => DatabaseUrl::Sqlite(path.clone()),
            Place::Mysql(database) => DatabaseUrl::parse(&database.url()).unwrap(),
        };
        let mut config = StorageConfig::new(url);
        config.full_list = full_list;
        Storage::connect(&config).await.unwrap()
    }

    /// Another instance whose reads wait at most 3x `pool_timeout`.
    pub async fn impatient_instance(&self, pool_timeout: std::time::Duration) -> Storage {
        let url = match &self.place {
            Place::Sqlite { path, .. } => DatabaseUrl::Sqlite(path.clone()),
            Place::Mysql(database) => DatabaseUrl::parse(&database.url()).unwrap(),
        };
        let mut config = StorageConfig::new(url);
        config.pool_timeout = pool_timeout;
        Storage::connect(&config).await.unwrap()
    }

    /// The SQLite file's write-ahead log, if this is SQLite.
    pub fn sqlite_wal(&self) -> Option<std::path::PathBuf> {
        match &self.place {
            Place::Sqlite { path, .. } => Some(path.with_extension("db-wal")),
            Place::Mysql(_) => None,
        }
    }
}

#[derive(diesel::QueryableByName)]
struct ProcessId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

impl TestDb {
    /// A connection of the test's own to its MySQL database, to hold locks
    /// on.
    pub async fn mysql_connection(&self) -> AsyncMysqlConnection {
        let Place::Mysql(database) = &self.place else {
            panic!("only for MySQL");
        };
        AsyncMysqlConnection::establish(&database.url())
            .await
            .unwrap()
    }

    /// Kills, on the server, every connection to this test's MySQL
    /// database: what a database restart does to a pool.
    pub async fn kill_mysql_connections(&self) {
        let Place::Mysql(database) = &self.place else {
            panic!("only a MySQL database has server-side connections");
        };
        let mut admin = AsyncMysqlConnection::establish(&format!("{}/mysql", database.server))
            .await
            .unwrap();
        let ids = diesel::sql_query(format!(
            "SELECT CAST(ID AS SIGNED) AS id FROM information_schema.PROCESSLIST WHERE DB = '{}'",
            database.name
        ))
        .load::<ProcessId>(&mut admin)
        .await
        .unwrap();
        assert!(!ids.is_empty(), "the pool holds connections");
        for ProcessId { id } in ids {
            admin.batch_execute(&format!("KILL {id}")).await.unwrap();
        }
    }
}

struct MysqlDatabase {
    server: String,
    name: String,
}

impl MysqlDatabase {
    fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }
}

/// Drops the database from a thread of its own, so that it also works while
/// a test's runtime unwinds from a panic.
impl Drop for MysqlDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = AsyncMysqlConnection::establish(&format!("{server}/mysql"))
                    .await
                    .map_err(|error| error.to_string())?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS `{name}`"))
                    .await
                    .map_err(|error| error.to_string())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!(
                "note: could not drop test database {}: {dropped:?}",
                self.name
            );
        }
    }
}

#[derive(diesel::QueryableByName)]
struct SchemaName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// Test databases of runs that died before their guards ran.
async fn drop_stale_databases(admin: &mut AsyncMysqlConnection) {
    let Ok(names) = diesel::sql_query(
        "SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA \
         WHERE SCHEMA_NAME LIKE 'orders\\_test\\_%'",
    )
    .load::<SchemaName>(admin)
    .await
    else {
        return;
    };
    let hour_ago = epoch_seconds().saturating_sub(3600);
    for SchemaName { name } in names {
        let created = name
            .strip_prefix("orders_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|epoch| epoch.parse::<u64>().ok());
        if created.is_some_and(|created| created < hour_ago) {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS `{name}`"))
                .await;
        }
    }
}
