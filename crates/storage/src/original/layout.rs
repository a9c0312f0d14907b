//! What a database holds, told from its table names and the columns of
//! `orders` alone: nothing is written to find out.

use std::collections::BTreeSet;
use std::fmt;

/// Diesel's record of the migrations run; its presence makes a database ours.
pub(crate) const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";
/// Our tables, as `migrations/*` create them.
pub(crate) const OUR_TABLES: [&str; 8] = [
    "orders",
    "order_items",
    "order_counts",
    "idempotency_keys",
    "order_changes",
    "change_head",
    "api_keys",
    "list_chunks",
];
/// The original's two tables.
pub(crate) const ORIGINAL_ORDERS: &str = "orders";
pub(crate) const ORIGINAL_ITEMS: &str = "order_items";
/// Where the original's rows are kept after the migration, until dropped.
pub(crate) const BACKUP_ORDERS: &str = "original_orders";
pub(crate) const BACKUP_ITEMS: &str = "original_order_items";
/// One row: when the migration ran, what it moved and under which decisions.
pub(crate) const RECORD: &str = "original_migration";
/// MySQL builds the new tables under these suffixes beside the old ones.
pub(crate) const STAGED: &str = "_migrating";
/// MySQL builds the original's tables again under this suffix to roll back.
pub(crate) const ROLLBACK_STAGED: &str = "_rollback";
/// MySQL moves replaced tables to this prefix before dropping them.
pub(crate) const RETIRED: &str = "retired_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// No tables: the service creates its own.
    Empty,
    /// The service's own tables (and maybe the original's rows kept beside
    /// them, and tables of an interrupted rollback).
    Ours {
        backup: bool,
        migrated: bool,
        leftovers: Vec<String>,
    },
    /// The original service's tables and none of ours, maybe with tables
    /// an interrupted migration or rollback left (dropped by the next run).
    Original { leftovers: Vec<String> },
    /// Tables neither service made.
    Unknown { tables: Vec<String> },
}

impl Layout {
    /// `orders_columns` are the columns of a table named `orders`, if any.
    pub(crate) fn classify(tables: &BTreeSet<String>, orders_columns: &BTreeSet<String>) -> Layout {
        let has = |name: &str| tables.contains(name);
        let ours_orders = orders_columns.contains("version");
        // Diesel's table alone is a start of ours that stopped before its
        // first migration; beside tables of another shape it is another
        // diesel application's.
        let only_migrations = tables.iter().all(|name| name == MIGRATIONS_TABLE);
        if has(MIGRATIONS_TABLE) && (ours_orders || only_migrations) {
            let leftovers = tables
                .iter()
                .filter(|name| {
                    name.strip_suffix(ROLLBACK_STAGED)
                        .is_some_and(|stem| stem == ORIGINAL_ORDERS || stem == ORIGINAL_ITEMS)
                        || name.starts_with(RETIRED)
                })
                .cloned()
                .collect();
            return Layout::Ours {
                backup: has(BACKUP_ORDERS),
                migrated: has(RECORD),
                leftovers,
            };
        }
        let original_orders = ["id", "customer_name", "status"]
            .iter()
            .all(|column| orders_columns.contains(*column));
        if has(ORIGINAL_ORDERS) && original_orders && !ours_orders {
            let leftovers = tables
                .iter()
                .filter(|name| is_leftover_beside_original(name))
                .cloned()
                .collect();
            return Layout::Original { leftovers };
        }
        let unexpected: Vec<String> = tables
            .iter()
            .filter(|name| name.as_str() != MIGRATIONS_TABLE)
            .cloned()
            .collect();
        if unexpected.is_empty() {
            Layout::Empty
        } else {
            Layout::Unknown { tables: unexpected }
        }
    }
}

