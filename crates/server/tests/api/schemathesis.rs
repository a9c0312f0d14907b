//! The OpenAPI document against the server it describes: schemathesis
//! generates requests from `/openapi.json` (valid and invalid ones, every
//! phase, stateful sequences through the document's links) and checks each
//! answer against the document (statuses, headers, content types, bodies),
//! that valid data is accepted and invalid data refused, that a deleted
//! order is gone, and that the admin endpoints refuse a missing password.
//! `.ci/run` installs it in a venv and exports `SCHEMATHESIS`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::{ADMIN, Options, TestApp, ci};

/// Test cases per operation and phase: enough to reach every rule of the
/// document, few enough to keep the run within about two minutes.
const MAX_EXAMPLES: &str = "30";

fn schemathesis() -> Option<PathBuf> {
    let found = std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("schemathesis"))
                    .find(|path| path.is_file())
            })
        });
    if found.is_none() {
        assert!(!ci(), "schemathesis is not installed and CI=true");
        eprintln!("note: schemathesis is not installed (.ci/run installs it); skipping");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_what_the_server_does() {
    let Some(schemathesis) = schemathesis() else {
        return;
    };
    // SQLite in a temporary directory, no cache, the admin password set.
    // The admin lockout counts failures but never locks out: schemathesis
    // sends wrong passwords on purpose and wants each one answered 401
    // (ST401), while a locked-out address gets 429 without its password
    // being checked, by design (rate_limits.rs tests the lockout).
    let app = TestApp::start(Options {
        extra: vec![("ADMIN_AUTH_MAX_FAILURES", "0".to_owned())],
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api");
    let config = tests.join("schemathesis.toml");
    let output = tokio::process::Command::new(&schemathesis)
        // Fresh Idempotency-Keys: why is in the hooks file.
        .env("SCHEMATHESIS_HOOKS", tests.join("schemathesis_hooks.py"))
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args(["--checks", "all"])
        .args(["--header", &format!("X-Admin-Password: {ADMIN}")])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", "1"])
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "30"])
        .arg("--no-color")
        // Reports and caches, if any, go to the temporary directory.
        .current_dir(dir.path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(600), output)
        .await
        .expect("schemathesis finishes within 10 minutes")
        .expect("schemathesis runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "schemathesis ran for {:.0?}:\n{}",
        started.elapsed(),
        report
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}"
    );
}
