//! The server's memory settings, made for a small, steady footprint.
//!
//! A heap profile of the bench's mixed workload (valgrind massif) showed at
//! most 17 MB live, yet the process held 111-137 MiB. Three settings bring
//! the bench's peak under 64 MiB (README, Performance):
//!
//! - Rust allocations go to jemalloc, compiled with two arenas and freed
//!   pages returned at once (by the freeing thread: no background thread) (`JEMALLOC_SYS_WITH_MALLOC_CONF` in
//!   `.cargo/config.toml`; `_RJEM_MALLOC_CONF` overrides it at run time).
//!   glibc kept freed list bodies (320 KB each, rebuilt after every write)
//!   in one fragmented arena per thread. Returning pages at once costs CPU:
//!   each rebuilt list, and each Redis command carrying one, is written into
//!   fresh pages (page faults and zeroing, about a tenth of the machine in a
//!   perf of the mixed workload). A decay of 1 s or 250 ms saved most of it
//!   but took the bench's SQLite mixed peak to 64-69 MiB, over the goal.
//! - What is left on glibc's malloc is SQLite. It takes a global mutex
//!   around every allocation anyway, but from whichever of the (up to 16)
//!   blocking threads runs the query, each of which would get an arena of
//!   its own: one arena is enough (a 1M-order page walk: 88 -> 62 MiB).
//! - mysql_async keeps up to 128 spare buffers of up to 4 MiB each; a seed's
//!   multi-row INSERTs leave them large (a 1M-order seed on MariaDB: 66 ->
//!   41 MiB with spares capped at 64 KiB).
//!
//! Each setting is made only where the environment has not made it.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const C_ARENAS: &str = "MALLOC_ARENA_MAX";
const MYSQL_SPARE_BUFFER_BYTES: &str = "MYSQL_ASYNC_BUFFER_SIZE_CAP";

/// Applies the settings; call first thing in `main`, before the process
/// starts any thread.
pub fn configure() {
    if std::env::var_os(C_ARENAS).is_none() {
        // SAFETY: mallopt only changes a setting of glibc's allocator, and
        // no other thread exists yet to allocate meanwhile.
        #[allow(unsafe_code)]
        let applied = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
        if applied != 1 {
            eprintln!("warning: could not limit glibc's malloc arenas");
        }
    }
    if std::env::var_os(MYSQL_SPARE_BUFFER_BYTES).is_none() {
        // mysql_async reads it when it first needs a buffer, after this.
        // SAFETY: no other thread exists yet to read the environment.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(MYSQL_SPARE_BUFFER_BYTES, "65536");
        }
    }
}
