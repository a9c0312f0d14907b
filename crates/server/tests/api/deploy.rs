//! The deployment files: docker-compose.yml against the Compose
//! specification's JSON schema (vendored in deploy/), the Dockerfile
//! through hadolint, the systemd unit through `systemd-analyze verify` and
//! `security`, and the configurations they carry through the server's own
//! settings. A missing tool skips its test with a note, except under
//! `CI=true` (`.ci/run` installs them).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use server::Settings;

use crate::support::ci;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// A command-line tool: `$ENV_NAME`, else on `PATH`, else where `.ci/run`
/// installs it (`target/ci-tools/bin`). None, with a note, when missing.
pub(crate) fn tool(name: &str, env_name: &str) -> Option<PathBuf> {
    let found = std::env::var_os(env_name)
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|path| path.is_file())
            })
        })
        .or_else(|| {
            Some(root().join("target/ci-tools/bin").join(name)).filter(|path| path.is_file())
        });
    if found.is_none() {
        assert!(!ci(), "{name} is not installed and CI=true");
        eprintln!("note: {name} is not installed (.ci/run installs it); skipping");
    }
    found
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

// ---------------------------------------------------------------- compose

fn compose() -> Value {
    serde_norway::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML")
}

fn compose_errors(document: &Value) -> Vec<String> {
    let schema: Value =
        serde_json::from_str(&read("deploy/compose-spec.json")).expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    validator
        .iter_errors(document)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect()
}

