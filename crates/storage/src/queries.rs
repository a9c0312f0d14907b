//! Every statement storage runs, written once and compiled for each
//! backend's connection type: a query typed for SQLite does not compile for
//! MySQL, so `impl_queries!` expands the same diesel code in one impl per
//! connection. The operations (see `ops`) compose these inside transactions.

use std::future::Future;

use diesel::QueryResult;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::models::{
    IdempotencyInsert, IdempotencyRow, ItemInsert, ItemRow, KeptInsert, KeptRow, OrderInsert,
    OrderRow,
};
use crate::pool::{MysqlConn, SqliteConn};
use crate::schema::{
    change_head, idempotency_keys, list_chunks, order_changes, order_counts, order_items, orders,
};

/// A row of the orders list before rendering: enough to find a cached
/// fragment, or to know which rows still need loading.
pub(crate) type IdVersion = (String, i64);

/// A row of the change log as a full-list build reads it: its seq, the
/// order it touched (`None`: every order) and its kind.
pub(crate) type ChangeRow = (i64, Option<String>, String);

/// Statements, per connection type. Futures are `Send` so operations can be
/// spawned.
pub(crate) trait Queries: Send {
    fn find_idempotency(
        &mut self,
        key: &str,
    ) -> impl Future<Output = QueryResult<Option<IdempotencyRow>>> + Send;
    fn delete_idempotency(&mut self, key: &str) -> impl Future<Output = QueryResult<usize>> + Send;
    fn insert_idempotency(
        &mut self,
        row: &IdempotencyInsert<'_>,
    ) -> impl Future<Output = QueryResult<usize>> + Send;
    /// Deletes keys created before `cutoff` (epoch ms).
    fn purge_idempotency(&mut self, cutoff: i64)
    -> impl Future<Output = QueryResult<usize>> + Send;

