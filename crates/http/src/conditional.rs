//! Entity tags and conditional requests. An order's tag is its version (it
//! changes exactly when the order does); a list's tag is a hash of its bytes.

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderName};
use domain::{ListDocument, Version};

pub fn order_etag(version: Version) -> String {
    format!("\"{}\"", version.get())
}

pub fn list_etag(list: &ListDocument) -> String {
    format!("\"{:016x}\"", list.digest())
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

/// What `If-Match` asks of an order.
#[derive(Debug, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any current version.
    Any,
    /// The versions the client would accept. A tag that is not one of ours
    /// can never match, so it stands for [`IfMatch::NEVER`].
    Versions(Vec<Version>),
}

impl IfMatch {
    /// No order has version 0.
    pub const NEVER: Version = Version::new(0);
}

/// `None` when the request has no `If-Match`, or one that lists no tag
/// (an empty field value): it names no version, so it asks for nothing.
pub fn if_match(req: &HttpRequest) -> Option<IfMatch> {
    let tags: Vec<&str> = tags(req, &header::IF_MATCH)?.collect();
    if tags.is_empty() {
        return None;
    }
    if tags.contains(&"*") {
        return Some(IfMatch::Any);
    }
    let versions = tags
        .into_iter()
        .map(|tag| {
            tag.strip_prefix('"')
                .and_then(|tag| tag.strip_suffix('"'))
                .and_then(|tag| tag.parse().ok())
                .map_or(IfMatch::NEVER, Version::new)
        })
        .collect();
    Some(IfMatch::Versions(versions))
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
            if_match(
                &TestRequest::default()
                    .insert_header((header::IF_MATCH, value))
                    .to_http_request(),
            )
        };
        let versions = |list: &[u64]| {
            Some(IfMatch::Versions(
                list.iter().copied().map(Version::new).collect(),
            ))
        };
        assert_eq!(with("\"4\""), versions(&[4]));
        assert_eq!(with("\"3\", \"4\""), versions(&[3, 4]));
        assert_eq!(with("*"), Some(IfMatch::Any));
        assert_eq!(with("\"abc\""), versions(&[0]));
        assert_eq!(with(""), None);
        assert_eq!(with(" , "), None);
        assert_eq!(if_match(&TestRequest::default().to_http_request()), None);
    }
}