#[test]
fn compose_file_follows_the_compose_specification() {
    let document = compose();
    let errors = compose_errors(&document);
    assert!(errors.is_empty(), "{errors:#?}");

    // The check has teeth: each of these breaks the specification.
    type Breakage = (&'static str, fn(&mut Value));
    let breakages: [Breakage; 4] = [
        ("an unknown condition", |d| {
            d["services"]["server"]["depends_on"]["redis"]["condition"] = json!("service_happy");
        }),
        ("a misspelt service key", |d| {
            d["services"]["mariadb"]["healthchek"] = d["services"]["mariadb"]["healthcheck"].take();
        }),
        ("a healthcheck test that is a number", |d| {
            d["services"]["redis"]["healthcheck"]["test"] = json!(6379);
        }),
        ("an unknown top-level key", |d| {
            d["service"] = json!({});
        }),
    ];
    for (what, breakage) in breakages {
        let mut broken = document.clone();
        breakage(&mut broken);
        assert!(
            !compose_errors(&broken).is_empty(),
            "{what} passed the schema"
        );
    }
}

#[test]
fn compose_starts_the_server_after_healthy_dependencies_and_redis_alone() {
    let document = compose();
    let services = document["services"].as_object().unwrap();
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for (name, service) in services {
        // `docker compose up` gives the whole stack: no service hides
        // behind a profile.
        assert!(service.get("profiles").is_none(), "{name} has profiles");
    }

    // Redis as the original had it, and alone with `docker compose up redis`.
    let redis = &services["redis"];
    assert_eq!(redis["image"], "redis:7");
    assert_eq!(redis["container_name"], "redis");
    assert_eq!(redis["ports"], json!(["6379:6379"]));
    assert!(redis.get("depends_on").is_none());
    assert!(redis["healthcheck"]["test"].is_array());

    let mariadb = &services["mariadb"];
    assert!(mariadb.get("depends_on").is_none());
    assert!(mariadb["healthcheck"]["test"].is_array());
    let data = mariadb["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|volume| volume.ends_with(":/var/lib/mysql"))
        .expect("MariaDB keeps its data in a volume");
    let volume = data.split(':').next().unwrap();
    assert!(
        document["volumes"].get(volume).is_some(),
        "{volume} is declared"
    );

    let server = &services["server"];
    assert_eq!(server["build"], ".", "built from the Dockerfile");
    for dependency in ["redis", "mariadb"] {
        assert_eq!(
            server["depends_on"][dependency]["condition"], "service_healthy",
            "{dependency}"
        );
    }
    assert_eq!(server["stop_signal"], "SIGTERM");
    let grace = humantime_secs(server["stop_grace_period"].as_str().unwrap());
    assert!(
        grace > 30,
        "stop_grace_period {grace}s: the drain takes 30 s"
    );

    // Its environment, with Compose's defaults, is a valid configuration
    // pointing at the stack's own services.
    let vars: HashMap<String, String> = server["environment"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, value)| {
            let value = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            (key.clone(), with_defaults(&value))
        })
        .collect();
    let settings = Settings::from_vars(vars).expect("the compose environment is valid");
    let url = settings.database.url.to_string();
    assert!(
        url.starts_with("mysql://") && url.contains("@mariadb:3306/orders"),
        "{url}"
    );
    assert_eq!(settings.cache.redis_url, "redis://redis:6379/0");
    assert!(!settings.cache.disabled);
}

/// `${NAME:-default}` replaced by its default, as Compose does when NAME is
/// unset.
fn with_defaults(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed ${") + start;
        let inner = &rest[start + 2..end];
        out.push_str(inner.split_once(":-").map_or("", |(_, default)| default));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn humantime_secs(value: &str) -> u64 {
    let digits = value.trim_end_matches('s');
    assert!(
        digits.chars().all(|c| c.is_ascii_digit()),
        "{value}: write whole seconds"
    );
    digits.parse().unwrap()
}

#[test]
fn compose_defaults_are_read_as_compose_reads_them() {
    assert_eq!(with_defaults("${A:-x}"), "x");
    assert_eq!(with_defaults("a${B:-}b"), "ab");
    assert_eq!(with_defaults("u:${P:-p}@h/${D:-d}"), "u:p@h/d");
    assert_eq!(humantime_secs("35s"), 35);
}

// ------------------------------------------------------------- Dockerfile

/// Dockerfile instructions, continuation lines joined, comments dropped.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

#[test]
fn dockerfile_builds_as_ci_does_and_runs_unprivileged_with_a_graceful_stop() {
    let instructions = instructions(&read("Dockerfile"));
    let stages: Vec<usize> = (0..instructions.len())
        .filter(|&i| instructions[i].starts_with("FROM "))
        .collect();
    assert!(stages.len() >= 2, "multi-stage: {instructions:#?}");
    let build = &instructions[stages[0]..stages[stages.len() - 1]];
    let last = &instructions[stages[stages.len() - 1]..];

    let build_run = build
        .iter()
        .find(|line| line.starts_with("RUN "))
        .expect("the build stage runs cargo");
    assert!(
        build_run.contains(" cargo build --release --locked -p server "),
        "{build_run}"
    );

    let user = last
        .iter()
        .rev()
        .find_map(|line| line.strip_prefix("USER "))
        .expect("the final stage names its user");
    let name = user.split(':').next().unwrap().trim();
    assert!(name != "root" && name != "0", "runs as {user}");
    assert!(
        last.iter().any(|line| line == "STOPSIGNAL SIGTERM"),
        "{last:#?}"
    );
    let health = last
        .iter()
        .find(|line| line.starts_with("HEALTHCHECK "))
        .expect("a HEALTHCHECK");
    assert!(
        health.contains(r#"CMD ["/usr/local/bin/server", "healthcheck"]"#),
        "through the binary itself: {health}"
    );
    assert!(
        last.iter()
            .any(|line| line == r#"ENTRYPOINT ["/usr/local/bin/server"]"#),
        "{last:#?}"
    );

    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for needed in ["target/", ".git/", "**/.env"] {
        assert!(ignored.iter().any(|line| line == needed), "{needed}");
    }
    for kept in ["Cargo.lock", ".cargo/", "migrations/", "crates/", "xtask/"] {
        assert!(
            !ignored.iter().any(|line| line == kept),
            "{kept} is needed by the build"
        );
    }
}

#[test]
fn dockerfile_passes_hadolint() {
    let Some(hadolint) = tool("hadolint", "HADOLINT") else {
        return;
    };
    let lint = |path: &Path| {
        Command::new(&hadolint)
            .args(["--no-color", "--failure-threshold", "style"])
            .arg(path)
            .output()
            .expect("hadolint runs")
    };
    let output = lint(&root().join("Dockerfile"));
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).trim().is_empty(), "{}", text(&output));

    // And it would say so: an untagged base and an unpinned apt install.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("Dockerfile");
    std::fs::write(
        &broken,
        "FROM debian\nRUN apt-get update && apt-get install -y curl\n",
    )
    .unwrap();
    let output = lint(&broken);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("DL3006"), "{}", text(&output));
}

// ---------------------------------------------------------------- systemd

/// A value of the unit's `[Service]` section (the last one given).
fn directive<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| name.trim() == key)
        .map(|(_, value)| value.trim())
        .next_back()
}

/// The unit as `orders.service` in a temporary directory, its `ExecStart`
/// pointed at the built binary (`verify` checks that it exists), beside
/// `orders.socket` (where `verify` looks for it).
fn unit_copy(edit: impl Fn(&str) -> String) -> (tempfile::TempDir, PathBuf) {
    socket_and_unit_copy(str::to_owned, edit)
}

