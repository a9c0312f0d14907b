//! The migration on MySQL/MariaDB. DDL commits at once there, so apply and
//! rollback build the other side's tables beside the live ones (`*_migrating`,
//! `*_rollback`) and switch with one `RENAME TABLE`, which is atomic: a kill
//! before it leaves the database as it was (plus staging tables the next
//! run drops), a kill after it leaves the switch done. Rows are read on one
//! connection, in one consistent snapshot, and written on another, the
//! next batch's read overlapping the last batch's write.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use diesel::migration::MigrationSource;
use diesel::mysql::Mysql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};

use super::convert::{self, MigratedOrder, RawItem, RawOrder};
use super::layout::{
    BACKUP_ITEMS, BACKUP_ORDERS, Layout, MIGRATIONS_TABLE, ORIGINAL_ITEMS, ORIGINAL_ORDERS,
    OUR_TABLES, RECORD, RETIRED, ROLLBACK_STAGED, STAGED,
};
use super::report::Report;
use super::tables::{rollback_items, rollback_orders, rollback_rows};
use super::{
    Applied, BATCH, Decisions, Progress, ProgressFn, RolledBack, Stage, ddl, not_original,
    now_millis, takeover,
};
use crate::StorageError;
use crate::models::{ItemRow, OrderRow};
use crate::ops::{ITEMS_PER_INSERT, ORDERS_PER_INSERT};
use crate::schema::{order_items, orders};

type Conn = AsyncMysqlConnection;

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

async fn connect(url: &str) -> Result<Conn, StorageError> {
    let mut conn = crate::pool::mysql_connection(url).await?;
    // A switch waiting for a lock someone holds (a live original's open
    // transaction) fails after this long instead of the default year.
    conn.batch_execute("SET SESSION lock_wait_timeout = 60;")
        .await?;
    Ok(conn)
}

async fn table_names(conn: &mut Conn) -> Result<BTreeSet<String>, StorageError> {
    Ok(diesel::sql_query(
        "SELECT CAST(table_name AS CHAR) AS name FROM information_schema.tables
         WHERE table_schema = DATABASE()",
    )
    .load::<Name>(conn)
    .await?
    .into_iter()
    .map(|row| row.name)
    .collect())
}

pub(super) async fn layout(conn: &mut Conn) -> Result<Layout, StorageError> {
    let tables = table_names(conn).await?;
    let columns: BTreeSet<String> = diesel::sql_query(
        "SELECT CAST(column_name AS CHAR) AS name FROM information_schema.columns
         WHERE table_schema = DATABASE() AND table_name = 'orders'",
    )
    .load::<Name>(conn)
    .await?
    .into_iter()
    .map(|row| row.name)
    .collect();
    Ok(Layout::classify(&tables, &columns))
}

pub(super) async fn inspect(url: &str) -> Result<Layout, StorageError> {
    layout(&mut connect(url).await?).await
}

async fn count(conn: &mut Conn, table: &str) -> Result<u64, StorageError> {
    let count = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM `{table}`"))
        .get_result::<Count>(conn)
        .await?;
    Ok(count.n.max(0) as u64)
}

/// A connection that reads one consistent snapshot until `finish`.
async fn snapshot_reader(url: &str) -> Result<Conn, StorageError> {
    let mut reader = connect(url).await?;
    reader
        .batch_execute(
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;
             START TRANSACTION WITH CONSISTENT SNAPSHOT;",
        )
        .await?;
    Ok(reader)
}

/// Walks the original's orders in id order, a batch at a time, each with
/// every item of its id range, so every item is read exactly once.
///
/// Applying, the items come from a temporary copy clustered by (order,
/// id): through the original's `order_id` index each item costs a random
/// lookup of its row, which at 3,000,000 items and a default buffer pool
/// was most of the time. The copy (`CREATE ... SELECT`) takes shared locks
/// on the original's items while it runs, which is harmless once the
/// original is stopped, as applying requires; the dry run, which may run
/// beside a live original, reads through the index with plain consistent
/// reads and locks nothing.
struct Scan {
    after: Option<String>,
    done: bool,
    total: u64,
    items: &'static str,
}

/// Where a scan reads items from, and how.
const ITEMS_BY_INDEX: &str = "SELECT CAST(id AS SIGNED) AS id, order_id, item_name, \
                              CAST(quantity AS SIGNED) AS quantity FROM order_items";
