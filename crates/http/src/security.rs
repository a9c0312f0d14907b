//! Headers that tell browsers to treat responses as exactly what they say:
//! `X-Content-Type-Options: nosniff` on every response (a JSON body is
//! never run as a script or rendered as HTML), and the content security
//! policy of the one HTML page, `/docs`.

use std::future::Future;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};

const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");

/// What the `/docs` page (utoipa-scalar's template) needs and nothing
/// more: the spec sits in a `<script type="application/json">` data block,
/// which is never executed and so needs no `script-src`; Scalar's one
/// script comes from jsDelivr; Scalar injects its styles as `<style>`
/// elements at run time (hence `'unsafe-inline'` for styles only) and
/// takes its fonts from fonts.scalar.com; its "try it" requests go to this
/// server. No frames, forms, plugins or base URL.
pub const DOCS_CSP: &str = "default-src 'none'; \
    script-src https://cdn.jsdelivr.net; \
    style-src 'unsafe-inline' https://fonts.scalar.com; \
    font-src https://fonts.scalar.com; \
    img-src 'self' data:; \
    connect-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The outermost layer: it sees every response, those of handlers and
/// those made from a middleware's error alike.
pub fn nosniff<S, B>(
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody + 'static,
{
    let response = service.call(req);
    async move {
        match response.await {
            Ok(mut response) => {
                response
                    .headers_mut()
                    .insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
                Ok(response)
            }
            Err(mut error) => {
                error.add_response_mapper(|mut response| {
                    response
                        .headers_mut()
                        .insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
                    response
                });
                Err(error)
            }
        }
    }
}
