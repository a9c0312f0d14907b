//! The one place where failures become HTTP responses. Every non-2xx answer
//! is JSON with a message a person can act on and a stable `code`; causes
//! go to the log, never to the client. A 400 about a value also carries
//! `field`, the path of that value (`items[1].quantity`, `limit`); only a
//! body that cannot be read or parsed as JSON has none, since no value of
//! it could be told apart.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use domain::{FieldPath, InvalidInput, RepoError, Scope};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A domain rule, broken by the value at its field.
    #[error("{0}")]
    Invalid(#[from] InvalidInput),
    /// A rule of the HTTP layer (query parameters, status, seed count) or
    /// a body that is not JSON (`field` is `None` only then).
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        field: Option<FieldPath>,
    },
    #[error("Order with ID '{0}' not found.")]
    OrderNotFound(String),
    #[error("Unauthorized.")]
    Unauthorized,
    #[error("Admin endpoints are disabled: set ADMIN_PASSWORD to enable them.")]
    AdminDisabled,
    /// `API_KEY_REQUIRED` asks for a key here and none was shown.
    #[error("This request needs an API key: send it as \"Authorization: Bearer <key>\".")]
    ApiKeyRequired,
    /// A key was shown that is malformed, unknown or revoked.
    #[error("The API key is not valid: it is malformed, unknown or revoked.")]
    InvalidApiKey,
    #[error("The API key does not have the {0} scope this request needs.")]
    InsufficientScope(Scope),
    #[error("No such endpoint: {method} {path}.")]
    RouteNotFound { method: String, path: String },
    #[error("Method {method} is not allowed here; use {allow}.")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error("The order has changed: it is now at version {0}. Read it again and retry.")]
    PreconditionFailed(u64),
    #[error("Request body must be at most 64 KiB.")]
    PayloadTooLarge,
    #[error("Content-Type must be application/json.")]
    UnsupportedMediaType,
    /// The body did not arrive in time (`REQUEST_BODY_TIMEOUT_MS`).
    #[error("The request body did not arrive within {0} ms; send it at once and retry.")]
    BodyTimeout(u128),
    /// Too many headers, or too large ones (the message says which).
    #[error("{0}")]
    HeadersTooLarge(String),
    /// Over the rate limit (`RATE_LIMIT_PER_MINUTE`).
    #[error("Too many requests: the rate limit is reached; retry in {} s.", .0.retry_after)]
    TooManyRequests(crate::rate_limit::Throttled),
    /// Too many failed admin authentications from this address.
    #[error("Too many failed admin authentications from this address; retry in {retry_after} s.")]
    AdminLockedOut { retry_after: u64 },
    #[error("This Idempotency-Key was already used with a different request body.")]
    IdempotencyMismatch,
    #[error("The database is unavailable; try again shortly.")]
    Unavailable(#[source] RepoError),
    #[error("Internal server error.")]
    Internal(#[source] RepoError),
    /// An error no handler described (actix's own, a middleware's): only
    /// its status is known.
    #[error("{}.", .0.canonical_reason().unwrap_or("Error"))]
    Status(StatusCode),
}

impl ApiError {
    /// A 400 about the request as a whole: no value of it is to blame.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// A 400 about the value at `field`.
    pub fn invalid(code: &'static str, message: impl Into<String>, field: FieldPath) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
            field: Some(field),
        }
    }

    /// The path of the value this error is about, when there is one.
    pub fn field(&self) -> Option<&FieldPath> {
        match self {
            Self::Invalid(invalid) => Some(&invalid.field),
            Self::BadRequest { field, .. } => field.as_ref(),
            _ => None,
        }
    }

    /// A list's parts could not be read or encoded before its response
    /// began. They are the repository's (storage spools large lists to
    /// files), so this is the repository's internal failure: a 500 with
    /// the cause in the log. (A part failing once the body is under way
    /// can no longer change the status; the body ends with an error.)
    pub fn list_parts(error: std::io::Error) -> Self {
        Self::Internal(RepoError::Internal(Box::new(error)))
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(invalid) => invalid.rule.code(),
            Self::BadRequest { code, .. } => code,
            Self::OrderNotFound(_) => "order_not_found",
            Self::Unauthorized => "unauthorized",
            Self::AdminDisabled => "admin_disabled",
            Self::ApiKeyRequired => "api_key_required",
            Self::InvalidApiKey => "invalid_api_key",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::RouteNotFound { .. } => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::PreconditionFailed(_) => "precondition_failed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::BodyTimeout(_) => "request_timeout",
            Self::HeadersTooLarge(_) => "headers_too_large",
            Self::TooManyRequests(_) => "too_many_requests",
            Self::AdminLockedOut { .. } => "admin_locked_out",
            Self::IdempotencyMismatch => "idempotency_key_reused",
            Self::Unavailable(_) => "database_unavailable",
            Self::Internal(_) => "internal_error",
            Self::Status(status) => match status.as_u16() {
                400 => "bad_request",
                401 => "unauthorized",
                403 => "forbidden",
                404 => "not_found",
                405 => "method_not_allowed",
                406 => "not_acceptable",
                408 => "request_timeout",
                411 => "length_required",
                413 => "payload_too_large",
                414 => "uri_too_long",
                415 => "unsupported_media_type",
                429 => "too_many_requests",
                431 => "headers_too_large",
                503 => "unavailable",
                500..=599 => "internal_error",
                _ => "http_error",
            },
        }
    }
}

