//! Configuration: the original's environment variables plus our new ones,
//! read from the environment, then a `.env` file in the working directory,
//! then defaults. Every value is parsed here, once; an invalid one is an
//! error naming its variable, never silently ignored.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use cache::redis::ConnectionAddr;
use cache::{CaCertificates, CacheConfig};
use config::{Config, Environment};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use storage::{DatabaseUrl, FullListConfig, StorageConfig};

use crate::tls::TlsSettings;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{variable}: {message}")]
    Invalid {
        variable: &'static str,
        message: String,
    },
    #[error(".env: {0}")]
    DotEnv(#[from] dotenvy::Error),
    #[error("configuration: {0}")]
    Source(#[from] config::ConfigError),
}

/// Every variable the service reads.
pub const VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "DB_USER",
    "DB_PASS",
    "DB_HOST",
    "DB_NAME",
    "DB_PORT",
    "DB_POOL_SIZE",
    "DB_POOL_TIMEOUT_MS",
    "DB_SSL_MODE",
    "DB_SSL_CA",
    "LIST_STREAM_ABOVE_KB",
    "LIST_MEMORY_MB",
    "LIST_SPOOL_DIR",
    "LIST_KEEP",
    "REDIS_URL",
    "REDIS_CA_CERT",
    "ORDERS_CACHE_TTL",
    "CACHE_DISABLED",
    "CACHE_TIMEOUT_MS",
    "CACHE_KEY_PREFIX",
    "ADMIN_PASSWORD",
    "API_KEY_REQUIRED",
    "API_KEY_REFRESH_MS",
    "HOST",
    "PORT",
    "SHUTDOWN_DELAY_MS",
    "WORKERS",
    "CORS_ORIGINS",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "TLS_RELOAD_INTERVAL_MS",
    "REQUEST_HEADER_TIMEOUT_MS",
    "REQUEST_BODY_TIMEOUT_MS",
    "MAX_HEADER_BYTES",
    "MAX_HEADERS",
    "MAX_CONNECTIONS",
    "BACKLOG",
    "RATE_LIMIT_PER_MINUTE",
    "RATE_LIMIT_BURST",
    "TRUSTED_PROXIES",
    "ADMIN_AUTH_MAX_FAILURES",
    "ADMIN_AUTH_WINDOW_SECS",
    "RUST_LOG",
    "LOG_FORMAT",
];

fn invalid(variable: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        variable,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    /// A `tracing` filter (`RUST_LOG` syntax).
    pub filter: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: StorageConfig,
    pub cache: CacheConfig,
    pub http: http::HttpSettings,
    pub host: String,
    pub port: u16,
    /// How long a stopping server goes on accepting, `/readyz` answering
    /// 503, before it stops accepting (a load balancer's time to notice).
    pub shutdown_delay: Duration,
    /// HTTPS instead of plain HTTP, when a certificate and key are set.
    pub tls: Option<TlsSettings>,
    /// Connections the kernel queues before they are accepted, when the
    /// server binds `HOST:PORT` itself (an inherited socket has its own).
    pub backlog: u32,
    /// How often each process reloads the active API keys: the longest a
    /// revoked key still works on an instance.
    pub api_key_refresh: Duration,
    pub log: LogSettings,
}

/// Looks variables up by their upper-case names in what `config` gathered
/// (it lower-cases keys).
struct Vars(Config);

impl Vars {
    fn text(&self, name: &'static str) -> Option<String> {
        self.0.get_string(&name.to_ascii_lowercase()).ok()
    }

    fn non_empty(&self, name: &'static str) -> Option<String> {
        self.text(name).filter(|value| !value.trim().is_empty())
    }

    fn number<T>(&self, name: &'static str, default: T, min: T) -> Result<T, SettingsError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(raw) = self.non_empty(name) else {
            return Ok(default);
        };
        match raw.trim().parse::<T>() {
            Ok(value) if value >= min => Ok(value),
            _ => Err(invalid(
                name,
                format!("expected a whole number of at least {min}, got {raw:?}"),
            )),
        }
    }

    /// A number within `min..=max`.
    fn bounded<T>(&self, name: &'static str, default: T, min: T, max: T) -> Result<T, SettingsError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let value = self.number(name, default, min)?;
        if value > max {
            return Err(invalid(
                name,
                format!("expected a whole number from {min} to {max}, got {value}"),
            ));
        }
        Ok(value)
    }

    fn milliseconds(
        &self,
        name: &'static str,
        default: Duration,
        min: u64,
    ) -> Result<Duration, SettingsError> {
        Ok(Duration::from_millis(self.number(
            name,
            default.as_millis() as u64,
            min,
        )?))
    }

    fn flag(&self, name: &'static str) -> Result<bool, SettingsError> {
        let Some(raw) = self.non_empty(name) else {
            return Ok(false);
        };
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(invalid(
                name,
                format!("expected true/false, 1/0 or yes/no, got {raw:?}"),
            )),
        }
    }
}