const ITEMS_COPIED: &str = "SELECT id, order_id, item_name, quantity FROM migrate_items";

impl Scan {
    async fn start(reader: &mut Conn, copy_items: bool) -> Result<Scan, StorageError> {
        if !copy_items {
            return Ok(Scan {
                after: None,
                done: false,
                total: count(reader, ORIGINAL_ORDERS).await?,
                items: ITEMS_BY_INDEX,
            });
        }
        reader
            .batch_execute(
                "CREATE TEMPORARY TABLE migrate_items (PRIMARY KEY (order_id, id)) ENGINE = InnoDB
                 SELECT CAST(id AS SIGNED) AS id, order_id, item_name, CAST(quantity AS SIGNED) AS quantity
                 FROM order_items ORDER BY order_id, id;",
            )
            .await?;
        Ok(Scan {
            after: None,
            done: false,
            total: count(reader, ORIGINAL_ORDERS).await?,
            items: ITEMS_COPIED,
        })
    }

    async fn next(
        &mut self,
        reader: &mut Conn,
        decisions: &Decisions,
        report: &mut Report,
    ) -> Result<Option<Vec<MigratedOrder>>, StorageError> {
        if self.done {
            return Ok(None);
        }
        let select = "SELECT id, customer_name, status FROM orders";
        let orders: Vec<RawOrder> = match &self.after {
            None => {
                diesel::sql_query(format!("{select} ORDER BY id LIMIT {BATCH}"))
                    .load(reader)
                    .await?
            }
            Some(after) => {
                diesel::sql_query(format!("{select} WHERE id > ? ORDER BY id LIMIT {BATCH}"))
                    .bind::<Text, _>(after)
                    .load(reader)
                    .await?
            }
        };
        // A short batch is the last: its items run to the end.
        let upto = (orders.len() == BATCH).then(|| orders[BATCH - 1].id.clone());
        let items =
            items_between(reader, self.items, self.after.as_deref(), upto.as_deref()).await?;
        let migrated = convert::batch(orders, items, decisions, report);
        match upto {
            Some(upto) => self.after = Some(upto),
            None => self.done = true,
        }
        Ok(Some(migrated))
    }
}

async fn items_between(
    reader: &mut Conn,
    select: &str,
    after: Option<&str>,
    upto: Option<&str>,
) -> Result<Vec<RawItem>, StorageError> {
    let order = "ORDER BY order_id, id";
    Ok(match (after, upto) {
        (None, None) => {
            diesel::sql_query(format!("{select} {order}"))
                .load(reader)
                .await?
        }
        (Some(after), None) => {
            diesel::sql_query(format!("{select} WHERE order_id > ? {order}"))
                .bind::<Text, _>(after)
                .load(reader)
                .await?
        }
        (None, Some(upto)) => {
            diesel::sql_query(format!("{select} WHERE order_id <= ? {order}"))
                .bind::<Text, _>(upto)
                .load(reader)
                .await?
        }
        (Some(after), Some(upto)) => {
            diesel::sql_query(format!(
                "{select} WHERE order_id > ? AND order_id <= ? {order}"
            ))
            .bind::<Text, _>(after)
            .bind::<Text, _>(upto)
            .load(reader)
            .await?
        }
    })
}

pub(super) async fn survey(
    url: &str,
    decisions: &Decisions,
    examples: usize,
    progress: &ProgressFn,
) -> Result<Report, StorageError> {
    let mut reader = snapshot_reader(url).await?;
    let mut report = Report::new(examples);
    let mut scan = Scan::start(&mut reader, false).await?;
    while scan
        .next(&mut reader, decisions, &mut report)
        .await?
        .is_some()
    {
        progress(Progress {
            stage: Stage::Orders,
            done: report.orders_read,
            total: scan.total,
        });
    }
    reader.batch_execute("COMMIT;").await?;
    Ok(report)
}

