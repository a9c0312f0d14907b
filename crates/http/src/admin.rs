//! The original's admin endpoints, behind a shared secret.

use std::fmt;

use actix_web::{HttpRequest, HttpResponse, web};
use domain::{OrderRepository, Scope};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::input;

/// `ADMIN_PASSWORD`; admin endpoints answer 403 while it is unset or empty.
/// Never printed.
#[derive(Clone, Default)]
pub struct AdminPassword(Option<String>);

impl AdminPassword {
    pub fn new(password: Option<String>) -> Self {
        Self(password.filter(|password| !password.is_empty()))
    }

    /// The password, or an API key with the `admin` scope. A key without
    /// it, and no good password, is told so (403) rather than 401.
    fn check(&self, req: &HttpRequest, body: Option<&Value>) -> Result<(), ApiError> {
        let key = crate::auth::granted(req);
        if key.is_some_and(|scopes| scopes.contains(Scope::Admin)) {
            return Ok(());
        }
        let refused = |error| match key {
            Some(_) => ApiError::InsufficientScope(Scope::Admin),
            None => error,
        };
        let expected = self
            .0
            .as_ref()
            .ok_or_else(|| refused(ApiError::AdminDisabled))?;
        let from_header = req
            .headers()
            .get("x-admin-password")
            .map(|value| value.as_bytes());
        let from_body = || {
            body.and_then(|body| body.get("password"))
                .and_then(Value::as_str)
                .map(str::as_bytes)
        };
        let given = from_header.or_else(from_body).unwrap_or_default();
        // Constant time for equal lengths; a length mismatch alone reveals
        // only the length.
        if bool::from(given.ct_eq(expected.as_bytes())) {
            Ok(())
        } else {
            Err(refused(ApiError::Unauthorized))
        }
    }
}

impl fmt::Debug for AdminPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "AdminPassword(***)"
        } else {
            "AdminPassword(unset)"
        })
    }
}

pub fn configure<R: OrderRepository>(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/reset")
            .route(web::post().to(reset::<R>))
            .default_service(crate::method_not_allowed("POST")),
    )
    .service(
        web::resource("/admin/seed")
            .route(web::post().to(seed::<R>))
            .default_service(crate::method_not_allowed("POST")),
    );
}

/// The body is taken as a `Result` so that a disabled or unauthorised call
/// is answered as such even when its body is also broken.
fn authorize<R>(
    state: &AppState<R>,
    req: &HttpRequest,
    body: Result<JsonBody, ApiError>,
) -> Result<Option<Value>, ApiError> {
    let body = body.map(|JsonBody(body)| body);
    // An admin key guesses nothing (the key check has accepted it), so its
    // address's lockout, which is for the password, does not apply.
    if crate::auth::granted(req).is_some_and(|scopes| scopes.contains(Scope::Admin)) {
        return body;
    }
    // A locked-out address is refused before its password is looked at.
    crate::rate_limit::admin_attempt(req, || {
        state
            .admin
            .check(req, body.as_ref().ok().and_then(Option::as_ref))
    })?;
    body
}

#[utoipa::path(
    post, path = "/admin/reset", tag = "admin", operation_id = "reset",
    security(("admin_password" = [])),
    request_body(content = crate::openapi::ResetBody, description = "Optional"),
    responses(
        (status = 200, description = "Every order deleted", body = crate::openapi::ResetResult),
        (status = 400, description = "The body is not JSON", body = crate::openapi::Error),
        (status = 401, description = "Wrong or missing password", body = crate::openapi::Error),
        (status = 403, description = "ADMIN_PASSWORD is not set", body = crate::openapi::Error),
        (status = 413, description = "Body over 64 KiB", body = crate::openapi::Error),
        (status = 415, description = "Content-Type other than JSON", body = crate::openapi::Error),
        (status = 500, description = "Internal error", body = crate::openapi::Error),
        (status = 503, description = "Database unavailable", body = crate::openapi::Error),
    )
)]
pub async fn reset<R: OrderRepository>(
    state: web::Data<AppState<R>>,
    req: HttpRequest,
    body: Result<JsonBody, ApiError>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &req, body)?;
    let outcome = state.repo.reset().await?;
    Ok(HttpResponse::Ok().json(json!({
        "message": "All orders have been removed.",
        "deleted_orders": outcome.orders,
    })))
}

#[utoipa::path(
    post, path = "/admin/seed", tag = "admin", operation_id = "seed",
    security(("admin_password" = [])),
    request_body = crate::openapi::SeedBody,
    responses(
        (status = 201, description = "Fake orders created", body = crate::openapi::SeedResult),
        (status = 400, description = "count missing or out of 1..=100000 (`field` is `count`), or not JSON", body = crate::openapi::Error),
        (status = 401, description = "Wrong or missing password", body = crate::openapi::Error),
        (status = 403, description = "ADMIN_PASSWORD is not set", body = crate::openapi::Error),
        (status = 413, description = "Body over 64 KiB", body = crate::openapi::Error),
        (status = 415, description = "Content-Type other than JSON", body = crate::openapi::Error),
        (status = 500, description = "Internal error", body = crate::openapi::Error),
        (status = 503, description = "Database unavailable", body = crate::openapi::Error),
    )
)]
pub async fn seed<R: OrderRepository>(
    state: web::Data<AppState<R>>,
    req: HttpRequest,
    body: Result<JsonBody, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let body = authorize(&state, &req, body)?;
    let count = input::seed_count(body.as_ref())?;
    // The repository makes the orders as it inserts them, off this thread.
    let created = state.repo.seed(count).await?;
    Ok(HttpResponse::Created().json(json!({
        "message": format!("Seeded {created} fake orders."),
        "created": created,
    })))
}