/// How the full list is held: `LIST_STREAM_ABOVE_KB`, `LIST_MEMORY_MB`,
/// `LIST_SPOOL_DIR` (which must be a directory), `LIST_KEEP` (on unless
/// false: the list is kept in the database for the next process).
fn full_list(vars: &Vars) -> Result<FullListConfig, SettingsError> {
    let defaults = FullListConfig::default();
    let spool_dir = match vars.non_empty("LIST_SPOOL_DIR") {
        None => defaults.spool_dir,
        Some(raw) => {
            let dir = std::path::PathBuf::from(raw.trim());
            if !dir.is_dir() {
                return Err(invalid(
                    "LIST_SPOOL_DIR",
                    format!("{} is not a directory", dir.display()),
                ));
            }
            dir
        }
    };
    Ok(FullListConfig {
        stream_above: vars.number(
            "LIST_STREAM_ABOVE_KB",
            FullListConfig::DEFAULT_STREAM_ABOVE / 1024,
            1,
        )? * 1024,
        memory_budget: vars.number(
            "LIST_MEMORY_MB",
            FullListConfig::DEFAULT_MEMORY_BUDGET / (1024 * 1024),
            0,
        )? * 1024
            * 1024,
        spool_dir,
        keep: match vars.non_empty("LIST_KEEP") {
            None => defaults.keep,
            Some(_) => vars.flag("LIST_KEEP")?,
        },
    })
}

impl Settings {
    /// The process environment, then `./.env`, then defaults.
    pub fn load() -> Result<Self, SettingsError> {
        let mut vars: HashMap<String, String> = HashMap::new();
        match dotenvy::from_filename_iter(".env") {
            Ok(entries) => {
                for entry in entries {
                    let (key, value) = entry?;
                    vars.insert(key, value);
                }
            }
            Err(error) if error.not_found() => {}
            Err(error) => return Err(error.into()),
        }
        // Variables that are not UTF-8 cannot be ours; skip them rather than
        // fail on a stranger's variable.
        vars.extend(
            std::env::vars_os().filter_map(|(key, value)| {
                Some((key.into_string().ok()?, value.into_string().ok()?))
            }),
        );
        Self::from_vars(vars)
    }

