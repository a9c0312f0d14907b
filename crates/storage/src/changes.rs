//! The change log: one row in `order_changes` per committed write, written
//! as the write transaction's last statements, under the next seq of
//! `change_head` (see the migration for why seq order is commit order).
//! Full-list builds read it to re-read only what changed (`full_list`);
//! order events can later be published from it.

use crate::StorageError;
use crate::queries::Queries;

/// How long changes are kept. Readers that fall further behind rebuild
/// from the tables, which they can tell from a gap in the seqs.
const KEEP_MS: i64 = 24 * 60 * 60 * 1000;

/// One write in this many also prunes the log, detached (as create purges
/// expired idempotency keys).
pub(crate) const PRUNE_ONE_IN: u32 = 1024;

/// The kind of a seed's change: its `order_id` is the lowest id it added,
/// and every order from it up may be new.
pub(crate) const SEEDED: &str = "seeded";

/// What a write did.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change<'a> {
    Created {
        id: &'a str,
        version: i64,
    },
    Status {
        id: &'a str,
        version: i64,
    },
    Deleted {
        id: &'a str,
    },
    /// Every order went.
    Reset,
    /// Many orders came at once, none with an id below `from` (their ids
    /// are UUIDv7s of the seed's time, so they all sort above older orders).
    Seeded {
        from: &'a str,
    },
}

impl Change<'_> {
    fn columns(&self) -> (Option<&str>, &'static str, Option<i64>) {
        match *self {
            Change::Created { id, version } => (Some(id), "created", Some(version)),
            Change::Status { id, version } => (Some(id), "status", Some(version)),
            Change::Deleted { id } => (Some(id), "deleted", None),
            Change::Reset => (None, "reset", None),
            Change::Seeded { from } => (Some(from), SEEDED, None),
        }
    }
}

/// Logs `change`; call it last in the transaction, after every other lock
/// was taken, so the head's row lock is held only until the commit.
pub(crate) async fn record<C: Queries>(
    conn: &mut C,
    change: Change<'_>,
    at_ms: i64,
) -> Result<(), StorageError> {
    let (order_id, kind, version) = change.columns();
    let logged = conn.log_change(order_id, kind, version, at_ms).await?;
    if logged != 1 {
        return Err(StorageError::CorruptRow(
            "change_head has no row; the migration creates it".to_owned(),
        ));
    }
    Ok(())
}

/// The cutoff below which changes may be pruned, for a write made at `now_ms`.
pub(crate) fn prune_cutoff(now_ms: i64) -> i64 {
    now_ms - KEEP_MS
}
