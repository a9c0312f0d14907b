//! `server healthcheck`: the container's probe of its own server. A
//! minimal image has no curl, so the binary asks itself: `GET /healthz` on
//! `127.0.0.1:$PORT` over plain TCP, within 2 s, and exits 0 on a 200 and 1
//! otherwise (Docker's `HEALTHCHECK` reserves 2). `PORT` is read as the
//! server reads it: the environment, then `./.env`, then 8080.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The whole probe, connection included, ends within this.
pub const TIMEOUT: Duration = Duration::from_secs(2);

const DEFAULT_PORT: u16 = 8080;

/// Probes the local server and reports the outcome as an exit code, with
/// one line on stderr when it is not healthy.
pub fn run() -> ExitCode {
    let port = match port(
        std::env::var("PORT").ok(),
        dotenv_value(".env", "PORT").as_deref(),
    ) {
        Ok(port) => port,
        Err(error) => {
            eprintln!("healthcheck: {error}");
            return ExitCode::FAILURE;
        }
    };
    match probe(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), TIMEOUT) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("healthcheck: 127.0.0.1:{port}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The port to probe: the environment's `PORT`, else the `.env` file's,
/// else 8080; an empty value counts as unset, as for the server.
pub fn port(environment: Option<String>, dotenv: Option<&str>) -> Result<u16, String> {
    let raw = environment
        .as_deref()
        .filter(|value| !value.trim().is_empty())
        .or(dotenv.filter(|value| !value.trim().is_empty()));
    let Some(raw) = raw else {
        return Ok(DEFAULT_PORT);
    };
    match raw.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!(
            "PORT: expected a port from 1 to 65535, got {raw:?}"
        )),
    }
}

fn dotenv_value(file: &str, name: &str) -> Option<String> {
    dotenvy::from_filename_iter(file)
        .ok()?
        .filter_map(Result::ok)
        .filter(|(key, _)| key == name)
        .last()
        .map(|(_, value)| value)
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("answered {0:?}")]
    Status(String),
}

/// `GET /healthz` at `address`; Ok only for an HTTP 200, all within
/// `timeout`.
pub fn probe(address: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or(ProbeError::Timeout(timeout))
    };
    let mut stream = TcpStream::connect_timeout(&address, remaining()?).map_err(|error| {
        if error.kind() == io::ErrorKind::TimedOut {
            ProbeError::Timeout(timeout)
        } else {
            error.into()
        }
    })?;
    stream.set_write_timeout(Some(remaining()?))?;
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {address}\r\nUser-Agent: orders-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(timed(timeout))?;

    // Only the status line matters: read until its end, at most 1 KiB.
    let mut head = Vec::with_capacity(128);
    let mut buffer = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        stream.set_read_timeout(Some(remaining()?))?;
        let read = stream.read(&mut buffer).map_err(timed(timeout))?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default().trim_end();
    let mut parts = line.split(' ');
    match (parts.next(), parts.next()) {
        (Some(version), Some("200")) if version.starts_with("HTTP/1.") => Ok(()),
        _ if line.is_empty() => Err(ProbeError::Status("nothing".to_owned())),
        _ => Err(ProbeError::Status(line.to_owned())),
    }
}

fn timed(timeout: Duration) -> impl Fn(io::Error) -> ProbeError {
    move |error| match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ProbeError::Timeout(timeout),
        _ => error.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use super::*;

    /// A one-connection server that reads the request and answers `reply`
    /// (or holds the connection silent when `reply` is None); returns its
    /// address and the request it received.
    fn fake(reply: Option<&'static [u8]>) -> (SocketAddr, thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 512];
            while !request.ends_with(b"\r\n\r\n") {
                let read = stream.read(&mut buffer).unwrap();
                if read == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..read]);
            }
            match reply {
                Some(reply) => stream.write_all(reply).unwrap(),
                None => thread::sleep(Duration::from_secs(3)),
            }
            String::from_utf8(request).unwrap()
        });
        (address, handle)
    }

    #[test]
    fn a_200_is_healthy_and_the_request_is_get_healthz() {
        let (address, server) = fake(Some(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
        probe(address, TIMEOUT).unwrap();
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nConnection: close\r\n"), "{request}");
    }

    #[test]
    fn any_other_status_or_garbage_is_unhealthy() {
        for reply in [
            &b"HTTP/1.1 503 Service Unavailable\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"SSH-2.0-OpenSSH_9.2\r\n",
            b"",
        ] {
            let (address, server) = fake(Some(reply));
            let error = probe(address, TIMEOUT).unwrap_err();
            assert!(matches!(error, ProbeError::Status(_)), "{error:?}");
            server.join().unwrap();
        }
    }

    #[test]
    fn a_silent_server_fails_within_the_timeout() {
        let (address, _server) = fake(None);
        let started = Instant::now();
        let error = probe(address, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(error, ProbeError::Timeout(_)), "{error:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn nobody_listening_is_unhealthy() {
        let address = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        // The listener is dropped: the port refuses.
        let error = probe(address, TIMEOUT).unwrap_err();
        assert!(matches!(error, ProbeError::Io(_)), "{error:?}");
    }

    #[test]
    fn the_port_comes_from_the_environment_then_dotenv_then_8080() {
        assert_eq!(port(None, None), Ok(8080));
        assert_eq!(port(Some(String::new()), None), Ok(8080));
        assert_eq!(port(None, Some("9000")), Ok(9000));
        assert_eq!(port(Some("9001".into()), Some("9000")), Ok(9001));
        assert_eq!(port(Some(" ".into()), Some(" 9002 ")), Ok(9002));
        for bad in ["eighty", "0", "70000", "-1"] {
            let error = port(Some(bad.into()), None).unwrap_err();
            assert!(error.contains("PORT"), "{error}");
        }
    }

    #[test]
    fn dotenv_is_read_for_port() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".env");
        std::fs::write(&file, "HOST=0.0.0.0\nPORT=9123\n# PORT=1\n").unwrap();
        assert_eq!(
            dotenv_value(file.to_str().unwrap(), "PORT").as_deref(),
            Some("9123")
        );
        assert_eq!(dotenv_value("/nonexistent/.env", "PORT"), None);
    }
}
