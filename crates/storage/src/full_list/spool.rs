//! Chunks of a full list that do not fit the memory budget, written to an
//! unlinked temporary file and read back when sent. Their bytes then live
//! in the kernel's page cache, which the system can reclaim, instead of the
//! process's memory; a reader holds one chunk at a time.
//!
//! Chunks are immutable and appended; a chunk replaced by a newer one
//! leaves garbage behind. Once the file holds more garbage than live bytes
//! (plus some slack), the next build copies the live chunks to a fresh file
//! and the old one is freed when the last response reading it ends.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use domain::parts::{Deflated, ListPart, crc32, deflate_part};
use xxhash_rust::xxh3::xxh3_64;

/// Garbage allowed beside the live bytes before a rewrite.
const SLACK_BYTES: u64 = 64 * 1024 * 1024;

/// Read buffers kept for reuse once their bytes are sent, at most this
/// many bytes of them: a few dozen parts of 320 KB.
const IDLE_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// The buffers parts are read back into. A fresh buffer per read (a
/// `vec!` of 320 KB) was mapped by the allocator, faulted in and zeroed
/// page by page, then unmapped with a TLB shootdown once sent: a fifth of
/// the server's CPU in a `perf` profile of four clients pulling a list of
/// 1,000,000 orders. Reused, a buffer's pages stay in place.
static BUFFERS: Buffers = Buffers::new(IDLE_BUFFER_BYTES);

struct Buffers {
    idle: Mutex<Vec<Vec<u8>>>,
    limit: usize,
}

impl Buffers {
    const fn new(limit: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            limit,
        }
    }

    /// A buffer of `len` bytes, an idle one if there is one large enough.
    fn take(&'static self, len: usize) -> Pooled {
        let mut buffer = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            match idle.iter().position(|buffer| buffer.capacity() >= len) {
                Some(index) => idle.swap_remove(index),
                None => idle.pop().unwrap_or_default(),
            }
        };
        // Shrinking keeps the old bytes; they are read over in full.
        buffer.resize(len, 0);
        Pooled { buffer, pool: self }
    }

    fn give_back(&self, buffer: Vec<u8>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let held: usize = idle.iter().map(Vec::capacity).sum();
        if held + buffer.capacity() <= self.limit {
            idle.push(buffer);
        }
    }
}

/// A read buffer that goes back to its pool when the last `Bytes` made
/// from it is dropped.
struct Pooled {
    buffer: Vec<u8>,
    pool: &'static Buffers,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

/// Where spooled chunks go.
pub(crate) struct Spool {
    dir: PathBuf,
    current: Mutex<Option<Arc<SpoolFile>>>,
}

pub(crate) struct SpoolFile {
    file: File,
    /// Bytes appended so far, garbage included.
    len: Mutex<u64>,
}

impl std::fmt::Debug for SpoolFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolFile").finish_non_exhaustive()
    }
}

impl Spool {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            current: Mutex::new(None),
        }
    }

    fn current(&self) -> io::Result<Arc<SpoolFile>> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = &*current {
            return Ok(Arc::clone(file));
        }
        let file = Arc::new(SpoolFile {
            file: tempfile::tempfile_in(&self.dir).map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("spooling a list to {}: {error}", self.dir.display()),
                )
            })?,
            len: Mutex::new(0),
        });
        *current = Some(Arc::clone(&file));
        Ok(file)
    }

    /// Writes `bytes` and returns them as a part read from the file.
    pub(crate) fn append(self: &Arc<Self>, bytes: &[u8]) -> io::Result<SpooledPart> {
        let file = self.current()?;
        let offset = {
            let mut len = file.len.lock().unwrap_or_else(|p| p.into_inner());
            let offset = *len;
            file.file.write_all_at(bytes, offset)?;
            *len += bytes.len() as u64;
            offset
        };
        Ok(SpooledPart {
            spool: Arc::clone(self),
            file,
            offset,
            len: bytes.len(),
            digest: xxh3_64(bytes),
            deflated: OnceLock::new(),
        })
    }

    /// True when the current file holds much more than `live` bytes: the
    /// caller then copies its live parts with [`Spool::restart`] first.
    pub(crate) fn wants_rewrite(&self, live: u64) -> bool {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current.as_ref().is_some_and(|file| {
            let len = *file.len.lock().unwrap_or_else(|p| p.into_inner());
            len > 2 * live + SLACK_BYTES
        })
    }

    /// Starts a new file for later appends; parts in the old one stay
    /// readable until dropped.
    pub(crate) fn restart(&self) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether `part` lives in the file appends go to now.
    pub(crate) fn is_current(&self, part: &SpooledPart) -> bool {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current
            .as_ref()
            .is_some_and(|file| Arc::ptr_eq(file, &part.file))
    }
}

