//! Bounds on slow and abusive clients: how long a request's headers and
//! body may take to arrive, how large and how many its headers may be, and
//! how many connections the process holds.
//!
//! actix-web enforces some of them itself: the time to receive the first
//! request's headers (`client_request_timeout`, answered with a bare 408),
//! a request head of at most 128 KiB and 96 headers (beyond: a bare 431),
//! and connections per worker (`max_connections`: past it the worker stops
//! accepting, and new connections wait in the socket's backlog). Below
//! those, [`check_headers`] answers the JSON 431 the contract asks for, on
//! HTTP/1.1 and HTTP/2 alike; the body's bound is in [`crate::body`], since
//! actix-web reads a body only when a handler asks for it.

use std::future::Future;
use std::time::Duration;

use actix_web::Error;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};

use crate::error::ApiError;

/// The most headers actix-web parses in one HTTP/1 request; one more and it
/// answers a bare 431 itself.
pub const ACTIX_MAX_HEADERS: usize = 96;

/// The largest HTTP/1 request head (request line and headers) actix-web
/// buffers; a larger one gets a bare 431 and the connection is closed.
pub const ACTIX_MAX_HEAD_BYTES: usize = 128 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From a connection's opening to the end of its first request's
    /// headers (actix-web's `client_request_timeout`).
    pub header_timeout: Duration,
    /// From the end of the headers to the end of the body, for the bodies
    /// handlers read.
    pub body_timeout: Duration,
    /// The request's headers, counted as `name: value\r\n`.
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Client connections the process holds at once, shared out among the
    /// workers.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_connections: 10_000,
        }
    }
}

impl Limits {
    /// actix-web counts connections per worker; each gets an equal share of
    /// the process's bound (rounded up, at least one).
    pub fn connections_per_worker(&self, workers: usize) -> usize {
        self.max_connections.div_ceil(workers.max(1)).max(1)
    }
}

/// The size of the headers as they were sent on HTTP/1.1 (`name: value`
/// and a line break each); HTTP/2 sends the same fields compressed, and is
/// held to the same bound.
fn header_bytes(req: &ServiceRequest) -> usize {
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// Middleware: a request with too many headers, or too large ones, gets a
/// JSON 431 before any handler runs.
pub(crate) fn check_headers<S, B>(
    limits: Limits,
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<EitherBody<B>>, Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    let count = req.headers().len();
    let bytes = header_bytes(&req);
    let refused = if count > limits.max_headers {
        Some(ApiError::HeadersTooLarge(format!(
            "Too many request headers: {count}, at most {} are accepted.",
            limits.max_headers
        )))
    } else if bytes > limits.max_header_bytes {
        Some(ApiError::HeadersTooLarge(format!(
            "Request headers too large: {bytes} bytes, at most {} are accepted.",
            limits.max_header_bytes
        )))
    } else {
        None
    };
    let response = match refused {
        Some(error) => Err(req.error_response(error).map_into_right_body()),
        None => Ok(service.call(req)),
    };
    async move {
        match response {
            Err(refused) => Ok(refused),
            Ok(response) => Ok(response.await?.map_into_left_body()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_shared_out_among_workers() {
        let limits = Limits {
            max_connections: 10,
            ..Limits::default()
        };
        assert_eq!(limits.connections_per_worker(1), 10);
        assert_eq!(limits.connections_per_worker(3), 4);
        assert_eq!(limits.connections_per_worker(0), 10);
        assert_eq!(limits.connections_per_worker(20), 1);
    }
}