    /// Settings from an explicit set of variables (tests, tools).
    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, SettingsError> {
        // Only our variables reach `config`, which reads names as paths: a
        // stranger's variable with a `.` or `[` in its name must not matter.
        let ours = vars
            .into_iter()
            .filter(|(key, _)| VARIABLES.contains(&key.as_str()))
            .collect();
        let config = Config::builder()
            .add_source(Environment::default().source(Some(ours)))
            .build()?;
        let vars = Vars(config);

        let database = StorageConfig {
            url: with_db_ssl(&vars, database_url(&vars)?)?,
            pool_size: vars.number("DB_POOL_SIZE", 0usize, 1)?,
            pool_timeout: Duration::from_millis(vars.number(
                "DB_POOL_TIMEOUT_MS",
                StorageConfig::DEFAULT_POOL_TIMEOUT.as_millis() as u64,
                1,
            )?),
            full_list: full_list(&vars)?,
        };

        let defaults = CacheConfig::default();
        let redis_url = vars.non_empty("REDIS_URL").unwrap_or(defaults.redis_url);
        let redis = cache::redis::Client::open(redis_url.as_str())
            .map_err(|error| invalid("REDIS_URL", format!("not a Redis URL: {error}")))?;
        let tls = matches!(
            redis.get_connection_info().addr(),
            ConnectionAddr::TcpTls { .. }
        );
        let cache = CacheConfig {
            redis_url,
            ca_certificates: redis_ca_certificates(&vars, tls)?,
            ttl: Duration::from_secs(vars.number("ORDERS_CACHE_TTL", defaults.ttl.as_secs(), 1)?),
            timeout: Duration::from_millis(vars.number(
                "CACHE_TIMEOUT_MS",
                defaults.timeout.as_millis() as u64,
                1,
            )?),
            disabled: vars.flag("CACHE_DISABLED")?,
            key_prefix: vars.text("CACHE_KEY_PREFIX").unwrap_or_default(),
        };

        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let cors_origins = vars.non_empty("CORS_ORIGINS").and_then(|raw| {
            let origins: Vec<String> = raw
                .split(',')
                .map(|origin| origin.trim().to_owned())
                .filter(|origin| !origin.is_empty())
                .collect();
            (!origins.iter().any(|origin| origin == "*")).then_some(origins)
        });
        let http = http::HttpSettings {
            admin_password: http::AdminPassword::new(vars.text("ADMIN_PASSWORD")),
            cors_origins,
            workers: vars.number("WORKERS", cores, 1)?,
            shutdown_timeout: Duration::from_secs(30),
            limits: limits(&vars)?,
            api_key_required: api_key_required(&vars)?,
            rate_limits: rate_limits(&vars, cache.timeout)?,
        };

        let format = match vars.non_empty("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "LOG_FORMAT",
                    format!("expected pretty or json, got {other:?}"),
                ));
            }
        };
        let filter = vars
            .non_empty("RUST_LOG")
            .unwrap_or_else(|| "info".to_owned());
        tracing_subscriber::EnvFilter::try_new(&filter)
            .map_err(|error| invalid("RUST_LOG", error.to_string()))?;

        Ok(Self {
            database,
            cache,
            http,
            host: vars
                .non_empty("HOST")
                .unwrap_or_else(|| "0.0.0.0".to_owned()),
            port: vars.number("PORT", 8080u16, 0)?,
            shutdown_delay: Duration::from_millis(vars.number("SHUTDOWN_DELAY_MS", 0u64, 0)?),
            tls: https(&vars)?,
            backlog: vars.bounded("BACKLOG", 1024u32, 1, i32::MAX as u32)?,
            api_key_refresh: Duration::from_millis(vars.bounded(
                "API_KEY_REFRESH_MS",
                2000u64,
                API_KEY_REFRESH_MIN_MS,
                API_KEY_REFRESH_MAX_MS,
            )?),
            log: LogSettings { filter, format },
        })
    }
}

/// `TLS_CERT_FILE` and `TLS_KEY_FILE`, set together or not at all, read
/// here so that a wrong file stops the start; `TLS_RELOAD_INTERVAL_MS`.
fn https(vars: &Vars) -> Result<Option<TlsSettings>, SettingsError> {
    let reload_interval = vars.milliseconds("TLS_RELOAD_INTERVAL_MS", Duration::from_secs(5), 0)?;
    let (cert, key) = match (
        vars.non_empty("TLS_CERT_FILE"),
        vars.non_empty("TLS_KEY_FILE"),
    ) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(invalid(
                "TLS_KEY_FILE",
                "must be set with TLS_CERT_FILE (HTTPS needs both)",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "TLS_CERT_FILE",
                "must be set with TLS_KEY_FILE (HTTPS needs both)",
            ));
        }
        (Some(cert), Some(key)) => (cert, key),
    };
    TlsSettings::load(cert.trim().into(), key.trim().into(), reload_interval)
        .map(Some)
        .map_err(|error| invalid(error.variable(), error.to_string()))
}

/// `API_KEY_REFRESH_MS`'s range: below 100 ms the reloads would be a load
/// of their own; above a minute a revocation would not be "within seconds".
const API_KEY_REFRESH_MIN_MS: u64 = 100;
const API_KEY_REFRESH_MAX_MS: u64 = 60_000;

/// `API_KEY_REQUIRED`: none (the default, as the original), writes or all.
fn api_key_required(vars: &Vars) -> Result<http::KeyRequirement, SettingsError> {
    match vars.non_empty("API_KEY_REQUIRED") {
        None => Ok(http::KeyRequirement::None),
        Some(raw) => http::KeyRequirement::parse(&raw).ok_or_else(|| {
            invalid(
                "API_KEY_REQUIRED",
                format!("expected none, writes or all, got {raw:?}"),
            )
        }),
    }
}