impl From<RepoError> for ApiError {
    fn from(error: RepoError) -> Self {
        match error {
            RepoError::Unavailable(_) => Self::Unavailable(error),
            RepoError::IdempotencyMismatch => Self::IdempotencyMismatch,
            RepoError::Internal(_) => Self::Internal(error),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: String,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

/// The cause chain of an error on one line, for logs.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Invalid(_) | Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::OrderNotFound(_) | Self::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Self::Unauthorized | Self::ApiKeyRequired | Self::InvalidApiKey => {
                StatusCode::UNAUTHORIZED
            }
            Self::AdminDisabled | Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::TooManyRequests(_) | Self::AdminLockedOut { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Status(status) => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Unavailable(_) => tracing::warn!(error = %chain(self), "request failed"),
            Self::Internal(_) => tracing::error!(error = %chain(self), "request failed"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            Self::TooManyRequests(throttled) => {
                response.insert_header((header::RETRY_AFTER, throttled.retry_after));
                response.insert_header((
                    crate::rate_limit::RATELIMIT_POLICY,
                    throttled.policy.clone(),
                ));
                response.insert_header((crate::rate_limit::RATELIMIT, throttled.limit.clone()));
            }
            Self::AdminLockedOut { retry_after } => {
                response.insert_header((header::RETRY_AFTER, *retry_after));
            }
            Self::MethodNotAllowed { allow, .. } => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            // RFC 6750's challenges: what to send, and what was wrong.
            Self::ApiKeyRequired => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="orders""#),
                ));
            }
            Self::InvalidApiKey => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="orders", error="invalid_token""#),
                ));
            }
            Self::InsufficientScope(scope) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(match scope {
                        Scope::OrdersRead => {
                            r#"Bearer realm="orders", error="insufficient_scope", scope="orders:read""#
                        }
                        Scope::OrdersWrite => {
                            r#"Bearer realm="orders", error="insufficient_scope", scope="orders:write""#
                        }
                        Scope::Admin => {
                            r#"Bearer realm="orders", error="insufficient_scope", scope="admin""#
                        }
                    }),
                ));
            }
            // The rest of the body may still be on its way: this connection
            // carries no further request.
            Self::BodyTimeout(_) => {
                response.force_close();
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.to_string(),
            code: self.code(),
            // The root has no name to show; nothing points there today.
            field: self
                .field()
                .filter(|field| !field.is_root())
                .map(ToString::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_stay_out_of_the_body() {
        let cause: Box<dyn std::error::Error + Send + Sync> = "secret dsn mysql://root".into();
        let error = ApiError::from(RepoError::Unavailable(cause));
        assert_eq!(error.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!error.to_string().contains("mysql"));
        assert!(chain(&error).contains("mysql"));
    }
}
