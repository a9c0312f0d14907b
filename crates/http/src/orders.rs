//! The original's order endpoints.

use std::sync::Arc;

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use domain::{ListBody, ListQuery, OrderId, OrderRepository, StatusUpdate};

use crate::AppState;
use crate::body::JsonBody;
use crate::compression::{self, EncodingChosen};
use crate::conditional::{IfMatch, if_match, list_etag, none_match_hits, order_etag};
use crate::error::ApiError;
use crate::input::{self, ListParams};
use crate::precedence::Precedence;
use crate::precompressed::{self, ListCoding};
use crate::sliced::SlicedBody;
use crate::streamed::StreamedBody;

pub fn configure<R: OrderRepository>(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/orders")
            .route(web::get().to(list::<R>))
            .route(web::post().to(create::<R>))
            .default_service(crate::method_not_allowed("GET, POST")),
    )
    .service(
        web::resource("/orders/{order_id}")
            .route(web::get().to(get::<R>))
            .route(web::delete().to(delete::<R>))
            .default_service(crate::method_not_allowed("GET, DELETE")),
    )
    .service(
        web::resource("/orders/{order_id}/status")
            .route(web::patch().to(update_status::<R>))
            .default_service(crate::method_not_allowed("PATCH")),
    );
}

/// Ids that are not UUIDs cannot name an order: they are "not found", with
/// the original's message, rather than a format error.
fn order_id(raw: &str) -> Result<OrderId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::OrderNotFound(raw.to_owned()))
}

fn json(mut response: HttpResponseBuilder, etag: String) -> HttpResponseBuilder {
    response
        .insert_header(ContentType::json())
        .insert_header((header::ETAG, etag));
    response
}

#[utoipa::path(
    get, path = "/orders", tag = "orders", operation_id = "list_orders",
    params(
        ("limit" = Option<crate::openapi::LimitParam>, Query, description = "Page size, 1 to 1000: asks for keyset pagination"),
        ("cursor" = Option<crate::openapi::CursorParam>, Query, description = "The next_cursor of the previous page (a cursor alone asks for a page of 100)"),
        ("status" = Option<crate::openapi::Status>, Query, description = "Only orders in this status"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag of an earlier response: 304 while it is still current"),
    ),
    responses(
        (status = 200, description = "Orders, newest first", body = crate::openapi::OrderList,
         headers(("ETag" = String, description = "Strong tag of the list's bytes"))),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, description = "Invalid or repeated parameter; `field` names it", body = crate::openapi::Error),
        (status = 406, description = "Accept-Encoding refuses every coding the list can be sent in", body = crate::openapi::Error),
        (status = 500, description = "A large list's spooled parts could not be read", body = crate::openapi::Error),
        (status = 503, description = "Database unavailable", body = crate::openapi::Error),
    )
)]
pub async fn list<R: OrderRepository>(
    state: web::Data<AppState<R>>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = ListQuery::try_from(ListParams::parse(req.query_string())?)?;
    // Unset only in tests that build an `App` without `serve`.
    let precedence = req.app_data::<Precedence>().cloned().unwrap_or_default();
    if query.page.is_none() {
        precedence.make_way().await;
    }
    let list = state.repo.list(query).await?;
    let etag = list_etag(&list);
    if none_match_hits(&req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    let mut response = json(HttpResponse::Ok(), etag);
    let parts = match list.body() {
        ListBody::Whole(body) => {
            let body = match precompressed::gzip_for(&req, &list) {
                Some(gzipped) => {
                    gzip(&mut response);
                    gzipped
                }
                None => body.clone(),
            };
            return Ok(response.body(SlicedBody::new(body).making_way(precedence)));
        }
        ListBody::Parts(parts) => Arc::clone(parts),
    };
    // Parts are encoded here and nowhere else (see `compression`).
    response.extensions_mut().insert(EncodingChosen);
    let pieces = match precompressed::list_coding(&req) {
        Some(ListCoding::Identity) => parts.parts().to_vec(),
        Some(ListCoding::Gzip) => {
            gzip(&mut response);
            // May deflate parts never deflated before, or read files.
            web::block(move || parts.gzip())
                .await
                .map_err(|error| ApiError::list_parts(std::io::Error::other(error)))?
                .map_err(ApiError::list_parts)?
        }
        None => return Ok(compression::not_acceptable()),
    };
    Ok(response.body(StreamedBody::new(pieces).making_way(precedence)))
}

fn gzip(response: &mut HttpResponseBuilder) {
    response
        .insert_header((header::CONTENT_ENCODING, "gzip"))
        .insert_header((header::VARY, "accept-encoding"));
}

#[utoipa::path(
    post, path = "/orders", tag = "orders", operation_id = "create_order",
    request_body = crate::openapi::NewOrder,
    params(("Idempotency-Key" = Option<crate::openapi::IdempotencyKeyParam>, Header, description = "1 to 255 characters: a retry with the same key and body within 24 h returns the first response and creates nothing")),
    responses(
        (status = 201, description = "Created", body = crate::openapi::Order,
         headers(
             ("Location" = String, description = "/orders/{order_id}"),
             ("ETag" = String, description = "The order's version, as a strong tag"),
             ("Idempotent-Replayed" = String, description = "true when this is the stored response to an earlier request with the same Idempotency-Key"),
         )),
        (status = 400, description = "Invalid order, Idempotency-Key or JSON; `field` names the value", body = crate::openapi::Error),
        (status = 413, description = "Body over 64 KiB", body = crate::openapi::Error),
        (status = 415, description = "Content-Type other than JSON", body = crate::openapi::Error),
        (status = 422, description = "Idempotency-Key reused with another body", body = crate::openapi::Error),
        (status = 500, description = "Internal error", body = crate::openapi::Error),
        (status = 503, description = "Database unavailable", body = crate::openapi::Error),
    )
)]
pub async fn create<R: OrderRepository>(
    state: web::Data<AppState<R>>,
    req: HttpRequest,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let order = input::new_order(body)?;
    let idempotency = input::idempotency_key(req.headers(), &order)?;
    let created = state.repo.create(order, idempotency).await?;
    let document = created.document;
    let mut response = json(HttpResponse::Created(), order_etag(document.version()));
    response.insert_header((header::LOCATION, format!("/orders/{}", document.id())));
    if created.replayed {
        response.insert_header(("idempotent-replayed", "true"));
    }
    Ok(response.body(document.into_body()))
}

