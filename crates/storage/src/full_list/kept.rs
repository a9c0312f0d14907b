//! The full list kept in the database (`list_chunks`): each chunk's body
//! as of a change-log seq. A process that holds no list loads them and
//! re-reads only the chunks the log says changed since, instead of walking
//! both tables (at 100,000 orders a walk is 0.5-0.8 s here, a load of the
//! kept 32 MB a fraction of that); every instance shares them.
//!
//! Rows written by different processes need not fit together (each walk
//! draws its own chunk bounds), so a load takes the chain of rows that
//! starts at the oldest chunk and goes up while each row's `below_id` is
//! the next row's `from_id`, and walks the tables above the chain. The
//! keeper writes oldest first, so a keeper cut short (a process stopped)
//! leaves a chain that later loads use.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use domain::Timestamp;

use super::build::{MAX_CHANGES, Placer, Progress};
use super::chunks::{Chunk, Snapshot};
use crate::models::{KeptInsert, KeptRow};
use crate::queries::Queries;
use crate::transaction::{with_connection, write_transaction};
use crate::{Storage, StorageError};

/// How long the keeper waits after a refresh before writing, so that the
/// refreshes of a burst of writes are written once.
const KEEP_PAUSE: Duration = Duration::from_secs(1);

/// Bytes of changed chunks a round rewrites at most (see `plan`): the
/// whole list at 100,000 orders in 16 rounds, at 1,000,000 in 160.
const KEEP_ROUND_BYTES: usize = 2 * 1024 * 1024;

/// Bodies per transaction: on SQLite a keeper's transaction holds the
/// write lock, so it stays about as short as an order write's.
const KEEP_BATCH_BYTES: usize = 1024 * 1024;

/// Bodies per statement when loading.
const LOAD_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// A kept chunk the list still matches is moved to the list's seq once it
/// is this many changes behind, or this old, so that loads need not read
/// far back in the log (a load falls back to a walk past `MAX_CHANGES`,
/// and the log is pruned after a day).
const BUMP_AFTER_CHANGES: i64 = MAX_CHANGES / 5;
const BUMP_AFTER_MS: i64 = 60 * 60 * 1000;

/// The kept chunks a load could use: newest first, the last one the
/// oldest chunk, each with the seq its body is as of.
pub(super) struct Loaded {
    pub chunks: Vec<Arc<Chunk>>,
    pub seqs: Vec<i64>,
    /// What the tables must be walked for.
    pub rest: Rest,
}

/// The ids above the loaded chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Rest {
    /// None: the chunks cover every id.
    Nothing,
    /// No chunk could be used.
    Everything,
    /// Ids from this one up.
    From(String),
}

impl Rest {
    fn from(id: &str) -> Self {
        if id.is_empty() {
            Rest::Everything
        } else {
            Rest::From(id.to_owned())
        }
    }
}

impl Loaded {
    pub(super) fn nothing() -> Self {
        Self {
            chunks: Vec::new(),
            seqs: Vec::new(),
            rest: Rest::Everything,
        }
    }
}

/// The chain of kept rows from the oldest chunk up, as far as it fits
/// together and the log can bring it to (`epoch`, `seq`).
fn chain(index: &[KeptRow], epoch: i64, seq: i64) -> Vec<&KeptRow> {
    let usable = |row: &KeptRow| {
        row.epoch == epoch && row.seq <= seq && seq - row.seq <= MAX_CHANGES && row.order_count >= 0
    };
    let by_from: HashMap<&str, &KeptRow> = index
        .iter()
        .filter(|row| usable(row))
        .map(|row| (row.from_id.as_str(), row))
        .collect();
    let mut chain = Vec::new();
    let mut from = "";
    while let Some(row) = by_from.get(from) {
        chain.push(*row);
        match row.below_id.as_deref() {
            // Strictly upwards, so a cycle of rows cannot loop.
            Some(below) if below > from => from = below,
            _ => break,
        }
    }
    // A chain that ends in a row reaching nowhere valid is cut before it.
    if let Some(top) = chain.last()
        && top
            .below_id
            .as_deref()
            .is_some_and(|below| below <= top.from_id.as_str())
    {
        chain.pop();
    }
    chain.reverse();
    chain
}

