//! The orders service. Configuration comes from the environment and
//! `.env`; see the README for every variable.

use std::process::ExitCode;

mod memory;

use server::{Settings, init_logging, run};

fn main() -> ExitCode {
    memory::configure();
    actix_web::rt::System::new().block_on(serve())
}

async fn serve() -> ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings.log);
    match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("cannot start: {error}");
            eprintln!("cannot start: {error}");
            ExitCode::FAILURE
        }
    }
}
