//! Every Redis key the cache touches. The first four are the original
//! service's keys (with an optional prefix, empty by default); the two
//! bookkeeping keys are named so that no pattern or name of the original
//! can match them (`detail-` with a hyphen is not `detail:`).

use domain::OrderId;

#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// `{p}orders:list:version`: an integer, absent means 0, `INCR`ed after
    /// every committed write. Read together with [`Keys::detail_epoch`],
    /// which changes whenever this key is found missing.
    pub(crate) fn list_version(&self) -> String {
        format!("{}orders:list:version", self.prefix)
    }

    /// What goes before the version in a list key; the read script appends
    /// the version it has just read and [`Keys::list_suffix`].
    pub(crate) fn list_head(&self) -> String {
        format!("{}orders:list:", self.prefix)
    }

    /// What goes before the version in a list stamp key
    /// (`{p}orders:list-stamp:{v}[:{canonical}]`): the random name of the
    /// payload stored under the same version and suffix.
    pub(crate) fn list_stamp_head(&self) -> String {
        format!("{}orders:list-stamp:", self.prefix)
    }

    /// Empty for the parameterless list, `:{canonical}` otherwise.
    pub(crate) fn list_suffix(canonical: Option<&str>) -> String {
        canonical.map_or_else(String::new, |canonical| format!(":{canonical}"))
    }

    /// `{p}orders:list:{v}` or `{p}orders:list:{v}:{canonical}`: what the
    /// scripts build from [`Keys::list_head`], the version and the suffix.
    #[cfg(test)]
    pub(crate) fn list(&self, version: u64, canonical: Option<&str>) -> String {
        format!(
            "{}{version}{}",
            self.list_head(),
            Self::list_suffix(canonical)
        )
    }

    /// `{p}orders:detail:{order_id}`.
    pub(crate) fn detail(&self, id: OrderId) -> String {
        format!("{}orders:detail:{id}", self.prefix)
    }

    /// `{p}orders:detail-lease:{order_id}`: the token of the one reader
    /// allowed to fill that detail key.
    pub(crate) fn lease(&self, id: OrderId) -> String {
        format!("{}orders:detail-lease:{id}", self.prefix)
    }

    /// `{p}orders:detail-epoch`: an integer that only ever takes fresh
    /// random values, on every full invalidation and whenever a script finds
    /// it or the list version missing, so that a fill that began before one
    /// of those cannot land after it (lists and details alike).
    pub(crate) fn detail_epoch(&self) -> String {
        format!("{}orders:detail-epoch", self.prefix)
    }

    /// The `SCAN MATCH` pattern of every detail key of this prefix; glob
    /// characters of the prefix are escaped so they match themselves.
    pub(crate) fn detail_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.prefix.len() + 16);
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push_str("orders:detail:*");
        pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keys_are_the_originals() {
        let keys = Keys::new("");
        let id: OrderId = "01936f0e-6b1c-7cc2-9b6d-3f1b2a9c0e11".parse().unwrap();
        assert_eq!(keys.list_version(), "orders:list:version");
        assert_eq!(keys.list(7, None), "orders:list:7");
        assert_eq!(keys.list(7, Some("limit=5")), "orders:list:7:limit=5");
        assert_eq!(
            keys.detail(id),
            "orders:detail:01936f0e-6b1c-7cc2-9b6d-3f1b2a9c0e11"
        );
        assert_eq!(keys.detail_pattern(), "orders:detail:*");
    }

    #[test]
    fn bookkeeping_keys_cannot_collide() {
        let keys = Keys::new("t:");
        let id = OrderId::new();
        for key in [keys.lease(id), keys.detail_epoch()] {
            assert!(!key.starts_with("t:orders:detail:"));
            assert!(!key.starts_with("t:orders:list:"));
        }
    }

    #[test]
    fn glob_characters_of_the_prefix_are_escaped() {
        assert_eq!(
            Keys::new("a*b?[c]\\:").detail_pattern(),
            "a\\*b\\?\\[c\\]\\\\:orders:detail:*"
        );
    }
}
