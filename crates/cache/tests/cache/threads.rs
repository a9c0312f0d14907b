//! The cache on several single-thread runtimes, as the HTTP workers use it.

use std::sync::Arc;
use std::time::Duration;

use domain::OrderRepository;

use crate::support::{Op, TestRedis, cached, create};

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A Redis connection is driven by a task of the runtime that made it. Were
/// one connection shared, a worker whose loop is busy (here: not running at
/// all) would stall every other worker's cache calls into timeouts, and
/// their hits would turn into database reads.
#[test]
fn a_stalled_runtime_does_not_stall_cache_reads_on_other_threads() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let mut config = redis.config();
    config.timeout = Duration::from_millis(200);
    let repo = Arc::new(cached(config));

    let stalled = current_thread_runtime();
    let order = stalled.block_on(async {
        let order = create(&repo, "Alice").await;
        assert!(repo.get(order.id()).await.unwrap().is_some());
        assert!(repo.get(order.id()).await.unwrap().is_some());
        order
    });
    assert_eq!(repo.inner().calls(Op::Get), 1, "a miss, then a hit");
    // `stalled` is not running from here on: nothing polls its tasks.

    let other = Arc::clone(&repo);
    std::thread::spawn(move || {
        current_thread_runtime().block_on(async {
            for _ in 0..5 {
                let document = other.get(order.id()).await.unwrap();
                assert_eq!(document.as_ref(), Some(&order));
            }
        });
    })
    .join()
    .expect("the other thread's reads succeed");

    assert_eq!(
        repo.inner().calls(Op::Get),
        1,
        "the other thread's reads were all hits"
    );
    let stats = repo.stats().cache.expect("the cache is on");
    assert_eq!(stats.detail.errors, 0, "no Redis call failed or timed out");
    drop(stalled);
}
