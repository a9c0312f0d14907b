//! `server migrate-original`: the command line of `storage::original`.
//! Plain, a dry run; `--apply`, `--rollback`, `--drop-backup`. It reads
//! the server's configuration (the database, and Redis to invalidate).
//! Exit status: 0 done (or, dry, nothing needs a decision), 3 decisions
//! needed, 2 invalid configuration or flags, 1 any other failure.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, ValueEnum};
use domain::OrderStatus;
use indicatif::{ProgressBar, ProgressStyle};
use storage::original::{
    self, Applied, BadIds, Decisions, EmptyOrders, Layout, Progress, ProgressFn, Stage,
};

use crate::Settings;

/// Rows of each kind of problem the dry run lists unless `--list-all`.
const EXAMPLES_PER_KIND: usize = 20;

pub const DECISIONS_NEEDED: u8 = 3;

/// Take over the database of the original service (a dry run unless
/// `--apply`), or give it back (`--rollback`).
#[derive(Debug, Clone, Args)]
pub struct MigrateOriginalArgs {
    /// Migrate, keeping the original's rows in original_orders and
    /// original_order_items.
    #[arg(long, group = "action")]
    pub apply: bool,
    /// Write the current orders back into the original's tables and remove
    /// this service's tables (and the backup).
    #[arg(long, group = "action")]
    pub rollback: bool,
    /// Drop the original's rows kept by --apply.
    #[arg(long, group = "action")]
    pub drop_backup: bool,
    /// List every row of each kind of problem, not the first 20.
    #[arg(long)]
    pub list_all: bool,

