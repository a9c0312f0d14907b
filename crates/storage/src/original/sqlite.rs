//! The migration on SQLite: synchronous diesel on a blocking thread, each
//! command in one `BEGIN IMMEDIATE` transaction, so a kill at any point
//! leaves the file as it was or fully migrated.

use std::collections::BTreeSet;
use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::MigrationHarness;

use super::convert::{self, MigratedOrder, RawItem, RawOrder};
use super::layout::{
    BACKUP_ITEMS, BACKUP_ORDERS, Layout, MIGRATIONS_TABLE, ORIGINAL_ITEMS, ORIGINAL_ORDERS,
    OUR_TABLES, RECORD, ROLLBACK_STAGED,
};
use super::report::Report;
use super::tables::{rollback_items, rollback_orders, rollback_rows};
use super::{
    Applied, BATCH, Decisions, Progress, ProgressFn, RolledBack, Stage, ddl, not_original,
    now_millis, takeover,
};
use crate::StorageError;
use crate::models::{ItemInsert, ItemRow, OrderInsert, OrderRow};
use crate::ops::{ITEMS_PER_INSERT, ORDERS_PER_INSERT};
use crate::schema::{order_counts, order_items, orders};

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A transaction's outcome besides success: an error, or a refusal that
/// must roll the transaction back but is not a failure.
enum Abort {
    Failed(StorageError),
    Refused(Report),
}

impl From<diesel::result::Error> for Abort {
    fn from(error: diesel::result::Error) -> Self {
        Self::Failed(error.into())
    }
}

impl From<StorageError> for Abort {
    fn from(error: StorageError) -> Self {
        Self::Failed(error)
    }
}

/// Opens the file for reading only (`mode=ro`): inspecting and surveying
/// must leave it byte for byte as it was. `None` when there is no database
/// yet (no file, or an empty one).
fn open_read_only(path: &Path) -> Result<Option<SqliteConnection>, StorageError> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.len() > 0 => {}
        _ => return Ok(None),
    }
    recover_interrupted(path)?;
    let text = path.to_str().ok_or_else(|| StorageError::InvalidUrl {
        url: path.display().to_string(),
        reason: "the SQLite path is not valid UTF-8".to_owned(),
    })?;
    // A URI filename: `%`, `?` and `#` would be read as URI syntax.
    let escaped = text
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    let mut conn = SqliteConnection::establish(&format!("file:{escaped}?mode=ro"))
        .map_err(StorageError::Connect)?;
    conn.batch_execute("PRAGMA busy_timeout = 5000;")?;
    Ok(Some(conn))
}

/// A write killed midway (a migration, or the original's own) leaves a
/// hot journal, which a read-only connection cannot roll back: it would
/// fail instead of reading. Opening the file for writing once lets SQLite
/// roll the journal back, which puts the file back as it was before that
/// write; nothing else is written.
fn recover_interrupted(path: &Path) -> Result<(), StorageError> {
    let mut journal = path.as_os_str().to_owned();
    journal.push("-journal");
    let hot = std::fs::metadata(&journal).is_ok_and(|metadata| metadata.len() > 0);
    if hot && let Some(text) = path.to_str() {
        let mut conn = SqliteConnection::establish(text).map_err(StorageError::Connect)?;
        conn.batch_execute("PRAGMA busy_timeout = 5000; SELECT count(*) FROM sqlite_master;")?;
    }
    Ok(())
}

/// For the commands that write. Foreign keys stay off: tables are renamed
/// and dropped whole, and a rename must not trigger row actions.
fn open_read_write(path: &Path) -> Result<SqliteConnection, StorageError> {
    let text = path.to_str().ok_or_else(|| StorageError::InvalidUrl {
        url: path.display().to_string(),
        reason: "the SQLite path is not valid UTF-8".to_owned(),
    })?;
    if !path.exists() {
        return Err(takeover(format!("{text}: no such database file")));
    }
    let mut conn = SqliteConnection::establish(text).map_err(StorageError::Connect)?;
    conn.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = OFF;")?;
    Ok(conn)
}

fn layout(conn: &mut SqliteConnection) -> Result<Layout, StorageError> {
    let tables: BTreeSet<String> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )
    .load::<Name>(conn)?
    .into_iter()
    .map(|row| row.name)
    .collect();
    let columns: BTreeSet<String> =
        diesel::sql_query("SELECT name FROM pragma_table_info('orders')")
            .load::<Name>(conn)?
            .into_iter()
            .map(|row| row.name)
            .collect();
    Ok(Layout::classify(&tables, &columns))
}

