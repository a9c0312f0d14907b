//! `CACHE_DISABLED`: no pool, no connection, a pure pass-through.

use std::time::Duration;

use cache::{CacheConfig, CacheError, CachedRepository};
use domain::{CacheState, ListQuery, OrderRepository, OrderStatus};

use crate::support::redis::free_port;
use crate::support::{Cached, MemoryRepo, Op, RedisProcess, create};

fn disabled(url: String) -> Cached {
    let config = CacheConfig {
        redis_url: url,
        ca_certificates: None,
        ttl: Duration::from_secs(60),
        timeout: Duration::from_millis(50),
        disabled: true,
        key_prefix: String::new(),
    };
    CachedRepository::new(MemoryRepo::default(), config).unwrap()
}

/// Every operation once, each read twice (a cache would answer the second).
async fn exercise(repo: &Cached) {
    let order = create(repo, "Alice").await;
    for _ in 0..2 {
        assert_eq!(repo.get(order.id()).await.unwrap(), Some(order.clone()));
        repo.list(ListQuery::default()).await.unwrap();
    }
    repo.update_status(order.id(), OrderStatus::Shipped, None)
        .await
        .unwrap();
    assert!(repo.delete(order.id()).await.unwrap());
    assert_eq!(repo.seed(2).await.unwrap(), 2);
    repo.reset().await.unwrap();
    repo.invalidate_all().await.unwrap();
    let health = repo.health().await;
    assert!(health.database_ok);
    assert_eq!(health.cache, CacheState::Disabled);
    assert_eq!(repo.stats().cache, None, "no cache layer to count");
    assert_eq!(
        repo.inner().calls(Op::Get),
        2,
        "every read reaches the database"
    );
    assert_eq!(repo.inner().calls(Op::List), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_cache_never_connects_to_redis() {
    let Some(server) = tokio::task::block_in_place(RedisProcess::start) else {
        return;
    };
    let look = server.client();
    let connections = look.info("stats", "total_connections_received");
    assert_eq!(look.info("clients", "connected_clients"), 1, "only ours");

    let repo = disabled(server.url());
    exercise(&repo).await;

    assert_eq!(
        look.info("stats", "total_connections_received"),
        connections,
        "the disabled cache connected to Redis"
    );
    assert_eq!(look.info("clients", "connected_clients"), 1);
}

#[tokio::test]
async fn a_disabled_cache_needs_no_redis_at_all() {
    let repo = disabled(format!("redis://127.0.0.1:{}/0", free_port()));
    tokio::time::timeout(Duration::from_secs(5), exercise(&repo))
        .await
        .expect("nothing waits for a Redis");
}

#[test]
fn only_an_enabled_cache_reads_its_url_and_it_does_so_without_connecting() {
    let config = |url: &str, disabled| CacheConfig {
        redis_url: url.to_owned(),
        disabled,
        ..CacheConfig::default()
    };
    let bad = CachedRepository::new(MemoryRepo::default(), config("not a url", false));
    assert!(matches!(bad, Err(CacheError::InvalidUrl(_))));
    assert!(CachedRepository::new(MemoryRepo::default(), config("not a url", true)).is_ok());
    let port = free_port();
    let absent = config(&format!("redis://127.0.0.1:{port}/0"), false);
    assert!(
        CachedRepository::new(MemoryRepo::default(), absent).is_ok(),
        "an absent Redis does not fail construction"
    );
}
