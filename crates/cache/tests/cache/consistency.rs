//! No stale read after a write: read-after-write on every kind of write
//! across two instances, and the stale-set races forced step by step.

use std::time::Duration;

use cache::CachedRepository;
use domain::{
    IdempotencyKey, Limit, ListQuery, OrderDocument, OrderId, OrderRepository, OrderStatus,
    PageRequest, StatusUpdate,
};

use crate::support::{Cached, MemoryRepo, Op, TestRedis, cached, create, new_order, text};

fn queries() -> [ListQuery; 3] {
    [
        ListQuery::default(),
        ListQuery {
            status: Some(OrderStatus::Received),
            page: None,
        },
        ListQuery {
            status: None,
            page: Some(PageRequest {
                limit: Limit::new(2).unwrap(),
                after: None,
            }),
        },
    ]
}

/// Everything `repo` answers equals what the database holds, read twice so
/// that the second answer is a cache hit.
async fn assert_coherent(repo: &Cached, database: &MemoryRepo, ids: &[OrderId], after: &str) {
    for _ in 0..2 {
        for query in queries() {
            let cached = repo.list(query).await.unwrap();
            let truth = database.list(query).await.unwrap();
            assert_eq!(
                text(cached.whole().unwrap()),
                text(truth.whole().unwrap()),
                "stale list after {after}"
            );
        }
        for id in ids {
            let cached = repo.get(*id).await.unwrap();
            let truth = database.get(*id).await.unwrap();
            assert_eq!(cached, truth, "stale detail after {after}");
        }
    }
}

