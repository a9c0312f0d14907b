//! The server's memory allocators, set for a small, steady footprint.
//!
//! A heap profile of the bench's mixed workload (valgrind massif) showed at
//! most 17 MB live, yet the process held 111-137 MiB: glibc kept freed
//! list bodies (230 KB each, rebuilt after every write) in one arena per
//! thread, fragmented. Two changes bring the bench's peak under 64 MiB
//! (README, Performance):
//!
//! - Rust allocations go to jemalloc, compiled with two arenas and freed
//!   pages returned at once (`JEMALLOC_SYS_WITH_MALLOC_CONF` in
//!   `.cargo/config.toml`; `_RJEM_MALLOC_CONF` overrides it at run time).
//! - What is left on glibc's malloc is SQLite, which takes a global mutex
//!   around every allocation anyway, but from whichever of the (up to 16)
//!   blocking threads runs the query, each of which would get an arena of
//!   its own: one arena is enough. `MALLOC_ARENA_MAX`, when set, wins.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Limits glibc to one arena unless `MALLOC_ARENA_MAX` says otherwise.
/// Call before any other thread starts.
pub fn limit_c_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only changes a setting of glibc's allocator; it is
    // called before the process starts any thread.
    #[allow(unsafe_code)]
    let applied = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    if applied != 1 {
        eprintln!("warning: could not limit glibc's malloc arenas");
    }
}
