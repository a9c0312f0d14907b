//! The cache against real Redis: the machine's (each test under its own
//! random key prefix) or, for fault tests, a `redis-server` of the test's
//! own. The database is replaced by an in-memory repository that counts
//! calls and can hold a read between "row read" and "return", which is how
//! races are forced instead of hoped for.
//!
//! A crate root looks for modules beside itself, hence the `path`s: the
//! modules live under `tests/cache/` so Cargo does not build each as a
//! test binary of its own.

#[path = "cache/consistency.rs"]
mod consistency;
#[path = "cache/disabled.rs"]
mod disabled;
#[path = "cache/faults.rs"]
mod faults;
#[path = "cache/layout.rs"]
mod layout;
#[path = "cache/loss.rs"]
mod loss;
#[path = "cache/original.rs"]
mod original;
#[path = "cache/rate_limit.rs"]
mod rate_limit;
#[path = "cache/single_flight.rs"]
mod single_flight;
#[path = "cache/support/mod.rs"]
mod support;
#[path = "cache/threads.rs"]
mod threads;
#[path = "cache/tls.rs"]
mod tls;
