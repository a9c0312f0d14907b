//! The summary the load test prints: one row per request kind with
//! requests, failures, requests/s and latency percentiles, from goose's
//! metrics.

use std::fmt;

use goose::metrics::{GooseMetrics, GooseRequestMetricTimingData};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Method and name, as `GET /orders/{id}`.
    pub request: String,
    pub requests: usize,
    pub failures: usize,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Sorted by request kind.
    pub rows: Vec<Row>,
    pub total: Row,
    pub seconds: usize,
    /// Goose's error summary: each distinct error and how often it occurred.
    pub errors: Vec<(String, usize)>,
}

impl Summary {
    pub fn from_metrics(metrics: &GooseMetrics) -> Self {
        // Goose counts whole seconds; a run shorter than one still ran.
        let seconds = metrics.duration.max(1);
        let row = |request: String, timings: &GooseRequestMetricTimingData, ok, failed| {
            let requests = ok + failed;
            Row {
                request,
                requests,
                failures: failed,
                requests_per_second: requests as f64 / seconds as f64,
                p50_ms: timings.percentile_us(0.50) as f64 / 1000.0,
                p95_ms: timings.percentile_us(0.95) as f64 / 1000.0,
                p99_ms: timings.percentile_us(0.99) as f64 / 1000.0,
            }
        };
        let mut all = GooseRequestMetricTimingData::default();
        let (mut ok, mut failed) = (0, 0);
        let mut rows: Vec<Row> = metrics
            .requests
            .iter()
            .map(|(name, aggregate)| {
                merge(&mut all, &aggregate.raw_data);
                ok += aggregate.success_count;
                failed += aggregate.fail_count;
                row(
                    name.clone(),
                    &aggregate.raw_data,
                    aggregate.success_count,
                    aggregate.fail_count,
                )
            })
            .collect();
        rows.sort_by(|a, b| a.request.cmp(&b.request));
        let mut errors: Vec<(String, usize)> = metrics
            .errors
            .values()
            .map(|error| {
                (
                    format!("{} {}: {}", error.method, error.name, error.error),
                    error.occurrences,
                )
            })
            .collect();
        errors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Self {
            rows,
            total: row("Aggregated".to_owned(), &all, ok, failed),
            seconds,
            errors,
        }
    }

    /// Passed: requests were made and none failed.
    pub fn passed(&self) -> bool {
        self.total.requests > 0 && self.total.failures == 0
    }
}

/// Adds `other`'s times to `into`, so the aggregated row has true
/// percentiles rather than an average of per-request ones.
fn merge(into: &mut GooseRequestMetricTimingData, other: &GooseRequestMetricTimingData) {
    for (&bucket, &count) in other.times_us.iter() {
        let sum = into.times_us.get(&bucket).copied().unwrap_or(0) + count;
        into.times_us.insert(bucket, sum);
    }
    if other.counter > 0 {
        if into.counter == 0 || other.minimum_time_us < into.minimum_time_us {
            into.minimum_time_us = other.minimum_time_us;
        }
        into.maximum_time_us = into.maximum_time_us.max(other.maximum_time_us);
    }
    into.total_time_us += other.total_time_us;
    into.counter += other.counter;
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .rows
            .iter()
            .map(|row| row.request.len())
            .chain([self.total.request.len(), "request".len()])
            .max()
            .unwrap_or(0);
        writeln!(
            f,
            "{:<width$} | {:>9} | {:>8} | {:>8} | {:>9} | {:>9} | {:>9}",
            "request", "requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms"
        )?;
        writeln!(f, "{}", "-".repeat(width + 72))?;
        for row in self.rows.iter().chain([&self.total]) {
            writeln!(
                f,
                "{:<width$} | {:>9} | {:>8} | {:>8.1} | {:>9.1} | {:>9.1} | {:>9.1}",
                row.request,
                row.requests,
                row.failures,
                row.requests_per_second,
                row.p50_ms,
                row.p95_ms,
                row.p99_ms
            )?;
        }
        if !self.errors.is_empty() {
            writeln!(f, "\nerrors:")?;
            for (error, count) in &self.errors {
                writeln!(f, "{count:>8} x {error}")?;
            }
        }
        Ok(())
    }
}
