//! A list body sent from its parts, never joined.
//!
//! A list of 1,000,000 orders is about 320 MB: storage hands it over as
//! parts (`domain::parts`), some in memory, some spooled to a file. This
//! body sends them one after another as one response of known length
//! (`Content-Length`), each part in slices of at most 64 KiB as
//! [`SlicedBody`](crate::sliced::SlicedBody) does, for the same reason.
//!
//! A response holds one part's bytes at a time: the next part is read only
//! when the last slice of the current one has been handed out, so memory
//! stays bounded by the part size times the number of responses under
//! way, whatever the size of the list. A resident part is read inline (a
//! copy of a handle). A part that may read a file is read on tokio's
//! blocking pool: actix workers each run a current-thread runtime, and a
//! blocking read there would stall every connection of the worker.
//!
//! A part that cannot be read ends the body with an error: the status and
//! `Content-Length` are already sent, so actix closes the connection and
//! the client sees a truncated body.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use actix_web::body::{BodySize, MessageBody};
use actix_web::rt::task::{JoinHandle, spawn_blocking};
use bytes::Bytes;
use domain::parts::ListPart;

use crate::precedence::{Precedence, Yielding};
use crate::sliced::next_slice;

pub struct StreamedBody {
    parts: std::vec::IntoIter<Arc<dyn ListPart>>,
    /// The sum of the parts' lengths, declared as the body's size.
    len: u64,
    /// Index of the part being sent or read, for logs.
    index: usize,
    state: State,
    yielding: Yielding,
}

enum State {
    /// The next part is read on the next poll.
    Between,
    /// What is left of the current part.
    Sending(Bytes),
    /// The current part being read on the blocking pool.
    Reading {
        part: Arc<dyn ListPart>,
        read: JoinHandle<io::Result<Bytes>>,
    },
    /// Every part sent, or a part failed.
    Done,
}

impl StreamedBody {
    pub fn new(parts: Vec<Arc<dyn ListPart>>) -> Self {
        let len = parts.iter().map(|part| part.len() as u64).sum();
        Self {
            parts: parts.into_iter(),
            len,
            index: 0,
            state: State::Between,
            yielding: Yielding::default(),
        }
    }

    /// Each slice waits for the other requests in flight (see `precedence`).
    pub fn making_way(mut self, precedence: Precedence) -> Self {
        self.yielding = Yielding::new(precedence);
        self
    }

    /// The bytes of a part as read, checked against the length it
    /// declared (the sum of which went out as `Content-Length`).
    fn received(&mut self, part: &dyn ListPart, read: io::Result<Bytes>) -> io::Result<Bytes> {
        let result = read.and_then(|bytes| {
            if bytes.len() == part.len() {
                Ok(bytes)
            } else {
                Err(io::Error::other(format!(
                    "the part read {} bytes instead of the {} it declared",
                    bytes.len(),
                    part.len()
                )))
            }
        });
        if let Err(error) = &result {
            tracing::warn!(
                part = self.index,
                error = %error,
                "a list part could not be read; the response ends here and its connection is closed"
            );
            self.state = State::Done;
        }
        result
    }
}

