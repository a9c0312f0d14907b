//! A dedicated runtime for the database's I/O.
//!
//! actix-web runs each HTTP worker on its own single-thread runtime, and a
//! socket is driven by the runtime that opened it. Pooled database
//! connections are shared by all workers, so a connection opened by one
//! worker would stall every other worker's queries whenever that worker is
//! busy. The storage is connected on this multi-thread runtime and runs
//! every operation there (`Storage` spawns on the runtime it was connected
//! on). The Redis cache needs none of this: it keeps a connection per
//! thread.

use tokio::runtime::{Handle, Runtime};

/// Owns the runtime; dropping it shuts the runtime down without blocking
/// (it may be dropped from async code).
pub struct IoRuntime(Option<Runtime>);

impl IoRuntime {
    pub fn new() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism()
            .map_or(2, usize::from)
            .max(2);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            // SQLite work runs on blocking threads, at most one per pooled
            // connection; tokio's default of 512 threads would let bursts
            // create many threads, each with its own allocator arena.
            .max_blocking_threads(16)
            .thread_name("orders-io")
            .enable_all()
            .build()
            .map(|runtime| Self(Some(runtime)))
    }

    pub fn handle(&self) -> Handle {
        self.0
            .as_ref()
            .expect("running until dropped")
            .handle()
            .clone()
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