/// Tables of ours that may sit beside the original's: an interrupted
/// migration's staging tables, a rollback's retired ones, and the empty
/// migrations table an earlier release created before failing.
fn is_leftover_beside_original(name: &str) -> bool {
    let ours =
        |stem: &str| stem == MIGRATIONS_TABLE || stem == RECORD || OUR_TABLES.contains(&stem);
    name == MIGRATIONS_TABLE
        || name.strip_suffix(STAGED).is_some_and(ours)
        || name.strip_suffix(ROLLBACK_STAGED).is_some_and(ours)
        || name
            .strip_prefix(RETIRED)
            .is_some_and(|stem| ours(stem) || stem == BACKUP_ORDERS || stem == BACKUP_ITEMS)
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layout::Empty => f.write_str("an empty database"),
            Layout::Ours { backup, .. } => {
                f.write_str("this service's tables")?;
                if *backup {
                    f.write_str(", with the original's rows kept in original_orders and original_order_items")?;
                }
                Ok(())
            }
            Layout::Original { .. } => f.write_str(
                "the original service's tables (orders, order_items) and none of this service's",
            ),
            Layout::Unknown { tables } => {
                write!(f, "tables neither service made: {}", tables.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    const ORIGINAL_COLUMNS: &[&str] = &["id", "customer_name", "status"];
    const OUR_COLUMNS: &[&str] = &[
        "id",
        "customer_name",
        "status",
        "created_at",
        "updated_at",
        "version",
    ];

    #[test]
    fn tells_the_four_kinds_apart() {
        assert_eq!(Layout::classify(&set(&[]), &set(&[])), Layout::Empty);
        assert_eq!(
            Layout::classify(&set(&["orders", "order_items"]), &set(ORIGINAL_COLUMNS)),
            Layout::Original { leftovers: vec![] }
        );
        let ours = set(&[
            MIGRATIONS_TABLE,
            "orders",
            "order_items",
            "order_counts",
            "idempotency_keys",
        ]);
        assert!(matches!(
            Layout::classify(&ours, &set(OUR_COLUMNS)),
            Layout::Ours {
                backup: false,
                migrated: false,
                ..
            }
        ));
        assert_eq!(
            Layout::classify(&set(&["customers", "invoices"]), &set(&[])),
            Layout::Unknown {
                tables: vec!["customers".to_owned(), "invoices".to_owned()]
            }
        );
        // Another diesel application's database is not ours.
        assert!(matches!(
            Layout::classify(&set(&[MIGRATIONS_TABLE, "users", "posts"]), &set(&[])),
            Layout::Unknown { .. }
        ));
        assert!(matches!(
            Layout::classify(&set(&[MIGRATIONS_TABLE]), &set(&[])),
            Layout::Ours { .. }
        ));
        // An `orders` table of someone else's shape is not the original's.
        assert!(matches!(
            Layout::classify(&set(&["orders"]), &set(&["order_no", "total"])),
            Layout::Unknown { .. }
        ));
    }

    #[test]
    fn leftovers_of_earlier_runs_are_named() {
        // What an earlier release left before failing, and an interrupted
        // MySQL migration's staging tables.
        let tables = set(&[
            "orders",
            "order_items",
            MIGRATIONS_TABLE,
            "orders_migrating",
            "retired_order_counts",
            "sessions",
        ]);
        assert_eq!(
            Layout::classify(&tables, &set(ORIGINAL_COLUMNS)),
            Layout::Original {
                leftovers: vec![
                    MIGRATIONS_TABLE.to_owned(),
                    "orders_migrating".to_owned(),
                    "retired_order_counts".to_owned()
                ]
            }
        );
        let migrated = set(&[
            MIGRATIONS_TABLE,
            "orders",
            "order_items",
            "order_counts",
            "idempotency_keys",
            BACKUP_ORDERS,
            BACKUP_ITEMS,
            RECORD,
            "orders_rollback",
        ]);
        assert_eq!(
            Layout::classify(&migrated, &set(OUR_COLUMNS)),
            Layout::Ours {
                backup: true,
                migrated: true,
                leftovers: vec!["orders_rollback".to_owned()]
            }
        );
    }
}
