use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};
use uuid::Uuid;

/// An order's identity: a UUIDv7, so that sorting ids sorts by creation time
/// and keyset pagination can use the primary key alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(Uuid);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a UUID: {0:?}")]
pub struct ParseOrderIdError(pub String);

impl OrderId {
    /// A fresh, time-ordered id. Monotonic within the process even for ids
    /// made in the same millisecond.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The canonical text form: lowercase, hyphenated (what the API and the
    /// database columns hold).
    pub fn to_text(&self) -> String {
        self.0.hyphenated().to_string()
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for OrderId {
    type Err = ParseOrderIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| ParseOrderIdError(s.to_owned()))
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl Serialize for OrderId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0.hyphenated())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_later_sort_later() {
        let ids: Vec<OrderId> = (0..1000).map(|_| OrderId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.windows(2).all(|w| w[0].to_text() < w[1].to_text()));
    }

    #[test]
    fn parses_its_own_text_and_rejects_junk() {
        let id = OrderId::new();
        assert_eq!(id.to_text().parse::<OrderId>().unwrap(), id);
        assert!("not-a-uuid".parse::<OrderId>().is_err());
    }
}
