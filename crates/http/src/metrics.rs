//! `/metrics` in the Prometheus (OpenMetrics) text format: requests by
//! route, method and status, latency histograms, and the repository's own
//! counters (cache hits, misses and errors per key space; pool use), read
//! at scrape time.

use std::fmt::Write;
use std::time::Duration;

use domain::RepoStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyCheckLabels {
    outcome: &'static str,
}

/// What an API-key check on a request came to (only requests whose route
/// looks at keys, and only when a key was shown or needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyCheck {
    Accepted,
    /// Malformed, unknown or revoked.
    Invalid,
    /// Needed and not shown.
    Missing,
    InsufficientScope,
}

impl KeyCheck {
    fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Invalid => "invalid",
            Self::Missing => "missing",
            Self::InsufficientScope => "insufficient_scope",
        }
    }
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    key_checks: Family<KeyCheckLabels, Counter>,
    rate_limited: Counter,
    rate_limit_fallbacks: Counter,
    admin_auth_failures: Counter,
    admin_auth_lockouts: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route and method",
            latency.clone(),
        );
        let key_checks = Family::<KeyCheckLabels, Counter>::default();
        registry.register(
            "api_key_checks",
            "API-key checks of requests, by outcome",
            key_checks.clone(),
        );
        let rate_limited = Counter::default();
        let rate_limit_fallbacks = Counter::default();
        let admin_auth_failures = Counter::default();
        let admin_auth_lockouts = Counter::default();
        for (name, help, counter) in [
            (
                "rate_limited_requests",
                "Requests refused with 429 by the rate limit",
                &rate_limited,
            ),
            (
                "rate_limit_fallbacks",
                "Rate-limit checks served by the per-process store because Redis failed or was skipped",
                &rate_limit_fallbacks,
            ),
            (
                "admin_auth_failures",
                "Admin requests with a wrong or missing password",
                &admin_auth_failures,
            ),
            (
                "admin_auth_lockouts",
                "Admin authentication failures that locked their client address out",
                &admin_auth_lockouts,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        Self {
            registry,
            requests,
            latency,
            key_checks,
            rate_limited,
            rate_limit_fallbacks,
            admin_auth_failures,
            admin_auth_lockouts,
        }
    }
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        // Clients may send any method token; only known ones get their own
        // series, so a client cannot grow the label set without bound.
        const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
        let method = KNOWN
            .into_iter()
            .find(|known| *known == method)
            .unwrap_or("OTHER");
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn key_check(&self, outcome: KeyCheck) {
        self.key_checks
            .get_or_create(&KeyCheckLabels {
                outcome: outcome.label(),
            })
            .inc();
    }

    pub(crate) fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    pub(crate) fn rate_limit_fallback(&self) {
        self.rate_limit_fallbacks.inc();
    }

    pub(crate) fn admin_auth_failure(&self) {
        self.admin_auth_failures.inc();
    }

    pub(crate) fn admin_auth_lockout(&self) {
        self.admin_auth_lockouts.inc();
    }

    pub fn render(&self, stats: &RepoStats) -> String {
        let mut text = String::with_capacity(8 * 1024);
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        // The repository's counters are snapshots owned by other crates, so
        // they are written here, before the closing marker.
        let body_end = text.rfind("# EOF").unwrap_or(text.len());
        text.truncate(body_end);
        write_repo_stats(&mut text, stats).expect("writing to a String cannot fail");
        text.push_str("# EOF\n");
        text
    }
}

