//! The binary itself: configuration errors, a fresh start with the
//! defaults, and a graceful stop on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = env!("CARGO_BIN_EXE_server");

#[test]
fn an_invalid_value_stops_the_process_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (variable, value) in [
        ("PORT", "eighty"),
        ("CACHE_DISABLED", "perhaps"),
        ("DATABASE_URL", "oracle://x"),
    ] {
        let output = Command::new(SERVER)
            .current_dir(dir.path())
            .env_clear()
            .env(variable, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{variable}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(variable), "{stderr}");
    }
}

#[test]
fn starts_on_a_fresh_directory_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A .env file is read; the environment wins over it: were the .env's
    // HOST used, the server would not answer on 127.0.0.1.
    std::fs::write(
        dir.path().join(".env"),
        format!("PORT={port}\nCACHE_DISABLED=true\nHOST=127.0.0.2\n"),
    )
    .unwrap();
    let mut child = Command::new(SERVER)
        .current_dir(dir.path())
        .env_clear()
        .env("HOST", "127.0.0.1")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = format!("127.0.0.1:{port}");
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(&url) {
            use std::io::{Read, Write};
            stream
                .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Request-Id: trace-me-42\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            if response.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the server never became ready");
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        dir.path().join("database.db").exists(),
        "the default SQLite file is made in the working directory"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "no graceful stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");

    // At RUST_LOG=info each request writes one access-log line carrying its
    // request id, route, status and duration (JSON with LOG_FORMAT=json).
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut logs).unwrap();
    let access: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "access" && line.to_string().contains("trace-me-42"))
        .collect();
    assert_eq!(access.len(), 1, "one access line for the request: {logs}");
    let line = &access[0];
    assert_eq!(line["route"], "/readyz", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert!(line["duration_ms"].is_number(), "{line}");
    assert_eq!(line["span"]["request_id"], "trace-me-42", "{line}");
}
