//! Bringing a full list up to date inside one read transaction: nothing
//! when the change log has not moved, the chunks that the new changes
//! touched when it has; with no list held (or one the log cannot bring up
//! to date), the chunks kept in the database (`kept`) and a walk of the
//! ids above them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use domain::Item;
use domain::parts::{ListPart, ResidentPart};

use super::chunks::{Chunk, SPLIT_ABOVE, Snapshot, TARGET_ORDERS, covering};
use super::kept::{self, Rest};
use super::splice;
use super::spool::Spool;
use super::{FullListConfig, Stats};
use crate::StorageError;
use crate::changes::SEEDED;
use crate::models::{ItemRow, OrderRow};
use crate::queries::Queries;

/// Past this many changes since the held list, the table is walked again:
/// reading the log would cost about as much.
pub(super) const MAX_CHANGES: i64 = 50_000;

/// How long ago a refresh's last statement finished. A refresh is cut when
/// no statement has finished for a read's wait, not when it has run that
/// long: a walk of a table of millions of orders may take longer than any
/// reader waits (they get their 503 and the walk goes on to serve the next
/// ones), but a statement, or a rollback, hung on a dead connection must
/// not hold every later reader.
pub(crate) struct Progress {
    began: Instant,
    /// Milliseconds from `began` to the last statement's end.
    last: AtomicU64,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self {
            began: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    pub(super) async fn after<T>(
        &self,
        statement: impl Future<Output = diesel::QueryResult<T>>,
    ) -> Result<T, StorageError> {
        let result = statement.await;
        let now = self.began.elapsed().as_millis() as u64;
        self.last.fetch_max(now, Ordering::Relaxed);
        Ok(result?)
    }

    pub(super) fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.began.elapsed().saturating_sub(last)
    }

    /// Runs `work` until it ends, or until no statement has finished for
    /// `step`; then drops it (the pool discards a connection whose
    /// transaction was cut short).
    pub(crate) async fn watch<T>(
        &self,
        step: Duration,
        work: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let mut work = std::pin::pin!(work);
        loop {
            let quiet = self.quiet_for();
            if quiet >= step {
                return Err(StorageError::Timeout);
            }
            if let Ok(result) = tokio::time::timeout(step - quiet, &mut work).await {
                return result;
            }
        }
    }
}

pub(crate) enum Refreshed {
    /// The held list is current.
    Unchanged,
    New(Snapshot),
}

/// Where new chunks go: memory while the budget lasts, then the spool.
pub(super) struct Placer<'a> {
    spool: &'a Arc<Spool>,
    resident_left: usize,
}

impl Placer<'_> {
    pub(super) fn chunk(
        &mut self,
        floor: Option<String>,
        orders: usize,
        bytes: Bytes,
    ) -> Result<Arc<Chunk>, StorageError> {
        if bytes.len() <= self.resident_left {
            self.resident_left -= bytes.len();
            return Ok(Arc::new(Chunk {
                floor,
                orders,
                part: Arc::new(ResidentPart::new(bytes)),
                resident: true,
                spooled: None,
            }));
        }
        let spooled = Arc::new(self.spool.append(&bytes).map_err(StorageError::Spool)?);
        Ok(Arc::new(Chunk {
            floor,
            orders,
            part: Arc::clone(&spooled) as Arc<dyn ListPart>,
            resident: false,
            spooled: Some(spooled),
        }))
    }
}

/// What a refresh needs besides its connection.
pub(super) struct Context<'a> {
    pub config: &'a FullListConfig,
    pub spool: &'a Arc<Spool>,
    pub progress: &'a Progress,
    pub stats: &'a Stats,
}

pub(crate) async fn refresh<C: Queries>(
    conn: &mut C,
    previous: Option<&Snapshot>,
    context: &Context<'_>,
) -> Result<Refreshed, StorageError> {
    let (config, spool, progress) = (context.config, context.spool, context.progress);
    let (epoch, seq) = progress.after(conn.change_head()).await?;
    let mut from_log = None;
    match previous {
        Some(held) if held.epoch == epoch && held.seq == seq => return Ok(Refreshed::Unchanged),
        Some(held) if held.epoch == epoch && held.seq < seq && seq - held.seq <= MAX_CHANGES => {
            let seqs = vec![held.seq; held.chunks.len()];
            if let Some(touched) = touched(conn, &held.chunks, &seqs, seq, progress).await? {
                from_log = Some(update(conn, &held.chunks, &touched, context).await?);
            }
        }
        _ => {}
    }
    let chunks = match from_log {
        Some(chunks) => chunks,
        None => cold(conn, epoch, seq, context).await?,
    };
    let chunks = respool(chunks, spool)?;
    let snapshot =
        Snapshot::new(epoch, seq, chunks, config.stream_above).map_err(StorageError::Spool)?;
    Ok(Refreshed::New(snapshot))
}

