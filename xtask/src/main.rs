//! `cargo xtask <command>`: see `cargo xtask --help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use server::settings::Settings;
use xtask::bench::server::ServerCommand;
use xtask::bench::{self, Backend, BenchOptions, Part, ScaleOptions};
use xtask::loadtest::{self, LoadtestOptions, ScenarioKind};
use xtask::{XtaskError, clear, redis_reset, seed};

/// The orders service's utilities, load tests and benchmark. Configuration
/// comes from the environment, then `.env`, as for the server.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Insert random orders like the original's seeder; invalidates the cache.
    Seed {
        #[arg(long, default_value_t = 1000)]
        count: u64,
    },
    /// Delete every order and item; invalidates the cache.
    Clear,
    /// Flush the Redis database of REDIS_URL, printing key counts before and after.
    ResetRedis,
    /// Run the original's Locust scenarios with goose against a running server.
    Loadtest(LoadtestArgs),
    /// Build the release server, start it on throwaway databases and measure it.
    // Boxed: its many flags make it far larger than the other variants.
    Bench(Box<BenchArgs>),
    /// Take over the original service's database: `server migrate-original`.
    MigrateOriginal(server::migrate_original::MigrateOriginalArgs),
    /// Time `server migrate-original --apply` (release) on a database of the
    /// original's holding --orders orders, and its peak RSS.
    BenchTakeover(BenchTakeoverArgs),
    /// Run the server from this binary. Exists for xtask's own tests: cargo
    /// builds xtask for them, not the server binary, and the bench needs a
    /// server to start as a child process.
    #[command(hide = true)]
    Serve,
    /// Run the ceiling (plain actix-web sending FILE's bytes) from this
    /// binary, for the same reason.
    #[command(hide = true)]
    Ceiling { file: PathBuf },
}

#[derive(Args)]
struct LoadtestArgs {
    /// The server under test.
    #[arg(long, default_value = "http://localhost:8080")]
    host: String,
    #[arg(long, value_enum, default_value_t = ScenarioKind::ReadersWriters)]
    scenario: ScenarioKind,
    #[arg(long, default_value_t = 10)]
    users: usize,
    /// Users started per second.
    #[arg(long, default_value_t = 10.0)]
    hatch_rate: f64,
    /// How long to run once every user has started, in seconds or such as 60s or 5m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    run_time: Duration,
    /// Write goose's report (HTML with charts; .md or .json by extension).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Skip the preparation (clear, reset-redis, seed 1000) and use the data as it is.
    #[arg(long)]
    no_prepare: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// Run only these parts (comma separated). The scale part is not in
    /// the default run: at 1,000,000 orders it takes many minutes.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Part::Sqlite, Part::Mysql, Part::Cold])]
    only: Vec<Part>,
    /// Measured time per workload, in seconds or such as 500ms.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured run before each workload.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Connections for the single-request workloads.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Users of the mixed scenario.
    #[arg(long, default_value_t = 32)]
    mixed_users: usize,
    /// Table sizes for the cold keyset page (comma separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000u64, 100_000, 1_000_000])]
    cold_sizes: Vec<u64>,
    /// Backends for the cold keyset page (comma separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Backend::Sqlite, Backend::Mysql])]
    cold_backends: Vec<Backend>,
    /// Table sizes for the scale part's full list (comma separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000u64, 100_000, 1_000_000])]
    scale_sizes: Vec<u64>,
    /// Backends for the scale part (comma separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Backend::Sqlite, Backend::Mysql])]
    scale_backends: Vec<Backend>,
    /// Scale part: fresh servers each asked for the full list once.
    #[arg(long, default_value_t = 5)]
    scale_cold_runs: usize,
    /// Scale part: rounds of one POST /orders and then the full list.
    #[arg(long, default_value_t = 20)]
    scale_write_runs: usize,
    /// Scale part: connections of the cached full list and of the writers.
    #[arg(long, default_value_t = 4)]
    scale_connections: usize,
    /// Scale part: connections listing every order flat out beside the writers.
    #[arg(long, default_value_t = 8)]
    scale_readers: usize,
    /// Scale part: users of the mixed scenario with its 1 to 3 s waits.
    #[arg(long, default_value_t = 50)]
    scale_mixed_users: usize,
    /// Scale part: how long the mixed scenario with waits runs.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    scale_mixed_duration: Duration,
    /// Scale part: how long one request may take before it counts as failed.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    scale_request_timeout: Duration,
    /// Redis for the cached runs (the bench uses its own key prefix and removes its keys).
    #[arg(long, default_value = "redis://127.0.0.1:6379/0")]
    redis_url: String,
    /// MariaDB server, without a database: the bench creates and drops its own.
    #[arg(long, default_value = xtask::mysql_admin::DEFAULT_SERVER_URL)]
    mysql_server: String,
    /// Use this server binary instead of building the release one.
    #[arg(long)]
    server_binary: Option<PathBuf>,
    /// With --server-binary: the ceiling's binary (plain actix-web) to
    /// measure beside it; without, the release build's is used.
    #[arg(long, requires = "server_binary")]
    ceiling_binary: Option<PathBuf>,
    /// Where the markdown and JSON results go.
    #[arg(long)]
    output_dir: Option<PathBuf>,
}

