pub mod memory;
pub mod redis;
pub mod tls;

use std::time::{Duration, Instant};

use cache::{CacheConfig, CachedRepository};
use domain::{CustomerName, ItemName, NewItem, NewOrder, OrderDocument, OrderRepository, Quantity};

pub use memory::{MemoryRepo, Op};
pub use redis::{RedisProcess, TestRedis};
pub use tls::Certificates;

pub type Cached = CachedRepository<MemoryRepo>;

/// A `redis-server` of the test's own that takes TLS only, with fresh
/// certificates. Blocks while it starts.
pub fn tls_server() -> Option<RedisProcess> {
    Certificates::generate().and_then(RedisProcess::start_tls)
}

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
