//! Database URLs in the forms the original's SQLAlchemy configuration used,
//! turned into what our drivers take.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::StorageError;

/// Where the orders live.
///
/// Accepted forms:
/// - `sqlite:///relative.db`: a path relative to the working directory of
///   the process (kept relative, so it resolves where the server starts);
/// - `sqlite:////abs/path.db`: an absolute path;
/// - `mysql://user:pass@host:port/db`, `mariadb://...`, and any driver suffix
///   SQLAlchemy allowed (`mysql+pymysql://`, `mysql+mysqldb://`,
///   `mariadb+pymysql://`), all rewritten to `mysql://` for mysql_async. A
///   `charset` parameter is dropped: connections always speak utf8mb4.
///   The connection goes to exactly that host and port: mysql_async's
///   `prefer_socket` (moving to the Unix socket the server reports, which
///   bypasses a tunnel or proxy on 127.0.0.1) is off unless the URL turns it
///   on. `unix_socket=<path>` (PyMySQL's name) or `socket=<path>` connects
///   through that socket instead. TLS: `ssl_mode` (or `ssl-mode`) with
///   `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY` or `DISABLED` in any case,
///   and `ssl_ca=<path>`; a CA given is always checked (see [`SslMode`]).
///
/// Refused, with an error that says why: `sqlite://` and `sqlite:///:memory:`
/// (an in-memory database would be a different, empty one on every pooled
/// connection), `sqlite://name.db` (SQLAlchemy reads `name.db` as a host
/// there, so it never meant a file; write `sqlite:///name.db`), SQLite query
/// parameters, a MySQL URL without a database name, and any other scheme.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    /// A `mysql://user:pass@host:port/db` URL for mysql_async.
    Mysql(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<DatabaseUrl, StorageError> {
        let url = url.trim();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid(url, "expected <scheme>://..."))?;
        let (dialect, _driver) = scheme.split_once('+').unwrap_or((scheme, ""));
        match dialect.to_ascii_lowercase().as_str() {
            "sqlite" => parse_sqlite(url, rest),
            "mysql" | "mariadb" => parse_mysql(url, rest),
            _ => Err(StorageError::UnsupportedScheme {
                scheme: scheme.to_owned(),
            }),
        }
    }
}

fn invalid(url: &str, reason: &str) -> StorageError {
    StorageError::InvalidUrl {
        url: redact(url),
        reason: reason.to_owned(),
    }
}

fn parse_sqlite(url: &str, rest: &str) -> Result<DatabaseUrl, StorageError> {
    // SQLAlchemy: `sqlite://<host>/<path>`, where the host must be empty.
    let Some(path) = rest.strip_prefix('/') else {
        return Err(invalid(
            url,
            "a SQLite URL has three slashes before a relative path (sqlite:///orders.db) \
             and four before an absolute one (sqlite:////var/lib/orders.db)",
        ));
    };
    if path.contains('?') {
        return Err(invalid(url, "SQLite URL parameters are not supported"));
    }
    if path.is_empty() || path == ":memory:" {
        return Err(invalid(
            url,
            "an in-memory SQLite database cannot be shared by a connection pool; name a file",
        ));
    }
    Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
}

/// How a MySQL connection is secured: MySQL's client `ssl_mode`, with the
/// CA file (`ssl_ca`) as PyMySQL and SQLAlchemy take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Plain TCP: the default, as with PyMySQL.
    Disabled,
    /// Encrypted, the certificate unchecked; only without a CA, since a CA
    /// given makes it `VerifyCa`, as MySQL's own client does.
    Required,
    /// The certificate must chain to the CA; the names in it do not matter.
    VerifyCa,
    /// The certificate must chain to the CA and name the host of the URL.
    VerifyIdentity,
}

const SSL_MODES: &str = "REQUIRED, VERIFY_CA, VERIFY_IDENTITY or DISABLED";