/// Writes a batch as multi-row INSERTs in SQL text: a prepared statement
/// of 30,000 placeholders is prepared, run and closed for every chunk
/// (diesel caches no statement of variable length), which cost as much as
/// the inserts themselves. Names go as hexadecimal literals, so no escaping
/// (and no `sql_mode`) is involved; ids are canonical UUIDs by then and
/// statuses one of eight words.
async fn insert_staged_orders(
    writer: &mut Conn,
    migrated: &[MigratedOrder],
    now: i64,
) -> Result<(), StorageError> {
    for chunk in migrated.chunks(ORDERS_PER_INSERT) {
        let mut sql = format!(
            "INSERT INTO orders{STAGED} (id, customer_name, status, created_at, updated_at, version) VALUES "
        );
        for (i, order) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            let _ = write!(
                sql,
                "('{}',{},'{}',{now},{now},1)",
                order.id,
                hex(&order.customer_name),
                order.status.as_str()
            );
        }
        writer.batch_execute(&sql).await?;
    }
    Ok(())
}

async fn insert_staged_items(
    writer: &mut Conn,
    migrated: &[MigratedOrder],
) -> Result<(), StorageError> {
    let mut items = migrated
        .iter()
        .flat_map(|order| {
            order
                .items
                .iter()
                .zip(0..)
                .map(move |(item, position)| (order, item, position))
        })
        .peekable();
    while items.peek().is_some() {
        let mut sql =
            format!("INSERT INTO order_items{STAGED} (order_id, position, name, quantity) VALUES ");
        for (i, (order, item, position)) in items.by_ref().take(ITEMS_PER_INSERT).enumerate() {
            if i > 0 {
                sql.push(',');
            }
            let _ = write!(
                sql,
                "('{}',{position},{},{})",
                order.id,
                hex(&item.name),
                item.quantity
            );
        }
        writer.batch_execute(&sql).await?;
    }
    Ok(())
}

/// `_utf8mb4 X'...'`: the text's bytes, read as UTF-8.
fn hex(text: &str) -> String {
    let mut out = String::with_capacity(12 + 2 * text.len());
    out.push_str("_utf8mb4 X'");
    for byte in text.bytes() {
        let _ = write!(out, "{byte:02x}");
    }
    out.push('\'');
    out
}

async fn drop_tables(
    conn: &mut Conn,
    tables: impl IntoIterator<Item = String>,
) -> Result<(), StorageError> {
    let tables: Vec<String> = tables
        .into_iter()
        .map(|table| format!("`{table}`"))
        .collect();
    if !tables.is_empty() {
        // The session has foreign_key_checks off: any order drops.
        conn.batch_execute(&format!(
            "SET SESSION foreign_key_checks = 0; DROP TABLE IF EXISTS {};",
            tables.join(", ")
        ))
        .await?;
    }
    Ok(())
}

async fn connection_id(conn: &mut Conn) -> Result<u64, StorageError> {
    let id = diesel::sql_query("SELECT CAST(CONNECTION_ID() AS SIGNED) AS n")
        .get_result::<Count>(conn)
        .await?;
    Ok(id.n.max(0) as u64)
}

/// Refuses while sessions other than `ours` use the database: a live
/// original, or an instance of this service, whose writes the copy would
/// miss. (Row counts, checked too, cannot see a status change.) A user
/// without the PROCESS privilege sees only its own sessions, which is
/// still every session of a service running under the same user.
async fn refuse_other_sessions(conn: &mut Conn, ours: &[u64]) -> Result<(), StorageError> {
    let ours: Vec<String> = ours.iter().map(u64::to_string).collect();
    let others: Vec<String> = diesel::sql_query(format!(
        "SELECT CONCAT('#', id, ' ', user, '@', host, ' (', command, ')') AS name
         FROM information_schema.processlist
         WHERE db = DATABASE() AND id NOT IN ({})",
        ours.join(", ")
    ))
    .load::<Name>(conn)
    .await?
    .into_iter()
    .map(|row| row.name)
    .collect();
    if others.is_empty() {
        return Ok(());
    }
    Err(takeover(format!(
        "other connections use this database ({}): stop the original service and every other \
         client of it (every instance of this service too), then run again; nothing was changed",
        others.join(", ")
    )))
}

fn staged_names() -> Vec<String> {
    OUR_TABLES
        .into_iter()
        .chain([MIGRATIONS_TABLE, RECORD])
        .map(|table| format!("{table}{STAGED}"))
        .collect()
}

