//! Writes before full lists.
//!
//! Clients pulling the full list flat out (32 MB at 100,000 orders, 320 MB
//! at 1,000,000) keep the workers busy copying list bytes to sockets, on
//! every core; a write then waits for a worker behind those copies, though
//! its own work is a millisecond. The bench measured writes' p99 at 9-10x
//! their p99 without such readers at 100,000 orders, 50x at 1,000,000.
//!
//! So while an order write (`POST`, `PATCH` or `DELETE` under `/orders`)
//! is in flight, list bodies hold their next slice: each waits until no
//! write is in flight, or [`MAX_PAUSE`] at most, and then sends one slice
//! (64 KiB) before it looks again, so a steady stream of writes slows lists
//! down but never stops them. A held body holds no connection to the
//! database and no lock, only its socket; what the client already has in
//! its socket buffers still arrives meanwhile.
//!
//! Admin writes (`/admin/seed`, `/admin/reset`) are not counted: a seed of
//! 100,000 orders runs for a second, and lists must not crawl through it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use tokio::sync::Notify;

/// The longest a list body waits for writes before sending its next slice.
/// Writes take 1-10 ms here; a list of 320 MB is about 5,000 slices, so
/// under writes that never stop it still moves at 64 KiB per 50 ms.
pub const MAX_PAUSE: Duration = Duration::from_millis(50);

/// The count of order writes in flight, shared by every worker.
#[derive(Debug, Clone)]
pub struct Precedence(Arc<Writes>);

#[derive(Debug)]
struct Writes {
    in_flight: AtomicUsize,
    /// Woken when the count falls to zero.
    none_left: Notify,
    max_pause: Duration,
}

impl Default for Precedence {
    fn default() -> Self {
        Self::with_max_pause(MAX_PAUSE)
    }
}

/// One write in flight, for as long as it lives.
#[derive(Debug)]
pub struct WriteInFlight(Arc<Writes>);

impl Drop for WriteInFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}

/// A list body's wait for the writes in flight when it began.
pub type Pause = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Precedence {
    fn with_max_pause(max_pause: Duration) -> Self {
        Self(Arc::new(Writes {
            in_flight: AtomicUsize::new(0),
            none_left: Notify::new(),
            max_pause,
        }))
    }

    pub fn write(&self) -> WriteInFlight {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        WriteInFlight(Arc::clone(&self.0))
    }

    pub fn writes_in_flight(&self) -> usize {
        self.0.in_flight.load(Ordering::Acquire)
    }

    /// `None` when no write is in flight, else the wait to poll before the
    /// next slice: it ends when the last of them ends, or after
    /// [`MAX_PAUSE`].
    pub fn pause(&self) -> Option<Pause> {
        if self.writes_in_flight() == 0 {
            return None;
        }
        let writes = Arc::clone(&self.0);
        Some(Box::pin(async move {
            let none_left = writes.none_left.notified();
            tokio::pin!(none_left);
            // Registered before the count is read again, so a last write
            // that ends in between still wakes this wait.
            none_left.as_mut().enable();
            if writes.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            let _ = tokio::time::timeout(writes.max_pause, none_left).await;
        }))
    }
}

/// Whether a request is an order write, the kind lists make way for.
fn is_order_write(req: &ServiceRequest) -> bool {
    let method = req.method();
    (method == Method::POST || method == Method::PATCH || method == Method::DELETE)
        && req.path().starts_with("/orders")
}

/// Counts an order write in flight from the moment its head is read until
/// its response is ready.
pub(crate) fn writes_first<S, B>(
    precedence: &Precedence,
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    let in_flight = is_order_write(&req).then(|| precedence.write());
    let response = service.call(req);
    async move {
        let response = response.await;
        drop(in_flight);
        response
    }
}

/// A body's place in line behind writes: polled before each slice. The
/// default yields to nothing.
#[derive(Default)]
pub(crate) struct Yielding {
    precedence: Option<Precedence>,
    pause: Option<Pause>,
}

impl Yielding {
    pub(crate) fn new(precedence: Precedence) -> Self {
        Self {
            precedence: Some(precedence),
            pause: None,
        }
    }