impl SslMode {
    fn parse(raw: &str) -> Result<SslMode, String> {
        match raw.trim().to_ascii_uppercase().as_str() {
            "DISABLED" => Ok(Self::Disabled),
            "REQUIRED" => Ok(Self::Required),
            "VERIFY_CA" => Ok(Self::VerifyCa),
            "VERIFY_IDENTITY" => Ok(Self::VerifyIdentity),
            "PREFERRED" => Err(
                "ssl_mode=PREFERRED is not supported: it falls back to plain text without \
                 telling; write REQUIRED or DISABLED"
                    .to_owned(),
            ),
            _ => Err(format!(
                "ssl_mode must be {SSL_MODES} (any case), got {raw:?}"
            )),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "DISABLED",
            Self::Required => "REQUIRED",
            Self::VerifyCa => "VERIFY_CA",
            Self::VerifyIdentity => "VERIFY_IDENTITY",
        }
    }
}

/// A MySQL URL made into what mysql_async takes.
pub(crate) struct MysqlTarget {
    /// Host, port, credentials, database and the driver's own parameters.
    pub(crate) opts: mysql_async::Opts,
    /// `None`: plain TCP (or a socket).
    pub(crate) tls: Option<TlsTarget>,
}

pub(crate) struct TlsTarget {
    /// Never `Disabled`; `Required` only when no CA is given.
    pub(crate) mode: SslMode,
    /// Without it, a verifying mode trusts the built-in public roots.
    pub(crate) ca: Option<PathBuf>,
}

/// A value in a query string: what would end or change it is escaped.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'=');

/// As the `url` crate (and so mysql_async) and Python's `parse_qsl` read a
/// query value: `+` is a space.
fn decode_value(value: &str) -> Option<String> {
    let spaced = value.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

/// A MySQL URL taken apart: our parameters read, the driver's kept as
/// written.
struct MysqlParts<'a> {
    authority: &'a str,
    database: &'a str,
    /// For mysql_async, as written (`unix_socket` renamed `socket`).
    driver: Vec<Cow<'a, str>>,
    ssl_mode: Option<SslMode>,
    /// As written (to normalise) and decoded.
    ssl_ca: Option<(&'a str, PathBuf)>,
    /// `socket` or `unix_socket` was given.
    socket: bool,
    /// `prefer_socket` was given, with this value.
    prefer_socket: Option<bool>,
}

impl MysqlParts<'_> {
    fn tls(&self) -> Option<TlsTarget> {
        let mode = match (self.ssl_mode, &self.ssl_ca) {
            (None | Some(SslMode::Disabled), None) => return None,
            // PyMySQL checks the chain and the host name once given a CA.
            (None, Some(_)) => SslMode::VerifyIdentity,
            (Some(SslMode::Required), Some(_)) => SslMode::VerifyCa,
            (Some(mode), _) => mode,
        };
        Some(TlsTarget {
            mode,
            ca: self.ssl_ca.as_ref().map(|(_, path)| path.clone()),
        })
    }

    fn normalised(&self) -> String {
        let mut params: Vec<Cow<'_, str>> = self.driver.clone();
        if let Some(mode) = self.ssl_mode {
            params.push(format!("ssl_mode={}", mode.as_str()).into());
        }
        if let Some((raw, _)) = self.ssl_ca {
            params.push(format!("ssl_ca={raw}").into());
        }
        let mut url = format!("mysql://{}/{}", self.authority, self.database);
        if !params.is_empty() {
            url.push('?');
            url.push_str(&params.join("&"));
        }
        url
    }

    fn target(&self) -> Result<MysqlTarget, String> {
        let mut driver_url = format!("mysql://{}/{}", self.authority, self.database);
        if !self.driver.is_empty() {
            driver_url.push('?');
            driver_url.push_str(&self.driver.join("&"));
        }
        let opts = mysql_async::Opts::from_url(&driver_url).map_err(|error| error.to_string())?;
        let mut builder = mysql_async::OptsBuilder::from_opts(opts);
        if self.prefer_socket.is_none() {
            // The driver's default moves each connection to the socket
            // the server reports, off the host and port configured.
            builder = builder.prefer_socket(false);
        }
        Ok(MysqlTarget {
            opts: builder.into(),
            tls: self.tls(),
        })
    }
}

