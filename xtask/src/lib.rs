//! The workspace's tasks as a library: `main.rs` is a thin command line
//! over these functions, and the tests call them directly.
//!
//! They reuse the service's own crates: the server's `Settings` (the same
//! environment and `.env`), its repository (storage wrapped by the cache,
//! so every write here invalidates the cache as the server's would) and
//! the domain's fake orders.

pub mod bench;
pub mod clear;
pub mod contract;
pub mod error;
pub mod loadtest;
pub mod mysql_admin;
pub mod redis_reset;
pub mod scratch;
pub mod seed;
pub mod takeover_bench;

pub use error::XtaskError;