pub(super) fn inspect(path: &Path) -> Result<Layout, StorageError> {
    match open_read_only(path)? {
        Some(mut conn) => layout(&mut conn),
        None => Ok(Layout::Empty),
    }
}

pub(super) fn survey(
    path: &Path,
    decisions: &Decisions,
    examples: usize,
    progress: &ProgressFn,
) -> Result<Report, StorageError> {
    let mut conn = open_read_only(path)?.ok_or_else(|| takeover("the database is empty"))?;
    // One read transaction: the report describes one state of the tables.
    conn.transaction(|conn| {
        let mut report = Report::new(examples);
        scan(
            conn,
            (ORIGINAL_ORDERS, ORIGINAL_ITEMS),
            decisions,
            &mut report,
            progress,
            |_, _, _| Ok(()),
        )?;
        Ok(report)
    })
}

/// Reads the original's orders in id order, a batch at a time, each batch
/// with every item of its id range (from a temporary copy of the items
/// indexed by order: the original's table has no such index, and the copy
/// leaves the file untouched), converts it and hands it to `sink`.
fn scan(
    conn: &mut SqliteConnection,
    (orders_table, items_table): (&str, &str),
    decisions: &Decisions,
    report: &mut Report,
    progress: &ProgressFn,
    mut sink: impl FnMut(&mut SqliteConnection, &[MigratedOrder], &Report) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let total = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {orders_table}"))
        .get_result::<Count>(conn)?
        .n
        .max(0) as u64;
    conn.batch_execute(&format!(
        "DROP TABLE IF EXISTS temp.migrate_items;
         CREATE TEMP TABLE migrate_items AS
             SELECT id, order_id, item_name, CAST(quantity AS INTEGER) AS quantity FROM main.{items_table};
         CREATE INDEX temp.migrate_items_by_order ON migrate_items (order_id, id);"
    ))?;
    let mut after: Option<String> = None;
    loop {
        let select = format!("SELECT id, customer_name, status FROM main.{orders_table}");
        let orders: Vec<RawOrder> = match &after {
            None => diesel::sql_query(format!("{select} ORDER BY id LIMIT {BATCH}")).load(conn)?,
            Some(after) => {
                diesel::sql_query(format!("{select} WHERE id > ? ORDER BY id LIMIT {BATCH}"))
                    .bind::<Text, _>(after)
                    .load(conn)?
            }
        };
        // A short batch is the last: its items run to the end of the range.
        let upto = (orders.len() == BATCH).then(|| orders[BATCH - 1].id.clone());
        let items = items_between(conn, after.as_deref(), upto.as_deref())?;
        let migrated = convert::batch(orders, items, decisions, report);
        sink(conn, &migrated, report)?;
        progress(Progress {
            stage: Stage::Orders,
            done: report.orders_read,
            total,
        });
        match upto {
            Some(upto) => after = Some(upto),
            None => break,
        }
    }
    conn.batch_execute("DROP TABLE temp.migrate_items;")?;
    Ok(())
}

fn items_between(
    conn: &mut SqliteConnection,
    after: Option<&str>,
    upto: Option<&str>,
) -> Result<Vec<RawItem>, StorageError> {
    let select = "SELECT id, order_id, item_name, quantity FROM temp.migrate_items";
    let order = "ORDER BY order_id, id";
    Ok(match (after, upto) {
        (None, None) => diesel::sql_query(format!("{select} {order}")).load(conn)?,
        (Some(after), None) => diesel::sql_query(format!("{select} WHERE order_id > ? {order}"))
            .bind::<Text, _>(after)
            .load(conn)?,
        (None, Some(upto)) => diesel::sql_query(format!("{select} WHERE order_id <= ? {order}"))
            .bind::<Text, _>(upto)
            .load(conn)?,
        (Some(after), Some(upto)) => diesel::sql_query(format!(
            "{select} WHERE order_id > ? AND order_id <= ? {order}"
        ))
        .bind::<Text, _>(after)
        .bind::<Text, _>(upto)
        .load(conn)?,
    })
}

