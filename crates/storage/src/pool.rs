//! Connection pools for each backend, the settings every new connection
//! gets, and the embedded migrations run at start.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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

use crate::checkpoint::Checkpoints;
use crate::url::{MysqlTarget, SslMode, TlsTarget};
use crate::write_gate::WriteGate;
use crate::{DatabaseUrl, StorageConfig, StorageError};

pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection>;
pub(crate) type MysqlConn = AsyncMysqlConnection;

pub(crate) const SQLITE_MIGRATIONS: EmbeddedMigrations =
    embed_migrations!("../../migrations/sqlite");
pub(crate) const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/mysql");

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

/// SQLite's process-wide settings, made once before its first connection.
///
/// Every connection here is used by one thread at a time (diesel-async's
/// wrapper holds it behind a mutex), so SQLite's own per-call locking in
/// its default "serialized" mode, and the global lock it takes on every
/// allocation to keep memory statistics, buy nothing; on a walk of the full
/// list they were a sixth of the time. A process that opened a SQLite
/// connection before (a test binary, say) keeps the defaults: SQLite then
/// refuses the call, which is harmless.
#[allow(unsafe_code)]
fn configure_sqlite_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config is called before sqlite3_initialize (or
        // refused with SQLITE_MISUSE); the arguments match the options.
        unsafe {
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MULTITHREAD);
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            );
        }
    });
}

/// A MySQL connection idle for longer than this is pinged before it is
/// handed out, so that connections killed while the pool slept (a database
/// restart, wait_timeout) are replaced instead of failing a request. Busy
/// connections skip the round trip.
const MYSQL_IDLE_PING_AFTER: Duration = Duration::from_secs(5);

pub(crate) enum Pools {
    /// With the queue its write transactions wait in, and the thread that
    /// checkpoints its WAL (held only to stop with the pool).
    Sqlite(
        Pool<SqliteConn>,
        WriteGate,
        #[expect(dead_code, reason = "held for its Drop, which stops the task")] Checkpoints,
    ),
    Mysql(Pool<MysqlConn>),
}

type SetupFuture<'a, C> = Pin<Box<dyn Future<Output = diesel::ConnectionResult<C>> + Send + 'a>>;

