//! The shared store the limiter asks first: one that all instances use, so
//! that a client's budget is the same whichever instance it reaches. The
//! Redis one is in the cache crate (`cache::RedisRateStore`); this crate
//! knows only the trait, so it needs neither Redis nor actix.

use futures::future::BoxFuture;

use crate::RateLimitError;
use crate::gcra::{Decision, Quota};

pub trait RateStore: Send + Sync + 'static {
    /// One check of the subject named `key` against `quota`, on the store's
    /// own clock (so that instances with skewed clocks agree), atomically
    /// and in one round trip. An error or a hang is the limiter's to handle
    /// (it answers from the per-process store); a store never retries.
    fn check<'a>(
        &'a self,
        key: &'a str,
        quota: &'a Quota,
    ) -> BoxFuture<'a, Result<Decision, RateLimitError>>;
}
