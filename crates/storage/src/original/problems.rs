//! What the original's rows may hold that the contract cannot, the user's
//! decision for each kind, and the conversion of one row under those
//! decisions. Pure: the backends read and write, this decides.

use std::collections::BTreeMap;
use std::fmt;

use domain::{OrderId, OrderStatus};

/// The contract's bounds (API.md), the same ones `domain::input` enforces.
const NAME_MAX_CHARS: usize = 80;
const QUANTITY_MIN: i64 = 1;
const QUANTITY_MAX: i64 = 1_000_000;

/// A kind of row the contract cannot hold as it is. Each needs its own
/// decision before anything is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Problem {
    /// A UUID written another way (upper case, braces, no hyphens): the API
    /// looks orders up by the lower-case hyphenated form.
    IdNotCanonical,
    IdNotUuid,
    CustomerNameBlank,
    CustomerNameTooLong,
    /// Leading or trailing whitespace, which the API trims on input.
    CustomerNamePadded,
    /// A known status in another case or with spaces (`"SHIPPED"`, `"shipped "`).
    StatusVariant,
    StatusUnknown,
    OrderWithoutItems,
    ItemNameBlank,
    ItemNameTooLong,
    ItemNamePadded,
    QuantityOutOfRange,
    /// An item whose order does not exist.
    OrphanItem,
}

impl Problem {
    pub const ALL: [Problem; 13] = [
        Self::IdNotCanonical,
        Self::IdNotUuid,
        Self::CustomerNameBlank,
        Self::CustomerNameTooLong,
        Self::CustomerNamePadded,
        Self::StatusVariant,
        Self::StatusUnknown,
        Self::OrderWithoutItems,
        Self::ItemNameBlank,
        Self::ItemNameTooLong,
        Self::ItemNamePadded,
        Self::QuantityOutOfRange,
        Self::OrphanItem,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Self::IdNotCanonical => "order id: a UUID not in lower-case hyphenated form",
            Self::IdNotUuid => "order id: not a UUID",
            Self::CustomerNameBlank => "customer name: empty or only spaces",
            Self::CustomerNameTooLong => "customer name: over 80 characters",
            Self::CustomerNamePadded => "customer name: leading or trailing spaces",
            Self::StatusVariant => "status: a known status in another case or spacing",
            Self::StatusUnknown => "status: not one of the contract's statuses",
            Self::OrderWithoutItems => "order without items",
            Self::ItemNameBlank => "item name: empty or only spaces",
            Self::ItemNameTooLong => "item name: over 80 characters",
            Self::ItemNamePadded => "item name: leading or trailing spaces",
            Self::QuantityOutOfRange => "quantity: below 1 or above 1,000,000",
            Self::OrphanItem => "item whose order does not exist",
        }
    }

    /// The flags that decide this kind (any one of them), as the user types them.
    pub fn flags(self) -> &'static str {
        match self {
            Self::IdNotCanonical => "--normalize-ids",
            Self::IdNotUuid => "--bad-ids=reassign | --bad-ids=drop",
            Self::CustomerNameBlank | Self::ItemNameBlank => "--fill-blank-names=TEXT",
            Self::CustomerNameTooLong | Self::ItemNameTooLong => "--truncate-long-names",
            Self::CustomerNamePadded | Self::ItemNamePadded => "--trim-names",
            Self::StatusVariant => "--map-status-variants | --map-status=RAW=STATUS",
            Self::StatusUnknown => "--map-status=RAW=STATUS | --unknown-status=STATUS",
            Self::OrderWithoutItems => "--empty-orders=keep | --empty-orders=drop",
            Self::QuantityOutOfRange => "--clamp-quantities",
            Self::OrphanItem => "--drop-orphan-items",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadIds {
    /// A fresh UUIDv7; the old id stays in the backup table.
    Reassign,
    /// The order and its items are left out (they stay in the backup).
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyOrders {
    Keep,
    Drop,
}

/// The user's explicit decisions. Nothing is changed without one: the
/// default decides nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    pub normalize_ids: bool,
    pub bad_ids: Option<BadIds>,
    pub trim_names: bool,
    pub truncate_long_names: bool,
    /// Replaces empty names; itself a valid name (checked when parsed).
    pub fill_blank_names: Option<String>,
    pub map_status_variants: bool,
    /// Exact stored value to status; wins over the other status decisions.
    pub map_status: BTreeMap<String, OrderStatus>,
    pub unknown_status: Option<OrderStatus>,
    pub empty_orders: Option<EmptyOrders>,
    pub clamp_quantities: bool,
    pub drop_orphan_items: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    #[error(
        "--fill-blank-names: the replacement must be 1 to 80 characters without surrounding spaces"
    )]
    FillName,
    #[error(
        "--map-status: expected RAW=STATUS with STATUS one of {}",
        OrderStatus::allowed_list()
    )]
    MapStatus,
}