pub(super) async fn apply(
    url: &str,
    decisions: &Decisions,
    examples: usize,
    progress: &ProgressFn,
) -> Result<Applied, StorageError> {
    let mut writer = connect(url).await?;
    let leftovers = match layout(&mut writer).await? {
        Layout::Original { leftovers } => leftovers,
        Layout::Ours {
            migrated: true,
            leftovers,
            ..
        } => {
            // A kill after the switch may have left the retired table.
            drop_tables(
                &mut writer,
                leftovers.into_iter().filter(|t| t.starts_with(RETIRED)),
            )
            .await?;
            return Ok(Applied::AlreadyMigrated);
        }
        other => return Err(not_original(&other)),
    };
    let mut reader = snapshot_reader(url).await?;
    let mut items_writer = connect(url).await?;
    let ours = [
        connection_id(&mut writer).await?,
        connection_id(&mut reader).await?,
        connection_id(&mut items_writer).await?,
    ];
    refuse_other_sessions(&mut writer, &ours).await?;
    // An earlier release's empty migrations table is retired by the switch
    // itself; what an interrupted run staged or retired goes now.
    let old_migrations_table = leftovers.iter().any(|table| table == MIGRATIONS_TABLE);
    drop_tables(
        &mut writer,
        leftovers
            .into_iter()
            .filter(|table| table != MIGRATIONS_TABLE),
    )
    .await?;
    for (_, sql) in ddl::MYSQL_MIGRATIONS {
        writer.batch_execute(&ddl::renamed(sql, STAGED)).await?;
    }
    writer.batch_execute(&ddl::migrations_table(STAGED)).await?;
    writer
        .batch_execute(&ddl::renamed(ddl::RECORD_TABLE, STAGED))
        .await?;
    let migrations = MigrationSource::<Mysql>::migrations(&crate::pool::MYSQL_MIGRATIONS)
        .map_err(|error| StorageError::Migration(error.to_string()))?;
    for migration in migrations {
        diesel::sql_query(format!(
            "INSERT INTO {MIGRATIONS_TABLE}{STAGED} (version) VALUES (?)"
        ))
        .bind::<Text, _>(migration.name().version().to_string())
        .execute(&mut writer)
        .await?;
    }

    let now = now_millis();
    let mut report = Report::new(examples);
    // Orders and items are written on connections of their own, at the
    // same time; the staged tables are new, so their checks are off (an
    // item may land before its order).
    for conn in [&mut writer, &mut items_writer] {
        conn.batch_execute("SET SESSION foreign_key_checks = 0, unique_checks = 0;")
            .await?;
    }
    let mut scan = Scan::start(&mut reader, true).await?;
    let mut batch = scan.next(&mut reader, decisions, &mut report).await?;
    while let Some(migrated) = batch {
        // Once a row is undecided nothing will be kept: stop writing.
        let keep = report.undecided_total() == 0;
        let orders = async {
            match keep {
                true => insert_staged_orders(&mut writer, &migrated, now).await,
                false => Ok(()),
            }
        };
        let items = async {
            match keep {
                true => insert_staged_items(&mut items_writer, &migrated).await,
                false => Ok(()),
            }
        };
        let (next, orders, items) = tokio::join!(
            scan.next(&mut reader, decisions, &mut report),
            orders,
            items
        );
        orders?;
        items?;
        batch = next?;
        progress(Progress {
            stage: Stage::Orders,
            done: report.orders_read,
            total: scan.total,
        });
    }
    reader.batch_execute("COMMIT;").await?;
    if report.undecided_total() > 0 {
        drop_tables(&mut writer, staged_names()).await?;
        return Ok(Applied::Refused(report));
    }
    for (status, n) in &report.per_status {
        diesel::sql_query(format!(
            "UPDATE order_counts{STAGED} SET n = ? WHERE status = ? AND shard = 0"
        ))
        .bind::<BigInt, _>(*n)
        .bind::<Text, _>(status.as_str())
        .execute(&mut writer)
        .await?;
    }
    diesel::sql_query(format!(
        "INSERT INTO {RECORD}{STAGED} (migrated_at, order_count, item_count, decisions) VALUES (?, ?, ?, ?)"
    ))
    .bind::<BigInt, _>(now)
    .bind::<BigInt, _>(report.orders_written as i64)
    .bind::<BigInt, _>(report.items_written as i64)
    .bind::<Text, _>(decisions.to_flags().join(" "))
    .execute(&mut writer)
    .await?;

    // The copy is of one snapshot: a writer still running on the original's
    // tables would have its late orders left behind in the backup.
    let live = (
        count(&mut writer, ORIGINAL_ORDERS).await?,
        count(&mut writer, ORIGINAL_ITEMS).await?,
    );
    let unchanged = refuse_other_sessions(&mut writer, &ours).await;
    if unchanged.is_err() || live != (report.orders_read, report.items_read) {
        drop_tables(&mut writer, staged_names()).await?;
        unchanged?;
        return Err(takeover(format!(
            "the original's tables changed during the migration ({} orders and {} items read, {} and {} now): \
             stop the original service and run again; nothing was changed",
            report.orders_read, report.items_read, live.0, live.1
        )));
    }

    // Tables filled in one bulk copy may keep the empty tables' statistics
    // (InnoDB recounts in the background, and not always before the
    // rename): seen here, a status-filtered list then joined its items by
    // a full scan per order and ran past its time budget.
    writer
        .batch_execute(&format!(
            "ANALYZE TABLE orders{STAGED}, order_items{STAGED};"
        ))
        .await?;
    progress(Progress {
        stage: Stage::Switching,
        done: report.orders_read,
        total: scan.total,
    });
    let mut renames = vec![
        format!("{ORIGINAL_ORDERS} TO {BACKUP_ORDERS}"),
        format!("{ORIGINAL_ITEMS} TO {BACKUP_ITEMS}"),
    ];
    if old_migrations_table {
        renames.push(format!("{MIGRATIONS_TABLE} TO {RETIRED}{MIGRATIONS_TABLE}"));
    }
    renames.extend(
        OUR_TABLES
            .into_iter()
            .chain([MIGRATIONS_TABLE, RECORD])
            .map(|table| format!("{table}{STAGED} TO {table}")),
    );
    writer
        .batch_execute(&format!("RENAME TABLE {};", renames.join(", ")))
        .await?;
    if old_migrations_table {
        drop_tables(&mut writer, [format!("{RETIRED}{MIGRATIONS_TABLE}")]).await?;
    }
    Ok(Applied::Migrated(report))
}

