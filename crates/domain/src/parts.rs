//! A list body too large to hold as one buffer: a sequence of parts, each
//! read when it is sent. Storage implements [`ListPart`] for its rendered
//! chunks of orders (in memory, or spooled to a file); the HTTP layer sends
//! the parts one after another, identity or gzip, without joining them.
//!
//! Gzip without compressing per response: each part is deflated once, on
//! its own, ending with a full flush, so that the deflated parts of any
//! list that contains it can be laid end to end as one deflate stream. The
//! gzip trailer's CRC-32 is combined from the parts' CRCs, not computed
//! over the body.

use std::fmt;
use std::io;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};
use xxhash_rust::xxh3::xxh3_64;

/// One piece of a large list body.
pub trait ListPart: Send + Sync + fmt::Debug {
    /// Bytes in the body.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// xxh3 of the bytes, known without reading them.
    fn digest(&self) -> u64;

    /// True when [`read`](ListPart::read) is a cheap copy of a handle; false
    /// when it may read a file (call it off an async thread).
    fn is_resident(&self) -> bool;

    /// The bytes.
    fn read(&self) -> io::Result<Bytes>;

    /// The bytes deflated on their own (raw deflate, ending in a full
    /// flush), made on first use and kept. May compress or read a file.
    fn deflated(&self) -> io::Result<Deflated>;
}

/// A part's deflate stream and what a gzip trailer needs of its input.
#[derive(Debug, Clone)]
pub struct Deflated {
    /// Raw deflate blocks, none of them final, ending byte-aligned.
    pub stream: Arc<dyn ListPart>,
    /// CRC-32 of the part's uncompressed bytes.
    pub crc: u32,
    /// Length of the part's uncompressed bytes.
    pub len: u64,
}

/// Deflates `bytes` as a part (see the module documentation): fast
/// compression, ending in a full flush, never a final block.
pub fn deflate_part(bytes: &[u8]) -> Bytes {
    let mut compress = Compress::new(Compression::fast(), false);
    let mut out = Vec::with_capacity(bytes.len() / 4 + 64);
    loop {
        let consumed = compress.total_in() as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(1024));
        }
        compress
            .compress_vec(&bytes[consumed..], &mut out, FlushCompress::Full)
            .expect("deflating to a Vec cannot fail");
        // A full flush is complete once all input is in and the output
        // had room to spare.
        if compress.total_in() as usize == bytes.len() && out.len() < out.capacity() {
            break;
        }
    }
    Bytes::from(out)
}

/// CRC-32 of `bytes`, as gzip's trailer wants it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(bytes);
    hasher.finalize()
}

/// Bytes held in memory: the fixed pieces of a list (its head with the
/// total, the commas, its tail), and chunks that fit the memory budget.
#[derive(Debug)]
pub struct ResidentPart {
    bytes: Bytes,
    digest: u64,
    deflated: OnceLock<Deflated>,
}

impl ResidentPart {
    pub fn new(bytes: Bytes) -> Self {
        Self {
            digest: xxh3_64(&bytes),
            bytes,
            deflated: OnceLock::new(),
        }
    }

