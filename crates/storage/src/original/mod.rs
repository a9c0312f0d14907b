//! Taking over a database of the original service, and giving it back.
//!
//! - [`inspect`] tells what a database holds without writing to it; the
//!   storage refuses to start on the original's tables or on tables
//!   nobody expected, before it creates anything.
//! - [`survey`] (the dry run) reads every row and reports what the
//!   contract cannot hold as it is; [`apply`] migrates under the user's
//!   [`Decisions`] and refuses while a kind of problem has none.
//! - [`rollback`] writes the current orders back into the original's
//!   schema; [`drop_backup`] drops the original's rows kept after apply.
//!
//! SQLite does each in one transaction. MySQL commits DDL at once, so
//! apply and rollback build the new tables beside the old ones and switch
//! with one atomic `RENAME TABLE`: interrupted anywhere, the database is as
//! it was or fully switched, and a rerun clears what an interrupted run
//! left.

mod convert;
mod ddl;
mod layout;
mod mysql;
mod problems;
mod report;
mod sqlite;
mod tables;

use std::sync::Arc;

/// The original's tables as its SQLAlchemy models create them on SQLite,
/// for tools that build databases of the original (the bench's fixture).
pub const ORIGINAL_SQLITE_DDL: &str = ddl::ORIGINAL_SQLITE;
/// The same on MySQL (the database's default character set applies).
pub const ORIGINAL_MYSQL_DDL: &str = ddl::ORIGINAL_MYSQL;
pub use layout::Layout;
pub use problems::{BadIds, DecisionError, Decisions, EmptyOrders, Problem};
pub use report::{Example, Report};

use crate::{DatabaseUrl, StorageError};

/// Orders read and written per batch: a batch and its items are all a
/// migration holds in memory (about 10 MB at 5 items an order).
const BATCH: usize = 10_000;

/// Where a long step is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub stage: Stage,
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading (and, applying, copying) the original's orders.
    Orders,
    /// Writing the current orders back into the original's tables.
    RollingBack,
    /// About to switch the tables (MySQL's `RENAME TABLE`, SQLite's commit).
    Switching,
}

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// What `apply` did.
#[derive(Debug, Clone)]
pub enum Applied {
    Migrated(Report),
    /// Some kinds of problem have no decision: nothing was changed.
    Refused(Report),
    /// The database was migrated before; nothing to do.
    AlreadyMigrated,
}

/// What `rollback` wrote into the original's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolledBack {
    pub orders: u64,
    pub items: u64,
}

/// What the database holds, read without writing anything.
pub async fn inspect(url: &DatabaseUrl) -> Result<Layout, StorageError> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let path = path.clone();
            blocking(move || sqlite::inspect(&path)).await
        }
        DatabaseUrl::Mysql(url) => mysql::inspect(url).await,
    }
}

/// The refusal the service gives at start for a database it must not
/// touch, or nothing when it may go on (empty, or ours).
pub(crate) fn refuse_foreign(layout: Layout) -> Result<(), StorageError> {
    match layout {
        Layout::Empty | Layout::Ours { .. } => Ok(()),
        Layout::Original { .. } => Err(StorageError::OriginalDatabase),
        Layout::Unknown { tables } => Err(StorageError::UnexpectedTables(tables.join(", "))),
    }
}

/// What a MySQL database holds, on a connection of the caller's.
pub(crate) async fn mysql_layout(
    conn: &mut diesel_async::AsyncMysqlConnection,
) -> Result<Layout, StorageError> {
    mysql::layout(conn).await
}

/// The dry run: reads every row of the original's tables and reports.
/// `None` when the database does not hold the original's tables.
pub async fn survey(
    url: &DatabaseUrl,
    decisions: Decisions,
    examples_per_kind: usize,
    progress: ProgressFn,
) -> Result<(Layout, Option<Report>), StorageError> {
    if let DatabaseUrl::Sqlite(path) = url
        && !path.exists()
    {
        return Err(takeover(format!(
            "{}: no such database file",
            path.display()
        )));
    }
    let layout = inspect(url).await?;
    if !matches!(layout, Layout::Original { .. }) {
        return Ok((layout, None));
    }
    let report = match url {
        DatabaseUrl::Sqlite(path) => {
            let path = path.clone();
            blocking(move || sqlite::survey(&path, &decisions, examples_per_kind, &progress))
                .await?
        }
        DatabaseUrl::Mysql(url) => {
            mysql::survey(url, &decisions, examples_per_kind, &progress).await?
        }
    };
    Ok((layout, Some(report)))
}

/// Migrates the original's tables into ours, keeping its rows in
/// `original_orders` and `original_order_items`.
pub async fn apply(
    url: &DatabaseUrl,
    decisions: Decisions,
    examples_per_kind: usize,
    progress: ProgressFn,
) -> Result<Applied, StorageError> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let path = path.clone();
            blocking(move || sqlite::apply(&path, &decisions, examples_per_kind, &progress)).await
        }
        DatabaseUrl::Mysql(url) => {
            mysql::apply(url, &decisions, examples_per_kind, &progress).await
        }
    }
}

/// Writes the current orders into the original's schema and removes this
/// service's tables (and the backups): the original can start on it again.
pub async fn rollback(url: &DatabaseUrl, progress: ProgressFn) -> Result<RolledBack, StorageError> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let path = path.clone();
            blocking(move || sqlite::rollback(&path, &progress)).await
        }
        DatabaseUrl::Mysql(url) => mysql::rollback(url, &progress).await,
    }
}

/// Drops the original's rows kept by `apply`; false when there were none.
pub async fn drop_backup(url: &DatabaseUrl) -> Result<bool, StorageError> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let path = path.clone();
            blocking(move || sqlite::drop_backup(&path)).await
        }
        DatabaseUrl::Mysql(url) => mysql::drop_backup(url).await,
    }
}

/// SQLite's work is synchronous: it runs on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(StorageError::Task)?
}

/// Epoch milliseconds of the migration: the original kept no timestamps,
/// so every migrated order is created and updated "now".
fn now_millis() -> i64 {
    domain::Timestamp::now().as_millis()
}

fn takeover(message: impl Into<String>) -> StorageError {
    StorageError::Takeover(message.into())
}

/// The refusal for a database `apply` cannot migrate.
fn not_original(layout: &Layout) -> StorageError {
    takeover(format!(
        "nothing to migrate: the database holds {layout}, not the original service's tables"
    ))
}