/// Loads the usable kept chunks, as of positions up to (`epoch`, `seq`),
/// in the caller's read transaction.
pub(super) async fn load<C: Queries>(
    conn: &mut C,
    epoch: i64,
    seq: i64,
    placer: &mut Placer<'_>,
    progress: &Progress,
) -> Result<Loaded, StorageError> {
    let index = progress.after(conn.kept_index()).await?;
    let chain = chain(&index, epoch, seq);
    let Some(newest) = chain.first() else {
        return Ok(Loaded::nothing());
    };
    let mut rest = match &newest.below_id {
        None => Rest::Nothing,
        Some(below) => Rest::from(below),
    };
    let mut chunks = Vec::with_capacity(chain.len());
    let mut seqs = Vec::with_capacity(chain.len());
    // Newest first, a few MB per statement: rows not in the chain (another
    // walk's bounds) may come along and are passed over.
    let mut batch_start = 0;
    while batch_start < chain.len() {
        let mut batch_end = batch_start;
        let mut bytes = 0usize;
        while batch_end < chain.len() && (batch_end == batch_start || bytes < LOAD_BATCH_BYTES) {
            // About 330 bytes an order.
            bytes += chain[batch_end].order_count as usize * 330;
            batch_end += 1;
        }
        let highest = chain[batch_start].from_id.as_str();
        let lowest = chain[batch_end - 1].from_id.as_str();
        let bodies = progress.after(conn.kept_bodies(lowest, highest)).await?;
        let mut bodies: HashMap<String, Vec<u8>> = bodies.into_iter().collect();
        for row in &chain[batch_start..batch_end] {
            let Some(body) = bodies.remove(&row.from_id) else {
                return Err(StorageError::CorruptRow(format!(
                    "list_chunks row {:?} vanished inside one transaction",
                    row.from_id
                )));
            };
            let floor = (!row.from_id.is_empty()).then(|| row.from_id.clone());
            let chunk = placer.chunk(floor, row.order_count as usize, Bytes::from(body))?;
            if chunk.part.digest() as i64 != row.digest {
                // A damaged row: the chain is cut above it and the rest
                // walked (and written again by the keeper).
                tracing::warn!(from_id = %row.from_id, "a kept list chunk does not match its digest");
                rest = Rest::from(&row.from_id);
                chunks.clear();
                seqs.clear();
                continue;
            }
            chunks.push(chunk);
            seqs.push(row.seq);
        }
        batch_start = batch_end;
    }
    Ok(Loaded { chunks, seqs, rest })
}

/// What one round of the keeper did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kept {
    pub written: usize,
    pub bumped: usize,
    pub dropped: usize,
    /// Rows left behind their chunk for a later round (over the budget).
    pub left: usize,
}

/// What one round writes, given the rows the database holds.
#[derive(Debug, Default)]
struct Plan<'a> {
    /// (from, below, chunk), newest first.
    writes: Vec<(&'a str, Option<&'a str>, Arc<Chunk>)>,
    /// (from, digest, the row's seq): rows that match, moved to the
    /// snapshot's seq.
    bumps: Vec<(&'a str, i64, i64)>,
    /// Rows of bounds the snapshot does not have.
    drops: Vec<&'a str>,
    left: usize,
}

