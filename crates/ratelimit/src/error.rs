use std::time::Duration;

/// What can go wrong in rate limiting. None of these reaches a client: a
/// quota is checked when the settings are read, and a store that fails is
/// replaced by the per-process one for that request.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// A quota that cannot be enforced (zero requests, a burst of zero).
    #[error("invalid quota: {0}")]
    InvalidQuota(&'static str),
    /// The shared store failed (connection refused, error reply, ...).
    #[error("rate-limit store failed: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The shared store did not answer in time.
    #[error("rate-limit store did not answer within {0:?}")]
    Timeout(Duration),
}
