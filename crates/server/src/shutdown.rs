//! The graceful stop on SIGTERM or SIGINT, made to lose no request.
//!
//! actix-web's own stop closes idle keep-alive connections at once; a
//! client that had just sent its next request on one gets no answer (its
//! request may even have been read and run). Instead:
//!
//! 1. **Drain**: every response says `Connection: close` from now on, and
//!    `/readyz` answers 503. The process still accepts for `lame_duck`
//!    (`SHUTDOWN_DELAY_MS`, 0 by default), long enough for a load
//!    balancer's health check to take it out.
//! 2. **Stop accepting** (pause). Connections not yet accepted stay in the
//!    socket's backlog: with an inherited socket another process serves
//!    them (or the next one, after a restart).
//! 3. **Wait for the open connections to end**: a busy one with its next
//!    response, which closes it; an idle one at its keep-alive timeout, as
//!    any day. At most the keep-alive timeout plus a second.
//! 4. **Stop**: actix-web's graceful stop finishes what is still in flight
//!    (up to `shutdown_timeout`, 30 s) and closes the rest.
//!
//! A second signal stops at once.

use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use tokio::signal::unix::{SignalKind, signal};

/// Waits for SIGTERM or SIGINT, then stops the server as above.
pub(crate) async fn stop_on_signal(handle: ServerHandle, drain: http::Drain, lame_duck: Duration) {
    let (mut terminate, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
        (Err(error), _) | (_, Err(error)) => {
            tracing::error!(%error, "cannot handle SIGTERM and SIGINT; stop with SIGKILL");
            return;
        }
    };
    let first = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!(
        signal = first,
        lame_duck_ms = lame_duck.as_millis() as u64,
        "stopping: every response closes its connection, /readyz answers 503"
    );
    drain.start();

    let graceful = {
        let handle = handle.clone();
        async move {
            tokio::time::sleep(lame_duck).await;
            handle.pause().await;
            let deadline = Instant::now() + http::KEEP_ALIVE + Duration::from_secs(1);
            while drain.open_connections() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tracing::info!(
                open_connections = drain.open_connections(),
                "stopped accepting; finishing the requests in flight"
            );
            handle.stop(true).await;
        }
    };
    let again = async {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    tokio::select! {
        () = graceful => {}
        () = again => {
            tracing::warn!("a second signal: stopping now");
            handle.stop(false).await;
        }
    }
}