pub(super) async fn rollback(url: &str, progress: &ProgressFn) -> Result<RolledBack, StorageError> {
    let mut writer = connect(url).await?;
    let (leftovers, backup, migrated) = match layout(&mut writer).await? {
        Layout::Ours {
            leftovers,
            backup,
            migrated,
        } => (leftovers, backup, migrated),
        // Rolled back already, or interrupted after its switch with only
        // the drops left (a rerun finishes them, and invalidates the cache).
        Layout::Original { leftovers } => {
            drop_tables(
                &mut writer,
                leftovers.into_iter().filter(|t| t.starts_with(RETIRED)),
            )
            .await?;
            let orders = count(&mut writer, ORIGINAL_ORDERS).await?;
            let items = count(&mut writer, ORIGINAL_ITEMS).await?;
            return Ok(RolledBack { orders, items });
        }
        other => {
            return Err(takeover(format!(
                "nothing to roll back: the database holds {other}"
            )));
        }
    };
    let mut reader = snapshot_reader(url).await?;
    let ours = [
        connection_id(&mut writer).await?,
        connection_id(&mut reader).await?,
    ];
    refuse_other_sessions(&mut writer, &ours).await?;
    drop_tables(&mut writer, leftovers).await?;
    writer
        .batch_execute(&ddl::renamed(ddl::ORIGINAL_MYSQL, ROLLBACK_STAGED))
        .await?;
    writer
        .batch_execute("SET SESSION foreign_key_checks = 0, unique_checks = 0;")
        .await?;

    let total = count(&mut reader, ORIGINAL_ORDERS).await?;
    let mut rolled = RolledBack {
        orders: 0,
        items: 0,
    };
    let mut walk = OurOrders::default();
    let mut batch = walk.next(&mut reader).await?;
    while let Some((orders, items)) = batch {
        let first_item_id = rolled.items as i64 + 1;
        rolled.orders += orders.len() as u64;
        rolled.items += items.len() as u64;
        let write = insert_rollback(&mut writer, &orders, &items, first_item_id);
        let (next, written) = tokio::join!(walk.next(&mut reader), write);
        written?;
        batch = next?;
        progress(Progress {
            stage: Stage::RollingBack,
            done: rolled.orders,
            total,
        });
    }
    reader.batch_execute("COMMIT;").await?;
    let live = (
        count(&mut writer, ORIGINAL_ORDERS).await?,
        count(&mut writer, ORIGINAL_ITEMS).await?,
    );
    let unchanged = refuse_other_sessions(&mut writer, &ours).await;
    if unchanged.is_err() || live != (rolled.orders, rolled.items) {
        drop_tables(
            &mut writer,
            [ORIGINAL_ORDERS, ORIGINAL_ITEMS].map(|table| format!("{table}{ROLLBACK_STAGED}")),
        )
        .await?;
        unchanged?;
        return Err(takeover(
            "orders changed during the rollback: stop every instance of the service and run again; nothing was changed",
        ));
    }

    progress(Progress {
        stage: Stage::Switching,
        done: rolled.orders,
        total,
    });
    // A database last migrated by an earlier release lacks the tables of
    // later migrations (api_keys): RENAME TABLE fails on a missing one.
    let present = table_names(&mut writer).await?;
    let mut retired: Vec<&str> = OUR_TABLES
        .into_iter()
        .chain([MIGRATIONS_TABLE])
        .filter(|table| present.contains(*table))
        .collect();
    if migrated {
        retired.push(RECORD);
    }
    if backup {
        retired.extend([BACKUP_ORDERS, BACKUP_ITEMS]);
    }
    let renames: Vec<String> = retired
        .iter()
        .map(|table| format!("{table} TO {RETIRED}{table}"))
        .chain(
            [ORIGINAL_ORDERS, ORIGINAL_ITEMS]
                .map(|table| format!("{table}{ROLLBACK_STAGED} TO {table}")),
        )
        .collect();
    writer
        .batch_execute(&format!("RENAME TABLE {};", renames.join(", ")))
        .await?;
    drop_tables(
        &mut writer,
        retired.iter().map(|table| format!("{RETIRED}{table}")),
    )
    .await?;
    Ok(rolled)
}

