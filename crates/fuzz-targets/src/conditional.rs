//! `If-Match` and `If-None-Match`: the input is the two header values,
//! split at the first NUL byte (a byte no header value holds).

use actix_web::http::header::{self, HeaderValue};
use actix_web::test::TestRequest;
use http::parsers::{IfMatch, if_match, none_match_hits};

pub fn conditional_headers(data: &[u8]) {
    let (if_match_raw, none_match_raw) = match data.iter().position(|&byte| byte == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let mut request = TestRequest::default();
    let if_match_value = HeaderValue::from_bytes(if_match_raw).ok();
    if let Some(value) = &if_match_value {
        request = request.insert_header((header::IF_MATCH, value.clone()));
    }
    let none_match_value = HeaderValue::from_bytes(none_match_raw)
        .ok()
        .filter(|_| !none_match_raw.is_empty());
    if let Some(value) = &none_match_value {
        request = request.insert_header((header::IF_NONE_MATCH, value.clone()));
    }
    let request = request.to_http_request();

    match if_match(&request) {
        None => {}
        Some(IfMatch::Any) => {
            let text = if_match_value
                .as_ref()
                .and_then(|value| value.to_str().ok());
            assert!(text.is_some_and(|text| text.split(',').any(|tag| tag.trim() == "*")));
        }
        Some(IfMatch::Versions(versions)) => assert!(!versions.is_empty()),
    }
    // `*` matches any current representation.
    let etag = "\"1\"";
    let hits = none_match_hits(&request, etag);
    if none_match_value
        .as_ref()
        .and_then(|value| value.to_str().ok())
        .is_some_and(|text| text.split(',').any(|tag| tag.trim() == "*"))
    {
        assert!(hits);
    }
    if none_match_value.is_none() {
        assert!(!hits, "no If-None-Match, nothing to hit");
    }
}
