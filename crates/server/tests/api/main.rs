//! Black-box tests of the whole service: the real wiring from settings to
//! storage, cache and HTTP, on a free port, with real databases.

mod support;

mod admin;
mod balanced;
mod cache;
mod conditional;
mod deploy;
mod endpoints;
mod errors;
mod faults;
mod full_list;
mod healthcheck;
mod https;
mod keys;
mod mysql;
mod ops;
mod orders;
mod process;
mod rate_limits;
mod restarts;
mod schemathesis;
mod security;
mod server_process;
mod slow_clients;
mod takeover;
mod workload;
