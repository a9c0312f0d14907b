//! Request bodies: at most 64 KiB, JSON only, read into a `serde_json::Value`
//! so that handlers can check shapes and types themselves and answer with
//! the field and the rule (the original crashed on non-object bodies).
//! The body must arrive within [`Limits::body_timeout`]: actix-web bounds
//! the time to receive headers, not a body that trickles in.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use bytes::BytesMut;
use futures::StreamExt;
use futures::future::LocalBoxFuture;
use serde_json::Value;

use crate::error::ApiError;
use crate::limits::Limits;

pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON request body, or `None` when the request had none.
pub struct JsonBody(pub Option<Value>);

fn declares_json(req: &HttpRequest) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        // curl and some scripts send JSON without saying so; accept it.
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = declares_json(req);
        let too_long = declared_length(req).is_some_and(|len| len > BODY_LIMIT);
        let deadline = req
            .app_data::<Limits>()
            .copied()
            .unwrap_or_default()
            .body_timeout;
        let mut payload = payload.take();
        Box::pin(async move {
            if too_long {
                return Err(ApiError::PayloadTooLarge);
            }
            let read = async {
                let mut body = BytesMut::new();
                while let Some(chunk) = payload.next().await {
                    let chunk = chunk.map_err(|error| {
                        ApiError::bad_request(
                            "invalid_body",
                            format!("Could not read the body: {error}."),
                        )
                    })?;
                    if body.len() + chunk.len() > BODY_LIMIT {
                        return Err(ApiError::PayloadTooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            };
            let body = actix_web::rt::time::timeout(deadline, read)
                .await
                .map_err(|_| ApiError::BodyTimeout(deadline.as_millis()))??;
            parse(&body, is_json).map(Self)
        })
    }
}

/// A whole body's bytes as JSON: `None` for an empty (or all-blank) body,
/// which handlers answer with their own "missing field" wording.
/// `declared_json`: whether the request's `Content-Type` allowed JSON.
pub fn parse(body: &[u8], declared_json: bool) -> Result<Option<Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !declared_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(body).map(Some).map_err(|error| {
        ApiError::bad_request(
            "invalid_json",
            format!("Request body is not valid JSON: {error}."),
        )
    })
}
