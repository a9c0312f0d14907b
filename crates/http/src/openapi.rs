//! The OpenAPI 3.1 description, generated from the handlers' annotations
//! and these wire shapes. The shapes only describe JSON that the domain
//! renders; they are never used to produce responses. Every limit comes
//! from the constant its validator uses, so the document cannot drift from
//! what the server enforces (`schemathesis` checks it against a running
//! server: crates/server/tests/api/schemathesis.rs).

#![allow(dead_code)]

use serde::Serialize;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref};
use utoipa::openapi::{OpenApi as Document, RefOr, Required};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(title = "Orders service", description = "Customer orders with a Redis read cache."),
    paths(
        crate::orders::list, crate::orders::create, crate::orders::get,
        crate::orders::update_status, crate::orders::delete,
        crate::admin::reset, crate::admin::seed,
        crate::ops::healthz, crate::ops::readyz, crate::ops::metrics,
    ),
    components(schemas(LimitParam, CursorParam, IdempotencyKeyParam)),
    modifiers(&AdminAuth, &OptionalResetBody, &ApiKeyAuth, &TooManyRequests),
    tags(
        (name = "orders", description = "The original service's order endpoints"),
        (name = "admin", description = "Demo data; need ADMIN_PASSWORD"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// The name of the admin password's security scheme (the admin
/// operations' `security` attributes spell it out: a literal there).
pub const ADMIN_AUTH: &str = "admin_password";

/// The admin password travels in `X-Admin-Password` (or, when that header
/// is absent, in the body's `password`, which a scheme cannot express).
struct AdminAuth;

impl Modify for AdminAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ADMIN_AUTH,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Admin-Password",
                "ADMIN_PASSWORD; or a \"password\" member of the JSON body when this header is absent",
            ))),
        );
    }
}

/// The name of the API keys' security scheme.
pub const API_KEY_AUTH: &str = "api_key";

/// API keys (`Authorization: Bearer ok_…`), added to every operation that
/// looks at them (see `crate::auth`): the orders operations may go without
/// one (`API_KEY_REQUIRED=none`, the default) or need one with a scope;
/// the admin ones take the password or a key with `admin`. The 401 and 403
/// they answer are described once, here.
struct ApiKeyAuth;

impl ApiKeyAuth {
    fn refusal(description: &str, challenge: &str) -> RefOr<utoipa::openapi::Response> {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Error")))
                    .build(),
            )
            .header(
                "WWW-Authenticate",
                HeaderBuilder::new()
                    .schema(String::schema())
                    .description(Some(challenge))
                    .build(),
            )
            .build()
            .into()
    }

    fn orders_operation(operation: &mut Operation, scope: domain::Scope) {
        // `{}` first: with the default settings no key is needed.
        operation.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new(API_KEY_AUTH, [scope.as_str()]),
        ]);
        let responses = &mut operation.responses.responses;
        responses.insert(
            "401".to_owned(),
            Self::refusal(
                "API key missing (code api_key_required, when API_KEY_REQUIRED asks for one) or malformed, unknown or revoked (invalid_api_key)",
                r#"Bearer realm="orders", with error="invalid_token" for a bad key"#,
            ),
        );
        responses.insert(
            "403".to_owned(),
            Self::refusal(
                &format!("The API key lacks the {scope} scope (code insufficient_scope)"),
                &format!(r#"Bearer realm="orders", error="insufficient_scope", scope="{scope}""#),
            ),
        );
    }
}

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY_AUTH,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ok_<8 characters>_<43 characters>")
                    .description(Some(
                        "An API key made with `server api-key create`; API_KEY_REQUIRED says which requests need one",
                    ))
                    .build(),
            ),
        );
        use domain::Scope::{OrdersRead, OrdersWrite};
        for (path, item) in openapi.paths.paths.iter_mut() {
            if path.starts_with("/orders") {
                for (operation, scope) in [
                    (&mut item.get, OrdersRead),
                    (&mut item.head, OrdersRead),
                    (&mut item.post, OrdersWrite),
                    (&mut item.put, OrdersWrite),
                    (&mut item.patch, OrdersWrite),
                    (&mut item.delete, OrdersWrite),
                ] {
                    if let Some(operation) = operation {
                        Self::orders_operation(operation, scope);
                    }
                }
            } else if path.starts_with("/admin") {
                for operation in [&mut item.post].into_iter().flatten() {
                    operation
                        .security
                        .get_or_insert_with(Vec::new)
                        .push(SecurityRequirement::new(API_KEY_AUTH, ["admin"]));
                    let forbidden = Self::refusal(
                        "ADMIN_PASSWORD is not set (code admin_disabled), or an API key without the admin scope was shown and no good password (insufficient_scope)",
                        r#"Bearer realm="orders", error="insufficient_scope", scope="admin" (insufficient_scope only)"#,
                    );
                    operation
                        .responses
                        .responses
                        .insert("403".to_owned(), forbidden);
                    let unauthorized = Self::refusal(
                        "Wrong or missing password and no API key (code unauthorized), or a malformed, unknown or revoked key (invalid_api_key)",
                        r#"Bearer realm="orders", error="invalid_token" (invalid_api_key only)"#,
                    );
                    operation
                        .responses
                        .responses
                        .insert("401".to_owned(), unauthorized);
                }
            }
        }
    }
}

