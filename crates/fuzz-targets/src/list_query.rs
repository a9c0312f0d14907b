//! `GET /orders` query strings: the pairs, then the domain's query, with
//! the cursor the page names.

use domain::{Cursor, ListQuery};
use http::parsers::ListParams;

use crate::answered;

pub fn list_query(data: &[u8]) {
    // A cursor on its own: whatever decodes must encode back to a cursor
    // that decodes to the same position.
    if let Some(cursor) = std::str::from_utf8(data).ok().and_then(Cursor::decode) {
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
    }
    // actix-web hands handlers the query string as text.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let query = ListParams::parse(text).and_then(ListQuery::try_from);
    match query {
        Ok(query) => {
            // Equal queries share a cache key: the canonical text must read
            // back as the same query.
            match query.canonical() {
                None => assert!(query.is_full()),
                Some(canonical) => {
                    let again = ListParams::parse(&canonical)
                        .and_then(ListQuery::try_from)
                        .unwrap_or_else(|error| panic!("{canonical:?} does not parse: {error}"));
                    assert_eq!(again, query);
                }
            }
        }
        Err(error) => {
            assert_eq!(answered(&error), 400);
            assert!(error.field().is_some(), "a rejected parameter is named");
        }
    }
}