    /// A part whose deflated form is already known (made by whoever
    /// rendered it), so it is never compressed again.
    pub fn with_deflated(bytes: Bytes, deflated: Deflated) -> Self {
        let part = Self::new(bytes);
        let _ = part.deflated.set(deflated);
        part
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

/// The deflate stream of some bytes, itself a part: held in memory, never
/// compressed again.
#[derive(Debug)]
struct DeflateStream {
    bytes: Bytes,
    digest: u64,
}

impl ListPart for DeflateStream {
    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn digest(&self) -> u64 {
        self.digest
    }

    fn is_resident(&self) -> bool {
        true
    }

    fn read(&self) -> io::Result<Bytes> {
        Ok(self.bytes.clone())
    }

    fn deflated(&self) -> io::Result<Deflated> {
        Err(io::Error::other("a deflate stream is not deflated again"))
    }
}

/// Wraps an already deflated stream (see [`deflate_part`]) as a part.
pub fn deflated_in_memory(identity: &[u8], stream: Bytes) -> Deflated {
    Deflated {
        crc: crc32(identity),
        len: identity.len() as u64,
        stream: Arc::new(DeflateStream {
            digest: xxh3_64(&stream),
            bytes: stream,
        }),
    }
}

impl ListPart for ResidentPart {
    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn digest(&self) -> u64 {
        self.digest
    }

    fn is_resident(&self) -> bool {
        true
    }

    fn read(&self) -> io::Result<Bytes> {
        Ok(self.bytes.clone())
    }

    fn deflated(&self) -> io::Result<Deflated> {
        Ok(self
            .deflated
            .get_or_init(|| deflated_in_memory(&self.bytes, deflate_part(&self.bytes)))
            .clone())
    }
}

/// The parts of one list body, in order, with their total length and a
/// digest of the whole made from the parts' digests (the list's ETag).
#[derive(Debug, Clone)]
pub struct ListParts {
    parts: Vec<Arc<dyn ListPart>>,
    len: u64,
    digest: u64,
}

impl ListParts {
    /// Empty parts are left out.
    pub fn new(parts: impl IntoIterator<Item = Arc<dyn ListPart>>) -> Self {
        let parts: Vec<_> = parts.into_iter().filter(|part| !part.is_empty()).collect();
        let len: u64 = parts.iter().map(|part| part.len() as u64).sum();
        let mut digests = Vec::with_capacity(parts.len() * 8 + 8);
        for part in &parts {
            digests.extend_from_slice(&part.digest().to_le_bytes());
        }
        digests.extend_from_slice(&len.to_le_bytes());
        Self {
            digest: xxh3_64(&digests),
            parts,
            len,
        }
    }

    pub fn parts(&self) -> &[Arc<dyn ListPart>] {
        &self.parts
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Every part's bytes joined (reads spooled parts): for small lists
    /// and tests.
    pub fn join(&self) -> io::Result<Bytes> {
        let mut body = Vec::with_capacity(self.len as usize);
        for part in &self.parts {
            body.extend_from_slice(&part.read()?);
        }
        Ok(Bytes::from(body))
    }

    /// The pieces of the gzip encoding of the whole body: a header, every
    /// part's deflate stream, a final empty block with the trailer. May
    /// compress parts that were never compressed, or read files.
    pub fn gzip(&self) -> io::Result<Vec<Arc<dyn ListPart>>> {
        const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        let mut pieces: Vec<Arc<dyn ListPart>> = Vec::with_capacity(self.parts.len() + 2);
        pieces.push(Arc::new(DeflateStream {
            bytes: Bytes::from_static(&HEADER),
            digest: 0,
        }));
        let mut crc = crc32fast::Hasher::new();
        for part in &self.parts {
            let deflated = part.deflated()?;
            crc.combine(&crc32fast::Hasher::new_with_initial_len(
                deflated.crc,
                deflated.len,
            ));
            pieces.push(deflated.stream);
        }
        // A final block with no data (fixed Huffman, end of block), then
        // the CRC-32 and the length modulo 2^32, little-endian.
        let mut trailer = vec![0x03, 0x00];
        trailer.extend_from_slice(&crc.finalize().to_le_bytes());
        trailer.extend_from_slice(&(self.len as u32).to_le_bytes());
        pieces.push(Arc::new(DeflateStream {
            bytes: Bytes::from(trailer),
            digest: 0,
        }));
        Ok(pieces)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;

    use super::*;

    fn part(text: &str) -> Arc<dyn ListPart> {
        Arc::new(ResidentPart::new(Bytes::from(text.to_owned())))
    }

    fn gunzip(pieces: &[Arc<dyn ListPart>]) -> Vec<u8> {
        let mut gz = Vec::new();
        for piece in pieces {
            gz.extend_from_slice(&piece.read().unwrap());
        }
        let mut out = Vec::new();
        GzDecoder::new(&gz[..]).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn parts_join_in_order_and_skip_empty_ones() {
        let parts = ListParts::new([part("{\"a\":["), part(""), part("1,2"), part("]}")]);
        assert_eq!(parts.parts().len(), 3);
        assert_eq!(parts.len(), 11);
        assert_eq!(&parts.join().unwrap()[..], b"{\"a\":[1,2]}");
    }

    #[test]
    fn gzip_of_parts_is_the_gzip_of_the_joined_body() {
        let big: String = (0..20_000).map(|i| format!("{{\"n\":{i}}},")).collect();
        let parts = ListParts::new([part("["), part(&big), part("0"), part(&big), part("]")]);
        let joined = parts.join().unwrap();
        assert_eq!(gunzip(&parts.gzip().unwrap()), joined);
        // Each part is deflated once and kept: a second encoding reuses it.
        let first = parts.parts()[1].deflated().unwrap().stream.read().unwrap();
        let again = parts.parts()[1].deflated().unwrap().stream.read().unwrap();
        assert_eq!(first.as_ptr(), again.as_ptr());
        assert!(first.len() < big.len() / 4);
    }

    #[test]
    fn gzip_of_an_empty_list_of_parts_is_valid() {
        let parts = ListParts::new(std::iter::empty());
        assert!(gunzip(&parts.gzip().unwrap()).is_empty());
    }

    #[test]
    fn digest_follows_the_parts() {
        let a = ListParts::new([part("x"), part("y")]);
        let b = ListParts::new([part("x"), part("y")]);
        let c = ListParts::new([part("x"), part("z")]);
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), c.digest());
    }
}
