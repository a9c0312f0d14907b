//! The rate limiter's shared store against real Redis: one budget per
//! subject for every store (instance) on the same Redis and prefix, kept
//! under `{p}ratelimit:`, with an expiry; errors, not hangs, when Redis is
//! down or hung (the limiter then answers per process); TLS as the cache.

use std::time::{Duration, Instant};

use cache::RedisRateStore;
use ratelimit::{Quota, RateStore};

use crate::support::{RedisProcess, TestRedis, tls_server};

fn quota(per_minute: u32, burst: u32) -> Quota {
    Quota::new(per_minute, burst).unwrap()
}

#[tokio::test]
async fn every_store_on_one_redis_shares_a_subjects_budget() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    // Two instances: two stores, two pools, one Redis and prefix.
    let first = RedisRateStore::new(&redis.config()).unwrap();
    let second = RedisRateStore::new(&redis.config()).unwrap();
    let quota = quota(60, 3);
    let mut remaining = Vec::new();
    for store in [&first, &second, &first] {
        let decision = store.check("ip:192.0.2.1", &quota).await.unwrap();
        assert!(decision.allowed);
        remaining.push(decision.remaining);
    }
    assert_eq!(remaining, [2, 1, 0]);
    let refused = second.check("ip:192.0.2.1", &quota).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert!(
        refused.reset > Duration::from_millis(900) && refused.reset <= Duration::from_secs(1),
        "about one interval to wait: {:?}",
        refused.reset
    );
    // Another subject has its own budget.
    assert!(first.check("ip:192.0.2.2", &quota).await.unwrap().allowed);
    assert!(first.check("key:ok_ab12", &quota).await.unwrap().allowed);

    // One key per subject, under the prefix, gone once the bucket is full
    // again (three intervals ahead at most).
    assert_eq!(
        redis.scan("ratelimit:*").len(),
        3,
        "{:?}",
        redis.scan("ratelimit:*")
    );
    let ttl = redis.pttl("ratelimit:ip:192.0.2.1");
    assert!(ttl > 2_000 && ttl <= 3_002, "{ttl}");
}

#[tokio::test]
async fn refusals_do_not_spend_and_the_bucket_refills() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let store = RedisRateStore::new(&redis.config()).unwrap();
    // 600 a minute: one every 100 ms, two at once.
    let quota = quota(600, 2);
    assert!(
        store
            .check("ip:198.51.100.7", &quota)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        store
            .check("ip:198.51.100.7", &quota)
            .await
            .unwrap()
            .allowed
    );
    for _ in 0..20 {
        assert!(
            !store
                .check("ip:198.51.100.7", &quota)
                .await
                .unwrap()
                .allowed
        );
    }
    let stored = redis.get("ratelimit:ip:198.51.100.7").unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The refusals left the TAT alone, so one interval later one more fits.
    assert_eq!(redis.get("ratelimit:ip:198.51.100.7").unwrap(), stored);
    let again = store.check("ip:198.51.100.7", &quota).await.unwrap();
    assert!(again.allowed, "{again:?}");
}

#[tokio::test]
async fn prefixes_keep_deployments_apart() {
    let (Some(one), Some(other)) = (TestRedis::shared(), TestRedis::shared()) else {
        return;
    };
    let quota = quota(60, 1);
    let a = RedisRateStore::new(&one.config()).unwrap();
    let b = RedisRateStore::new(&other.config()).unwrap();
    assert!(a.check("ip:192.0.2.1", &quota).await.unwrap().allowed);
    assert!(!a.check("ip:192.0.2.1", &quota).await.unwrap().allowed);
    assert!(b.check("ip:192.0.2.1", &quota).await.unwrap().allowed);
    assert_eq!(a.key("ip:192.0.2.1"), one.key("ratelimit:ip:192.0.2.1"));
}

#[tokio::test]
async fn a_dead_or_hung_redis_is_an_error_within_the_timeout() {
    let Some(mut server) = RedisProcess::start() else {
        return;
    };
    let mut config = server.client().config();
    config.timeout = Duration::from_millis(200);
    let store = RedisRateStore::new(&config).unwrap();
    let quota = quota(60, 5);
    assert!(store.check("ip:192.0.2.1", &quota).await.unwrap().allowed);

    server.hang();
    let started = Instant::now();
    let hung = store.check("ip:192.0.2.1", &quota).await;
    assert!(hung.is_err(), "{hung:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    server.resume();

    server.kill();
    let started = Instant::now();
    assert!(store.check("ip:192.0.2.1", &quota).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(1));

    // Back (empty): a fresh connection, a full bucket again.
    server.restart();
    crate::support::eventually(Duration::from_secs(5), "Redis answers again", async || {
        store.check("ip:192.0.2.1", &quota).await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn tls_redis_works_as_for_the_cache() {
    let Some(server) = tls_server() else {
        return;
    };
    let store = RedisRateStore::new(&server.client().config()).unwrap();
    let quota = quota(60, 1);
    assert!(store.check("ip:192.0.2.1", &quota).await.unwrap().allowed);
    assert!(!store.check("ip:192.0.2.1", &quota).await.unwrap().allowed);
}
