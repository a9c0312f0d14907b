//! What a scan of the original's tables found: counts, every kind of
//! problem with its rows (the first few of each, or all), and whether each
//! kind has a decision. Its `Display` is the dry run's table.

use std::collections::BTreeMap;
use std::fmt;

use domain::OrderStatus;

use super::problems::{Outcome, Problem};

/// One row behind a problem, as the dry run lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub order_id: String,
    pub item_id: Option<i64>,
    /// The stored value, quoted.
    pub value: String,
    /// What happens to it: "kept", "-> ...", "dropped", "needs ...".
    pub outcome: String,
}

#[derive(Debug, Clone, Default)]
struct Kind {
    rows: u64,
    undecided: u64,
    examples: Vec<Example>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub orders_read: u64,
    pub items_read: u64,
    pub orders_written: u64,
    pub items_written: u64,
    pub orders_dropped: u64,
    pub items_dropped: u64,
    /// Orders written per status: the counters to build.
    pub per_status: BTreeMap<OrderStatus, i64>,
    kinds: BTreeMap<Problem, Kind>,
    examples_per_kind: usize,
}

impl Report {
    /// Keeps at most `examples_per_kind` rows of each kind (`usize::MAX`: all).
    pub fn new(examples_per_kind: usize) -> Self {
        Self {
            orders_read: 0,
            items_read: 0,
            orders_written: 0,
            items_written: 0,
            orders_dropped: 0,
            items_dropped: 0,
            per_status: BTreeMap::new(),
            kinds: BTreeMap::new(),
            examples_per_kind,
        }
    }

    pub(crate) fn record<T: Shown>(
        &mut self,
        order_id: &str,
        item_id: Option<i64>,
        value: &str,
        outcome: &Outcome<T>,
    ) {
        let Some(problem) = outcome.problem() else {
            return;
        };
        let kind = self.kinds.entry(problem).or_default();
        kind.rows += 1;
        let described = match outcome {
            Outcome::Keep(_) => "kept".to_owned(),
            Outcome::Changed { to, .. } => format!("-> {}", to.shown()),
            Outcome::Dropped { .. } => "dropped (kept in the backup)".to_owned(),
            Outcome::Undecided { .. } => {
                kind.undecided += 1;
                format!("needs {}", problem.flags())
            }
        };
        if kind.examples.len() < self.examples_per_kind {
            kind.examples.push(Example {
                order_id: order_id.to_owned(),
                item_id,
                value: value.to_owned(),
                outcome: described,
            });
        }
    }

    pub fn count(&self, problem: Problem) -> u64 {
        self.kinds.get(&problem).map_or(0, |kind| kind.rows)
    }

    pub fn undecided(&self, problem: Problem) -> u64 {
        self.kinds.get(&problem).map_or(0, |kind| kind.undecided)
    }

    pub fn undecided_total(&self) -> u64 {
        self.kinds.values().map(|kind| kind.undecided).sum()
    }

    pub fn examples(&self, problem: Problem) -> &[Example] {
        self.kinds
            .get(&problem)
            .map_or(&[], |kind| kind.examples.as_slice())
    }

    /// The kinds still without a decision, with the flags that decide them.
    pub fn needed_flags(&self) -> Vec<(Problem, &'static str)> {
        self.kinds
            .iter()
            .filter(|(_, kind)| kind.undecided > 0)
            .map(|(problem, _)| (*problem, problem.flags()))
            .collect()
    }
}

/// A value as the report shows what it becomes.
pub(crate) trait Shown {
    fn shown(&self) -> String;
}

impl Shown for String {
    fn shown(&self) -> String {
        format!("{self:?}")
    }
}

impl Shown for i32 {
    fn shown(&self) -> String {
        self.to_string()
    }
}

impl Shown for OrderStatus {
    fn shown(&self) -> String {
        format!("{:?}", self.as_str())
    }
}

/// A kept empty order.
impl Shown for () {
    fn shown(&self) -> String {
        "kept, with no items".to_owned()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} orders and {} items in the original's tables.",
            self.orders_read, self.items_read
        )?;
        if self.kinds.is_empty() {
            writeln!(f, "Every row fits the new service's contract as it is.")?;
        } else {
            writeln!(f)?;
            writeln!(f, "{:<54} {:>9}  decision", "problem", "rows")?;
            writeln!(f, "{:-<54} {:->9}  {:-<40}", "", "", "")?;
            for (problem, kind) in &self.kinds {
                let decision = if kind.undecided > 0 {
                    format!("NEEDED: {}", problem.flags())
                } else {
                    "decided".to_owned()
                };
                writeln!(f, "{:<54} {:>9}  {decision}", problem.describe(), kind.rows)?;
            }
            for (problem, kind) in &self.kinds {
                writeln!(f)?;
                writeln!(f, "{} ({}):", problem.describe(), rows(kind.rows))?;
                writeln!(
                    f,
                    "  {:<38} {:>8}  {:<30} what happens",
                    "order", "item", "stored"
                )?;
                for example in &kind.examples {
                    let item = example.item_id.map(|id| id.to_string()).unwrap_or_default();
                    writeln!(
                        f,
                        "  {:<38} {:>8}  {:<30} {}",
                        truncate(&format!("{:?}", example.order_id), 38),
                        item,
                        truncate(&example.value, 30),
                        example.outcome
                    )?;
                }
                let hidden = kind.rows - kind.examples.len() as u64;
                if hidden > 0 {
                    writeln!(f, "  ... and {hidden} more (--list-all lists every row)")?;
                }
            }
        }
        writeln!(f)?;
        let undecided = self.undecided_total();
        if undecided > 0 {
            return writeln!(
                f,
                "{undecided} values need a decision before anything can be migrated."
            );
        }
        writeln!(
            f,
            "Under these decisions: {} orders and {} items migrated, {} orders and {} items left out \
             (they stay in the backup tables).",
            self.orders_written, self.items_written, self.orders_dropped, self.items_dropped
        )
    }
}

fn rows(n: u64) -> String {
    match n {
        1 => "1 row".to_owned(),
        n => format!("{n} rows"),
    }
}

fn truncate(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(chars - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_kinds_rows_and_what_is_needed() {
        let mut report = Report::new(1);
        let undecided: Outcome<String> = Outcome::Undecided {
            problem: Problem::StatusVariant,
        };
        report.record("a", None, "\"SHIPPED\"", &undecided);
        report.record("b", None, "\"Shipped\"", &undecided);
        let mapped = Outcome::Changed {
            problem: Problem::StatusUnknown,
            to: OrderStatus::Cancelled,
        };
        report.record("c", None, "\"lost\"", &mapped);
        let text = report.to_string();
        assert!(text.contains("NEEDED: --map-status-variants"), "{text}");
        assert!(text.contains("-> \"cancelled\""), "{text}");
        assert!(text.contains("... and 1 more"), "{text}");
        assert_eq!(report.undecided_total(), 2);
        assert_eq!(
            report.needed_flags(),
            vec![(Problem::StatusVariant, Problem::StatusVariant.flags())]
        );
    }
}
