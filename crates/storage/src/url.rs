//! Database URLs in the forms the original's SQLAlchemy configuration used,
//! turned into what our drivers take.

use std::fmt;
use std::path::PathBuf;

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

fn parse_mysql(url: &str, rest: &str) -> Result<DatabaseUrl, StorageError> {
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
    let kept: Vec<&str> = query
        .split('&')
        .filter(|param| !param.is_empty() && !param.starts_with("charset="))
        .collect();
    let mut normalised = format!("mysql://{authority}/{database}");
    if !kept.is_empty() {
        normalised.push('?');
        normalised.push_str(&kept.join("&"));
    }
    Ok(DatabaseUrl::Mysql(normalised))
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
}
