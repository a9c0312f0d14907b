//! The storage suite, run against SQLite and against MariaDB: every case is
//! written once and instantiated for both backends by `both_backends!`.

mod api_keys;
mod full_list;
mod support;
mod tls;

use api_keys::*;
use full_list::*;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use domain::{
    CustomerName, IdempotencyKey, ItemName, Limit, ListQuery, NewItem, NewOrder, OrderDocument,
    OrderId, OrderRepository, OrderStatus, PageRequest, Quantity, RepoError, StatusUpdate, Version,
};
use serde_json::Value;
use storage::{DatabaseUrl, Storage, StorageConfig};
use support::TestDb;

macro_rules! both_backends {
    (flavor = $flavor:literal, $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = $flavor)]
                async fn sqlite() {
                    let db = crate::support::TestDb::sqlite().await;
                    crate::$name(&db).await;
                }

                #[tokio::test(flavor = $flavor)]
                async fn mysql() {
                    let Some(db) = crate::support::TestDb::mysql().await else {
                        return;
                    };
                    crate::$name(&db).await;
                }
            }
        )*
    };
}

// actix runs its workers on current-thread runtimes: most cases run there.
both_backends!(
    flavor = "current_thread",
    create_and_get_round_trip,
    full_list_is_newest_first,
    keyset_pages_walk_every_order_once,
    status_filter,
    update_status_bumps_the_version,
    delete_cascades_to_items,
    reset_removes_everything_and_counts_it,
    seed_inserts_fake_orders,
    idempotent_create_replays_and_refuses_other_bodies,
    expired_idempotency_key_is_replaced,
    counts_match_the_rows_after_mixed_writes,
    list_stays_correct_after_changes_to_cached_orders,
    health_and_stats,
);

both_backends!(
    flavor = "current_thread",
    api_keys_are_created_listed_and_revoked,
    a_taken_prefix_is_refused_and_changes_nothing,
    another_instance_sees_keys_made_and_revoked,
    a_broken_row_is_an_error,
);

both_backends!(
    flavor = "multi_thread",
    full_list_follows_the_change_log,
    a_new_instance_starts_from_the_kept_list,
    kept_chunks_missing_or_damaged_are_walked_again,
    a_stopping_instance_keeps_the_list_it_is_building,
    a_write_during_a_full_list_build_is_seen_next,
    a_walk_longer_than_a_readers_wait_serves_its_readers,
    a_streamed_list_is_one_snapshot,
    a_slow_reader_holds_back_no_write,
    concurrent_creates_with_one_key_make_one_order,
    concurrent_writers_all_succeed,
);

// SQLite's readers never wait for a lock (WAL): a stall takes MySQL.
#[tokio::test(flavor = "multi_thread")]
async fn readers_behind_a_stalled_refresh_are_answered_on_mysql() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    readers_behind_a_stalled_refresh_are_answered(&db).await;
}

