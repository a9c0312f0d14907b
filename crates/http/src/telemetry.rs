//! Per-request telemetry: the request id (echoed or generated, returned in
//! `X-Request-Id` and carried by every log line of the request through a
//! span), one access-log line, and the request metrics. As the outermost
//! layer it also sees errors that no handler made (a middleware's, actix's
//! own) and turns them into the JSON error body every client expects.

use std::future::Future;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::web::Data;
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError};

use crate::error::ApiError;
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
) -> impl Future<Output = Result<ServiceResponse<BoxBody>, Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody + 'static,
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
        let mut response = match response.await {
            Ok(response) => json_error_body(response.map_into_boxed_body()),
            Err(mut error) => {
                // A middleware failed the request; the request is gone with
                // it, so only the error is left to describe and to count.
                // Its response keeps what other middlewares add to it (CORS
                // headers), gets the JSON body and the request id.
                let status = error.as_response_error().status_code();
                if let Some(metrics) = metrics {
                    metrics.observe(
                        method.as_str(),
                        "unmatched",
                        status.as_u16(),
                        started.elapsed(),
                    );
                }
                tracing::info!(target: "access", route = "unmatched", status = status.as_u16());
                error.add_response_mapper(move |response| {
                    let mut response = json_error(response);
                    response.headers_mut().insert(REQUEST_ID, id.clone());
                    response
                });
                return Err(error);
            }
        };
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
        // The prefix of the API key the request showed, if any: never more.
        let key = response
            .request()
            .extensions()
            .get::<crate::caller::KeyPrefix>()
            .map(|prefix| prefix.0.clone());
        tracing::info!(
            target: "access",
            key = key.as_deref(),
            route = %route,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
        );
        Ok(response)
    }
    .instrument(span)
}

/// An error response whose body is not JSON (actix's own 404/405, a
/// middleware's rejection) gets `{"error", "code"}` from its status; its
/// other headers (such as `Allow`) are kept.
fn json_error_body(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let (request, original) = response.into_parts();
    ServiceResponse::new(request, json_error(original))
}

fn needs_json(response: &HttpResponse) -> bool {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    !is_json && (status.is_client_error() || status.is_server_error())
}

/// [`json_error_body`] for a bare response.
fn json_error(original: HttpResponse) -> HttpResponse {
    if !needs_json(&original) {
        return original;
    }
    let mut replacement = ApiError::Status(original.status()).error_response();
    for (name, value) in original.headers() {
        // The body is new: its type, length and coding are the new one's.
        if name != header::CONTENT_TYPE
            && name != header::CONTENT_LENGTH
            && name != header::CONTENT_ENCODING
        {
            replacement
                .headers_mut()
                .append(name.clone(), value.clone());
        }
    }
    replacement
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use actix_web::test::TestRequest;

    use super::*;

    #[actix_web::test]
    async fn plain_error_bodies_become_json_and_keep_their_headers() {
        let plain = TestRequest::default().to_srv_response(
            HttpResponse::MethodNotAllowed()
                .insert_header((header::ALLOW, "GET"))
                .body("nope"),
        );
        let converted = json_error_body(plain);
        assert_eq!(converted.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(converted.headers().get(header::ALLOW).unwrap(), "GET");
        let body = actix_web::body::to_bytes(converted.into_body())
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "method_not_allowed");
        assert_eq!(body["error"], "Method Not Allowed.");

        let fine = TestRequest::default().to_srv_response(HttpResponse::Ok().body("plain"));
        assert_eq!(
            json_error_body(fine).headers().get(header::CONTENT_TYPE),
            None
        );
    }

    #[actix_web::test]
    async fn a_middlewares_error_is_answered_as_json_with_the_request_id() {
        use actix_web::test::{init_service, try_call_service};
        use actix_web::{App, web};

        let app = init_service(
            App::new()
                .route("/", web::get().to(HttpResponse::Ok))
                .wrap_fn(|req, srv| {
                    let refused = req.headers().contains_key("x-refuse");
                    let response = srv.call(req);
                    async move {
                        if refused {
                            // As actix-cors marks the errors it passes on.
                            let mut error = actix_web::error::ErrorBadRequest("refused");
                            error.add_response_mapper(|mut response| {
                                response.headers_mut().insert(
                                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                                    HeaderValue::from_static("*"),
                                );
                                response
                            });
                            Err(error)
                        } else {
                            response.await
                        }
                    }
                })
                .wrap_fn(observe),
        )
        .await;
        let request = TestRequest::get()
            .insert_header(("x-refuse", "1"))
            .insert_header((REQUEST_ID, "req-7"))
            .to_request();
        // actix turns the error into its response after the middlewares.
        let Err(error) = try_call_service(&app, request).await else {
            panic!("the request was refused");
        };
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers().get(REQUEST_ID).unwrap(), "req-7");
        assert_eq!(
            response
                .headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .unwrap(),
            "*",
            "what other middlewares add is kept"
        );
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "bad_request");
    }
}