impl Decisions {
    pub fn with_fill_blank_names(mut self, text: &str) -> Result<Self, DecisionError> {
        let chars = text.chars().count();
        if text.trim() != text || !(1..=NAME_MAX_CHARS).contains(&chars) {
            return Err(DecisionError::FillName);
        }
        self.fill_blank_names = Some(text.to_owned());
        Ok(self)
    }

    /// Parses one `RAW=STATUS`; the raw side is taken exactly, spaces included.
    pub fn parse_status_mapping(raw: &str) -> Result<(String, OrderStatus), DecisionError> {
        let (from, to) = raw.rsplit_once('=').ok_or(DecisionError::MapStatus)?;
        let to = to.trim().parse().map_err(|_| DecisionError::MapStatus)?;
        Ok((from.to_owned(), to))
    }

    /// The flags as they would be typed, for the migration's record.
    pub fn to_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        let mut flag = |on: bool, text: &str| {
            if on {
                flags.push(text.to_owned());
            }
        };
        flag(self.normalize_ids, "--normalize-ids");
        flag(self.bad_ids == Some(BadIds::Reassign), "--bad-ids=reassign");
        flag(self.bad_ids == Some(BadIds::Drop), "--bad-ids=drop");
        flag(self.trim_names, "--trim-names");
        flag(self.truncate_long_names, "--truncate-long-names");
        flag(self.map_status_variants, "--map-status-variants");
        flag(
            self.empty_orders == Some(EmptyOrders::Keep),
            "--empty-orders=keep",
        );
        flag(
            self.empty_orders == Some(EmptyOrders::Drop),
            "--empty-orders=drop",
        );
        flag(self.clamp_quantities, "--clamp-quantities");
        flag(self.drop_orphan_items, "--drop-orphan-items");
        if let Some(text) = &self.fill_blank_names {
            flags.push(format!("--fill-blank-names={text:?}"));
        }
        for (from, to) in &self.map_status {
            flags.push(format!("--map-status={:?}", format!("{from}={to}")));
        }
        if let Some(status) = self.unknown_status {
            flags.push(format!("--unknown-status={status}"));
        }
        flags
    }
}

/// What happens to one value: kept as it is, changed by a decision, or
/// blocked by a problem nobody decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Keep(T),
    Changed { problem: Problem, to: T },
    Dropped { problem: Problem },
    Undecided { problem: Problem },
}

impl<T> Outcome<T> {
    pub fn problem(&self) -> Option<Problem> {
        match self {
            Self::Keep(_) => None,
            Self::Changed { problem, .. }
            | Self::Dropped { problem }
            | Self::Undecided { problem } => Some(*problem),
        }
    }

    pub fn value(self) -> Option<T> {
        match self {
            Self::Keep(value) | Self::Changed { to: value, .. } => Some(value),
            Self::Dropped { .. } | Self::Undecided { .. } => None,
        }
    }
}

pub fn order_id(raw: &str, decisions: &Decisions) -> Outcome<String> {
    match raw.parse::<OrderId>() {
        Ok(id) if id.to_text() == raw => Outcome::Keep(raw.to_owned()),
        Ok(id) if decisions.normalize_ids => Outcome::Changed {
            problem: Problem::IdNotCanonical,
            to: id.to_text(),
        },
        Ok(_) => Outcome::Undecided {
            problem: Problem::IdNotCanonical,
        },
        Err(_) => match decisions.bad_ids {
            Some(BadIds::Reassign) => Outcome::Changed {
                problem: Problem::IdNotUuid,
                to: OrderId::new().to_text(),
            },
            Some(BadIds::Drop) => Outcome::Dropped {
                problem: Problem::IdNotUuid,
            },
            None => Outcome::Undecided {
                problem: Problem::IdNotUuid,
            },
        },
    }
}

#[derive(Debug, Clone, Copy)]
pub enum NameOf {
    Customer,
    Item,
}

