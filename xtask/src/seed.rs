//! `cargo xtask seed`: random orders like the original's seeder, inserted
//! through the storage crate's batched `seed` (one transaction per chunk),
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
/// `progress`, a bar on stderr when there is more than one chunk.
pub async fn seed<R: OrderRepository>(
    repository: &R,
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
    let started = Instant::now();
    let (mut orders, mut items) = (0, 0);
    while orders < count {
        let chunk = (count - orders).min(chunk_size);
        let batch = domain::fake::orders(chunk as usize, &mut rand::rng());
        let batch_items: u64 = batch.iter().map(|order| order.items.len() as u64).sum();
        let inserted = repository.seed(batch).await?;
        if inserted != chunk {
            return Err(XtaskError::Failed(format!(
                "asked to insert {chunk} orders, the repository inserted {inserted}"
            )));
        }
        orders += inserted;
        items += batch_items;
        bar.inc(inserted);
    }
    bar.finish_and_clear();
    Ok(SeedSummary {
        orders,
        items,
        elapsed: started.elapsed(),
    })
}