/// The bounds on slow and abusive clients (`http::Limits`).
fn limits(vars: &Vars) -> Result<http::Limits, SettingsError> {
    let defaults = http::Limits::default();
    Ok(http::Limits {
        header_timeout: vars.milliseconds(
            "REQUEST_HEADER_TIMEOUT_MS",
            defaults.header_timeout,
            1,
        )?,
        body_timeout: vars.milliseconds("REQUEST_BODY_TIMEOUT_MS", defaults.body_timeout, 1)?,
        // Past actix-web's own bounds its bare 431 would answer first.
        max_header_bytes: vars.bounded(
            "MAX_HEADER_BYTES",
            defaults.max_header_bytes,
            1024,
            http::ACTIX_MAX_HEAD_BYTES,
        )?,
        max_headers: vars.bounded(
            "MAX_HEADERS",
            defaults.max_headers,
            1,
            http::ACTIX_MAX_HEADERS,
        )?,
        max_connections: vars.number("MAX_CONNECTIONS", defaults.max_connections, 1)?,
    })
}

/// The highest `RATE_LIMIT_PER_MINUTE` and `RATE_LIMIT_BURST`.
const RATE_LIMIT_MAX: u32 = 1_000_000;

/// `RATE_LIMIT_PER_MINUTE` (unset or 0: off) and `RATE_LIMIT_BURST` (by
/// default a minute's worth), `TRUSTED_PROXIES`, and the admin lockout's
/// `ADMIN_AUTH_MAX_FAILURES` (0: never locked out) and
/// `ADMIN_AUTH_WINDOW_SECS`. The shared store is the server's to add.
fn rate_limits(
    vars: &Vars,
    store_timeout: Duration,
) -> Result<http::RateLimitSettings, SettingsError> {
    let per_minute = vars.bounded("RATE_LIMIT_PER_MINUTE", 0u32, 0, RATE_LIMIT_MAX)?;
    let quota = if per_minute == 0 {
        if vars.non_empty("RATE_LIMIT_BURST").is_some() {
            // A burst alone limits nothing: say so rather than ignore it.
            return Err(invalid(
                "RATE_LIMIT_BURST",
                "is set, but RATE_LIMIT_PER_MINUTE is not (the rate limit is off)",
            ));
        }
        None
    } else {
        let burst = vars.bounded("RATE_LIMIT_BURST", per_minute, 1, RATE_LIMIT_MAX)?;
        Some(
            ratelimit::Quota::new(per_minute, burst)
                .map_err(|error| invalid("RATE_LIMIT_PER_MINUTE", error.to_string()))?,
        )
    };
    let trusted_proxies =
        http::TrustedProxies::parse(&vars.text("TRUSTED_PROXIES").unwrap_or_default())
            .map_err(|message| invalid("TRUSTED_PROXIES", message))?;
    let defaults = ratelimit::LockoutPolicy::default();
    let admin_lockout = ratelimit::LockoutPolicy {
        max_failures: vars.number("ADMIN_AUTH_MAX_FAILURES", defaults.max_failures, 0)?,
        window: Duration::from_secs(vars.number(
            "ADMIN_AUTH_WINDOW_SECS",
            defaults.window.as_secs(),
            1,
        )?),
    };
    Ok(http::RateLimitSettings {
        quota,
        trusted_proxies,
        admin_lockout,
        store: None,
        store_timeout,
    })
}

/// `REDIS_CA_CERT`: the path of a PEM file of the authorities a `rediss://`
/// Redis's certificate must chain to (a private CA), instead of the
/// system's. Read once, here, so that a wrong path stops the start.
fn redis_ca_certificates(vars: &Vars, tls: bool) -> Result<Option<CaCertificates>, SettingsError> {
    let Some(path) = vars.non_empty("REDIS_CA_CERT") else {
        return Ok(None);
    };
    let path = path.trim();
    let pem = std::fs::read(path)
        .map_err(|error| invalid("REDIS_CA_CERT", format!("cannot read {path}: {error}")))?;
    let certificates = CaCertificates::from_pem(pem)
        .map_err(|error| invalid("REDIS_CA_CERT", format!("{path}: {error}")))?;
    if !tls {
        return Err(invalid(
            "REDIS_CA_CERT",
            "is set, but REDIS_URL is not a rediss:// (TLS) URL",
        ));
    }
    Ok(Some(certificates))
}

