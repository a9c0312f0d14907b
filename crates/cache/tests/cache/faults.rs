//! Redis hung, killed, absent, failing: every call succeeds within the
//! timeout plus a margin, and nothing stale is served once Redis is back.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cache::CacheConfig;
use domain::{CacheState, ListQuery, OrderRepository, OrderStatus, StatusUpdate};

use crate::support::redis::free_port;
use crate::support::{self, Cached, Op, RedisProcess, TestRedis, cached, create, eventually, text};

const TIMEOUT: Duration = Duration::from_millis(100);
/// A correctness bound, not a benchmark: a call may wait for Redis once
/// (one timeout), plus scheduling on a machine shared with compilers.
const BOUND: Duration = Duration::from_millis(100 + 250);

fn fault_config(url: String, key_prefix: String) -> CacheConfig {
    CacheConfig {
        redis_url: url,
        ca_certificates: None,
        ttl: Duration::from_secs(60),
        timeout: TIMEOUT,
        disabled: false,
        key_prefix,
    }
}

/// The server's URL, CA and a fresh prefix, with the short timeout.
fn config_for(look: &TestRedis) -> CacheConfig {
    CacheConfig {
        timeout: TIMEOUT,
        ..look.config()
    }
}

fn plain_server() -> Option<RedisProcess> {
    tokio::task::block_in_place(RedisProcess::start)
}

fn tls_server() -> Option<RedisProcess> {
    tokio::task::block_in_place(support::tls_server)
}

async fn timed<T>(what: &str, call: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let output = call.await;
    let took = start.elapsed();
    assert!(took < BOUND, "{what} took {took:?}, over {BOUND:?}");
    output
}

