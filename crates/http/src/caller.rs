//! Who is calling, as far as the request has shown: set by the API-key
//! check, read by the rate limiter.

/// The visible prefix of the API key a request authenticated with (never
/// the secret part).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyPrefix(pub String);