/// `POST /admin/reset` reads a body only for its `password`, and needs
/// none: its body is optional, and any JSON value.
struct OptionalResetBody;

impl Modify for OptionalResetBody {
    fn modify(&self, openapi: &mut Document) {
        let body = openapi
            .paths
            .paths
            .get_mut("/admin/reset")
            .and_then(|item| item.post.as_mut())
            .and_then(|operation| operation.request_body.as_mut());
        if let Some(body) = body {
            body.required = Some(Required::False);
        }
    }
}

/// Every operation the rate limit can refuse (all but the operational
/// ones, which it never limits) documents its 429 and its headers; the
/// admin operations also answer it while the client's address is locked
/// out after failed authentications (with `Retry-After` only). Added here
/// rather than in each handler's list so that no operation can miss it.
struct TooManyRequests;

impl Modify for TooManyRequests {
    fn modify(&self, openapi: &mut Document) {
        use utoipa::openapi::ResponseBuilder;
        use utoipa::openapi::content::Content;
        use utoipa::openapi::header::HeaderBuilder;

        let text = |pattern: &str, description: &str| {
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(pattern)),
                )
                .description(Some(description))
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if crate::rate_limit::EXEMPT.contains(&path.as_str()) {
                continue;
            }
            let admin = path.starts_with("/admin/");
            let description = if admin {
                "Over the rate limit (`too_many_requests`), or this client address is locked out after failed admin authentications (`admin_locked_out`)"
            } else {
                "Over the rate limit (`too_many_requests`)"
            };
            let response = ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "Error",
                    )))),
                )
                .header(
                    "Retry-After",
                    text("^[0-9]+$", "Seconds to wait before a retry is served"),
                )
                .header(
                    "RateLimit-Policy",
                    text(
                        "^\"default\";q=[0-9]+;w=60$",
                        "The quota per minute (draft-ietf-httpapi-ratelimit-headers); absent on admin_locked_out",
                    ),
                )
                .header(
                    "RateLimit",
                    text(
                        "^\"default\";r=[0-9]+;t=[0-9]+$",
                        "Requests left and seconds until one more is allowed; absent on admin_locked_out",
                    ),
                )
                .build();
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                operation
                    .responses
                    .responses
                    .insert("429".to_owned(), RefOr::T(response.clone()));
            }
        }
    }
}

/// Rust's `char::is_whitespace` (Unicode White_Space), what `str::trim`
/// removes, spelled out: `\s` differs between regex dialects.
const WHITE_SPACE: &str =
    r"\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// "1 to `max` characters after trimming", as a pattern: optional white
/// space, a first and a last character that are not white space with at
/// most `max - 2` characters between them, optional white space.
fn trimmed_pattern(max: usize) -> String {
    let space = format!("[{WHITE_SPACE}]");
    let visible = format!("[^{WHITE_SPACE}]");
    format!(
        "^{space}*{visible}(?:[\\s\\S]{{0,{}}}{visible})?{space}*$",
        max - 2
    )
}

fn name_schema(description: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(trimmed_pattern(domain::NAME_MAX_CHARS)))
        .description(Some(format!(
            "{description}: 1 to {} characters once leading and trailing white space is trimmed (it is)",
            domain::NAME_MAX_CHARS
        )))
        .into()
}

fn customer_name_schema() -> Schema {
    name_schema("The customer")
}

fn item_name_schema() -> Schema {
    name_schema("The item")
}

fn quantity_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(domain::QUANTITY_MAX))
        .into()
}

