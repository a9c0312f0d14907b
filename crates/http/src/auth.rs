//! API keys on requests (`Authorization: Bearer <key>`): which routes need
//! one under `API_KEY_REQUIRED`, which scope each route needs, and the
//! keys each process holds in memory, reloaded from the database every
//! `API_KEY_REFRESH_MS` ([`refresh_keys`]). A request's check is a SHA-256
//! and a map lookup: no database round trip.
//!
//! - `/health…`, `/readyz`, `/metrics`, `/openapi.json`, `/docs` and any
//!   other path outside `/orders` and `/admin` never look at a key.
//! - `/orders…`: `GET`/`HEAD` need `orders:read`, other methods
//!   `orders:write`, when the mode asks for a key there (`writes`: only
//!   for writes; `all`: for both). Under `none` nothing is needed.
//! - `/admin/…`: the admin password, or a key with `admin`, in every mode;
//!   the check is the handler's ([`crate::admin`]), which sees the key's
//!   scopes as [`Granted`].
//!
//! A key that is presented is always checked, in every mode: an unknown,
//! revoked or malformed one is a 401, so a client learns of a mistake
//! before the mode starts to require keys. A valid key is never refused
//! for a scope where no key is needed (it can do what anonymous callers
//! can). A non-Bearer `Authorization` (Basic, from a proxy) counts as no
//! key.

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::web::Data;
use actix_web::{Error, HttpMessage, HttpRequest};
use domain::{ApiKeyStore, KeySet, PresentedKey, RepoError, Scope, Scopes};

use crate::caller::KeyPrefix;
use crate::error::ApiError;
use crate::metrics::{KeyCheck, Metrics};

/// `API_KEY_REQUIRED`: which requests need a key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyRequirement {
    /// As the original: nothing needs a key.
    #[default]
    None,
    /// Order writes (POST, PATCH, PUT, DELETE) need `orders:write`.
    Writes,
    /// Order reads need `orders:read` too.
    All,
}

impl KeyRequirement {
    pub fn parse(raw: &str) -> Option<KeyRequirement> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "none" => Some(Self::None),
            "writes" => Some(Self::Writes),
            "all" => Some(Self::All),
            _ => None,
        }
    }
}

/// The active keys this process checks requests against. Cloning shares
/// them; [`refresh_keys`] replaces them as a whole, so a request sees one
/// consistent set.
#[derive(Clone, Default)]
pub struct KeyRing(Arc<RwLock<Arc<KeySet>>>);

impl KeyRing {
    pub fn replace(&self, keys: KeySet) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
    }

    fn current(&self) -> Arc<KeySet> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRing({} keys)", self.current().len())
    }
}

/// Reads the active keys once into `ring`; how many there are.
pub async fn load_keys<S: ApiKeyStore>(store: &S, ring: &KeyRing) -> Result<usize, RepoError> {
    let keys = KeySet::new(store.active_api_keys().await?);
    let count = keys.len();
    ring.replace(keys);
    Ok(count)
}

/// Reloads the keys every `every`, for ever: a key made or revoked on any
/// instance is seen here within that. A failed reload keeps the last good
/// set (a database outage must not lock every client out, nor let revoked
/// keys back in) and logs, once per outage.
pub async fn refresh_keys<S: ApiKeyStore>(store: S, ring: KeyRing, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticks.tick().await;
        match load_keys(&store, &ring).await {
            Ok(count) => {
                if failing {
                    tracing::info!(keys = count, "API keys reloaded again");
                }
                failing = false;
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(
                        error = %error_chain(&error),
                        "reloading the API keys failed; the last ones loaded stay in force"
                    );
                }
                failing = true;
            }
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The scopes of the key a request showed, for handlers that decide
/// themselves (the admin endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Granted(pub Scopes);

/// The scopes of the request's valid key, if it showed one.
pub(crate) fn granted(req: &HttpRequest) -> Option<Scopes> {
    req.extensions().get::<Granted>().map(|granted| granted.0)
}

/// What a route asks of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Never looks at a key.
    Open,
    /// An orders route, and the scope it needs when the mode wants a key.
    Orders(Scope),
    /// The password or an `admin` key, checked by the handler.
    Admin,
}

pub(crate) fn access(method: &Method, path: &str) -> Access {
    let under = |root: &str| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/orders") {
        if method == Method::GET || method == Method::HEAD {
            Access::Orders(Scope::OrdersRead)
        } else {
            // Unknown methods too: they are answered 405, and a caller
            // without the right to write learns nothing from that.
            Access::Orders(Scope::OrdersWrite)
        }
    } else if under("/admin") {
        Access::Admin
    } else {
        Access::Open
    }
}

