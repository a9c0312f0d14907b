//! The orders service. Configuration comes from the environment and
//! `.env`; see the README for every variable. With no command it serves.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod memory;

use server::api_keys::{self, ApiKeyArgs};
use server::migrate_original::{self, MigrateOriginalArgs};
use server::{Settings, healthcheck, init_logging, listener, run_on};

#[derive(Parser)]
#[command(name = "server", version, about = "The orders service")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (what the binary does with no command).
    Serve,
    /// Take over the original service's database (a dry run unless --apply), or give it back.
    MigrateOriginal(MigrateOriginalArgs),
    /// Create, list and revoke API keys (see API_KEY_REQUIRED).
    ApiKey(ApiKeyArgs),
    /// Probe the local server's /healthz (for a container's HEALTHCHECK).
    Healthcheck,
}

fn main() -> ExitCode {
    // Before any thread starts; the migration's memory bound needs it too.
    memory::configure();
    // Also before any thread: it takes the socket-activation variables out
    // of the environment.
    let inherited = listener::inherited();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => actix_web::rt::System::new().block_on(serve(inherited)),
        Command::MigrateOriginal(args) => migrate_original::run(args),
        Command::ApiKey(args) => api_keys::run(args),
        Command::Healthcheck => healthcheck::run(),
    }
}

async fn serve(
    inherited: Result<Option<std::net::TcpListener>, listener::InheritedSocketError>,
) -> ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings.log);
    let started = match inherited {
        Ok(inherited) => run_on(settings, inherited).await,
        Err(error) => Err(error.into()),
    };
    match started {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("cannot start: {error}");
            eprintln!("cannot start: {error}");
            ExitCode::FAILURE
        }
    }
}