    /// Ids that are UUIDs written another way become lower-case hyphenated.
    #[arg(long, help_heading = "Decisions")]
    pub normalize_ids: bool,
    /// Orders whose id is not a UUID get a new id, or are left out.
    #[arg(long, value_enum, help_heading = "Decisions")]
    pub bad_ids: Option<BadIdsArg>,
    /// Names with leading or trailing spaces are stored trimmed, as the API stores them.
    #[arg(long, help_heading = "Decisions")]
    pub trim_names: bool,
    /// Names over 80 characters are cut to 80.
    #[arg(long, help_heading = "Decisions")]
    pub truncate_long_names: bool,
    /// Empty names (customer or item) become TEXT.
    #[arg(long, value_name = "TEXT", help_heading = "Decisions")]
    pub fill_blank_names: Option<String>,
    /// Statuses that are a known one in another case or spacing ("SHIPPED", "shipped ") become it.
    #[arg(long, help_heading = "Decisions")]
    pub map_status_variants: bool,
    /// The stored status RAW (exactly) becomes STATUS; repeatable.
    #[arg(long, value_name = "RAW=STATUS", help_heading = "Decisions")]
    pub map_status: Vec<String>,
    /// Every other unknown status becomes STATUS.
    #[arg(long, value_name = "STATUS", help_heading = "Decisions")]
    pub unknown_status: Option<String>,
    /// Orders with no items are kept (with an empty list) or left out.
    #[arg(long, value_enum, help_heading = "Decisions")]
    pub empty_orders: Option<EmptyOrdersArg>,
    /// Quantities below 1 or above 1,000,000 are clamped into that range.
    #[arg(long, help_heading = "Decisions")]
    pub clamp_quantities: bool,
    /// Items whose order does not exist are left out.
    #[arg(long, help_heading = "Decisions")]
    pub drop_orphan_items: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BadIdsArg {
    Reassign,
    Drop,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EmptyOrdersArg {
    Keep,
    Drop,
}

impl MigrateOriginalArgs {
    fn decisions(&self) -> Result<Decisions, String> {
        let parse_status = |raw: &str| {
            raw.trim()
                .parse::<OrderStatus>()
                .map_err(|error| format!("--unknown-status: {error}"))
        };
        let mut decisions = Decisions {
            normalize_ids: self.normalize_ids,
            bad_ids: self.bad_ids.map(|choice| match choice {
                BadIdsArg::Reassign => BadIds::Reassign,
                BadIdsArg::Drop => BadIds::Drop,
            }),
            trim_names: self.trim_names,
            truncate_long_names: self.truncate_long_names,
            map_status_variants: self.map_status_variants,
            unknown_status: self
                .unknown_status
                .as_deref()
                .map(parse_status)
                .transpose()?,
            empty_orders: self.empty_orders.map(|choice| match choice {
                EmptyOrdersArg::Keep => EmptyOrders::Keep,
                EmptyOrdersArg::Drop => EmptyOrders::Drop,
            }),
            clamp_quantities: self.clamp_quantities,
            drop_orphan_items: self.drop_orphan_items,
            ..Decisions::default()
        };
        if let Some(text) = &self.fill_blank_names {
            decisions = decisions
                .with_fill_blank_names(text)
                .map_err(|e| e.to_string())?;
        }
        for mapping in &self.map_status {
            let (from, to) = Decisions::parse_status_mapping(mapping).map_err(|e| e.to_string())?;
            decisions.map_status.insert(from, to);
        }
        Ok(decisions)
    }
}

/// Runs the command; `main` and `cargo xtask migrate-original` both call it.
pub fn run(args: MigrateOriginalArgs) -> ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    let decisions = match args.decisions() {
        Ok(decisions) => decisions,
        Err(error) => {
            eprintln!("migrate-original: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("migrate-original: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command(&args, decisions, &settings)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("migrate-original: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn command(
    args: &MigrateOriginalArgs,
    decisions: Decisions,
    settings: &Settings,
) -> Result<ExitCode, String> {
    let url = &settings.database.url;
    let examples = if args.list_all {
        usize::MAX
    } else {
        EXAMPLES_PER_KIND
    };
    let fail = |error: storage::StorageError| error_line(&error);
    let started = Instant::now();
    if args.apply {
        let applied = original::apply(url, decisions, examples, progress())
            .await
            .map_err(fail)?;
        return match applied {
            Applied::Refused(report) => {
                print!("{report}");
                print_needed(&report);
                println!("Nothing was changed.");
                Ok(ExitCode::from(DECISIONS_NEEDED))
            }
            Applied::Migrated(report) => {
                print!("{report}");
                println!(
                    "Migrated {} orders and {} items in {:.1} s; the original's rows are kept in \
                     original_orders and original_order_items.",
                    report.orders_written,
                    report.items_written,
                    started.elapsed().as_secs_f64()
                );
                invalidate(settings).await
            }
            Applied::AlreadyMigrated => {
                println!("The database was migrated already.");
                invalidate(settings).await
            }
        };
    }
    if args.rollback {
        let rolled = original::rollback(url, progress()).await.map_err(fail)?;
        println!(
            "Wrote {} orders and {} items back into the original's tables in {:.1} s; \
             this service's tables and the backup are gone. The original can start on it again.",
            rolled.orders,
            rolled.items,
            started.elapsed().as_secs_f64()
        );
        return invalidate(settings).await;
    }
    if args.drop_backup {
        let dropped = original::drop_backup(url).await.map_err(fail)?;
        println!(
            "{}",
            if dropped {
                "Dropped original_orders and original_order_items."
            } else {
                "There was no backup to drop."
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (layout, report) = original::survey(url, decisions, examples, progress())
        .await
        .map_err(fail)?;
    let Some(report) = report else {
        println!("The database holds {layout}: there is nothing to migrate.");
        if let Layout::Ours { backup: true, .. } = layout {
            println!(
                "`server migrate-original --drop-backup` drops the backup; `--rollback` goes back to the original."
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    print!("{report}");
    if report.undecided_total() > 0 {
        print_needed(&report);
        return Ok(ExitCode::from(DECISIONS_NEEDED));
    }
    println!(
        "Dry run: nothing was changed. `server migrate-original --apply` (with the same flags) migrates."
    );
    Ok(ExitCode::SUCCESS)
}

fn print_needed(report: &storage::original::Report) {
    println!("Decisions needed, one flag for each kind (see `server migrate-original --help`):");
    for (problem, flags) in report.needed_flags() {
        println!("  {flags:<52} {problem}");
    }
}

/// Every cached body of either service goes: a new list version, a new
/// detail epoch, every detail key deleted.
async fn invalidate(settings: &Settings) -> Result<ExitCode, String> {
    if settings.cache.disabled {
        return Ok(ExitCode::SUCCESS);
    }
    match cache::invalidate_all(&settings.cache).await {
        Ok(()) => {
            println!("The cache at REDIS_URL was invalidated.");
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => Err(format!(
            "the database is done, but the cache could not be invalidated ({error}); \
             run the same command again once Redis answers"
        )),
    }
}

fn error_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// A bar on a terminal; elsewhere (a log, a test) one line per batch.
fn progress() -> ProgressFn {
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} orders ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Arc::new(move |progress: Progress| {
            bar.set_length(progress.total);
            bar.set_position(progress.done);
            bar.set_message(stage_name(progress.stage));
            if progress.stage == Stage::Switching {
                bar.finish_and_clear();
            }
        })
    } else {
        Arc::new(|progress: Progress| {
            eprintln!(
                "migrate-original: {} {}/{}",
                stage_name(progress.stage),
                progress.done,
                progress.total
            );
        })
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Orders => "orders",
        Stage::RollingBack => "rolling back",
        Stage::Switching => "switching",
    }
}