/// Writes migrated orders into our tables.
fn insert_migrated(
    conn: &mut SqliteConnection,
    migrated: &[MigratedOrder],
    now: i64,
) -> Result<(), StorageError> {
    for chunk in migrated.chunks(ORDERS_PER_INSERT) {
        let rows: Vec<OrderInsert<'_>> = chunk
            .iter()
            .map(|order| OrderInsert {
                id: order.id.clone(),
                customer_name: &order.customer_name,
                status: order.status.as_str(),
                created_at: now,
                updated_at: now,
                version: 1,
            })
            .collect();
        diesel::insert_into(orders::table)
            .values(&rows)
            .execute(conn)?;
    }
    let items: Vec<ItemInsert<'_>> = migrated
        .iter()
        .flat_map(|order| {
            order
                .items
                .iter()
                .zip(0..)
                .map(|(item, position)| ItemInsert {
                    order_id: &order.id,
                    position,
                    name: &item.name,
                    quantity: item.quantity,
                })
        })
        .collect();
    for chunk in items.chunks(ITEMS_PER_INSERT) {
        diesel::insert_into(order_items::table)
            .values(chunk)
            .execute(conn)?;
    }
    Ok(())
}

pub(super) fn apply(
    path: &Path,
    decisions: &Decisions,
    examples: usize,
    progress: &ProgressFn,
) -> Result<Applied, StorageError> {
    let mut conn = open_read_write(path)?;
    let outcome = conn.immediate_transaction(|conn| -> Result<Applied, Abort> {
        match layout(conn)? {
            Layout::Original { leftovers } => {
                // On SQLite only an earlier release's empty migrations table
                // can be left: every other step is inside a transaction.
                for table in leftovers {
                    conn.batch_execute(&format!("DROP TABLE \"{table}\";"))?;
                }
            }
            Layout::Ours { migrated: true, .. } => return Ok(Applied::AlreadyMigrated),
            other => return Err(not_original(&other).into()),
        }
        conn.batch_execute(&format!(
            "ALTER TABLE {ORIGINAL_ORDERS} RENAME TO {BACKUP_ORDERS};
             ALTER TABLE {ORIGINAL_ITEMS} RENAME TO {BACKUP_ITEMS};"
        ))?;
        // Our own migrations, exactly as a fresh start runs them (each in a
        // savepoint of this transaction).
        conn.run_pending_migrations(crate::pool::SQLITE_MIGRATIONS)
            .map_err(|error| StorageError::Migration(error.to_string()))?;
        conn.batch_execute(ddl::RECORD_TABLE)?;
        let now = now_millis();
        let mut report = Report::new(examples);
        scan(
            conn,
            (BACKUP_ORDERS, BACKUP_ITEMS),
            decisions,
            &mut report,
            progress,
            |conn, migrated, report| {
                // Once a row is undecided nothing will be kept: stop writing.
                if report.undecided_total() == 0 {
                    insert_migrated(conn, migrated, now)?;
                }
                Ok(())
            },
        )?;
        if report.undecided_total() > 0 {
            return Err(Abort::Refused(report));
        }
        for (status, n) in &report.per_status {
            diesel::update(
                order_counts::table
                    .filter(order_counts::status.eq(status.as_str()))
                    .filter(order_counts::shard.eq(0)),
            )
            .set(order_counts::n.eq(n))
            .execute(conn)?;
        }
        record(conn, &report, decisions, now)?;
        progress(Progress {
            stage: Stage::Switching,
            done: report.orders_read,
            total: report.orders_read,
        });
        Ok(Applied::Migrated(report))
    });
    match outcome {
        Ok(applied) => Ok(applied),
        Err(Abort::Refused(report)) => Ok(Applied::Refused(report)),
        Err(Abort::Failed(error)) => Err(error),
    }
}

fn record(
    conn: &mut SqliteConnection,
    report: &Report,
    decisions: &Decisions,
    now: i64,
) -> Result<(), StorageError> {
    diesel::sql_query(format!(
        "INSERT INTO {RECORD} (migrated_at, order_count, item_count, decisions) VALUES (?, ?, ?, ?)"
    ))
    .bind::<BigInt, _>(now)
    .bind::<BigInt, _>(report.orders_written as i64)
    .bind::<BigInt, _>(report.items_written as i64)
    .bind::<Text, _>(decisions.to_flags().join(" "))
    .execute(conn)?;
    Ok(())
}

