//! The repository's operations, each a function of `Storage`. They run
//! inside a spawned task (see `storage.rs`), so a caller that stops waiting
//! never cuts a transaction in half.

mod admin;
mod change;
mod create;
mod read;

pub(crate) use admin::{ITEMS_PER_INSERT, ORDERS_PER_INSERT, count, ping, reset, seed};
pub(crate) use change::{delete, update_status};
pub(crate) use create::create;
pub(crate) use read::{get, list};
