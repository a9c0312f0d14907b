//! Connection pools for each backend, the settings every new connection
//! gets, and the embedded migrations run at start.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{HookError, Metrics, Object};
use diesel::ConnectionError;
use diesel::SqliteConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Hook, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolError as ManagerError, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::write_gate::WriteGate;
use crate::{DatabaseUrl, StorageConfig, StorageError};

pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection>;
pub(crate) type MysqlConn = AsyncMysqlConnection;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/mysql");

/// SQLite serialises writers anyway; a few connections let reads run beside
/// the one writer without piling up blocked threads.
const SQLITE_DEFAULT_POOL_SIZE: usize = 8;
const MYSQL_DEFAULT_POOL_SIZE: usize = 16;

/// `busy_timeout` first: switching to WAL needs a lock another connection
/// may hold while it starts up too. WAL lets readers run beside the writer;
/// `synchronous=NORMAL` is durable across application crashes in WAL mode
/// and only a power loss can lose the last commits.
const SQLITE_SETUP: &str = "PRAGMA busy_timeout = 5000;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;";

/// A MySQL connection idle for longer than this is pinged before it is
/// handed out, so that connections killed while the pool slept (a database
/// restart, wait_timeout) are replaced instead of failing a request. Busy
/// connections skip the round trip.
const MYSQL_IDLE_PING_AFTER: Duration = Duration::from_secs(5);

pub(crate) enum Pools {
    /// With the queue its write transactions wait in.
    Sqlite(Pool<SqliteConn>, WriteGate),
    Mysql(Pool<MysqlConn>),
}

type SetupFuture<'a, C> = Pin<Box<dyn Future<Output = diesel::ConnectionResult<C>> + Send + 'a>>;

fn setup_sqlite(path: &str) -> SetupFuture<'_, SqliteConn> {
    Box::pin(async move {
        let mut conn = SqliteConn::establish(path).await?;
        conn.batch_execute(SQLITE_SETUP)
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
        Ok(conn)
    })
}

fn ping_if_idle<'a>(
    conn: &'a mut MysqlConn,
    metrics: &'a Metrics,
    limit: Duration,
) -> Pin<Box<dyn Future<Output = Result<(), HookError<ManagerError>>> + Send + 'a>> {
    Box::pin(async move {
        if metrics.last_used() < MYSQL_IDLE_PING_AFTER {
            return Ok(());
        }
        // Dropping the ping midway leaves the connection unusable, which is
        // fine: a failed hook discards it.
        match tokio::time::timeout(limit, conn.batch_execute("SELECT 1")).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(HookError::Backend(ManagerError::QueryError(error))),
            Err(_) => Err(HookError::Message("ping timed out".into())),
        }
    })
}

impl Pools {
    /// Builds the pool, proves the database answers, and brings its schema
    /// up to date.
    pub(crate) async fn connect(config: &StorageConfig) -> Result<Pools, StorageError> {
        let timeout = Some(config.pool_timeout);
        let size = |default| match config.pool_size {
            0 => default,
            size => size,
        };
        match &config.url {
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_str().ok_or_else(|| StorageError::InvalidUrl {
                    url: path.display().to_string(),
                    reason: "the SQLite path is not valid UTF-8".to_owned(),
                })?;
                let mut manager_config = ManagerConfig::<SqliteConn>::default();
                // A file cannot go away under an open connection; a check
                // per checkout would only add a round trip.
                manager_config.recycling_method = RecyclingMethod::Fast;
                manager_config.custom_setup = Box::new(setup_sqlite);
                let manager = AsyncDieselConnectionManager::new_with_config(path, manager_config);
                let pool = Pool::builder(manager)
                    .max_size(size(SQLITE_DEFAULT_POOL_SIZE))
                    .wait_timeout(timeout)
                    .create_timeout(timeout)
                    .recycle_timeout(timeout)
                    .runtime(Runtime::Tokio1)
                    .build()
                    .map_err(StorageError::PoolBuild)?;
                let mut conn = pool.get().await?;
                conn.spawn_blocking(|conn| {
                    Ok(conn
                        .run_pending_migrations(SQLITE_MIGRATIONS)
                        .map(drop)
                        .map_err(|error| error.to_string()))
                })
                .await?
                .map_err(StorageError::Migration)?;
                Ok(Pools::Sqlite(pool, WriteGate::new(config.pool_timeout)))
            }
            DatabaseUrl::Mysql(url) => {
                let mut manager_config = ManagerConfig::<MysqlConn>::default();
                manager_config.recycling_method = RecyclingMethod::Fast;
                let manager = AsyncDieselConnectionManager::new_with_config(url, manager_config);
                let ping_limit = config.pool_timeout;
                let pool = Pool::builder(manager)
                    .max_size(size(MYSQL_DEFAULT_POOL_SIZE))
                    .wait_timeout(timeout)
                    .create_timeout(timeout)
                    .recycle_timeout(timeout)
                    .pre_recycle(Hook::async_fn(move |conn, metrics| {
                        ping_if_idle(conn, metrics, ping_limit)
                    }))
                    .runtime(Runtime::Tokio1)
                    .build()
                    .map_err(StorageError::PoolBuild)?;
                // Fails fast (within the create timeout) when the server is
                // unreachable, before the migration connection could hang.
                drop(pool.get().await?);
                run_mysql_migrations(url.clone()).await?;
                Ok(Pools::Mysql(pool))
            }
        }
    }

    pub(crate) fn status(&self) -> deadpool::Status {
        match self {
            Self::Sqlite(pool, _) => pool.status(),
            Self::Mysql(pool) => pool.status(),
        }
    }
}

/// Diesel's migration harness is synchronous. For MySQL it drives the async
/// connection through `AsyncConnectionWrapper`, which blocks on a runtime;
/// giving it a thread and a small runtime of its own makes that work
/// whatever runtime (or flavor) the caller runs on.
async fn run_mysql_migrations(url: String) -> Result<(), StorageError> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("mysql-migrations".to_owned())
        .spawn(move || {
            let outcome = (|| {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .map_err(|error| StorageError::Migration(error.to_string()))?;
                let _entered = runtime.enter();
                let mut conn =
                    <AsyncConnectionWrapper<MysqlConn> as diesel::Connection>::establish(&url)
                        .map_err(StorageError::Connect)?;
                conn.run_pending_migrations(MYSQL_MIGRATIONS)
                    .map(drop)
                    .map_err(|error| StorageError::Migration(error.to_string()))
            })();
            let _ = done.send(outcome);
        })
        .map_err(|error| StorageError::Migration(error.to_string()))?;
    result
        .await
        .map_err(|_| StorageError::Migration("the migration thread panicked".to_owned()))?
}

/// Removes a connection from its pool when the error it produced means the
/// connection itself is gone, so the next checkout makes a fresh one.
pub(crate) fn discard_if_broken<C, T>(
    object: Object<AsyncDieselConnectionManager<C>>,
    result: &Result<T, StorageError>,
) where
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager<Type = C>,
{
    if let Err(error) = result
        && error.is_connection_lost()
    {
        drop(Object::take(object));
    }
}