fn setup_sqlite(path: &str) -> SetupFuture<'_, SqliteConn> {
    Box::pin(async move {
        configure_sqlite_once();
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

/// Opens MySQL connections to exactly the endpoint of the URL (its host and
/// port, or the socket it names), over TLS as its `ssl_mode` and `ssl_ca`
/// say. The pool's connections and the migrations' are all made here.
#[derive(Clone)]
pub(crate) struct MysqlConnector {
    inner: Arc<ConnectorInner>,
}

struct ConnectorInner {
    /// Under `VERIFY_CA`, replaced by options naming a host the server's
    /// certificate carries, once a connection has learned one.
    opts: Mutex<mysql_async::Opts>,
    tls: Option<TlsTarget>,
}

/// Why a connection could not be made.
pub(crate) enum ConnectFailure {
    Driver(mysql_async::Error),
    Setup(ConnectionError),
}

const PEM_CERTIFICATE: &[u8] = b"-----BEGIN CERTIFICATE-----";

impl MysqlConnector {
    pub(crate) fn new(url: &str) -> Result<MysqlConnector, StorageError> {
        let MysqlTarget { opts, tls } = crate::url::mysql_target(url)?;
        // As diesel-async's own `establish`: it caches statements itself,
        // and counts found rows, not changed ones.
        let mut builder = mysql_async::OptsBuilder::from_opts(opts)
            .stmt_cache_size(0)
            .client_found_rows(true);
        if let Some(tls) = &tls {
            builder = builder.ssl_opts(ssl_opts(tls)?);
        }
        Ok(MysqlConnector {
            inner: Arc::new(ConnectorInner {
                opts: Mutex::new(builder.into()),
                tls,
            }),
        })
    }

    fn opts(&self) -> mysql_async::Opts {
        self.inner
            .opts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) async fn connect(&self) -> Result<MysqlConn, ConnectFailure> {
        let opts = self.opts();
        let conn = match mysql_async::Conn::new(opts.clone()).await {
            Ok(conn) => conn,
            Err(error) => {
                let Some(name) = self.name_for_verify_ca(&error) else {
                    return Err(ConnectFailure::Driver(error));
                };
                // mysql_async's rustls cannot skip the host name check (it
                // looks for a message rustls no longer writes), so VERIFY_CA
                // checks the certificate against a name it carries. That
                // name came out of a chain the CA verified (rustls checks
                // the chain first), and every later connection is verified
                // in full against it.
                let ssl = opts
                    .ssl_opts()
                    .cloned()
                    .unwrap_or_default()
                    .with_danger_tls_hostname_override(Some(name));
                let opts: mysql_async::Opts = mysql_async::OptsBuilder::from_opts(opts)
                    .ssl_opts(ssl)
                    .into();
                *self
                    .inner
                    .opts
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = opts.clone();
                mysql_async::Conn::new(opts)
                    .await
                    .map_err(ConnectFailure::Driver)?
            }
        };
        // Runs diesel-async's session setup (UTC, utf8mb4), as `establish`.
        MysqlConn::try_from(conn)
            .await
            .map_err(ConnectFailure::Setup)
    }

    /// The pool's way to make a connection.
    fn setup(&self) -> diesel_async::pooled_connection::SetupCallback<MysqlConn> {
        let connector = self.clone();
        Box::new(move |_url| {
            let connector = connector.clone();
            Box::pin(async move {
                connector
                    .connect()
                    .await
                    .map_err(|failure| connector.connection_error(failure))
            })
        })
    }

    pub(crate) fn connection_error(&self, failure: ConnectFailure) -> ConnectionError {
        match failure {
            ConnectFailure::Driver(error) => ConnectionError::BadConnection(
                self.tls_problem(&error)
                    .unwrap_or_else(|| error.to_string()),
            ),
            ConnectFailure::Setup(error) => error,
        }
    }

    /// One connection, made and closed within `limit`: a TLS refusal is
    /// told in words that name the setting to change.
    async fn check(&self, limit: Duration) -> Result<(), StorageError> {
        match tokio::time::timeout(limit, self.connect()).await {
            Err(_) => Err(StorageError::Timeout),
            Ok(Ok(conn)) => {
                drop(conn);
                Ok(())
            }
            Ok(Err(ConnectFailure::Driver(error))) => Err(match self.tls_problem(&error) {
                Some(problem) => StorageError::Tls(problem),
                None => StorageError::Connect(ConnectionError::BadConnection(error.to_string())),
            }),
            Ok(Err(ConnectFailure::Setup(error))) => Err(StorageError::Connect(error)),
        }
    }

    /// Under `VERIFY_CA`, a name the server's certificate carries when the
    /// connection failed on its host name alone.
    fn name_for_verify_ca(&self, error: &mysql_async::Error) -> Option<String> {
        if self.inner.tls.as_ref()?.mode != SslMode::VerifyCa {
            return None;
        }
        let rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
            presented,
            ..
        }) = rustls_error(error)?
        else {
            return None;
        };
        // webpki writes them as `DnsName("db.example")` and
        // `IpAddress(10.0.0.1)`.
        presented.iter().find_map(|name| {
            if let Some(dns) = name
                .strip_prefix("DnsName(\"")
                .and_then(|rest| rest.strip_suffix("\")"))
            {
                // A wildcard stands for any one label.
                return Some(match dns.strip_prefix("*.") {
                    Some(domain) => format!("any.{domain}"),
                    None => dns.to_owned(),
                });
            }
            name.strip_prefix("IpAddress(")
                .and_then(|rest| rest.strip_suffix(')'))
                .map(str::to_owned)
        })
    }

    /// What went wrong with TLS, naming the setting to look at; `None` when
    /// the failure has nothing to do with TLS.
    fn tls_problem(&self, error: &mysql_async::Error) -> Option<String> {
        let tls = self.inner.tls.as_ref()?;
        let mode = tls.mode.as_str();
        if matches!(
            error,
            mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer)
        ) {
            return Some(format!(
                "the server offers no TLS, which ssl_mode / DB_SSL_MODE {mode} requires"
            ));
        }
        let cause = rustls_error(error)?;
        Some(match (cause, &tls.ca) {
            (
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                ),
                _,
            ) => format!(
                "the server's certificate does not name the host of the URL ({cause}); \
                 ssl_mode / DB_SSL_MODE is {mode} (the default with ssl_ca): connect by a \
                 name the certificate carries, or check the CA only with VERIFY_CA"
            ),
            (rustls::Error::InvalidCertificate(_), Some(ca)) => format!(
                "the server's certificate is not trusted by ssl_ca / DB_SSL_CA ({}): {cause}",
                ca.display()
            ),
            (rustls::Error::InvalidCertificate(_), None) => format!(
                "the server's certificate is not trusted by the built-in public roots \
                 ({cause}); name its CA with ssl_ca / DB_SSL_CA"
            ),
            _ => format!("TLS failed (ssl_mode / DB_SSL_MODE {mode}): {cause}"),
        })
    }
}

