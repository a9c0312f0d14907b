//! Wiring: settings to storage, cache and HTTP. The binary in `main.rs`
//! and the tools in `xtask` both start from here.

pub mod api_keys;
pub mod healthcheck;
pub mod listener;
pub mod migrate_original;
mod runtime;
pub mod settings;
mod shutdown;
mod telemetry;
pub mod tls;

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use actix_web::dev::ServerHandle;
use cache::CachedRepository;
use storage::Storage;

pub use runtime::IoRuntime;
pub use settings::{LogFormat, Settings, SettingsError};
pub use telemetry::init_logging;

/// The repository the service runs on: the database behind the cache
/// (which is a pass-through when `CACHE_DISABLED` is set).
pub type AppRepository = CachedRepository<Storage>;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database {url}: {source}")]
    Database {
        url: String,
        #[source]
        source: storage::StorageError,
    },
    #[error("cache: {0}")]
    Cache(#[from] cache::CacheError),
    #[error("cannot start the I/O runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("socket activation: {0}")]
    InheritedSocket(#[from] listener::InheritedSocketError),
    #[error("cannot load the API keys: {0}")]
    ApiKeys(#[source] domain::RepoError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

/// Connects to the database (running its migrations) and puts the cache in
/// front of it. The cache connects lazily: Redis may be down at start.
pub async fn build_repository(settings: &Settings) -> Result<AppRepository, StartupError> {
    let storage = connect_storage(settings.clone()).await?;
    Ok(CachedRepository::new(storage, settings.cache.clone())?)
}

async fn connect_storage(settings: Settings) -> Result<Storage, StartupError> {
    Storage::connect(&settings.database)
        .await
        .map_err(|source| StartupError::Database {
            url: settings.database.url.to_string(),
            source,
        })
}

/// Builds the repository with its database connected on a new I/O runtime:
/// the storage runs every operation on the runtime it was connected on. The
/// cache runs on the HTTP workers (each with its own Redis connection, see
/// the cache crate), so a hit never leaves its worker.
async fn repository_on_runtime(
    settings: &Settings,
) -> Result<(IoRuntime, AppRepository, Storage), StartupError> {
    let runtime = IoRuntime::new().map_err(StartupError::Runtime)?;
    let storage = runtime
        .handle()
        .spawn(connect_storage(settings.clone()))
        .await
        .map_err(|error| StartupError::Runtime(std::io::Error::other(error)))??;
    let repository = CachedRepository::new(storage.clone(), settings.cache.clone())?;
    Ok((runtime, repository, storage))
}

/// The API keys, loaded once before the first request (a start that
/// cannot read them stops, as one that cannot reach the database), then
/// reloaded every `API_KEY_REFRESH_MS` by a task on the current runtime.
async fn api_keys(
    settings: &Settings,
    storage: Storage,
) -> Result<(http::KeyRing, tokio::task::JoinHandle<()>), StartupError> {
    let ring = http::KeyRing::default();
    let loaded = http::load_keys(&storage, &ring)
        .await
        .map_err(StartupError::ApiKeys)?;
    tracing::debug!(keys = loaded, "API keys loaded");
    // tokio's spawn, not actix's (see run_on).
    let refresher = tokio::spawn(http::refresh_keys(
        storage,
        ring.clone(),
        settings.api_key_refresh,
    ));
    Ok((ring, refresher))
}

/// Binds `HOST:PORT` (each address it resolves to, in turn, as std's bind
/// does) with `BACKLOG` pending connections; std's own bind would fix it.
fn bind(settings: &Settings) -> Result<TcpListener, StartupError> {
    let address = format!("{}:{}", settings.host, settings.port);
    let failed = |source| StartupError::Bind {
        address: address.clone(),
        source,
    };
    let mut last = None;
    for candidate in address.to_socket_addrs().map_err(failed)? {
        match bind_one(candidate, settings.backlog) {
            Ok(listener) => return Ok(listener),
            Err(error) => last = Some(error),
        }
    }
    Err(failed(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "resolves to no address")
    })))
}