#[derive(Args)]
struct BenchTakeoverArgs {
    #[arg(long, default_value_t = 1_000_000)]
    orders: u64,
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Backend::Sqlite, Backend::Mysql])]
    backends: Vec<Backend>,
    /// MariaDB server, without a database: a throwaway one is created and dropped.
    #[arg(long, default_value = xtask::mysql_admin::DEFAULT_SERVER_URL)]
    mysql_server: String,
    /// Use this server binary instead of building the release one.
    #[arg(long)]
    server_binary: Option<PathBuf>,
}

/// A bare number is seconds (`--duration 2`); otherwise `500ms`, `10s`, `5m`.
fn parse_duration(raw: &str) -> Result<Duration, String> {
    match raw.parse::<f64>() {
        Ok(seconds) if seconds >= 0.0 && seconds.is_finite() => {
            Ok(Duration::from_secs_f64(seconds))
        }
        Ok(_) => Err(format!("{raw}: not a duration")),
        Err(_) => humantime::parse_duration(raw).map_err(|error| error.to_string()),
    }
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "Ctrl-C";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = terminate.recv() => "SIGTERM",
    }
}

async fn repository(settings: &Settings) -> Result<server::AppRepository, XtaskError> {
    Ok(server::build_repository(settings).await?)
}

async fn run(command: Command) -> Result<ExitCode, XtaskError> {
    match command {
        Command::Seed { count } => {
            let settings = Settings::load()?;
            let repository = repository(&settings).await?;
            println!("{}", seed::seed_app(&repository, count, true).await?);
        }
        Command::Clear => {
            let settings = Settings::load()?;
            let repository = repository(&settings).await?;
            println!("{}", clear::describe(&clear::clear_app(&repository).await?));
        }
        Command::ResetRedis => {
            let settings = Settings::load()?;
            println!(
                "{}",
                redis_reset::reset_redis(&settings.cache.redis_url).await?
            );
        }
        Command::Loadtest(args) => {
            if !args.no_prepare {
                let settings = Settings::load()?;
                let repository = repository(&settings).await?;
                let redis_url =
                    (!settings.cache.disabled).then_some(settings.cache.redis_url.as_str());
                println!(
                    "Prepared: {}",
                    loadtest::prepare(&repository, redis_url).await?
                );
            }
            let options = LoadtestOptions {
                host: args.host,
                scenario: args.scenario,
                users: args.users,
                hatch_rate: args.hatch_rate,
                run_time: args.run_time,
                report: args.report,
                quiet: false,
            };
            let summary = loadtest::run(&options).await?;
            println!("\n{summary}");
            if let Some(report) = &options.report {
                println!("Report: {}", report.display());
            }
            if !summary.passed() {
                eprintln!(
                    "FAILED: {} of {} requests failed or broke the contract",
                    summary.total.failures, summary.total.requests
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Bench(args) => {
            let args = *args;
            let options = BenchOptions {
                parts: args.only,
                duration: args.duration,
                warmup: args.warmup,
                connections: args.connections,
                mixed_users: args.mixed_users,
                cold_sizes: args.cold_sizes,
                cold_backends: args.cold_backends,
                scale: ScaleOptions {
                    sizes: args.scale_sizes,
                    backends: args.scale_backends,
                    cold_runs: args.scale_cold_runs,
                    write_runs: args.scale_write_runs,
                    connections: args.scale_connections,
                    readers: args.scale_readers,
                    mixed_users: args.scale_mixed_users,
                    mixed_duration: args.scale_mixed_duration,
                    request_timeout: args.scale_request_timeout,
                },
                redis_url: args.redis_url,
                mysql_server: args.mysql_server,
                server_command: args.server_binary.map(ServerCommand::bare),
                ceiling_command: args.ceiling_binary.map(ServerCommand::bare),
                output_dir: args
                    .output_dir
                    .unwrap_or_else(|| bench::workspace_root().join("bench-results")),
            };
            // Dropping the bench on Ctrl-C or SIGTERM runs its guards: the
            // server child is killed and the scratch databases dropped.
            let report = tokio::select! {
                report = bench::run(&options) => report?,
                signal = shutdown_signal() => {
                    eprintln!("bench interrupted by {signal}; server stopped");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let path = report.write(&options.output_dir)?;
            println!("\n{}\nWritten to {}", report.markdown(), path.display());
            if report.errors() > 0 {
                eprintln!(
                    "FAILED: {} requests failed during the bench",
                    report.errors()
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::MigrateOriginal(args) => {
            // It runs a runtime of its own, which may not start inside this one.
            return std::thread::spawn(move || server::migrate_original::run(args))
                .join()
                .map_err(|_| XtaskError::Failed("migrate-original panicked".to_owned()));
        }
        Command::BenchTakeover(args) => {
            let server = match args.server_binary {
                Some(binary) => binary,
                None => bench::build_release()?.0,
            };
            let options = xtask::takeover_bench::TakeoverOptions {
                orders: args.orders,
                backends: args.backends,
                mysql_server: args.mysql_server,
                server,
            };
            let runs = xtask::takeover_bench::run(&options).await?;
            println!("\n{}", xtask::takeover_bench::markdown(&runs));
        }
        Command::Serve => {
            let settings = Settings::load()?;
            server::init_logging(&settings.log);
            server::run(settings).await?;
        }
        Command::Ceiling { file } => ceiling::run(&file)
            .await
            .map_err(|e| XtaskError::io(format!("serving {}", file.display()), e))?,
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
