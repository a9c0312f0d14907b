use std::fmt::Display;

/// Why a command failed. Each layer's error is kept as the source, so the
/// message printed at exit says what was being done and why it failed.
#[derive(Debug, thiserror::Error)]
pub enum XtaskError {
    #[error("configuration: {0}")]
    Settings(#[from] server::settings::SettingsError),
    #[error("starting the repository: {0}")]
    Startup(#[from] server::StartupError),
    #[error("repository: {0}")]
    Repo(#[from] domain::RepoError),
    #[error("cache: {0}")]
    Cache(#[from] cache::CacheError),
    #[error("redis: {0}")]
    Redis(#[from] cache::redis::RedisError),
    #[error("goose: {0}")]
    Goose(#[from] Box<goose::GooseError>),
    #[error("mysql: {0}")]
    Mysql(String),
    /// The cause is printed on its own line by `main`.
    #[error("{context}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

impl XtaskError {
    pub fn io(context: impl Display, source: std::io::Error) -> Self {
        Self::Io {
            context: context.to_string(),
            source,
        }
    }
}

impl From<goose::GooseError> for XtaskError {
    fn from(error: goose::GooseError) -> Self {
        Self::Goose(Box::new(error))
    }
}