fn bind_one(address: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    // As std does: a restarted server rebinds at once, whatever connections
    // of the previous one are still in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

fn address(settings: &Settings, listener: &TcpListener) -> String {
    listener.local_addr().map_or_else(
        |_| format!("{}:{}", settings.host, settings.port),
        |address| address.to_string(),
    )
}

/// The server on `listener`, with HTTPS when a certificate is configured;
/// then also the task that reloads the certificate (SIGHUP, file changes).
fn serve(
    settings: &Settings,
    repository: AppRepository,
    listener: TcpListener,
    drain: http::Drain,
    keys: http::KeyRing,
) -> Result<(actix_web::dev::Server, Option<tokio::task::JoinHandle<()>>), StartupError> {
    let address = address(settings, &listener);
    let (tls, reloader) = match &settings.tls {
        None => (None, None),
        Some(files) => {
            let certificate = Arc::new(tls::ReloadingCertificate::new(files.initial.clone()));
            let config = tls::server_config(certificate.clone());
            // tokio's spawn, not actix's (see run_on).
            let reloader = tokio::spawn(tls::reload_on_change(files.clone(), certificate));
            (Some(config), Some(reloader))
        }
    };
    let mut http = settings.http.clone();
    // The rate limit's budgets live in Redis, beside the cache, so that
    // every instance shares them; without Redis each process keeps its own.
    if http.rate_limits.quota.is_some() && !settings.cache.disabled {
        http.rate_limits.store = Some(Arc::new(cache::RedisRateStore::new(&settings.cache)?));
    }
    let server = http::serve(repository, http, listener, tls, drain, keys)
        .map_err(|source| StartupError::Bind { address, source })?;
    Ok((server, reloader))
}

/// A server running in the background of the current runtime.
pub struct RunningServer {
    pub port: u16,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    reloader: Option<tokio::task::JoinHandle<()>>,
    key_refresher: tokio::task::JoinHandle<()>,
    _runtime: IoRuntime,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(self) {
        // Awaited, so that its handle on the storage (and the SQLite file
        // or MySQL sessions of the pool) is gone once this returns: a
        // caller may go on to a tool that needs the database to itself.
        self.key_refresher.abort();
        let _ = self.key_refresher.await;
        self.handle.stop(true).await;
        let _ = self.task.await;
        if let Some(reloader) = self.reloader {
            reloader.abort();
        }
    }
}

/// Binds `HOST:PORT` (port 0 picks a free one), builds the repository and
/// serves in the background. Tests and tools use this; `main` uses [`run`].
pub async fn spawn(settings: Settings) -> Result<RunningServer, StartupError> {
    let listener = bind(&settings)?;
    let port = listener
        .local_addr()
        .map_or(settings.port, |address| address.port());
    let (runtime, repository, storage) = repository_on_runtime(&settings).await?;
    let (keys, key_refresher) = api_keys(&settings, storage).await?;
    let (server, reloader) = serve(
        &settings,
        repository,
        listener,
        http::Drain::default(),
        keys,
    )?;
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(RunningServer {
        port,
        handle,
        task,
        reloader,
        key_refresher,
        _runtime: runtime,
    })
}

/// Serves on `HOST:PORT` until SIGINT or SIGTERM, then stops gracefully.
pub async fn run(settings: Settings) -> Result<(), StartupError> {
    run_on(settings, None).await
}

/// Serves on `inherited` (socket activation, see [`listener::inherited`])
/// or, without one, on `HOST:PORT`, until SIGINT or SIGTERM; then stops
/// without dropping a request (see `shutdown.rs`).
pub async fn run_on(
    settings: Settings,
    inherited: Option<TcpListener>,
) -> Result<(), StartupError> {
    let activated = inherited.is_some();
    let listener = match inherited {
        Some(listener) => listener,
        None => bind(&settings)?,
    };
    let (_runtime, repository, storage) = repository_on_runtime(&settings).await?;
    let keeper = storage.clone();
    let (keys, _key_refresher) = api_keys(&settings, storage).await?;
    let address = address(&settings, &listener);
    tracing::info!(
        %address,
        socket = if activated { "inherited" } else { "bound" },
        database = %settings.database.url,
        cache = if settings.cache.disabled { "disabled" } else { settings.cache.redis_url.as_str() },
        workers = settings.http.workers,
        api_keys = ?settings.http.api_key_required,
        scheme = if settings.tls.is_some() { "https" } else { "http" },
        "serving"
    );
    let drain = http::Drain::default();
    let settling = repository.clone();
    let (server, _reloader) = serve(&settings, repository, listener, drain.clone(), keys)?;
    // tokio's spawn, not actix's: `cargo xtask serve` runs this on a plain
    // tokio runtime, where actix's local spawn panics.
    tokio::spawn(shutdown::stop_on_signal(
        server.handle(),
        drain,
        settings.shutdown_delay,
    ));
    let served = server
        .await
        .map_err(|source| StartupError::Bind { address, source });
    if !settling.settle(SETTLE_BEFORE_EXIT).await {
        tracing::warn!(
            "exiting with the cache dirty: other instances may serve entries from before this \
             process's last writes until their TTL ends"
        );
    }
    if !keeper.full_list_kept(KEEP_BEFORE_EXIT).await {
        tracing::warn!(
            "exiting before the full list was kept in the database: the next process to start \
             walks the orders above what was kept"
        );
    }
    served
}

/// How long a stopping process waits for the full list's refresh in
/// progress and its keeper (see `storage::Storage::full_list_kept`): at
/// 1,000,000 orders a walk and the writing of 320 MB take about that long
/// here; a keeper cut short leaves what it wrote usable. With the 3 s of
/// `SETTLE_BEFORE_EXIT`, `TimeoutStopSec=60s` covers it.
const KEEP_BEFORE_EXIT: std::time::Duration = std::time::Duration::from_secs(20);

/// How long a stopping process goes on trying to repair a dirty cache
/// (see `CachedRepository::settle`); `TimeoutStopSec=60s` covers it.
const SETTLE_BEFORE_EXIT: std::time::Duration = std::time::Duration::from_secs(3);