fn ssl_opts(tls: &TlsTarget) -> Result<mysql_async::SslOpts, StorageError> {
    // rustls takes the process's default provider, and finds none when two
    // are compiled in (a crate elsewhere may bring ring): name ours. An
    // error only says that one is installed already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut ssl = mysql_async::SslOpts::default();
    if let Some(path) = &tls.ca {
        // Read once, here: a missing or wrong file stops the start instead
        // of failing every connection.
        let pem = std::fs::read(path).map_err(|error| {
            StorageError::Tls(format!(
                "ssl_ca / DB_SSL_CA: cannot read {}: {error}",
                path.display()
            ))
        })?;
        if !pem
            .windows(PEM_CERTIFICATE.len())
            .any(|window| window == PEM_CERTIFICATE)
        {
            return Err(StorageError::Tls(format!(
                "ssl_ca / DB_SSL_CA: {} holds no PEM certificate",
                path.display()
            )));
        }
        // The CA given is the only one trusted.
        ssl = ssl
            .with_root_certs(vec![pem.into()])
            .with_disable_built_in_roots(true);
    }
    if tls.mode == SslMode::Required {
        // REQUIRED without a CA, as MySQL's clients: encrypted, but whoever
        // answers on the way is believed.
        ssl = ssl.with_danger_accept_invalid_certs(true);
    }
    Ok(ssl)
}

/// The rustls error under a mysql_async one: handshake errors come wrapped
/// in an `io::Error`, configuration ones as mysql_async's `TlsError`.
fn rustls_error(error: &mysql_async::Error) -> Option<&rustls::Error> {
    match error {
        mysql_async::Error::Io(mysql_async::IoError::Tls(mysql_async::TlsError::Tls(error))) => {
            Some(error)
        }
        mysql_async::Error::Io(mysql_async::IoError::Io(error)) => {
            error.get_ref()?.downcast_ref::<rustls::Error>()
        }
        _ => None,
    }
}