pub fn new_order(customer: &str, items: &[(&str, i64)]) -> NewOrder {
    NewOrder::new(
        CustomerName::parse(customer).unwrap(),
        items
            .iter()
            .map(|(name, quantity)| NewItem {
                name: ItemName::parse(name).unwrap(),
                quantity: Quantity::parse(*quantity).unwrap(),
            })
            .collect(),
    )
    .unwrap()
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

async fn create(storage: &Storage, customer: &str) -> OrderDocument {
    let created = storage
        .create(new_order(customer, &[("Pen", 1)]), None)
        .await
        .unwrap();
    assert!(!created.replayed);
    created.document
}

async fn list(storage: &Storage, query: ListQuery) -> Value {
    json(storage.list(query).await.unwrap().whole().unwrap())
}

fn ids(list: &Value) -> Vec<String> {
    list["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|order| order["order_id"].as_str().unwrap().to_owned())
        .collect()
}

fn filtered(status: OrderStatus) -> ListQuery {
    ListQuery {
        status: Some(status),
        page: None,
    }
}

fn page(limit: u64, after: Option<&str>, status: Option<OrderStatus>) -> ListQuery {
    ListQuery {
        status,
        page: Some(PageRequest {
            limit: Limit::new(limit).unwrap(),
            after: after.map(|cursor| domain::Cursor::decode(cursor).unwrap()),
        }),
    }
}

fn updated(update: StatusUpdate) -> OrderDocument {
    match update {
        StatusUpdate::Updated(document) => document,
        other => panic!("expected an update, got {other:?}"),
    }
}

async fn create_and_get_round_trip(db: &TestDb) {
    let storage = &db.storage;
    let order = new_order(
        "  Zoë Müller ",
        &[
            ("Mechanical Keyboard", 2),
            ("Pen", 1),
            ("Desk Lamp", 1_000_000),
        ],
    );
    let created = storage.create(order, None).await.unwrap();
    assert!(!created.replayed);
    let document = created.document;
    let body = std::str::from_utf8(document.body()).unwrap();
    let value = json(document.body());
    let created_at = value["created_at"].as_str().unwrap();
    let expected = format!(
        concat!(
            r#"{{"order_id":"{}","customer_name":"Zoë Müller","status":"received","#,
            r#""items":[{{"name":"Mechanical Keyboard","quantity":2}},{{"name":"Pen","quantity":1}},"#,
            r#"{{"name":"Desk Lamp","quantity":1000000}}],"#,
            r#""created_at":"{}","updated_at":"{}","version":1}}"#
        ),
        document.id(),
        created_at,
        created_at
    );
    assert_eq!(body, expected);
    assert!(
        created_at.ends_with('Z') && created_at.len() == 24,
        "{created_at}"
    );
    assert_eq!(document.version(), Version::FIRST);

    let fetched = storage.get(document.id()).await.unwrap().unwrap();
    assert_eq!(
        fetched.body(),
        document.body(),
        "get returns the bytes create did"
    );
    assert_eq!(fetched.version(), Version::FIRST);

    assert!(storage.get(OrderId::new()).await.unwrap().is_none());
}

async fn full_list_is_newest_first(db: &TestDb) {
    let storage = &db.storage;
    let empty = storage.list(ListQuery::default()).await.unwrap();
    assert_eq!(
        empty.whole().unwrap(),
        &b"{\"total_orders\":0,\"orders\":[]}"[..]
    );

    let mut made = Vec::new();
    for i in 0..5 {
        made.push(
            create(storage, &format!("Customer {i}"))
                .await
                .id()
                .to_string(),
        );
    }
    let listed = list(storage, ListQuery::default()).await;
    assert_eq!(listed["total_orders"], 5);
    made.reverse();
    assert_eq!(ids(&listed), made);
    assert!(
        listed.get("next_cursor").is_none(),
        "no cursor without a page"
    );
    assert_eq!(listed["orders"][0]["items"][0]["name"], "Pen");
}

async fn keyset_pages_walk_every_order_once(db: &TestDb) {
    let storage = &db.storage;
    let mut made = Vec::new();
    for i in 0..25 {
        let document = create(storage, &format!("Customer {i}")).await;
        if i % 3 == 0 {
            storage
                .update_status(document.id(), OrderStatus::Shipped, None)
                .await
                .unwrap();
        }
        made.push(document.id().to_string());
    }
    made.reverse();

    for status in [None, Some(OrderStatus::Shipped)] {
        let expected = match status {
            None => made.clone(),
            Some(status) => ids(&list(storage, filtered(status)).await),
        };
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page_body = list(storage, page(7, cursor.as_deref(), status)).await;
            pages += 1;
            assert_eq!(
                page_body["total_orders"],
                expected.len(),
                "total on page {pages}"
            );
            let page_ids = ids(&page_body);
            assert!(page_ids.len() <= 7);
            seen.extend(page_ids);
            match &page_body["next_cursor"] {
                Value::Null => break,
                Value::String(next) => cursor = Some(next.clone()),
                other => panic!("next_cursor is {other}"),
            }
            assert!(pages < 10, "the walk does not end");
        }
        assert_eq!(
            seen, expected,
            "every order once, newest first ({status:?})"
        );
        assert_eq!(pages, expected.len().div_ceil(7).max(1));
        let unique: HashSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len());
    }
    assert_eq!(
        ids(&list(storage, filtered(OrderStatus::Shipped)).await).len(),
        9,
        "orders 0, 3, ..., 24 were shipped"
    );

    // A cursor past the oldest order gives an empty last page.
    let oldest = made.last().unwrap().replace('-', "");
    let after_oldest = list(storage, page(7, Some(&oldest), None)).await;
    assert_eq!(after_oldest["orders"].as_array().unwrap().len(), 0);
    assert_eq!(after_oldest["next_cursor"], Value::Null);
    assert_eq!(after_oldest["total_orders"], 25);
}