fn socket_and_unit_copy(
    edit_socket: impl Fn(&str) -> String,
    edit: impl Fn(&str) -> String,
) -> (tempfile::TempDir, PathBuf) {
    let unit = read("deploy/orders.service");
    assert_eq!(
        unit.lines()
            .filter(|line| line.starts_with("ExecStart="))
            .count(),
        1
    );
    let unit: String = unit
        .lines()
        .map(|line| {
            if line.starts_with("ExecStart=") {
                format!("ExecStart={}\n", env!("CARGO_BIN_EXE_server"))
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.service");
    std::fs::write(&path, edit(&unit)).unwrap();
    std::fs::write(
        dir.path().join("orders.socket"),
        edit_socket(&read("deploy/orders.socket")),
    )
    .unwrap();
    (dir, path)
}

#[test]
fn systemd_unit_restarts_stops_gracefully_and_is_sandboxed() {
    let unit = read("deploy/orders.service");
    for (key, value) in [
        ("ExecStart", "/usr/local/bin/orders-server"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("StandardOutput", "journal"),
        ("StandardError", "journal"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "orders"),
        ("WorkingDirectory", "/var/lib/orders"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("EnvironmentFile", "/etc/orders/orders.env"),
    ] {
        assert_eq!(directive(&unit, key), Some(value), "{key}");
    }
    assert!(directive(&unit, "SystemCallFilter").is_some());
    // systemd holds the listening socket across restarts.
    assert_eq!(directive(&unit, "Sockets"), Some("orders.socket"));
    assert_eq!(directive(&unit, "Requires"), Some("orders.socket"));
    assert!(
        directive(&unit, "After").is_some_and(|after| after.contains("orders.socket")),
        "started after its socket"
    );
    let socket = read("deploy/orders.socket");
    assert_eq!(directive(&socket, "ListenStream"), Some("8080"));
    assert!(
        directive(&socket, "Accept").is_none_or(|accept| accept == "no"),
        "one process for all connections, not one per connection"
    );
    assert_eq!(directive(&socket, "WantedBy"), Some("sockets.target"));
    let stop = directive(&unit, "TimeoutStopSec").unwrap();
    assert!(
        humantime_secs(stop) >= 6 + 30 + 3 + 20,
        "TimeoutStopSec={stop}: connections take up to 6 s to end, in-flight requests 30 s, \
         the cache repair 3 s and the full list's keeper 20 s"
    );

    // The sample environment is a valid configuration whose SQLite file is
    // in the state directory, the one writable place.
    let vars: HashMap<String, String> = dotenvy::from_path_iter(root().join("deploy/orders.env"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let settings = Settings::from_vars(vars).expect("deploy/orders.env is valid");
    assert_eq!(
        settings.database.url.to_string(),
        "sqlite:////var/lib/orders/orders.db"
    );
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let Some(analyze) = tool("systemd-analyze", "SYSTEMD_ANALYZE") else {
        return;
    };
    let verify = |path: &Path| {
        Command::new(&analyze)
            .arg("verify")
            .arg(path)
            .output()
            .expect("systemd-analyze runs")
    };
    let (_dir, path) = unit_copy(str::to_owned);
    let output = verify(&path);
    // verify exits 0 on keys it ignores: any line it prints is a finding.
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).trim().is_empty(), "{}", text(&output));

    // A misspelt key and a bad value are reported.
    let (_dir, path) = unit_copy(|unit| {
        unit.replace("ProtectSystem=strict", "ProtectSytem=strict")
            .replace("KillMode=mixed", "KillMode=gently")
    });
    let found = text(&verify(&path));
    assert!(found.contains("Unknown key 'ProtectSytem'"), "{found}");
    assert!(found.contains("kill mode"), "{found}");

    // The socket unit passes too, and a bad value in it is reported.
    let (_dir, path) = unit_copy(str::to_owned);
    let socket_output = verify(&path.with_file_name("orders.socket"));
    assert!(socket_output.status.success(), "{}", text(&socket_output));
    assert!(
        text(&socket_output).trim().is_empty(),
        "{}",
        text(&socket_output)
    );
    let (_dir, path) = socket_and_unit_copy(
        |socket| socket.replace("Backlog=4096", "Backlog=lots"),
        str::to_owned,
    );
    let found = text(&verify(&path.with_file_name("orders.socket")));
    assert!(found.contains("lots"), "{found}");

    // Without its socket the service cannot start.
    let (_dir, path) = unit_copy(str::to_owned);
    std::fs::remove_file(path.with_file_name("orders.socket")).unwrap();
    let output = verify(&path);
    assert!(
        !output.status.success() && text(&output).contains("orders.socket"),
        "{}",
        text(&output)
    );
}

fn exposure(analyze: &Path, path: &Path) -> (f64, String) {
    let output = Command::new(analyze)
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(path)
        .output()
        .expect("systemd-analyze runs");
    let all = text(&output);
    let line = all
        .lines()
        .find_map(|line| line.split_once("Overall exposure level for orders.service: "))
        .map(|(_, rest)| rest.to_owned())
        .unwrap_or_else(|| panic!("no overall exposure level: {all}"));
    let mut words = line.split_whitespace();
    let score = words.next().unwrap().parse().unwrap();
    (score, words.next().unwrap().to_owned())
}

#[test]
fn systemd_unit_exposure_is_ok_or_better() {
    let Some(analyze) = tool("systemd-analyze", "SYSTEMD_ANALYZE") else {
        return;
    };
    let (_dir, path) = unit_copy(str::to_owned);
    let (score, level) = exposure(&analyze, &path);
    assert!(
        ["OK", "SAFE", "PERFECT"].contains(&level.as_str()),
        "exposure {score} {level}"
    );
    assert!(score < 2.0, "exposure {score} {level}");

    // Without its sandboxing the same service rates far worse.
    let (_dir, path) = unit_copy(|unit| {
        let (head, _) = unit.split_once("# Identity and files.").unwrap();
        format!("{head}\n[Install]\nWantedBy=multi-user.target\n")
    });
    let (bare, level) = exposure(&analyze, &path);
    assert!(bare > 5.0, "bare unit: {bare} {level}");
}
