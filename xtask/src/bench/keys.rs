//! `cargo xtask bench --only keys`: what an API-key check costs a cached
//! read. The same cached `GET /orders/{id}` workload runs against a server
//! with `API_KEY_REQUIRED=none` and then one with `all` and a valid
//! `orders:read` key, on the same database and cache; each run reports its
//! latency and the database checkouts it made (`db_pool_checkouts_total`
//! from `/metrics`): the claim is that the check adds none.

use std::sync::Arc;
use std::time::Duration;

use domain::{OrderId, Scope, Scopes};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::bench::driver::{Call, Conversation, request_once};
use crate::bench::report::{Row, Section};
use crate::bench::server::ServerProcess;
use crate::bench::{Run, workloads};
use crate::error::XtaskError;

const KEYED_DETAIL: &str = "GET /orders/{id}, Bearer key";

/// A cached detail of a random seeded order, with a key.
struct KeyedDetail {
    ids: Arc<Vec<OrderId>>,
    key: Arc<str>,
    rng: SmallRng,
}

impl Conversation for KeyedDetail {
    fn next_call(&mut self) -> Call {
        let id = self.ids[self.rng.random_range(0..self.ids.len())];
        Call::get(KEYED_DETAIL, format!("/orders/{id}")).with_bearer(self.key.clone())
    }

    fn reads_body(&self, _call: &Call) -> bool {
        false
    }
}

/// The counters of `/metrics` this section reads.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    checkouts: u64,
    accepted_keys: u64,
}

fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn counters(server: &ServerProcess) -> Result<Counters, XtaskError> {
    let (status, body) = request_once(
        server.addr,
        &Call::get("metrics", "/metrics"),
        &[],
        Duration::from_secs(10),
    )
    .await
    .map_err(|e| XtaskError::io("GET /metrics", e))?;
    if status != 200 {
        return Err(XtaskError::Failed(format!("GET /metrics: {status}")));
    }
    let text = String::from_utf8_lossy(&body);
    Ok(Counters {
        checkouts: counter(&text, "db_pool_checkouts_total"),
        accepted_keys: counter(&text, r#"api_key_checks_total{outcome="accepted"}"#),
    })
}

/// How often the servers here reload their keys (the default).
const REFRESH: Duration = Duration::from_millis(2000);

impl Run<'_> {
    /// Both runs, and a note per run with its checkouts.
    pub(super) async fn keys_section(
        &self,
        title: &str,
        database_url: &str,
    ) -> Result<Section, XtaskError> {
        println!("{title}");
        let connections = self.options.connections;
        let mut rows: Vec<Row> = Vec::new();
        let mut notes = Vec::new();

        // Entries outlive both runs: the second reads what the first filled.
        let ttl = ("ORDERS_CACHE_TTL", "600".to_owned());
        let open = self
            .start_with_env(
                "keys-none",
                database_url,
                true,
                &self.key_prefix,
                std::slice::from_ref(&ttl),
            )
            .await?;
        let ids = self.fresh_thousand(&open).await?;
        // Every order read once, so that both runs read a full cache: the
        // counter sees each miss's trip to the database.
        let filling = counters(&open).await?;
        for id in ids.iter() {
            let path = format!("/orders/{id}");
            let (status, _) = request_once(
                open.addr,
                &Call::get(workloads::DETAIL, path.as_str()),
                &[],
                Duration::from_secs(10),
            )
            .await
            .map_err(|e| XtaskError::io(format!("GET {path}"), e))?;
            if status != 200 {
                return Err(XtaskError::Failed(format!("GET {path}: {status}")));
            }
        }
        let before = counters(&open).await?;
        notes.push(format!(
            "filling the cache (each of the 1,000 orders read once) took {} database checkouts",
            before.checkouts.saturating_sub(filling.checkouts)
        ));
        let detail_ids = ids.clone();
        let (row, result) = self
            .measure(
                &open,
                "cached GET /orders/{id}, API_KEY_REQUIRED=none",
                connections,
                move |c| workloads::Repeat::new(workloads::DETAIL, detail_ids.clone(), c),
            )
            .await?;
        let after = counters(&open).await?;
        open.stop();
        notes.push(self.checkout_note("none", &row, result.requests(), before, after));
        rows.push(row);

        // A key of the database the next server reads at its start.
        let storage = storage::Storage::connect(&storage::StorageConfig::new(
            storage::DatabaseUrl::parse(database_url)
                .map_err(|e| XtaskError::Failed(format!("{database_url}: {e}")))?,
        ))
        .await
        .map_err(|e| XtaskError::Failed(format!("opening {database_url}: {e}")))?;
        let scopes = Scopes::new([Scope::OrdersRead]).expect("one scope");
        let key: Arc<str> = server::api_keys::create_key(&storage, scopes, None)
            .await
            .map_err(|e| XtaskError::Failed(format!("creating an API key: {e}")))?
            .reveal()
            .into();
        drop(storage);

        let keyed = self
            .start_with_env(
                "keys-all",
                database_url,
                true,
                &self.key_prefix,
                &[
                    ttl,
                    ("API_KEY_REQUIRED", "all".to_owned()),
                    ("API_KEY_REFRESH_MS", REFRESH.as_millis().to_string()),
                ],
            )
            .await?;
        let before = counters(&keyed).await?;
        let (row, result) = self
            .measure(
                &keyed,
                "cached GET /orders/{id}, API_KEY_REQUIRED=all, valid key",
                connections,
                move |c| KeyedDetail {
                    ids: ids.clone(),
                    key: key.clone(),
                    rng: SmallRng::seed_from_u64(0x5eed ^ c as u64),
                },
            )
            .await?;
        let after = counters(&keyed).await?;
        keyed.stop();
        let accepted = after.accepted_keys.saturating_sub(before.accepted_keys);
        if accepted < result.requests() {
            return Err(XtaskError::Failed(format!(
                "the keyed run made {} requests but only {accepted} keys were accepted",
                result.requests()
            )));
        }
        notes.push(self.checkout_note("all", &row, result.requests(), before, after));
        notes.push(format!(
            "keys checked and accepted in the keyed run (warm-up included): {accepted}"
        ));
        let none = &rows[0];
        notes.push(format!(
            "with a key: {:.0}% of the requests/s without; p50 {:+.3} ms, p99 {:+.3} ms",
            100.0 * row.requests_per_second / none.requests_per_second.max(1e-9),
            row.p50_ms - none.p50_ms,
            row.p99_ms - none.p99_ms,
        ));
        rows.push(row);
        Ok(Section {
            title: title.to_owned(),
            rows,
            notes,
            wide: false,
        })
    }

    fn checkout_note(
        &self,
        mode: &str,
        row: &Row,
        requests: u64,
        before: Counters,
        after: Counters,
    ) -> String {
        let seconds = (self.options.warmup + self.options.duration).as_secs_f64();
        format!(
            "API_KEY_REQUIRED={mode}: {} database checkouts over the run and its warm-up \
             ({seconds:.0} s, {requests} measured requests at {:.0}/s); the key reloads \
             account for about {:.0} (one per {} ms)",
            after.checkouts.saturating_sub(before.checkouts),
            row.requests_per_second,
            seconds / REFRESH.as_secs_f64(),
            REFRESH.as_millis(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_the_metrics_text() {
        let text = "# TYPE db_pool_checkouts counter\ndb_pool_checkouts_total 17\n\
                    api_key_checks_total{outcome=\"accepted\"} 5\n\
                    api_key_checks_total{outcome=\"invalid\"} 2\n";
        assert_eq!(counter(text, "db_pool_checkouts_total"), 17);
        assert_eq!(
            counter(text, r#"api_key_checks_total{outcome="accepted"}"#),
            5
        );
        assert_eq!(counter(text, "absent_total"), 0);
    }
}