/// A chunk's bytes in a spool file.
pub(crate) struct SpooledPart {
    spool: Arc<Spool>,
    file: Arc<SpoolFile>,
    offset: u64,
    len: usize,
    digest: u64,
    deflated: OnceLock<Deflated>,
}

impl std::fmt::Debug for SpooledPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpooledPart")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl ListPart for SpooledPart {
    fn len(&self) -> usize {
        self.len
    }

    fn digest(&self) -> u64 {
        self.digest
    }

    fn is_resident(&self) -> bool {
        false
    }

    fn read(&self) -> io::Result<Bytes> {
        let mut buffer = BUFFERS.take(self.len);
        self.file
            .file
            .read_exact_at(&mut buffer.buffer, self.offset)?;
        Ok(Bytes::from_owner(buffer))
    }

    /// Deflated on first use and spooled too. Two responses asking at once
    /// may both compress; one result is kept.
    fn deflated(&self) -> io::Result<Deflated> {
        if let Some(deflated) = self.deflated.get() {
            return Ok(deflated.clone());
        }
        let bytes = self.read()?;
        let stream = deflate_part(&bytes);
        let spooled = self.spool.append(&stream)?;
        let deflated = Deflated {
            stream: Arc::new(spooled),
            crc: crc32(&bytes),
            len: bytes.len() as u64,
        };
        Ok(self.deflated.get_or_init(|| deflated).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_read_back_what_was_appended_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::new(dir.path().to_path_buf()));
        let a = spool.append(b"first chunk").unwrap();
        let b = spool.append(b"second").unwrap();
        assert!(spool.is_current(&a));
        spool.restart();
        assert!(!spool.is_current(&a));
        let c = spool.append(b"third, in a new file").unwrap();
        assert_eq!(&a.read().unwrap()[..], b"first chunk");
        assert_eq!(&b.read().unwrap()[..], b"second");
        assert_eq!(&c.read().unwrap()[..], b"third, in a new file");
        assert!(!a.is_resident());
        // Nothing is left in the directory: the files are unlinked.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn read_buffers_are_reused_and_hold_only_their_part() {
        static POOL: Buffers = Buffers::new(1000);
        let first = POOL.take(600);
        let address = first.buffer.as_ptr();
        drop(first);
        let mut shorter = POOL.take(100);
        assert_eq!(
            shorter.buffer.as_ptr(),
            address,
            "the idle buffer is reused"
        );
        assert_eq!(shorter.as_ref().len(), 100);
        shorter.buffer.fill(b'x');
        let bytes = Bytes::from_owner(shorter);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert!(
            POOL.idle.lock().unwrap().is_empty(),
            "back only once every slice is dropped"
        );
        drop(slice);
        assert_eq!(POOL.idle.lock().unwrap().len(), 1);
        // Beyond the limit, buffers are freed instead.
        let (a, b) = (POOL.take(600), POOL.take(600));
        drop((a, b));
        assert_eq!(POOL.idle.lock().unwrap().len(), 1);
    }

    #[test]
    fn parts_of_other_lengths_read_back_exactly_through_reused_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::new(dir.path().to_path_buf()));
        let long = spool.append(&[b'l'; 5000]).unwrap();
        let short = spool.append(b"short").unwrap();
        for _ in 0..3 {
            assert_eq!(&long.read().unwrap()[..], &[b'l'; 5000][..]);
            assert_eq!(&short.read().unwrap()[..], b"short");
        }
    }

    #[test]
    fn deflated_parts_are_kept_and_spooled() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::new(dir.path().to_path_buf()));
        let text = "{\"order\":1},".repeat(5000);
        let part = spool.append(text.as_bytes()).unwrap();
        let deflated = part.deflated().unwrap();
        assert!(!deflated.stream.is_resident());
        assert_eq!(deflated.len, text.len() as u64);
        let again = part.deflated().unwrap();
        assert_eq!(again.stream.digest(), deflated.stream.digest());
    }

    #[test]
    fn rewrite_is_wanted_once_garbage_outgrows_the_live_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::new(dir.path().to_path_buf()));
        assert!(!spool.wants_rewrite(0));
        let _part = spool.append(&vec![b'x'; 1024]).unwrap();
        assert!(!spool.wants_rewrite(1024));
        assert!(!spool.wants_rewrite(0), "within the slack");
    }
}