async fn status_filter(db: &TestDb) {
    let storage = &db.storage;
    let mut shipped = Vec::new();
    for i in 0..6 {
        let document = create(storage, &format!("Customer {i}")).await;
        if i % 2 == 1 {
            storage
                .update_status(document.id(), OrderStatus::Shipped, None)
                .await
                .unwrap();
            shipped.push(document.id().to_string());
        }
    }
    shipped.reverse();
    let listed = list(storage, filtered(OrderStatus::Shipped)).await;
    assert_eq!(listed["total_orders"], 3);
    assert_eq!(ids(&listed), shipped);
    assert!(
        listed["orders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|order| order["status"] == "shipped" && order["items"][0]["name"] == "Pen")
    );
    assert_eq!(
        list(storage, filtered(OrderStatus::Received)).await["total_orders"],
        3
    );
    let none = list(storage, filtered(OrderStatus::Cancelled)).await;
    assert_eq!(none["total_orders"], 0);
    assert_eq!(none["orders"], Value::Array(vec![]));
}

async fn update_status_bumps_the_version(db: &TestDb) {
    let storage = &db.storage;
    let document = create(storage, "Alice").await;
    let before = json(document.body());
    tokio::time::sleep(Duration::from_millis(5)).await;

    let first = updated(
        storage
            .update_status(document.id(), OrderStatus::Shipped, None)
            .await
            .unwrap(),
    );
    let after = json(first.body());
    assert_eq!(first.version(), Version::new(2));
    assert_eq!(after["version"], 2);
    assert_eq!(after["status"], "shipped");
    assert_eq!(after["created_at"], before["created_at"]);
    assert!(after["updated_at"].as_str().unwrap() > before["updated_at"].as_str().unwrap());
    assert_eq!(after["items"], before["items"]);
    assert_eq!(
        storage.get(document.id()).await.unwrap().unwrap().body(),
        first.body()
    );

    // If-Match with a version that is no longer current.
    let stale = storage
        .update_status(document.id(), OrderStatus::Delivered, Some(Version::FIRST))
        .await
        .unwrap();
    assert_eq!(
        stale,
        StatusUpdate::VersionMismatch {
            current: Version::new(2)
        }
    );
    let current = updated(
        storage
            .update_status(document.id(), OrderStatus::Delivered, Some(Version::new(2)))
            .await
            .unwrap(),
    );
    assert_eq!(current.version(), Version::new(3));

    // The same status again is still a change request.
    let again = updated(
        storage
            .update_status(document.id(), OrderStatus::Delivered, None)
            .await
            .unwrap(),
    );
    assert_eq!(again.version(), Version::new(4));

    assert_eq!(
        storage
            .update_status(OrderId::new(), OrderStatus::Shipped, None)
            .await
            .unwrap(),
        StatusUpdate::NotFound
    );
    assert_eq!(
        list(storage, filtered(OrderStatus::Delivered)).await["total_orders"],
        1
    );
    assert_eq!(
        list(storage, page(10, None, Some(OrderStatus::Delivered))).await["total_orders"],
        1
    );
    assert_eq!(
        list(storage, page(10, None, Some(OrderStatus::Shipped))).await["total_orders"],
        0
    );
}

async fn delete_cascades_to_items(db: &TestDb) {
    let storage = &db.storage;
    let kept = create(storage, "Kept").await;
    let doomed = storage
        .create(new_order("Doomed", &[("A", 1), ("B", 2), ("C", 3)]), None)
        .await
        .unwrap()
        .document;
    assert_eq!(storage.count().await.unwrap(), (2, 4));

    assert!(storage.delete(doomed.id()).await.unwrap());
    assert!(storage.get(doomed.id()).await.unwrap().is_none());
    assert_eq!(
        storage.count().await.unwrap(),
        (1, 1),
        "its items went with it"
    );
    assert!(!storage.delete(doomed.id()).await.unwrap(), "already gone");
    assert!(!storage.delete(OrderId::new()).await.unwrap());

    let listed = list(storage, ListQuery::default()).await;
    assert_eq!(ids(&listed), vec![kept.id().to_string()]);
    assert_eq!(list(storage, page(5, None, None)).await["total_orders"], 1);
}

async fn reset_removes_everything_and_counts_it(db: &TestDb) {
    let storage = &db.storage;
    for i in 0..3 {
        storage
            .create(new_order(&format!("C{i}"), &[("A", 1), ("B", 1)]), None)
            .await
            .unwrap();
    }
    let key = IdempotencyKey::parse("reset-key", &new_order("K", &[("A", 1)])).unwrap();
    storage
        .create(new_order("K", &[("A", 1)]), Some(key.clone()))
        .await
        .unwrap();
    assert_eq!(storage.seed(10).await.unwrap(), 10);
    let (_, all_items) = storage.count().await.unwrap();
    let fake_items = all_items - 7;
    assert!((10..=50).contains(&fake_items), "{fake_items}");

    let outcome = storage.reset().await.unwrap();
    assert_eq!(outcome.orders, 14);
    assert_eq!(outcome.items, 7 + fake_items);
    assert_eq!(storage.count().await.unwrap(), (0, 0));
    assert_eq!(
        storage
            .list(ListQuery::default())
            .await
            .unwrap()
            .whole()
            .unwrap(),
        &b"{\"total_orders\":0,\"orders\":[]}"[..]
    );
    assert_eq!(list(storage, page(10, None, None)).await["total_orders"], 0);
    for status in OrderStatus::ALL {
        assert_eq!(
            list(storage, page(10, None, Some(status))).await["total_orders"],
            0
        );
    }
    // The keys went too: the same key now creates a new order.
    let again = storage
        .create(new_order("K", &[("A", 1)]), Some(key))
        .await
        .unwrap();
    assert!(!again.replayed);
    assert_eq!(storage.reset().await.unwrap().orders, 1);
}

async fn seed_inserts_fake_orders(db: &TestDb) {
    let storage = &db.storage;
    // Above one chunk of orders and of items, to cross chunk boundaries.
    assert_eq!(storage.seed(12_000).await.unwrap(), 12_000);
    let (orders, items) = storage.count().await.unwrap();
    assert_eq!(orders, 12_000);
    assert!((12_000..=60_000).contains(&items), "{items} items");

    // Every order as the fake rules make them, read back whole.
    let all = list(storage, ListQuery::default()).await;
    assert_eq!(all["total_orders"], 12_000, "the counters");
    let listed = all["orders"].as_array().unwrap();
    assert_eq!(listed.len(), 12_000);
    let mut listed_items = 0;
    let mut per_status = std::collections::HashMap::<&str, u64>::new();
    for order in listed {
        assert!(domain::fake::CUSTOMERS.contains(&order["customer_name"].as_str().unwrap()));
        assert_eq!(order["version"], 1);
        *per_status
            .entry(order["status"].as_str().unwrap())
            .or_default() += 1;
        let order_items = order["items"].as_array().unwrap();
        assert!((1..=5).contains(&order_items.len()), "{order}");
        for item in order_items {
            assert!(domain::fake::PRODUCTS.contains(&item["name"].as_str().unwrap()));
            assert!((1..=5).contains(&item["quantity"].as_u64().unwrap()));
        }
        listed_items += order_items.len() as u64;
    }
    assert_eq!(listed_items, items);
    let unique: HashSet<String> = ids(&all).into_iter().collect();
    assert_eq!(unique.len(), 12_000);

    // A seeded order reads back by id as it was listed.
    let sample = &listed[4321];
    let id: OrderId = sample["order_id"].as_str().unwrap().parse().unwrap();
    let stored = storage.get(id).await.unwrap().unwrap();
    assert_eq!(&json(stored.body()), sample);

    // Each status's counters equal the orders of that status really stored.
    let mut sum = 0;
    for status in OrderStatus::ALL {
        let total = list(storage, page(1, None, Some(status))).await["total_orders"]
            .as_u64()
            .unwrap();
        let stored = per_status.get(status.as_str()).copied().unwrap_or(0);
        assert_eq!(total, stored, "{status}");
        if domain::fake::STATUSES.contains(&status) {
            // 1 in 5 each: 2,400 expected; 2,000 is > 8 standard deviations off.
            assert!(total > 2_000 && total < 2_800, "{status}: {total}");
        } else {
            assert_eq!(total, 0, "{status} is never seeded");
        }
        sum += total;
    }
    assert_eq!(sum, 12_000);
}

async fn idempotent_create_replays_and_refuses_other_bodies(db: &TestDb) {
    let storage = &db.storage;
    let body = new_order("Alice", &[("Pen", 2)]);
    let key = IdempotencyKey::parse("key-1", &body).unwrap();
    let first = storage
        .create(body.clone(), Some(key.clone()))
        .await
        .unwrap();
    assert!(!first.replayed);

    let retry = storage
        .create(body.clone(), Some(key.clone()))
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(retry.document.body(), first.document.body());
    assert_eq!(retry.document.id(), first.document.id());
    assert_eq!(
        storage.count().await.unwrap(),
        (1, 1),
        "nothing new was created"
    );

    let other = new_order("Alice", &[("Pen", 3)]);
    let reused = IdempotencyKey::parse("key-1", &other).unwrap();
    assert!(matches!(
        storage.create(other.clone(), Some(reused)).await,
        Err(RepoError::IdempotencyMismatch)
    ));
    // Keys are exact: another key, or none, creates.
    let key_2 = IdempotencyKey::parse("key-1 ", &other).unwrap();
    assert!(
        !storage
            .create(other.clone(), Some(key_2))
            .await
            .unwrap()
            .replayed
    );
    assert!(!storage.create(body, None).await.unwrap().replayed);
    assert_eq!(storage.count().await.unwrap().0, 3);
    assert_eq!(list(storage, page(10, None, None)).await["total_orders"], 3);
}

async fn expired_idempotency_key_is_replaced(db: &TestDb) {
    let storage = &db.storage;
    let body = new_order("Alice", &[("Pen", 2)]);
    let key = IdempotencyKey::parse("old-key", &body).unwrap();
    let first = storage.create(body, Some(key)).await.unwrap();
    // 25 hours ago.
    db.execute("UPDATE idempotency_keys SET created_at = created_at - 90000000")
        .await;

    let other = new_order("Bob", &[("Lamp", 1)]);
    let reused = IdempotencyKey::parse("old-key", &other).unwrap();
    let second = storage
        .create(other.clone(), Some(reused.clone()))
        .await
        .unwrap();
    assert!(!second.replayed, "an expired key no longer binds");
    assert_ne!(second.document.id(), first.document.id());
    let replay = storage.create(other, Some(reused)).await.unwrap();
    assert!(replay.replayed, "the key now belongs to the new request");
    assert_eq!(replay.document.body(), second.document.body());
    assert_eq!(storage.count().await.unwrap().0, 2);
}

async fn concurrent_creates_with_one_key_make_one_order(db: &TestDb) {
    let storage = &db.storage;
    let body = new_order("Racer", &[("Pen", 1)]);
    let key = IdempotencyKey::parse("race", &body).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let storage = storage.clone();
            let body = body.clone();
            let key = key.clone();
            tokio::spawn(async move { storage.create(body, Some(key)).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap().unwrap());
    }
    assert_eq!(
        results.iter().filter(|created| !created.replayed).count(),
        1
    );
    assert!(
        results
            .iter()
            .all(|created| created.document.body() == results[0].document.body())
    );
    assert_eq!(storage.count().await.unwrap(), (1, 1));
    assert_eq!(list(storage, page(10, None, None)).await["total_orders"], 1);
}

async fn concurrent_writers_all_succeed(db: &TestDb) {
    let storage = &db.storage;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let created = storage
                    .create(new_order(&format!("Writer {i}"), &[("Pen", 1)]), None)
                    .await?;
                let id = created.document.id();
                storage
                    .update_status(id, OrderStatus::Processing, None)
                    .await?;
                let last = storage
                    .update_status(id, OrderStatus::Shipped, Some(Version::new(2)))
                    .await?;
                Ok::<_, RepoError>(last)
            })
        })
        .collect();
    for task in tasks {
        let last = task.await.unwrap().unwrap();
        assert_eq!(updated(last).version(), Version::new(3));
    }
    assert_eq!(storage.count().await.unwrap(), (50, 50));
    assert_eq!(
        list(storage, page(10, None, Some(OrderStatus::Shipped))).await["total_orders"],
        50
    );
    assert_eq!(
        list(storage, page(10, None, Some(OrderStatus::Received))).await["total_orders"],
        0
    );
}