fn items_schema() -> Schema {
    ArrayBuilder::new()
        .items(Item::schema())
        .min_items(Some(1))
        .max_items(Some(domain::ITEMS_MAX))
        .into()
}

fn seed_count_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(domain::fake::MAX_SEED))
        .into()
}

/// `limit`: a page of 1 to 1000 orders.
pub struct LimitParam;

impl PartialSchema for LimitParam {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(domain::Limit::MAX))
            .into()
    }
}

impl ToSchema for LimitParam {}

/// `cursor`: the opaque `next_cursor` of the previous page.
pub struct CursorParam;

impl PartialSchema for CursorParam {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!(
                "^[0-9a-fA-F]{{{}}}$",
                domain::Cursor::ENCODED_LEN
            )))
            .into()
    }
}

impl ToSchema for CursorParam {}

/// `Idempotency-Key`: 1 to 255 visible ASCII characters (HTTP trims the
/// white space around a header's value, so it may be there too).
pub struct IdempotencyKeyParam;

impl PartialSchema for IdempotencyKeyParam {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!(
                "^[\\t ]*[\\x21-\\x7E](?:[\\t\\x20-\\x7E]{{0,{}}}[\\x21-\\x7E])?[\\t ]*$",
                domain::IDEMPOTENCY_KEY_MAX - 2
            )))
            .into()
    }
}

impl ToSchema for IdempotencyKeyParam {}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Received,
    Processing,
    Preparing,
    Ready,
    Shipped,
    Delivered,
    Completed,
    Cancelled,
}

#[derive(Serialize, ToSchema)]
pub struct Item {
    #[schema(schema_with = item_name_schema)]
    name: String,
    #[schema(schema_with = quantity_schema)]
    quantity: u32,
}

#[derive(Serialize, ToSchema)]
pub struct Order {
    /// UUIDv7: id order is creation order.
    #[schema(format = "uuid")]
    order_id: String,
    customer_name: String,
    status: Status,
    items: Vec<Item>,
    #[schema(format = "date-time")]
    created_at: String,
    #[schema(format = "date-time")]
    updated_at: String,
    /// 1 on creation, +1 on every change; the order's ETag.
    version: u64,
}

#[derive(Serialize, ToSchema)]
pub struct OrderList {
    /// Orders matching the filter, not the page size.
    total_orders: u64,
    orders: Vec<Order>,
    /// Only on paginated requests; null on the last page.
    next_cursor: Option<String>,
}

/// Unknown members are ignored.
#[derive(Serialize, ToSchema)]
pub struct NewOrder {
    #[schema(schema_with = customer_name_schema)]
    customer_name: String,
    #[schema(schema_with = items_schema)]
    items: Vec<Item>,
}

#[derive(Serialize, ToSchema)]
pub struct StatusChange {
    status: Status,
}

#[derive(Serialize, ToSchema)]
pub struct Message {
    message: String,
}

#[derive(Serialize, ToSchema)]
pub struct ResetResult {
    message: String,
    deleted_orders: u64,
}

#[derive(Serialize, ToSchema)]
pub struct SeedRequest {
    #[schema(schema_with = seed_count_schema)]
    count: u32,
    /// The admin password, read (as a string) only when the
    /// X-Admin-Password header is absent; any other value is ignored.
    #[schema(schema_with = any_value)]
    password: Option<String>,
}

fn any_value() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .into()
}

/// `POST /admin/seed`'s body: `{"count": N}` or, as the original also
/// accepted, a bare integer.
pub struct SeedBody;

impl PartialSchema for SeedBody {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                "SeedRequest",
            )))
            .item(seed_count_schema())
            .into()
    }
}

impl ToSchema for SeedBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("SeedRequest".to_owned(), SeedRequest::schema()));
    }
}

/// What `POST /admin/reset` reads of a body, which it does not need: any
/// JSON value, whose `password` member is read when the X-Admin-Password
/// header is absent.
pub struct ResetBody;

impl PartialSchema for ResetBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .property("password", any_value())
            .description(Some(
                "Any JSON value; a string \"password\" member is the admin password when the X-Admin-Password header is absent",
            ))
            .into()
    }
}

impl ToSchema for ResetBody {}

