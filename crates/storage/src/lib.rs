//! The orders repository on a database: SQLite (through diesel-async's
//! `SyncConnectionWrapper`) or MySQL/MariaDB (diesel-async's native
//! connection), picked from the URL at start. [`Storage`] implements
//! [`domain::OrderRepository`].
//!
//! Layout: `url` parses the configuration's URL, `pool` builds the pools and
//! runs the embedded migrations, `schema` and `models` describe the tables
//! and their rows, `queries` holds every statement (compiled once per
//! backend), `transaction` the macros that run code on a pooled connection,
//! `counts` the per-status order counts, `fragments` the cache of rendered
//! orders, and `ops` the operations themselves.

mod api_keys;
mod changes;
mod checkpoint;
mod counts;
mod error;
mod fragments;
mod full_list;
mod models;
mod ops;
pub mod original;
mod pool;
mod queries;
mod schema;
mod storage;
mod transaction;
mod url;
mod write_gate;

pub use error::StorageError;
pub use full_list::{FullListConfig, FullListStats};
pub use storage::{Storage, StorageConfig};
pub use url::DatabaseUrl;