/// With no list held that the log can bring up to date: the kept chunks
/// that fit together, the ids above them walked, then the chunks that
/// changed since they were kept read again.
async fn cold<C: Queries>(
    conn: &mut C,
    epoch: i64,
    seq: i64,
    context: &Context<'_>,
) -> Result<Vec<Arc<Chunk>>, StorageError> {
    let (config, spool, progress, stats) = (
        context.config,
        context.spool,
        context.progress,
        context.stats,
    );
    let mut placer = Placer {
        spool,
        resident_left: config.memory_budget,
    };
    let loaded = if config.keep {
        kept::load(conn, epoch, seq, &mut placer, progress).await?
    } else {
        kept::Loaded::nothing()
    };
    let mut chunks = match &loaded.rest {
        Rest::Nothing => Vec::new(),
        Rest::Everything => walk(conn, None, None, &mut placer, progress).await?,
        Rest::From(floor) => walk(conn, Some(floor), None, &mut placer, progress).await?,
    };
    stats.walked(chunks.len());
    stats.loaded(loaded.chunks.len());
    let mut seqs = vec![seq; chunks.len()];
    chunks.extend(loaded.chunks);
    seqs.extend(loaded.seqs);
    if seqs.iter().all(|&kept_at| kept_at == seq) {
        return Ok(chunks);
    }
    match touched(conn, &chunks, &seqs, seq, progress).await? {
        Some(touched) => update(conn, &chunks, &touched, context).await,
        None => {
            drop(chunks);
            let mut placer = Placer {
                spool,
                resident_left: config.memory_budget,
            };
            let chunks = walk(conn, None, None, &mut placer, progress).await?;
            stats.walked(chunks.len());
            Ok(chunks)
        }
    }
}

/// The chunks (by index in `chunks`) that the changes after each one's
/// seq (in `seqs`) up to `seq` touched, each with the orders that changed
/// in it (`None`: read it again whole, after a seed or many changes);
/// `None` when the log cannot say (pruned past a chunk, or a change of
/// every order).
type Touched = BTreeMap<usize, Option<BTreeSet<String>>>;

async fn touched<C: Queries>(
    conn: &mut C,
    chunks: &[Arc<Chunk>],
    seqs: &[i64],
    seq: i64,
    progress: &Progress,
) -> Result<Option<Touched>, StorageError> {
    let since = seqs.iter().copied().min().unwrap_or(seq);
    if seq - since > MAX_CHANGES {
        return Ok(None);
    }
    let changes = progress
        .after(conn.changes_since(since, seq - since))
        .await?;
    // Seqs are consecutive (one per committed write; a rolled-back write
    // takes its bump of the head with it), so a gap means pruned rows.
    let complete = changes.len() as i64 == seq - since
        && (since == seq
            || changes
                .first()
                .is_some_and(|(first, _, _)| *first == since + 1));
    if !complete {
        return Ok(None);
    }
    let mut touched = Touched::new();
    for (change_seq, order_id, kind) in changes {
        let Some(order_id) = order_id else {
            return Ok(None);
        };
        let index = covering(chunks, &order_id);
        // A chunk kept as of a later seq already holds the change.
        let newer = |index: &usize| seqs[*index] < change_seq;
        if kind == SEEDED {
            // Every order from `order_id` up may be new.
            for index in (0..=index).filter(newer) {
                touched.insert(index, None);
            }
        } else if newer(&index) {
            let changed = touched
                .entry(index)
                .or_insert_with(|| Some(BTreeSet::new()));
            if let Some(orders) = changed {
                orders.insert(order_id);
                if orders.len() > splice::AT_MOST {
                    *changed = None;
                }
            }
        }
    }
    Ok(Some(touched))
}

