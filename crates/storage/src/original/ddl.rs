//! The statements that build each side's tables under other names. MySQL
//! commits DDL at once, so a migration builds the new tables beside the
//! old ones and switches with one `RENAME TABLE`; their DDL is our own
//! migrations' with the table names suffixed. The original's tables are
//! written as its SQLAlchemy models create them (ORIGINAL-SCHEMA.md).

use super::layout::{MIGRATIONS_TABLE, OUR_TABLES, RECORD};

/// `migrations/mysql`, in order, as (name, up.sql). A test checks this
/// list against the embedded migrations.
pub(crate) const MYSQL_MIGRATIONS: [(&str, &str); 4] = [
    (
        "2025-11-25-000001_create_orders",
        include_str!("../../../../migrations/mysql/2025-11-25-000001_create_orders/up.sql"),
    ),
    (
        "2026-12-02-000001_order_changes",
        include_str!("../../../../migrations/mysql/2026-12-02-000001_order_changes/up.sql"),
    ),
    (
        "2026-12-03-000001_api_keys",
        include_str!("../../../../migrations/mysql/2026-12-03-000001_api_keys/up.sql"),
    ),
    (
        "2026-12-03-000002_kept_list",
        include_str!("../../../../migrations/mysql/2026-12-03-000002_kept_list/up.sql"),
    ),
];

/// The original's tables as `db.create_all()` creates them on SQLite.
pub(crate) const ORIGINAL_SQLITE: &str = "CREATE TABLE orders (
	id VARCHAR(36) NOT NULL, 
	customer_name VARCHAR(80) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE order_items (
	id INTEGER NOT NULL, 
	item_name VARCHAR(80) NOT NULL, 
	quantity INTEGER NOT NULL, 
	order_id VARCHAR(36) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(order_id) REFERENCES orders (id)
);";

/// The same on MySQL: SQLAlchemy names no engine or character set, so the
/// tables get the database's defaults, as the original's did.
pub(crate) const ORIGINAL_MYSQL: &str = "CREATE TABLE orders (
	id VARCHAR(36) NOT NULL, 
	customer_name VARCHAR(80) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE order_items (
	id INTEGER NOT NULL AUTO_INCREMENT, 
	item_name VARCHAR(80) NOT NULL, 
	quantity INTEGER NOT NULL, 
	order_id VARCHAR(36) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(order_id) REFERENCES orders (id)
);";

/// The migration's record, on both backends.
pub(crate) const RECORD_TABLE: &str = "CREATE TABLE original_migration (
    migrated_at BIGINT NOT NULL,
    order_count BIGINT NOT NULL,
    item_count BIGINT NOT NULL,
    decisions TEXT NOT NULL
);";

/// `sql` with every table name of either service followed by `suffix`.
/// Only whole identifiers are renamed: `orders_status_id` (an index) and
/// `order_items_order_id_fk` (a constraint) are other words.
pub(crate) fn renamed(sql: &str, suffix: &str) -> String {
    let is_table =
        |word: &str| word == MIGRATIONS_TABLE || word == RECORD || OUR_TABLES.contains(&word);
    let mut out = String::with_capacity(sql.len() + 64);
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(word);
        if is_table(word) {
            out.push_str(suffix);
        }
        word.clear();
    };
    for c in sql.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Diesel's own migrations table, under another name.
pub(crate) fn migrations_table(suffix: &str) -> String {
    renamed(diesel::migration::CREATE_MIGRATIONS_TABLE, suffix)
}

#[cfg(test)]
mod tests {
    use diesel::migration::MigrationSource;

    use super::*;

    #[test]
    fn only_table_names_are_renamed() {
        let sql = "CREATE TABLE orders (id CHAR(36));\nCREATE INDEX orders_status_id ON orders (status, id);\n\
                   CONSTRAINT order_items_order_id_fk FOREIGN KEY (order_id) REFERENCES orders (id)";
        assert_eq!(
            renamed(sql, "_migrating"),
            "CREATE TABLE orders_migrating (id CHAR(36));\nCREATE INDEX orders_status_id ON orders_migrating (status, id);\n\
             CONSTRAINT order_items_order_id_fk FOREIGN KEY (order_id) REFERENCES orders_migrating (id)"
        );
        assert!(migrations_table("_x").contains("__diesel_schema_migrations_x ("));
    }

    #[test]
    fn the_staged_schema_is_every_embedded_migration() {
        let embedded =
            MigrationSource::<diesel::mysql::Mysql>::migrations(&crate::pool::MYSQL_MIGRATIONS)
                .unwrap();
        let names: Vec<String> = embedded.iter().map(|m| m.name().to_string()).collect();
        let ours: Vec<String> = MYSQL_MIGRATIONS
            .iter()
            .map(|(name, _)| (*name).to_owned())
            .collect();
        assert_eq!(names, ours);
    }
}
