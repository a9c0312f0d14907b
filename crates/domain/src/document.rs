//! Orders rendered to their exact wire bytes. The read side of the
//! repository returns these, so that a cache can store and serve the bytes
//! themselves and a hit never decodes and re-encodes JSON.

use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use xxhash_rust::xxh3::xxh3_64;

use crate::parts::ListParts;
use crate::{Cursor, Order, OrderId, Version};

/// The body of `GET /orders/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDocument {
    id: OrderId,
    version: Version,
    body: Bytes,
}

const VERSION_TAIL: &[u8] = b"\"version\":";

impl OrderDocument {
    pub fn render(order: &Order) -> Self {
        let body = serde_json::to_vec(order).expect("an order always serialises");
        Self {
            id: order.id,
            version: order.version,
            body: Bytes::from(body),
        }
    }

    /// Rebuilds a document from bytes this crate rendered (a cache hit).
    /// `version` is the last field of an order, so it is read from the tail
    /// instead of parsing the whole body; `None` means the bytes are not a
    /// rendered order and must not be served.
    pub fn from_rendered(id: OrderId, body: Bytes) -> Option<Self> {
        let without_brace = body.strip_suffix(b"}")?;
        let digits_start = without_brace
            .iter()
            .rposition(|b| !b.is_ascii_digit())
            .map_or(0, |i| i + 1);
        let (head, digits) = without_brace.split_at(digits_start);
        if !head.ends_with(VERSION_TAIL) || digits.is_empty() {
            return None;
        }
        let version = std::str::from_utf8(digits).ok()?.parse().ok()?;
        Some(Self {
            id,
            version: Version::new(version),
            body,
        })
    }

    pub fn id(&self) -> OrderId {
        self.id
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn into_body(self) -> Bytes {
        self.body
    }
}

/// The body of `GET /orders`.
#[derive(Debug, Clone)]
pub struct ListDocument {
    body: ListBody,
    /// Made once and shared by every clone: a cached list is served many
    /// times, each time with its ETag and often compressed.
    derived: Arc<Derived>,
}

/// A list body as one buffer (what the cache stores and serves), or, when
/// it is large, as parts that are sent one after another and never joined.
#[derive(Debug, Clone)]
pub enum ListBody {
    Whole(Bytes),
    Parts(Arc<ListParts>),
}

#[derive(Debug, Default)]
struct Derived {
    digest: OnceLock<u64>,
    encoded: OnceLock<Bytes>,
}

impl PartialEq for ListDocument {
    fn eq(&self, other: &Self) -> bool {
        match (&self.body, &other.body) {
            (ListBody::Whole(a), ListBody::Whole(b)) => a == b,
            (ListBody::Parts(a), ListBody::Parts(b)) => {
                a.len() == b.len() && a.digest() == b.digest()
            }
            _ => false,
        }
    }
}

impl Eq for ListDocument {}

impl ListDocument {
    /// Joins already rendered orders into a list body without re-encoding
    /// them. `next_cursor` is `None` for an unpaginated list (the field is
    /// left out, as the original did) and `Some(None)` on a last page.
    pub fn render<'a, I>(total_orders: u64, orders: I, next_cursor: Option<Option<Cursor>>) -> Self
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: Clone,
    {
        let orders = orders.into_iter();
        // Sized exactly (the fixed parts are under 128 bytes), so a list
        // is written once: growing a 320 KB buffer copies it again each time,
        // into fresh pages.
        let (count, bytes) = orders.clone().fold((0, 0), |(count, bytes), order| {
            (count + 1, bytes + order.len())
        });
        let mut body = BytesMut::with_capacity(128 + bytes + count);
        body.put_slice(b"{\"total_orders\":");
        body.put_slice(total_orders.to_string().as_bytes());
        body.put_slice(b",\"orders\":[");
        for (i, order) in orders.enumerate() {
            if i > 0 {
                body.put_u8(b',');
            }
            body.put_slice(order);
        }
        body.put_u8(b']');
        if let Some(next) = next_cursor {
            body.put_slice(b",\"next_cursor\":");
            match next {
                Some(cursor) => {
                    body.put_u8(b'"');
                    body.put_slice(cursor.encode().as_bytes());
                    body.put_u8(b'"');
                }
                None => body.put_slice(b"null"),
            }
        }
        body.put_u8(b'}');
        Self::from_rendered(body.freeze())
    }

    /// Wraps bytes this crate rendered (a cache hit).
    pub fn from_rendered(body: Bytes) -> Self {
        Self {
            body: ListBody::Whole(body),
            derived: Arc::default(),
        }
    }

    /// A list sent as parts (see [`ListParts`]).
    pub fn from_parts(parts: ListParts) -> Self {
        Self {
            body: ListBody::Parts(Arc::new(parts)),
            derived: Arc::default(),
        }
    }

    /// A 64-bit hash of the body (xxh3 of a whole body, computed on first
    /// use; of the parts' digests for parts). Only compared with itself:
    /// the same body as whole and as parts has two digests.
    pub fn digest(&self) -> u64 {
        match &self.body {
            ListBody::Whole(body) => *self.derived.digest.get_or_init(|| xxh3_64(body)),
            ListBody::Parts(parts) => parts.digest(),
        }
    }

