//! Rate limits per API key, or per client address when the request has no
//! key (`RATE_LIMIT_PER_MINUTE`, off by default), and the lockout of
//! addresses that fail admin authentication (on by default).
//!
//! The middleware [`limit`] runs outside the header checks and the
//! handlers, so a refused request costs no body read, no database and no
//! cache. It answers 429 with `Retry-After` and the RateLimit header
//! fields of draft-ietf-httpapi-ratelimit-headers (draft 10):
//! `RateLimit-Policy: "default";q=<per minute>;w=60` and
//! `RateLimit: "default";r=<remaining>;t=<seconds>`, which allowed
//! responses carry too while the limit is on. The operational endpoints
//! (`/healthz`, `/readyz`, `/metrics`) are never limited: a load balancer
//! or a scraper must not take an instance out because it asked often.
//!
//! The budget is the shared store's (Redis) when it answers, the
//! process's otherwise (see `ratelimit::Limiter`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{Error, HttpMessage, HttpRequest};
use ratelimit::{
    Decision, Failure, Limiter, Lockout, LockoutPolicy, Quota, RateStore, Source, Subject,
};

use crate::caller::KeyPrefix;
use crate::client_address::{self, ClientAddress, TrustedProxies};
use crate::error::ApiError;
use crate::metrics::Metrics;

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The one policy's name in the header fields.
const POLICY: &str = "default";
/// The window the policy is stated over, in seconds: the quota is per
/// minute.
const WINDOW_SECS: u32 = 60;

/// Never limited (see the module's documentation).
pub(crate) const EXEMPT: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The settings of both: what the server reads from the environment, and
/// the shared store it makes.
#[derive(Clone, Default)]
pub struct RateLimitSettings {
    /// `RATE_LIMIT_PER_MINUTE` and `RATE_LIMIT_BURST`; `None`: off.
    pub quota: Option<Quota>,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: TrustedProxies,
    /// `ADMIN_AUTH_MAX_FAILURES`, `ADMIN_AUTH_WINDOW_SECS`.
    pub admin_lockout: LockoutPolicy,
    /// The budgets every instance shares (Redis); `None`: per process.
    pub store: Option<Arc<dyn RateStore>>,
    /// The bound on the shared store's answer (`CACHE_TIMEOUT_MS`).
    pub store_timeout: Duration,
}

impl std::fmt::Debug for RateLimitSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitSettings")
            .field("quota", &self.quota)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("admin_lockout", &self.admin_lockout)
            .field("store", &self.store.as_ref().map(|_| "shared"))
            .field("store_timeout", &self.store_timeout)
            .finish()
    }
}

/// What the middleware and the admin endpoints share, once per server.
pub struct RateLimiting {
    limiter: Limiter,
    lockout: Lockout,
    trusted: TrustedProxies,
}

impl RateLimiting {
    pub fn new(settings: RateLimitSettings) -> Self {
        Self {
            limiter: Limiter::new(settings.quota, settings.store, settings.store_timeout),
            lockout: Lockout::new(settings.admin_lockout),
            trusted: settings.trusted_proxies,
        }
    }
}

/// A refusal by the rate limit: what its 429 says.
#[derive(Debug, Clone)]
pub struct Throttled {
    pub retry_after: u64,
    pub policy: HeaderValue,
    pub limit: HeaderValue,
}

/// Whole seconds, rounded up: a client that waits this long is served.
fn seconds(duration: Duration) -> u64 {
    duration.as_micros().div_ceil(1_000_000) as u64
}

fn policy_header(quota: &Quota) -> HeaderValue {
    let value = format!("\"{POLICY}\";q={};w={WINDOW_SECS}", quota.per_minute());
    HeaderValue::from_str(&value).expect("digits and quotes make a header value")
}

fn limit_header(decision: &Decision) -> HeaderValue {
    let value = format!(
        "\"{POLICY}\";r={};t={}",
        decision.remaining,
        seconds(decision.reset)
    );
    HeaderValue::from_str(&value).expect("digits and quotes make a header value")
}

/// The middleware (`.wrap(from_fn(rate_limit::limit))`).
pub async fn limit<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let Some(limits) = req.app_data::<Data<RateLimiting>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let address = client_address::resolve(req.peer_addr(), req.headers(), &limits.trusted);
    req.extensions_mut().insert(ClientAddress(address));
    let quota = match limits.limiter.quota() {
        Some(quota) if !EXEMPT.contains(&req.path()) => *quota,
        _ => return Ok(next.call(req).await?.map_into_left_body()),
    };
    let subject = match req.extensions().get::<KeyPrefix>() {
        Some(KeyPrefix(prefix)) => Subject::key(prefix.clone()),
        None => Subject::address(address),
    };
    let Some(checked) = limits.limiter.check(&subject).await else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let metrics = req.app_data::<Data<Metrics>>().cloned();
    if checked.source == Source::Fallback
        && let Some(metrics) = &metrics
    {
        metrics.rate_limit_fallback();
    }
    let policy = policy_header(&quota);
    let limit = limit_header(&checked.decision);
    if !checked.decision.allowed {
        if let Some(metrics) = &metrics {
            metrics.rate_limited();
        }
        tracing::debug!(%subject, "rate limited");
        let refusal = ApiError::TooManyRequests(Throttled {
            retry_after: seconds(checked.decision.reset).max(1),
            policy,
            limit,
        });
        return Ok(req.error_response(refusal).map_into_right_body());
    }
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    headers.insert(RATELIMIT_POLICY, policy);
    headers.insert(RATELIMIT, limit);
    Ok(response.map_into_left_body())
}

