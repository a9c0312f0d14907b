//! List bodies this process has already received, so that a hit does not
//! move the whole body (320 KB for 1,000 orders) out of Redis again.
//!
//! A copy is used only when Redis confirms, in the same round trip that
//! reads the current version, that the payload stored for that version is
//! still the one the copy was taken from (same random stamp). So a copy can
//! never be served after a write, a purge, an expiry or a Redis restart:
//! any of them changes or removes the stamp.

use std::collections::HashMap;
use std::sync::Mutex;

use domain::ListDocument;

/// Bodies larger than this are not kept (a full list of 100,000 orders is
/// 32 MB): memory stays bounded and such lists are rare.
const MAX_BODY: usize = 4 * 1024 * 1024;
const BUDGET: usize = 8 * 1024 * 1024;

#[derive(Default)]
pub(crate) struct NearLists {
    /// Keyed by list suffix (`""` or `:{canonical}`).
    entries: Mutex<HashMap<String, (String, ListDocument)>>,
}

impl NearLists {
    /// The stamp of the body held for `suffix`, `""` when none.
    pub(crate) fn stamp(&self, suffix: &str) -> String {
        let entries = self.entries.lock().expect("not poisoned");
        entries
            .get(suffix)
            .map(|(stamp, _)| stamp.clone())
            .unwrap_or_default()
    }

    pub(crate) fn body(&self, suffix: &str, stamp: &str) -> Option<ListDocument> {
        let entries = self.entries.lock().expect("not poisoned");
        entries
            .get(suffix)
            .filter(|(held, _)| held == stamp)
            .map(|(_, body)| body.clone())
    }

    pub(crate) fn keep(&self, suffix: &str, stamp: String, body: ListDocument) {
        if body.len() > MAX_BODY as u64 {
            return;
        }
        let mut entries = self.entries.lock().expect("not poisoned");
        entries.insert(suffix.to_owned(), (stamp, body));
        let mut total: u64 = entries.values().map(|(_, body)| body.len()).sum();
        if total > BUDGET as u64 {
            // Pages and filters come and go; keep the one being stored and
            // drop others until the budget holds.
            let others: Vec<String> = entries
                .keys()
                .filter(|key| *key != suffix)
                .cloned()
                .collect();
            for key in others {
                if total <= BUDGET as u64 {
                    break;
                }
                if let Some((_, body)) = entries.remove(&key) {
                    total -= body.len();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn list(bytes: Bytes) -> ListDocument {
        ListDocument::from_rendered(bytes)
    }

    #[test]
    fn serves_only_the_stamp_it_holds() {
        let near = NearLists::default();
        assert_eq!(near.stamp(""), "");
        near.keep("", "a".into(), list(Bytes::from_static(b"{}")));
        assert_eq!(near.stamp(""), "a");
        assert_eq!(
            near.body("", "a").unwrap().whole().unwrap(),
            &Bytes::from_static(b"{}")
        );
        assert!(near.body("", "b").is_none());
        assert!(near.body(":limit=5", "a").is_none());
    }

    #[test]
    fn memory_is_bounded() {
        let near = NearLists::default();
        let big = Bytes::from(vec![b' '; 3 * 1024 * 1024]);
        for i in 0..10 {
            near.keep(&format!(":{i}"), i.to_string(), list(big.clone()));
        }
        let total: u64 = near
            .entries
            .lock()
            .unwrap()
            .values()
            .map(|(_, b)| b.len())
            .sum();
        assert!(total <= BUDGET as u64);
        assert!(near.body(":9", "9").is_some(), "the newest is kept");
        near.keep(
            ":huge",
            "h".into(),
            list(Bytes::from(vec![b' '; MAX_BODY + 1])),
        );
        assert!(near.body(":huge", "h").is_none());
    }
}
