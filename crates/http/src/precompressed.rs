//! List bodies compressed once per list, not once per response.
//!
//! A compression middleware compresses every response anew: for a cached
//! 320 KB list that is far more work than serving it, and most clients ask
//! for gzip (browsers, Python's requests as the original's users run it,
//! curl --compressed). The list handler instead sends the gzip encoding
//! kept with the list document (made on the first request that wants it),
//! and the middleware leaves a response that has a `Content-Encoding`
//! alone. The ETag stays the same in both encodings, as it does under the
//! middleware (README: strong ETags under compression).
//!
//! A list too large for one buffer comes as parts (`ListBody::Parts`); its
//! gzip is laid out from the parts' own deflate streams (`ListParts::gzip`)
//! and sent by the handler as a [`StreamedBody`](crate::streamed::StreamedBody).
//! Both kinds are negotiated by [`list_coding`].

use std::io::Write;

use actix_web::HttpRequest;
use actix_web::http::header::{AcceptEncoding, Encoding, Header};
use bytes::Bytes;
use domain::ListDocument;
use flate2::Compression;
use flate2::write::GzEncoder;

/// The contract compresses responses of 1 KiB and more.
const MIN_BYTES: u64 = 1024;

/// The two codings the list handler sends itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListCoding {
    Gzip,
    Identity,
}

/// Which of gzip and identity the request prefers (by its q-values), or
/// `None` when it refuses both (`br, identity;q=0`). The one negotiation
/// of the list handler, for whole lists and for lists of parts alike. No
/// header, an empty one or one that does not parse means identity here,
/// though any coding would be allowed.
pub fn list_coding(req: &HttpRequest) -> Option<ListCoding> {
    let Ok(accepted) = AcceptEncoding::parse(req) else {
        return Some(ListCoding::Identity);
    };
    if accepted.0.is_empty() {
        return Some(ListCoding::Identity);
    }
    let supported = [Encoding::gzip(), Encoding::identity()];
    match accepted.negotiate(supported.iter())? {
        encoding if encoding == Encoding::gzip() => Some(ListCoding::Gzip),
        _ => Some(ListCoding::Identity),
    }
}

/// The gzip encoding of a whole `list` when the request prefers gzip to
/// identity and the body is worth it; `None` to send the body as it is
/// (and, for a list of parts, always: those are encoded by the handler
/// from their parts).
pub fn gzip_for(req: &HttpRequest, list: &ListDocument) -> Option<Bytes> {
    if list.len() < MIN_BYTES || list_coding(req) != Some(ListCoding::Gzip) {
        return None;
    }
    list.encoded(gzip)
}

/// Fast compression, as the middleware's: the list changes after every
/// write, and each version is compressed once.
fn gzip(body: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .map(Bytes::from)
        .expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use actix_web::test::TestRequest;
    use flate2::read::GzDecoder;

    use super::*;

    fn list() -> ListDocument {
        let orders = format!("[{}]", vec!["{\"order_id\":\"x\"}"; 200].join(","));
        ListDocument::from_rendered(Bytes::from(format!(
            "{{\"total_orders\":200,\"orders\":{orders}}}"
        )))
    }

    fn asking(accept_encoding: Option<&str>) -> HttpRequest {
        let request = TestRequest::get().uri("/orders");
        match accept_encoding {
            Some(value) => request.insert_header(("accept-encoding", value)),
            None => request,
        }
        .to_http_request()
    }

    #[test]
    fn gzip_when_the_client_prefers_it_and_it_is_the_body() {
        let list = list();
        for header in [
            "gzip",
            "gzip, deflate",
            "gzip, deflate, br, zstd",
            "br;q=0.5, gzip",
        ] {
            let gzipped = gzip_for(&asking(Some(header)), &list).expect(header);
            let mut unzipped = Vec::new();
            GzDecoder::new(&gzipped[..])
                .read_to_end(&mut unzipped)
                .unwrap();
            assert_eq!(unzipped, list.whole().unwrap()[..], "{header}");
        }
    }

    #[test]
    fn identity_otherwise() {
        let list = list();
        for header in [
            None,
            Some("identity"),
            Some("br"),
            Some("gzip;q=0"),
            Some("gzip;q=0.2, identity"),
        ] {
            assert_eq!(gzip_for(&asking(header), &list), None, "{header:?}");
        }
        let small =
            ListDocument::from_rendered(Bytes::from_static(b"{\"total_orders\":0,\"orders\":[]}"));
        assert_eq!(gzip_for(&asking(Some("gzip")), &small), None);
    }

    #[test]
    fn list_coding_follows_the_q_values_and_may_refuse_both() {
        use ListCoding::{Gzip, Identity};
        for (header, coding) in [
            (None, Some(Identity)),
            (Some(""), Some(Identity)),
            (Some("gzip, deflate, br"), Some(Gzip)),
            (Some("br;q=0.5, gzip"), Some(Gzip)),
            (Some("gzip, identity;q=0"), Some(Gzip)),
            (Some("br"), Some(Identity)),
            (Some("*"), Some(Identity)),
            (Some("gzip;q=0.2, identity"), Some(Identity)),
            (Some("br, identity;q=0"), None),
            (Some("gzip;q=0, identity;q=0"), None),
        ] {
            assert_eq!(list_coding(&asking(header)), coding, "{header:?}");
        }
    }

    #[test]
    fn a_list_of_parts_has_no_kept_gzip_copy() {
        let body = list().to_bytes().unwrap();
        let part: std::sync::Arc<dyn domain::parts::ListPart> =
            std::sync::Arc::new(domain::parts::ResidentPart::new(body));
        let parts = ListDocument::from_parts(domain::parts::ListParts::new([part]));
        assert_eq!(gzip_for(&asking(Some("gzip")), &parts), None);
    }
}
