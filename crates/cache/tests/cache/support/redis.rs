//! Real Redis for the tests: the machine's (shared, isolated by a random key
//! prefix that is deleted at the end) or a `redis-server` child process of
//! the test's own, which fault tests stop, hang and kill by PID.

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cache::redis::{self, Commands};
use cache::{CaCertificates, CacheConfig};

use super::tls::Certificates;

/// Unreachable Redis is a skip on a laptop and a failure in CI.
pub(super) fn unavailable(what: &str) -> bool {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{what} (CI=true: failing instead of skipping)");
    }
    eprintln!("note: skipping this test: {what}");
    false
}

fn random_prefix() -> String {
    format!("cachetest:{:016x}:", rand::random::<u64>())
}

fn connect(url: &str, ca: Option<&CaCertificates>) -> redis::RedisResult<redis::Connection> {
    let client = match ca {
        None => redis::Client::open(url)?,
        Some(ca) => {
            // The redis crate asks rustls for the process's provider; the
            // cache installs one too, but only once it has made a client.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.pem().to_vec()),
            };
            redis::Client::build_with_tls(url, certificates)?
        }
    };
    let mut connection = client.get_connection_with_timeout(Duration::from_secs(1))?;
    connection.set_read_timeout(Some(Duration::from_secs(2)))?;
    connection.set_write_timeout(Some(Duration::from_secs(2)))?;
    redis::cmd("PING").query::<String>(&mut connection)?;
    Ok(connection)
}

/// A connection to one Redis, a key prefix of this test's own, and the
/// commands tests use to look at what the cache wrote.
pub struct TestRedis {
    url: String,
    ca: Option<CaCertificates>,
    prefix: String,
    connection: Mutex<redis::Connection>,
}

impl TestRedis {
    /// The machine's Redis (`REDIS_URL` overrides 127.0.0.1:6379); `None`
    /// (after a printed note) when it cannot be reached outside CI.
    pub fn shared() -> Option<Self> {
        let url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
        match Self::open(&url, None) {
            Ok(redis) => Some(redis),
            Err(error) => {
                unavailable(&format!("no Redis at {url}: {error}"));
                None
            }
        }
    }

    fn open(url: &str, ca: Option<&CaCertificates>) -> redis::RedisResult<Self> {
        Ok(Self {
            url: url.to_owned(),
            ca: ca.cloned(),
            prefix: random_prefix(),
            connection: Mutex::new(connect(url, ca)?),
        })
    }

    /// A new connection to the same Redis and prefix, for after a restart
    /// of the server (which breaks the old one).
    pub fn reconnect(&self) {
        *self.connection.lock().unwrap() =
            connect(&self.url, self.ca.as_ref()).expect("Redis answers again");
    }

    /// A cache configuration for this Redis and prefix. The timeout is
    /// generous: these tests are about logic, not speed, and the machine's
    /// cores are shared with builds.
    pub fn config(&self) -> CacheConfig {
        CacheConfig {
            redis_url: self.url.clone(),
            ca_certificates: self.ca.clone(),
            ttl: Duration::from_secs(60),
            timeout: Duration::from_secs(2),
            disabled: false,
            key_prefix: self.prefix.clone(),
        }
    }

    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    fn with<T>(&self, f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>) -> T {
        let mut connection = self.connection.lock().unwrap();
        f(&mut connection).expect("a Redis command of the test failed")
    }

    pub fn get(&self, rest: &str) -> Option<Vec<u8>> {
        let key = self.key(rest);
        self.with(|c| c.get(key))
    }

    pub fn set(&self, rest: &str, value: &[u8]) {
        let key = self.key(rest);
        self.with(|c| c.set::<_, _, ()>(key, value))
    }

    pub fn del(&self, rest: &str) {
        let key = self.key(rest);
        self.with(|c| c.del::<_, ()>(key))
    }

    /// Sets many keys in one round trip.
    pub fn set_many(&self, rests: impl IntoIterator<Item = String>, value: &[u8]) {
        let mut pipe = redis::pipe();
        for rest in rests {
            pipe.set(self.key(&rest), value).ignore();
        }
        self.with(|c| pipe.query::<()>(c))
    }

