//! What lands in Redis, under which key, for how long, and what each kind
//! of write does to it.

use std::collections::HashSet;
use std::time::Duration;

use domain::{
    CacheState, IdempotencyKey, Limit, ListQuery, OrderId, OrderRepository, OrderStatus,
    PageRequest, RepoError, StatusUpdate, Version,
};

use crate::support::{Op, TestRedis, cached, create, new_order, text};

fn detail(id: OrderId) -> String {
    format!("orders:detail:{id}")
}

fn lease(id: OrderId) -> String {
    format!("orders:detail-lease:{id}")
}

#[tokio::test]
async fn keys_hold_the_exact_bytes_served_and_hits_skip_the_database() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    let alice = create(&repo, "Alice").await;
    create(&repo, "Ben").await;
    assert_eq!(redis.int("orders:list:version"), 2);

    let list = repo.list(ListQuery::default()).await.unwrap();
    assert_eq!(
        redis.get("orders:list:2").as_deref(),
        Some(&list.whole().unwrap()[..]),
        "orders:list:{{v}} holds the body as sent"
    );
    assert_eq!(repo.list(ListQuery::default()).await.unwrap(), list);
    assert_eq!(repo.inner().calls(Op::List), 1, "the second list was a hit");

    let page = ListQuery {
        status: None,
        page: Some(PageRequest {
            limit: Limit::new(1).unwrap(),
            after: None,
        }),
    };
    let first_page = repo.list(page).await.unwrap();
    assert_eq!(
        redis.get("orders:list:2:limit=1").as_deref(),
        Some(&first_page.whole().unwrap()[..])
    );
    let received = ListQuery {
        status: Some(OrderStatus::Received),
        page: None,
    };
    let filtered = repo.list(received).await.unwrap();
    assert_eq!(
        redis.get("orders:list:2:status=received").as_deref(),
        Some(&filtered.whole().unwrap()[..])
    );

    let fetched = repo.get(alice.id()).await.unwrap().unwrap();
    assert_eq!(fetched, alice);
    assert_eq!(
        redis.get(&detail(alice.id())).as_deref(),
        Some(&alice.body()[..])
    );
    assert!(!redis.exists(&lease(alice.id())), "the lease is released");
    assert_eq!(repo.get(alice.id()).await.unwrap().unwrap(), alice);
    assert_eq!(repo.inner().calls(Op::Get), 1, "the second get was a hit");

    let stats = repo.stats();
    assert_eq!(stats.pool.max_size, 7, "the inner stats are kept");
    let cache = stats.cache.unwrap();
    assert_eq!(
        (cache.list.hits, cache.list.misses, cache.list.errors),
        (1, 3, 0)
    );
    assert_eq!(
        (cache.detail.hits, cache.detail.misses, cache.detail.errors),
        (1, 1, 0)
    );
    let health = repo.health().await;
    assert!(health.database_ok);
    assert_eq!(health.cache, CacheState::Ok);
}

#[tokio::test]
async fn an_unknown_order_is_not_cached_and_leaves_no_lease() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    let id = OrderId::new();
    assert_eq!(repo.get(id).await.unwrap(), None);
    assert!(!redis.exists(&detail(id)));
    assert!(!redis.exists(&lease(id)));
    assert_eq!(repo.get(id).await.unwrap(), None);
    assert_eq!(repo.inner().calls(Op::Get), 2);
}

#[tokio::test]
async fn payload_keys_expire_after_the_ttl_within_ten_percent() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let mut config = redis.config();
    config.ttl = Duration::from_secs(100);
    let repo = cached(config);
    let mut keys = Vec::new();
    for i in 0..20 {
        let order = create(&repo, &format!("Customer {i}")).await;
        repo.get(order.id()).await.unwrap();
        keys.push(detail(order.id()));
    }
    repo.list(ListQuery::default()).await.unwrap();
    keys.push("orders:list:20".to_owned());

    let ttls: Vec<i64> = keys.iter().map(|key| redis.pttl(key)).collect();
    for (key, ttl) in keys.iter().zip(&ttls) {
        // 90 s minus the seconds this test may have taken so far.
        assert!(
            (80_000..=110_000).contains(ttl),
            "{key} expires in {ttl} ms, not 100 s ± 10 %"
        );
    }
    assert!(
        ttls.iter().collect::<HashSet<_>>().len() > 1,
        "the TTLs are jittered"
    );
    assert_eq!(
        redis.pttl("orders:list:version"),
        -1,
        "the version never expires"
    );
}