pub fn name(raw: &str, of: NameOf, decisions: &Decisions) -> Outcome<String> {
    let (blank, too_long, padded) = match of {
        NameOf::Customer => (
            Problem::CustomerNameBlank,
            Problem::CustomerNameTooLong,
            Problem::CustomerNamePadded,
        ),
        NameOf::Item => (
            Problem::ItemNameBlank,
            Problem::ItemNameTooLong,
            Problem::ItemNamePadded,
        ),
    };
    let trimmed = raw.trim();
    let decided = |problem: Problem, to: String| {
        let decided = match problem {
            Problem::CustomerNameBlank | Problem::ItemNameBlank => {
                decisions.fill_blank_names.is_some()
            }
            Problem::CustomerNameTooLong | Problem::ItemNameTooLong => {
                decisions.truncate_long_names
            }
            _ => decisions.trim_names,
        };
        if decided {
            Outcome::Changed { problem, to }
        } else {
            Outcome::Undecided { problem }
        }
    };
    if trimmed.is_empty() {
        let fill = decisions.fill_blank_names.clone().unwrap_or_default();
        return decided(blank, fill);
    }
    if trimmed.chars().count() > NAME_MAX_CHARS {
        let cut: String = trimmed.chars().take(NAME_MAX_CHARS).collect();
        return decided(too_long, cut.trim_end().to_owned());
    }
    if trimmed != raw {
        return decided(padded, trimmed.to_owned());
    }
    Outcome::Keep(raw.to_owned())
}

pub fn status(raw: &str, decisions: &Decisions) -> Outcome<OrderStatus> {
    let variant = raw.trim().to_lowercase().parse::<OrderStatus>().ok();
    let problem = match (raw.parse::<OrderStatus>(), variant) {
        (Ok(status), _) => return Outcome::Keep(status),
        (Err(_), Some(_)) => Problem::StatusVariant,
        (Err(_), None) => Problem::StatusUnknown,
    };
    let to = decisions.map_status.get(raw).copied().or(match problem {
        Problem::StatusVariant if decisions.map_status_variants => variant,
        Problem::StatusUnknown => decisions.unknown_status,
        _ => None,
    });
    match to {
        Some(to) => Outcome::Changed { problem, to },
        None => Outcome::Undecided { problem },
    }
}

pub fn quantity(raw: i64, decisions: &Decisions) -> Outcome<i32> {
    if (QUANTITY_MIN..=QUANTITY_MAX).contains(&raw) {
        // In range, so it fits.
        return Outcome::Keep(raw as i32);
    }
    let problem = Problem::QuantityOutOfRange;
    if decisions.clamp_quantities {
        Outcome::Changed {
            problem,
            to: raw.clamp(QUANTITY_MIN, QUANTITY_MAX) as i32,
        }
    } else {
        Outcome::Undecided { problem }
    }
}

pub fn orphan_item(decisions: &Decisions) -> Outcome<()> {
    let problem = Problem::OrphanItem;
    if decisions.drop_orphan_items {
        Outcome::Dropped { problem }
    } else {
        Outcome::Undecided { problem }
    }
}

