//! SQLite's WAL checkpoints, off the request path.
//!
//! Left to itself, SQLite checkpoints in the connection whose commit takes
//! the WAL past 1,000 pages (4 MB): that commit copies the pages into the
//! database file and syncs it before it returns, and the write queue
//! (`write_gate`) waits behind it. Under the full list's keeper, which
//! writes up to 2 MB a round, that was a `POST` every few seconds taking
//! 40-50 ms in the handler instead of 2-3 (the mixed scenario at 1,000,000
//! orders on SQLite, from the server's debug log).
//!
//! So a task of its own runs a `PASSIVE` checkpoint every [`EVERY`], on a
//! connection of its own. A passive checkpoint takes no lock a writer or a
//! reader waits for: it copies what no reader still needs, beside the
//! writes. SQLite writes the WAL from its start again when a writer begins
//! after a checkpoint copied all of it, so between writes a few
//! milliseconds apart the WAL stays far below 1,000 pages and commits no
//! longer checkpoint. SQLite's own checkpoint on commit is left on, as the
//! bound: under writes that never pause (a checkpoint beside them never
//! catches up, and the WAL is never rewound) it is what keeps the WAL at
//! about 4 MB, as before.
//!
//! The task stops when the storage is dropped; its connection closes after
//! the checkpoint in progress, if any, and the last connection to close
//! checkpoints whatever is left, as SQLite always does.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use tokio::task::{AbortHandle, spawn_blocking};

use crate::StorageError;

/// How often the WAL is checkpointed: often enough that under the keeper's
/// 2 MB rounds and the writes between them it is copied (and then rewound)
/// before it nears the 1,000 pages of a checkpoint on commit, rarely
/// enough that an idle database costs nothing to speak of.
pub(crate) const EVERY: Duration = Duration::from_millis(100);

/// The checkpointing task of one SQLite database, stopped on drop.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    task: AbortHandle,
}

impl Checkpoints {
    /// Opens the task's connection, with the pool's settings (so its
    /// `busy_timeout` covers a writer that is switching the file to WAL),
    /// and starts the task on the current runtime.
    pub(crate) async fn start(
        path: &str,
        setup: &'static str,
    ) -> Result<Checkpoints, StorageError> {
        let path = path.to_owned();
        let conn = spawn_blocking(move || {
            let mut conn = SqliteConnection::establish(&path).map_err(StorageError::Connect)?;
            conn.batch_execute(setup)?;
            Ok::<_, StorageError>(conn)
        })
        .await
        .map_err(StorageError::Task)??;
        let task = tokio::spawn(checkpoint_forever(conn)).abort_handle();
        Ok(Checkpoints { task })
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn checkpoint_forever(mut conn: SqliteConnection) {
    let mut failing = false;
    loop {
        tokio::time::sleep(EVERY).await;
        let (back, result) = checkpoint(conn).await;
        conn = back;
        match result {
            Ok(()) => failing = false,
            // Once per run of failures: a disk gone read-only fails them all.
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "the SQLite WAL could not be checkpointed; retrying");
            }
            Err(_) => {}
        }
    }
}

/// One `PASSIVE` checkpoint on the blocking pool, handing the connection
/// back.
async fn checkpoint(mut conn: SqliteConnection) -> (SqliteConnection, Result<(), StorageError>) {
    let ran = spawn_blocking(move || {
        let result = conn
            .batch_execute("PRAGMA wal_checkpoint(PASSIVE);")
            .map_err(StorageError::from);
        (conn, result)
    })
    .await;
    match ran {
        Ok(ran) => ran,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Cancelled: the runtime is stopping, and this task with it.
        Err(_) => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use domain::{CustomerName, ItemName, NewItem, NewOrder, OrderRepository, Quantity};

    use crate::{DatabaseUrl, Storage, StorageConfig};

    use super::*;

    /// A few pages of writes, far below the 1,000 at which a commit
    /// checkpoints: only the task copies them into the database file, which
    /// until then is the one page SQLite made it with.
    #[tokio::test]
    async fn the_task_checkpoints_what_commits_leave_in_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.db");
        let storage = Storage::connect(&StorageConfig::new(DatabaseUrl::Sqlite(path.clone())))
            .await
            .unwrap();
        let order = NewOrder::new(
            CustomerName::parse("Ada").unwrap(),
            vec![NewItem {
                name: ItemName::parse("Pen").unwrap(),
                quantity: Quantity::parse(1).unwrap(),
            }],
        )
        .unwrap();
        storage.create(order, None).await.unwrap();
        let file_size = || std::fs::metadata(&path).unwrap().len();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while file_size() <= 4096 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file is still one page: nothing checkpointed the WAL"
            );
            tokio::time::sleep(EVERY).await;
        }
    }
}