fn split_mysql<'a>(url: &str, rest: &'a str) -> Result<MysqlParts<'a>, StorageError> {
    let (authority_and_path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let Some((authority, database)) = authority_and_path.split_once('/') else {
        return Err(invalid(
            url,
            "a MySQL URL must name a database: mysql://user:pass@host:3306/orders",
        ));
    };
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() {
        return Err(invalid(url, "a MySQL URL must name a host"));
    }
    if database.is_empty() || database.contains('/') {
        return Err(invalid(
            url,
            "a MySQL URL must name a database: mysql://user:pass@host:3306/orders",
        ));
    }
    let mut parts = MysqlParts {
        authority,
        database,
        driver: Vec::new(),
        ssl_mode: None,
        ssl_ca: None,
        socket: false,
        prefer_socket: None,
    };
    for param in query.split('&').filter(|param| !param.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        let decoded = decode_value(value)
            .ok_or_else(|| invalid(url, &format!("{key}: the value is not UTF-8")))?;
        let twice = || invalid(url, &format!("{key} is given twice"));
        match key {
            "charset" => {}
            "ssl_mode" | "ssl-mode" => {
                if parts.ssl_mode.is_some() {
                    return Err(twice());
                }
                let mode = SslMode::parse(&decoded).map_err(|reason| invalid(url, &reason))?;
                parts.ssl_mode = Some(mode);
            }
            "ssl_ca" | "ssl-ca" => {
                if parts.ssl_ca.is_some() {
                    return Err(twice());
                }
                if decoded.trim().is_empty() {
                    return Err(invalid(url, "ssl_ca is empty: name the CA file"));
                }
                parts.ssl_ca = Some((value, PathBuf::from(decoded)));
            }
            "unix_socket" | "socket" => {
                if parts.socket {
                    return Err(twice());
                }
                parts.socket = true;
                parts.driver.push(format!("socket={value}").into());
            }
            "prefer_socket" => {
                parts.prefer_socket = Some(decoded == "true");
                parts.driver.push(param.into());
            }
            // mysql_async's own TLS switches, which could only half-say
            // what ssl_mode and ssl_ca do.
            "require_ssl" | "verify_ca" | "verify_identity" | "built_in_roots" => {
                return Err(invalid(
                    url,
                    &format!(
                        "{key} is not read here: write ssl_mode={SSL_MODES} and \
                         ssl_ca=<path of the CA bundle>"
                    ),
                ));
            }
            _ => parts.driver.push(param.into()),
        }
    }
    if parts.ssl_mode == Some(SslMode::Disabled) && parts.ssl_ca.is_some() {
        return Err(invalid(
            url,
            "ssl_ca is given but ssl_mode is DISABLED: drop one of them",
        ));
    }
    if parts.tls().is_some() && (parts.socket || parts.prefer_socket == Some(true)) {
        return Err(invalid(
            url,
            "TLS does not apply to a Unix socket: drop ssl_mode and ssl_ca, or the socket",
        ));
    }
    Ok(parts)
}

fn parse_mysql(url: &str, rest: &str) -> Result<DatabaseUrl, StorageError> {
    let parts = split_mysql(url, rest)?;
    // The driver's own parameters are checked now, so that a wrong one
    // stops the process at start naming the setting it came from.
    parts.target().map_err(|reason| invalid(url, &reason))?;
    Ok(DatabaseUrl::Mysql(parts.normalised()))
}

/// What mysql_async takes for a URL [`DatabaseUrl::parse`] normalised.
pub(crate) fn mysql_target(url: &str) -> Result<MysqlTarget, StorageError> {
    let rest = url
        .strip_prefix("mysql://")
        .ok_or_else(|| invalid(url, "expected mysql://..."))?;
    split_mysql(url, rest)?
        .target()
        .map_err(|reason| invalid(url, &reason))
}

