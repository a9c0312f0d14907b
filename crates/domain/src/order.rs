use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

use crate::{NewOrder, OrderId, OrderStatus};

/// A point in time with millisecond precision, the precision both database
/// backends store exactly (as epoch milliseconds), so what is written is
/// what is read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self(since_epoch.as_millis() as i64)
    }

    pub fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    fn to_system_time(self) -> SystemTime {
        if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_millis(self.0 as u64)
        } else {
            UNIX_EPOCH - Duration::from_millis(self.0.unsigned_abs())
        }
    }
}

impl std::fmt::Display for Timestamp {
    /// As serialised: RFC 3339 in UTC with milliseconds.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}",
            humantime::format_rfc3339_millis(self.to_system_time())
        )
    }
}

impl Serialize for Timestamp {
    /// RFC 3339 in UTC with milliseconds: `2026-11-25T10:00:00.123Z`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_millis(self.to_system_time()))
    }
}

/// Starts at 1 and grows by one on every change of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Version(u64);

impl Version {
    pub const FIRST: Version = Version(1);

    pub const fn new(version: u64) -> Self {
        Self(version)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub name: String,
    pub quantity: u32,
}

/// An order as stored. Field order is the wire order of API.md, and
/// `version` must stay last: [`crate::OrderDocument`] reads it back from the
/// end of a cached body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    #[serde(rename = "order_id")]
    pub id: OrderId,
    pub customer_name: String,
    pub status: OrderStatus,
    pub items: Vec<Item>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: Version,
}

impl Order {
    /// The order a valid request creates: a fresh id, status `received`,
    /// version 1.
    pub fn create(new: &NewOrder, now: Timestamp) -> Self {
        Self {
            id: OrderId::new(),
            customer_name: new.customer_name().as_str().to_owned(),
            status: OrderStatus::Received,
            items: new
                .items()
                .iter()
                .map(|item| Item {
                    name: item.name.as_str().to_owned(),
                    quantity: item.quantity.get(),
                })
                .collect(),
            created_at: now,
            updated_at: now,
            version: Version::FIRST,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_rfc3339_millis_utc() {
        let ts = Timestamp::from_millis(1_795_600_800_123);
        assert_eq!(
            serde_json::to_string(&ts).unwrap(),
            "\"2026-11-25T10:00:00.123Z\""
        );
    }
}