async fn shipped(repo: &Cached, id: domain::OrderId) -> domain::OrderDocument {
    match timed("update", repo.update_status(id, OrderStatus::Shipped, None))
        .await
        .unwrap()
    {
        StatusUpdate::Updated(document) => document,
        other => panic!("not updated: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_costs_each_call_one_timeout_at_most_and_nothing_stale_follows() {
    if let Some(server) = plain_server() {
        hung_redis(server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_tls_redis_costs_each_call_one_timeout_at_most_and_nothing_stale_follows() {
    if let Some(server) = tls_server() {
        hung_redis(server).await;
    }
}

async fn hung_redis(server: RedisProcess) {
    let look = server.client();
    let repo = cached(config_for(&look));
    let order = create(&repo, "Alice").await;
    let id = order.id();
    let detail_key = format!("orders:detail:{id}");
    for _ in 0..2 {
        repo.get(id).await.unwrap();
        repo.list(ListQuery::default()).await.unwrap();
    }
    assert!(look.exists(&detail_key));

    server.hang();
    for _ in 0..3 {
        let found = timed("get", repo.get(id)).await.unwrap();
        assert_eq!(found, Some(order.clone()));
    }
    // The breaker is open now; this write still tries to tell Redis, twice,
    // and with Redis hung it cannot: the cache is marked dirty.
    let updated = shipped(&repo, id).await;
    let start = Instant::now();
    for _ in 0..20 {
        assert_eq!(repo.get(id).await.unwrap(), Some(updated.clone()));
        let list = repo.list(ListQuery::default()).await.unwrap();
        assert!(text(list.whole().unwrap()).contains("\"shipped\""));
    }
    let took = start.elapsed();
    assert!(
        took < BOUND,
        "40 calls took {took:?}: the breaker did not skip Redis"
    );
    let health = timed("health", repo.health()).await;
    assert_eq!(health.cache, CacheState::Unavailable);
    assert!(health.database_ok);
    assert!(repo.stats().cache.unwrap().detail.errors >= 3);

    server.resume();
    // The write's invalidation reached the hung server's socket and may run
    // as it wakes; if it did not, the pre-write entry is still there and
    // only the purge can save us. Either way, nothing stale is read below.
    let after_resume = look.get(&detail_key);
    assert!(
        after_resume.is_none() || after_resume.as_deref() == Some(&order.body()[..]),
        "{after_resume:?}"
    );
    eventually(
        Duration::from_secs(30),
        "the cache is used again",
        async || {
            let found = repo.get(id).await.unwrap();
            assert_eq!(found, Some(updated.clone()), "stale detail after recovery");
            let list = repo.list(ListQuery::default()).await.unwrap();
            assert!(
                text(list.whole().unwrap()).contains("\"shipped\""),
                "stale list after recovery"
            );
            look.get(&detail_key).as_deref() == Some(&updated.body()[..])
        },
    )
    .await;
    let hits = repo.stats().cache.unwrap().detail.hits;
    assert_eq!(repo.get(id).await.unwrap(), Some(updated));
    assert_eq!(repo.stats().cache.unwrap().detail.hits, hits + 1);
    assert_eq!(repo.health().await.cache, CacheState::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_fails_no_call() {
    if let Some(server) = plain_server() {
        killed_and_restarted_under_load(server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_redis_killed_and_restarted_under_load_fails_no_call() {
    if let Some(server) = tls_server() {
        killed_and_restarted_under_load(server).await;
    }
}

async fn killed_and_restarted_under_load(mut server: RedisProcess) {
    let look = server.client();
    let repo = cached(config_for(&look));
    assert_eq!(repo.seed(20).await.unwrap(), 20);
    let ids: Arc<Vec<_>> = Arc::new(repo.inner().order_ids());
    assert_eq!(ids.len(), 20);

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (repo, ids, stop) = (repo.clone(), ids.clone(), stop.clone());
            tokio::spawn(async move {
                let mut calls = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let id = ids[(worker * 7 + calls) % ids.len()];
                    match calls % 4 {
                        0 => {
                            timed("list", repo.list(ListQuery::default()))
                                .await
                                .unwrap();
                        }
                        1 => {
                            let status = OrderStatus::ALL[calls % OrderStatus::ALL.len()];
                            timed("update", repo.update_status(id, status, None))
                                .await
                                .unwrap();
                        }
                        _ => {
                            timed("get", repo.get(id)).await.unwrap();
                        }
                    }
                    calls += 1;
                    // Each call is a request of its own in the service; here
                    // one task loops, and with Redis skipped nothing in the
                    // loop would ever give the scheduler (or its timers) back
                    // the thread.
                    tokio::task::yield_now().await;
                }
                calls
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| server.kill());
    tokio::time::sleep(Duration::from_millis(700)).await;
    tokio::task::block_in_place(|| server.restart());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        assert!(worker.await.unwrap() > 0);
    }

    eventually(
        Duration::from_secs(30),
        "Redis is healthy again",
        async || repo.health().await.cache == CacheState::Ok,
    )
    .await;
    let database = repo.inner();
    eventually(
        Duration::from_secs(30),
        "the cache serves hits again",
        async || {
            for _ in 0..2 {
                let cached = repo.list(ListQuery::default()).await.unwrap();
                let truth = database.list(ListQuery::default()).await.unwrap();
                assert_eq!(
                    text(cached.whole().unwrap()),
                    text(truth.whole().unwrap()),
                    "stale list"
                );
                for id in ids.iter() {
                    assert_eq!(
                        repo.get(*id).await.unwrap(),
                        database.get(*id).await.unwrap(),
                        "stale detail"
                    );
                }
            }
            let before = repo.stats().cache.unwrap().list.hits;
            repo.list(ListQuery::default()).await.unwrap();
            repo.stats().cache.unwrap().list.hits > before
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_absent_at_start_fails_nothing_and_is_used_once_it_is_there() {
    let port = free_port();
    let repo = cached(fault_config(
        format!("redis://127.0.0.1:{port}/0"),
        format!("absent:{:016x}:", rand::random::<u64>()),
    ));
    let alice = timed("create", async { create(&repo, "Alice").await }).await;
    let ben = timed("create", async { create(&repo, "Ben").await }).await;
    for _ in 0..5 {
        timed("get", repo.get(alice.id())).await.unwrap();
        timed("list", repo.list(ListQuery::default()))
            .await
            .unwrap();
    }
    let updated = shipped(&repo, alice.id()).await;
    assert!(timed("delete", repo.delete(ben.id())).await.unwrap());
    let health = timed("health", repo.health()).await;
    assert_eq!(health.cache, CacheState::Unavailable);

    let Some(_server) = tokio::task::block_in_place(|| RedisProcess::start_on(port)) else {
        return;
    };
    eventually(Duration::from_secs(30), "the cache is used", async || {
        assert_eq!(repo.get(alice.id()).await.unwrap(), Some(updated.clone()));
        assert_eq!(repo.get(ben.id()).await.unwrap(), None);
        let before = repo.stats().cache.unwrap().detail.hits;
        repo.get(alice.id()).await.unwrap();
        repo.stats().cache.unwrap().detail.hits > before
    })
    .await;
    assert_eq!(repo.health().await.cache, CacheState::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_could_not_invalidate_keeps_reads_off_the_cache_until_a_purge() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    let alice = create(&repo, "Alice").await;
    let ben = create(&repo, "Ben").await;
    repo.get(ben.id()).await.unwrap();
    assert_eq!(repo.get(ben.id()).await.unwrap(), Some(ben.clone()));
    let hits = repo.stats().cache.unwrap().detail.hits;
    assert_eq!(hits, 1);

    // INCR of the version now fails: the write's invalidation fails.
    redis.set("orders:list:version", b"not a number");
    let errors = repo.stats().cache.unwrap().list.errors;
    shipped(&repo, alice.id()).await;
    assert!(repo.stats().cache.unwrap().list.errors > errors);

    // Dirty: Ben's entry is in Redis, yet reads go to the database.
    let gets = repo.inner().calls(Op::Get);
    for _ in 0..3 {
        assert_eq!(repo.get(ben.id()).await.unwrap(), Some(ben.clone()));
    }
    assert_eq!(
        repo.stats().cache.unwrap().detail.hits,
        hits,
        "no hit while dirty"
    );
    assert_eq!(repo.inner().calls(Op::Get), gets + 3);

    // Redis is sound again: a purge runs, then the cache is used again.
    redis.del("orders:list:version");
    eventually(
        Duration::from_secs(30),
        "the cache is used again",
        async || {
            assert_eq!(repo.get(ben.id()).await.unwrap(), Some(ben.clone()));
            repo.stats().cache.unwrap().detail.hits > hits
        },
    )
    .await;
    // Nothing but the purge wrote since the version was deleted.
    assert_eq!(redis.int("orders:list:version"), 1, "a full purge ran");
}

/// An error reply is Redis answering: the connection is sound and is kept.
/// One thread, so that every call uses the same per-thread connection.
#[tokio::test(flavor = "current_thread")]
async fn an_error_reply_keeps_the_connection() {
    let Some(server) = RedisProcess::start() else {
        return;
    };
    let look = server.client();
    let repo = cached(CacheConfig {
        redis_url: server.url(),
        ..look.config()
    });
    let alice = create(&repo, "Alice").await;
    let connections = look.info("stats", "total_connections_received");

    // INCR of the version now fails with an error reply.
    look.set("orders:list:version", b"not a number");
    let errors = repo.stats().cache.unwrap().list.errors;
    shipped(&repo, alice.id()).await;
    assert!(repo.stats().cache.unwrap().list.errors > errors);
    // The failed invalidation made the cache dirty; wait for the purge and
    // a hit, all of which use the connection again.
    look.del("orders:list:version");
    eventually(
        Duration::from_secs(30),
        "the cache is used again",
        async || {
            let before = repo.stats().cache.unwrap().list.hits;
            repo.list(ListQuery::default()).await.unwrap();
            repo.stats().cache.unwrap().list.hits > before
        },
    )
    .await;

    assert_eq!(
        look.info("stats", "total_connections_received"),
        connections,
        "the cache reconnected after an error reply"
    );
}

/// Three reads against a hung Redis open the breaker; then Redis wakes.
async fn breaker_opened_by_a_hang(server: &RedisProcess, repo: &Cached, id: domain::OrderId) {
    server.hang();
    for _ in 0..3 {
        timed("get", repo.get(id)).await.unwrap();
    }
    server.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_tells_redis_even_while_the_breaker_skips_it_for_reads() {
    let Some(server) = plain_server() else { return };
    let look = server.client();
    let repo = cached(config_for(&look));
    let order = create(&repo, "Alice").await;
    let id = order.id();
    let detail_key = format!("orders:detail:{id}");
    repo.get(id).await.unwrap();
    assert!(look.exists(&detail_key));
    breaker_opened_by_a_hang(&server, &repo, id).await;
    // Give the reads' late commands time to run now that Redis is awake.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let version = look.int("orders:list:version");

    // Within the breaker's first cool-down (1 s): reads skip Redis, the
    // write does not. Had it been skipped, other instances would serve the
    // pre-write entry until some purge.
    shipped(&repo, id).await;
    assert!(
        !look.exists(&detail_key),
        "the pre-write entry survived the write"
    );
    assert!(look.int("orders:list:version") > version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_could_not_tell_redis_of_a_write_purges_before_it_exits() {
    let Some(server) = plain_server() else { return };
    let look = server.client();
    let repo = cached(config_for(&look));
    let order = create(&repo, "Alice").await;
    let id = order.id();
    repo.get(id).await.unwrap();
    let epoch = look.get("orders:detail-epoch").expect("an epoch");
    assert!(
        repo.settle(Duration::from_millis(10)).await,
        "clean: nothing to do"
    );

    server.hang();
    shipped(&repo, id).await;
    assert!(
        !repo.settle(Duration::from_millis(300)).await,
        "Redis is still hung: the purge cannot have run"
    );
    server.resume();
    assert!(repo.settle(Duration::from_secs(5)).await);
    // Only a purge moves the epoch (the write's own script keeps it).
    assert_ne!(look.get("orders:detail-epoch"), Some(epoch));
}
