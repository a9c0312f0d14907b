//! What can go wrong in storage, and how it maps onto the domain's errors:
//! anything that means "the database cannot be reached in time" is
//! `Unavailable` (the http layer answers 503), everything else `Internal`.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use domain::RepoError;

type PoolError = diesel_async::pooled_connection::deadpool::PoolError;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "unsupported database URL scheme '{scheme}': use sqlite:///<path> or mysql://<user>:<password>@<host>:<port>/<database>"
    )]
    UnsupportedScheme { scheme: String },
    #[error("invalid database URL '{url}': {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("could not build the connection pool")]
    PoolBuild(#[source] deadpool::managed::BuildError),
    #[error("no database connection could be had")]
    Pool(#[source] PoolError),
    #[error("could not connect to the database")]
    Connect(#[source] diesel::ConnectionError),
    #[error("a database query failed")]
    Query(#[source] DieselError),
    #[error("running the database migrations failed: {0}")]
    Migration(String),
    /// A TLS connection to MySQL was refused at start: the message names
    /// the setting to change.
    #[error("TLS to the database: {0}")]
    Tls(String),
    /// Found at start, before anything is written: the original service's
    /// tables, which `server migrate-original` takes over.
    #[error(
        "it holds the original service's tables (orders, order_items) and none of this service's; nothing was changed. \
         Migrate it with `server migrate-original` (a dry run that changes nothing), then `server migrate-original --apply`"
    )]
    OriginalDatabase,
    /// Found at start, before anything is written.
    #[error(
        "it holds tables neither this service nor the original made ({0}); nothing was changed. \
         Point DATABASE_URL at an empty database or at one of this service's"
    )]
    UnexpectedTables(String),
    /// A migration from or back to the original that cannot go on.
    #[error("{0}")]
    Takeover(String),
    #[error("the idempotency key was already used with a different request")]
    IdempotencyMismatch,
    #[error("a stored row is invalid: {0}")]
    CorruptRow(String),
    #[error("the storage task failed")]
    Task(#[source] tokio::task::JoinError),
    #[error("the database did not answer in time")]
    Timeout,
    /// A SQLite write waited longer than the pool timeout for the writes
    /// queued ahead of it (see `write_gate`): a bigger pool would not help.
    #[error("no turn to write in time: other SQLite writes were queued ahead")]
    WriteQueue,
    /// The full list's refresh this request queued behind failed, and
    /// began after the request arrived: trying again at once would fail
    /// the same way.
    #[error("the full-list refresh this request waited for failed")]
    RefreshFailed { unavailable: bool },
    /// Writing or reading the file a large list is spooled to.
    #[error("the list spool file failed")]
    Spool(#[source] std::io::Error),
    #[error("could not start the SQLite checkpoint thread")]
    Checkpoint(#[source] std::io::Error),
}

impl From<DieselError> for StorageError {
    fn from(error: DieselError) -> Self {
        Self::Query(error)
    }
}

impl From<PoolError> for StorageError {
    fn from(error: PoolError) -> Self {
        Self::Pool(error)
    }
}

impl StorageError {
    /// True when retrying the whole transaction may succeed: a MySQL
    /// deadlock (1213) or lock wait timeout (1205). mysql_async reports both
    /// as a server error that diesel-async files under `Unknown`, keeping
    /// only the message, and both messages end in this advice.
    pub(crate) fn is_lock_conflict(&self) -> bool {
        match self {
            Self::Query(DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => {
                true
            }
            Self::Query(DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)) => {
                info.message().contains("try restarting transaction")
            }
            _ => false,
        }
    }

    pub(crate) fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            Self::Query(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }

    /// True when the connection that produced this error is gone and must
    /// not go back to the pool.
    pub(crate) fn is_connection_lost(&self) -> bool {
        match self {
            Self::Query(DieselError::DatabaseError(kind, info)) => match kind {
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                    true
                }
                // mysql_async's I/O and driver errors arrive here as
                // `Unknown` carrying only the driver's text.
                DatabaseErrorKind::Unknown => is_connection_message(info.message()),
                _ => false,
            },
            _ => false,
        }
    }

    pub(crate) fn is_unavailable(&self) -> bool {
        match self {
            Self::Pool(_) | Self::Connect(_) | Self::Timeout | Self::WriteQueue => true,
            Self::RefreshFailed { unavailable } => *unavailable,
            // SQLite's busy_timeout ran out: the database is overloaded.
            Self::Query(DieselError::DatabaseError(_, info))
                if info.message().contains("database is locked") =>
            {
                true
            }
            error => error.is_connection_lost(),
        }
    }
}

/// Texts of mysql_async's I/O and driver errors, and of the server errors
/// that mean this connection is finished.
fn is_connection_message(message: &str) -> bool {
    const SIGNS: [&str; 9] = [
        "Input/output error",
        "Connection to the server is closed",
        "Connection refused",
        "Connection reset",
        "Broken pipe",
        "Packet out of order",
        "Unexpected packet",
        "Connection was killed",
        "Server shutdown in progress",
    ];
    SIGNS.iter().any(|sign| message.contains(sign))
}

impl From<StorageError> for RepoError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::IdempotencyMismatch => RepoError::IdempotencyMismatch,
            error if error.is_unavailable() => RepoError::Unavailable(Box::new(error)),
            error => RepoError::Internal(Box::new(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &str) -> StorageError {
        StorageError::Query(DieselError::DatabaseError(
            kind,
            Box::new(message.to_owned()),
        ))
    }

    #[test]
    fn connection_trouble_is_unavailable_and_the_rest_internal() {
        let timeout = PoolError::Timeout(deadpool::managed::TimeoutType::Wait);
        assert!(matches!(
            RepoError::from(StorageError::from(timeout)),
            RepoError::Unavailable(_)
        ));
        assert!(matches!(
            RepoError::from(database_error(DatabaseErrorKind::ClosedConnection, "gone")),
            RepoError::Unavailable(_)
        ));
        assert!(matches!(
            RepoError::from(database_error(
                DatabaseErrorKind::Unknown,
                "Input/output error: Connection reset by peer (os error 104)"
            )),
            RepoError::Unavailable(_)
        ));
        assert!(matches!(
            RepoError::from(database_error(DatabaseErrorKind::UniqueViolation, "dup")),
            RepoError::Internal(_)
        ));
        assert!(matches!(
            RepoError::from(StorageError::CorruptRow("bad".into())),
            RepoError::Internal(_)
        ));
        assert!(matches!(
            RepoError::from(StorageError::IdempotencyMismatch),
            RepoError::IdempotencyMismatch
        ));
    }

    #[test]
    fn mysql_deadlocks_and_lock_waits_are_retryable() {
        let deadlock = database_error(
            DatabaseErrorKind::Unknown,
            "Deadlock found when trying to get lock; try restarting transaction",
        );
        let lock_wait = database_error(
            DatabaseErrorKind::Unknown,
            "Lock wait timeout exceeded; try restarting transaction",
        );
        assert!(deadlock.is_lock_conflict() && lock_wait.is_lock_conflict());
        assert!(!database_error(DatabaseErrorKind::Unknown, "syntax").is_lock_conflict());
    }
}
