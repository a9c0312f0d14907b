//! The server under test, as a child process the bench owns: started with
//! exactly the environment the bench gives it, and killed when the handle
//! is dropped, so an error or a panic in the bench never leaves it running.

use std::cell::Cell;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::driver::{Call, request_once};
use crate::error::XtaskError;

/// How to start the server: the release binary, or (in xtask's own tests)
/// `xtask serve`.
#[derive(Debug, Clone)]
pub struct ServerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl ServerCommand {
    pub fn bare(program: PathBuf) -> Self {
        Self {
            program,
            args: Vec::new(),
        }
    }
}

pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    /// The highest peak seen before the last reset, in KiB.
    earlier_peak_kib: Cell<u64>,
}

/// A port nobody listens on now. The server binds it a moment later; another
/// process taking it in between is unlikely and fails the start loudly.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl ServerProcess {
    /// Starts `command` in `workdir` (so no developer's `.env` is read) with
    /// only `env` and PATH, and waits until `GET /readyz` answers 200.
    pub async fn start(
        command: &ServerCommand,
        workdir: &Path,
        env: &[(&str, String)],
        log: PathBuf,
    ) -> Result<Self, XtaskError> {
        let binary_args = command.args.clone();
        let port = free_port().map_err(|e| XtaskError::io("finding a free port", e))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log_file = File::create(&log)
            .map_err(|e| XtaskError::io(format!("creating {}", log.display()), e))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| XtaskError::io("cloning the log handle", e))?;
        let binary = &command.program;
        let mut command = Command::new(binary);
        command
            .args(&binary_args)
            .current_dir(workdir)
            // Nothing of the caller's environment (DB_USER and friends would
            // override DATABASE_URL) may change what is measured.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .map_err(|e| XtaskError::io(format!("starting {}", binary.display()), e))?;
        let mut server = Self {
            child,
            addr,
            log,
            earlier_peak_kib: Cell::new(0),
        };
        server.wait_ready(Duration::from_secs(60)).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), XtaskError> {
        let started = Instant::now();
        let readyz = Call::get("readyz", "/readyz");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(XtaskError::Failed(format!(
                    "the server exited with {status} before it was ready:\n{}",
                    self.log_tail()
                )));
            }
            if let Ok((200, _)) =
                request_once(self.addr, &readyz, &[], Duration::from_secs(2)).await
            {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(XtaskError::Failed(format!(
                    "the server was not ready within {limit:?}:\n{}",
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's peak resident memory since start or the last
    /// [`Self::reset_peak_rss`], in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Starts a new peak (Linux: writing 5 to `clear_refs` resets `VmHWM`
    /// to the current RSS), so each workload gets its own peak. False when
    /// the kernel refused; peaks then run on from the start.
    pub fn reset_peak_rss(&self) -> bool {
        let peak = self.peak_rss_kib().unwrap_or(0);
        self.earlier_peak_kib
            .set(self.earlier_peak_kib.get().max(peak));
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }

    /// The peak over the server's whole life, resets or not, in KiB.
    pub fn lifetime_peak_rss_kib(&self) -> Option<u64> {
        let current = self.peak_rss_kib()?;
        Some(current.max(self.earlier_peak_kib.get()))
    }

    /// CPU time the server has used so far, all threads (Linux:
    /// `utime` + `stime` of `/proc/<pid>/stat`, in ticks of 1/100 s, the
    /// fixed `USER_HZ` of Linux's user ABI).
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // The command name may hold spaces; the fields after it do not.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_millis(ticks * 10))
    }

    /// The last lines of the server's output, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn stop(mut self) {
        self.kill();
    }

    /// Stops the server as a deployment does, with SIGTERM, and waits up to
    /// `wait` for it to exit (killing it then): a stopping server finishes
    /// keeping its full list in the database, which the next one loads.
    pub async fn stop_gracefully(mut self, wait: Duration) {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        let began = std::time::Instant::now();
        while terminated && began.elapsed() < wait {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
    }

    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