fn write_repo_stats(out: &mut String, stats: &RepoStats) -> std::fmt::Result {
    if let Some(cache) = stats.cache {
        for (name, help, pick) in [
            ("cache_hits", "Cache lookups answered from Redis", 0),
            ("cache_misses", "Cache lookups that went to the database", 1),
            (
                "cache_errors",
                "Redis operations that failed or timed out",
                2,
            ),
        ] {
            writeln!(out, "# HELP {name} {help}.")?;
            writeln!(out, "# TYPE {name} counter")?;
            for (space, counts) in [("list", cache.list), ("detail", cache.detail)] {
                let value = [counts.hits, counts.misses, counts.errors][pick];
                writeln!(out, "{name}_total{{keyspace=\"{space}\"}} {value}")?;
            }
        }
    }
    let pool = stats.pool;
    writeln!(
        out,
        "# HELP db_pool_connections Database connections by state."
    )?;
    writeln!(out, "# TYPE db_pool_connections gauge")?;
    writeln!(
        out,
        "db_pool_connections{{state=\"idle\"}} {}",
        pool.available
    )?;
    writeln!(
        out,
        "db_pool_connections{{state=\"in_use\"}} {}",
        pool.size.saturating_sub(pool.available)
    )?;
    writeln!(
        out,
        "# HELP db_pool_max_connections Database pool capacity."
    )?;
    writeln!(out, "# TYPE db_pool_max_connections gauge")?;
    writeln!(out, "db_pool_max_connections {}", pool.max_size)?;
    writeln!(
        out,
        "# HELP db_pool_waiting Requests waiting for a database connection."
    )?;
    writeln!(out, "# TYPE db_pool_waiting gauge")?;
    writeln!(out, "db_pool_waiting {}", pool.waiting)?;
    writeln!(
        out,
        "# HELP db_pool_checkouts Database connections handed out by the pool."
    )?;
    writeln!(out, "# TYPE db_pool_checkouts counter")?;
    writeln!(out, "db_pool_checkouts_total {}", pool.checkouts)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use domain::{CacheStats, KeySpaceStats, PoolStats};

    use super::*;

    #[test]
    fn renders_requests_and_repository_counters() {
        let metrics = Metrics::default();
        metrics.observe("GET", "/orders/{order_id}", 200, Duration::from_millis(3));
        let stats = RepoStats {
            pool: PoolStats {
                max_size: 8,
                size: 3,
                available: 2,
                waiting: 0,
                checkouts: 41,
            },
            cache: Some(CacheStats {
                list: KeySpaceStats {
                    hits: 5,
                    misses: 1,
                    errors: 0,
                },
                detail: KeySpaceStats::default(),
            }),
        };
        let text = metrics.render(&stats);
        assert!(
            text.contains(
                r#"http_requests_total{method="GET",route="/orders/{order_id}",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("http_request_duration_seconds_bucket"));
        assert!(text.contains(r#"cache_hits_total{keyspace="list"} 5"#));
        assert!(text.contains(r#"db_pool_connections{state="in_use"} 1"#));
        assert!(text.contains("db_pool_checkouts_total 41"), "{text}");
        metrics.key_check(KeyCheck::Accepted);
        metrics.key_check(KeyCheck::Accepted);
        metrics.key_check(KeyCheck::Invalid);
        let text = metrics.render(&stats);
        assert!(
            text.contains(r#"api_key_checks_total{outcome="accepted"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"api_key_checks_total{outcome="invalid"} 1"#));
        assert!(text.ends_with("# EOF\n"));
        // Counted from the first scrape on, at zero until something happens.
        assert!(text.contains("rate_limited_requests_total 0"), "{text}");
        metrics.rate_limited();
        metrics.rate_limit_fallback();
        metrics.admin_auth_failure();
        metrics.admin_auth_failure();
        metrics.admin_auth_lockout();
        let text = metrics.render(&stats);
        for line in [
            "rate_limited_requests_total 1",
            "rate_limit_fallbacks_total 1",
            "admin_auth_failures_total 2",
            "admin_auth_lockouts_total 1",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }

        for junk in ["FOO1", "FOO2", "BAR"] {
            metrics.observe(junk, "unmatched", 405, Duration::from_millis(1));
        }
        let text = metrics.render(&stats);
        assert!(
            text.contains(
                r#"http_requests_total{method="OTHER",route="unmatched",status="405"} 3"#
            ),
            "{text}"
        );
        assert!(!text.contains("FOO1"));
    }
}