    /// Ready when the next slice may go out. The slice after a pause goes
    /// out whatever the writes (a pause is begun only on the next call),
    /// so that a list always moves.
    pub(crate) fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.pause.is_none() {
            self.pause = self.precedence.as_ref().and_then(Precedence::pause);
        }
        let Some(pause) = self.pause.as_mut() else {
            return Poll::Ready(());
        };
        let turn = pause.as_mut().poll(cx);
        if turn.is_ready() {
            self.pause = None;
        }
        turn
    }
}

#[cfg(test)]
mod tests {
    use futures::future::poll_fn;

    use super::*;

    fn poll_once(yielding: &mut Yielding) -> Poll<()> {
        let waker = futures::task::noop_waker();
        yielding.poll_turn(&mut Context::from_waker(&waker))
    }

    #[test]
    fn with_no_write_in_flight_a_body_never_waits() {
        let mut yielding = Yielding::new(Precedence::default());
        for _ in 0..3 {
            assert_eq!(poll_once(&mut yielding), Poll::Ready(()));
        }
    }

    #[tokio::test]
    async fn a_body_waits_for_a_write_and_goes_on_when_it_ends() {
        // A pause longer than any test: the body can only go on because
        // the write ended.
        let precedence = Precedence::with_max_pause(Duration::from_secs(3600));
        let mut yielding = Yielding::new(precedence.clone());
        let write = precedence.write();
        assert_eq!(poll_once(&mut yielding), Poll::Pending);
        assert_eq!(
            poll_once(&mut yielding),
            Poll::Pending,
            "the write is still in flight"
        );
        let resumed = tokio::spawn(async move { poll_fn(|cx| yielding.poll_turn(cx)).await });
        tokio::task::yield_now().await;
        drop(write);
        tokio::time::timeout(Duration::from_secs(60), resumed)
            .await
            .expect("the body goes on once the write has ended")
            .unwrap();
        assert_eq!(precedence.writes_in_flight(), 0);
    }

    #[tokio::test]
    async fn a_write_that_ends_while_a_pause_begins_is_not_missed() {
        let precedence = Precedence::with_max_pause(Duration::from_secs(3600));
        for _ in 0..1_000 {
            let write = precedence.write();
            let mut yielding = Yielding::new(precedence.clone());
            let ender = std::thread::spawn(move || drop(write));
            let turn = poll_fn(|cx| yielding.poll_turn(cx));
            tokio::time::timeout(Duration::from_secs(60), turn)
                .await
                .expect("woken by the write's end wherever it fell");
            ender.join().unwrap();
        }
    }

    #[tokio::test]
    async fn under_writes_that_never_end_a_body_still_sends_a_slice_per_pause() {
        let precedence = Precedence::with_max_pause(Duration::from_millis(1));
        let _write = precedence.write();
        let mut yielding = Yielding::new(precedence.clone());
        for _ in 0..3 {
            assert_eq!(
                poll_once(&mut yielding),
                Poll::Pending,
                "each slice waits first"
            );
            tokio::time::timeout(
                Duration::from_secs(60),
                poll_fn(|cx| yielding.poll_turn(cx)),
            )
            .await
            .expect("the pause ends by itself");
        }
    }

    #[actix_web::test]
    async fn only_order_writes_count() {
        let precedence = Precedence::default();
        let app = actix_web::test::init_service(
            actix_web::App::new()
                .default_service(actix_web::web::to({
                    let precedence = precedence.clone();
                    move || {
                        let in_flight = precedence.writes_in_flight();
                        async move { actix_web::HttpResponse::Ok().body(in_flight.to_string()) }
                    }
                }))
                .wrap_fn({
                    let precedence = precedence.clone();
                    move |req, service| writes_first(&precedence, req, service)
                }),
        )
        .await;
        for (method, path, counted) in [
            (Method::POST, "/orders", "1"),
            (Method::PATCH, "/orders/x/status", "1"),
            (Method::DELETE, "/orders/x", "1"),
            (Method::GET, "/orders", "0"),
            (Method::GET, "/orders/x", "0"),
            (Method::POST, "/admin/seed", "0"),
        ] {
            let req = actix_web::test::TestRequest::default()
                .method(method.clone())
                .uri(path)
                .to_request();
            let body = actix_web::test::call_and_read_body(&app, req).await;
            assert_eq!(body, counted, "{method} {path}");
        }
        assert_eq!(
            precedence.writes_in_flight(),
            0,
            "each write's count ended with it"
        );
    }
}
