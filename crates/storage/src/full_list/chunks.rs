//! A full list as chunks of rendered orders, each covering a range of ids,
//! newest first; and the list body made of them.

use std::sync::Arc;

use bytes::Bytes;
use domain::ListDocument;
use domain::parts::{ListPart, ListParts, ResidentPart};

/// Orders per chunk from a fresh walk, and the size past which a chunk
/// that grew (new orders land in the newest one) is split on its next
/// re-read. About 320 KB: re-reading one after a write costs a few
/// milliseconds, and 1,000,000 orders make 1,000 parts.
pub(crate) const TARGET_ORDERS: usize = 1000;
pub(crate) const SPLIT_ABOVE: usize = 2 * TARGET_ORDERS;

/// Rendered orders with ids in `floor..ceiling`, where the ceiling is the
/// floor of the chunk before (the newest chunk has none).
#[derive(Debug)]
pub(crate) struct Chunk {
    /// The lowest id covered, inclusive; `None` for the oldest chunk,
    /// which covers everything below.
    pub floor: Option<String>,
    pub orders: usize,
    /// The orders' bodies joined by commas.
    pub part: Arc<dyn ListPart>,
    /// Whether `part` is held in memory (and counts in the budget).
    pub resident: bool,
    /// The spooled part, when not resident (to move it to a new file).
    pub spooled: Option<Arc<super::spool::SpooledPart>>,
}

impl Chunk {
    pub(crate) fn resident_bytes(&self) -> usize {
        if self.resident { self.part.len() } else { 0 }
    }

    pub(crate) fn spooled_bytes(&self) -> u64 {
        if self.resident {
            0
        } else {
            self.part.len() as u64
        }
    }
}

/// The index of the chunk covering `id` in `chunks` (newest first, floors
/// descending, the last one without a floor).
pub(crate) fn covering(chunks: &[Arc<Chunk>], id: &str) -> usize {
    let index =
        chunks.partition_point(|chunk| chunk.floor.as_deref().is_some_and(|floor| id < floor));
    index.min(chunks.len().saturating_sub(1))
}

/// One full list: the chunks as of a change-log position.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub epoch: i64,
    pub seq: i64,
    pub chunks: Vec<Arc<Chunk>>,
    pub document: ListDocument,
}

impl Snapshot {
    /// The list of `chunks`: sent as parts when longer than `stream_above`
    /// bytes, else joined into one buffer (which the cache can store).
    pub(crate) fn new(
        epoch: i64,
        seq: i64,
        chunks: Vec<Arc<Chunk>>,
        stream_above: usize,
    ) -> std::io::Result<Self> {
        let total: usize = chunks.iter().map(|chunk| chunk.orders).sum();
        let head: Arc<dyn ListPart> = Arc::new(ResidentPart::new(Bytes::from(format!(
            "{{\"total_orders\":{total},\"orders\":["
        ))));
        let comma = comma();
        let tail = tail();
        let mut parts: Vec<Arc<dyn ListPart>> = Vec::with_capacity(chunks.len() * 2 + 2);
        parts.push(head);
        for chunk in chunks.iter().filter(|chunk| chunk.orders > 0) {
            if parts.len() > 1 {
                parts.push(Arc::clone(&comma));
            }
            parts.push(Arc::clone(&chunk.part));
        }
        parts.push(tail);
        let parts = ListParts::new(parts);
        let document = if parts.len() as usize > stream_above {
            ListDocument::from_parts(parts)
        } else {
            ListDocument::from_rendered(parts.join()?)
        };
        Ok(Self {
            epoch,
            seq,
            chunks,
            document,
        })
    }

    pub(crate) fn resident_bytes(&self) -> usize {
        self.chunks.iter().map(|chunk| chunk.resident_bytes()).sum()
    }
}

/// The separator between chunks, shared so that it is deflated once.
fn comma() -> Arc<dyn ListPart> {
    static COMMA: std::sync::OnceLock<Arc<ResidentPart>> = std::sync::OnceLock::new();
    COMMA
        .get_or_init(|| Arc::new(ResidentPart::new(Bytes::from_static(b","))))
        .clone()
}

fn tail() -> Arc<dyn ListPart> {
    static TAIL: std::sync::OnceLock<Arc<ResidentPart>> = std::sync::OnceLock::new();
    TAIL.get_or_init(|| Arc::new(ResidentPart::new(Bytes::from_static(b"]}"))))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(floor: Option<&str>, body: &'static str, orders: usize) -> Arc<Chunk> {
        Arc::new(Chunk {
            floor: floor.map(str::to_owned),
            orders,
            part: Arc::new(ResidentPart::new(Bytes::from_static(body.as_bytes()))),
            resident: true,
            spooled: None,
        })
    }

    #[test]
    fn covering_finds_the_range_of_an_id() {
        let chunks = vec![
            chunk(Some("m"), "", 0),
            chunk(Some("f"), "", 0),
            chunk(None, "", 0),
        ];
        assert_eq!(covering(&chunks, "z"), 0);
        assert_eq!(covering(&chunks, "m"), 0);
        assert_eq!(covering(&chunks, "l"), 1);
        assert_eq!(covering(&chunks, "f"), 1);
        assert_eq!(covering(&chunks, "a"), 2);
    }

    #[test]
    fn a_snapshot_joins_non_empty_chunks_with_commas() {
        let chunks = vec![
            chunk(Some("m"), "{\"a\":3},{\"a\":2}", 2),
            chunk(Some("f"), "", 0),
            chunk(None, "{\"a\":1}", 1),
        ];
        let whole = Snapshot::new(1, 1, chunks.clone(), usize::MAX).unwrap();
        let expected = b"{\"total_orders\":3,\"orders\":[{\"a\":3},{\"a\":2},{\"a\":1}]}";
        assert_eq!(&whole.document.whole().unwrap()[..], expected);
        let parts = Snapshot::new(1, 1, chunks, 0).unwrap();
        assert!(parts.document.whole().is_none());
        assert_eq!(&parts.document.to_bytes().unwrap()[..], expected);

        let empty = Snapshot::new(1, 1, vec![chunk(None, "", 0)], usize::MAX).unwrap();
        assert_eq!(
            &empty.document.whole().unwrap()[..],
            b"{\"total_orders\":0,\"orders\":[]}"
        );
    }
}