#[utoipa::path(
    get, path = "/orders/{order_id}", tag = "orders", operation_id = "get_order",
    params(
        ("order_id" = String, Path, description = "The order's UUID"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag of an earlier response: 304 while it is still current"),
    ),
    responses(
        (status = 200, description = "The order", body = crate::openapi::Order,
         headers(("ETag" = String, description = "The order's version, as a strong tag"))),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "No such order (or not a UUID)", body = crate::openapi::Error),
        (status = 500, description = "Internal error", body = crate::openapi::Error),
        (status = 503, description = "Database unavailable", body = crate::openapi::Error),
    )
)]
pub async fn get<R: OrderRepository>(
    state: web::Data<AppState<R>>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(&path)?;
    let document = state
        .repo
        .get(id)
        .await?
        .ok_or_else(|| ApiError::OrderNotFound(path.into_inner()))?;
    let etag = order_etag(document.version());
    if none_match_hits(&req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    Ok(json(HttpResponse::Ok(), etag).body(document.into_body()))
}

#[utoipa::path(
    patch, path = "/orders/{order_id}/status", tag = "orders", operation_id = "update_order_status",
    params(
        ("order_id" = String, Path, description = "The order's UUID"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read: the change is made only if the order is still at that version"),
    ),
    request_body = crate::openapi::StatusChange,
    responses(
        (status = 200, description = "The updated order", body = crate::openapi::Order,
         headers(("ETag" = String, description = "The order's new version, as a strong tag"))),
        (status = 400, description = "Missing or unknown status, or not JSON", body = crate::openapi::Error),
        (status = 404, description = "No such order (answered before a bad body)", body = crate::openapi::Error),
        (status = 412, description = "The order changed since the ETag given in If-Match", body = crate::openapi::Error),
        (status = 413, description = "Body over 64 KiB", body = crate::openapi::Error),
        (status = 415, description = "Content-Type other than JSON", body = crate::openapi::Error),
        (status = 500, description = "Internal error", body = crate::openapi::Error),
        (status = 503, description = "Database unavailable", body = crate::openapi::Error),
    )
)]
pub async fn update_status<R: OrderRepository>(
    state: web::Data<AppState<R>>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Result<JsonBody, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(&path)?;
    let status = match body.and_then(|JsonBody(body)| input::status_change(body)) {
        Ok(status) => status,
        // As in the original, an unknown order is reported before a bad body.
        Err(error) => {
            return Err(match state.repo.get(id).await? {
                None => ApiError::OrderNotFound(path.into_inner()),
                Some(_) => error,
            });
        }
    };
    let expected = match if_match(&req) {
        None | Some(IfMatch::Any) => None,
        Some(IfMatch::Versions(versions)) if versions.len() == 1 => Some(versions[0]),
        Some(IfMatch::Versions(versions)) => {
            // Several tags: the one naming the current version applies, and
            // the update still checks that version atomically.
            let current = state
                .repo
                .get(id)
                .await?
                .ok_or_else(|| ApiError::OrderNotFound(path.to_string()))?
                .version();
            Some(if versions.contains(&current) {
                current
            } else {
                IfMatch::NEVER
            })
        }
    };
    match state.repo.update_status(id, status, expected).await? {
        StatusUpdate::Updated(document) => {
            Ok(json(HttpResponse::Ok(), order_etag(document.version())).body(document.into_body()))
        }
        StatusUpdate::NotFound => Err(ApiError::OrderNotFound(path.into_inner())),
        StatusUpdate::VersionMismatch { current } => {
            Err(ApiError::PreconditionFailed(current.get()))
        }
    }
}

