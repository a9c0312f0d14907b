//! One function per fuzz target (`fuzz/fuzz_targets/`), each feeding its
//! input to exactly the parser a handler or the configuration uses, then
//! checking what the parser promises. libFuzzer reports a panic as a crash,
//! so a broken promise is an `assert!`. The same functions run over the
//! kept corpus (`fuzz/corpus/`) in `tests/corpus.rs`, so that CI replays
//! every input found so far on the stable toolchain.

mod bodies;
mod conditional;
mod configuration;
mod idempotency;
mod list_query;

pub use bodies::{order_body, status_body};
pub use conditional::conditional_headers;
pub use configuration::configuration_urls;
pub use idempotency::idempotency_key;
pub use list_query::list_query;

/// What libFuzzer calls with each input.
pub type Target = fn(&[u8]);

/// Every target by its `fuzz/fuzz_targets/` name, for the corpus test.
pub const TARGETS: &[(&str, Target)] = &[
    ("order_body", order_body),
    ("status_body", status_body),
    ("list_query", list_query),
    ("idempotency_key", idempotency_key),
    ("conditional_headers", conditional_headers),
    ("configuration_urls", configuration_urls),
];

/// An error a client sees: rendering it must not panic, and a 400 about
/// a value must say which value.
fn answered(error: &http::ApiError) -> u16 {
    use actix_web::ResponseError;
    let status = error.status_code();
    let response = error.error_response();
    assert_eq!(response.status(), status);
    assert!(!error.code().is_empty());
    status.as_u16()
}
