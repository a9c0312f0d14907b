//! Rate limits and the admin lockout of the orders service, without a web
//! framework or a Redis client: the GCRA arithmetic ([`gcra`]), what is
//! limited ([`Subject`]), a bounded per-process store ([`MemoryStore`]),
//! the trait of a shared store ([`RateStore`], implemented on Redis by the
//! cache crate), the [`Limiter`] that asks the shared store and falls back
//! to the process's, and the [`Lockout`] of failed admin authentications.

mod error;
pub mod gcra;
mod limiter;
mod lockout;
mod memory;
mod store;
mod subject;

pub use error::RateLimitError;
pub use gcra::{Decision, Quota};
pub use limiter::{Checked, Limiter, STORE_RETRY, Source};
pub use lockout::{FIRST_DELAY, Failure, Lockout, LockoutPolicy, MAX_DELAY};
pub use memory::MemoryStore;
pub use store::RateStore;
pub use subject::Subject;
