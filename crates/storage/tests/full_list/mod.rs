//! The full list at a size CI can run (20,000 orders): held as chunks,
//! brought up to date from the change log, spooled past its memory budget
//! and sent as parts. Every case compares against what a fresh instance
//! reads by walking the table.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use diesel_async::SimpleAsyncConnection;
use domain::{ListBody, ListDocument, ListQuery, OrderId, OrderRepository, OrderStatus, RepoError};
use serde_json::Value;
use storage::{FullListConfig, FullListStats, Storage};

use crate::support::TestDb;

const ORDERS: u64 = 20_000;

/// Lists sent as parts from 64 KiB, 2 MiB held in memory: a 20,000-order
/// list (6 MB) then has chunks in memory and in the spool.
fn parts_and_spool(dir: &std::path::Path) -> FullListConfig {
    FullListConfig {
        stream_above: 64 * 1024,
        memory_budget: 2 * 1024 * 1024,
        spool_dir: dir.to_path_buf(),
        keep: true,
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

/// What an instance that never held a list reads from the tables alone: a
/// walk.
async fn walked(db: &TestDb) -> Vec<u8> {
    let fresh = db
        .another_instance(FullListConfig {
            stream_above: usize::MAX,
            keep: false,
            ..FullListConfig::default()
        })
        .await;
    let bytes = full(&fresh).await.to_bytes().unwrap().to_vec();
    assert_eq!(fresh.full_list_stats().loaded, 0);
    bytes
}

/// The list of an instance that has just started, with what it read and
/// then kept.
async fn fresh_list(db: &TestDb, spool: &std::path::Path) -> (Vec<u8>, FullListStats) {
    let fresh = db.another_instance(parts_and_spool(spool)).await;
    let bytes = full(&fresh).await.to_bytes().unwrap().to_vec();
    assert!(fresh.full_list_kept(Duration::from_secs(30)).await);
    (bytes, fresh.full_list_stats())
}

/// Lists on `storage` and waits for its keeper to write the list.
async fn list_and_keep(storage: &Storage) -> FullListStats {
    full(storage).await;
    assert!(
        storage.full_list_kept(Duration::from_secs(30)).await,
        "the keeper never finished"
    );
    storage.full_list_stats()
}

/// Status changes and deletes spread over the table, and `creates` new
/// orders; returns the ids left.
async fn writes_everywhere(storage: &Storage, ids: &[String], round: usize, creates: usize) {
    for (n, id) in ids.iter().enumerate().skip(round * 7 + 1).step_by(3_001) {
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
    for n in 0..creates {
        storage
            .create(
                crate::new_order(&format!("kept {round} {n}"), &[("Pen", 1)]),
                None,
            )
            .await
            .unwrap();
    }
}

/// The list kept in the database spares a new instance the walk: it loads
/// the kept chunks and reads again only those the log says changed since
/// they were kept (each as of its own seq, as the keeper rewrites only
/// what changed), and its list is the walk's, byte for byte. A seed and a
/// reset go through the same way.
pub async fn a_new_instance_starts_from_the_kept_list(db: &TestDb) {
    let spool = tempfile::tempdir().unwrap();
    let storage = db.another_instance(parts_and_spool(spool.path())).await;
    storage.seed(ORDERS).await.unwrap();
    let ids = ids(&parsed(&full(&storage).await));
    let kept = list_and_keep(&storage).await;
    // 20 chunks of 1,000 and the empty oldest one.
    assert_eq!(kept.kept, 21, "{kept:?}");

    let (bytes, stats) = fresh_list(db, spool.path()).await;
    assert_eq!(bytes, walked(db).await);
    assert_eq!(
        (stats.walked, stats.loaded, stats.reread, stats.spliced),
        (0, 21, 0, 0)
    );

    let mut kept_before = kept.kept;
    for round in 0..3 {
        writes_everywhere(&storage, &ids, round, 300).await;
        let (bytes, stats) = fresh_list(db, spool.path()).await;
        assert_eq!(bytes, walked(db).await, "round {round}");
        assert_eq!(stats.walked, 0, "round {round}: {stats:?}");
        assert!(stats.loaded >= 21, "round {round}: {stats:?}");
        // Seven chunks had a status change or a delete, plus the newest.
        assert!(
            (1..=8).contains(&(stats.reread + stats.spliced)),
            "round {round}: {stats:?}"
        );
        // The fresh instance's keeper wrote what changed; the first's
        // finds nothing more to write.
        assert!(
            (1..=9).contains(&stats.kept),
            "round {round}: only what changed is written again: {stats:?}"
        );
        let kept = list_and_keep(&storage).await;
        assert_eq!(kept.kept, kept_before, "round {round}: {kept:?}");
        kept_before = kept.kept;
    }

    storage.seed(3_000).await.unwrap();
    let (bytes, stats) = fresh_list(db, spool.path()).await;
    assert_eq!(bytes, walked(db).await);
    assert_eq!(stats.walked, 0, "{stats:?}");
    assert_eq!(stats.reread, 1, "only the newest chunk: {stats:?}");

    storage.reset().await.unwrap();
    let (bytes, stats) = fresh_list(db, spool.path()).await;
    assert_eq!(&bytes[..], b"{\"total_orders\":0,\"orders\":[]}");
    assert_eq!(stats.loaded, 0, "a reset drops the kept list: {stats:?}");
}

/// A stopping instance waits for the walk in progress and its keeper:
/// the next instance then loads the list instead of walking it again.
pub async fn a_stopping_instance_keeps_the_list_it_is_building(db: &TestDb) {
    let spool = tempfile::tempdir().unwrap();
    db.storage.seed(ORDERS).await.unwrap();
    let storage = db.another_instance(parts_and_spool(spool.path())).await;
    let walking = {
        let storage = storage.clone();
        tokio::spawn(async move { full(&storage).await })
    };
    // Well inside the walk of 20,000 orders.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(storage.full_list_kept(Duration::from_secs(30)).await);
    assert!(walking.is_finished(), "the walk was not waited for");
    let kept = storage.full_list_stats();
    assert_eq!((kept.walked, kept.kept), (21, 21), "{kept:?}");
    let (bytes, stats) = fresh_list(db, spool.path()).await;
    assert_eq!(bytes, walked(db).await);
    assert_eq!((stats.walked, stats.loaded), (0, 21), "{stats:?}");
}

/// Kept chunks that do not fit together (a keeper cut short, another
/// walk's bounds) or whose body does not match its digest are not used: the ids above the
/// last good one are walked, the list is still the walk's, and the next
/// keeper writes what was missing.
pub async fn kept_chunks_missing_or_damaged_are_walked_again(db: &TestDb) {
    let spool = tempfile::tempdir().unwrap();
    let storage = db.another_instance(parts_and_spool(spool.path())).await;
    storage.seed(ORDERS).await.unwrap();
    let ids = ids(&parsed(&full(&storage).await));
    list_and_keep(&storage).await;
    // Chunk n of a walk holds ids[1000n..1000n + 1000], its floor the last.
    let floor = |chunk: usize| &ids[chunk * 1000 + 999];
    db.execute(&format!(
        "DELETE FROM list_chunks WHERE from_id IN ('{}', '{}')",
        floor(0),
        floor(1)
    ))
    .await;
    let fresh = db.another_instance(parts_and_spool(spool.path())).await;
    let bytes = full(&fresh).await.to_bytes().unwrap().to_vec();
    assert_eq!(bytes, walked(db).await);
    let stats = fresh.full_list_stats();
    assert_eq!((stats.walked, stats.loaded), (2, 19), "{stats:?}");
    let kept = list_and_keep(&fresh).await;
    assert_eq!(kept.kept, 2, "the missing ones are written: {kept:?}");

    db.execute(&format!(
        "UPDATE list_chunks SET digest = digest + 1 WHERE from_id = '{}'",
        floor(4)
    ))
    .await;
    let fresh = db.another_instance(parts_and_spool(spool.path())).await;
    let bytes = full(&fresh).await.to_bytes().unwrap().to_vec();
    assert_eq!(bytes, walked(db).await);
    let stats = fresh.full_list_stats();
    // Chunks 5 to 19 and the empty oldest one are used; 0 to 4 walked.
    assert_eq!((stats.walked, stats.loaded), (5, 16), "{stats:?}");

    assert!(fresh.full_list_kept(Duration::from_secs(30)).await);
    let (bytes, stats) = fresh_list(db, spool.path()).await;
    assert_eq!(bytes, walked(db).await);
    assert_eq!((stats.walked, stats.loaded), (0, 21), "repaired: {stats:?}");
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
        // A few new orders land in the newest chunk, which is spliced; more
        // make it read again, and more still split it.
        let creates = [0, 30, 700, 2_100][round];
        for n in 0..creates {
            storage
                .create(
                    crate::new_order(&format!("round {round} {n}"), &[("Pen", 1)]),
                    None,
                )
                .await
                .unwrap();
        }
        let before = storage.full_list_stats();
        let updated = full(&storage).await;
        let bytes = updated.to_bytes().unwrap();
        well_formed(&parsed(&updated));
        assert_eq!(bytes.to_vec(), walked(db).await, "round {round}");
        let after = storage.full_list_stats();
        let (spliced, reread) = (after.spliced - before.spliced, after.reread - before.reread);
        // Ten chunks had a change each; the newest also had the creates.
        match creates {
            0 | 30 => assert_eq!((spliced, reread), (10, 0), "round {round}"),
            _ => assert_eq!((spliced, reread), (9, 1), "round {round}"),
        }
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

/// A cold walk that takes longer than any one read may still finishes,
/// and serves the readers queued behind it: they wait as long as it moves
/// (with the walk or the readers bounded by a read's wait, a table that
/// large could never be listed, as 1,000,000 orders on MariaDB were not).
pub async fn a_walk_longer_than_a_readers_wait_serves_its_readers(db: &TestDb) {
    db.storage.seed(ORDERS).await.unwrap();
    // Reads wait at most 75 ms: far less than a walk of 20,000 orders, far
    // more than one of its statements.
    let storage = db.impatient_instance(Duration::from_millis(25)).await;
    let began = std::time::Instant::now();
    let first = tokio::spawn({
        let storage = storage.clone();
        async move { storage.list(ListQuery::default()).await }
    });
    // This one queues behind the walk in progress.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let second = storage.list(ListQuery::default()).await;
    let first = first.await.unwrap();
    assert!(
        began.elapsed() > Duration::from_millis(150),
        "the walk fit one reader's wait: the case shows nothing"
    );
    for listed in [first, second] {
        let listed = listed.expect("a reader behind a walk that moves is served");
        assert_eq!(well_formed(&parsed(&listed)).len() as u64, ORDERS);
    }
}

/// Readers queued behind a refresh that stops moving (a statement that
/// never ends) hear that the database is unavailable after about one
/// read's wait, all of them: not each after the attempts of those ahead.
/// And the list is served again once the database answers.
pub async fn readers_behind_a_stalled_refresh_are_answered(db: &TestDb) {
    db.storage.seed(100).await.unwrap();
    // Reads wait at most 600 ms.
    let storage = db.impatient_instance(Duration::from_millis(200)).await;
    // A write lock on the log's head stalls the refresh's first statement.
    let mut lock = db.mysql_connection().await;
    lock.batch_execute("LOCK TABLES change_head WRITE")
        .await
        .unwrap();
    let began = std::time::Instant::now();
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let result = storage.list(ListQuery::default()).await;
                (result, began.elapsed())
            })
        })
        .collect();
    for reader in readers {
        let (result, took) = reader.await.unwrap();
        assert!(
            matches!(result, Err(RepoError::Unavailable(_))),
            "a stalled refresh is a 503: {result:?}"
        );
        // Two refreshes at most: the one in progress on arrival, and one
        // that began after (eight in turn would take 4.8 s).
        assert!(
            took < Duration::from_millis(2_000),
            "answered after {took:?}"
        );
    }
    lock.batch_execute("UNLOCK TABLES").await.unwrap();
    let listed = storage.list(ListQuery::default()).await.unwrap();
    assert_eq!(well_formed(&parsed(&listed)).len(), 100);
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
    // SQLite checkpoints every 1,000 pages (4 MiB) on commit, the storage's
    // task every 100 ms, and SQLite then writes the log from its start
    // again; a reader holding a snapshot would stop that, and 1,500 creates
    // would grow it by tens of MiB.
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