#[utoipa::path(
    delete, path = "/orders/{order_id}", tag = "orders", operation_id = "delete_order",
    params(("order_id" = String, Path, description = "The order's UUID")),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::Message),
        (status = 404, description = "No such order (or not a UUID)", body = crate::openapi::Error),
        (status = 500, description = "Internal error", body = crate::openapi::Error),
        (status = 503, description = "Database unavailable", body = crate::openapi::Error),
    )
)]
pub async fn delete<R: OrderRepository>(
    state: web::Data<AppState<R>>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(&path)?;
    if !state.repo.delete(id).await? {
        return Err(ApiError::OrderNotFound(path.into_inner()));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "message": format!("Order '{}' has been deleted.", path.as_str()),
    })))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use actix_web::dev::ServerHandle;
    use bytes::Bytes;
    use domain::parts::{ListPart, ListParts};
    use domain::{
        CacheState, Created, Health, IdempotencyKey, ListDocument, NewOrder, OrderDocument,
        OrderStatus, RepoError, RepoStats, ResetOutcome, StatusUpdate, Version,
    };
    use flate2::read::GzDecoder;

    use super::*;
    use crate::streamed::tests::{SpooledPart, resident};
    use crate::{AdminPassword, HttpSettings};

    /// A repository whose only read is one list.
    struct OneList(ListDocument);

    fn absent() -> RepoError {
        RepoError::Internal("not in this test".into())
    }

    impl OrderRepository for OneList {
        async fn create(
            &self,
            _order: NewOrder,
            _idempotency: Option<IdempotencyKey>,
        ) -> Result<Created, RepoError> {
            Err(absent())
        }

        async fn get(&self, _id: OrderId) -> Result<Option<OrderDocument>, RepoError> {
            Ok(None)
        }

        async fn list(&self, _query: ListQuery) -> Result<ListDocument, RepoError> {
            Ok(self.0.clone())
        }

        async fn update_status(
            &self,
            _id: OrderId,
            _status: OrderStatus,
            _expected: Option<Version>,
        ) -> Result<StatusUpdate, RepoError> {
            Err(absent())
        }

        async fn delete(&self, _id: OrderId) -> Result<bool, RepoError> {
            Err(absent())
        }

        async fn reset(&self) -> Result<ResetOutcome, RepoError> {
            Err(absent())
        }

        async fn seed(&self, _count: u64) -> Result<u64, RepoError> {
            Err(absent())
        }

        async fn health(&self) -> Health {
            Health {
                database_ok: true,
                cache: CacheState::Disabled,
            }
        }

        fn stats(&self) -> RepoStats {
            RepoStats::default()
        }
    }

    /// The whole server (every middleware) on a free port.
    fn start(list: ListDocument) -> (SocketAddr, ServerHandle) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let settings = HttpSettings {
            admin_password: AdminPassword::new(None),
            cors_origins: None,
            workers: 1,
            shutdown_timeout: Duration::from_secs(1),
            limits: crate::Limits::default(),
            api_key_required: crate::KeyRequirement::None,
            rate_limits: crate::RateLimitSettings::default(),
        };
        let server = crate::serve(
            OneList(list),
            settings,
            listener,
            None,
            crate::Drain::default(),
            crate::KeyRing::default(),
        )
        .unwrap();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        (addr, handle)
    }

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }

        fn content_length(&self) -> usize {
            self.header("content-length").unwrap().parse().unwrap()
        }
    }

    /// `GET /orders` over a plain socket, read until the server closes
    /// it, so that a body cut short shows as such.
    async fn get_orders(addr: SocketAddr, headers: &[(&str, &str)]) -> Reply {
        let mut request =
            String::from("GET /orders HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        actix_web::rt::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            let mut raw = Vec::new();
            // A connection reset after a failed body is an end as well.
            let _ = stream.read_to_end(&mut raw);
            let end = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("a response head");
            let head = std::str::from_utf8(&raw[..end]).unwrap();
            let mut lines = head.split("\r\n");
            let status = lines.next().unwrap()[9..12].parse().unwrap();
            let headers = lines
                .map(|line| {
                    let (name, value) = line.split_once(':').unwrap();
                    (name.to_ascii_lowercase(), value.trim().to_owned())
                })
                .collect();
            Reply {
                status,
                headers,
                body: raw[end + 4..].to_vec(),
            }
        })
        .await
        .unwrap()
    }

    fn orders(from: usize, count: usize) -> String {
        (from..from + count)
            .map(|i| format!("{{\"order_id\":\"{i:08}\",\"customer_name\":\"Customer {i}\"}}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A list of about 400 KB in parts, the middle one spooled: more than
    /// a 64 KiB slice each, as storage makes them.
    fn parts_list() -> (ListDocument, Arc<SpooledPart>) {
        let spooled = SpooledPart::new(orders(3000, 3000));
        let parts: Vec<Arc<dyn ListPart>> = vec![
            resident("{\"total_orders\":9000,\"orders\":["),
            resident(orders(0, 3000)),
            resident(","),
            spooled.clone(),
            resident(","),
            resident(orders(6000, 3000)),
            resident("]}"),
        ];
        let list = ListDocument::from_parts(ListParts::new(parts));
        (list, spooled)
    }

    fn joined(list: &ListDocument) -> Bytes {
        let joined = list.to_bytes().unwrap();
        let value: serde_json::Value = serde_json::from_slice(&joined).unwrap();
        assert_eq!(value["orders"].as_array().unwrap().len(), 9000);
        joined
    }

    #[actix_web::test]
    async fn parts_go_out_as_identity_with_their_length() {
        let (list, spooled) = parts_list();
        let expected = joined(&list);
        let reads = spooled.reads.load(Ordering::SeqCst);
        let (addr, server) = start(list.clone());
        // `br` alone would have the middleware compress a sized body.
        for accept in [
            None,
            Some("identity"),
            Some("br"),
            Some("gzip;q=0.5, identity"),
        ] {
            let headers: Vec<_> = accept.map(|a| ("Accept-Encoding", a)).into_iter().collect();
            let reply = get_orders(addr, &headers).await;
            assert_eq!(reply.status, 200, "{accept:?}");
            assert_eq!(reply.header("content-encoding"), None, "{accept:?}");
            assert_eq!(reply.content_length(), expected.len(), "{accept:?}");
            assert_eq!(reply.body, expected, "{accept:?}");
            assert_eq!(reply.header("etag"), Some(list_etag(&list).as_str()));
            assert_eq!(reply.header("content-type"), Some("application/json"));
        }
        assert_eq!(spooled.reads.load(Ordering::SeqCst), reads + 4);
        server.stop(false).await;
    }

    #[actix_web::test]
    async fn parts_go_out_gzipped_when_the_client_prefers_gzip() {
        let (list, _) = parts_list();
        let expected = joined(&list);
        let (addr, server) = start(list);
        for accept in [
            "gzip, deflate, br",
            "gzip, identity;q=0",
            "br;q=1, gzip;q=0.8",
        ] {
            let reply = get_orders(addr, &[("Accept-Encoding", accept)]).await;
            assert_eq!(reply.status, 200, "{accept}");
            assert_eq!(reply.header("content-encoding"), Some("gzip"), "{accept}");
            // CORS adds its own names to Vary.
            let vary = reply.header("vary").unwrap();
            assert!(vary.starts_with("accept-encoding"), "{accept}: {vary}");
            assert_eq!(reply.content_length(), reply.body.len(), "{accept}");
            assert!(reply.body.len() < expected.len() / 4, "{accept}");
            let mut unzipped = Vec::new();
            GzDecoder::new(&reply.body[..])
                .read_to_end(&mut unzipped)
                .unwrap();
            assert_eq!(unzipped, expected, "{accept}");
        }
        server.stop(false).await;
    }

    #[actix_web::test]
    async fn parts_refused_in_both_codings_are_a_json_406() {
        let (list, _) = parts_list();
        let (addr, server) = start(list);
        let reply = get_orders(addr, &[("Accept-Encoding", "br, identity;q=0")]).await;
        assert_eq!(reply.status, 406);
        assert_eq!(reply.header("content-encoding"), None);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["code"], "not_acceptable");
        server.stop(false).await;
    }

    #[actix_web::test]
    async fn a_part_failing_mid_body_cuts_the_response_short() {
        let parts: Vec<Arc<dyn ListPart>> = vec![
            resident(orders(0, 3000)),
            SpooledPart::failing(100_000),
            resident("]}"),
        ];
        let list = ListDocument::from_parts(ListParts::new(parts));
        let (addr, server) = start(list);
        for _ in 0..2 {
            // The status went out before the failure; the body stops at it
            // and the connection is closed. The second round shows the
            // server still answering.
            let reply = get_orders(addr, &[]).await;
            assert_eq!(reply.status, 200);
            assert!(reply.body.len() < reply.content_length());
            assert!(reply.body.len() <= orders(0, 3000).len());
        }
        // Gzip needs every part's deflate stream before the response
        // begins: the failure is a JSON 500 instead.
        let reply = get_orders(addr, &[("Accept-Encoding", "gzip")]).await;
        assert_eq!(reply.status, 500);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["code"], "internal_error");
        server.stop(false).await;
    }

    #[actix_web::test]
    async fn a_parts_list_has_its_etag_and_answers_304() {
        let (list, spooled) = parts_list();
        let etag = list_etag(&list);
        let reads = spooled.reads.load(Ordering::SeqCst);
        let (addr, server) = start(list);
        for accept in ["identity", "gzip"] {
            let reply = get_orders(
                addr,
                &[("Accept-Encoding", accept), ("If-None-Match", &etag)],
            )
            .await;
            assert_eq!(reply.status, 304, "{accept}");
            assert_eq!(reply.header("etag"), Some(etag.as_str()));
            assert!(reply.body.is_empty());
            let reply = get_orders(addr, &[("Accept-Encoding", accept)]).await;
            assert_eq!(reply.header("etag"), Some(etag.as_str()), "{accept}");
        }
        let other = get_orders(addr, &[("If-None-Match", "\"0000000000000000\"")]).await;
        assert_eq!(other.status, 200);
        // The three 200s read the spooled part (gzip to deflate it), the
        // 304s never.
        assert_eq!(spooled.reads.load(Ordering::SeqCst), reads + 3);
        server.stop(false).await;
    }

    #[actix_web::test]
    async fn whole_lists_are_served_as_before() {
        let body = format!("{{\"total_orders\":3000,\"orders\":[{}]}}", orders(0, 3000));
        let list = ListDocument::from_rendered(Bytes::from(body.clone()));
        let (addr, server) = start(list);
        let plain = get_orders(addr, &[]).await;
        assert_eq!(plain.body, body.as_bytes());
        assert_eq!(plain.content_length(), body.len());
        let gzipped = get_orders(addr, &[("Accept-Encoding", "gzip, deflate, br")]).await;
        assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
        let mut unzipped = Vec::new();
        GzDecoder::new(&gzipped.body[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, body.as_bytes());
        // Brotli only: the middleware still compresses a whole list.
        let brotli = get_orders(addr, &[("Accept-Encoding", "br")]).await;
        assert_eq!(brotli.header("content-encoding"), Some("br"));
        server.stop(false).await;
    }
}