impl DatabaseUrl {
    /// The URL with `ssl_mode` set (`DB_SSL_MODE`): refused for SQLite, or
    /// when the URL sets it already.
    pub fn with_ssl_mode(&self, mode: &str) -> Result<DatabaseUrl, StorageError> {
        self.with_mysql_parameter("ssl_mode", mode)
    }

    /// The URL with `ssl_ca` set (`DB_SSL_CA`), as `with_ssl_mode`.
    pub fn with_ssl_ca(&self, path: &str) -> Result<DatabaseUrl, StorageError> {
        self.with_mysql_parameter("ssl_ca", path)
    }

    fn with_mysql_parameter(&self, key: &str, value: &str) -> Result<DatabaseUrl, StorageError> {
        match self {
            Self::Sqlite(_) => Err(StorageError::InvalidUrl {
                url: self.to_string(),
                reason: format!("{key} applies to MySQL/MariaDB only"),
            }),
            Self::Mysql(url) => {
                let separator = if url.contains('?') { '&' } else { '?' };
                let value = utf8_percent_encode(value.trim(), QUERY_VALUE);
                DatabaseUrl::parse(&format!("{url}{separator}{key}={value}"))
            }
        }
    }
}

/// The URL with any password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Safe for logs: the password never shows.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite:///{}", path.display()),
            Self::Mysql(url) => f.write_str(&redact(url)),
        }
    }
}

