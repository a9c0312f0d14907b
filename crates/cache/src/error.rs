use std::time::Duration;

use deadpool_redis::{BuildError, PoolError, redis::RedisError};

/// What can go wrong talking to Redis. None of these ever reaches a client:
/// a failed cache operation turns into a database read (or, for a write, a
/// "dirty" mark that keeps the cache out of use until it is purged).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// `redis_url` is not a Redis URL.
    #[error("invalid Redis URL")]
    InvalidUrl(#[source] RedisError),
    /// What was given as certificate authorities is not (see
    /// [`crate::CaCertificates::from_pem`]).
    #[error("invalid CA certificates: {0}")]
    InvalidCaCertificates(String),
    /// Certificate authorities for a `redis://` URL, which makes no TLS.
    #[error("CA certificates are given, but the Redis URL is not rediss://")]
    CaCertificatesWithoutTls,
    #[error("could not build the Redis connection pool")]
    Build(#[source] BuildError),
    /// No pooled connection could be had (refused, unreachable, pool timeout).
    #[error("no Redis connection")]
    Connection(#[source] PoolError),
    #[error("a Redis command failed")]
    Command(#[source] RedisError),
    /// Redis did not answer within `CacheConfig::timeout` (hung or slow).
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The circuit breaker is open after repeated failures: Redis is skipped.
    #[error("Redis is skipped for a while after repeated failures")]
    CircuitOpen,
    /// Redis answered something our scripts never return.
    #[error("unexpected reply from Redis: {0}")]
    Reply(String),
}

impl CacheError {
    /// Whether the connection the call used may be broken. An error reply
    /// (say `INCR` of a value that is not a number) leaves it sound.
    pub(crate) fn may_break_connection(&self) -> bool {
        match self {
            Self::Command(error) => {
                error.is_unrecoverable_error()
                    || error.is_io_error()
                    || error.is_connection_dropped()
                    || error.is_timeout()
            }
            Self::Timeout(_) => true,
            Self::InvalidUrl(_)
            | Self::InvalidCaCertificates(_)
            | Self::CaCertificatesWithoutTls
            | Self::Build(_)
            | Self::Connection(_)
            | Self::CircuitOpen
            | Self::Reply(_) => false,
        }
    }
}
