//! The full list at a size CI can run (20,000 orders): held as chunks,
//! brought up to date from the change log, spooled past its memory budget
//! and sent as parts. Every case compares against what a fresh instance
//! reads by walking the table.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use domain::{ListBody, ListDocument, ListQuery, OrderId, OrderRepository, OrderStatus};
use serde_json::Value;
use storage::{FullListConfig, Storage};

use crate::support::TestDb;

const ORDERS: u64 = 20_000;

/// Lists sent as parts from 64 KiB, 2 MiB held in memory: a 20,000-order
/// list (6 MB) then has chunks in memory and in the spool.
fn parts_and_spool(dir: &std::path::Path) -> FullListConfig {
    FullListConfig {
        stream_above: 64 * 1024,
        memory_budget: 2 * 1024 * 1024,
        spool_dir: dir.to_path_buf(),
    }
}

async fn full(storage: &Storage) -> ListDocument {
    storage.list(ListQuery::default()).await.unwrap()
}

fn parsed(document: &ListDocument) -> Value {
    serde_json::from_slice(&document.to_bytes().unwrap()).unwrap()
}

fn ids(list: &Value) -> Vec<String> {
    list["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|order| order["order_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The checks every full list passes: the total is the number of orders,
/// no order twice, newest first.
fn well_formed(list: &Value) -> Vec<String> {
    let ids = ids(list);
    assert_eq!(list["total_orders"].as_u64().unwrap(), ids.len() as u64);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an order is listed twice");
    assert!(
        ids.windows(2).all(|pair| pair[0] > pair[1]),
        "not newest first"
    );
    ids
}

/// What an instance that never held a list reads: a walk of the table.
async fn walked(db: &TestDb) -> Vec<u8> {
    let fresh = db
        .another_instance(FullListConfig {
            stream_above: usize::MAX,
            ..FullListConfig::default()
        })
        .await;
    full(&fresh).await.to_bytes().unwrap().to_vec()
}

fn order_id(text: &str) -> OrderId {
    text.parse().unwrap()
}

/// Creates, status changes and deletes all over the table, then a seed and
/// a reset: after each, the list brought up to date from the log is the
/// list a walk reads, byte for byte, and a second instance that saw none
/// of the writes agrees.
pub async fn full_list_follows_the_change_log(db: &TestDb) {
    let spool = tempfile::tempdir().unwrap();
    let storage = db.another_instance(parts_and_spool(spool.path())).await;
    let other = db.another_instance(parts_and_spool(spool.path())).await;
    storage.seed(ORDERS).await.unwrap();
    let first = full(&storage).await;
    assert!(matches!(first.body(), ListBody::Parts(_)), "sent as parts");
    let ids = well_formed(&parsed(&first));
    assert_eq!(ids.len() as u64, ORDERS);
    assert_eq!(
        full(&other).await.to_bytes().unwrap(),
        first.to_bytes().unwrap()
    );

    for round in 0..4 {
        // Orders spread over every chunk, old and new.
        for (n, id) in ids
            .iter()
            .enumerate()
            .skip(round * 7)
            .step_by(1_999)
            .take(10)
        {
            let id = order_id(id);
            if n % 2 == 0 {
                storage
                    .update_status(id, OrderStatus::Shipped, None)
                    .await
                    .unwrap();
            } else {
                assert!(storage.delete(id).await.unwrap(), "{id}");
            }
        }
        for n in 0..(round * 700) {
            storage
                .create(
                    crate::new_order(&format!("round {round} {n}"), &[("Pen", 1)]),
                    None,
                )
                .await
                .unwrap();
        }
        let updated = full(&storage).await;
        let bytes = updated.to_bytes().unwrap();
        well_formed(&parsed(&updated));
        assert_eq!(bytes.to_vec(), walked(db).await, "round {round}");
        assert_eq!(
            full(&other).await.to_bytes().unwrap(),
            bytes,
            "round {round}"
        );
    }

    storage.seed(3_000).await.unwrap();
    let seeded = full(&storage).await;
    assert_eq!(seeded.to_bytes().unwrap().to_vec(), walked(db).await);
    storage.reset().await.unwrap();
    let empty = full(&storage).await;
    assert_eq!(
        &empty.to_bytes().unwrap()[..],
        b"{\"total_orders\":0,\"orders\":[]}"
    );
    assert_eq!(
        full(&other).await.to_bytes().unwrap(),
        empty.to_bytes().unwrap()
    );
}

/// A write made while a cold build walks the table is acknowledged
/// without waiting for it, and the next read lists it.
pub async fn a_write_during_a_full_list_build_is_seen_next(db: &TestDb) {
    db.storage.seed(ORDERS).await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    let storage = db.another_instance(parts_and_spool(spool.path())).await;
    let building = {
        let storage = storage.clone();
        tokio::spawn(async move { full(&storage).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let created = storage
        .create(crate::new_order("During", &[("Pen", 1)]), None)
        .await
        .unwrap();
    let built = building.await.unwrap();
    well_formed(&parsed(&built));
    let next = parsed(&full(&storage).await);
    let listed = well_formed(&next);
    assert_eq!(listed[0], created.document.id().to_string());
    assert_eq!(listed.len() as u64, ORDERS + 1);
}

/// A cold walk that takes longer than a reader waits still finishes: the
/// readers that gave up got their error, and a later one is served from it
/// (with the walk bounded as a whole by a reader's wait, a table that
/// large could never be listed).
pub async fn a_walk_longer_than_a_readers_wait_still_serves_the_next(db: &TestDb) {
    db.storage.seed(ORDERS).await.unwrap();
    // Reads wait at most 75 ms: far less than a walk of 20,000 orders, far
    // more than one of its statements.
    let storage = db.impatient_instance(Duration::from_millis(25)).await;
    let began = std::time::Instant::now();
    assert!(
        storage.list(ListQuery::default()).await.is_err(),
        "the walk fit one reader's wait: the case shows nothing"
    );
    let listed = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(list) = storage.list(ListQuery::default()).await {
            break list;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "no walk ever finished"
        );
    };
    assert_eq!(well_formed(&parsed(&listed)).len() as u64, ORDERS);
}

/// Readers racing writers each get one snapshot: a consistent total, no
/// order twice, and every order that existed throughout. Readers at once
/// share the held bytes instead of each holding a copy.
pub async fn a_streamed_list_is_one_snapshot(db: &TestDb) {
    let spool = tempfile::tempdir().unwrap();
    let storage = db.another_instance(parts_and_spool(spool.path())).await;
    storage.seed(ORDERS).await.unwrap();
    let throughout: HashSet<String> = ids(&parsed(&full(&storage).await)).into_iter().collect();

    let writer = {
        let storage = storage.clone();
        let some: Vec<String> = throughout.iter().take(50).cloned().collect();
        tokio::spawn(async move {
            for (n, id) in some.iter().enumerate() {
                let created = storage
                    .create(crate::new_order(&format!("Racer {n}"), &[("Pen", 1)]), None)
                    .await
                    .unwrap();
                storage
                    .update_status(order_id(id), OrderStatus::Ready, None)
                    .await
                    .unwrap();
                // Only its own orders go: the others exist throughout.
                assert!(storage.delete(created.document.id()).await.unwrap());
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads < 5 {
        let (a, b) = tokio::join!(full(&storage), full(&storage));
        for document in [&a, &b] {
            let listed: HashSet<String> = well_formed(&parsed(document)).into_iter().collect();
            assert!(listed.is_superset(&throughout), "an order is missing");
        }
        if let (ListBody::Parts(a), ListBody::Parts(b)) = (a.body(), b.body())
            && a.digest() == b.digest()
        {
            assert!(
                a.parts()
                    .iter()
                    .zip(b.parts())
                    .all(|(x, y)| Arc::ptr_eq(x, y)),
                "two readers of one list share its parts"
            );
        }
        reads += 1;
    }
    writer.await.unwrap();
}

/// A list held by a reader that takes its time holds no transaction: the
/// writes go on, and on SQLite the checkpoints keep the log small.
pub async fn a_slow_reader_holds_back_no_write(db: &TestDb) {
    let spool = tempfile::tempdir().unwrap();
    let storage = db.another_instance(parts_and_spool(spool.path())).await;
    storage.seed(ORDERS).await.unwrap();
    let held = full(&storage).await;
    let ListBody::Parts(parts) = held.body() else {
        panic!("a 20,000-order list is sent as parts here");
    };
    // Read the first part, as a client that stalls after its first bytes.
    parts.parts()[0].read().unwrap();
    let wal_size = || {
        db.sqlite_wal()
            .map_or(0, |wal| std::fs::metadata(wal).map_or(0, |meta| meta.len()))
    };
    let before = wal_size();
    for n in 0..1_500 {
        tokio::time::timeout(
            Duration::from_secs(5),
            storage.create(
                crate::new_order(&format!("Writer {n}"), &[("Pen", 1)]),
                None,
            ),
        )
        .await
        .expect("a write waited behind a held list")
        .unwrap();
    }
    // SQLite checkpoints every 1,000 pages (4 MiB) and then writes the log
    // from its start again; a reader holding a snapshot would stop that,
    // and 1,500 creates would grow it by tens of MiB.
    let after = wal_size();
    assert!(
        after <= before.max(8 * 1024 * 1024),
        "the WAL grew from {before} to {after} bytes"
    );
    // The held list is still the one snapshot it was, read to its end.
    let rest = parsed(&held);
    assert_eq!(well_formed(&rest).len() as u64, ORDERS);
    assert_eq!(
        well_formed(&parsed(&full(&storage).await)).len() as u64,
        ORDERS + 1_500
    );
}