impl MessageBody for StreamedBody {
    type Error = io::Error;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.len)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Sending(rest) if rest.is_empty() => {
                    this.state = State::Between;
                    this.index += 1;
                }
                State::Sending(rest) => {
                    ready!(this.yielding.poll_turn(cx));
                    if let Some(slice) = next_slice(rest) {
                        return Poll::Ready(Some(Ok(slice)));
                    }
                }
                State::Between => {
                    let Some(part) = this.parts.next() else {
                        this.state = State::Done;
                        return Poll::Ready(None);
                    };
                    if part.is_resident() {
                        let read = part.read();
                        let bytes = this.received(&*part, read)?;
                        this.state = State::Sending(bytes);
                    } else {
                        let reading = Arc::clone(&part);
                        this.state = State::Reading {
                            part,
                            read: spawn_blocking(move || reading.read()),
                        };
                    }
                }
                State::Reading { part, read } => {
                    let read = match ready!(Pin::new(read).poll(cx)) {
                        Ok(read) => read,
                        // The read panicked (or the runtime is going away).
                        Err(join) => Err(io::Error::other(join)),
                    };
                    let part = Arc::clone(part);
                    let bytes = this.received(&*part, read)?;
                    this.state = State::Sending(bytes);
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread::ThreadId;

    use actix_web::body::to_bytes;
    use domain::parts::{Deflated, ResidentPart, deflate_part, deflated_in_memory};
    use futures::future::poll_fn;

    use super::*;
    use crate::sliced::SLICE;

    /// A part as if spooled to a file: not resident, and its reads are
    /// counted, with the thread each ran on.
    #[derive(Debug)]
    pub struct SpooledPart {
        bytes: Bytes,
        fails: bool,
        pub reads: AtomicUsize,
        pub threads: Mutex<Vec<ThreadId>>,
    }

    impl SpooledPart {
        pub fn new(bytes: impl Into<Bytes>) -> Arc<Self> {
            Arc::new(Self {
                bytes: bytes.into(),
                fails: false,
                reads: AtomicUsize::new(0),
                threads: Mutex::new(Vec::new()),
            })
        }

        /// A part of `len` bytes whose every read fails.
        pub fn failing(len: usize) -> Arc<Self> {
            Arc::new(Self {
                bytes: Bytes::from(vec![b' '; len]),
                fails: true,
                reads: AtomicUsize::new(0),
                threads: Mutex::new(Vec::new()),
            })
        }
    }

    impl ListPart for SpooledPart {
        fn len(&self) -> usize {
            self.bytes.len()
        }

        fn digest(&self) -> u64 {
            xxhash_rust::xxh3::xxh3_64(&self.bytes)
        }

        fn is_resident(&self) -> bool {
            false
        }

        fn read(&self) -> io::Result<Bytes> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.threads
                .lock()
                .unwrap()
                .push(std::thread::current().id());
            if self.fails {
                Err(io::Error::other("the spool file is gone"))
            } else {
                Ok(self.bytes.clone())
            }
        }

        fn deflated(&self) -> io::Result<Deflated> {
            let bytes = self.read()?;
            Ok(deflated_in_memory(&bytes, deflate_part(&bytes)))
        }
    }

    pub fn resident(bytes: impl Into<Bytes>) -> Arc<dyn ListPart> {
        Arc::new(ResidentPart::new(bytes.into()))
    }

    fn filler(len: usize, seed: u8) -> Bytes {
        Bytes::from(
            (0..len)
                .map(|i| b'a' + (i as u8).wrapping_add(seed) % 26)
                .collect::<Vec<_>>(),
        )
    }

    async fn next(body: &mut StreamedBody) -> Option<io::Result<Bytes>> {
        poll_fn(|cx| Pin::new(&mut *body).poll_next(cx)).await
    }

    #[actix_web::test]
    async fn parts_go_out_in_order_in_slices_of_at_most_64_kib() {
        let pieces = [
            filler(2 * SLICE + 1, 0),
            filler(3 * SLICE + 17, 1),
            filler(10, 2),
            filler(SLICE, 3),
        ];
        let expected = pieces.concat();
        let spooled = SpooledPart::new(pieces[1].clone());
        let parts: Vec<Arc<dyn ListPart>> = vec![
            resident(pieces[0].clone()),
            spooled.clone(),
            resident(pieces[2].clone()),
            resident(pieces[3].clone()),
        ];
        let mut body = StreamedBody::new(parts);
        assert_eq!(body.size(), BodySize::Sized(expected.len() as u64));

        let mut sent = Vec::new();
        let mut slices = Vec::new();
        while let Some(slice) = next(&mut body).await {
            let slice = slice.unwrap();
            slices.push(slice.len());
            sent.extend_from_slice(&slice);
        }
        assert_eq!(sent, expected);
        assert!(slices.iter().all(|&len| len <= SLICE), "{slices:?}");
        // Each part is sliced on its own: 3 + 4 + 1 + 1.
        assert_eq!(slices.len(), 9, "{slices:?}");
        assert_eq!(spooled.reads.load(Ordering::SeqCst), 1);
        let threads = spooled.threads.lock().unwrap();
        assert_ne!(
            threads[0],
            std::thread::current().id(),
            "a non-resident part is read off the async thread"
        );
    }

    #[actix_web::test]
    async fn one_part_is_read_at_a_time() {
        let first = SpooledPart::new(filler(2 * SLICE, 0));
        let second = SpooledPart::new(filler(SLICE, 1));
        let mut body = StreamedBody::new(vec![first.clone(), second.clone()]);
        next(&mut body).await.unwrap().unwrap();
        assert_eq!(first.reads.load(Ordering::SeqCst), 1);
        next(&mut body).await.unwrap().unwrap();
        assert_eq!(
            second.reads.load(Ordering::SeqCst),
            0,
            "the next part waits until the current one is sent"
        );
        next(&mut body).await.unwrap().unwrap();
        assert_eq!(second.reads.load(Ordering::SeqCst), 1);
        assert!(next(&mut body).await.is_none());
    }

    #[actix_web::test]
    async fn a_part_that_cannot_be_read_ends_the_body_with_an_error() {
        let mut body = StreamedBody::new(vec![
            resident(filler(100, 0)),
            SpooledPart::failing(100),
            resident(filler(100, 1)),
        ]);
        assert_eq!(next(&mut body).await.unwrap().unwrap().len(), 100);
        assert!(next(&mut body).await.unwrap().is_err());
        assert!(next(&mut body).await.is_none(), "nothing follows the error");
    }

    #[actix_web::test]
    async fn a_part_shorter_than_it_declared_is_an_error() {
        #[derive(Debug)]
        struct Liar;
        impl ListPart for Liar {
            fn len(&self) -> usize {
                10
            }
            fn digest(&self) -> u64 {
                0
            }
            fn is_resident(&self) -> bool {
                true
            }
            fn read(&self) -> io::Result<Bytes> {
                Ok(Bytes::from_static(b"short"))
            }
            fn deflated(&self) -> io::Result<Deflated> {
                unreachable!()
            }
        }
        assert!(
            to_bytes(StreamedBody::new(vec![Arc::new(Liar)]))
                .await
                .is_err()
        );
    }

    #[actix_web::test]
    async fn no_parts_is_an_empty_body() {
        let body = StreamedBody::new(Vec::new());
        assert_eq!(body.size(), BodySize::Sized(0));
        assert!(to_bytes(body).await.unwrap().is_empty());
    }
}
