//! The listening socket: inherited from systemd (socket activation, the
//! `sd_listen_fds` protocol) or bound to `HOST:PORT`.
//!
//! An inherited socket outlives the process: systemd (or whatever started
//! the process) keeps it open while the service restarts, so a connection
//! made meanwhile waits in its backlog for the next process instead of
//! being refused, and two processes can serve the same socket at once
//! during a handover (README, "Restarts and deploys").

use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The first inherited descriptor (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

#[derive(Debug, thiserror::Error)]
pub enum InheritedSocketError {
    #[error("LISTEN_FDS={0:?}: expected a number of descriptors")]
    Count(String),
    #[error("LISTEN_FDS={0}: expected exactly one socket (one ListenStream= in orders.socket)")]
    NotOne(usize),
    #[error("inherited descriptor {FIRST_FD} (LISTEN_FDS=1): {0}")]
    Unusable(String),
}

/// Takes the socket systemd passed, if the environment names this process
/// (`LISTEN_PID`, `LISTEN_FDS`), and removes those variables so that no
/// child takes them for its own. Call first thing in `main`, before any
/// thread starts: it changes the environment.
pub fn inherited() -> Result<Option<TcpListener>, InheritedSocketError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: no other thread exists yet to read the environment.
        #[allow(unsafe_code)]
        unsafe {
            std::env::remove_var(name);
        }
    }
    let for_us = pid
        .as_deref()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    let Some(fds) = fds.filter(|_| for_us) else {
        return Ok(None);
    };
    let count: usize = fds
        .trim()
        .parse()
        .map_err(|_| InheritedSocketError::Count(fds.clone()))?;
    match count {
        0 => Ok(None),
        1 => listener_at(FIRST_FD).map(Some),
        more => Err(InheritedSocketError::NotOne(more)),
    }
}

fn socket_option(fd: RawFd, option: libc::c_int) -> std::io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and length point at a c_int and its size, as
    // getsockopt asks for these integer options; fd is only read.
    #[allow(unsafe_code)]
    let result = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&raw mut value).cast(),
            &raw mut length,
        )
    };
    if result == 0 {
        Ok(value)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The descriptor as a TCP listener, or why it is not one.
fn listener_at(fd: RawFd) -> Result<TcpListener, InheritedSocketError> {
    let unusable = |message: String| InheritedSocketError::Unusable(message);
    // SAFETY: fcntl(F_GETFD) only asks whether the descriptor is open.
    #[allow(unsafe_code)]
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(unusable(format!(
            "not open: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: the descriptor is open, and nothing else in this process
    // owns it: the protocol hands descriptors from 3 on to the process,
    // and this is the only place that takes them, once.
    #[allow(unsafe_code)]
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let kind = socket_option(owned.as_raw_fd(), libc::SO_TYPE)
        .map_err(|error| unusable(format!("not a socket: {error}")))?;
    let domain = socket_option(owned.as_raw_fd(), libc::SO_DOMAIN)
        .map_err(|error| unusable(format!("not a socket: {error}")))?;
    if kind != libc::SOCK_STREAM || !matches!(domain, libc::AF_INET | libc::AF_INET6) {
        return Err(unusable(
            "not a TCP socket (orders.socket needs ListenStream= with a port or an address and port)"
                .to_owned(),
        ));
    }
    let listening = socket_option(owned.as_raw_fd(), libc::SO_ACCEPTCONN)
        .map_err(|error| unusable(error.to_string()))?;
    if listening != 1 {
        return Err(unusable("a TCP socket that is not listening".to_owned()));
    }
    // Ours now: no program this one starts inherits it.
    // SAFETY: F_SETFD only changes the descriptor's close-on-exec flag.
    #[allow(unsafe_code)]
    if unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(unusable(std::io::Error::last_os_error().to_string()));
    }
    Ok(TcpListener::from(owned))
}

#[cfg(test)]
mod tests {
    use std::os::fd::IntoRawFd;

    use super::*;

    #[test]
    fn takes_a_listening_tcp_socket_and_refuses_anything_else() {
        let bound = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = bound.local_addr().unwrap();
        let taken = listener_at(bound.into_raw_fd()).unwrap();
        assert_eq!(taken.local_addr().unwrap(), address);

        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let error = listener_at(udp.into_raw_fd()).unwrap_err().to_string();
        assert!(error.contains("not a TCP socket"), "{error}");

        let file = std::fs::File::open("/dev/null").unwrap();
        let error = listener_at(file.into_raw_fd()).unwrap_err().to_string();
        assert!(error.contains("not a socket"), "{error}");

        let client = std::net::TcpStream::connect(address).unwrap();
        let error = listener_at(client.into_raw_fd()).unwrap_err().to_string();
        assert!(error.contains("not listening"), "{error}");
        assert!(!error.contains('\n'), "one line: {error}");
    }
}