/// The admin lockout around one password check: refused at once while the
/// client's address is locked out (the password is not looked at), and
/// the check's outcome recorded: a failure counted, logged and maybe
/// locking the address out, a success clearing its record.
pub(crate) fn admin_attempt(
    req: &HttpRequest,
    check: impl FnOnce() -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let Some(limits) = req.app_data::<Data<RateLimiting>>() else {
        return check();
    };
    let address = client_address::of_request(req, &limits.trusted);
    let subject = Subject::address(address);
    let now = Instant::now();
    if let Some(left) = limits.lockout.locked(&subject, now) {
        return Err(ApiError::AdminLockedOut {
            retry_after: seconds(left).max(1),
        });
    }
    let checked = check();
    match &checked {
        Ok(()) => limits.lockout.succeeded(&subject),
        // A wrong password beside a key without `admin` is refused as a
        // 403; it is a guess all the same.
        Err(ApiError::Unauthorized | ApiError::InsufficientScope(_)) => {
            let metrics = req.app_data::<Data<Metrics>>();
            if let Some(metrics) = metrics {
                metrics.admin_auth_failure();
            }
            match limits.lockout.failed(&subject, now) {
                Failure::Counted { failures } => {
                    tracing::warn!(client = %address, failures, "failed admin authentication");
                }
                Failure::LockedOut { failures, delay } => {
                    if let Some(metrics) = metrics {
                        metrics.admin_auth_lockout();
                    }
                    tracing::warn!(
                        client = %address,
                        failures,
                        locked_out_secs = seconds(delay),
                        "failed admin authentication: address locked out"
                    );
                }
            }
        }
        Err(_) => {}
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_follow_the_draft() {
        let quota = Quota::new(120, 10).unwrap();
        assert_eq!(policy_header(&quota), "\"default\";q=120;w=60");
        let decision = Decision {
            allowed: true,
            remaining: 7,
            reset: Duration::from_millis(1500),
        };
        assert_eq!(limit_header(&decision), "\"default\";r=7;t=2");
    }

    /// The contract with the API-key check: a [`KeyPrefix`] in the
    /// request's extensions, put there by a middleware outside this one,
    /// makes the key the subject; without it the address is.
    #[actix_web::test]
    async fn a_key_has_its_own_budget_and_without_one_the_address_is_limited() {
        use actix_web::dev::Service as _;
        use actix_web::middleware::from_fn;
        use actix_web::test::{TestRequest, call_service, init_service};
        use actix_web::{App, HttpResponse, web};

        let settings = RateLimitSettings {
            quota: Some(Quota::new(6, 1).unwrap()),
            ..RateLimitSettings::default()
        };
        let app = init_service(
            App::new()
                .app_data(Data::new(RateLimiting::new(settings)))
                .route("/orders", web::get().to(HttpResponse::Ok))
                .route("/healthz", web::get().to(HttpResponse::Ok))
                .wrap(from_fn(limit))
                .wrap_fn(|req, service| {
                    if let Some(key) = req.headers().get("x-test-key") {
                        let key = KeyPrefix(key.to_str().unwrap().to_owned());
                        req.extensions_mut().insert(key);
                    }
                    service.call(req)
                }),
        )
        .await;
        let status = async |path: &str, peer: &str, key: Option<&str>| {
            let mut request = TestRequest::get()
                .uri(path)
                .peer_addr(format!("{peer}:40000").parse().unwrap());
            if let Some(key) = key {
                request = request.insert_header(("x-test-key", key));
            }
            call_service(&app, request.to_request())
                .await
                .status()
                .as_u16()
        };
        assert_eq!(status("/orders", "192.0.2.1", None).await, 200);
        assert_eq!(status("/orders", "192.0.2.1", None).await, 429);
        assert_eq!(
            status("/orders", "192.0.2.1", Some("ok_k1")).await,
            200,
            "the key's own"
        );
        assert_eq!(status("/orders", "192.0.2.1", Some("ok_k1")).await, 429);
        assert_eq!(
            status("/orders", "192.0.2.9", Some("ok_k1")).await,
            429,
            "wherever from"
        );
        assert_eq!(status("/orders", "192.0.2.1", Some("ok_k2")).await, 200);
        assert_eq!(status("/orders", "192.0.2.2", None).await, 200);
        for _ in 0..5 {
            assert_eq!(
                status("/healthz", "192.0.2.1", None).await,
                200,
                "never limited"
            );
        }
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(seconds(Duration::from_micros(1)), 1);
        assert_eq!(seconds(Duration::from_secs(3)), 3);
        assert_eq!(seconds(Duration::ZERO), 0);
    }
}
