//! `cargo xtask loadtest`: the original's Locust scenarios, with goose.

pub mod report;
pub mod scenarios;

use std::path::PathBuf;
use std::time::Duration;

use goose::config::GooseConfiguration;
use goose::prelude::*;

use crate::error::XtaskError;
pub use report::Summary;
pub use scenarios::ScenarioKind;

#[derive(Debug, Clone)]
pub struct LoadtestOptions {
    /// The server under test, such as `http://localhost:8080`.
    pub host: String,
    pub scenario: ScenarioKind,
    pub users: usize,
    /// Users started per second.
    pub hatch_rate: f64,
    /// How long to run once every user has started.
    pub run_time: Duration,
    /// Goose's HTML report (or `.md`, `.json`: goose picks by extension).
    pub report: Option<PathBuf>,
    /// Goose's own console output: warnings only.
    pub quiet: bool,
}

/// How long one request may take, body included, before goose counts it
/// failed. Goose's default is 60 s; the list scenarios read every order, and
/// on a large database (`--no-prepare`) that is a 30-320 MB body, gzipped
/// by the server once per list version (each write makes a new one), then
/// decompressed and checked whole by every reader at once, on cores shared
/// with the server. A slow list should show in the latencies, not as a
/// failure; a server that hangs still fails, after this.
pub const REQUEST_TIMEOUT_SECS: usize = 300;

/// What the original did before a load test: clear the database, flush
/// Redis, seed 1,000 orders.
pub const PREPARE_ORDERS: u64 = 1000;

pub async fn prepare(
    repository: &server::AppRepository,
    redis_url: Option<&str>,
) -> Result<String, XtaskError> {
    let cleared = crate::clear::clear_app(repository).await?;
    let mut done = vec![crate::clear::describe(&cleared)];
    if let Some(url) = redis_url {
        done.push(crate::redis_reset::reset_redis(url).await?.to_string());
    }
    done.push(
        crate::seed::seed_app(repository, PREPARE_ORDERS, false)
            .await?
            .to_string(),
    );
    Ok(done.join(" "))
}

/// Runs the scenario and summarises what goose measured. A failed
/// request does not make this an error: the caller reads
/// [`Summary::passed`].
pub async fn run(options: &LoadtestOptions) -> Result<Summary, XtaskError> {
    let attack = GooseAttack::initialize_with_config(GooseConfiguration::default())?;
    let mut attack = scenarios::register(attack, options.scenario)?
        .set_default(GooseDefault::Host, options.host.as_str())?
        .set_default(GooseDefault::Users, options.users)?
        .set_default(
            GooseDefault::IncreaseRate,
            options.hatch_rate.to_string().as_str(),
        )?
        .set_default(
            GooseDefault::RunTime,
            options.run_time.as_secs().max(1) as usize,
        )?
        // Count the requests of the ramp up too: a failure there is a failure.
        .set_default(GooseDefault::NoResetMetrics, true)?
        // Our summary replaces goose's long tables.
        .set_default(GooseDefault::NoPrintMetrics, true)?
        // No controllers listening on ports nobody asked for.
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(
            GooseDefault::Timeout,
            REQUEST_TIMEOUT_SECS.to_string().as_str(),
        )?;
    if let Some(report) = &options.report {
        attack = attack.set_default(GooseDefault::ReportFile, report.to_string_lossy().as_ref())?;
    }
    if options.quiet {
        attack = attack.set_default(GooseDefault::Quiet, 1usize)?;
    }
    let metrics = attack.execute().await?;
    Ok(Summary::from_metrics(&metrics))
}
