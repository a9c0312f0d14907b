//! Entity tags and conditional requests. An order's tag is its version (it
//! changes exactly when the order does); a list's tag is a hash of its bytes.

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderName};
use domain::Version;
use xxhash_rust::xxh3::xxh3_64;

pub fn order_etag(version: Version) -> String {
    format!("\"{}\"", version.get())
}

pub fn list_etag(body: &[u8]) -> String {
    format!("\"{:016x}\"", xxh3_64(body))
}

fn tags<'a>(req: &'a HttpRequest, name: &HeaderName) -> Option<impl Iterator<Item = &'a str>> {
    let values = req.headers().get_all(name);
    let mut values = values.filter_map(|value| value.to_str().ok()).peekable();
    values.peek()?;
    Some(
        values
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|tag| !tag.is_empty()),
    )
}

/// True when `If-None-Match` names `etag` (weak comparison) or is `*`.
pub fn none_match_hits(req: &HttpRequest, etag: &str) -> bool {
    tags(req, &header::IF_NONE_MATCH)
        .is_some_and(|mut tags| tags.any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag))
}

/// What `If-Match` asks of an order: `None` when absent or `*` (any
/// version), else the version the client last saw. A tag that is not one of
/// ours can never match, so it maps to version 0, which no order has.
pub fn if_match_version(req: &HttpRequest) -> Option<Version> {
    let mut tags = tags(req, &header::IF_MATCH)?;
    let first = tags.next()?;
    if first == "*" {
        return None;
    }
    let version = first
        .strip_prefix('"')
        .and_then(|tag| tag.strip_suffix('"'))
        .and_then(|tag| tag.parse().ok())
        .unwrap_or(0);
    Some(Version::new(version))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn if_none_match_forms() {
        let tag = order_etag(Version::new(3));
        let req = TestRequest::default()
            .insert_header((header::IF_NONE_MATCH, "\"1\", W/\"3\""))
            .to_http_request();
        assert!(none_match_hits(&req, &tag));
        let req = TestRequest::default()
            .insert_header((header::IF_NONE_MATCH, "\"2\""))
            .to_http_request();
        assert!(!none_match_hits(&req, &tag));
        assert!(!none_match_hits(
            &TestRequest::default().to_http_request(),
            &tag
        ));
    }

    #[test]
    fn if_match_forms() {
        let with = |value: &str| {
            if_match_version(
                &TestRequest::default()
                    .insert_header((header::IF_MATCH, value))
                    .to_http_request(),
            )
        };
        assert_eq!(with("\"4\""), Some(Version::new(4)));
        assert_eq!(with("*"), None);
        assert_eq!(with("\"abc\""), Some(Version::new(0)));
        assert_eq!(
            if_match_version(&TestRequest::default().to_http_request()),
            None
        );
    }
}
