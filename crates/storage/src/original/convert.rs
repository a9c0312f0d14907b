//! One batch of the original's rows turned into ours under the user's
//! decisions, with every problem met recorded in the report. The backends
//! read a batch of orders (by id) and every item of the same id range, so
//! each item is seen once and an item whose order is not in the batch has
//! no order at all.

use std::collections::HashMap;

use domain::OrderStatus;

use super::problems::{self, Decisions, NameOf, Outcome};
use super::report::Report;

/// A row of the original's `orders`, as stored.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub(crate) struct RawOrder {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub customer_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
}

/// A row of the original's `order_items`, as stored (the quantity widened
/// by the query, since SQLite may hold any integer there).
#[derive(Debug, Clone, diesel::QueryableByName)]
pub(crate) struct RawItem {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub order_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub item_name: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MigratedOrder {
    pub id: String,
    pub customer_name: String,
    pub status: OrderStatus,
    /// In the original's order (`order_items.id`).
    pub items: Vec<MigratedItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MigratedItem {
    pub name: String,
    pub quantity: i32,
}

/// Converts one batch. Orders and items with an undecided problem are left
/// out of the result and counted in the report, which then refuses the
/// apply; the scan goes on so the report lists every problem.
pub(crate) fn batch(
    orders: Vec<RawOrder>,
    items: Vec<RawItem>,
    decisions: &Decisions,
    report: &mut Report,
) -> Vec<MigratedOrder> {
    report.items_read += items.len() as u64;
    let mut by_order: HashMap<String, Vec<RawItem>> = HashMap::new();
    for item in items {
        by_order
            .entry(item.order_id.clone())
            .or_default()
            .push(item);
    }
    let mut migrated = Vec::with_capacity(orders.len());
    for order in orders {
        report.orders_read += 1;
        let mut items = by_order.remove(&order.id).unwrap_or_default();
        items.sort_by_key(|item| item.id);
        if let Some(order) = one_order(order, items, decisions, report) {
            migrated.push(order);
        }
    }
    let mut orphans: Vec<RawItem> = by_order.into_values().flatten().collect();
    orphans.sort_by_key(|item| item.id);
    for item in orphans {
        let outcome = problems::orphan_item(decisions);
        report.record(
            &item.order_id,
            Some(item.id),
            &format!("order_id {:?}", item.order_id),
            &outcome,
        );
        report.items_dropped += 1;
    }
    migrated
}

fn one_order(
    order: RawOrder,
    raw_items: Vec<RawItem>,
    decisions: &Decisions,
    report: &mut Report,
) -> Option<MigratedOrder> {
    let raw_id = order.id;
    let id = problems::order_id(&raw_id, decisions);
    report.record(&raw_id, None, &format!("{raw_id:?}"), &id);
    let customer_name = problems::name(&order.customer_name, NameOf::Customer, decisions);
    report.record(
        &raw_id,
        None,
        &format!("{:?}", order.customer_name),
        &customer_name,
    );
    let status = problems::status(&order.status, decisions);
    report.record(&raw_id, None, &format!("{:?}", order.status), &status);

    let mut items = Vec::with_capacity(raw_items.len());
    let mut items_ok = true;
    let item_count = raw_items.len() as u64;
    for item in raw_items {
        let name = problems::name(&item.item_name, NameOf::Item, decisions);
        report.record(
            &raw_id,
            Some(item.id),
            &format!("{:?}", item.item_name),
            &name,
        );
        let quantity = problems::quantity(item.quantity, decisions);
        report.record(
            &raw_id,
            Some(item.id),
            &item.quantity.to_string(),
            &quantity,
        );
        match (name.value(), quantity.value()) {
            (Some(name), Some(quantity)) => items.push(MigratedItem { name, quantity }),
            _ => items_ok = false,
        }
    }
    if item_count == 0 {
        let outcome = problems::empty_order(decisions);
        report.record(&raw_id, None, "no items", &outcome);
        if !matches!(outcome, Outcome::Changed { .. }) {
            report.orders_dropped += 1;
            return None;
        }
    }
    let dropped = |report: &mut Report| {
        report.orders_dropped += 1;
        report.items_dropped += item_count;
        None
    };
    let (Some(id), Some(customer_name), Some(status)) =
        (id.value(), customer_name.value(), status.value())
    else {
        return dropped(report);
    };
    if !items_ok {
        return dropped(report);
    }
    report.orders_written += 1;
    report.items_written += item_count;
    *report.per_status.entry(status).or_default() += 1;
    Some(MigratedOrder {
        id,
        customer_name,
        status,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::original::problems::{BadIds, EmptyOrders, Problem};

    const A: &str = "0b7c7a0e-3c7b-4f7e-9a39-2f1d6d1f8e11";
    const B: &str = "1b7c7a0e-3c7b-4f7e-9a39-2f1d6d1f8e11";

    fn order(id: &str, name: &str, status: &str) -> RawOrder {
        RawOrder {
            id: id.to_owned(),
            customer_name: name.to_owned(),
            status: status.to_owned(),
        }
    }

    fn item(id: i64, order_id: &str, name: &str, quantity: i64) -> RawItem {
        RawItem {
            id,
            order_id: order_id.to_owned(),
            item_name: name.to_owned(),
            quantity,
        }
    }

    #[test]
    fn items_follow_their_order_in_id_order_and_orphans_are_found() {
        let mut report = Report::new(10);
        let decisions = Decisions {
            drop_orphan_items: true,
            ..Decisions::default()
        };
        let migrated = batch(
            vec![order(A, "Alice", "received"), order(B, "Ben", "shipped")],
            vec![
                item(7, A, "Second", 2),
                item(3, A, "First", 1),
                item(5, "gone", "Lost", 1),
                item(4, B, "Only", 9),
            ],
            &decisions,
            &mut report,
        );
        assert_eq!(migrated.len(), 2);
        let names: Vec<&str> = migrated[0].items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["First", "Second"]);
        assert_eq!(report.count(Problem::OrphanItem), 1);
        assert_eq!((report.orders_written, report.items_written), (2, 3));
        assert_eq!(report.items_dropped, 1);
        assert_eq!(report.undecided_total(), 0);
        assert_eq!(report.per_status[&OrderStatus::Shipped], 1);
    }

    #[test]
    fn undecided_rows_are_reported_and_not_written() {
        let mut report = Report::new(10);
        let migrated = batch(
            vec![order(A, "  ", "SHIPPED"), order(B, "Ben", "received")],
            vec![item(1, A, "Pen", 0)],
            &Decisions::default(),
            &mut report,
        );
        assert_eq!(migrated.len(), 0);
        for problem in [
            Problem::CustomerNameBlank,
            Problem::StatusVariant,
            Problem::QuantityOutOfRange,
            Problem::OrderWithoutItems,
        ] {
            assert_eq!(report.undecided(problem), 1, "{problem:?}");
        }
    }

    #[test]
    fn dropped_orders_take_their_items_along() {
        let mut report = Report::new(10);
        let decisions = Decisions {
            bad_ids: Some(BadIds::Drop),
            empty_orders: Some(EmptyOrders::Keep),
            ..Decisions::default()
        };
        let migrated = batch(
            vec![order("order-1", "Al", "received"), order(B, "Ben", "ready")],
            vec![item(1, "order-1", "Pen", 1), item(2, "order-1", "Ink", 1)],
            &decisions,
            &mut report,
        );
        assert_eq!(migrated.len(), 1);
        assert!(migrated[0].items.is_empty());
        assert_eq!((report.orders_dropped, report.items_dropped), (1, 2));
        assert_eq!(report.count(Problem::OrphanItem), 0);
        assert_eq!(report.count(Problem::OrderWithoutItems), 1);
    }
}
