//! A `mariadbd` of the test's own: a temporary data directory, a free port,
//! its socket in that directory, and TLS with a CA and a server certificate
//! made for it (openssl). It is killed by PID when the guard drops, panics
//! included.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};
use tempfile::TempDir;

/// The account the tests connect with over TCP; the password shows that
/// no error or log line carries it.
pub const USER: &str = "app";
pub const PASSWORD: &str = "app-s3cret";
pub const DATABASE: &str = "orders";

pub struct Mariadbd {
    pub port: u16,
    /// Issued the server's certificate.
    pub ca: PathBuf,
    /// A CA that issued nothing the server holds.
    pub other_ca: PathBuf,
    socket: PathBuf,
    child: Child,
    dir: TempDir,
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true"))
}

fn have(binary: &str) -> bool {
    Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    if let Err(failure) = try_run(dir, program, args) {
        panic!("{failure}");
    }
}

fn try_run(dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program} does not run: {error}"));
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{program} {args:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// A CA (`{name}.pem`) and, when `server` is set, a certificate it issued
/// for `localhost` only (`server.pem`, `server.key`): no IP address, so
/// that connecting to 127.0.0.1 is a host name mismatch.
fn make_certificates(dir: &Path, name: &str, server: bool) {
    let ca_key = format!("{name}.key");
    let ca_pem = format!("{name}.pem");
    let subject = format!("/CN=orders test {name}");
    run(
        dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &ca_key,
            "-out",
            &ca_pem,
            "-subj",
            &subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    if !server {
        return;
    }
    run(
        dir,
        "openssl",
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(
        dir,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(QueryableByName)]
struct Status {
    #[diesel(sql_type = diesel::sql_types::Text)]
    #[diesel(column_name = Value)]
    value: String,
}

impl Mariadbd {
    /// `None` (with a note) when mariadbd, mariadb-install-db or openssl is
    /// missing, unless `CI=true`, where that is a failure.
    pub async fn start(require_secure_transport: bool) -> Option<Mariadbd> {
        let missing: Vec<&str> = ["mariadbd", "mariadb-install-db", "openssl"]
            .into_iter()
            .filter(|binary| !have(binary))
            .collect();
        if !missing.is_empty() {
            assert!(!ci(), "{missing:?} needed by the TLS tests, and CI=true");
            eprintln!("note: {missing:?} not installed; skipping a TLS test");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        make_certificates(dir.path(), "ca", true);
        make_certificates(dir.path(), "other-ca", false);
        let data = dir.path().join("data");
        // Seen failing now and then under a loaded machine with nothing
        // in its output: a fresh data directory on each of a few tries.
        let mut failures = Vec::new();
        while failures.len() < 3 {
            let _ = std::fs::remove_dir_all(&data);
            // --no-defaults: the machine's my.cnf (its user, log file,
            // socket) must not reach a server of the test's own.
            match try_run(
                dir.path(),
                "mariadb-install-db",
                &[
                    "--no-defaults",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    "--user=root",
                    &format!("--datadir={}", data.display()),
                ],
            ) {
                Ok(()) => break,
                Err(failure) => {
                    eprintln!("note: retrying: {failure}");
                    failures.push(failure);
                }
            }
        }
        assert!(failures.len() < 3, "{failures:#?}");
        let socket = dir.path().join("mysqld.sock");
        let port = free_port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let mut args = vec![
            "--no-defaults".to_owned(),
            "--user=root".to_owned(),
            format!("--datadir={}", data.display()),
            format!("--socket={}", socket.display()),
            format!("--pid-file={}", path("mysqld.pid")),
            format!("--log-error={}", path("error.log")),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--skip-log-bin".to_owned(),
            "--innodb-buffer-pool-size=16M".to_owned(),
            format!("--ssl-ca={}", path("ca.pem")),
            format!("--ssl-cert={}", path("server.pem")),
            format!("--ssl-key={}", path("server.key")),
        ];
        if require_secure_transport {
            args.push("--require-secure-transport=ON".to_owned());
        }
        let child = Command::new("mariadbd")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        let mut server = Mariadbd {
            port,
            ca: dir.path().join("ca.pem"),
            other_ca: dir.path().join("other-ca.pem"),
            socket,
            child,
            dir,
        };
        let mut admin = server.wait_until_ready().await;
        admin
            .batch_execute(&format!(
                "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}';
                 GRANT ALL ON *.* TO '{USER}'@'%';
                 CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4;"
            ))
            .await
            .unwrap();
        Some(server)
    }

    async fn wait_until_ready(&mut self) -> AsyncMysqlConnection {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(conn) = self.try_admin().await {
                return conn;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mariadbd exited with {status}: {}", self.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd was not ready within 60 s: {}",
                self.error_log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    async fn try_admin(&self) -> diesel::ConnectionResult<AsyncMysqlConnection> {
        // The socket: no TLS, so the server's TLS counters count only the
        // connections under test.
        AsyncMysqlConnection::establish(&format!(
            "mysql://root@localhost/mysql?socket={}",
            self.socket.display()
        ))
        .await
    }

    /// `mysql://app:...@{host}:{port}/orders?{params}`.
    pub fn url(&self, host: &str, params: &str) -> String {
        let mut url = format!("mysql://{USER}:{PASSWORD}@{host}:{}/{DATABASE}", self.port);
        if !params.is_empty() {
            url.push('?');
            url.push_str(params);
        }
        url
    }

    /// A global status counter, such as `Ssl_accepts`.
    pub async fn status(&self, name: &str) -> u64 {
        let mut admin = self.try_admin().await.unwrap();
        let rows: Vec<Status> = diesel::sql_query(format!("SHOW GLOBAL STATUS LIKE '{name}'"))
            .load(&mut admin)
            .await
            .unwrap();
        rows[0].value.parse().unwrap()
    }
}

impl Drop for Mariadbd {
    fn drop(&mut self) {
        // SIGKILL to our own child by its PID; the data dies with the
        // temporary directory.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
