//! A Redis that loses its data (a restart without persistence, a version key
//! evicted or deleted): version numbers come round again, and a reader that
//! read rows before the loss must not store them under a number that a
//! write after it made current. Each interleaving is forced: the reader is
//! held between its database read and its store.

use std::time::Duration;

use cache::CacheConfig;
use domain::{ListQuery, OrderRepository, OrderStatus, StatusUpdate};

use crate::support::{Op, RedisProcess, TestRedis, cached, create, eventually, text};

/// Long enough for a loaded machine, short enough to fail a test that
/// joined a flight held by the test instead of hanging it.
const LATE_READ: Duration = Duration::from_secs(10);

/// One thread: the cache keeps one Redis connection per thread, so once a
/// read after the restart has hit, the held reader's store goes over a
/// sound connection too, and a refusal is the script's, not a broken
/// socket's.
#[tokio::test(flavor = "current_thread")]
async fn a_list_read_before_redis_restarted_empty_is_not_stored_after_a_write() {
    let Some(mut server) = RedisProcess::start() else {
        return;
    };
    let look = server.client();
    let repo = cached(CacheConfig {
        redis_url: server.url(),
        ..look.config()
    });
    create(&repo, "Alice").await;
    assert_eq!(look.int("orders:list:version"), 1);

    let mut hold = repo.inner().hold_next(Op::List);
    let early = tokio::spawn({
        let repo = repo.clone();
        async move { repo.list(ListQuery::default()).await }
    });
    hold.reached().await;

    server.restart();
    look.reconnect();
    let ben_id = create(&repo, "Ben").await.id().to_string();
    eventually(
        Duration::from_secs(30),
        "the cache serves lists again",
        async || {
            let list = tokio::time::timeout(LATE_READ, repo.list(ListQuery::default()))
                .await
                .expect("a read after the restart joined a flight from before it")
                .unwrap();
            assert!(text(list.whole().unwrap()).contains(&ben_id), "stale list");
            let hits = repo.stats().cache.unwrap().list.hits;
            repo.list(ListQuery::default()).await.unwrap();
            repo.stats().cache.unwrap().list.hits > hits
        },
    )
    .await;
    assert_eq!(
        look.int("orders:list:version"),
        1,
        "the version number came round again: only the epoch tells them apart"
    );

    let errors = repo.stats().cache.unwrap().list.errors;
    hold.release();
    let old = early.await.unwrap().unwrap();
    assert!(
        !text(old.whole().unwrap()).contains(&ben_id),
        "read before the write"
    );
    assert_eq!(
        repo.stats().cache.unwrap().list.errors,
        errors,
        "the early reader's store reached Redis"
    );
    let stored = look.get("orders:list:1").expect("the list is cached");
    assert!(
        text(&stored).contains(&ben_id),
        "the early reader stored rows from before the write: {}",
        text(&stored)
    );
    let list = repo.list(ListQuery::default()).await.unwrap();
    assert!(
        text(list.whole().unwrap()).contains(&ben_id),
        "stale list served"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_detail_read_before_redis_restarted_empty_is_not_stored_after_a_write() {
    let Some(mut server) = RedisProcess::start() else {
        return;
    };
    let look = server.client();
    let repo = cached(CacheConfig {
        redis_url: server.url(),
        ..look.config()
    });
    let alice = create(&repo, "Alice").await;
    let id = alice.id();
    // An epoch other than the first one, as a long-running Redis has.
    repo.invalidate_all().await.unwrap();

    let mut hold = repo.inner().hold_next(Op::Get);
    let early = tokio::spawn({
        let repo = repo.clone();
        async move { repo.get(id).await }
    });
    hold.reached().await;

    server.restart();
    look.reconnect();
    let StatusUpdate::Updated(shipped) = repo
        .update_status(id, OrderStatus::Shipped, None)
        .await
        .unwrap()
    else {
        panic!("the order exists");
    };
    eventually(
        Duration::from_secs(30),
        "the cache serves details again",
        async || {
            let found = tokio::time::timeout(LATE_READ, repo.get(id))
                .await
                .expect("a read after the restart joined a flight from before it")
                .unwrap();
            assert_eq!(found.as_ref(), Some(&shipped), "stale detail");
            let hits = repo.stats().cache.unwrap().detail.hits;
            repo.get(id).await.unwrap();
            repo.stats().cache.unwrap().detail.hits > hits
        },
    )
    .await;

    let errors = repo.stats().cache.unwrap().detail.errors;
    hold.release();
    assert_eq!(early.await.unwrap().unwrap(), Some(alice), "read before");
    assert_eq!(
        repo.stats().cache.unwrap().detail.errors,
        errors,
        "the early reader's store reached Redis"
    );
    let detail_key = format!("orders:detail:{id}");
    assert_eq!(
        look.get(&detail_key).as_deref().map(text),
        Some(text(shipped.body())),
        "the early reader stored the row from before the write"
    );
    assert_eq!(repo.get(id).await.unwrap(), Some(shipped));
}

/// The version key alone can go too (evicted under an `allkeys-*` policy,
/// deleted by hand): the script that recreates it gives it a new epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_version_lost_alone_comes_back_under_a_new_epoch() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    create(&repo, "Alice").await;
    assert_eq!(redis.int("orders:list:version"), 1);

    let mut hold = repo.inner().hold_next(Op::List);
    let early = tokio::spawn({
        let repo = repo.clone();
        async move { repo.list(ListQuery::default()).await }
    });
    hold.reached().await;

    redis.del("orders:list:version");
    let ben_id = create(&repo, "Ben").await.id().to_string();
    assert_eq!(redis.int("orders:list:version"), 1, "the number came round");
    let late = tokio::time::timeout(LATE_READ, repo.list(ListQuery::default()))
        .await
        .expect("the late read joined the early flight")
        .unwrap();
    assert!(text(late.whole().unwrap()).contains(&ben_id));

    hold.release();
    let old = early.await.unwrap().unwrap();
    assert!(
        !text(old.whole().unwrap()).contains(&ben_id),
        "read before the write"
    );
    assert_eq!(
        redis.get("orders:list:1").as_deref().map(text),
        Some(text(late.whole().unwrap())),
        "the early reader overwrote the current list"
    );
    let again = repo.list(ListQuery::default()).await.unwrap();
    assert_eq!(again, late);
    assert_eq!(repo.inner().calls(Op::List), 2, "the last list was a hit");
}
