//! `rediss://` against a `redis-server` of the test's own that takes TLS
//! only, with a certificate from a CA the test made: hits with that CA,
//! nothing failed and nothing cached with any other. The fault tests run
//! over TLS too (`faults.rs`).

use std::time::{Duration, Instant};

use cache::CacheConfig;
use domain::{CacheState, ListQuery, OrderRepository};

use crate::support::{Op, RedisProcess, cached, create, text, tls_server};

const TIMEOUT: Duration = Duration::from_millis(100);
/// One timeout, plus scheduling on a machine shared with compilers.
const BOUND: Duration = Duration::from_millis(100 + 250);

async fn timed<T>(trusted: &str, call: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let output = call.await;
    let took = start.elapsed();
    assert!(took < BOUND, "a call trusting {trusted} took {took:?}");
    output
}

fn server() -> Option<RedisProcess> {
    tokio::task::block_in_place(tls_server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_gets_hits_over_tls_with_a_private_ca() {
    let Some(server) = server() else {
        return;
    };
    assert!(server.url().starts_with("rediss://"));
    let look = server.client();
    let repo = cached(look.config());
    let alice = create(&repo, "Alice").await;
    for _ in 0..2 {
        assert_eq!(repo.get(alice.id()).await.unwrap(), Some(alice.clone()));
        let list = repo.list(ListQuery::default()).await.unwrap();
        assert!(text(list.whole().unwrap()).contains(&alice.id().to_string()));
    }
    let stats = repo.stats().cache.unwrap();
    assert_eq!((stats.detail.hits, stats.list.hits), (1, 1));
    assert_eq!((stats.detail.errors, stats.list.errors), (0, 0));
    assert_eq!(repo.inner().calls(Op::Get), 1);
    assert_eq!(repo.inner().calls(Op::List), 1);
    assert_eq!(
        look.get(&format!("orders:detail:{}", alice.id()))
            .as_deref(),
        Some(&alice.body()[..]),
        "stored through the TLS port, the only one the server has"
    );
    assert_eq!(repo.health().await.cache, CacheState::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_no_trusted_ca_signed_fails_no_call_and_the_database_answers() {
    let Some(server) = server() else {
        return;
    };
    let look = server.client();
    let other = server.certificates().unwrap().other_ca();
    // Another CA, then the system's authorities (which never heard of the
    // test's CA): the handshake must fail either way.
    for (trusted, ca) in [("another CA", Some(other)), ("the system's CAs", None)] {
        let repo = cached(CacheConfig {
            ca_certificates: ca,
            timeout: TIMEOUT,
            ..look.config()
        });
        let alice = create(&repo, "Alice").await;
        for _ in 0..3 {
            let found = timed(trusted, repo.get(alice.id())).await.unwrap();
            assert_eq!(found.as_ref(), Some(&alice));
            timed(trusted, repo.list(ListQuery::default()))
                .await
                .unwrap();
        }
        let stats = repo.stats().cache.unwrap();
        assert_eq!(
            (stats.detail.hits, stats.list.hits),
            (0, 0),
            "a hit trusting {trusted}"
        );
        assert!(stats.detail.errors + stats.list.errors > 0, "{trusted}");
        assert_eq!(repo.inner().calls(Op::Get), 3, "{trusted}");
        assert_eq!(repo.health().await.cache, CacheState::Unavailable);
        assert!(
            look.scan("*").is_empty(),
            "something was stored trusting {trusted}"
        );
    }
}

/// The redis crate's own URL option: `#insecure` connects without checking
/// the certificate (the user's explicit choice, as it was with native TLS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_insecure_url_option_skips_the_certificate_check() {
    let Some(server) = server() else {
        return;
    };
    let look = server.client();
    let repo = cached(CacheConfig {
        redis_url: format!("{}#insecure", server.url()),
        ca_certificates: None,
        ..look.config()
    });
    let alice = create(&repo, "Alice").await;
    repo.get(alice.id()).await.unwrap();
    assert_eq!(repo.get(alice.id()).await.unwrap(), Some(alice));
    assert_eq!(repo.stats().cache.unwrap().detail.hits, 1);
}
