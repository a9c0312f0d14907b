pub mod memory;
pub mod redis;

use std::time::{Duration, Instant};

use cache::{CacheConfig, CachedRepository};
use domain::{CustomerName, ItemName, NewItem, NewOrder, OrderDocument, OrderRepository, Quantity};

pub use memory::{MemoryRepo, Op};
pub use redis::{RedisProcess, TestRedis};

pub type Cached = CachedRepository<MemoryRepo>;

pub fn cached(config: CacheConfig) -> Cached {
    CachedRepository::new(MemoryRepo::default(), config).expect("a valid cache configuration")
}

pub fn new_order(customer: &str) -> NewOrder {
    NewOrder::new(
        CustomerName::parse(customer).unwrap(),
        vec![NewItem {
            name: ItemName::parse("Pen").unwrap(),
            quantity: Quantity::parse(2).unwrap(),
        }],
    )
    .unwrap()
}

pub async fn create(repo: &Cached, customer: &str) -> OrderDocument {
    repo.create(new_order(customer), None)
        .await
        .expect("create")
        .document
}

/// Waits (polling) until `condition` holds, failing after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The body as text, for readable assertion failures.
pub fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}