    fn insert_orders(
        &mut self,
        rows: &[OrderInsert<'_>],
    ) -> impl Future<Output = QueryResult<usize>> + Send;
    fn insert_items(
        &mut self,
        rows: &[ItemInsert<'_>],
    ) -> impl Future<Output = QueryResult<usize>> + Send;

    /// Reads an order for a change: on MySQL with `FOR UPDATE`, so that the
    /// status and version it returns stay true until the transaction ends.
    /// SQLite write transactions are `IMMEDIATE` and need no row lock.
    fn lock_order(
        &mut self,
        id: &str,
    ) -> impl Future<Output = QueryResult<Option<OrderRow>>> + Send;
    fn set_status(
        &mut self,
        id: &str,
        status: &str,
        updated_at: i64,
        version: i64,
    ) -> impl Future<Output = QueryResult<usize>> + Send;
    fn delete_order(&mut self, id: &str) -> impl Future<Output = QueryResult<usize>> + Send;

    /// One order with its items in a single statement (one consistent read).
    fn order_with_items(
        &mut self,
        id: &str,
    ) -> impl Future<Output = QueryResult<Vec<(OrderRow, Option<ItemRow>)>>> + Send;
    /// Ids and versions, newest first, optionally filtered by status,
    /// strictly older than `before`, and at most `limit` rows.
    fn order_versions(
        &mut self,
        status: Option<&str>,
        before: Option<&str>,
        limit: Option<i64>,
    ) -> impl Future<Output = QueryResult<Vec<IdVersion>>> + Send;
    fn orders_by_ids(
        &mut self,
        ids: &[&str],
    ) -> impl Future<Output = QueryResult<Vec<OrderRow>>> + Send;
    /// The items of these orders, grouped by order and in position order.
    fn items_by_order_ids(
        &mut self,
        ids: &[&str],
    ) -> impl Future<Output = QueryResult<Vec<ItemRow>>> + Send;
    /// Every order (of one status), newest first.
    fn all_orders(
        &mut self,
        status: Option<&str>,
    ) -> impl Future<Output = QueryResult<Vec<OrderRow>>> + Send;
    /// The items of every order (of one status), grouped by order and in
    /// position order.
    fn all_items(
        &mut self,
        status: Option<&str>,
    ) -> impl Future<Output = QueryResult<Vec<ItemRow>>> + Send;

    /// Appends one change to the log under the next seq (see the
    /// migration `order_changes`): the last statements of a write.
    fn log_change(
        &mut self,
        order_id: Option<&str>,
        kind: &'static str,
        version: Option<i64>,
        changed_at: i64,
    ) -> impl Future<Output = QueryResult<usize>> + Send;
    /// (epoch, seq) of the change log's head.
    fn change_head(&mut self) -> impl Future<Output = QueryResult<(i64, i64)>> + Send;
    /// Changes with a seq above `after`, in seq order, at most `limit`.
    fn changes_since(
        &mut self,
        after: i64,
        limit: i64,
    ) -> impl Future<Output = QueryResult<Vec<ChangeRow>>> + Send;
    /// Deletes changes made before `cutoff` (epoch ms).
    fn prune_changes(&mut self, cutoff: i64) -> impl Future<Output = QueryResult<usize>> + Send;
    /// Orders with `floor <= id < ceiling` (open ends for `None`), newest
    /// first, at most `limit`.
    fn orders_in_range(
        &mut self,
        floor: Option<&str>,
        ceiling: Option<&str>,
        limit: Option<i64>,
    ) -> impl Future<Output = QueryResult<Vec<OrderRow>>> + Send;
    /// The items of the orders with `floor <= order_id < ceiling`, newest
    /// order first and each order's items last position first: one
    /// backward walk of the items' primary key.
    fn items_in_range(
        &mut self,
        floor: Option<&str>,
        ceiling: Option<&str>,
    ) -> impl Future<Output = QueryResult<Vec<ItemRow>>> + Send;

    /// Every kept chunk of the full list, without bodies.
    fn kept_index(&mut self) -> impl Future<Output = QueryResult<Vec<KeptRow>>> + Send;
    /// (from_id, body) of the kept chunks with `lowest <= from_id <=
    /// highest`, newest first.
    fn kept_bodies(
        &mut self,
        lowest: &str,
        highest: &str,
    ) -> impl Future<Output = QueryResult<Vec<(String, Vec<u8>)>>> + Send;
    /// Deletes the kept chunk at `from_id` unless it is as of a seq after
    /// `seq` in `epoch`.
    fn drop_kept(
        &mut self,
        from_id: &str,
        epoch: i64,
        seq: i64,
    ) -> impl Future<Output = QueryResult<usize>> + Send;
    /// Inserts a kept chunk unless one is at its `from_id`.
    fn keep_chunk(
        &mut self,
        row: &KeptInsert<'_>,
    ) -> impl Future<Output = QueryResult<usize>> + Send;
    /// Moves the kept chunk at `from_id` to `seq`, if it still holds
    /// `digest` as of `old_seq`.
    fn bump_kept(
        &mut self,
        from_id: &str,
        digest: i64,
        old_seq: i64,
        seq: i64,
        kept_at: i64,
    ) -> impl Future<Output = QueryResult<usize>> + Send;
    fn delete_all_kept(&mut self) -> impl Future<Output = QueryResult<usize>> + Send;

    fn add_to_count(
        &mut self,
        status: &str,
        shard: i16,
        delta: i64,
    ) -> impl Future<Output = QueryResult<usize>> + Send;
    /// Moves one order from `from`'s count to `to`'s (two statuses) in one
    /// statement: a status change holds its row locks one round trip less.
    fn move_count(
        &mut self,
        from: &str,
        to: &str,
        shard: i16,
    ) -> impl Future<Output = QueryResult<usize>> + Send;
    /// The shards of the counts (of one status).
    fn count_shards(
        &mut self,
        status: Option<&str>,
    ) -> impl Future<Output = QueryResult<Vec<i64>>> + Send;
    fn clear_counts(&mut self) -> impl Future<Output = QueryResult<usize>> + Send;

    fn delete_all_items(&mut self) -> impl Future<Output = QueryResult<usize>> + Send;
    fn delete_all_orders(&mut self) -> impl Future<Output = QueryResult<usize>> + Send;
    fn delete_all_idempotency(&mut self) -> impl Future<Output = QueryResult<usize>> + Send;
    /// Real row counts of orders and items (a scan; for tools and tests).
    fn count_rows(&mut self) -> impl Future<Output = QueryResult<(i64, i64)>> + Send;
    fn ping(&mut self) -> impl Future<Output = QueryResult<i32>> + Send;
}

macro_rules! impl_queries {
    ($conn:ty, lock_suffix = [$($lock:tt)*], $($specific:item)*) => {
        impl Queries for $conn {
            $($specific)*

            async fn find_idempotency(&mut self, key: &str) -> QueryResult<Option<IdempotencyRow>> {
                idempotency_keys::table
                    .filter(idempotency_keys::idem_key.eq(key))
                    .select(IdempotencyRow::as_select())
                    .first(self)
                    .await
                    .optional()
            }

            async fn delete_idempotency(&mut self, key: &str) -> QueryResult<usize> {
                diesel::delete(idempotency_keys::table.filter(idempotency_keys::idem_key.eq(key)))
                    .execute(self)
                    .await
            }

            async fn insert_idempotency(&mut self, row: &IdempotencyInsert<'_>) -> QueryResult<usize> {
                diesel::insert_into(idempotency_keys::table).values(row).execute(self).await
            }

            async fn purge_idempotency(&mut self, cutoff: i64) -> QueryResult<usize> {
                diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(cutoff)))
                    .execute(self)
                    .await
            }

            async fn lock_order(&mut self, id: &str) -> QueryResult<Option<OrderRow>> {
                orders::table
                    .filter(orders::id.eq(id))
                    .select(OrderRow::as_select())
                    $($lock)*
                    .first(self)
                    .await
                    .optional()
            }

            async fn set_status(
                &mut self,
                id: &str,
                status: &str,
                updated_at: i64,
                version: i64,
            ) -> QueryResult<usize> {
                diesel::update(orders::table.filter(orders::id.eq(id)))
                    .set((
                        orders::status.eq(status),
                        orders::updated_at.eq(updated_at),
                        orders::version.eq(version),
                    ))
                    .execute(self)
                    .await
            }

            async fn delete_order(&mut self, id: &str) -> QueryResult<usize> {
                diesel::delete(orders::table.filter(orders::id.eq(id))).execute(self).await
            }

            async fn order_with_items(
                &mut self,
                id: &str,
            ) -> QueryResult<Vec<(OrderRow, Option<ItemRow>)>> {
                orders::table
                    .left_join(order_items::table)
                    .filter(orders::id.eq(id))
                    .order(order_items::position.asc())
                    .select((OrderRow::as_select(), Option::<ItemRow>::as_select()))
                    .load(self)
                    .await
            }

            async fn order_versions(
                &mut self,
                status: Option<&str>,
                before: Option<&str>,
                limit: Option<i64>,
            ) -> QueryResult<Vec<IdVersion>> {
                let mut query = orders::table
                    .select((orders::id, orders::version))
                    .order(orders::id.desc())
                    .into_boxed();
                if let Some(status) = status {
                    query = query.filter(orders::status.eq(status));
                }
                if let Some(before) = before {
                    query = query.filter(orders::id.lt(before));
                }
                if let Some(limit) = limit {
                    query = query.limit(limit);
                }
                query.load(self).await
            }

            async fn orders_by_ids(&mut self, ids: &[&str]) -> QueryResult<Vec<OrderRow>> {
                orders::table
                    .filter(orders::id.eq_any(ids))
                    .select(OrderRow::as_select())
                    .load(self)
                    .await
            }

            async fn items_by_order_ids(&mut self, ids: &[&str]) -> QueryResult<Vec<ItemRow>> {
                order_items::table
                    .filter(order_items::order_id.eq_any(ids))
                    .order((order_items::order_id, order_items::position))
                    .select(ItemRow::as_select())
                    .load(self)
                    .await
            }

            async fn all_orders(&mut self, status: Option<&str>) -> QueryResult<Vec<OrderRow>> {
                let mut query = orders::table
                    .select(OrderRow::as_select())
                    .order(orders::id.desc())
                    .into_boxed();
                if let Some(status) = status {
                    query = query.filter(orders::status.eq(status));
                }
                query.load(self).await
            }

            async fn all_items(&mut self, status: Option<&str>) -> QueryResult<Vec<ItemRow>> {
                match status {
                    None => {
                        order_items::table
                            .order((order_items::order_id, order_items::position))
                            .select(ItemRow::as_select())
                            .load(self)
                            .await
                    }
                    Some(status) => {
                        order_items::table
                            .inner_join(orders::table)
                            .filter(orders::status.eq(status))
                            .order((order_items::order_id, order_items::position))
                            .select(ItemRow::as_select())
                            .load(self)
                            .await
                    }
                }
            }

            async fn log_change(
                &mut self,
                order_id: Option<&str>,
                kind: &'static str,
                version: Option<i64>,
                changed_at: i64,
            ) -> QueryResult<usize> {
                use diesel::sql_types::{BigInt, Nullable, Text};
                diesel::update(change_head::table)
                    .set(change_head::seq.eq(change_head::seq + 1))
                    .execute(self)
                    .await?;
                diesel::insert_into(order_changes::table)
                    .values(change_head::table.select((
                        change_head::seq,
                        order_id.into_sql::<Nullable<Text>>(),
                        kind.into_sql::<Text>(),
                        version.into_sql::<Nullable<BigInt>>(),
                        changed_at.into_sql::<BigInt>(),
                    )))
                    .into_columns((
                        order_changes::seq,
                        order_changes::order_id,
                        order_changes::kind,
                        order_changes::version,
                        order_changes::changed_at,
                    ))
                    .execute(self)
                    .await
            }

            async fn change_head(&mut self) -> QueryResult<(i64, i64)> {
                change_head::table
                    .select((change_head::epoch, change_head::seq))
                    .first(self)
                    .await
            }

            async fn changes_since(&mut self, after: i64, limit: i64) -> QueryResult<Vec<ChangeRow>> {
                order_changes::table
                    .filter(order_changes::seq.gt(after))
                    .order(order_changes::seq.asc())
                    .limit(limit)
                    .select((order_changes::seq, order_changes::order_id, order_changes::kind))
                    .load(self)
                    .await
            }

            async fn prune_changes(&mut self, cutoff: i64) -> QueryResult<usize> {
                diesel::delete(order_changes::table.filter(order_changes::changed_at.lt(cutoff)))
                    .execute(self)
                    .await
            }

            async fn orders_in_range(
                &mut self,
                floor: Option<&str>,
                ceiling: Option<&str>,
                limit: Option<i64>,
            ) -> QueryResult<Vec<OrderRow>> {
                let mut query = orders::table
                    .select(OrderRow::as_select())
                    .order(orders::id.desc())
                    .into_boxed();
                if let Some(floor) = floor {
                    query = query.filter(orders::id.ge(floor));
                }
                if let Some(ceiling) = ceiling {
                    query = query.filter(orders::id.lt(ceiling));
                }
                if let Some(limit) = limit {
                    query = query.limit(limit);
                }
                query.load(self).await
            }

            async fn items_in_range(
                &mut self,
                floor: Option<&str>,
                ceiling: Option<&str>,
            ) -> QueryResult<Vec<ItemRow>> {
                let mut query = order_items::table
                    .select(ItemRow::as_select())
                    .order((order_items::order_id.desc(), order_items::position.desc()))
                    .into_boxed();
                if let Some(floor) = floor {
                    query = query.filter(order_items::order_id.ge(floor));
                }
                if let Some(ceiling) = ceiling {
                    query = query.filter(order_items::order_id.lt(ceiling));
                }
                query.load(self).await
            }

            async fn kept_index(&mut self) -> QueryResult<Vec<KeptRow>> {
                list_chunks::table
                    .select(KeptRow::as_select())
                    .order(list_chunks::from_id.desc())
                    .load(self)
                    .await
            }

            async fn kept_bodies(
                &mut self,
                lowest: &str,
                highest: &str,
            ) -> QueryResult<Vec<(String, Vec<u8>)>> {
                list_chunks::table
                    .filter(list_chunks::from_id.ge(lowest))
                    .filter(list_chunks::from_id.le(highest))
                    .order(list_chunks::from_id.desc())
                    .select((list_chunks::from_id, list_chunks::body))
                    .load(self)
                    .await
            }

            async fn drop_kept(&mut self, from_id: &str, epoch: i64, seq: i64) -> QueryResult<usize> {
                diesel::delete(
                    list_chunks::table
                        .filter(list_chunks::from_id.eq(from_id))
                        .filter(list_chunks::epoch.ne(epoch).or(list_chunks::seq.le(seq))),
                )
                .execute(self)
                .await
            }

            async fn keep_chunk(&mut self, row: &KeptInsert<'_>) -> QueryResult<usize> {
                diesel::insert_or_ignore_into(list_chunks::table)
                    .values(row)
                    .execute(self)
                    .await
            }

            async fn bump_kept(
                &mut self,
                from_id: &str,
                digest: i64,
                old_seq: i64,
                seq: i64,
                kept_at: i64,
            ) -> QueryResult<usize> {
                diesel::update(
                    list_chunks::table
                        .filter(list_chunks::from_id.eq(from_id))
                        .filter(list_chunks::digest.eq(digest))
                        .filter(list_chunks::seq.eq(old_seq)),
                )
                .set((list_chunks::seq.eq(seq), list_chunks::kept_at.eq(kept_at)))
                .execute(self)
                .await
            }

            async fn delete_all_kept(&mut self) -> QueryResult<usize> {
                diesel::delete(list_chunks::table).execute(self).await
            }

            async fn add_to_count(&mut self, status: &str, shard: i16, delta: i64) -> QueryResult<usize> {
                diesel::update(
                    order_counts::table
                        .filter(order_counts::status.eq(status))
                        .filter(order_counts::shard.eq(shard)),
                )
                .set(order_counts::n.eq(order_counts::n + delta))
                .execute(self)
                .await
            }

            async fn move_count(&mut self, from: &str, to: &str, shard: i16) -> QueryResult<usize> {
                let delta = diesel::dsl::case_when::<_, _, diesel::sql_types::BigInt>(
                    order_counts::status.eq(from),
                    -1_i64,
                )
                .otherwise(1_i64);
                diesel::update(
                    order_counts::table
                        .filter(order_counts::status.eq_any([from, to]))
                        .filter(order_counts::shard.eq(shard)),
                )
                .set(order_counts::n.eq(order_counts::n + delta))
                .execute(self)
                .await
            }

            async fn count_shards(&mut self, status: Option<&str>) -> QueryResult<Vec<i64>> {
                let mut query = order_counts::table.select(order_counts::n).into_boxed();
                if let Some(status) = status {
                    query = query.filter(order_counts::status.eq(status));
                }
                query.load(self).await
            }

            async fn clear_counts(&mut self) -> QueryResult<usize> {
                diesel::update(order_counts::table)
                    .set(order_counts::n.eq(0))
                    .execute(self)
                    .await
            }

            async fn delete_all_items(&mut self) -> QueryResult<usize> {
                diesel::delete(order_items::table).execute(self).await
            }

            async fn delete_all_orders(&mut self) -> QueryResult<usize> {
                diesel::delete(orders::table).execute(self).await
            }

            async fn delete_all_idempotency(&mut self) -> QueryResult<usize> {
                diesel::delete(idempotency_keys::table).execute(self).await
            }

            async fn count_rows(&mut self) -> QueryResult<(i64, i64)> {
                let orders = orders::table.count().get_result(self).await?;
                let items = order_items::table.count().get_result(self).await?;
                Ok((orders, items))
            }

            async fn ping(&mut self) -> QueryResult<i32> {
                diesel::select(1_i32.into_sql::<diesel::sql_types::Integer>())
                    .get_result(self)
                    .await
            }
        }
    };
}

