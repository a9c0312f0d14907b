//! `cargo xtask seed`: random orders like the original's seeder, made and
//! inserted by the storage crate's `seed` (one transaction per chunk),
//! then the cache invalidated once, so a running server never serves the
//! old list.

use std::time::{Duration, Instant};

use domain::OrderRepository;
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::XtaskError;

/// Orders per transaction: large enough that multi-row inserts pay off,
/// small enough that a progress bar moves and a transaction stays modest.
pub const CHUNK: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedSummary {
    pub orders: u64,
    pub items: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for SeedSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        write!(
            f,
            "Seeded {} orders with {} items in {seconds:.2} s ({:.0} orders/s).",
            self.orders,
            self.items,
            self.orders as f64 / seconds.max(1e-9)
        )
    }
}

/// Seeds the database behind the cache, then invalidates the cache once.
///
/// Not through the decorator's own `seed`: it would invalidate after every
/// chunk and, Redis being down, only mark its in-process state dirty, which
/// dies with this process while a running server keeps the old list. An
/// explicit `invalidate_all` fails loudly instead.
pub async fn seed_app(
    repository: &server::AppRepository,
    count: u64,
    progress: bool,
) -> Result<SeedSummary, XtaskError> {
    let summary = seed(repository.inner(), count, CHUNK, progress).await?;
    repository.invalidate_all().await?;
    Ok(summary)
}

/// Inserts `count` random orders, `chunk` per transaction; with
/// `progress`, a bar on stderr when there is more than one chunk. The
/// storage makes the orders itself, so the items are counted: the real
/// item rows after, less those before (a writer running at the same time
/// would be counted too).
pub async fn seed(
    storage: &storage::Storage,
    count: u64,
    chunk: u64,
    progress: bool,
) -> Result<SeedSummary, XtaskError> {
    let chunk_size = chunk.max(1);
    let bar = if progress && count > chunk_size {
        let bar = ProgressBar::new(count);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} orders, {per_sec}, ETA {eta}")
                .expect("a valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let (_, items_before) = storage.count().await?;
    let started = Instant::now();
    let mut orders = 0;
    while orders < count {
        let chunk = (count - orders).min(chunk_size);
        let inserted = storage.seed(chunk).await?;
        if inserted != chunk {
            return Err(XtaskError::Failed(format!(
                "asked to insert {chunk} orders, the repository inserted {inserted}"
            )));
        }
        orders += inserted;
        bar.inc(inserted);
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let (_, items_after) = storage.count().await?;
    Ok(SeedSummary {
        orders,
        items: items_after.saturating_sub(items_before),
        elapsed,
    })
}
