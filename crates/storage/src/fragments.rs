//! Rendered orders kept in memory, keyed by (id, version). Every change of
//! an order bumps its version, so an entry can never be stale: a list
//! rebuild reads only ids and versions, takes the bodies it has from here,
//! and loads and renders only the rest.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use domain::{OrderDocument, OrderId, Version};

/// Enough for the full list of about 18,000 orders (a rendered order is
/// about 230 bytes, plus its entry). Not more: walking the pages of a
/// 1M-order table fills it with orders that are seldom asked for again,
/// and the server's memory goal is 64 MiB in all.
pub(crate) const DEFAULT_BUDGET_BYTES: usize = 6 * 1024 * 1024;

/// What an entry costs beside its body: the map's and the queue's copies
/// of the key, the `Bytes` handle, and the allocator's rounding of the
/// body. Counted so that the budget is memory, not just body bytes.
const ENTRY_OVERHEAD: usize = 96;

type Key = (OrderId, Version);

pub(crate) struct Fragments {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    bodies: HashMap<Key, Bytes>,
    /// Insertion order, oldest first: what gets evicted.
    order: VecDeque<Key>,
    bytes: usize,
}

impl Fragments {
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map stays consistent even if a holder panicked: every
        // mutation below completes before it can panic.
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The cached body of each key, in the order asked, under one lock.
    pub(crate) fn lookup(&self, keys: &[Key]) -> Vec<Option<Bytes>> {
        let inner = self.lock();
        keys.iter()
            .map(|key| inner.bodies.get(key).cloned())
            .collect()
    }

    pub(crate) fn insert(&self, document: &OrderDocument) {
        self.insert_many(std::iter::once(document));
    }

    pub(crate) fn insert_many<'a>(&self, documents: impl IntoIterator<Item = &'a OrderDocument>) {
        let mut inner = self.lock();
        for document in documents {
            let size = document.body().len() + ENTRY_OVERHEAD;
            if size > self.budget {
                continue;
            }
            let key = (document.id(), document.version());
            if inner.bodies.contains_key(&key) {
                continue;
            }
            while inner.bytes + size > self.budget {
                let Some(oldest) = inner.order.pop_front() else {
                    break;
                };
                if let Some(evicted) = inner.bodies.remove(&oldest) {
                    inner.bytes -= evicted.len() + ENTRY_OVERHEAD;
                }
            }
            inner.bodies.insert(key, document.body().clone());
            inner.order.push_back(key);
            inner.bytes += size;
        }
    }

    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        *inner = Inner::default();
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{CustomerName, ItemName, NewItem, NewOrder, Order, Quantity, Timestamp};

    fn document() -> OrderDocument {
        let new = NewOrder::new(
            CustomerName::parse("Alice").unwrap(),
            vec![NewItem {
                name: ItemName::parse("Pen").unwrap(),
                quantity: Quantity::parse(1).unwrap(),
            }],
        )
        .unwrap();
        OrderDocument::render(&Order::create(&new, Timestamp::now()))
    }

    #[test]
    fn finds_what_it_holds_by_id_and_version() {
        let fragments = Fragments::new(DEFAULT_BUDGET_BYTES);
        let doc = document();
        fragments.insert(&doc);
        let found =
            fragments.lookup(&[(doc.id(), doc.version()), (doc.id(), doc.version().next())]);
        assert_eq!(found[0].as_ref(), Some(doc.body()));
        assert_eq!(found[1], None);
    }

    #[test]
    fn stays_within_its_budget_by_evicting_the_oldest() {
        let first = document();
        let size = first.body().len() + ENTRY_OVERHEAD;
        let fragments = Fragments::new(size * 3);
        let docs: Vec<_> = std::iter::once(first)
            .chain((0..9).map(|_| document()))
            .collect();
        fragments.insert_many(&docs);
        assert!(fragments.bytes() <= size * 3);
        let keys: Vec<_> = docs.iter().map(|d| (d.id(), d.version())).collect();
        let found = fragments.lookup(&keys);
        assert!(found[0].is_none(), "the oldest was evicted");
        assert!(found[9].is_some(), "the newest is kept");
        fragments.clear();
        assert_eq!(fragments.bytes(), 0);
        assert!(fragments.lookup(&keys).iter().all(Option::is_none));
    }
}
