//! `GET /orders` without parameters: every order, at any table size.
//!
//! The process holds the full list as chunks of about 1,000 rendered orders,
//! each covering a range of ids, as of a position in the change log
//! (`changes`). A request checks the log's head in a short read
//! transaction: unchanged, the held list is served; moved, only the chunks
//! holding the changed orders are read again, in the same transaction, so
//! the list is one consistent snapshot. After one write at 100,000 orders
//! that is one chunk of 100. The log is in the database, so this works the
//! same whichever instance made the write.
//!
//! What is held: chunks in memory up to `memory_budget` bytes, the rest in
//! an unlinked spool file (the kernel's page cache, not the process's
//! memory); a response holds one chunk at a time. A list over
//! `stream_above` bytes is sent as parts and never joined; a smaller one is
//! one buffer, which the cache layer stores in Redis as before.
//!
//! A process that holds no list starts from the chunks kept in the
//! database (`kept`), as of their own positions in the log, instead of
//! walking the tables; after each refresh a keeper writes the chunks that
//! changed there, a second later and off the request's path.
//!
//! One refresh runs at a time per process: concurrent requests queue
//! behind it, holding no connection, and the ones that arrived before it
//! began take its result, or its failure. A reader waits as long as the
//! refresh it queues behind keeps moving (a walk of 1,000,000 orders takes
//! longer than any one read may), and hears that the database is
//! unavailable once no statement of it has finished for a read's wait. A
//! build never takes more than one connection from the pool, whatever the
//! number of readers, so writes keep theirs.

mod build;
mod chunks;
mod kept;
mod splice;
mod spool;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use domain::ListDocument;

use crate::transaction::read_transaction;
use crate::{Storage, StorageError};
use build::{Context, Progress, Refreshed};
use chunks::Snapshot;
use spool::Spool;

/// How a full list is held and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullListConfig {
    /// Bodies longer than this are sent as parts, never joined (and not
    /// stored in Redis).
    pub stream_above: usize,
    /// Rendered chunks held in memory; the rest are spooled.
    pub memory_budget: usize,
    /// Where the spool file is made (unlinked at once).
    pub spool_dir: PathBuf,
    /// Whether the list is kept in the database (`list_chunks`) and
    /// loaded from there by a process that holds none.
    pub keep: bool,
}

impl FullListConfig {
    pub const DEFAULT_STREAM_ABOVE: usize = 4 * 1024 * 1024;
    pub const DEFAULT_MEMORY_BUDGET: usize = 48 * 1024 * 1024;
}

impl Default for FullListConfig {
    fn default() -> Self {
        Self {
            stream_above: Self::DEFAULT_STREAM_ABOVE,
            memory_budget: Self::DEFAULT_MEMORY_BUDGET,
            spool_dir: std::env::temp_dir(),
            keep: true,
        }
    }
}

pub(crate) struct FullLists {
    config: FullListConfig,
    spool: Arc<Spool>,
    held: tokio::sync::Mutex<Held>,
    stats: Stats,
    /// Whether a keeper task runs (see `kept::schedule`).
    keeping: AtomicBool,
    /// Bumped by each new snapshot, so the keeper knows it has one to write.
    generation: AtomicU64,
    /// Told when the keeper stops.
    idle: tokio::sync::Notify,
    /// Told when the process stops: the keeper writes without its pause.
    hurry: tokio::sync::Notify,
    /// Set then, for good: the keeper writes everything, without pauses.
    hurrying: AtomicBool,
    /// The refresh in progress, for the readers queued behind it to tell
    /// whether it still moves.
    moving: std::sync::Mutex<Option<Arc<Progress>>>,
}

/// Chunks of the full list by where they came from, since the start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FullListStats {
    /// Rendered from the tables by a walk.
    pub walked: u64,
    /// Loaded as kept in the database.
    pub loaded: u64,
    /// Read again because the change log said they changed.
    pub reread: u64,
    /// Patched with the few orders the change log said changed in them.
    pub spliced: u64,
    /// Written to the database by the keeper.
    pub kept: u64,
}

#[derive(Default)]
struct Stats {
    walked: AtomicU64,
    loaded: AtomicU64,
    reread: AtomicU64,
    spliced: AtomicU64,
    kept: AtomicU64,
}

impl Stats {
    fn walked(&self, chunks: usize) {
        self.walked.fetch_add(chunks as u64, Ordering::Relaxed);
    }

    fn loaded(&self, chunks: usize) {
        self.loaded.fetch_add(chunks as u64, Ordering::Relaxed);
    }

    fn reread(&self, chunks: usize) {
        self.reread.fetch_add(chunks as u64, Ordering::Relaxed);
    }

    fn spliced(&self, chunks: usize) {
        self.spliced.fetch_add(chunks as u64, Ordering::Relaxed);
    }

    fn record_kept(&self, kept: kept::Kept) {
        self.kept.fetch_add(kept.written as u64, Ordering::Relaxed);
    }

    fn read(&self) -> FullListStats {
        FullListStats {
            walked: self.walked.load(Ordering::Relaxed),
            loaded: self.loaded.load(Ordering::Relaxed),
            reread: self.reread.load(Ordering::Relaxed),
            spliced: self.spliced.load(Ordering::Relaxed),
            kept: self.kept.load(Ordering::Relaxed),
        }
    }
}

