//! `cargo xtask clear`: deletes every order and item, then invalidates the
//! cache completely, list and every detail key (the original's script left
//! the cached list stale).

use domain::{OrderRepository, ResetOutcome};

use crate::error::XtaskError;

/// Resets the database behind the cache, then invalidates the cache, and
/// fails if that could not be done (see [`crate::seed::seed_app`] for why
/// not through the decorator's own `reset`).
pub async fn clear_app(repository: &server::AppRepository) -> Result<ResetOutcome, XtaskError> {
    let outcome = repository.inner().reset().await?;
    repository.invalidate_all().await?;
    Ok(outcome)
}

pub fn describe(outcome: &ResetOutcome) -> String {
    format!(
        "Deleted {} orders and {} items.",
        outcome.orders, outcome.items
    )
}
