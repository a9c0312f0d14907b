//! The rate limiter's shared store on Redis: every instance checks a
//! subject's budget against the same key, so a client has one budget
//! whichever instance it reaches.
//!
//! Each check is one `EVALSHA` (one round trip): the script reads the
//! subject's theoretical arrival time (TAT, see `ratelimit::gcra`), reads
//! the clock with `TIME` (Redis's, so that instances whose clocks differ
//! still agree), and stores the new TAT only when the request is allowed,
//! with an expiry at the moment the bucket is full again (after which no
//! key is the same as a full bucket). It answers whether the request is
//! allowed and how far ahead of now the TAT is; the client's numbers are
//! worked out from that in Rust, by the same code as the per-process
//! store's.
//!
//! Keys: `{p}ratelimit:key:{api key prefix}` and `{p}ratelimit:ip:{address}`
//! (an IPv6 client by its /64), `{p}` being `CACHE_KEY_PREFIX`.
//!
//! Connections are made as the cache's are (`crate::connection`: the same URL, TLS and CA
//! settings, `crate::tls`), one per thread and taken out of the pool, since
//! a connection lent by the pool is checked with a `PING` first, which
//! would be a second round trip. A call is bounded by `CACHE_TIMEOUT_MS`;
//! the limiter answers from its per-process store when it fails.

use std::time::Duration;

use deadpool_redis::redis::Script;
use futures::future::BoxFuture;
use ratelimit::{Decision, Quota, RateLimitError, RateStore};

use crate::connection::Connections;
use crate::{CacheConfig, CacheError};

/// KEYS[1]: the subject's TAT. ARGV[1]: the emission interval, ARGV[2]:
/// the capacity (burst × interval), both in microseconds. Returns
/// `{1, TAT after - now}` when allowed, `{0, TAT - now}` when refused.
/// Microseconds since 1970 are below 2^53: exact in Lua's numbers.
const GCRA: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local used = tat + interval - now
if used > capacity then
  return {0, tat - now}
end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.ceil(used / 1000) + 1)
return {1, used}
";

pub struct RedisRateStore {
    connections: Connections,
    timeout: Duration,
    prefix: String,
    script: Script,
}

impl RedisRateStore {
    /// Builds the pool without connecting (a Redis that is down at start
    /// delays nothing). Fails only on a configuration the cache would
    /// refuse too.
    pub fn new(config: &CacheConfig) -> Result<Self, CacheError> {
        Ok(Self {
            connections: Connections::new(config)?,
            timeout: config.timeout,
            prefix: config.key_prefix.clone(),
            script: Script::new(GCRA),
        })
    }

    /// The Redis key of a subject (`ratelimit::Subject::storage_key`).
    pub fn key(&self, subject: &str) -> String {
        format!("{}ratelimit:{subject}", self.prefix)
    }

    /// One check, bounded by the timeout as a whole (connect and script).
    pub async fn check_subject(
        &self,
        subject: &str,
        quota: &Quota,
    ) -> Result<Decision, CacheError> {
        let key = self.key(subject);
        let attempt = async {
            let mut connection = self.connections.get().await?;
            let (allowed, used): (i64, i64) = self
                .script
                .key(&key)
                .arg(quota.emission_interval())
                .arg(quota.capacity())
                .invoke_async(&mut connection)
                .await
                .map_err(CacheError::Command)?;
            let used = u64::try_from(used)
                .map_err(|_| CacheError::Reply(format!("a negative TAT offset: {used}")))?;
            Ok(match allowed {
                1 => Decision::allowed(quota, used),
                0 => Decision::refused(quota, used),
                other => return Err(CacheError::Reply(format!("allowed = {other}"))),
            })
        };
        let result = tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or(Err(CacheError::Timeout(self.timeout)));
        if result.as_ref().is_err_and(CacheError::may_break_connection) {
            self.connections.unpin();
        }
        result
    }
}

impl RateStore for RedisRateStore {
    fn check<'a>(
        &'a self,
        key: &'a str,
        quota: &'a Quota,
    ) -> BoxFuture<'a, Result<Decision, RateLimitError>> {
        Box::pin(async move {
            self.check_subject(key, quota)
                .await
                .map_err(|error| match error {
                    CacheError::Timeout(after) => RateLimitError::Timeout(after),
                    other => RateLimitError::Store(Box::new(other)),
                })
        })
    }
}