/// `DB_USER`, `DB_PASS`, `DB_HOST` and `DB_NAME` together override
/// `DATABASE_URL` with MySQL, as in the original.
fn database_url(vars: &Vars) -> Result<DatabaseUrl, SettingsError> {
    let port = vars.number("DB_PORT", 3306u16, 1)?;
    let parts = (
        vars.non_empty("DB_USER"),
        vars.text("DB_PASS"),
        vars.non_empty("DB_HOST"),
        vars.non_empty("DB_NAME"),
    );
    let given = [
        parts.0.is_some(),
        parts.1.is_some(),
        parts.2.is_some(),
        parts.3.is_some(),
    ];
    if given.contains(&true) && given.contains(&false) {
        // Half an override would silently fall back to DATABASE_URL.
        let missing = ["DB_USER", "DB_PASS", "DB_HOST", "DB_NAME"]
            .into_iter()
            .zip(given)
            .find_map(|(name, set)| (!set).then_some(name))
            .unwrap_or("DB_NAME");
        return Err(invalid(
            missing,
            "DB_USER, DB_PASS, DB_HOST and DB_NAME must be set together (DB_PASS may be empty)",
        ));
    }
    if let (Some(user), Some(pass), Some(host), Some(name)) = parts {
        let url = format!(
            "mysql://{}:{}@{}:{port}/{}",
            utf8_percent_encode(&user, NON_ALPHANUMERIC),
            utf8_percent_encode(&pass, NON_ALPHANUMERIC),
            host.trim(),
            utf8_percent_encode(name.trim(), NON_ALPHANUMERIC),
        );
        return DatabaseUrl::parse(&url).map_err(|error| invalid("DB_HOST", error.to_string()));
    }
    let url = vars
        .non_empty("DATABASE_URL")
        .unwrap_or_else(|| "sqlite:///database.db".to_owned());
    DatabaseUrl::parse(url.trim()).map_err(|error| invalid("DATABASE_URL", error.to_string()))
}

