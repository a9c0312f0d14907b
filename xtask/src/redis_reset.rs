//! `cargo xtask reset-redis`: flushes the Redis database `REDIS_URL` names
//! and reports its key count before and after, as the original's script
//! did. Only that database: other databases of the same server are kept.

use std::time::Duration;

use cache::redis;

use crate::error::XtaskError;

/// Redis answers in microseconds; a server that does not answer at all
/// must not hang the command.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisReset {
    pub keys_before: u64,
    pub keys_after: u64,
}

impl std::fmt::Display for RedisReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keys before: {}. Flushed. Keys after: {}.",
            self.keys_before, self.keys_after
        )
    }
}

async fn connect(url: &str) -> Result<redis::aio::MultiplexedConnection, XtaskError> {
    let client = redis::Client::open(url)?;
    tokio::time::timeout(TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| {
            XtaskError::Failed(format!("Redis at {url} did not answer within {TIMEOUT:?}"))
        })?
        .map_err(XtaskError::from)
}

async fn query<T: redis::FromRedisValue>(
    connection: &mut redis::aio::MultiplexedConnection,
    command: &redis::Cmd,
) -> Result<T, XtaskError> {
    tokio::time::timeout(TIMEOUT, command.query_async(connection))
        .await
        .map_err(|_| XtaskError::Failed(format!("Redis did not answer within {TIMEOUT:?}")))?
        .map_err(XtaskError::from)
}

pub async fn reset_redis(url: &str) -> Result<RedisReset, XtaskError> {
    let mut connection = connect(url).await?;
    let keys_before = query(&mut connection, &redis::cmd("DBSIZE")).await?;
    query::<()>(&mut connection, &redis::cmd("FLUSHDB")).await?;
    let keys_after = query(&mut connection, &redis::cmd("DBSIZE")).await?;
    Ok(RedisReset {
        keys_before,
        keys_after,
    })
}

/// Deletes the keys that start with `prefix` (the bench's and the tests'
/// own key space), leaving every other key alone; returns how many.
pub async fn delete_prefixed(url: &str, prefix: &str) -> Result<u64, XtaskError> {
    let mut connection = connect(url).await?;
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = query(
            &mut connection,
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000),
        )
        .await?;
        if !keys.is_empty() {
            deleted += query::<u64>(&mut connection, redis::cmd("DEL").arg(&keys)).await?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}
