//! The tables a migration writes under names of their own: MySQL's staged
//! copies of ours, and the original's tables rebuilt for a rollback. Same columns as `crate::schema` and the original's models.

diesel::table! {
    #[sql_name = "orders_migrating"]
    staged_orders (id) {
        id -> Text,
        customer_name -> Text,
        status -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        version -> BigInt,
    }
}

diesel::table! {
    #[sql_name = "order_items_migrating"]
    staged_items (order_id, position) {
        order_id -> Text,
        position -> Integer,
        name -> Text,
        quantity -> Integer,
    }
}

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
#[diesel(table_name = staged_orders)]
pub(crate) struct StagedOrder<'a> {
    pub id: &'a str,
    pub customer_name: &'a str,
    pub status: &'static str,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

#[derive(Debug, diesel::Insertable)]
#[diesel(table_name = staged_items)]
pub(crate) struct StagedItem<'a> {
    pub order_id: &'a str,
    pub position: i32,
    pub name: &'a str,
    pub quantity: i32,
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