    /// The whole body in the one transfer encoding its server uses (gzip,
    /// for the HTTP layer), made by `encode` on first use and then shared;
    /// `None` for a list of parts, which encode themselves.
    pub fn encoded(&self, encode: impl FnOnce(&[u8]) -> Bytes) -> Option<Bytes> {
        let ListBody::Whole(body) = &self.body else {
            return None;
        };
        Some(self.derived.encoded.get_or_init(|| encode(body)).clone())
    }

    /// Bytes in the body.
    pub fn len(&self) -> u64 {
        match &self.body {
            ListBody::Whole(body) => body.len() as u64,
            ListBody::Parts(parts) => parts.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn body(&self) -> &ListBody {
        &self.body
    }

    /// The body when it is one buffer.
    pub fn whole(&self) -> Option<&Bytes> {
        match &self.body {
            ListBody::Whole(body) => Some(body),
            ListBody::Parts(_) => None,
        }
    }

    pub fn into_body(self) -> ListBody {
        self.body
    }

    /// The body as one buffer, joining (and reading) parts: for tests and
    /// tools, not for serving.
    pub fn to_bytes(&self) -> std::io::Result<Bytes> {
        match &self.body {
            ListBody::Whole(body) => Ok(body.clone()),
            ListBody::Parts(parts) => parts.join(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CustomerName, ItemName, NewItem, NewOrder, Quantity, Timestamp};

    fn order() -> Order {
        let new = NewOrder::new(
            CustomerName::parse("Alice").unwrap(),
            vec![NewItem {
                name: ItemName::parse("Pen").unwrap(),
                quantity: Quantity::parse(2).unwrap(),
            }],
        )
        .unwrap();
        let mut order = Order::create(&new, Timestamp::from_millis(0));
        order.version = Version::new(42);
        order
    }

    #[test]
    fn renders_the_wire_format_in_order() {
        let order = order();
        let doc = OrderDocument::render(&order);
        let expected = format!(
            r#"{{"order_id":"{}","customer_name":"Alice","status":"received","items":[{{"name":"Pen","quantity":2}}],"created_at":"1970-01-01T00:00:00.000Z","updated_at":"1970-01-01T00:00:00.000Z","version":42}}"#,
            order.id
        );
        assert_eq!(doc.body(), expected.as_bytes());
    }

    #[test]
    fn reads_the_version_back_from_rendered_bytes() {
        let doc = OrderDocument::render(&order());
        let again = OrderDocument::from_rendered(doc.id(), doc.body().clone()).unwrap();
        assert_eq!(again, doc);
        assert!(OrderDocument::from_rendered(doc.id(), Bytes::from_static(b"{}")).is_none());
        assert!(
            OrderDocument::from_rendered(doc.id(), Bytes::from_static(b"{\"version\":}")).is_none()
        );
    }

    #[test]
    fn list_is_the_json_of_its_parts() {
        let a = OrderDocument::render(&order());
        let b = OrderDocument::render(&order());
        let list = ListDocument::render(7, [&a.body()[..], &b.body()[..]], None);
        let value: serde_json::Value = serde_json::from_slice(list.whole().unwrap()).unwrap();
        assert_eq!(value["total_orders"], 7);
        assert_eq!(value["orders"].as_array().unwrap().len(), 2);
        assert!(value.get("next_cursor").is_none());

        let empty = ListDocument::render(0, std::iter::empty(), Some(None));
        assert_eq!(
            empty.whole().unwrap(),
            &b"{\"total_orders\":0,\"orders\":[],\"next_cursor\":null}"[..]
        );
        let cursor = Cursor::after(a.id());
        let paged = ListDocument::render(1, [&a.body()[..]], Some(Some(cursor)));
        let value: serde_json::Value = serde_json::from_slice(paged.whole().unwrap()).unwrap();
        assert_eq!(value["next_cursor"], cursor.encode());
    }

    #[test]
    fn fixed_parts_of_a_list_fit_its_reserved_slack() {
        let cursor = Cursor::after(OrderDocument::render(&order()).id());
        let widest = ListDocument::render(u64::MAX, std::iter::empty(), Some(Some(cursor)));
        assert!(widest.len() <= 128, "{}", widest.len());
    }

    #[test]
    fn digest_is_of_the_body_and_shared_by_clones() {
        let list = ListDocument::from_rendered(Bytes::from_static(b"{\"total_orders\":0}"));
        let copy = list.clone();
        assert_eq!(list.digest(), xxh3_64(list.whole().unwrap()));
        assert_eq!(copy.digest(), list.digest());
        let other = ListDocument::from_rendered(Bytes::from_static(b"{}"));
        assert_ne!(other.digest(), list.digest());
    }

    #[test]
    fn encoded_is_made_once_and_shared_by_clones() {
        let list = ListDocument::from_rendered(Bytes::from_static(b"{\"total_orders\":0}"));
        let copy = list.clone();
        let first = list
            .encoded(|body| Bytes::copy_from_slice(&body[..3]))
            .unwrap();
        assert_eq!(first, Bytes::from_static(b"{\"t"));
        let again = copy.encoded(|_| unreachable!("made once")).unwrap();
        assert_eq!(again, first);
    }
}
