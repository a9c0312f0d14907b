//! A chunk brought up to date from the orders that changed in it, instead
//! of read again whole.
//!
//! A write changes one order, but re-reading its chunk reads and renders
//! 1,000 (a few milliseconds, the whole cost of a list after a write). The
//! log names the orders each change touched, so a chunk that only a few
//! of them changed is patched: those orders are read by id and rendered,
//! and spliced into the chunk's bytes in id order, where the old renderings
//! of them are taken out (a deleted order is simply not found). The result
//! is the bytes a re-read would render; the storage tests compare it with
//! a walk, byte for byte.
//!
//! An order's rendering starts with `{"order_id":"`: those bytes, with
//! their unescaped quotes, cannot occur inside a JSON string, so they mark
//! where each order begins.

use std::collections::BTreeSet;

use memchr::memmem;

const ORDER_START: &[u8] = b"{\"order_id\":\"";

/// Past this many changed orders in one chunk, it is read again whole.
pub(super) const AT_MOST: usize = 100;

/// `body` (orders rendered newest first, separated by commas) without the
/// orders named in `changed`, and with `fresh` (each order's id and
/// rendering, newest first) put in by id; with the count of orders.
/// `None` when `body` is not such a list.
pub(super) fn splice(
    body: &[u8],
    changed: &BTreeSet<String>,
    fresh: &[(String, Vec<u8>)],
) -> Option<(Vec<u8>, usize)> {
    let entries = entries(body)?;
    let extra: usize = fresh.iter().map(|(_, bytes)| bytes.len() + 1).sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    let mut count = 0;
    let mut push = |bytes: &[u8]| {
        if !out.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(bytes);
        count += 1;
    };
    let mut fresh = fresh.iter().peekable();
    for (id, bytes) in entries {
        while let Some((_, rendered)) = fresh.next_if(|(new, _)| new.as_str() > id) {
            push(rendered);
        }
        if !changed.contains(id) {
            push(bytes);
        }
    }
    for (_, rendered) in fresh {
        push(rendered);
    }
    Some((out, count))
}

/// Each order's id and bytes in `body`, in order.
fn entries(body: &[u8]) -> Option<Vec<(&str, &[u8])>> {
    if body.is_empty() {
        return Some(Vec::new());
    }
    let starts: Vec<usize> = memmem::find_iter(body, ORDER_START).collect();
    if starts.first() != Some(&0) {
        return None;
    }
    let mut entries = Vec::with_capacity(starts.len());
    for (index, &start) in starts.iter().enumerate() {
        let end = match starts.get(index + 1) {
            Some(&next) if body[next - 1] == b',' => next - 1,
            Some(_) => return None,
            None => body.len(),
        };
        let bytes = &body[start..end];
        let id = &bytes[ORDER_START.len()..];
        let id = &id[..memchr::memchr(b'"', id)?];
        entries.push((std::str::from_utf8(id).ok()?, bytes));
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str, status: &str) -> Vec<u8> {
        format!(r#"{{"order_id":"{id}","customer_name":"{{\"order_id\":\"x\"","status":"{status}","items":[]}}"#)
            .into_bytes()
    }

    fn body(orders: &[(&str, &str)]) -> Vec<u8> {
        orders
            .iter()
            .map(|(id, status)| order(id, status))
            .collect::<Vec<_>>()
            .join(&b","[..])
    }

    fn changed(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn changed_orders_are_replaced_removed_and_added_in_id_order() {
        let old = body(&[("e", "received"), ("c", "received"), ("a", "received")]);
        let fresh = vec![
            ("f".to_owned(), order("f", "received")),
            ("d".to_owned(), order("d", "received")),
            ("c".to_owned(), order("c", "shipped")),
        ];
        // "c" changed status, "a" was deleted, "f" and "d" are new.
        let (new, count) = splice(&old, &changed(&["a", "c", "d", "f"]), &fresh).unwrap();
        let expected = body(&[
            ("f", "received"),
            ("e", "received"),
            ("d", "received"),
            ("c", "shipped"),
        ]);
        assert_eq!(
            String::from_utf8(new).unwrap(),
            String::from_utf8(expected).unwrap()
        );
        assert_eq!(count, 4);
    }

    #[test]
    fn every_order_can_go_and_an_empty_chunk_can_fill() {
        let old = body(&[("b", "received"), ("a", "received")]);
        let (new, count) = splice(&old, &changed(&["a", "b"]), &[]).unwrap();
        assert_eq!((new.len(), count), (0, 0));
        let fresh = vec![("a".to_owned(), order("a", "ready"))];
        let (new, count) = splice(b"", &changed(&["a"]), &fresh).unwrap();
        assert_eq!((new, count), (order("a", "ready"), 1));
    }

    #[test]
    fn bytes_that_are_not_a_list_of_orders_are_refused() {
        assert!(splice(b"[1,2]", &changed(&["a"]), &[]).is_none());
        let mut glued = order("b", "received");
        glued.extend(order("a", "received"));
        assert!(splice(&glued, &changed(&["a"]), &[]).is_none());
    }
}
