//! Response compression from 1 KiB up, as the contract puts it.
//!
//! actix's `Compress` middleware encodes every response whose client
//! accepts gzip or brotli, whatever its size. A cached order (about 300
//! bytes) then went through a fresh encoder per request and out chunked,
//! hardly smaller: a detail hit for a client sending `Accept-Encoding:
//! gzip` ran at a fifth of the rate of one without it, with `br` at a
//! twelfth (wrk, 32 connections). Every browser sends both. This
//! middleware negotiates as `Compress` does and encodes through the same
//! encoder, but sends bodies of known size under 1 KiB as they are, with
//! their `Content-Length`, unless the client refused identity. Unlike
//! `Compress` it has no exception for images and video (this API sends
//! none), and its 406 has the JSON error body.
//!
//! A handler can also choose the encoding itself and mark its response
//! with [`EncodingChosen`]; such a response goes out as it is. The list
//! handler does so for lists of parts (hundreds of megabytes, streamed):
//! it sends their gzip laid out from parts deflated once each, or their
//! identity, or a 406, from the same negotiation as for whole lists. A
//! `Content-Encoding` header alone would not do for identity (RFC 9110
//! reserves `identity` for `Accept-Encoding`), and without the mark a
//! client sending only `br` or `deflate` (identity is then acceptable, and
//! the list handler picks it) would have the whole streamed body, of known
//! size, compressed here per response on the worker's thread. Whole lists
//! are not marked: with `br` alone they are still compressed here.

use actix_http::encoding::Encoder;
use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, AcceptEncoding, ContentEncoding, Encoding, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError};

use crate::error::ApiError;

/// Smaller bodies gain little and cost an encoder each.
const MIN_BYTES: u64 = 1024;

/// What the enabled actix features can encode, as `Compress` offers them.
static SUPPORTED: [Encoding; 4] = [
    Encoding::identity(),
    Encoding::brotli(),
    Encoding::gzip(),
    Encoding::deflate(),
];

/// A response extension: the handler chose this response's encoding from
/// the request (it has a `Content-Encoding`, or is identity on purpose, or
/// is the 406 of [`not_acceptable`]), so the middleware sends it as it is.
#[derive(Debug, Clone, Copy)]
pub struct EncodingChosen;

/// The JSON 406 for a request that refuses every encoding offered.
pub fn not_acceptable() -> HttpResponse {
    let mut refusal = ApiError::Status(StatusCode::NOT_ACCEPTABLE).error_response();
    refusal
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    refusal.extensions_mut().insert(EncodingChosen);
    refusal
}

fn worth_compressing(size: BodySize) -> bool {
    match size {
        BodySize::None => false,
        BodySize::Sized(bytes) => bytes >= MIN_BYTES,
        BodySize::Stream => true,
    }
}

/// The middleware (`actix_web::middleware::from_fn(compress)`).
pub async fn compress<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<Encoder<B>>>, Error> {
    let mut identity_allowed = true;
    let encoding = match req.get_header::<AcceptEncoding>() {
        None => ContentEncoding::Identity,
        Some(accepted) => match accepted.negotiate(SUPPORTED.iter()) {
            Some(Encoding::Known(encoding)) if encoding != ContentEncoding::Identity => {
                identity_allowed = accepted
                    .negotiate(std::iter::once(&Encoding::identity()))
                    .is_some();
                encoding
            }
            Some(Encoding::Known(encoding)) => encoding,
            // `negotiate` picks one of `SUPPORTED`, all of them known.
            Some(Encoding::Unknown(_)) => ContentEncoding::Identity,
            // Even identity was refused (`identity;q=0, *;q=0`).
            None => return Ok(req.into_response(not_acceptable()).map_into_right_body()),
        },
    };
    let response = next.call(req).await?;
    let chosen = response
        .response()
        .extensions()
        .contains::<EncodingChosen>();
    Ok(response.map_body(move |head, body| {
        let encoding = if chosen {
            ContentEncoding::Identity
        } else if worth_compressing(body.size()) || !identity_allowed {
            encoding
        } else {
            ContentEncoding::Identity
        };
        // A response that already has a Content-Encoding (a list sent
        // with its kept gzip copy) is left alone by the encoder.
        EitherBody::left(Encoder::response(encoding, head, body))
    }))
}

#[cfg(test)]
mod tests {
    use actix_web::middleware::from_fn;
    use actix_web::test::{TestRequest, call_service, init_service, read_body};
    use actix_web::{App, HttpResponse, web};

    use super::*;

    async fn answer(path: &str, accept_encoding: &str) -> (StatusCode, Vec<(String, String)>) {
        let app = init_service(
            App::new()
                .wrap(from_fn(compress))
                .route(
                    "/small",
                    web::get().to(|| async { HttpResponse::Ok().body(vec![b'a'; 1023]) }),
                )
                .route(
                    "/large",
                    web::get().to(|| async { HttpResponse::Ok().body(vec![b'a'; 1024]) }),
                ),
        )
        .await;
        let request = TestRequest::get()
            .uri(path)
            .insert_header((header::ACCEPT_ENCODING, accept_encoding))
            .to_request();
        let response = call_service(&app, request).await;
        let status = response.status();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        (status, headers)
    }

    fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[actix_web::test]
    async fn bodies_from_one_kib_are_compressed_smaller_ones_are_not() {
        for encoding in ["gzip", "br", "deflate"] {
            let (_, small) = answer("/small", encoding).await;
            assert_eq!(get(&small, "content-encoding"), None, "{encoding}");
            let (_, large) = answer("/large", encoding).await;
            assert_eq!(get(&large, "content-encoding"), Some(encoding));
            assert_eq!(get(&large, "vary"), Some("accept-encoding"));
        }
        let (_, plain) = answer("/large", "identity").await;
        assert_eq!(get(&plain, "content-encoding"), None);
    }

    #[actix_web::test]
    async fn a_response_whose_handler_chose_its_encoding_is_left_alone() {
        let app = init_service(App::new().wrap(from_fn(compress)).route(
            "/chosen",
            web::get().to(|| async {
                let mut response = HttpResponse::Ok();
                response.extensions_mut().insert(EncodingChosen);
                response.body(vec![b'a'; 4096])
            }),
        ))
        .await;
        for accept_encoding in ["gzip", "br", "deflate", "br, identity;q=0"] {
            let request = TestRequest::get()
                .uri("/chosen")
                .insert_header((header::ACCEPT_ENCODING, accept_encoding))
                .to_request();
            let response = call_service(&app, request).await;
            assert_eq!(
                response.headers().get(header::CONTENT_ENCODING),
                None,
                "{accept_encoding}"
            );
            assert_eq!(read_body(response).await.len(), 4096);
        }
    }

    #[actix_web::test]
    async fn a_client_refusing_identity_gets_even_small_bodies_encoded() {
        let (_, small) = answer("/small", "br, identity;q=0").await;
        assert_eq!(get(&small, "content-encoding"), Some("br"));
    }

    #[actix_web::test]
    async fn a_client_refusing_every_encoding_gets_a_json_406() {
        let app = init_service(
            App::new()
                .wrap(from_fn(compress))
                .route("/", web::get().to(HttpResponse::Ok)),
        )
        .await;
        let request = TestRequest::get()
            .insert_header((header::ACCEPT_ENCODING, "identity;q=0, *;q=0"))
            .to_request();
        let response = call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::NOT_ACCEPTABLE);
        let body: serde_json::Value = serde_json::from_slice(&read_body(response).await).unwrap();
        assert_eq!(body["code"], "not_acceptable");
    }
}
