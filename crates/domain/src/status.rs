use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Where an order is in its life. The union of what the original's seeder,
/// its web front end and its load scenario send; nothing else is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrderStatus {
    Received,
    Processing,
    Preparing,
    Ready,
    Shipped,
    Delivered,
    Completed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'status' must be one of: {}.", OrderStatus::allowed_list())]
pub struct ParseStatusError;

impl OrderStatus {
    pub const ALL: [OrderStatus; 8] = [
        Self::Received,
        Self::Processing,
        Self::Preparing,
        Self::Ready,
        Self::Shipped,
        Self::Delivered,
        Self::Completed,
        Self::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Processing => "processing",
            Self::Preparing => "preparing",
            Self::Ready => "ready",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    /// "received, processing, ..." for error messages.
    pub fn allowed_list() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl FromStr for OrderStatus {
    type Err = ParseStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(ParseStatusError)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for OrderStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips() {
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>(), Ok(status));
        }
    }

    #[test]
    fn rejects_unknown_and_differently_cased() {
        assert!("lost".parse::<OrderStatus>().is_err());
        assert!("Shipped".parse::<OrderStatus>().is_err());
        let message = ParseStatusError.to_string();
        assert!(message.contains("received") && message.contains("cancelled"));
    }
}