#[tokio::test]
async fn every_committed_change_bumps_the_list_version_once() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    let version = || redis.int("orders:list:version");
    let epoch = || redis.int("orders:detail-epoch");
    assert_eq!((version(), epoch()), (0, 0));

    let order = new_order("Alice");
    let key = IdempotencyKey::parse("key-1", &order).unwrap();
    let created = repo.create(order.clone(), Some(key.clone())).await.unwrap();
    assert_eq!(version(), 1, "create");
    let replay = repo.create(order, Some(key)).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(version(), 1, "an idempotent replay changes nothing");
    let other = new_order("Ben");
    let reused = IdempotencyKey::parse("key-1", &other).unwrap();
    assert!(matches!(
        repo.create(other, Some(reused)).await,
        Err(RepoError::IdempotencyMismatch)
    ));
    assert_eq!(version(), 1, "a refused create changes nothing");

    let id = created.document.id();
    let update = repo
        .update_status(id, OrderStatus::Shipped, None)
        .await
        .unwrap();
    assert!(matches!(update, StatusUpdate::Updated(_)));
    assert_eq!(version(), 2, "status change");
    let stale = repo
        .update_status(id, OrderStatus::Ready, Some(Version::FIRST))
        .await
        .unwrap();
    assert!(matches!(stale, StatusUpdate::VersionMismatch { .. }));
    let unknown = repo
        .update_status(OrderId::new(), OrderStatus::Ready, None)
        .await
        .unwrap();
    assert_eq!(unknown, StatusUpdate::NotFound);
    assert_eq!(version(), 2, "refused status changes change nothing");

    assert!(repo.delete(id).await.unwrap());
    assert_eq!(version(), 3, "delete");
    assert!(!repo.delete(id).await.unwrap());
    assert_eq!(version(), 3, "deleting nothing changes nothing");

    // A full invalidation also gives the epoch a value never seen before.
    let mut epochs = HashSet::from([epoch()]);
    repo.reset().await.unwrap();
    assert_eq!(version(), 4, "reset");
    assert!(epochs.insert(epoch()), "reset");
    repo.seed(3).await.unwrap();
    assert_eq!(version(), 5, "seed");
    assert!(epochs.insert(epoch()), "seed");
    repo.invalidate_all().await.unwrap();
    assert_eq!(version(), 6, "invalidate_all");
    assert!(epochs.insert(epoch()), "invalidate_all");
}

#[tokio::test]
async fn a_write_drops_the_detail_key_of_the_order_it_touched_only() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    let alice = create(&repo, "Alice").await;
    let ben = create(&repo, "Ben").await;
    repo.get(alice.id()).await.unwrap();
    repo.get(ben.id()).await.unwrap();
    assert!(redis.exists(&detail(alice.id())));

    let StatusUpdate::Updated(shipped) = repo
        .update_status(alice.id(), OrderStatus::Shipped, None)
        .await
        .unwrap()
    else {
        panic!("the order exists");
    };
    assert!(!redis.exists(&detail(alice.id())));
    assert!(redis.exists(&detail(ben.id())), "other orders stay cached");
    assert_eq!(repo.get(alice.id()).await.unwrap().unwrap(), shipped);
    assert_eq!(
        redis.get(&detail(alice.id())).as_deref(),
        Some(&shipped.body()[..])
    );

    assert!(repo.delete(alice.id()).await.unwrap());
    assert!(!redis.exists(&detail(alice.id())));
    assert_eq!(repo.get(alice.id()).await.unwrap(), None);
    assert!(!redis.exists(&detail(alice.id())));
}

#[tokio::test]
async fn reset_seed_and_invalidate_all_delete_every_detail_key() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    for purge in ["reset", "seed", "invalidate_all"] {
        let mut ids = Vec::new();
        for i in 0..20 {
            let order = create(&repo, &format!("Customer {i}")).await;
            repo.get(order.id()).await.unwrap();
            ids.push(order.id());
        }
        // More keys than one SCAN step covers, so the purge must loop.
        redis.set_many(
            (0..2500).map(|i| format!("orders:detail:filler-{i}")),
            b"{}",
        );
        assert_eq!(redis.scan("orders:detail:*").len(), 2520);

        match purge {
            "reset" => {
                repo.reset().await.unwrap();
            }
            "seed" => {
                repo.seed(5).await.unwrap();
            }
            _ => repo.invalidate_all().await.unwrap(),
        }
        assert_eq!(
            redis.scan("orders:detail:*"),
            Vec::<String>::new(),
            "{purge}"
        );
        if purge == "reset" {
            for id in &ids {
                assert_eq!(repo.get(*id).await.unwrap(), None, "no resurrection");
            }
        }
    }
}

#[tokio::test]
async fn junk_under_a_key_is_never_served() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    let alice = create(&repo, "Alice").await;

    redis.set(&detail(alice.id()), b"not an order");
    assert_eq!(repo.get(alice.id()).await.unwrap().unwrap(), alice);
    assert_eq!(
        redis.get(&detail(alice.id())).as_deref(),
        Some(&alice.body()[..]),
        "the junk was overwritten"
    );
    assert_eq!(repo.get(alice.id()).await.unwrap().unwrap(), alice);
    assert_eq!(repo.inner().calls(Op::Get), 1, "then a hit");

    // Ends like an order, yet no version fits in 64 bits: dropped, not
    // served, and the database answers.
    redis.set(
        &detail(alice.id()),
        b"{\"version\":99999999999999999999999}",
    );
    assert_eq!(repo.get(alice.id()).await.unwrap().unwrap(), alice);
    assert!(!redis.exists(&detail(alice.id())), "the junk was dropped");

    redis.set("orders:list:1", b"junk");
    let list = repo.list(ListQuery::default()).await.unwrap();
    assert!(text(list.whole().unwrap()).contains(&alice.id().to_string()));
    assert_eq!(
        redis.get("orders:list:1").as_deref(),
        Some(&list.whole().unwrap()[..]),
        "the junk was overwritten"
    );
}