impl Pools {
    /// Builds the pool, proves the database answers, and brings its schema
    /// up to date.
    pub(crate) async fn connect(
        config: &StorageConfig,
        checkouts: Arc<AtomicU64>,
    ) -> Result<Pools, StorageError> {
        let timeout = Some(config.pool_timeout);
        let size = |default| match config.pool_size {
            0 => default,
            size => size,
        };
        match &config.url {
            DatabaseUrl::Sqlite(path) => {
                // Before the first pooled connection, which switches the
                // file to WAL: a database we must not touch stays as it was.
                crate::original::refuse_foreign(crate::original::inspect(&config.url).await?)?;
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
                    .post_create(count_checkout(checkouts.clone()))
                    .post_recycle(count_checkout(checkouts))
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
                // After the first connection has made the file a WAL one.
                let checkpoints = Checkpoints::start(path, SQLITE_SETUP).await?;
                Ok(Pools::Sqlite(
                    pool,
                    WriteGate::new(config.pool_timeout),
                    checkpoints,
                ))
            }
            DatabaseUrl::Mysql(url) => {
                let connector = MysqlConnector::new(url)?;
                let mut manager_config = ManagerConfig::<MysqlConn>::default();
                manager_config.recycling_method = RecyclingMethod::Fast;
                manager_config.custom_setup = connector.setup();
                let manager = AsyncDieselConnectionManager::new_with_config(url, manager_config);
                let ping_limit = config.pool_timeout;
                let pool = Pool::builder(manager)
                    .max_size(size(MYSQL_DEFAULT_POOL_SIZE))
                    .post_create(count_checkout(checkouts.clone()))
                    .post_recycle(count_checkout(checkouts))
                    .wait_timeout(timeout)
                    .create_timeout(timeout)
                    .recycle_timeout(timeout)
                    .pre_recycle(Hook::async_fn(move |conn, metrics| {
                        ping_if_idle(conn, metrics, ping_limit)
                    }))
                    .runtime(Runtime::Tokio1)
                    .build()
                    .map_err(StorageError::PoolBuild)?;
                // The pool would hide why a connection failed: a wrong CA or
                // host name must stop the start with a line that says so.
                connector.check(config.pool_timeout).await?;
                // Fails fast (within the create timeout) when the server is
                // unreachable, before the migration connection could hang.
                let mut conn = pool.get().await?;
                // Before the migrations create their table.
                crate::original::refuse_foreign(crate::original::mysql_layout(&mut conn).await?)?;
                drop(conn);
                run_mysql_migrations(connector.clone()).await?;
                Ok(Pools::Mysql(pool))
            }
        }
    }

    pub(crate) fn status(&self) -> deadpool::Status {
        match self {
            Self::Sqlite(pool, ..) => pool.status(),
            Self::Mysql(pool) => pool.status(),
        }
    }
}

/// Counts a connection handed out by the pool: deadpool runs `post_create`
/// on a new one and `post_recycle` on every idle one it hands out again, so
/// the two add up to the checkouts (`db_pool_checkouts_total`, which the
/// bench reads to show that a cached read costs none).
fn count_checkout<C>(checkouts: Arc<AtomicU64>) -> Hook<C>
where
    C: diesel_async::AsyncConnection + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager<Type = C, Error = ManagerError>,
{
    Hook::sync_fn(move |_conn, _metrics| {
        checkouts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })
}

/// One MySQL connection made as the pool makes its own, for the takeover's
/// reader and writer, which must not hold pooled ones for minutes.
pub(crate) async fn mysql_connection(url: &str) -> Result<MysqlConn, StorageError> {
    let connector = MysqlConnector::new(url)?;
    connector
        .connect()
        .await
        .map_err(|failure| StorageError::Connect(connector.connection_error(failure)))
}

/// Diesel's migration harness is synchronous. For MySQL it drives the async
/// connection through `AsyncConnectionWrapper`, which blocks on a runtime;
/// giving it a thread and a small runtime of its own makes that work
/// whatever runtime (or flavor) the caller runs on.
async fn run_mysql_migrations(connector: MysqlConnector) -> Result<(), StorageError> {
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
                let conn = runtime.block_on(connector.connect()).map_err(|failure| {
                    StorageError::Connect(connector.connection_error(failure))
                })?;
                let mut conn = AsyncConnectionWrapper::<MysqlConn>::from(conn);
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