async fn counts_match_the_rows_after_mixed_writes(db: &TestDb) {
    let storage = &db.storage;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(create(storage, &format!("C{i}")).await.id());
    }
    assert_eq!(storage.seed(50).await.unwrap(), 50);
    for (i, id) in ids.iter().enumerate().take(12) {
        let status = OrderStatus::ALL[i % OrderStatus::ALL.len()];
        storage.update_status(*id, status, None).await.unwrap();
    }
    for id in ids.iter().skip(8).take(5) {
        assert!(storage.delete(*id).await.unwrap());
    }
    let listed = list(storage, ListQuery::default()).await;
    for order in listed["orders"].as_array().unwrap().iter().take(7) {
        let id: OrderId = order["order_id"].as_str().unwrap().parse().unwrap();
        storage
            .update_status(id, OrderStatus::Cancelled, None)
            .await
            .unwrap();
    }

    let (orders, _) = storage.count().await.unwrap();
    assert_eq!(orders, 65);
    assert_eq!(
        list(storage, page(3, None, None)).await["total_orders"],
        orders
    );
    let mut sum = 0;
    for status in OrderStatus::ALL {
        let rows = ids_of_status(storage, status).await;
        let counted = list(storage, page(3, None, Some(status))).await["total_orders"]
            .as_u64()
            .unwrap();
        assert_eq!(counted, rows, "the count of {status} matches its rows");
        sum += counted;
    }
    assert_eq!(sum, orders);
}