#[tokio::test]
async fn every_write_through_one_instance_is_seen_at_once_by_both() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let database = MemoryRepo::default();
    let one = CachedRepository::new(database.clone(), redis.config()).unwrap();
    let two = CachedRepository::new(database.clone(), redis.config()).unwrap();
    let mut ids: Vec<OrderId> = Vec::new();
    let check = async |ids: &[OrderId], after: &str| {
        assert_coherent(&one, &database, ids, after).await;
        assert_coherent(&two, &database, ids, after).await;
    };

    for (i, writer) in [&one, &two, &one].into_iter().enumerate() {
        check(&ids, "nothing").await;
        ids.push(create(writer, &format!("Customer {i}")).await.id());
        check(&ids, "create").await;
    }

    let order = new_order("Idempotent");
    let key = IdempotencyKey::parse("consistency", &order).unwrap();
    let created = two.create(order.clone(), Some(key.clone())).await.unwrap();
    ids.push(created.document.id());
    check(&ids, "idempotent create").await;
    assert!(one.create(order, Some(key)).await.unwrap().replayed);
    check(&ids, "replay").await;

    let update = one
        .update_status(ids[0], OrderStatus::Shipped, None)
        .await
        .unwrap();
    assert!(matches!(update, StatusUpdate::Updated(_)));
    check(&ids, "status change").await;
    let current = database.get(ids[1]).await.unwrap().unwrap().version();
    two.update_status(ids[1], OrderStatus::Ready, Some(current))
        .await
        .unwrap();
    check(&ids, "conditional status change").await;

    assert!(two.delete(ids[2]).await.unwrap());
    check(&ids, "delete").await;

    assert_eq!(one.seed(4).await.unwrap(), 4);
    let seeded: Vec<OrderId> = database
        .order_ids()
        .into_iter()
        .filter(|id| !ids.contains(id))
        .collect();
    assert_eq!(seeded.len(), 4);
    ids.extend(seeded);
    check(&ids, "seed").await;

    two.reset().await.unwrap();
    check(&ids, "reset").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_read_the_old_row_cannot_store_it_after_a_write() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    let order = create(&repo, "Alice").await;
    let id = order.id();
    let detail_key = format!("orders:detail:{id}");

    // The reader misses, takes the lease, reads the row... and stops.
    let mut hold = repo.inner().hold_next(Op::Get);
    let reader = tokio::spawn({
        let repo = repo.clone();
        async move { repo.get(id).await }
    });
    hold.reached().await;
    assert!(redis.exists(&format!("orders:detail-lease:{id}")));

    // The writer commits and invalidates while the reader holds the old row.
    let StatusUpdate::Updated(shipped) = repo
        .update_status(id, OrderStatus::Shipped, None)
        .await
        .unwrap()
    else {
        panic!("the order exists");
    };

    // The reader goes on to store what it read.
    hold.release();
    let old = reader.await.unwrap().unwrap().unwrap();
    assert_eq!(old, order, "the reader read before the write");
    assert!(
        !redis.exists(&detail_key),
        "the stale row was stored after the write: {:?}",
        redis
            .get(&detail_key)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    );
    assert_eq!(repo.get(id).await.unwrap().unwrap(), shipped);
    assert_eq!(redis.get(&detail_key).as_deref(), Some(&shipped.body()[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_a_write_does_not_join_a_flight_that_began_before_it() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    let order = create(&repo, "Alice").await;
    let id = order.id();

    let mut hold = repo.inner().hold_next(Op::Get);
    let early = tokio::spawn({
        let repo = repo.clone();
        async move { repo.get(id).await }
    });
    hold.reached().await;
    let StatusUpdate::Updated(shipped) = repo
        .update_status(id, OrderStatus::Shipped, None)
        .await
        .unwrap()
    else {
        panic!("the order exists");
    };

    // The early flight is still held: a read that joined it would hang here
    // and then return the old row.
    let late = tokio::time::timeout(Duration::from_secs(10), repo.get(id))
        .await
        .expect("the late read does not wait for the early flight")
        .unwrap()
        .unwrap();
    assert_eq!(late, shipped);
    assert_eq!(repo.inner().calls(Op::Get), 2);

    hold.release();
    assert_eq!(early.await.unwrap().unwrap().unwrap(), order);
    assert_eq!(
        redis.get(&format!("orders:detail:{id}")).as_deref(),
        Some(&shipped.body()[..]),
        "the early reader did not overwrite the fresh entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_read_before_a_write_stores_nothing_a_later_read_can_see() {
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
    let ben: OrderDocument = create(&repo, "Ben").await;
    assert_eq!(redis.int("orders:list:version"), 2);

    let ben_id = ben.id().to_string();
    let late = tokio::time::timeout(Duration::from_secs(10), repo.list(ListQuery::default()))
        .await
        .expect("the late list does not wait for the early flight")
        .unwrap();
    assert!(text(late.whole().unwrap()).contains(&ben_id));

    hold.release();
    let old = early.await.unwrap().unwrap();
    assert!(
        !text(old.whole().unwrap()).contains(&ben_id),
        "read before the write"
    );
    assert!(
        !redis.exists("orders:list:1"),
        "a fill under a superseded version stores nothing"
    );
    assert_eq!(
        redis.get("orders:list:2").as_deref(),
        Some(&late.whole().unwrap()[..])
    );
    let again = repo.list(ListQuery::default()).await.unwrap();
    assert!(text(again.whole().unwrap()).contains(&ben_id));
    assert_eq!(repo.inner().calls(Op::List), 2, "the last list was a hit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_read_before_a_reset_cannot_resurrect_the_order() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    let order = create(&repo, "Alice").await;
    let id = order.id();

    let mut hold = repo.inner().hold_next(Op::Get);
    let reader = tokio::spawn({
        let repo = repo.clone();
        async move { repo.get(id).await }
    });
    hold.reached().await;
    repo.reset().await.unwrap();
    assert!(
        redis.exists(&format!("orders:detail-lease:{id}")),
        "a reset leaves leases alone: only the epoch can stop this reader"
    );

    hold.release();
    assert_eq!(reader.await.unwrap().unwrap().unwrap(), order);
    assert!(
        !redis.exists(&format!("orders:detail:{id}")),
        "a row read before the reset was stored after it"
    );
    assert_eq!(repo.get(id).await.unwrap(), None);
}

/// A list body this process already holds is reused only while Redis still
/// stores that very payload (same stamp): after Redis loses everything (a
/// flush, a restart) and another instance fills the same version number
/// with newer data, the held copy must not be served.
#[tokio::test]
async fn a_held_list_copy_is_never_served_once_redis_stores_another_payload() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let database = MemoryRepo::default();
    let one = CachedRepository::new(database.clone(), redis.config()).unwrap();
    let two = CachedRepository::new(database.clone(), redis.config()).unwrap();
    create(&one, "First").await;
    let version = redis.int("orders:list:version");
    let first = one.list(ListQuery::default()).await.unwrap();
    let again = one.list(ListQuery::default()).await.unwrap();
    assert_eq!(again, first, "a hit, served from the held copy");
    assert!(redis.exists(&format!("orders:list-stamp:{version}")));

    // Redis loses everything of this prefix, including the version, and
    // the database changes behind the cache's back.
    for key in redis.scan("*") {
        redis.del(key.strip_prefix(&redis.key("")).unwrap());
    }
    for _ in 0..=version {
        // Bring the version back to the number `one` holds a copy for.
        create(&database_only(&database), "Behind").await;
    }
    redis.set("orders:list:version", version.to_string().as_bytes());
    let filled = two.list(ListQuery::default()).await.unwrap();
    assert_ne!(filled, first);

    let seen = one.list(ListQuery::default()).await.unwrap();
    assert_eq!(
        text(seen.whole().unwrap()),
        text(filled.whole().unwrap()),
        "the held copy was not reused"
    );
    let truth = database.list(ListQuery::default()).await.unwrap();
    assert_eq!(text(seen.whole().unwrap()), text(truth.whole().unwrap()));
}

/// Writes straight to the database, as a process without the cache would.
fn database_only(database: &MemoryRepo) -> CachedRepository<MemoryRepo> {
    let config = cache::CacheConfig {
        disabled: true,
        ..Default::default()
    };
    CachedRepository::new(database.clone(), config).unwrap()
}
