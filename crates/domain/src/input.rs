//! Validated inputs. A value of these types that exists is valid: the only
//! way to get one is through `parse`, which enforces the rules of API.md.

use xxhash_rust::xxh3::Xxh3;

use crate::FieldPath;

pub const NAME_MAX_CHARS: usize = 80;
pub const ITEMS_MAX: usize = 100;
pub const QUANTITY_MAX: i64 = 1_000_000;
pub const IDEMPOTENCY_KEY_MAX: usize = 255;

/// Why an input was refused. The messages are shown to people as they are
/// (the original's web front end displays them), so they name the field and
/// the rule; the original's own wording is kept where it had one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("Request must include 'customer_name' and a non-empty list of 'items'.")]
    MissingOrderFields,
    #[error("'customer_name' must be a string of 1 to 80 characters.")]
    CustomerName,
    #[error("'items' must be a non-empty list of at most 100 items.")]
    ItemCount,
    #[error("Each item must be an object with 'name' and 'quantity'.")]
    ItemNotObject,
    #[error("Each item requires 'name' and 'quantity'.")]
    ItemFieldsMissing,
    #[error("Each item's 'name' must be a string of 1 to 80 characters.")]
    ItemName,
    #[error("Quantity must be an integer.")]
    QuantityNotInteger,
    #[error("Quantity must be greater than zero.")]
    QuantityNotPositive,
    #[error("Quantity must be at most 1000000.")]
    QuantityTooLarge,
    #[error("'Idempotency-Key' must be 1 to 255 characters.")]
    IdempotencyKey,
}

/// A rule broken by the value at `field`: what a 400 tells its client.
/// The message is the rule's alone, so that it stays the original's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule}")]
pub struct InvalidInput {
    pub field: FieldPath,
    pub rule: ValidationError,
}

impl ValidationError {
    /// This rule, broken by the value at `field`.
    pub fn at(self, field: FieldPath) -> InvalidInput {
        InvalidInput { field, rule: self }
    }

    /// A stable snake_case identifier for clients that branch on errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingOrderFields => "missing_fields",
            Self::CustomerName => "invalid_customer_name",
            Self::ItemCount => "invalid_items",
            Self::ItemNotObject | Self::ItemFieldsMissing => "invalid_item",
            Self::ItemName => "invalid_item_name",
            Self::QuantityNotInteger | Self::QuantityNotPositive | Self::QuantityTooLarge => {
                "invalid_quantity"
            }
            Self::IdempotencyKey => "invalid_idempotency_key",
        }
    }
}

fn bounded_name(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    (1..=NAME_MAX_CHARS)
        .contains(&chars)
        .then(|| trimmed.to_owned())
}

/// 1 to 80 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerName(String);

impl CustomerName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        bounded_name(raw)
            .map(Self)
            .ok_or(ValidationError::CustomerName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 1 to 80 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemName(String);

impl ItemName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        bounded_name(raw).map(Self).ok_or(ValidationError::ItemName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 1 to 1,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(u32);

impl Quantity {
    pub fn parse(raw: i64) -> Result<Self, ValidationError> {
        match raw {
            ..=0 => Err(ValidationError::QuantityNotPositive),
            1..=QUANTITY_MAX => Ok(Self(raw as u32)),
            _ => Err(ValidationError::QuantityTooLarge),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    pub name: ItemName,
    pub quantity: Quantity,
}

/// A request to create an order that has passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    customer_name: CustomerName,
    items: Vec<NewItem>,
}

impl NewOrder {
    pub fn new(customer_name: CustomerName, items: Vec<NewItem>) -> Result<Self, ValidationError> {
        if items.is_empty() || items.len() > ITEMS_MAX {
            return Err(ValidationError::ItemCount);
        }
        Ok(Self {
            customer_name,
            items,
        })
    }

    pub fn customer_name(&self) -> &CustomerName {
        &self.customer_name
    }

    pub fn items(&self) -> &[NewItem] {
        &self.items
    }

    /// A digest of the request's meaning, so that an idempotent retry can be
    /// told apart from a different request reusing the same key.
    pub fn fingerprint(&self) -> u64 {
        let mut hasher = Xxh3::new();
        let mut field = |bytes: &[u8]| {
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        field(self.customer_name.as_str().as_bytes());
        for item in &self.items {
            field(item.name.as_str().as_bytes());
            field(&item.quantity.get().to_le_bytes());
        }
        hasher.digest()
    }
}

/// A client's `Idempotency-Key` with the fingerprint of the request it came
/// with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    key: String,
    fingerprint: u64,
}

impl IdempotencyKey {
    pub fn parse(raw: &str, order: &NewOrder) -> Result<Self, ValidationError> {
        if raw.is_empty() || raw.len() > IDEMPOTENCY_KEY_MAX {
            return Err(ValidationError::IdempotencyKey);
        }
        Ok(Self {
            key: raw.to_owned(),
            fingerprint: order.fingerprint(),
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, quantity: i64) -> NewItem {
        NewItem {
            name: ItemName::parse(name).unwrap(),
            quantity: Quantity::parse(quantity).unwrap(),
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(CustomerName::parse("  Alice ").unwrap().as_str(), "Alice");
        assert!(CustomerName::parse("   ").is_err());
        assert!(CustomerName::parse(&"é".repeat(80)).is_ok());
        assert!(CustomerName::parse(&"a".repeat(81)).is_err());
        assert_eq!(ItemName::parse(""), Err(ValidationError::ItemName));
    }

    #[test]
    fn quantities_are_bounded() {
        assert_eq!(
            Quantity::parse(0),
            Err(ValidationError::QuantityNotPositive)
        );
        assert_eq!(
            Quantity::parse(-3),
            Err(ValidationError::QuantityNotPositive)
        );
        assert_eq!(Quantity::parse(1_000_000).unwrap().get(), 1_000_000);
        assert_eq!(
            Quantity::parse(1_000_001),
            Err(ValidationError::QuantityTooLarge)
        );
    }

    #[test]
    fn item_count_is_bounded() {
        let name = CustomerName::parse("Alice").unwrap();
        assert_eq!(
            NewOrder::new(name.clone(), vec![]),
            Err(ValidationError::ItemCount)
        );
        assert!(NewOrder::new(name.clone(), vec![item("Pen", 1); 100]).is_ok());
        assert!(NewOrder::new(name, vec![item("Pen", 1); 101]).is_err());
    }

    #[test]
    fn fingerprint_tells_requests_apart() {
        let name = CustomerName::parse("Alice").unwrap();
        let a = NewOrder::new(name.clone(), vec![item("Pen", 2)]).unwrap();
        let b = NewOrder::new(name.clone(), vec![item("Pen", 3)]).unwrap();
        let c = NewOrder::new(name, vec![item("Pen", 2)]).unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn idempotency_keys_are_bounded() {
        let order = NewOrder::new(CustomerName::parse("A").unwrap(), vec![item("Pen", 1)]).unwrap();
        assert!(IdempotencyKey::parse("", &order).is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256), &order).is_err());
        let key = IdempotencyKey::parse("abc", &order).unwrap();
        assert_eq!(key.fingerprint(), order.fingerprint());
    }
}