    /// An integer key, absent = 0.
    pub fn int(&self, rest: &str) -> u64 {
        let key = self.key(rest);
        self.with(|c| c.get::<_, Option<u64>>(key)).unwrap_or(0)
    }

    pub fn exists(&self, rest: &str) -> bool {
        let key = self.key(rest);
        self.with(|c| c.exists(key))
    }

    /// Milliseconds left; negative when absent or without expiry.
    pub fn pttl(&self, rest: &str) -> i64 {
        let key = self.key(rest);
        self.with(|c| c.pttl(key))
    }

    /// Keys of this prefix matching `rest` (a glob), by SCAN.
    pub fn scan(&self, rest: &str) -> Vec<String> {
        let pattern = self.key(rest);
        self.with(|c| {
            let mut cursor = 0u64;
            let mut keys = Vec::new();
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)?;
                keys.extend(batch);
                if next == 0 {
                    return Ok(keys);
                }
                cursor = next;
            }
        })
    }

    /// `INFO` field of a section, e.g. ("stats", "total_connections_received").
    pub fn info(&self, section: &str, field: &str) -> u64 {
        let info: String = self.with(|c| redis::cmd("INFO").arg(section).query(c));
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let Ok(mut connection) = self.connection.lock() else {
            return;
        };
        let pattern = format!("{}*", self.prefix);
        let mut cursor = 0u64;
        loop {
            let Ok((next, keys)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut *connection)
            else {
                return;
            };
            if !keys.is_empty() {
                let _: redis::RedisResult<i64> = connection.del(keys);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

/// A port nothing listens on (as far as anyone can know).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` child of this test, killed when dropped.
pub struct RedisProcess {
    port: u16,
    /// Set for a server that speaks TLS only.
    tls: Option<Certificates>,
    child: Option<Child>,
}

impl RedisProcess {
    /// Starts one on a free port; `None` (after a note) without
    /// `redis-server` outside CI.
    pub fn start() -> Option<Self> {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Option<Self> {
        Self {
            port,
            tls: None,
            child: None,
        }
        .started()
    }

    /// A server that takes TLS connections only (no plain port), with a
    /// certificate for 127.0.0.1 that `certificates`' CA signed.
    pub fn start_tls(certificates: Certificates) -> Option<Self> {
        Self {
            port: free_port(),
            tls: Some(certificates),
            child: None,
        }
        .started()
    }

    fn started(mut self) -> Option<Self> {
        match self.spawn() {
            Ok(()) => Some(self),
            Err(error) => {
                unavailable(&format!("cannot start redis-server: {error}"));
                None
            }
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut command = Command::new("redis-server");
        match &self.tls {
            None => command.args(["--port", &self.port.to_string()]),
            Some(tls) => command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(tls.server_certificate())
                .arg("--tls-key-file")
                .arg(tls.server_key())
                .arg("--tls-ca-cert-file")
                .arg(tls.ca_file())
                .args(["--tls-auth-clients", "no"]),
        };
        let child = command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| error.to_string())?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TestRedis::open(&self.url(), self.ca().as_ref()).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("redis-server on port {} never answered", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The CA of a TLS server's certificate.
    pub fn ca(&self) -> Option<CaCertificates> {
        self.tls.as_ref().map(Certificates::ca)
    }

    pub fn certificates(&self) -> Option<&Certificates> {
        self.tls.as_ref()
    }

    /// A connection with a fresh prefix, to look at this server; its
    /// [`TestRedis::config`] trusts the server's CA.
    pub fn client(&self) -> TestRedis {
        TestRedis::open(&self.url(), self.ca().as_ref()).expect("the test's redis-server answers")
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// SIGSTOP: the process hangs; its socket still accepts connections.
    pub fn hang(&self) {
        self.signal("STOP");
    }

    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// A fresh (empty) server on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn().expect("redis-server restarts");
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