async fn ids_of_status(storage: &Storage, status: OrderStatus) -> u64 {
    list(storage, filtered(status)).await["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|order| order["status"] == status.as_str())
        .count() as u64
}

/// Pages are joined from cached fragments; after changes they must equal a
/// list made from fresh reads of every order. (The full list follows the
/// change log instead, which a change behind the service's back bypasses.)
async fn list_stays_correct_after_changes_to_cached_orders(db: &TestDb) {
    let storage = &db.storage;
    let mut made = Vec::new();
    for i in 0..10 {
        made.push(create(storage, &format!("C{i}")).await.id());
    }
    let before = storage.list(page(100, None, None)).await.unwrap();
    assert_eq!(ids(&json(before.whole().unwrap())).len(), 10);

    storage
        .update_status(made[3], OrderStatus::Ready, None)
        .await
        .unwrap();
    storage
        .update_status(made[3], OrderStatus::Completed, None)
        .await
        .unwrap();
    assert!(storage.delete(made[7]).await.unwrap());
    // A change made behind the storage's back is invisible to the cache only
    // if the version did not move; bump it as a writer would.
    db.execute(&format!(
        "UPDATE orders SET customer_name = 'Renamed', version = version + 1 WHERE id = '{}'",
        made[5]
    ))
    .await;

    let after = storage.list(page(100, None, None)).await.unwrap();
    let listed = json(after.whole().unwrap());
    assert_eq!(listed["total_orders"], 9);
    let mut fresh = Vec::new();
    for id in ids(&listed) {
        let document = storage.get(id.parse().unwrap()).await.unwrap().unwrap();
        fresh.push(json(document.body()));
    }
    assert_eq!(listed["orders"], Value::Array(fresh));
    let changed = listed["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|order| order["order_id"] == made[3].to_string())
        .unwrap();
    assert_eq!(changed["status"], "completed");
    assert_eq!(changed["version"], 3);
    assert!(
        listed["orders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|order| order["customer_name"] == "Renamed")
    );
    let paged = list(storage, page(4, None, None)).await;
    assert_eq!(
        paged["orders"],
        Value::Array(listed["orders"].as_array().unwrap()[..4].to_vec())
    );
}

async fn health_and_stats(db: &TestDb) {
    let storage = &db.storage;
    let health = storage.health().await;
    assert!(health.database_ok);
    assert_eq!(health.cache, domain::CacheState::Disabled);
    let stats = storage.stats();
    assert!(stats.pool.max_size > 0);
    assert!(stats.pool.size >= 1 && stats.pool.size <= stats.pool.max_size);
    assert!(stats.cache.is_none());
    assert_eq!(db.is_mysql(), matches!(stats.pool.max_size, 16));
}

/// A database restart kills the pool's connections: the next uses may fail,
/// but only as `Unavailable`, and the pool replaces them by itself.
#[tokio::test]
async fn mysql_connections_killed_under_the_pool_are_replaced() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    let storage = &db.storage;
    let document = create(storage, "Before").await;
    db.kill_mysql_connections().await;
    let mut failures = 0;
    let fetched = loop {
        match storage.get(document.id()).await {
            Ok(fetched) => break fetched,
            Err(RepoError::Unavailable(_)) if failures < 3 => failures += 1,
            Err(error) => panic!("after {failures} failures: {error:?}"),
        }
    };
    assert_eq!(fetched.unwrap().body(), document.body());
    assert!(storage.health().await.database_ok);
}

#[tokio::test]
async fn unreachable_mysql_fails_fast_as_unavailable() {
    // Port 1 on the loopback: nobody listens, the connection is refused.
    let mut config =
        StorageConfig::new(DatabaseUrl::parse("mysql://root@127.0.0.1:1/orders").unwrap());
    config.pool_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let error = Storage::connect(&config)
        .await
        .err()
        .expect("no database there");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(RepoError::from(error), RepoError::Unavailable(_)));
}

#[tokio::test]
async fn unroutable_mysql_fails_within_the_pool_timeout() {
    // A TEST-NET-1 address (RFC 5737): packets go nowhere, so only the
    // create timeout ends the attempt.
    let mut config =
        StorageConfig::new(DatabaseUrl::parse("mysql://root@192.0.2.1:3306/orders").unwrap());
    config.pool_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let error = Storage::connect(&config)
        .await
        .err()
        .expect("no database there");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(RepoError::from(error), RepoError::Unavailable(_)));
}

