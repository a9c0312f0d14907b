//! The HTTP API of the orders service. Handlers are generic over the
//! domain's [`OrderRepository`]; only the server names a concrete one.

mod admin;
mod auth;
mod body;
pub mod caller;
mod client_address;
mod compression;
mod conditional;
mod drain;
mod error;
mod input;
mod limits;
mod metrics;
mod openapi;
mod ops;
mod orders;
mod precedence;
mod precompressed;
mod rate_limit;
mod security;
mod sliced;
mod streamed;
mod telemetry;

use std::net::TcpListener;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use domain::OrderRepository;

pub use admin::AdminPassword;
pub use auth::{KeyPolicy, KeyRequirement, KeyRing, load_keys, refresh_keys};
pub use client_address::TrustedProxies;
pub use drain::Drain;
pub use error::ApiError;
pub use limits::{ACTIX_MAX_HEAD_BYTES, ACTIX_MAX_HEADERS, Limits};
pub use metrics::Metrics;
pub use openapi::ApiDoc;
pub use rate_limit::RateLimitSettings;

/// What a request's bytes become before a handler acts on them: every
/// parser of outside input, public for the fuzz targets
/// (`crates/fuzz-targets`), which call exactly what the handlers call.
pub mod parsers {
    pub use crate::body::parse as json_body;
    pub use crate::conditional::{IfMatch, if_match, none_match_hits};
    pub use crate::input::{ListParams, idempotency_key, new_order, status_change};
}

/// What every handler shares.
pub struct AppState<R> {
    pub repo: R,
    pub admin: AdminPassword,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub admin_password: AdminPassword,
    /// `None`: any origin, as the original allowed.
    pub cors_origins: Option<Vec<String>>,
    pub workers: usize,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_timeout: Duration,
    /// Bounds on slow and abusive clients.
    pub limits: Limits,
    /// `API_KEY_REQUIRED`: which requests need an API key.
    pub api_key_required: KeyRequirement,
    /// Rate limits (off unless a quota is set) and the admin lockout.
    pub rate_limits: RateLimitSettings,
}

fn cors(origins: Option<&[String]>) -> Cors {
    let cors = match origins {
        None => Cors::default().allow_any_origin(),
        Some(origins) => origins
            .iter()
            .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin)),
    };
    // A disallowed origin is answered as usual, only without CORS headers
    // (the browser then blocks it), rather than with a plain-text 400.
    cors.block_on_origin_mismatch(false)
        .allow_any_method()
        .allow_any_header()
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::HeaderName::from_static("x-request-id"),
            header::HeaderName::from_static("idempotent-replayed"),
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            rate_limit::RATELIMIT_POLICY,
            rate_limit::RATELIMIT,
        ])
        .max_age(3600)
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    })
}

/// The default service of a resource: a JSON 405 naming the methods it has.
fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move |req: HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allow,
        })
    })
}

/// Registers every route; also used by tests that build an `App` directly.
pub fn configure<R: OrderRepository>(cfg: &mut web::ServiceConfig) {
    orders::configure::<R>(cfg);
    admin::configure::<R>(cfg);
    ops::configure::<R>(cfg);
}

/// How long an idle keep-alive connection stays open (actix-web's default,
/// named because a graceful stop waits for it).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Builds the server on a bound listener (port 0 in tests): plain HTTP/1.1,
/// or with `tls` HTTPS offering HTTP/2 and HTTP/1.1 by ALPN (actix-web adds
/// both protocols to the configuration's own). Signals are the caller's: it
/// stops the server through its handle, after starting `drain` for a stop
/// that closes no connection under a client (see [`Drain`]). Requests'
/// API keys are checked against `keys`, which the caller keeps current
/// ([`refresh_keys`]).
pub fn serve<R: OrderRepository>(
    repo: R,
    settings: HttpSettings,
    listener: TcpListener,
    tls: Option<rustls::ServerConfig>,
    drain: Drain,
    keys: KeyRing,
) -> std::io::Result<Server> {
    let state = web::Data::new(AppState {
        repo,
        admin: settings.admin_password.clone(),
    });
    let metrics = web::Data::new(Metrics::default());
    let origins = settings.cors_origins.clone();
    let connections = drain.clone();
    let limits = settings.limits;
    let policy = KeyPolicy {
        required: settings.api_key_required,
        keys,
    };
    let rate_limiting = web::Data::new(rate_limit::RateLimiting::new(settings.rate_limits));
    let precedence = precedence::Precedence::default();
    let server = HttpServer::new(move || {
        let drain = drain.clone();
        let policy = policy.clone();
        let first = precedence.clone();
        App::new()
            .app_data(limits)
            .app_data(precedence.clone())
            .app_data(state.clone())
            .app_data(metrics.clone())
            .app_data(rate_limiting.clone())
            .app_data(web::Data::new(drain.clone()))
            .app_data(web::QueryConfig::default().error_handler(|error, _req| {
                ApiError::bad_request("invalid_query", format!("Invalid query string: {error}."))
                    .into()
            }))
            .configure(configure::<R>)
            .default_service(web::to(not_found))
            .wrap_fn(move |req, service| limits::check_headers(limits, req, service))
            .wrap(from_fn(rate_limit::limit))
            .wrap_fn(move |req, service| auth::check_api_key(&policy, req, service))
            .wrap(from_fn(compression::compress))
            .wrap(cors(origins.as_deref()))
            .wrap_fn(move |req, service| drain::close_while_draining(drain.clone(), req, service))
            // Outside every check, so a request counts from its first poll.
            .wrap_fn(move |req, service| precedence::others_first(&first, req, service))
            .wrap_fn(telemetry::observe)
            .wrap_fn(security::nosniff)
    })
    .on_connect(move |_, data| {
        data.insert(connections.connection());
    })
    .disable_signals()
    .keep_alive(KEEP_ALIVE)
    .workers(settings.workers.max(1))
    // A large body goes out in several writes (see `sliced`); with Nagle's
    // algorithm the last short segment would wait for the client's delayed
    // ACK (40 ms) whenever the client has nothing to send meanwhile.
    .tcp_nodelay(true)
    .shutdown_timeout(settings.shutdown_timeout.as_secs())
    .client_request_timeout(limits.header_timeout)
    .max_connections(limits.connections_per_worker(settings.workers));
    let server = match tls {
        None => server.listen(listener)?,
        Some(tls) => server.listen_rustls_0_23(listener, tls)?,
    };
    Ok(server.run())
}