#[derive(Default)]
struct Held {
    snapshot: Option<Arc<Snapshot>>,
    /// When the last refresh began: every write acknowledged before then
    /// is in `snapshot`.
    checked_at: Option<Instant>,
    /// The last refresh that failed. Readers that arrived before it began
    /// take its failure rather than each trying again in turn, which with
    /// the database gone would keep the last of many queued readers
    /// waiting for all the others' attempts.
    failed: Option<Failed>,
}

#[derive(Debug, Clone, Copy)]
struct Failed {
    began: Instant,
    /// For want of the database (a 503), not a fault in a query (a 500).
    unavailable: bool,
}

/// Marks a refresh as the one in progress while it lives.
struct Moving<'a> {
    lists: &'a FullLists,
}

impl<'a> Moving<'a> {
    fn start(lists: &'a FullLists, progress: Arc<Progress>) -> Self {
        *lists.moving.lock().expect("never poisoned") = Some(progress);
        Self { lists }
    }
}

impl Drop for Moving<'_> {
    fn drop(&mut self) {
        *self.lists.moving.lock().expect("never poisoned") = None;
    }
}

impl FullLists {
    pub(crate) fn new(config: FullListConfig) -> Self {
        Self {
            spool: Arc::new(Spool::new(config.spool_dir.clone())),
            config,
            held: tokio::sync::Mutex::new(Held::default()),
            stats: Stats::default(),
            keeping: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            idle: tokio::sync::Notify::new(),
            hurry: tokio::sync::Notify::new(),
            hurrying: AtomicBool::new(false),
            moving: std::sync::Mutex::new(None),
        }
    }

    /// The held list, once the refresh in progress (if any) has ended; an
    /// error once none of its statements has finished for `step`.
    async fn queue(
        &self,
        step: Duration,
    ) -> Result<tokio::sync::MutexGuard<'_, Held>, StorageError> {
        let lock = self.held.lock();
        let mut lock = std::pin::pin!(lock);
        loop {
            let quiet = self
                .moving
                .lock()
                .expect("never poisoned")
                .as_ref()
                .map_or(Duration::ZERO, |progress| progress.quiet_for());
            if quiet >= step {
                return Err(StorageError::Timeout);
            }
            if let Ok(held) = tokio::time::timeout(step - quiet, &mut lock).await {
                return Ok(held);
            }
        }
    }

    pub(crate) fn stats(&self) -> FullListStats {
        self.stats.read()
    }

    /// Waits until the refresh in progress, if any, has ended and its
    /// keeper has written it, at most `wait`; whether they did.
    pub(crate) async fn kept(&self, wait: Duration) -> bool {
        let stopped = async {
            // A refresh holds `held` to its end, and schedules its keeper
            // before letting go.
            drop(self.held.lock().await);
            self.hurrying.store(true, Ordering::Release);
            self.hurry.notify_one();
            loop {
                let idle = self.idle.notified();
                let mut idle = std::pin::pin!(idle);
                idle.as_mut().enable();
                if !self.keeping.load(Ordering::Acquire) {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(wait, stopped).await.is_ok()
    }
}

/// The full list as of a moment after the call began.
pub(crate) async fn read(storage: &Storage) -> Result<ListDocument, StorageError> {
    let lists = storage.full_lists();
    let arrived = Instant::now();
    let mut held = lists.queue(storage.budget()).await?;
    if let (Some(snapshot), Some(checked_at)) = (&held.snapshot, held.checked_at)
        && checked_at >= arrived
    {
        return Ok(snapshot.document.clone());
    }
    if let Some(failed) = held.failed
        && failed.began >= arrived
    {
        return Err(StorageError::RefreshFailed {
            unavailable: failed.unavailable,
        });
    }
    let began = Instant::now();
    let previous = held.snapshot.clone();
    // Cut only when it stops making progress (see `Progress`): the walk
    // runs as long as it moves, and so do the readers behind it.
    let progress = Arc::new(Progress::new());
    let moving = Moving::start(lists, progress.clone());
    let context = Context {
        config: &lists.config,
        spool: &lists.spool,
        progress: &progress,
        stats: &lists.stats,
    };
    let refresh = async {
        read_transaction!(storage.pools(), |conn| {
            build::refresh(conn, previous.as_deref(), &context).await
        })
    };
    let refreshed = progress.watch(storage.budget(), refresh).await;
    drop(moving);
    let refreshed = match refreshed {
        Ok(refreshed) => refreshed,
        Err(error) => {
            held.failed = Some(Failed {
                began,
                unavailable: error.is_unavailable(),
            });
            return Err(error);
        }
    };
    if let Refreshed::New(snapshot) = refreshed {
        tracing::debug!(
            seq = snapshot.seq,
            chunks = snapshot.chunks.len(),
            resident_bytes = snapshot.resident_bytes(),
            "full list rebuilt"
        );
        held.snapshot = Some(Arc::new(snapshot));
        lists.generation.fetch_add(1, Ordering::AcqRel);
        kept::schedule(storage);
    }
    held.checked_at = Some(began);
    let snapshot = held.snapshot.as_ref().expect("a refresh leaves a snapshot");
    Ok(snapshot.document.clone())
}
