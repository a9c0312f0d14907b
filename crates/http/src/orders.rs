//! The original's order endpoints.

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use domain::{IdempotencyKey, ListQuery, OrderId, OrderRepository, StatusUpdate, ValidationError};

use crate::AppState;
use crate::body::JsonBody;
use crate::conditional::{IfMatch, if_match, list_etag, none_match_hits, order_etag};
use crate::error::ApiError;
use crate::input::{self, ListParams};
use crate::precompressed;
use crate::sliced::SlicedBody;

pub fn configure<R: OrderRepository>(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/orders")
            .route(web::get().to(list::<R>))
            .route(web::post().to(create::<R>))
            .default_service(crate::method_not_allowed("GET, POST")),
    )
    .service(
        web::resource("/orders/{order_id}")
            .route(web::get().to(get::<R>))
            .route(web::delete().to(delete::<R>))
            .default_service(crate::method_not_allowed("GET, DELETE")),
    )
    .service(
        web::resource("/orders/{order_id}/status")
            .route(web::patch().to(update_status::<R>))
            .default_service(crate::method_not_allowed("PATCH")),
    );
}

/// Ids that are not UUIDs cannot name an order: they are "not found", with
/// the original's message, rather than a format error.
fn order_id(raw: &str) -> Result<OrderId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::OrderNotFound(raw.to_owned()))
}

fn json(mut response: HttpResponseBuilder, etag: String) -> HttpResponseBuilder {
    response
        .insert_header(ContentType::json())
        .insert_header((header::ETAG, etag));
    response
}

#[utoipa::path(
    get, path = "/orders", tag = "orders",
    params(
        ("limit" = Option<u16>, Query, description = "Page size, 1 to 1000: asks for keyset pagination"),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page"),
        ("status" = Option<String>, Query, description = "Only orders in this status"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag of an earlier response: 304 while it is still current"),
    ),
    responses(
        (status = 200, description = "Orders, newest first", body = crate::openapi::OrderList,
         headers(("ETag" = String, description = "Strong tag of the list's bytes"))),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, description = "Invalid parameter", body = crate::openapi::Error),
        (status = 503, description = "Database unavailable", body = crate::openapi::Error),
    )
)]
pub async fn list<R: OrderRepository>(
    state: web::Data<AppState<R>>,
    req: HttpRequest,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let query = ListQuery::try_from(params.into_inner())?;
    let list = state.repo.list(query).await?;
    let etag = list_etag(&list);
    if none_match_hits(&req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    let mut response = json(HttpResponse::Ok(), etag);
    let body = match precompressed::gzip_for(&req, &list) {
        Some(gzipped) => {
            response
                .insert_header((header::CONTENT_ENCODING, "gzip"))
                .insert_header((header::VARY, "accept-encoding"));
            gzipped
        }
        None => list.into_body(),
    };
    Ok(response.body(SlicedBody::new(body)))
}

#[utoipa::path(
    post, path = "/orders", tag = "orders",
    request_body = crate::openapi::NewOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters: a retry with the same key and body within 24 h returns the first response and creates nothing")),
    responses(
        (status = 201, description = "Created", body = crate::openapi::Order,
         headers(
             ("Location" = String, description = "/orders/{order_id}"),
             ("ETag" = String, description = "The order's version, as a strong tag"),
             ("Idempotent-Replayed" = String, description = "true when this is the stored response to an earlier request with the same Idempotency-Key"),
         )),
        (status = 400, description = "Invalid order", body = crate::openapi::Error),
        (status = 413, description = "Body over 64 KiB", body = crate::openapi::Error),
        (status = 415, description = "Content-Type other than JSON", body = crate::openapi::Error),
        (status = 422, description = "Idempotency-Key reused with another body", body = crate::openapi::Error),
        (status = 503, description = "Database unavailable", body = crate::openapi::Error),
    )
)]
pub async fn create<R: OrderRepository>(
    state: web::Data<AppState<R>>,
    req: HttpRequest,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let order = input::new_order(body)?;
    let idempotency = match req.headers().get("idempotency-key") {
        None => None,
        Some(raw) => {
            let raw = raw.to_str().map_err(|_| ValidationError::IdempotencyKey)?;
            Some(IdempotencyKey::parse(raw, &order)?)
        }
    };
    let created = state.repo.create(order, idempotency).await?;
    let document = created.document;
    let mut response = json(HttpResponse::Created(), order_etag(document.version()));
    response.insert_header((header::LOCATION, format!("/orders/{}", document.id())));
    if created.replayed {
        response.insert_header(("idempotent-replayed", "true"));
    }
    Ok(response.body(document.into_body()))
}