/// The held chunks with the touched ones brought up to date: patched with
/// the few orders that changed in them (`splice`), or read again, as one
/// chunk, or, when one grew past `SPLIT_ABOVE` (new orders land in the
/// newest; a seed of 900,000 does too), walked in chunks of
/// `TARGET_ORDERS`, so that a re-read holds no more rows at once than a
/// walk does.
async fn update<C: Queries>(
    conn: &mut C,
    held: &[Arc<Chunk>],
    touched: &Touched,
    context: &Context<'_>,
) -> Result<Vec<Arc<Chunk>>, StorageError> {
    let (config, spool, progress) = (context.config, context.spool, context.progress);
    let kept_resident: usize = held
        .iter()
        .enumerate()
        .filter(|(index, _)| !touched.contains_key(index))
        .map(|(_, chunk)| chunk.resident_bytes())
        .sum();
    let mut placer = Placer {
        spool,
        resident_left: config.memory_budget.saturating_sub(kept_resident),
    };
    let mut chunks = Vec::with_capacity(held.len() + touched.len());
    for (index, chunk) in held.iter().enumerate() {
        let Some(changed) = touched.get(&index) else {
            chunks.push(Arc::clone(chunk));
            continue;
        };
        if let Some(changed) = changed
            && let Some(spliced) = spliced(conn, chunk, changed, &mut placer, progress).await?
        {
            context.stats.spliced(1);
            chunks.push(spliced);
            continue;
        }
        context.stats.reread(1);
        let ceiling = index
            .checked_sub(1)
            .and_then(|before| held[before].floor.as_deref());
        let floor = chunk.floor.as_deref();
        let orders = progress
            .after(conn.orders_in_range(floor, ceiling, Some(SPLIT_ABOVE as i64 + 1)))
            .await?;
        if orders.len() > SPLIT_ABOVE {
            drop(orders);
            chunks.extend(walk(conn, floor, ceiling, &mut placer, progress).await?);
            continue;
        }
        let items = progress.after(conn.items_in_range(floor, ceiling)).await?;
        let rendered = Rendered::new(orders, items)?;
        chunks.push(rendered.into_one_chunk(chunk.floor.clone(), &mut placer)?);
    }
    Ok(chunks)
}

/// `chunk` with the orders in `changed` read again by id and spliced in;
/// `None` when it should be read again whole instead (it grew past
/// `SPLIT_ABOVE`, or its bytes are not a list of orders).
async fn spliced<C: Queries>(
    conn: &mut C,
    chunk: &Chunk,
    changed: &BTreeSet<String>,
    placer: &mut Placer<'_>,
    progress: &Progress,
) -> Result<Option<Arc<Chunk>>, StorageError> {
    let ids: Vec<&str> = changed.iter().map(String::as_str).collect();
    let orders = progress.after(conn.orders_by_ids(&ids)).await?;
    let found: Vec<&str> = orders.iter().map(|order| order.id.as_str()).collect();
    let items = if found.is_empty() {
        Vec::new()
    } else {
        progress.after(conn.items_by_order_ids(&found)).await?
    };
    // Each order's items in position order, as `items_by_order_ids` reads
    // them.
    let mut items_of: HashMap<String, Vec<Item>> = HashMap::new();
    for item in items {
        let order_id = item.order_id.clone();
        items_of.entry(order_id).or_default().push(item.into_item());
    }
    let mut fresh = Vec::with_capacity(orders.len());
    for row in orders {
        let own = items_of.remove(&row.id).unwrap_or_default();
        let id = row.id.clone();
        let mut bytes = Vec::with_capacity(512);
        render(&mut bytes, row, own)?;
        fresh.push((id, bytes));
    }
    fresh.sort_unstable_by(|(a, _), (b, _)| b.cmp(a));
    let body = chunk.part.read().map_err(StorageError::Spool)?;
    match splice::splice(&body, changed, &fresh) {
        Some((body, orders)) if orders <= SPLIT_ABOVE => Ok(Some(placer.chunk(
            chunk.floor.clone(),
            orders,
            Bytes::from(body),
        )?)),
        _ => Ok(None),
    }
}

/// Appends one order's rendering: the bytes a walk and a splice both give.
fn render(body: &mut Vec<u8>, row: OrderRow, items: Vec<Item>) -> Result<(), StorageError> {
    let order = row.into_order(items)?;
    serde_json::to_writer(body, &order).expect("an order always serialises");
    Ok(())
}

