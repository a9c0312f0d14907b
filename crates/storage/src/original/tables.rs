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
