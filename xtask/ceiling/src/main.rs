//! `ceiling FILE`: serves FILE's bytes at `/body` on `HOST`:`PORT`
//! (127.0.0.1:8090 by default) until SIGINT or SIGTERM.

use std::net::TcpListener;

use bytes::Bytes;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let Some(file) = std::env::args_os().nth(1) else {
        eprintln!("usage: ceiling FILE");
        std::process::exit(2);
    };
    let body = Bytes::from(std::fs::read(&file)?);
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port = std::env::var("PORT").unwrap_or_else(|_| "8090".to_owned());
    let listener = TcpListener::bind(format!("{host}:{port}"))?;
    ceiling::serve(listener, body)?.await
}