pub(super) fn rollback(path: &Path, progress: &ProgressFn) -> Result<RolledBack, StorageError> {
    let mut conn = open_read_write(path)?;
    let rolled = conn.immediate_transaction(|conn| {
        let leftovers = match layout(conn)? {
            Layout::Ours { leftovers, .. } => leftovers,
            // Rolled back already (a rerun, to invalidate the cache).
            Layout::Original { .. } => {
                let mut n = |table: &str| -> Result<u64, StorageError> {
                    let count = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                        .get_result::<Count>(conn)?;
                    Ok(count.n.max(0) as u64)
                };
                return Ok(RolledBack {
                    orders: n(ORIGINAL_ORDERS)?,
                    items: n(ORIGINAL_ITEMS)?,
                });
            }
            other => {
                return Err(takeover(format!(
                    "nothing to roll back: the database holds {other}"
                )));
            }
        };
        for table in leftovers {
            conn.batch_execute(&format!("DROP TABLE \"{table}\";"))?;
        }
        conn.batch_execute(&ddl::renamed(ddl::ORIGINAL_SQLITE, ROLLBACK_STAGED))?;
        let rolled = copy_back(conn, progress)?;
        let mut drops: Vec<String> = [ORIGINAL_ITEMS, ORIGINAL_ORDERS]
            .into_iter()
            .chain(OUR_TABLES)
            .chain([MIGRATIONS_TABLE, RECORD, BACKUP_ITEMS, BACKUP_ORDERS])
            .map(|table| format!("DROP TABLE IF EXISTS \"{table}\";"))
            .collect();
        drops.push(format!(
            "ALTER TABLE {ORIGINAL_ORDERS}{ROLLBACK_STAGED} RENAME TO {ORIGINAL_ORDERS};
             ALTER TABLE {ORIGINAL_ITEMS}{ROLLBACK_STAGED} RENAME TO {ORIGINAL_ITEMS};"
        ));
        progress(Progress {
            stage: Stage::Switching,
            done: rolled.orders,
            total: rolled.orders,
        });
        conn.batch_execute(&drops.join("\n"))?;
        Ok(rolled)
    })?;
    // The service ran the file in WAL mode; the original never asked for it.
    conn.batch_execute("PRAGMA journal_mode = DELETE;")?;
    Ok(rolled)
}

/// Our orders, in id order, into the original's rebuilt tables; item ids
/// are numbered in that order so the original reads each order's items
/// back in position order.
fn copy_back(
    conn: &mut SqliteConnection,
    progress: &ProgressFn,
) -> Result<RolledBack, StorageError> {
    let total = orders::table.count().get_result::<i64>(conn)?.max(0) as u64;
    let mut rolled = RolledBack {
        orders: 0,
        items: 0,
    };
    let mut after: Option<String> = None;
    loop {
        let mut query = orders::table
            .select(OrderRow::as_select())
            .order(orders::id)
            .limit(BATCH as i64)
            .into_boxed();
        if let Some(after) = &after {
            query = query.filter(orders::id.gt(after.clone()));
        }
        let batch: Vec<OrderRow> = query.load(conn)?;
        let upto = (batch.len() == BATCH).then(|| batch[BATCH - 1].id.clone());
        let mut items = order_items::table
            .select(ItemRow::as_select())
            .order((order_items::order_id, order_items::position))
            .into_boxed();
        if let Some(after) = &after {
            items = items.filter(order_items::order_id.gt(after.clone()));
        }
        if let Some(upto) = &upto {
            items = items.filter(order_items::order_id.le(upto.clone()));
        }
        let items: Vec<ItemRow> = items.load(conn)?;
        let (order_rows, item_rows) = rollback_rows(&batch, &items, rolled.items as i64 + 1);
        for chunk in order_rows.chunks(ORDERS_PER_INSERT) {
            diesel::insert_into(rollback_orders::table)
                .values(chunk)
                .execute(conn)?;
        }
        for chunk in item_rows.chunks(ITEMS_PER_INSERT) {
            diesel::insert_into(rollback_items::table)
                .values(chunk)
                .execute(conn)?;
        }
        rolled.orders += batch.len() as u64;
        rolled.items += items.len() as u64;
        progress(Progress {
            stage: Stage::RollingBack,
            done: rolled.orders,
            total,
        });
        match upto {
            Some(upto) => after = Some(upto),
            None => return Ok(rolled),
        }
    }
}

pub(super) fn drop_backup(path: &Path) -> Result<bool, StorageError> {
    let mut conn = open_read_write(path)?;
    conn.immediate_transaction(|conn| match layout(conn)? {
        Layout::Ours { backup: true, .. } => {
            conn.batch_execute(&format!(
                "DROP TABLE {BACKUP_ITEMS}; DROP TABLE {BACKUP_ORDERS};"
            ))?;
            Ok(true)
        }
        Layout::Ours { .. } => Ok(false),
        other => Err(takeover(format!(
            "no backup to drop: the database holds {other}"
        ))),
    })
}