/// What a round may leave for a later one.
enum Optional<'a> {
    Write((&'a str, Option<&'a str>, Arc<Chunk>)),
    Bump((&'a str, i64, i64)),
}

/// Which chunks of `snapshot` to write over the rows in `index`.
///
/// A chunk whose row is missing or does not fit the snapshot's bounds is
/// written: without it, a load's chain stops there and the rest is walked.
/// A chunk whose row fits but whose orders changed since is optional: the
/// row is true as of its seq, and a load re-reads what the log says
/// changed. Those are written stalest first, up to `budget` bytes a round
/// (all with `None`): rewriting every changed chunk each second wrote the
/// whole list, 32 MB at 100,000 orders, every second under steady writes,
/// holding SQLite's write lock for it and leaving MariaDB that much undo
/// to purge and pages to flush. Moving a row that lags to the snapshot's
/// seq (a bump) shares the budget, at its chunk's size: SQLite rewrites a
/// whole row to update one column of it, body included, and bumping all
/// 1,000 rows of a list of 1,000,000 orders in one transaction held the
/// write lock for 0.7-1.3 s (writes waited that long in the mixed
/// scenario there).
fn plan<'a>(
    index: &'a [KeptRow],
    snapshot: &'a Snapshot,
    now: i64,
    budget: Option<usize>,
) -> Plan<'a> {
    let stored: HashMap<&str, &KeptRow> = index
        .iter()
        .map(|row| (row.from_id.as_str(), row))
        .collect();
    let (epoch, seq) = (snapshot.epoch, snapshot.seq);
    let mut plan = Plan::default();
    // (the row's seq, the chunk's bytes, what to do), for the budget.
    let mut optional: Vec<(i64, usize, Optional<'a>)> = Vec::new();
    let mut ours = std::collections::HashSet::new();
    for (index, chunk) in snapshot.chunks.iter().enumerate() {
        let from = chunk.floor.as_deref().unwrap_or("");
        ours.insert(from);
        let below = index
            .checked_sub(1)
            .and_then(|above| snapshot.chunks[above].floor.as_deref());
        let digest = chunk.part.digest() as i64;
        let write = (from, below, Arc::clone(chunk));
        let len = chunk.part.len();
        match stored.get(from) {
            Some(row) if row.epoch == epoch && row.below_id.as_deref() == below => {
                if row.seq > seq {
                    // Written as of a later seq, by another process.
                } else if row.digest != digest || row.order_count != chunk.orders as i64 {
                    optional.push((row.seq, len, Optional::Write(write)));
                } else if row.seq < seq
                    && (seq - row.seq > BUMP_AFTER_CHANGES || now - row.kept_at > BUMP_AFTER_MS)
                {
                    optional.push((row.seq, len, Optional::Bump((from, digest, row.seq))));
                }
            }
            // Another process's epoch or bounds, but as of a later seq.
            Some(row) if row.epoch == epoch && row.seq > seq => {}
            _ => plan.writes.push(write),
        }
    }
    optional.sort_by_key(|(row_seq, _, _)| *row_seq);
    let mut spent = 0;
    for (_, len, job) in optional {
        // One at least, however large.
        if budget.is_some_and(|budget| spent > 0 && spent + len > budget) {
            plan.left += 1;
            continue;
        }
        spent += len;
        match job {
            Optional::Write(write) => plan.writes.push(write),
            Optional::Bump(bump) => plan.bumps.push(bump),
        }
    }
    // Newest first, as the snapshot's chunks are (floors descending).
    plan.writes.sort_by(|(a, _, _), (b, _, _)| b.cmp(a));
    plan.drops = index
        .iter()
        .map(|row| row.from_id.as_str())
        .filter(|from| !ours.contains(from))
        .collect();
    plan
}

/// Writes the chunks of `snapshot` the database does not hold yet, oldest
/// first, and those that changed since it did, up to `budget` bytes (see
/// `plan`); moves the ones it holds that lag behind, and drops rows of
/// other bounds.
pub(crate) async fn keep(
    storage: &Storage,
    snapshot: &Snapshot,
    budget: Option<usize>,
) -> Result<Kept, StorageError> {
    let index = with_connection!(storage.pools(), |conn| Ok(conn.kept_index().await?))?;
    let now = Timestamp::now().as_millis();
    let (epoch, seq) = (snapshot.epoch, snapshot.seq);
    let Plan {
        writes,
        bumps,
        drops,
        left,
    } = plan(&index, snapshot, now, budget);
    let mut kept = Kept {
        left,
        ..Kept::default()
    };
    // Oldest first: a keeper cut short leaves a chain a load can use.
    let mut writes = writes.into_iter().rev().peekable();
    while writes.peek().is_some() {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(write) = writes.next_if(|_| batch.is_empty() || bytes < KEEP_BATCH_BYTES) {
            bytes += write.2.part.len();
            batch.push(write);
        }
        let bodies = read_bodies(
            batch
                .iter()
                .map(|(_, _, chunk)| Arc::clone(chunk))
                .collect(),
        )
        .await?;
        let rows: Vec<KeptInsert<'_>> = batch
            .iter()
            .zip(&bodies)
            .map(|((from, below, chunk), body)| KeptInsert {
                from_id: from,
                below_id: *below,
                epoch,
                seq,
                order_count: chunk.orders as i64,
                digest: chunk.part.digest() as i64,
                body,
                kept_at: now,
            })
            .collect();
        kept.written += write_transaction!(storage.pools(), |conn| {
            let mut written = 0;
            for row in &rows {
                conn.drop_kept(row.from_id, epoch, seq).await?;
                written += conn.keep_chunk(row).await?;
            }
            Ok(written)
        })?;
    }
    if !bumps.is_empty() || !drops.is_empty() {
        let (bumped, dropped) = write_transaction!(storage.pools(), |conn| {
            let mut bumped = 0;
            for (from, digest, old_seq) in &bumps {
                bumped += conn.bump_kept(from, *digest, *old_seq, seq, now).await?;
            }
            let mut dropped = 0;
            for from in &drops {
                dropped += conn.drop_kept(from, epoch, seq).await?;
            }
            Ok((bumped, dropped))
        })?;
        kept.bumped = bumped;
        kept.dropped = dropped;
    }
    Ok(kept)
}

