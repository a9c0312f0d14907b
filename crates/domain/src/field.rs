//! Where in a request an invalid value was: `items[1].quantity`, `limit`,
//! `Idempotency-Key`. Built segment by segment by whoever walks the
//! request, so that a rule's message stays the original's while the client
//! still learns which value broke it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    /// A member of an object, a query parameter or a header.
    Key(&'static str),
    /// An element of an array.
    Index(usize),
}

/// A path from the request's root to one value, shown as JavaScript-like
/// accessors (`items[1].quantity`). The root itself is the empty path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// A top-level member, query parameter or header.
    pub fn field(name: &'static str) -> Self {
        Self(vec![Segment::Key(name)])
    }

    /// A member of the object this path names.
    pub fn key(&self, name: &'static str) -> Self {
        self.with(Segment::Key(name))
    }

    /// An element of the array this path names.
    pub fn index(&self, index: usize) -> Self {
        self.with(Segment::Index(index))
    }

    fn with(&self, segment: Segment) -> Self {
        let mut segments = self.0.clone();
        segments.push(segment);
        Self(segments)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(name) if position == 0 => f.write_str(name)?,
                Segment::Key(name) => write!(f, ".{name}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_as_accessors() {
        let items = FieldPath::field("items");
        assert_eq!(items.to_string(), "items");
        assert_eq!(
            items.index(1).key("quantity").to_string(),
            "items[1].quantity"
        );
        assert_eq!(
            FieldPath::field("Idempotency-Key").to_string(),
            "Idempotency-Key"
        );
        assert!(FieldPath::default().is_root());
        assert_eq!(FieldPath::default().to_string(), "");
    }
}
