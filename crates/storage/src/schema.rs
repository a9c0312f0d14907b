//! The tables of `migrations/sqlite` and `migrations/mysql`, one description
//! for both backends (their column types differ only in width and charset).

diesel::table! {
    orders (id) {
        id -> Text,
        customer_name -> Text,
        status -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        version -> BigInt,
    }
}

diesel::table! {
    order_items (order_id, position) {
        order_id -> Text,
        position -> Integer,
        name -> Text,
        quantity -> Integer,
    }
}

diesel::table! {
    order_counts (status, shard) {
        status -> Text,
        shard -> SmallInt,
        n -> BigInt,
    }
}

diesel::table! {
    idempotency_keys (idem_key) {
        idem_key -> Text,
        fingerprint -> BigInt,
        order_id -> Text,
        response -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    order_changes (seq) {
        seq -> BigInt,
        order_id -> Nullable<Text>,
        kind -> Text,
        version -> Nullable<BigInt>,
        changed_at -> BigInt,
    }
}

diesel::table! {
    change_head (id) {
        id -> Integer,
        epoch -> BigInt,
        seq -> BigInt,
    }
}

diesel::table! {
    api_keys (prefix) {
        prefix -> Text,
        hash -> Binary,
        scopes -> Text,
        name -> Nullable<Text>,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    list_chunks (from_id) {
        from_id -> Text,
        below_id -> Nullable<Text>,
        epoch -> BigInt,
        seq -> BigInt,
        order_count -> BigInt,
        digest -> BigInt,
        kept_at -> BigInt,
        body -> Binary,
    }
}

diesel::joinable!(order_items -> orders (order_id));

diesel::allow_tables_to_appear_in_same_query!(
    orders,
    order_items,
    order_counts,
    idempotency_keys,
    order_changes,
    change_head,
    api_keys,
    list_chunks
);