/// `DB_SSL_MODE` and `DB_SSL_CA`, as `ssl_mode` and `ssl_ca` of the URL:
/// the `DB_*` form has no other place for them. A `DATABASE_URL` takes them
/// too, unless it sets them itself; SQLite refuses them.
fn with_db_ssl(vars: &Vars, mut url: DatabaseUrl) -> Result<DatabaseUrl, SettingsError> {
    if let Some(mode) = vars.non_empty("DB_SSL_MODE") {
        url = url
            .with_ssl_mode(&mode)
            .map_err(|error| invalid("DB_SSL_MODE", error.to_string()))?;
    }
    if let Some(ca) = vars.non_empty("DB_SSL_CA") {
        url = url
            .with_ssl_ca(&ca)
            .map_err(|error| invalid("DB_SSL_CA", error.to_string()))?;
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::from_vars(
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
        )
    }

    fn failing_variable(pairs: &[(&str, &str)]) -> &'static str {
        match settings(pairs) {
            Err(SettingsError::Invalid { variable, .. }) => variable,
            other => panic!("expected an invalid variable, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_original() {
        let settings = settings(&[]).unwrap();
        assert!(
            matches!(&settings.database.url, DatabaseUrl::Sqlite(path) if path.ends_with("database.db"))
        );
        assert_eq!(settings.cache.redis_url, "redis://localhost:6379/0");
        assert_eq!(settings.cache.ttl, Duration::from_secs(30));
        assert_eq!(settings.cache.timeout, Duration::from_millis(50));
        assert!(!settings.cache.disabled);
        assert_eq!(settings.cache.key_prefix, "");
        assert_eq!((settings.host.as_str(), settings.port), ("0.0.0.0", 8080));
        assert!(settings.http.cors_origins.is_none());
        assert_eq!(settings.log.format, LogFormat::Pretty);
        assert_eq!(settings.http.api_key_required, http::KeyRequirement::None);
        assert_eq!(settings.api_key_refresh, Duration::from_secs(2));
    }

    #[test]
    fn api_key_settings_parse_or_name_their_variable() {
        for (raw, expected) in [
            ("none", http::KeyRequirement::None),
            ("Writes", http::KeyRequirement::Writes),
            (" all ", http::KeyRequirement::All),
        ] {
            assert_eq!(
                settings(&[("API_KEY_REQUIRED", raw)])
                    .unwrap()
                    .http
                    .api_key_required,
                expected,
                "{raw}"
            );
        }
        let refresh = settings(&[("API_KEY_REFRESH_MS", "500")]).unwrap();
        assert_eq!(refresh.api_key_refresh, Duration::from_millis(500));
        for (variable, value) in [
            ("API_KEY_REQUIRED", "reads"),
            ("API_KEY_REQUIRED", "true"),
            ("API_KEY_REFRESH_MS", "0"),
            ("API_KEY_REFRESH_MS", "99"),
            ("API_KEY_REFRESH_MS", "60001"),
            ("API_KEY_REFRESH_MS", "2s"),
        ] {
            match settings(&[(variable, value)]) {
                Err(error @ SettingsError::Invalid { .. }) => {
                    let line = error.to_string();
                    assert!(line.starts_with(variable), "{line}");
                    assert!(!line.contains('\n'), "{line}");
                }
                other => panic!("{variable}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn db_parts_override_database_url() {
        let overridden = settings(&[
            ("DATABASE_URL", "sqlite:///x.db"),
            ("DB_USER", "app"),
            ("DB_PASS", "p@ss:w/rd"),
            ("DB_HOST", "db.example"),
            ("DB_NAME", "orders"),
        ])
        .unwrap();
        let DatabaseUrl::Mysql(url) = &overridden.database.url else {
            panic!("expected MySQL");
        };
        assert_eq!(url, "mysql://app:p%40ss%3Aw%2Frd@db.example:3306/orders");
        // Not all four: an error naming one that is missing, not a silent
        // fallback to DATABASE_URL.
        assert_eq!(
            failing_variable(&[("DB_USER", "x"), ("DB_HOST", "h")]),
            "DB_PASS"
        );
        assert_eq!(
            failing_variable(&[("DB_USER", "x"), ("DB_PASS", ""), ("DB_HOST", "h")]),
            "DB_NAME"
        );
    }

    #[test]
    fn db_ssl_variables_become_url_parameters() {
        let db_parts = [
            ("DB_USER", "app"),
            ("DB_PASS", "pw"),
            ("DB_HOST", "db.example"),
            ("DB_NAME", "orders"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = db_parts.to_vec();
            pairs.extend_from_slice(extra);
            settings(&pairs)
        };
        let tls = with(&[
            ("DB_SSL_MODE", "verify_identity"),
            ("DB_SSL_CA", "/etc/ssl/global-bundle.pem"),
        ])
        .unwrap();
        let DatabaseUrl::Mysql(url) = &tls.database.url else {
            panic!("expected MySQL");
        };
        assert_eq!(
            url,
            "mysql://app:pw@db.example:3306/orders?ssl_mode=VERIFY_IDENTITY&ssl_ca=/etc/ssl/global-bundle.pem"
        );
        match with(&[("DB_SSL_MODE", "sometimes")]) {
            Err(SettingsError::Invalid { variable, message }) => {
                assert_eq!(variable, "DB_SSL_MODE");
                assert!(message.contains("VERIFY_IDENTITY"), "{message}");
                assert!(!message.contains(":pw@"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // Said once: not in DATABASE_URL and in DB_SSL_CA both.
        assert_eq!(
            failing_variable(&[
                ("DATABASE_URL", "mysql://u@h/db?ssl_ca=/a.pem"),
                ("DB_SSL_CA", "/b.pem"),
            ]),
            "DB_SSL_CA"
        );
        assert_eq!(
            failing_variable(&[("DB_SSL_MODE", "REQUIRED")]),
            "DB_SSL_MODE",
            "the default SQLite database has no TLS"
        );
    }

    /// A self-signed CA certificate (P-256), valid for a century.
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBiDCCAS+gAwIBAgIUN0YF0FLdMCTgLfmwC/1dr7UIoz0wCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOb3JkZXJzIHRlc3QgQ0EwIBcNMjYxMjAxMjIwOTM4WhgPMjEy
NjExMDcyMjA5MzhaMBkxFzAVBgNVBAMMDm9yZGVycyB0ZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEJ6C7W6hdtkDJqwLEo1/JaIhS6h7WpX8UjmhUJXgc
FYuDsVEZrFA00auLMjWmIaAZdJyShxlKhdV7n30O2TiGfKNTMFEwHQYDVR0OBBYE
FA8/PWVzAeLNQtvO9lB+Gso1mz4JMB8GA1UdIwQYMBaAFA8/PWVzAeLNQtvO9lB+
Gso1mz4JMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgYeBWeMXY
bTk2ktlc5V3MhcbDXz19FqkzlkdpYJ4M3/QCIGAyf/IRM3yuvvx4G5GxSptppCKd
Xe6d/8qqtnUJ49Lt
-----END CERTIFICATE-----\n";

    #[test]
    fn redis_ca_cert_is_read_and_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, TEST_CA).unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let (ca, junk) = (ca.to_str().unwrap(), junk.to_str().unwrap());

        let tls = settings(&[
            ("REDIS_URL", "rediss://cache.example:6380/0"),
            ("REDIS_CA_CERT", ca),
        ])
        .unwrap();
        assert!(tls.cache.ca_certificates.is_some());
        assert!(settings(&[]).unwrap().cache.ca_certificates.is_none());

        for (url, path) in [
            ("rediss://cache.example/0", "/nonexistent/ca.pem"),
            ("rediss://cache.example/0", junk),
            ("redis://cache.example/0", ca),
        ] {
            match settings(&[("REDIS_URL", url), ("REDIS_CA_CERT", path)]) {
                Err(error @ SettingsError::Invalid { variable, .. }) => {
                    assert_eq!(variable, "REDIS_CA_CERT", "{url} {path}");
                    let line = error.to_string();
                    assert!(!line.contains('\n'), "{line}");
                    if !url.starts_with("redis://") {
                        assert!(line.contains(path), "{line}");
                    }
                }
                other => panic!("{url} {path}: {other:?}"),
            }
        }
    }

    #[test]
    fn flags_accept_the_usual_spellings() {
        for (raw, expected) in [
            ("TRUE", true),
            ("1", true),
            ("Yes", true),
            ("false", false),
            ("0", false),
            ("NO", false),
        ] {
            assert_eq!(
                settings(&[("CACHE_DISABLED", raw)]).unwrap().cache.disabled,
                expected,
                "{raw}"
            );
        }
    }

    #[test]
    fn the_full_list_is_kept_in_the_database_unless_list_keep_is_false() {
        assert!(settings(&[]).unwrap().database.full_list.keep);
        assert!(
            settings(&[("LIST_KEEP", "yes")])
                .unwrap()
                .database
                .full_list
                .keep
        );
        assert!(
            !settings(&[("LIST_KEEP", "false")])
                .unwrap()
                .database
                .full_list
                .keep
        );
        assert_eq!(failing_variable(&[("LIST_KEEP", "maybe")]), "LIST_KEEP");
    }

    #[test]
    fn invalid_values_name_their_variable() {
        assert_eq!(
            failing_variable(&[("CACHE_DISABLED", "maybe")]),
            "CACHE_DISABLED"
        );
        assert_eq!(failing_variable(&[("PORT", "http")]), "PORT");
        assert_eq!(failing_variable(&[("PORT", "70000")]), "PORT");
        assert_eq!(
            failing_variable(&[("ORDERS_CACHE_TTL", "-1")]),
            "ORDERS_CACHE_TTL"
        );
        assert_eq!(failing_variable(&[("WORKERS", "0")]), "WORKERS");
        assert_eq!(
            failing_variable(&[("SHUTDOWN_DELAY_MS", "soon")]),
            "SHUTDOWN_DELAY_MS"
        );
        assert_eq!(
            failing_variable(&[("DATABASE_URL", "postgres://x")]),
            "DATABASE_URL"
        );
        assert_eq!(failing_variable(&[("REDIS_URL", "http://x")]), "REDIS_URL");
        assert_eq!(
            failing_variable(&[("REDIS_URL", "redis://h:notaport")]),
            "REDIS_URL"
        );
        assert_eq!(failing_variable(&[("DB_PORT", "abc")]), "DB_PORT");
        assert_eq!(failing_variable(&[("LOG_FORMAT", "xml")]), "LOG_FORMAT");
        assert_eq!(failing_variable(&[("RUST_LOG", "info,[")]), "RUST_LOG");
    }

    #[test]
    fn client_bounds_have_defaults_and_refuse_what_actix_would_answer_first() {
        let defaults = settings(&[]).unwrap();
        assert_eq!(defaults.http.limits, http::Limits::default());
        assert_eq!(defaults.backlog, 1024);
        assert!(defaults.tls.is_none(), "plain HTTP unless configured");
        let set = settings(&[
            ("REQUEST_HEADER_TIMEOUT_MS", "2500"),
            ("REQUEST_BODY_TIMEOUT_MS", "700"),
            ("MAX_HEADER_BYTES", "8192"),
            ("MAX_HEADERS", "96"),
            ("MAX_CONNECTIONS", "300"),
            ("BACKLOG", "4096"),
        ])
        .unwrap();
        assert_eq!(set.http.limits.header_timeout, Duration::from_millis(2500));
        assert_eq!(set.http.limits.body_timeout, Duration::from_millis(700));
        assert_eq!(set.http.limits.max_header_bytes, 8192);
        assert_eq!(set.http.limits.max_headers, 96);
        assert_eq!(set.http.limits.max_connections, 300);
        assert_eq!(set.backlog, 4096);
        for (variable, value) in [
            ("REQUEST_HEADER_TIMEOUT_MS", "0"),
            ("REQUEST_BODY_TIMEOUT_MS", "soon"),
            ("MAX_HEADER_BYTES", "200000"),
            ("MAX_HEADERS", "97"),
            ("MAX_CONNECTIONS", "0"),
            ("BACKLOG", "-1"),
            ("TLS_RELOAD_INTERVAL_MS", "often"),
        ] {
            assert_eq!(failing_variable(&[(variable, value)]), variable, "{value}");
        }
    }

    #[test]
    fn rate_limits_are_off_by_default_but_the_admin_lockout_is_on() {
        let defaults = settings(&[]).unwrap().http.rate_limits;
        assert_eq!(defaults.quota, None);
        assert!(defaults.trusted_proxies.is_empty());
        assert_eq!(defaults.admin_lockout.max_failures, 5);
        assert_eq!(defaults.admin_lockout.window, Duration::from_secs(900));
        assert_eq!(
            settings(&[("RATE_LIMIT_PER_MINUTE", "0")])
                .unwrap()
                .http
                .rate_limits
                .quota,
            None
        );

        let set = settings(&[
            ("RATE_LIMIT_PER_MINUTE", "120"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
            ("ADMIN_AUTH_MAX_FAILURES", "0"),
            ("ADMIN_AUTH_WINDOW_SECS", "60"),
        ])
        .unwrap()
        .http
        .rate_limits;
        let quota = set.quota.unwrap();
        assert_eq!(
            (quota.per_minute(), quota.burst()),
            (120, 120),
            "a minute's worth"
        );
        assert!(set.trusted_proxies.trusts("10.9.8.7".parse().unwrap()));
        assert_eq!(set.admin_lockout.max_failures, 0);
        assert_eq!(set.admin_lockout.window, Duration::from_secs(60));
        let burst = settings(&[("RATE_LIMIT_PER_MINUTE", "60"), ("RATE_LIMIT_BURST", "5")])
            .unwrap()
            .http
            .rate_limits
            .quota
            .unwrap();
        assert_eq!(burst.burst(), 5);

        for pairs in [
            &[("RATE_LIMIT_PER_MINUTE", "-1")][..],
            &[("RATE_LIMIT_PER_MINUTE", "lots")],
            &[("RATE_LIMIT_PER_MINUTE", "1000001")],
            &[("RATE_LIMIT_PER_MINUTE", "60"), ("RATE_LIMIT_BURST", "0")],
            &[("RATE_LIMIT_BURST", "10")],
            &[("TRUSTED_PROXIES", "10.0.0.0/8,lb.internal")],
            &[("ADMIN_AUTH_MAX_FAILURES", "five")],
            &[("ADMIN_AUTH_WINDOW_SECS", "0")],
        ] {
            let variable = pairs.last().unwrap().0;
            match settings(pairs) {
                Err(error @ SettingsError::Invalid { .. }) => {
                    let line = error.to_string();
                    assert!(line.starts_with(variable), "{pairs:?}: {line}");
                    assert!(!line.contains('\n'), "{line}");
                }
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn tls_needs_both_files() {
        assert_eq!(
            failing_variable(&[("TLS_CERT_FILE", "/etc/orders/cert.pem")]),
            "TLS_KEY_FILE"
        );
        assert_eq!(
            failing_variable(&[("TLS_KEY_FILE", "/etc/orders/key.pem")]),
            "TLS_CERT_FILE"
        );
        assert_eq!(
            failing_variable(&[
                ("TLS_CERT_FILE", "/nonexistent/cert.pem"),
                ("TLS_KEY_FILE", "/nonexistent/key.pem"),
            ]),
            "TLS_CERT_FILE"
        );
    }

    #[test]
    fn strangers_variables_do_not_matter() {
        assert!(settings(&[("weird.name[0]", "x"), ("PATH", "/bin")]).is_ok());
    }

    #[test]
    fn cors_origins_list_or_any() {
        let settings_with = |raw| {
            settings(&[("CORS_ORIGINS", raw)])
                .unwrap()
                .http
                .cors_origins
        };
        assert_eq!(
            settings_with("https://a.example, https://b.example"),
            Some(vec![
                "https://a.example".to_owned(),
                "https://b.example".to_owned()
            ])
        );
        assert_eq!(settings_with("*"), None);
    }
}