/// Whether the mode wants a key for this scope of the orders routes.
fn needs_key(required: KeyRequirement, scope: Scope) -> bool {
    match required {
        KeyRequirement::None => false,
        KeyRequirement::Writes => scope != Scope::OrdersRead,
        KeyRequirement::All => true,
    }
}

/// The token of a `Bearer` authorization; `Ok(None)` without one (no
/// header, or another scheme). A value that is not text is a bad token.
fn bearer_token(req: &ServiceRequest) -> Result<Option<String>, ()> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(drop)?.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    Ok(Some(token.trim().to_owned()))
}

/// How this process checks keys: the mode and the keys.
#[derive(Clone, Debug)]
pub struct KeyPolicy {
    pub required: KeyRequirement,
    pub keys: KeyRing,
}

/// A valid key's prefix and scopes.
struct Shown {
    prefix: String,
    scopes: Scopes,
}

impl KeyPolicy {
    /// The key the request shows, checked: `Ok(None)` when it shows none.
    fn shown(&self, req: &ServiceRequest) -> Result<Option<Shown>, ApiError> {
        let token = match bearer_token(req) {
            Ok(Some(token)) => token,
            Ok(None) => return Ok(None),
            Err(()) => return Err(ApiError::InvalidApiKey),
        };
        let Ok(presented) = PresentedKey::parse(&token) else {
            // Not even the form of a key: nothing of it is logged, as it
            // may be some other system's secret. Debug, as the refusals
            // below: the access line already tells of the 401, and a
            // client sending junk must not double the log.
            tracing::debug!("a request showed a token that is not an API key");
            return Err(ApiError::InvalidApiKey);
        };
        match self.keys.current().check(&presented) {
            Some(scopes) => Ok(Some(Shown {
                prefix: presented.prefix().as_str().to_owned(),
                scopes,
            })),
            None => {
                tracing::debug!(key = %presented.prefix(), "unknown or revoked API key");
                Err(ApiError::InvalidApiKey)
            }
        }
    }