/// Walks our orders in id order with their items in position order.
#[derive(Default)]
struct OurOrders {
    after: Option<String>,
    done: bool,
}

impl OurOrders {
    async fn next(
        &mut self,
        reader: &mut Conn,
    ) -> Result<Option<(Vec<OrderRow>, Vec<ItemRow>)>, StorageError> {
        if self.done {
            return Ok(None);
        }
        let mut query = orders::table
            .select(OrderRow::as_select())
            .order(orders::id)
            .limit(BATCH as i64)
            .into_boxed::<Mysql>();
        if let Some(after) = &self.after {
            query = query.filter(orders::id.gt(after.clone()));
        }
        let batch: Vec<OrderRow> = query.load(reader).await?;
        let upto = (batch.len() == BATCH).then(|| batch[BATCH - 1].id.clone());
        let mut items = order_items::table
            .select(ItemRow::as_select())
            .order((order_items::order_id, order_items::position))
            .into_boxed::<Mysql>();
        if let Some(after) = &self.after {
            items = items.filter(order_items::order_id.gt(after.clone()));
        }
        if let Some(upto) = &upto {
            items = items.filter(order_items::order_id.le(upto.clone()));
        }
        let items: Vec<ItemRow> = items.load(reader).await?;
        match upto {
            Some(upto) => self.after = Some(upto),
            None => self.done = true,
        }
        Ok(Some((batch, items)))
    }
}

async fn insert_rollback(
    writer: &mut Conn,
    orders: &[OrderRow],
    items: &[ItemRow],
    first_item_id: i64,
) -> Result<(), StorageError> {
    let (order_rows, item_rows) = rollback_rows(orders, items, first_item_id);
    for chunk in order_rows.chunks(ORDERS_PER_INSERT) {
        diesel::insert_into(rollback_orders::table)
            .values(chunk)
            .execute(writer)
            .await?;
    }
    for chunk in item_rows.chunks(ITEMS_PER_INSERT) {
        diesel::insert_into(rollback_items::table)
            .values(chunk)
            .execute(writer)
            .await?;
    }
    Ok(())
}

pub(super) async fn drop_backup(url: &str) -> Result<bool, StorageError> {
    let mut conn = connect(url).await?;
    match layout(&mut conn).await? {
        Layout::Ours { backup: true, .. } => {
            drop_tables(&mut conn, [BACKUP_ITEMS, BACKUP_ORDERS].map(str::to_owned)).await?;
            Ok(true)
        }
        Layout::Ours { .. } => Ok(false),
        other => Err(takeover(format!(
            "no backup to drop: the database holds {other}"
        ))),
    }
}
