//! The original's tables as a rollback rebuilds them beside ours (the
//! columns of its models), before the switch gives them their names.

diesel::table! {
    #[sql_name = "orders_rollback"]
    rollback_orders (id) {
        id -> Text,
        customer_name -> Text,
        status -> Text,
    }
}

diesel::table! {
    #[sql_name = "order_items_rollback"]
    rollback_items (id) {
        id -> BigInt,
        item_name -> Text,
        quantity -> Integer,
        order_id -> Text,
    }
}

#[derive(Debug, diesel::Insertable)]
#[diesel(table_name = rollback_orders)]
pub(crate) struct RollbackOrder<'a> {
    pub id: &'a str,
    pub customer_name: &'a str,
    pub status: &'a str,
}

#[derive(Debug, diesel::Insertable)]
#[diesel(table_name = rollback_items)]
pub(crate) struct RollbackItem<'a> {
    pub id: i64,
    pub item_name: &'a str,
    pub quantity: i32,
    pub order_id: &'a str,
}

/// The original's rows for a batch of our orders and their items (in
/// position order), item ids numbered from `first_item_id`.
pub(crate) fn rollback_rows<'a>(
    orders: &'a [crate::models::OrderRow],
    items: &'a [crate::models::ItemRow],
    first_item_id: i64,
) -> (Vec<RollbackOrder<'a>>, Vec<RollbackItem<'a>>) {
    let orders = orders
        .iter()
        .map(|order| RollbackOrder {
            id: &order.id,
            customer_name: &order.customer_name,
            status: &order.status,
        })
        .collect();
    let items = items
        .iter()
        .zip(first_item_id..)
        .map(|(item, id)| RollbackItem {
            id,
            item_name: &item.name,
            quantity: item.quantity,
            order_id: &item.order_id,
        })
        .collect();
    (orders, items)
}