#[derive(Serialize, ToSchema)]
pub struct SeedResult {
    message: String,
    created: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Error {
    /// A message a person can act on.
    error: String,
    /// A stable snake_case identifier.
    code: String,
    /// On a 400 about one value: its path, as `items[1].quantity`,
    /// `limit` or `Idempotency-Key`. Absent when the body is not JSON.
    field: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Liveness {
    /// Always ok.
    status: String,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// ok, degraded (cache unavailable), unavailable (database down) or
    /// stopping (a graceful stop has begun).
    status: String,
    database: String,
    /// ok, disabled or unavailable.
    cache: String,
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    use super::ApiDoc;

    /// The schema's statuses are written out for the document; they must
    /// stay the domain's, which is what the API accepts.
    #[test]
    fn documented_statuses_are_the_domains() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let documented: Vec<&str> = doc["components"]["schemas"]["Status"]["enum"]
            .as_array()
            .expect("Status is an enum schema")
            .iter()
            .map(|value| value.as_str().unwrap())
            .collect();
        let domain: Vec<&str> = domain::OrderStatus::ALL.map(|s| s.as_str()).to_vec();
        assert_eq!(documented, domain);
    }

    /// Every orders operation may go without a key or take one with its
    /// scope, and documents the 401 and 403 of the key check.
    #[test]
    fn api_keys_are_documented() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert_eq!(
            doc["components"]["securitySchemes"]["api_key"]["scheme"],
            "bearer"
        );
        for (path, method, scope) in [
            ("/orders", "get", "orders:read"),
            ("/orders", "post", "orders:write"),
            ("/orders/{order_id}", "get", "orders:read"),
            ("/orders/{order_id}", "delete", "orders:write"),
            ("/orders/{order_id}/status", "patch", "orders:write"),
        ] {
            let operation = &doc["paths"][path][method];
            assert_eq!(
                operation["security"],
                serde_json::json!([{}, {"api_key": [scope]}]),
                "{method} {path}"
            );
            for status in ["401", "403"] {
                assert!(
                    operation["responses"][status]["headers"]["WWW-Authenticate"].is_object(),
                    "{method} {path} {status}"
                );
            }
        }
        let seed = &doc["paths"]["/admin/seed"]["post"]["security"];
        assert_eq!(
            seed,
            &serde_json::json!([{"admin_password": []}, {"api_key": ["admin"]}])
        );
        assert!(doc["paths"]["/healthz"]["get"]["security"].is_null());
    }

    /// Conditional requests and idempotent creation are told by headers; a
    /// client generated from the document needs them.
    #[test]
    fn conditional_and_idempotency_headers_are_documented() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let operation = |path: &str, method: &str| doc["paths"][path][method].clone();
        let header_params = |path: &str, method: &str| -> Vec<String> {
            operation(path, method)["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "header")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let response_headers = |path: &str, method: &str, status: &str| -> Vec<String> {
            operation(path, method)["responses"][status]["headers"]
                .as_object()
                .map(|headers| headers.keys().cloned().collect())
                .unwrap_or_default()
        };
        for (path, method, status) in [
            ("/orders", "get", "200"),
            ("/orders/{order_id}", "get", "200"),
            ("/orders", "post", "201"),
            ("/orders/{order_id}/status", "patch", "200"),
        ] {
            assert!(
                response_headers(path, method, status).contains(&"ETag".to_owned()),
                "{method} {path}"
            );
        }
        for path in ["/orders", "/orders/{order_id}"] {
            assert!(header_params(path, "get").contains(&"If-None-Match".to_owned()));
        }
        assert!(
            header_params("/orders/{order_id}/status", "patch").contains(&"If-Match".to_owned())
        );
        assert!(header_params("/orders", "post").contains(&"Idempotency-Key".to_owned()));
        assert!(
            response_headers("/orders", "post", "201").contains(&"Idempotent-Replayed".to_owned())
        );
    }

    /// Whatever the rate limit can refuse says so, with its headers; the
    /// operational endpoints, which it never limits, do not.
    #[test]
    fn every_limited_operation_documents_its_429() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut limited = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let too_many = &operation["responses"]["429"];
                if crate::rate_limit::EXEMPT.contains(&path.as_str()) {
                    assert!(too_many.is_null(), "{method} {path}");
                    continue;
                }
                limited += 1;
                let headers = too_many["headers"].as_object().expect("429 headers");
                for name in ["Retry-After", "RateLimit-Policy", "RateLimit"] {
                    assert!(headers.contains_key(name), "{method} {path} {name}");
                }
            }
        }
        assert_eq!(limited, 7, "orders and admin operations");
    }
}
