//! The orders domain: what an order is, what a valid request to make one is,
//! and what a repository of orders must do. No I/O lives here; storage and
//! cache implement [`OrderRepository`], http parses requests into these types.

pub mod api_key;
mod document;
pub mod fake;
mod field;
mod id;
mod input;
mod order;
pub mod parts;
mod query;
mod repository;
mod status;

pub use api_key::{
    ActiveKey, ApiKey, ApiKeyError, ApiKeyStore, KeyHash, KeyName, KeyPrefix, KeySet, NewApiKey,
    PresentedKey, Revocation, Scope, Scopes,
};
pub use document::{ListBody, ListDocument, OrderDocument};
pub use field::FieldPath;
pub use id::{OrderId, ParseOrderIdError};
pub use input::{
    CustomerName, IDEMPOTENCY_KEY_MAX, ITEMS_MAX, IdempotencyKey, InvalidInput, ItemName,
    NAME_MAX_CHARS, NewItem, NewOrder, QUANTITY_MAX, Quantity, ValidationError,
};
pub use order::{Item, Order, Timestamp, Version};
pub use query::{Cursor, Limit, ListQuery, PageRequest};
pub use repository::{
    CacheState, CacheStats, Created, Health, KeySpaceStats, OrderRepository, PoolStats, RepoError,
    RepoStats, ResetOutcome, StatusUpdate,
};
pub use status::{OrderStatus, ParseStatusError};
