//! A Redis the original service has been filling: same key names, bodies in
//! its own format (Flask's sorted keys, no `created_at`, `updated_at` or
//! `version`, no stamp beside a list). None of them is ever served; each is
//! read as a miss and replaced by our body.

use domain::{ListQuery, OrderDocument, OrderRepository, OrderStatus};

use crate::support::{Op, TestRedis, cached, create, text};

/// The original's rendering of one of our orders.
fn original_detail(order: &OrderDocument) -> String {
    format!(
        r#"{{"customer_name":"Alice","items":[{{"name":"Pen","quantity":2}}],"order_id":"{}","status":"received"}}"#,
        order.id()
    )
}

#[tokio::test]
async fn the_originals_detail_body_is_a_miss_and_is_replaced_by_ours() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    let alice = create(&repo, "Alice").await;
    let key = format!("orders:detail:{}", alice.id());
    redis.set(&key, original_detail(&alice).as_bytes());

    let served = repo.get(alice.id()).await.unwrap().unwrap();
    assert_eq!(text(served.body()), text(alice.body()));
    assert_eq!(repo.inner().calls(Op::Get), 1, "read from the database");
    assert_eq!(
        redis.get(&key).as_deref().map(text),
        Some(text(alice.body())),
        "the fill replaced the original's body"
    );
    let stats = repo.stats().cache.unwrap().detail;
    assert_eq!((stats.misses, stats.errors), (1, 0), "a miss, not an error");

    assert_eq!(repo.get(alice.id()).await.unwrap().unwrap(), alice);
    assert_eq!(repo.inner().calls(Op::Get), 1, "then a hit on our body");
}

#[tokio::test]
async fn the_originals_list_bodies_are_misses_and_are_replaced_by_ours() {
    let Some(redis) = TestRedis::shared() else {
        return;
    };
    let repo = cached(redis.config());
    let alice = create(&repo, "Alice").await;
    let detail = original_detail(&alice);
    // Flask's `jsonify` (sorted keys, compact) and `json.dumps` of a dict
    // built total first: the second even starts like our list bodies.
    let bodies = [
        format!(r#"{{"orders":[{detail}],"total_orders":1}}"#),
        format!(r#"{{"total_orders": 1, "orders": [{detail}]}}"#),
    ];
    let queries = [
        ListQuery::default(),
        ListQuery {
            status: Some(OrderStatus::Received),
            page: None,
        },
    ];
    let database = repo.inner().clone();

    for body in &bodies {
        // A new version each round, as the original's writes make.
        create(&database_writer(&database), "Behind").await;
        redis.set(
            "orders:list:version",
            (redis.int("orders:list:version") + 1)
                .to_string()
                .as_bytes(),
        );
        let version = redis.int("orders:list:version");
        for query in queries {
            let suffix = query
                .canonical()
                .map_or_else(String::new, |canonical| format!(":{canonical}"));
            let key = format!("orders:list:{version}{suffix}");
            redis.set(&key, body.as_bytes());

            let served = repo.list(query).await.unwrap();
            let truth = database.list(query).await.unwrap();
            assert_eq!(
                text(served.whole().unwrap()),
                text(truth.whole().unwrap()),
                "{key} was served"
            );
            assert_eq!(
                redis.get(&key).as_deref().map(text),
                Some(text(truth.whole().unwrap())),
                "the fill replaced the original's body under {key}"
            );
            let lists = database.calls(Op::List);
            assert_eq!(repo.list(query).await.unwrap(), served);
            assert_eq!(database.calls(Op::List), lists, "then a hit on ours");
        }
    }
    assert_eq!(repo.stats().cache.unwrap().list.errors, 0);
}

/// Writes to the database alone, as the original service would.
fn database_writer(
    database: &crate::support::MemoryRepo,
) -> cache::CachedRepository<crate::support::MemoryRepo> {
    let config = cache::CacheConfig {
        disabled: true,
        ..Default::default()
    };
    cache::CachedRepository::new(database.clone(), config).unwrap()
}