#[tokio::test]
async fn sqlite_in_a_missing_directory_fails_to_connect() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/orders.db");
    let config = StorageConfig::new(DatabaseUrl::Sqlite(path));
    assert!(Storage::connect(&config).await.is_err());
}

/// Connecting twice to one database runs the migrations once.
#[tokio::test]
async fn reconnecting_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::new(DatabaseUrl::Sqlite(dir.path().join("orders.db")));
    let first = Storage::connect(&config).await.unwrap();
    let document = create(&first, "Alice").await;
    drop(first);
    let second = Storage::connect(&config).await.unwrap();
    assert_eq!(
        second.get(document.id()).await.unwrap().unwrap().body(),
        document.body()
    );
}

/// Not a check but a measurement: `cargo test -p storage --test storage --
/// --ignored --nocapture seed_100k`. Seeds 100,000 orders and times a first
/// keyset page and a page from the middle at 1,000 orders and at 101,000.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn seed_100k_timing() {
    let sqlite = TestDb::sqlite().await;
    measure("sqlite", &sqlite.storage).await;
    if let Some(mysql) = TestDb::mysql().await {
        measure("mysql", &mysql.storage).await;
    }
}

async fn measure(backend: &str, storage: &Storage) {
    assert_eq!(storage.seed(1_000).await.unwrap(), 1_000);
    let small = page_timings(storage).await;
    let started = Instant::now();
    assert_eq!(storage.seed(100_000).await.unwrap(), 100_000);
    let seeded = started.elapsed();
    let large = page_timings(storage).await;
    let started = Instant::now();
    let listed = storage.list(ListQuery::default()).await.unwrap();
    let full_list = started.elapsed();
    println!(
        "{backend}: seed of 100,000 orders {seeded:?}; full list of 101,000 {full_list:?} \
         ({} bytes); median page of 100 (first, middle, filtered): \
         at 1,000 orders {small:?}, at 101,000 orders {large:?}",
        listed.whole().unwrap().len()
    );
}

/// Median latencies of a first page, a page after a cursor in the middle,
/// and a status-filtered page, 100 orders each.
async fn page_timings(storage: &Storage) -> [Duration; 3] {
    let all = ids(&list(storage, page(1000, None, None)).await);
    let middle = all[all.len() / 2].replace('-', "");
    let queries = [
        page(100, None, None),
        page(100, Some(&middle), None),
        page(100, None, Some(OrderStatus::Shipped)),
    ];
    let mut medians = [Duration::ZERO; 3];
    for (query, median) in queries.into_iter().zip(&mut medians) {
        let mut samples = Vec::new();
        for _ in 0..21 {
            let started = Instant::now();
            storage.list(query).await.unwrap();
            samples.push(started.elapsed());
        }
        samples.sort();
        *median = samples[samples.len() / 2];
    }
    medians
}
