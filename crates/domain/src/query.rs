use uuid::Uuid;

use crate::{OrderId, OrderStatus};

/// How many orders one page may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit(u16);

impl Limit {
    pub const MAX: u16 = 1000;
    /// Used when a client sends a `cursor` without a `limit`.
    pub const DEFAULT: Limit = Limit(100);

    /// 1 to 1000; `None` otherwise.
    pub fn new(limit: u64) -> Option<Self> {
        (1..=u64::from(Self::MAX))
            .contains(&limit)
            .then_some(Self(limit as u16))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

/// Where the next page starts: strictly older than the order it names.
/// Opaque to clients (32 hex digits), but it is only a position, so a
/// client cannot use one to reach anything it could not list anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor(OrderId);

impl Cursor {
    /// The length of [`Cursor::encode`]'s text: hex digits, any case.
    pub const ENCODED_LEN: usize = 32;

    pub fn after(last: OrderId) -> Self {
        Self(last)
    }

    pub fn last_seen(self) -> OrderId {
        self.0
    }

    pub fn encode(self) -> String {
        self.0.as_uuid().simple().to_string()
    }

    pub fn decode(raw: &str) -> Option<Self> {
        if raw.len() != Self::ENCODED_LEN {
            return None;
        }
        Uuid::try_parse(raw)
            .ok()
            .map(|uuid| Self(OrderId::from_uuid(uuid)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageRequest {
    pub limit: Limit,
    pub after: Option<Cursor>,
}

/// What `GET /orders` asks for. The default (no page, no filter) is the
/// original's full list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ListQuery {
    pub status: Option<OrderStatus>,
    pub page: Option<PageRequest>,
}

impl ListQuery {
    /// The original's list: every order, no page, no filter.
    pub fn is_full(&self) -> bool {
        self.status.is_none() && self.page.is_none()
    }

    /// The parameters in one canonical text (sorted names, canonical
    /// values), so that equal queries share one cache key whatever order or
    /// spelling the client used; `None` for the parameterless list.
    pub fn canonical(&self) -> Option<String> {
        let mut parts = Vec::with_capacity(3);
        if let Some(cursor) = self.page.and_then(|page| page.after) {
            parts.push(format!("cursor={}", cursor.encode()));
        }
        if let Some(page) = self.page {
            parts.push(format!("limit={}", page.limit.get()));
        }
        if let Some(status) = self.status {
            parts.push(format!("status={status}"));
        }
        (!parts.is_empty()).then(|| parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_bounds() {
        assert!(Limit::new(0).is_none());
        assert_eq!(Limit::new(1000).unwrap().get(), 1000);
        assert!(Limit::new(1001).is_none());
    }

    #[test]
    fn cursor_round_trips_and_rejects_other_forms() {
        let cursor = Cursor::after(OrderId::new());
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert!(Cursor::decode(&cursor.last_seen().to_text()).is_none());
        assert!(Cursor::decode("zz").is_none());
    }

    #[test]
    fn canonical_parameters() {
        assert_eq!(ListQuery::default().canonical(), None);
        let id = OrderId::new();
        let query = ListQuery {
            status: Some(OrderStatus::Shipped),
            page: Some(PageRequest {
                limit: Limit::new(20).unwrap(),
                after: Some(Cursor::after(id)),
            }),
        };
        assert_eq!(
            query.canonical().unwrap(),
            format!("cursor={}&limit=20&status=shipped", id.as_uuid().simple())
        );
    }
}