    /// The decision for one request: the key it showed, if valid, or the
    /// refusal.
    fn decide(&self, req: &ServiceRequest) -> Result<Option<Shown>, (ApiError, KeyCheck)> {
        let access = access(req.method(), req.path());
        if access == Access::Open {
            return Ok(None);
        }
        let shown = self
            .shown(req)
            .map_err(|error| (error, KeyCheck::Invalid))?;
        if let Access::Orders(scope) = access
            && needs_key(self.required, scope)
        {
            match &shown {
                None => return Err((ApiError::ApiKeyRequired, KeyCheck::Missing)),
                Some(key) if !key.scopes.contains(scope) => {
                    tracing::debug!(key = %key.prefix, scope = %scope, "API key without the scope needed");
                    return Err((
                        ApiError::InsufficientScope(scope),
                        KeyCheck::InsufficientScope,
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(shown)
    }
}

/// Middleware: checks the request's key as [`KeyPolicy`] says; a valid
/// key's prefix ([`KeyPrefix`]) and scopes ([`Granted`]) go into the
/// request's extensions for the layers and handlers after it.
pub(crate) fn check_api_key<S, B>(
    policy: &KeyPolicy,
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<EitherBody<B>>, Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    let decision = policy.decide(&req);
    let metrics = req.app_data::<Data<Metrics>>();
    let count = |outcome| {
        if let Some(metrics) = metrics {
            metrics.key_check(outcome);
        }
    };
    let response = match decision {
        Err((error, outcome)) => {
            count(outcome);
            Err(req.error_response(error).map_into_right_body())
        }
        Ok(shown) => {
            if let Some(shown) = shown {
                count(KeyCheck::Accepted);
                let mut extensions = req.extensions_mut();
                extensions.insert(Granted(shown.scopes));
                extensions.insert(KeyPrefix(shown.prefix));
            }
            Ok(service.call(req))
        }
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
    use actix_web::test::TestRequest;
    use domain::{ActiveKey, NewApiKey};

    use super::*;

    #[test]
    fn routes_need_the_scope_of_what_they_do() {
        let read = Access::Orders(Scope::OrdersRead);
        let write = Access::Orders(Scope::OrdersWrite);
        for (method, path, expected) in [
            (Method::GET, "/orders", read),
            (Method::HEAD, "/orders/abc", read),
            (Method::GET, "/orders/abc", read),
            (Method::POST, "/orders", write),
            (Method::PATCH, "/orders/abc/status", write),
            (Method::DELETE, "/orders/abc", write),
            (Method::PUT, "/orders/abc", write),
            (Method::POST, "/admin/seed", Access::Admin),
            (Method::GET, "/admin", Access::Admin),
            (Method::GET, "/healthz", Access::Open),
            (Method::GET, "/readyz", Access::Open),
            (Method::GET, "/metrics", Access::Open),
            (Method::GET, "/openapi.json", Access::Open),
            (Method::GET, "/docs", Access::Open),
            (Method::GET, "/ordersx", Access::Open),
            (Method::POST, "/administrator", Access::Open),
        ] {
            assert_eq!(access(&method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn modes_ask_for_keys_where_they_say() {
        use KeyRequirement::*;
        for (mode, read, write) in [
            (None, false, false),
            (Writes, false, true),
            (All, true, true),
        ] {
            assert_eq!(needs_key(mode, Scope::OrdersRead), read, "{mode:?}");
            assert_eq!(needs_key(mode, Scope::OrdersWrite), write, "{mode:?}");
        }
        assert_eq!(KeyRequirement::parse(" WRITES "), Some(Writes));
        assert_eq!(KeyRequirement::parse("some"), Option::None);
    }

    fn policy(required: KeyRequirement, key: &NewApiKey) -> KeyPolicy {
        let keys = KeyRing::default();
        keys.replace(KeySet::new([ActiveKey {
            prefix: key.key.prefix.clone(),
            hash: key.hash.clone(),
            scopes: key.key.scopes,
        }]));
        KeyPolicy { required, keys }
    }

    fn outcome(policy: &KeyPolicy, method: Method, path: &str, auth: Option<&str>) -> String {
        let mut req = TestRequest::default().method(method).uri(path);
        if let Some(auth) = auth {
            req = req.insert_header((header::AUTHORIZATION, auth));
        }
        match policy.decide(&req.to_srv_request()) {
            Ok(Some(shown)) => format!("key {}", shown.scopes),
            Ok(None) => "anonymous".to_owned(),
            Err((error, _)) => error.code().to_owned(),
        }
    }

    #[test]
    fn decisions_per_mode_key_and_route() {
        let reader = NewApiKey::generate(Scopes::new([Scope::OrdersRead]).unwrap(), None).unwrap();
        let bearer = format!("Bearer {}", reader.reveal());
        let unknown = NewApiKey::generate(Scopes::new([Scope::OrdersRead]).unwrap(), None).unwrap();
        let unknown = format!("bearer {}", unknown.reveal());

        let none = policy(KeyRequirement::None, &reader);
        assert_eq!(outcome(&none, Method::POST, "/orders", None), "anonymous");
        // A valid key is not refused where no key is needed.
        assert_eq!(
            outcome(&none, Method::POST, "/orders", Some(&bearer)),
            "key orders:read"
        );
        // A wrong one is, in every mode, on every route but the open ones.
        assert_eq!(
            outcome(&none, Method::GET, "/orders", Some(&unknown)),
            "invalid_api_key"
        );
        assert_eq!(
            outcome(&none, Method::GET, "/orders", Some("Bearer nope")),
            "invalid_api_key"
        );
        assert_eq!(
            outcome(&none, Method::GET, "/healthz", Some("Bearer nope")),
            "anonymous"
        );
        assert_eq!(
            outcome(&none, Method::GET, "/orders", Some("Basic dXNlcjpwYXNz")),
            "anonymous"
        );

        let writes = policy(KeyRequirement::Writes, &reader);
        assert_eq!(outcome(&writes, Method::GET, "/orders", None), "anonymous");
        assert_eq!(
            outcome(&writes, Method::POST, "/orders", None),
            "api_key_required"
        );
        assert_eq!(
            outcome(
                &writes,
                Method::DELETE,
                "/orders/x",
                Some("Basic dXNlcjpwYXNz")
            ),
            "api_key_required"
        );
        assert_eq!(
            outcome(&writes, Method::POST, "/orders", Some(&bearer)),
            "insufficient_scope"
        );

        let all = policy(KeyRequirement::All, &reader);
        assert_eq!(
            outcome(&all, Method::GET, "/orders/x", None),
            "api_key_required"
        );
        assert_eq!(
            outcome(&all, Method::GET, "/orders/x", Some(&bearer)),
            "key orders:read"
        );
        assert_eq!(
            outcome(&all, Method::PATCH, "/orders/x/status", Some(&bearer)),
            "insufficient_scope"
        );
        // Admin routes decide in their handler, with the key's scopes.
        assert_eq!(
            outcome(&all, Method::POST, "/admin/seed", None),
            "anonymous"
        );
        assert_eq!(
            outcome(&all, Method::POST, "/admin/seed", Some(&bearer)),
            "key orders:read"
        );
        assert_eq!(outcome(&all, Method::GET, "/metrics", None), "anonymous");
    }
}