pub fn empty_order(decisions: &Decisions) -> Outcome<()> {
    let problem = Problem::OrderWithoutItems;
    match decisions.empty_orders {
        Some(EmptyOrders::Keep) => Outcome::Changed { problem, to: () },
        Some(EmptyOrders::Drop) => Outcome::Dropped { problem },
        None => Outcome::Undecided { problem },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Decisions {
        Decisions {
            normalize_ids: true,
            bad_ids: Some(BadIds::Reassign),
            trim_names: true,
            truncate_long_names: true,
            map_status_variants: true,
            unknown_status: Some(OrderStatus::Received),
            empty_orders: Some(EmptyOrders::Keep),
            clamp_quantities: true,
            drop_orphan_items: true,
            ..Decisions::default()
        }
        .with_fill_blank_names("(no name)")
        .unwrap()
    }

    #[test]
    fn good_values_are_kept_without_any_decision() {
        let none = Decisions::default();
        let id = "0b7c7a0e-3c7b-4f7e-9a39-2f1d6d1f8e11";
        assert_eq!(order_id(id, &none), Outcome::Keep(id.to_owned()));
        assert_eq!(
            name("Zoë 🍕", NameOf::Customer, &none),
            Outcome::Keep("Zoë 🍕".to_owned())
        );
        let eighty = "é".repeat(80);
        assert_eq!(name(&eighty, NameOf::Item, &none), Outcome::Keep(eighty));
        assert_eq!(
            status("shipped", &none),
            Outcome::Keep(OrderStatus::Shipped)
        );
        assert_eq!(quantity(1_000_000, &none), Outcome::Keep(1_000_000));
        assert_eq!(quantity(1, &none), Outcome::Keep(1));
    }

    #[test]
    fn every_quirk_needs_a_decision() {
        let none = Decisions::default();
        let undecided = |outcome: Option<Problem>, expected| assert_eq!(outcome, Some(expected));
        undecided(
            order_id("0B7C7A0E-3C7B-4F7E-9A39-2F1D6D1F8E11", &none).problem(),
            Problem::IdNotCanonical,
        );
        undecided(order_id("order-17", &none).problem(), Problem::IdNotUuid);
        undecided(
            name("   ", NameOf::Customer, &none).problem(),
            Problem::CustomerNameBlank,
        );
        undecided(
            name(&"a".repeat(81), NameOf::Customer, &none).problem(),
            Problem::CustomerNameTooLong,
        );
        undecided(
            name(" Bob", NameOf::Customer, &none).problem(),
            Problem::CustomerNamePadded,
        );
        undecided(
            name("  ", NameOf::Item, &none).problem(),
            Problem::ItemNameBlank,
        );
        undecided(status("SHIPPED", &none).problem(), Problem::StatusVariant);
        undecided(status("shipped ", &none).problem(), Problem::StatusVariant);
        undecided(status("  ", &none).problem(), Problem::StatusUnknown);
        undecided(
            status("on the truck, finally!!", &none).problem(),
            Problem::StatusUnknown,
        );
        undecided(quantity(0, &none).problem(), Problem::QuantityOutOfRange);
        undecided(
            quantity(1_000_000_000_000, &none).problem(),
            Problem::QuantityOutOfRange,
        );
        undecided(orphan_item(&none).problem(), Problem::OrphanItem);
        undecided(empty_order(&none).problem(), Problem::OrderWithoutItems);
        for outcome in [order_id("x", &none), name("", NameOf::Item, &none)] {
            assert!(matches!(outcome, Outcome::Undecided { .. }), "{outcome:?}");
        }
    }

    #[test]
    fn decisions_say_what_each_value_becomes() {
        let all = all();
        assert_eq!(
            order_id("{0B7C7A0E-3C7B-4F7E-9A39-2F1D6D1F8E11}", &all).value(),
            Some("0b7c7a0e-3c7b-4f7e-9a39-2f1d6d1f8e11".to_owned())
        );
        let reassigned = order_id("order-17", &all).value().unwrap();
        assert!(reassigned.parse::<OrderId>().is_ok());
        assert_eq!(
            name("   ", NameOf::Customer, &all).value().as_deref(),
            Some("(no name)")
        );
        let long = format!("  {}   tail", "b".repeat(79));
        assert_eq!(
            name(&long, NameOf::Item, &all).value(),
            Some("b".repeat(79))
        );
        assert_eq!(
            name(" Bob ", NameOf::Customer, &all).value().as_deref(),
            Some("Bob")
        );
        assert_eq!(status("SHIPPED", &all).value(), Some(OrderStatus::Shipped));
        assert_eq!(status("lost", &all).value(), Some(OrderStatus::Received));
        assert_eq!(quantity(-3, &all).value(), Some(1));
        assert_eq!(quantity(1_000_000_000_000, &all).value(), Some(1_000_000));
        assert!(matches!(orphan_item(&all), Outcome::Dropped { .. }));
        let drop = Decisions {
            bad_ids: Some(BadIds::Drop),
            ..Decisions::default()
        };
        assert!(matches!(order_id("x", &drop), Outcome::Dropped { .. }));
    }

    #[test]
    fn an_explicit_status_mapping_wins() {
        let (from, to) =
            Decisions::parse_status_mapping("on the truck, finally!!=shipped").unwrap();
        let mut decisions = Decisions {
            map_status_variants: true,
            unknown_status: Some(OrderStatus::Cancelled),
            ..Decisions::default()
        };
        decisions.map_status.insert(from, to);
        decisions
            .map_status
            .insert("SHIPPED".to_owned(), OrderStatus::Delivered);
        assert_eq!(
            status("on the truck, finally!!", &decisions).value(),
            Some(OrderStatus::Shipped)
        );
        assert_eq!(
            status("SHIPPED", &decisions).value(),
            Some(OrderStatus::Delivered)
        );
        assert_eq!(
            status("Ready ", &decisions).value(),
            Some(OrderStatus::Ready)
        );
        assert_eq!(
            status("??", &decisions).value(),
            Some(OrderStatus::Cancelled)
        );
        // A mapping for one value decides nothing for another.
        let only_one = Decisions {
            map_status: [("lost".to_owned(), OrderStatus::Cancelled)].into(),
            ..Decisions::default()
        };
        assert!(matches!(
            status("gone", &only_one),
            Outcome::Undecided { .. }
        ));
        assert!(Decisions::parse_status_mapping("x=nope").is_err());
        assert!(Decisions::parse_status_mapping("no equals").is_err());
    }

    #[test]
    fn a_fill_name_must_itself_be_valid() {
        assert!(Decisions::default().with_fill_blank_names("").is_err());
        assert!(Decisions::default().with_fill_blank_names(" x").is_err());
        assert!(
            Decisions::default()
                .with_fill_blank_names(&"x".repeat(81))
                .is_err()
        );
    }
}
