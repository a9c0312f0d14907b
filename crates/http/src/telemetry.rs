//! Per-request telemetry: the request id (echoed or generated, returned in
//! `X-Request-Id` and carried by every log line of the request through a
//! span), one access-log line, and the request metrics.

use std::future::Future;
use std::time::Instant;

use actix_web::Error;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::Data;
use tracing::Instrument;

use crate::metrics::Metrics;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client's id is kept when it is short printable ASCII (it ends up in
/// logs and headers); otherwise a fresh one is made.
fn request_id(req: &ServiceRequest) -> HeaderValue {
    req.headers()
        .get(&REQUEST_ID)
        .filter(|value| {
            let bytes = value.as_bytes();
            (1..=128).contains(&bytes.len()) && bytes.iter().all(|b| b.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
                .expect("a UUID is a valid header value")
        })
}

pub fn observe<S, B>(
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    let started = Instant::now();
    let id = request_id(&req);
    let metrics = req.app_data::<Data<Metrics>>().cloned();
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = %id.to_str().unwrap_or_default(),
        method = %method,
        path = %req.path(),
    );
    let response = {
        let _entered = span.enter();
        service.call(req)
    };
    async move {
        let mut response = response.await?;
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        if let Some(metrics) = metrics {
            metrics.observe(method.as_str(), &route, status, elapsed);
        }
        response.headers_mut().insert(REQUEST_ID, id);
        tracing::info!(
            target: "access",
            route = %route,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
        );
        Ok(response)
    }
    .instrument(span)
}
