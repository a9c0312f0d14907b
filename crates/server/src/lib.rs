//! Wiring: settings to storage, cache and HTTP. The binary in `main.rs`
//! and the tools in `xtask` both start from here.

pub mod settings;
mod telemetry;

use std::net::TcpListener;

use actix_web::dev::ServerHandle;
use cache::CachedRepository;
use storage::Storage;

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
    let storage = Storage::connect(&settings.database)
        .await
        .map_err(|source| StartupError::Database {
            url: settings.database.url.to_string(),
            source,
        })?;
    Ok(CachedRepository::new(storage, settings.cache.clone())?)
}

/// A server running in the background of the current runtime.
pub struct RunningServer {
    pub port: u16,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

/// Binds `HOST:PORT` (port 0 picks a free one), builds the repository and
/// serves in the background. Tests and tools use this; `main` uses [`run`].
pub async fn spawn(settings: Settings) -> Result<RunningServer, StartupError> {
    let address = format!("{}:{}", settings.host, settings.port);
    let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
        address: address.clone(),
        source,
    })?;
    let port = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { address, source })?
        .port();
    let repository = build_repository(&settings).await?;
    let server =
        http::serve(repository, settings.http, listener).map_err(|source| StartupError::Bind {
            address: format!("port {port}"),
            source,
        })?;
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(RunningServer { port, handle, task })
}

/// Serves until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(settings: Settings) -> Result<(), StartupError> {
    let address = format!("{}:{}", settings.host, settings.port);
    let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
        address: address.clone(),
        source,
    })?;
    let repository = build_repository(&settings).await?;
    tracing::info!(
        %address,
        database = %settings.database.url,
        cache = if settings.cache.disabled { "disabled" } else { settings.cache.redis_url.as_str() },
        workers = settings.http.workers,
        "serving"
    );
    http::serve(repository, settings.http, listener)
        .map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?
        .await
        .map_err(|source| StartupError::Bind { address, source })
}