/// Every order with `lowest <= id < highest` (open ends for `None`),
/// newest first, one chunk of `TARGET_ORDERS` at a time; the last chunk
/// has `lowest` for its floor.
///
/// Rendering a chunk costs about as much as reading it, so chunk N is
/// rendered on a blocking thread while chunk N+1 is read: the queries stay
/// on the one connection and in the one transaction (one snapshot), and
/// the walk takes both cores instead of one.
async fn walk<C: Queries>(
    conn: &mut C,
    lowest: Option<&str>,
    highest: Option<&str>,
    placer: &mut Placer<'_>,
    progress: &Progress,
) -> Result<Vec<Arc<Chunk>>, StorageError> {
    let mut chunks: Vec<Arc<Chunk>> = Vec::new();
    let mut rendering: Option<(Option<String>, Rendering)> = None;
    let mut ceiling: Option<String> = highest.map(str::to_owned);
    loop {
        let orders = progress
            .after(conn.orders_in_range(lowest, ceiling.as_deref(), Some(TARGET_ORDERS as i64)))
            .await?;
        let full = orders.len() == TARGET_ORDERS;
        let Some(last) = orders.last() else {
            break;
        };
        // The last chunk covers everything down to `lowest`.
        let floor = if full {
            Some(last.id.clone())
        } else {
            lowest.map(str::to_owned)
        };
        let items = progress
            .after(conn.items_in_range(Some(&last.id), ceiling.as_deref()))
            .await?;
        let next = (floor.clone(), Rendering::start(orders, items));
        if let Some((floor, rendered)) = rendering.replace(next) {
            chunks.push(rendered.finish().await?.into_one_chunk(floor, placer)?);
        }
        if !full {
            break;
        }
        ceiling = floor;
    }
    if let Some((floor, rendered)) = rendering {
        chunks.push(rendered.finish().await?.into_one_chunk(floor, placer)?);
    }
    match chunks.last() {
        // A range of exactly a multiple of TARGET_ORDERS (or empty): the
        // last chunk still needs `lowest` for its floor.
        Some(last) if last.floor.as_deref() == lowest => {}
        _ => chunks.push(placer.chunk(lowest.map(str::to_owned), 0, Bytes::new())?),
    }
    Ok(chunks)
}

/// A chunk being rendered on a blocking thread.
struct Rendering(tokio::task::JoinHandle<Result<Rendered, StorageError>>);

impl Rendering {
    fn start(orders: Vec<OrderRow>, items: Vec<ItemRow>) -> Self {
        Self(tokio::task::spawn_blocking(move || {
            Rendered::new(orders, items)
        }))
    }

    async fn finish(self) -> Result<Rendered, StorageError> {
        self.0.await.map_err(StorageError::Task)?
    }
}

/// Moves every spooled chunk to a fresh file once the current one is
/// mostly garbage.
fn respool(chunks: Vec<Arc<Chunk>>, spool: &Arc<Spool>) -> Result<Vec<Arc<Chunk>>, StorageError> {
    let live: u64 = chunks.iter().map(|chunk| chunk.spooled_bytes()).sum();
    if !spool.wants_rewrite(live) {
        return Ok(chunks);
    }
    spool.restart();
    chunks
        .into_iter()
        .map(|chunk| {
            let Some(spooled) = &chunk.spooled else {
                return Ok(chunk);
            };
            if spool.is_current(spooled) {
                return Ok(chunk);
            }
            let bytes = spooled.read().map_err(StorageError::Spool)?;
            let moved = Arc::new(spool.append(&bytes).map_err(StorageError::Spool)?);
            Ok(Arc::new(Chunk {
                floor: chunk.floor.clone(),
                orders: chunk.orders,
                part: Arc::clone(&moved) as Arc<dyn ListPart>,
                resident: false,
                spooled: Some(moved),
            }))
        })
        .collect()
}

/// Orders rendered into one buffer, newest first, separated by commas.
struct Rendered {
    body: Bytes,
    orders: usize,
}

impl Rendered {
    /// `orders` newest first; `items` in the same order of orders, each
    /// order's items last position first (as `items_in_range` reads them).
    fn new(orders: Vec<OrderRow>, items: Vec<ItemRow>) -> Result<Self, StorageError> {
        let mut body = Vec::with_capacity(orders.len() * 330);
        let count = orders.len();
        let mut items = items.into_iter().peekable();
        for row in orders {
            // Items of orders outside the list (none, with the foreign
            // key) are passed over.
            while items.next_if(|item| item.order_id > row.id).is_some() {}
            let mut own: Vec<Item> = Vec::new();
            while let Some(item) = items.next_if(|item| item.order_id == row.id) {
                own.push(item.into_item());
            }
            own.reverse();
            if !body.is_empty() {
                body.push(b',');
            }
            render(&mut body, row, own)?;
        }
        Ok(Self {
            body: Bytes::from(body),
            orders: count,
        })
    }

    fn into_one_chunk(
        self,
        floor: Option<String>,
        placer: &mut Placer<'_>,
    ) -> Result<Arc<Chunk>, StorageError> {
        placer.chunk(floor, self.orders, self.body)
    }
}
