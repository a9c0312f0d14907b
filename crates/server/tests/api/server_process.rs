//! The server binary as a child process: on a port of its own, or on a
//! listening socket the test holds and passes as systemd does (socket
//! activation: descriptor 3, `LISTEN_FDS=1`, `LISTEN_PID` its pid).

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = env!("CARGO_BIN_EXE_server");

pub struct ServerProcess {
    child: Child,
    log: PathBuf,
    /// Where stderr goes, when the test reads it; else the test's own.
    errors: Option<PathBuf>,
}

impl ServerProcess {
    /// Starts the binary with exactly `env`, in `dir`, logging (JSON) to
    /// `dir/<name>.log`. With `socket`, the process serves on a duplicate
    /// of it and ignores `HOST` and `PORT`.
    pub fn start(
        dir: &Path,
        name: &str,
        env: &[(&str, String)],
        socket: Option<&TcpListener>,
    ) -> Self {
        Self::start_with(dir, name, env, socket, false)
    }

    /// [`Self::start`] with stderr also kept, in `dir/<name>.err`, for
    /// tests of what the process writes ([`Self::output`]).
    pub fn start_capturing(
        dir: &Path,
        name: &str,
        env: &[(&str, String)],
        socket: Option<&TcpListener>,
    ) -> Self {
        Self::start_with(dir, name, env, socket, true)
    }

    fn start_with(
        dir: &Path,
        name: &str,
        env: &[(&str, String)],
        socket: Option<&TcpListener>,
        capture_stderr: bool,
    ) -> Self {
        let log = dir.join(format!("{name}.log"));
        let errors = capture_stderr.then(|| dir.join(format!("{name}.err")));
        let stderr = match &errors {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let stdout = std::fs::File::create(&log).unwrap();
        let mut command = match socket {
            Some(socket) => {
                // The shell moves the socket from its standard input to
                // descriptor 3 and names its own pid, which the server
                // keeps through exec: what systemd does, without unsafe
                // code here.
                let mut command = Command::new("sh");
                command
                    .args([
                        "-c",
                        r#"exec 3<&0 0</dev/null; LISTEN_FDS=1 LISTEN_PID=$$ exec "$0""#,
                        SERVER,
                    ])
                    .stdin(Stdio::from(OwnedFd::from(socket.try_clone().unwrap())));
                command
            }
            None => {
                let mut command = Command::new(SERVER);
                command.stdin(Stdio::null());
                command
            }
        };
        let child = command
            .current_dir(dir)
            .env_clear()
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap();
        Self { child, log, errors }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Everything written so far: stdout (the log), then a captured stderr.
    pub fn output(&self) -> String {
        let errors = self
            .errors
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default();
        format!("{}{errors}", self.log())
    }

    /// Waits for the "serving" line of its log: the socket is being served
    /// (or, inherited, at least queues for it).
    pub fn wait_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains(r#""message":"serving""#) {
            if let Some(exit) = self.child.try_wait().unwrap() {
                panic!("the server exited at start ({exit}): {}", self.log());
            }
            assert!(Instant::now() < deadline, "never served: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Still running (not exited, whatever the signals it got).
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return exit;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {limit:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, and a clean exit within the graceful stop's bound.
    pub fn stop(self) {
        self.signal("TERM");
        self.wait_stopped();
    }

    /// A clean exit within the graceful stop's bound, after a SIGTERM sent
    /// earlier. Not a second one: that stops at once, dropping whatever is
    /// still in flight.
    pub fn wait_stopped(mut self) {
        let exit = self.wait_exit(Duration::from_secs(40));
        assert!(exit.success(), "{exit}: {}", self.log());
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
