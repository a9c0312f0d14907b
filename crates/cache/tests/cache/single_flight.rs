//! Concurrent misses of one key share one database call; a leader that is
//! cancelled strands no one; an error reaches every caller.

use std::time::Duration;

use domain::{ListQuery, OrderRepository, RepoError};

use crate::support::{Cached, Op, TestRedis, cached, create, eventually};

const READERS: u64 = 100;

/// Waits until `count` lookups of a key space have missed: every one of
/// those readers is then in (or entering, within the same poll) the flight.
async fn wait_for_misses(repo: &Cached, count: u64, detail: bool) {
    eventually(Duration::from_secs(20), "every reader missed", async || {
        let stats = repo.stats().cache.unwrap();
        let space = if detail { stats.detail } else { stats.list };
        space.misses >= count
    })
    .await;
    // A reader counted as missed may still be a few instructions short of
    // the flight map on the other worker thread; this pause is that margin,
    // not the mechanism (the held call is what keeps the flight open).
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_cold_list_reads_make_one_database_call() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    create(&repo, "Alice").await;
    let hold = repo.inner().hold_next(Op::List);
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let repo = repo.clone();
            tokio::spawn(async move { repo.list(ListQuery::default()).await })
        })
        .collect();
    wait_for_misses(&repo, READERS, false).await;
    hold.release();
    let mut bodies = Vec::new();
    for reader in readers {
        bodies.push(reader.await.unwrap().unwrap());
    }
    assert_eq!(repo.inner().calls(Op::List), 1);
    assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_cold_detail_reads_make_one_database_call() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    let order = create(&repo, "Alice").await;
    let hold = repo.inner().hold_next(Op::Get);
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let repo = repo.clone();
            let id = order.id();
            tokio::spawn(async move { repo.get(id).await })
        })
        .collect();
    wait_for_misses(&repo, READERS, true).await;
    hold.release();
    for reader in readers {
        assert_eq!(reader.await.unwrap().unwrap().unwrap(), order);
    }
    assert_eq!(repo.inner().calls(Op::Get), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_does_not_strand_its_followers() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    let order = create(&repo, "Alice").await;
    let id = order.id();
    let mut hold = repo.inner().hold_next(Op::Get);
    let leader = tokio::spawn({
        let repo = repo.clone();
        async move { repo.get(id).await }
    });
    hold.reached().await;
    let followers: Vec<_> = (0..10)
        .map(|_| {
            let repo = repo.clone();
            tokio::spawn(async move { repo.get(id).await })
        })
        .collect();
    wait_for_misses(&repo, 11, true).await;

    // The request of the leader is dropped, as when its client goes away.
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    hold.release();
    for follower in followers {
        let found = tokio::time::timeout(Duration::from_secs(10), follower)
            .await
            .expect("a follower was stranded")
            .unwrap()
            .unwrap();
        assert_eq!(found, Some(order.clone()));
    }
    assert_eq!(repo.inner().calls(Op::Get), 1);
    assert_eq!(
        redis.get(&format!("orders:detail:{id}")).as_deref(),
        Some(&order.body()[..]),
        "a follower finished the leader's store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaders_error_reaches_every_follower_and_is_not_cached() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    create(&repo, "Alice").await;
    let hold = repo.inner().hold_next(Op::List);
    repo.inner().fail_next(Op::List, 1);
    let readers: Vec<_> = (0..20)
        .map(|_| {
            let repo = repo.clone();
            tokio::spawn(async move { repo.list(ListQuery::default()).await })
        })
        .collect();
    wait_for_misses(&repo, 20, false).await;
    hold.release();
    for reader in readers {
        assert!(matches!(
            reader.await.unwrap(),
            Err(RepoError::Unavailable(_))
        ));
    }
    assert_eq!(repo.inner().calls(Op::List), 1);
    let list = repo.list(ListQuery::default()).await.unwrap();
    assert_eq!(
        repo.inner().calls(Op::List),
        2,
        "the failure was not cached"
    );
    assert!(
        std::str::from_utf8(list.whole().unwrap())
            .unwrap()
            .contains("Alice")
    );
}
