//! Operational endpoints: liveness, readiness, metrics, API description.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use domain::OrderRepository;
use serde_json::json;
use utoipa::OpenApi;
use utoipa_scalar::Scalar;

use crate::AppState;
use crate::drain::Drain;
use crate::metrics::Metrics;
use crate::openapi::ApiDoc;

pub fn configure<R: OrderRepository>(cfg: &mut web::ServiceConfig) {
    let get_only =
        |path: &str| web::resource(path).default_service(crate::method_not_allowed("GET"));
    cfg.service(get_only("/healthz").route(web::get().to(healthz)))
        .service(get_only("/readyz").route(web::get().to(readyz::<R>)))
        .service(get_only("/metrics").route(web::get().to(metrics::<R>)))
        .service(get_only("/openapi.json").route(web::get().to(openapi)))
        .service(get_only("/docs").route(web::get().to(docs)));
}

/// The interactive page: Scalar's template around the document, rendered
/// under a policy the template satisfies (see `DOCS_CSP`). Rendered per
/// request, like `/openapi.json`: it is not a page anyone loads often.
async fn docs() -> HttpResponse {
    let page = Scalar::new(ApiDoc::openapi()).to_html();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, crate::security::DOCS_CSP))
        .body(page)
}

#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "The process is up", body = crate::openapi::Liveness)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, description = "Serving; a cache outage is \"degraded\"", body = crate::openapi::Readiness),
        (status = 503, description = "The database is unreachable, or the server is stopping", body = crate::openapi::Readiness),
    ))]
pub async fn readyz<R: OrderRepository>(
    state: web::Data<AppState<R>>,
    drain: Option<web::Data<Drain>>,
) -> HttpResponse {
    let health = state.repo.health().await;
    let cache = health.cache.as_str();
    if drain.is_some_and(|drain| drain.is_draining()) {
        // A load balancer takes the instance out before it stops accepting.
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "stopping", "database": if health.database_ok { "ok" } else { "unavailable" },
            "cache": cache,
            "error": "The server is stopping; use another instance.",
            "code": "stopping",
        }));
    }
    if !health.database_ok {
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable", "database": "unavailable", "cache": cache,
            "error": "The database is unavailable; try again shortly.",
            "code": "database_unavailable",
        }));
    }
    let status = match health.cache {
        domain::CacheState::Unavailable => "degraded",
        _ => "ok",
    };
    HttpResponse::Ok().json(json!({"status": status, "database": "ok", "cache": cache}))
}

#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Prometheus (OpenMetrics) text", content_type = "application/openmetrics-text")))]
pub async fn metrics<R: OrderRepository>(
    state: web::Data<AppState<R>>,
    metrics: web::Data<Metrics>,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.render(&state.repo.stats()))
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