impl_queries! {
    SqliteConn,
    lock_suffix = [],
    // diesel turns a multi-row insert into one statement on SQLite only
    // through its synchronous connection, so these run on it directly, with
    // rows owned by the blocking task.
    async fn insert_orders(&mut self, rows: &[OrderInsert<'_>]) -> QueryResult<usize> {
        let rows: Vec<_> = rows
            .iter()
            .map(|row| {
                (
                    orders::id.eq(row.id.clone()),
                    orders::customer_name.eq(row.customer_name.to_owned()),
                    orders::status.eq(row.status),
                    orders::created_at.eq(row.created_at),
                    orders::updated_at.eq(row.updated_at),
                    orders::version.eq(row.version),
                )
            })
            .collect();
        self.spawn_blocking(move |conn| {
            diesel::RunQueryDsl::execute(diesel::insert_into(orders::table).values(rows), conn)
        })
        .await
    }
    async fn insert_items(&mut self, rows: &[ItemInsert<'_>]) -> QueryResult<usize> {
        let rows: Vec<_> = rows
            .iter()
            .map(|row| {
                (
                    order_items::order_id.eq(row.order_id.to_owned()),
                    order_items::position.eq(row.position),
                    order_items::name.eq(row.name.to_owned()),
                    order_items::quantity.eq(row.quantity),
                )
            })
            .collect();
        self.spawn_blocking(move |conn| {
            diesel::RunQueryDsl::execute(diesel::insert_into(order_items::table).values(rows), conn)
        })
        .await
    }
}

impl_queries! {
    MysqlConn,
    lock_suffix = [.for_update()],
    async fn insert_orders(&mut self, rows: &[OrderInsert<'_>]) -> QueryResult<usize> {
        diesel::insert_into(orders::table).values(rows).execute(self).await
    }
    async fn insert_items(&mut self, rows: &[ItemInsert<'_>]) -> QueryResult<usize> {
        diesel::insert_into(order_items::table).values(rows).execute(self).await
    }
}
