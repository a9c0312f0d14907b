//! Large response bodies handed to actix in slices.
//!
//! actix-http copies a response body into the connection's write buffer
//! before writing it. Given a 320 KB list as one `Bytes`, the buffer grows
//! to hold all of it (reallocating, and copying, several times on the way)
//! and keeps that size for the connection's life. Given slices, it writes
//! each time the buffer passes 32 KiB, so the buffer stays small and hot in
//! the CPU cache. The slices share the body's memory; nothing is copied to
//! make them.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;

use crate::precedence::{Precedence, Yielding};

/// Bytes handed out per poll: twice actix-http's write threshold (32 KiB),
/// so each slice goes out in a write of its own.
pub const SLICE: usize = 64 * 1024;

/// The next slice of at most [`SLICE`] bytes taken off the front of
/// `bytes`, sharing its memory; `None` once it is empty. Also used by
/// [`StreamedBody`](crate::streamed::StreamedBody) for each part.
pub fn next_slice(bytes: &mut Bytes) -> Option<Bytes> {
    if bytes.is_empty() {
        return None;
    }
    let len = bytes.len().min(SLICE);
    Some(bytes.split_to(len))
}

/// A body of known length (sent with `Content-Length`) given out in slices.
pub struct SlicedBody {
    rest: Bytes,
    yielding: Yielding,
}

impl SlicedBody {
    pub fn new(body: Bytes) -> Self {
        Self {
            rest: body,
            yielding: Yielding::default(),
        }
    }

    /// Each slice waits for the other requests in flight (see `precedence`).
    pub fn making_way(mut self, precedence: Precedence) -> Self {
        self.yielding = Yielding::new(precedence);
        self
    }
}

impl MessageBody for SlicedBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.rest.len() as u64)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.rest.is_empty() {
            return Poll::Ready(None);
        }
        ready!(this.yielding.poll_turn(cx));
        Poll::Ready(next_slice(&mut this.rest).map(Ok))
    }

    /// Small bodies go out whole, as any `Bytes` body does.
    fn try_into_bytes(self) -> Result<Bytes, Self> {
        if self.rest.len() <= SLICE {
            Ok(self.rest)
        } else {
            Err(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::to_bytes;

    use super::*;

    #[actix_web::test]
    async fn slices_add_up_to_the_body_and_its_length_is_declared() {
        let body = Bytes::from((0..100_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let sliced = SlicedBody::new(body.clone());
        assert_eq!(sliced.size(), BodySize::Sized(100_000));
        let Err(sliced) = sliced.try_into_bytes() else {
            panic!("a large body is sliced");
        };
        assert_eq!(to_bytes(sliced).await.unwrap(), body);
    }

    #[actix_web::test]
    async fn small_bodies_go_out_whole() {
        let body = Bytes::from_static(b"{\"orders\":[]}");
        let whole = SlicedBody::new(body.clone()).try_into_bytes();
        assert_eq!(whole.ok(), Some(body));
    }
}