#[utoipa::path(
    get, path = "/orders/{order_id}", tag = "orders",
    params(
        ("order_id" = String, Path, description = "The order's UUID"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag of an earlier response: 304 while it is still current"),
    ),
    responses(
        (status = 200, description = "The order", body = crate::openapi::Order,
         headers(("ETag" = String, description = "The order's version, as a strong tag"))),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "No such order", body = crate::openapi::Error),
        (status = 503, description = "Database unavailable", body = crate::openapi::Error),
    )
)]
pub async fn get<R: OrderRepository>(
    state: web::Data<AppState<R>>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(&path)?;
    let document = state
        .repo
        .get(id)
        .await?
        .ok_or_else(|| ApiError::OrderNotFound(path.into_inner()))?;
    let etag = order_etag(document.version());
    if none_match_hits(&req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    Ok(json(HttpResponse::Ok(), etag).body(document.into_body()))
}

#[utoipa::path(
    patch, path = "/orders/{order_id}/status", tag = "orders",
    params(
        ("order_id" = String, Path, description = "The order's UUID"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read: the change is made only if the order is still at that version"),
    ),
    request_body = crate::openapi::StatusChange,
    responses(
        (status = 200, description = "The updated order", body = crate::openapi::Order,
         headers(("ETag" = String, description = "The order's new version, as a strong tag"))),
        (status = 400, description = "Missing or unknown status", body = crate::openapi::Error),
        (status = 404, description = "No such order", body = crate::openapi::Error),
        (status = 412, description = "The order changed since the ETag given in If-Match", body = crate::openapi::Error),
        (status = 413, description = "Body over 64 KiB", body = crate::openapi::Error),
        (status = 415, description = "Content-Type other than JSON", body = crate::openapi::Error),
        (status = 503, description = "Database unavailable", body = crate::openapi::Error),
    )
)]
pub async fn update_status<R: OrderRepository>(
    state: web::Data<AppState<R>>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Result<JsonBody, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(&path)?;
    let status = match body.and_then(|JsonBody(body)| input::status_change(body)) {
        Ok(status) => status,
        // As in the original, an unknown order is reported before a bad body.
        Err(error) => {
            return Err(match state.repo.get(id).await? {
                None => ApiError::OrderNotFound(path.into_inner()),
                Some(_) => error,
            });
        }
    };
    let expected = match if_match(&req) {
        None | Some(IfMatch::Any) => None,
        Some(IfMatch::Versions(versions)) if versions.len() == 1 => Some(versions[0]),
        Some(IfMatch::Versions(versions)) => {
            // Several tags: the one naming the current version applies, and
            // the update still checks that version atomically.
            let current = state
                .repo
                .get(id)
                .await?
                .ok_or_else(|| ApiError::OrderNotFound(path.to_string()))?
                .version();
            Some(if versions.contains(&current) {
                current
            } else {
                IfMatch::NEVER
            })
        }
    };
    match state.repo.update_status(id, status, expected).await? {
        StatusUpdate::Updated(document) => {
            Ok(json(HttpResponse::Ok(), order_etag(document.version())).body(document.into_body()))
        }
        StatusUpdate::NotFound => Err(ApiError::OrderNotFound(path.into_inner())),
        StatusUpdate::VersionMismatch { current } => {
            Err(ApiError::PreconditionFailed(current.get()))
        }
    }
}

#[utoipa::path(
    delete, path = "/orders/{order_id}", tag = "orders",
    params(("order_id" = String, Path, description = "The order's UUID")),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::Message),
        (status = 404, description = "No such order", body = crate::openapi::Error),
        (status = 503, description = "Database unavailable", body = crate::openapi::Error),
    )
)]
pub async fn delete<R: OrderRepository>(
    state: web::Data<AppState<R>>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(&path)?;
    if !state.repo.delete(id).await? {
        return Err(ApiError::OrderNotFound(path.into_inner()));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "message": format!("Order '{}' has been deleted.", path.as_str()),
    })))
}
