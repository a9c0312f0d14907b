//! The framework's ceiling, for `cargo xtask bench`.
//!
//! The original's figures put its list against "a static body of the same
//! size" on a trivial actix-web app. This is that app: actix-web with its
//! defaults (as many workers as cores), a trivial handler and one that
//! sends fixed bytes from memory, nothing else: no routing of ours, no
//! cache, no middleware, the whole body handed to actix at once. What it
//! reaches for the cached list's exact bytes on the bench's machine is
//! what the framework with its defaults does there, so the bench reports
//! the server's list against it.

use std::net::TcpListener;
use std::path::Path;

use actix_web::dev::Server;
use actix_web::http::header::ContentType;
use actix_web::{App, HttpResponse, HttpServer, web};
use bytes::Bytes;

/// The trivial handler.
pub const TRIVIAL: &str = "/healthz";
/// Readiness, as the bench waits for it: as trivial.
pub const READY: &str = "/readyz";
/// The fixed bytes.
pub const BODY: &str = "/body";

pub fn serve(listener: TcpListener, body: Bytes) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        let body = body.clone();
        App::new()
            .route(TRIVIAL, web::get().to(HttpResponse::Ok))
            .route(READY, web::get().to(HttpResponse::Ok))
            .route(
                BODY,
                web::get().to(move || {
                    let body = body.clone();
                    async move {
                        HttpResponse::Ok()
                            .insert_header(ContentType::json())
                            .body(body)
                    }
                }),
            )
    })
    .listen(listener)?
    .run();
    Ok(server)
}

/// Serves `file`'s bytes on `HOST`:`PORT` (127.0.0.1:8090 by default),
/// as the bench starts the server, until SIGINT or SIGTERM.
pub async fn run(file: &Path) -> std::io::Result<()> {
    let body = Bytes::from(std::fs::read(file)?);
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port = std::env::var("PORT").unwrap_or_else(|_| "8090".to_owned());
    let listener = TcpListener::bind(format!("{host}:{port}"))?;
    serve(listener, body)?.await
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn raw_get(port: u16, path: &str) -> Vec<u8> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        response
    }

    #[actix_web::test]
    async fn answers_trivially_and_sends_the_bytes_it_was_given() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = Bytes::from((0..300_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let server = serve(listener, body.clone()).unwrap();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let (trivial, sent) = actix_web::rt::task::spawn_blocking(move || {
            (raw_get(port, TRIVIAL), raw_get(port, BODY))
        })
        .await
        .unwrap();
        handle.stop(false).await;
        assert!(trivial.starts_with(b"HTTP/1.1 200"));
        assert!(sent.starts_with(b"HTTP/1.1 200"));
        assert!(sent.ends_with(&body), "the body, whole and last");
    }
}