/// Like `Display`: a configuration dump must not leak the password either.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(url: &str) -> PathBuf {
        match DatabaseUrl::parse(url).unwrap() {
            DatabaseUrl::Sqlite(path) => path,
            other => panic!("{url} parsed as {other}"),
        }
    }

    fn mysql(url: &str) -> String {
        match DatabaseUrl::parse(url).unwrap() {
            DatabaseUrl::Mysql(url) => url,
            other => panic!("{url} parsed as {other}"),
        }
    }

    fn rejection(url: &str) -> String {
        DatabaseUrl::parse(url).unwrap_err().to_string()
    }

    #[test]
    fn sqlite_paths_follow_sqlalchemy() {
        assert_eq!(
            sqlite("sqlite:///database.db"),
            PathBuf::from("database.db")
        );
        assert_eq!(
            sqlite("sqlite:///data/orders.db"),
            PathBuf::from("data/orders.db")
        );
        assert_eq!(
            sqlite("sqlite:////var/lib/orders.db"),
            PathBuf::from("/var/lib/orders.db")
        );
        assert_eq!(sqlite(" sqlite:///x.db\n"), PathBuf::from("x.db"));
    }

    #[test]
    fn sqlite_forms_that_cannot_work_are_refused() {
        assert!(rejection("sqlite://orders.db").contains("three slashes"));
        assert!(rejection("sqlite://").contains("three slashes"));
        assert!(rejection("sqlite:///").contains("in-memory"));
        assert!(rejection("sqlite:///:memory:").contains("in-memory"));
        assert!(rejection("sqlite:///x.db?mode=ro").contains("parameters"));
    }

    #[test]
    fn mysql_dialects_and_drivers_become_mysql() {
        let expected = "mysql://user:pw@db.local:3306/orders";
        assert_eq!(mysql("mysql://user:pw@db.local:3306/orders"), expected);
        assert_eq!(
            mysql("mysql+pymysql://user:pw@db.local:3306/orders"),
            expected
        );
        assert_eq!(
            mysql("MySQL+mysqldb://user:pw@db.local:3306/orders"),
            expected
        );
        assert_eq!(mysql("mariadb://user:pw@db.local:3306/orders"), expected);
        assert_eq!(
            mysql("mariadb+pymysql://user:pw@db.local:3306/orders"),
            expected
        );
        assert_eq!(
            mysql("mysql://root@localhost/orders"),
            "mysql://root@localhost/orders"
        );
    }

    #[test]
    fn mysql_charset_is_dropped_and_other_parameters_kept() {
        assert_eq!(
            mysql("mysql+pymysql://u:p@h/db?charset=utf8mb4"),
            "mysql://u:p@h/db"
        );
        assert_eq!(
            mysql("mysql://u:p@h/db?charset=utf8mb4&prefer_socket=false"),
            "mysql://u:p@h/db?prefer_socket=false"
        );
    }

    #[test]
    fn mysql_needs_a_host_and_a_database() {
        assert!(rejection("mysql://u:p@host:3306").contains("database"));
        assert!(rejection("mysql://u:p@host:3306/").contains("database"));
        assert!(rejection("mysql://u:p@/db").contains("host"));
    }

    #[test]
    fn other_schemes_are_named_in_the_error() {
        let message = rejection("postgresql://u:p@h/db");
        assert!(message.contains("postgresql"), "{message}");
        assert!(rejection("orders.db").contains("scheme"));
    }

    #[test]
    fn display_and_errors_never_show_the_password() {
        let url = DatabaseUrl::parse("mysql+pymysql://app:s3cret@db:3306/orders").unwrap();
        assert_eq!(url.to_string(), "mysql://app:***@db:3306/orders");
        assert!(!format!("{url:?}").contains("s3cret"));
        let no_password = DatabaseUrl::parse("mysql://app@db/orders").unwrap();
        assert_eq!(no_password.to_string(), "mysql://app@db/orders");
        assert!(!rejection("mysql://app:s3cret@db:3306").contains("s3cret"));
        assert!(
            !rejection("postgres://app:s3cret@db/orders").contains("s3cret"),
            "the scheme error names only the scheme"
        );
        let file = DatabaseUrl::parse("sqlite:////tmp/o.db").unwrap();
        assert_eq!(file.to_string(), "sqlite:////tmp/o.db");
    }

    fn target(url: &str) -> MysqlTarget {
        mysql_target(&mysql(url)).unwrap()
    }

    #[test]
    fn mysql_goes_to_the_configured_endpoint_unless_a_socket_is_named() {
        let tcp = target("mysql://u:p@127.0.0.1:3307/db");
        assert!(
            !tcp.opts.prefer_socket(),
            "never moved to the server's socket"
        );
        assert_eq!(
            (tcp.opts.ip_or_hostname(), tcp.opts.tcp_port()),
            ("127.0.0.1", 3307)
        );
        assert_eq!(tcp.opts.socket(), None);

        for key in ["unix_socket", "socket"] {
            let url = format!("mysql+pymysql://u:p@localhost/db?{key}=/run/mysqld/mysqld.sock");
            assert_eq!(
                mysql(&url),
                "mysql://u:p@localhost/db?socket=/run/mysqld/mysqld.sock"
            );
            assert_eq!(target(&url).opts.socket(), Some("/run/mysqld/mysqld.sock"));
        }
        // Asked for by name, the driver's own behaviour stays available.
        assert!(
            target("mysql://u@h/db?prefer_socket=true")
                .opts
                .prefer_socket()
        );
        assert!(rejection("mysql://u@h/db?socket=/a&unix_socket=/b").contains("twice"));
        assert!(rejection("mysql://u@h/db?pool_min=x").contains("pool_min"));
        assert!(rejection("mysql://u@h/db?no_such_thing=1").contains("no_such_thing"));
    }

    fn tls(url: &str) -> Option<(SslMode, Option<PathBuf>)> {
        target(url).tls.map(|tls| (tls.mode, tls.ca))
    }

    #[test]
    fn ssl_mode_and_ssl_ca_as_pymysql_and_mysql_write_them() {
        use SslMode::*;
        let ca = || Some(PathBuf::from("/etc/ssl/rds bundle.pem"));
        assert_eq!(tls("mysql://u@h/db"), None, "plain TCP by default");
        assert_eq!(tls("mysql://u@h/db?ssl_mode=disabled"), None);
        assert_eq!(
            tls("mysql://u@h/db?ssl_mode=Required"),
            Some((Required, None))
        );
        assert_eq!(
            tls("mysql://u@h/db?ssl-mode=VERIFY_CA"),
            Some((VerifyCa, None))
        );
        assert_eq!(
            tls("mysql://u@h/db?ssl_mode=verify_identity"),
            Some((VerifyIdentity, None))
        );
        // A CA given is checked: the host name too unless the mode says
        // otherwise, as PyMySQL does.
        let with_ca = "mysql://u@h/db?ssl_ca=/etc/ssl/rds%20bundle.pem";
        assert_eq!(tls(with_ca), Some((VerifyIdentity, ca())));
        assert_eq!(
            tls("mysql://u@h/db?ssl_mode=REQUIRED&ssl_ca=/etc/ssl/rds+bundle.pem"),
            Some((VerifyCa, ca()))
        );
        assert_eq!(
            tls("mysql://u@h/db?ssl-ca=/etc/ssl/rds%20bundle.pem&ssl_mode=verify_ca"),
            Some((VerifyCa, ca()))
        );
        assert_eq!(
            mysql("mysql+pymysql://u:p@h/db?charset=utf8mb4&ssl-mode=verify_ca&ssl-ca=/ca.pem"),
            "mysql://u:p@h/db?ssl_mode=VERIFY_CA&ssl_ca=/ca.pem"
        );
    }

    #[test]
    fn tls_settings_that_cannot_mean_what_they_say_are_refused() {
        let message = rejection("mysql://u@h/db?ssl_mode=sometimes");
        assert!(
            message.contains("REQUIRED, VERIFY_CA, VERIFY_IDENTITY or DISABLED"),
            "{message}"
        );
        assert!(rejection("mysql://u@h/db?ssl_mode=PREFERRED").contains("PREFERRED"));
        assert!(rejection("mysql://u@h/db?ssl_mode=REQUIRED&ssl-mode=REQUIRED").contains("twice"));
        assert!(rejection("mysql://u@h/db?ssl_ca=").contains("ssl_ca"));
        assert!(rejection("mysql://u@h/db?ssl_mode=DISABLED&ssl_ca=/ca.pem").contains("DISABLED"));
        assert!(rejection("mysql://u@h/db?require_ssl=true").contains("ssl_mode="));
        assert!(rejection("mysql://u@h/db?ssl_mode=REQUIRED&unix_socket=/s").contains("socket"));
        assert!(rejection("mysql://u@h/db?ssl_ca=/ca.pem&prefer_socket=true").contains("socket"));
        assert!(!rejection("mysql://u:s3cret@h/db?ssl_mode=x").contains("s3cret"));
    }

    #[test]
    fn db_ssl_settings_are_added_to_a_mysql_url_once() {
        let base = DatabaseUrl::parse("mysql://u:p@h:3306/db").unwrap();
        let both = base
            .with_ssl_mode("verify_ca")
            .unwrap()
            .with_ssl_ca("/etc/ssl/my ca&co.pem")
            .unwrap();
        let DatabaseUrl::Mysql(url) = &both else {
            panic!("{both}");
        };
        assert_eq!(
            url,
            "mysql://u:p@h:3306/db?ssl_mode=VERIFY_CA&ssl_ca=/etc/ssl/my%20ca%26co.pem"
        );
        assert_eq!(
            mysql_target(url).unwrap().tls.unwrap().ca,
            Some(PathBuf::from("/etc/ssl/my ca&co.pem"))
        );
        assert!(
            both.with_ssl_mode("REQUIRED")
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        assert!(base.with_ssl_mode("maybe").is_err());
        let sqlite = DatabaseUrl::parse("sqlite:///x.db").unwrap();
        assert!(
            sqlite
                .with_ssl_ca("/ca.pem")
                .unwrap_err()
                .to_string()
                .contains("MySQL")
        );
    }
}