/// The chunks' bytes, read off the async threads (spooled parts are in a
/// file).
async fn read_bodies(chunks: Vec<Arc<Chunk>>) -> Result<Vec<Bytes>, StorageError> {
    tokio::task::spawn_blocking(move || {
        chunks
            .iter()
            .map(|chunk| chunk.part.read().map_err(StorageError::Spool))
            .collect()
    })
    .await
    .map_err(StorageError::Task)?
}

/// Starts the keeper after a refresh, unless it runs already: it pauses,
/// writes the list the process holds then, and goes on while refreshes
/// came meanwhile.
pub(super) fn schedule(storage: &Storage) {
    let lists = storage.full_lists();
    if !lists.config.keep || lists.keeping.swap(true, Ordering::AcqRel) {
        return;
    }
    let storage = storage.clone();
    storage.clone().spawn_detached(async move {
        let lists = storage.full_lists();
        loop {
            // A stopping process does not wait for more refreshes.
            if !lists.hurrying.load(Ordering::Acquire) {
                let _ = tokio::time::timeout(KEEP_PAUSE, lists.hurry.notified()).await;
            }
            // Once told to hurry, everything the list lacks is written.
            let budget = (!lists.hurrying.load(Ordering::Acquire)).then_some(KEEP_ROUND_BYTES);
            let generation = lists.generation.load(Ordering::Acquire);
            let snapshot = lists.held.lock().await.snapshot.clone();
            let mut left = 0;
            if let Some(snapshot) = snapshot {
                match keep(&storage, &snapshot, budget).await {
                    Ok(kept) => {
                        lists.stats.record_kept(kept);
                        left = kept.left;
                        tracing::debug!(
                            seq = snapshot.seq,
                            written = kept.written,
                            bumped = kept.bumped,
                            dropped = kept.dropped,
                            left = kept.left,
                            "full list kept"
                        );
                    }
                    Err(error) => tracing::warn!(%error, "keeping the full list failed"),
                }
            }
            if left > 0 {
                continue;
            }
            lists.keeping.store(false, Ordering::Release);
            // A refresh that came after `generation` was read either saw
            // the flag still set (and left the writing to this task) or
            // starts a keeper of its own.
            if lists.generation.load(Ordering::Acquire) == generation
                || lists.keeping.swap(true, Ordering::AcqRel)
            {
                lists.idle.notify_waiters();
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(from: &str, below: Option<&str>, seq: i64) -> KeptRow {
        KeptRow {
            from_id: from.to_owned(),
            below_id: below.map(str::to_owned),
            epoch: 7,
            seq,
            order_count: 1,
            digest: 0,
            kept_at: 0,
        }
    }

    fn chunk(floor: Option<&str>, body: &'static [u8]) -> Arc<Chunk> {
        Arc::new(Chunk {
            floor: floor.map(str::to_owned),
            orders: 1,
            part: Arc::new(domain::parts::ResidentPart::new(Bytes::from_static(body))),
            resident: true,
            spooled: None,
        })
    }

    fn stored(chunk: &Chunk, below: Option<&str>, seq: i64, digest: Option<i64>) -> KeptRow {
        KeptRow {
            digest: digest.unwrap_or(chunk.part.digest() as i64),
            ..row(chunk.floor.as_deref().unwrap_or(""), below, seq)
        }
    }

    fn written<'a>(plan: &Plan<'a>) -> Vec<&'a str> {
        plan.writes.iter().map(|(from, _, _)| *from).collect()
    }

    #[test]
    fn a_round_writes_what_breaks_the_chain_and_the_stalest_changes_within_its_budget() {
        let chunks = vec![
            chunk(Some("p"), &[b'p'; 100]),
            chunk(Some("k"), &[b'k'; 100]),
            chunk(Some("f"), &[b'f'; 100]),
            chunk(None, &[b'o'; 100]),
        ];
        let snapshot = Snapshot::new(7, 20, chunks.clone(), usize::MAX).unwrap();
        let index = [
            // "p" is missing; "k" and "f" changed since seq 4 and 3; the
            // oldest matches; "z" is not a bound of this list.
            stored(&chunks[1], Some("p"), 4, Some(1)),
            stored(&chunks[2], Some("k"), 3, Some(2)),
            stored(&chunks[3], Some("f"), 20, None),
            row("z", None, 20),
        ];
        let first = super::plan(&index, &snapshot, 0, Some(150));
        assert_eq!(
            written(&first),
            ["p", "f"],
            "the missing one, then the stalest"
        );
        assert_eq!(first.left, 1);
        assert_eq!(first.drops, ["z"]);
        assert!(first.bumps.is_empty());

        let all = super::plan(&index, &snapshot, 0, None);
        assert_eq!(written(&all), ["p", "k", "f"]);
        assert_eq!(all.left, 0);

        // A changed chunk larger than the whole budget still goes, alone.
        let one = super::plan(&index, &snapshot, 0, Some(10));
        assert_eq!((written(&one), one.left), (vec!["p", "f"], 1));

        // Bounds that differ break the chain: written whatever the budget.
        // A row another process wrote as of a later seq is left alone, and
        // a matching row far behind the log is moved up.
        let index = [
            stored(&chunks[0], None, 20, None),
            stored(&chunks[1], Some("q"), 10, None),
            stored(&chunks[2], Some("x"), 25, None),
            stored(&chunks[3], Some("f"), 20 - BUMP_AFTER_CHANGES - 1, None),
        ];
        let plan = super::plan(&index, &snapshot, 0, Some(0));
        assert_eq!(written(&plan), ["k"]);
        assert_eq!(plan.bumps.len(), 1);
        assert_eq!(plan.bumps[0].0, "");
        assert_eq!(plan.left, 0);

        // Bumps share the budget with the changed chunks, stalest first.
        let lagging = 20 - BUMP_AFTER_CHANGES - 1;
        let index = [
            stored(&chunks[0], None, lagging, None),
            stored(&chunks[1], Some("p"), lagging - 1, None),
            stored(&chunks[2], Some("k"), lagging + 1, Some(3)),
            stored(&chunks[3], Some("f"), lagging, None),
        ];
        let plan = super::plan(&index, &snapshot, 0, Some(250));
        let bumped: Vec<&str> = plan.bumps.iter().map(|(from, _, _)| *from).collect();
        assert_eq!(bumped.len(), 2, "{bumped:?}");
        assert_eq!(bumped[0], "k", "the stalest first");
        assert!(written(&plan).is_empty());
        assert_eq!(plan.left, 2);
        let all = super::plan(&index, &snapshot, 0, None);
        assert_eq!(
            (all.bumps.len(), written(&all), all.left),
            (3, vec!["f"], 0)
        );
    }

    fn froms(chain: &[&KeptRow]) -> Vec<String> {
        chain.iter().map(|row| row.from_id.clone()).collect()
    }

    #[test]
    fn the_chain_goes_up_from_the_oldest_chunk_while_rows_fit() {
        let whole = [
            row("m", None, 5),
            row("f", Some("m"), 5),
            row("", Some("f"), 3),
        ];
        assert_eq!(froms(&chain(&whole, 7, 9)), ["m", "f", ""]);

        // Another walk's bounds above "f": the chain stops at "f" and the
        // rest is walked.
        let mixed = [
            row("n", None, 5),
            row("f", Some("m"), 5),
            row("", Some("f"), 3),
        ];
        assert_eq!(froms(&chain(&mixed, 7, 9)), ["f", ""]);

        // No oldest chunk: nothing.
        assert!(chain(&[row("f", None, 5)], 7, 9).is_empty());
        // Another epoch, a seq past the head, or too far behind the log.
        assert!(chain(&whole, 8, 9).is_empty());
        assert_eq!(froms(&chain(&whole, 7, 4)), [""]);
        assert_eq!(
            froms(&chain(&whole, 7, 5 + MAX_CHANGES)),
            Vec::<String>::new()
        );
        // A row reaching downwards is not followed.
        let cycle = [row("f", Some(""), 5), row("", Some("f"), 5)];
        assert_eq!(froms(&chain(&cycle, 7, 9)), [""]);
    }
}
