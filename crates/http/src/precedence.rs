//! Every other request before full lists.
//!
//! Clients pulling the full list flat out (32 MB at 100,000 orders, 320 MB
//! at 1,000,000) keep the workers busy copying list bytes to sockets, on
//! every core; a write or a single order's read then waits for a worker
//! behind those copies, though its own work is a millisecond. The bench
//! measured writes' p99 at 9-10x their p99 without such readers at 100,000
//! orders, 50x at 1,000,000.
//!
//! So while any other request of the API is in flight, full-list bodies
//! hold their next slice: each waits until none is, or [`MAX_PAUSE`] at
//! most, and then sends one slice (64 KiB) before it looks again, so a
//! steady stream of requests slows lists down but never stops them. A held
//! body holds no connection to the database and no lock, only its socket;
//! what the client already has in its socket buffers still arrives
//! meanwhile.
//!
//! Not counted: full lists themselves (`GET /orders` without `limit` or
//! `cursor`, whatever its `status`), which would otherwise wait for each
//! other, and the admin endpoints: a seed of 100,000 orders runs for a
//! second, and lists must not crawl through it.

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

/// The longest a list body waits before sending its next slice. Under
/// requests that never stop, a list still moves at 64 KiB per 10 ms
/// (6.5 MB/s: a 32 MB list in 5 s), and eight such lists cost a few
/// percent of a core. With 50 ms, writes beside flat-out readers were as
/// fast as alone, but a 32 MB list took 10 s or more under them.
pub const MAX_PAUSE: Duration = Duration::from_millis(10);

/// The count of requests in flight that lists make way for, shared by
/// every worker.
#[derive(Debug, Clone)]
pub struct Precedence(Arc<Requests>);

#[derive(Debug)]
struct Requests {
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

/// One request in flight, for as long as it lives.
#[derive(Debug)]
pub struct InFlight(Arc<Requests>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}

/// A list body's wait for the requests in flight when it began.
pub type Pause = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Precedence {
    fn with_max_pause(max_pause: Duration) -> Self {
        Self(Arc::new(Requests {
            in_flight: AtomicUsize::new(0),
            none_left: Notify::new(),
            max_pause,
        }))
    }

    pub fn enter(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(&self.0))
    }

    pub fn in_flight(&self) -> usize {
        self.0.in_flight.load(Ordering::Acquire)
    }

    /// `None` when no request is in flight, else the wait to poll before
    /// the next slice: it ends when the last of them ends, or after
    /// [`MAX_PAUSE`].
    pub fn pause(&self) -> Option<Pause> {
        if self.in_flight() == 0 {
            return None;
        }
        let requests = Arc::clone(&self.0);
        Some(Box::pin(async move {
            let none_left = requests.none_left.notified();
            tokio::pin!(none_left);
            // Registered before the count is read again, so a last request
            // that ends in between still wakes this wait.
            none_left.as_mut().enable();
            if requests.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            let _ = tokio::time::timeout(requests.max_pause, none_left).await;
        }))
    }
}

impl Precedence {
    /// Waits as a slice would: until no request is in flight, or
    /// [`MAX_PAUSE`]. A full list calls it before it begins: at 1,000
    /// orders a list is five slices, and its cost is in the request, not
    /// the body.
    pub async fn make_way(&self) {
        if let Some(pause) = self.pause() {
            pause.await;
        }
    }
}

/// Whether lists make way for a request: all but full lists and admin.
fn goes_first(req: &ServiceRequest) -> bool {
    let path = req.path();
    if path.starts_with("/admin") {
        return false;
    }
    let full_list = req.method() == Method::GET
        && path == "/orders"
        && !form_urlencoded::parse(req.query_string().as_bytes())
            .any(|(name, _)| name == "limit" || name == "cursor");
    !full_list
}

/// Counts a request that lists make way for from the moment its head is
/// read until its response is ready (a body it sends, small, is not
/// waited for).
pub(crate) fn others_first<S, B>(
    precedence: &Precedence,
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    let in_flight = goes_first(&req).then(|| precedence.enter());
    let response = service.call(req);
    async move {
        let response = response.await;
        drop(in_flight);
        response
    }
}

/// Slices a body sends in one go before it lets its worker's other
/// connections run: 256 KiB. Without it a body polled by a fast client
/// goes on until tokio's budget for its socket runs out (128 writes,
/// several MB), and with a few such lists on a worker a new request waited
/// tens of milliseconds at each step (head, body, answer) before it was
/// even seen as in flight: at 1,000,000 orders the mixed scenario's writes
/// and single reads had p99s of 60-160 ms. A turn is one round of the
/// worker's run queue (see [`Yielding::poll_turn`]), so a new request waits
/// for at most one turn of each list on its worker.
pub const SLICES_PER_TURN: u32 = 4;

/// A body's place in line behind other requests: polled before each
/// slice. The default yields to no request, only to its worker's other
/// connections.
#[derive(Default)]
pub(crate) struct Yielding {
    precedence: Option<Precedence>,
    pause: Option<Pause>,
    /// Slices sent since the body last let its worker go.
    sent: u32,
    /// The body's turn given up, until tokio polls it again.
    yielded: Option<Pause>,
}

impl Yielding {
    pub(crate) fn new(precedence: Precedence) -> Self {
        Self {
            precedence: Some(precedence),
            pause: None,
            sent: 0,
            yielded: None,
        }
    }

    /// Ready when the next slice may go out. The slice after a pause goes
    /// out whatever the requests (a pause is begun only on the next call),
    /// so that a list always moves.
    ///
    /// A body that has had its turn yields with `tokio::task::yield_now`,
    /// not by waking itself: tokio then polls it again only once the
    /// worker's run queue is empty and its sockets have been polled. A body
    /// that woke itself went straight back into the queue, and an actix
    /// worker (a `LocalSet`) looks at its sockets only every 61 polls, so
    /// with a dozen lists on a worker a new request was read after some 60
    /// turns of list copies, not one per list.
    pub(crate) fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(yielded) = self.yielded.as_mut() {
            if yielded.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.yielded = None;
            self.sent = 0;
        }
        if self.pause.is_none() {
            self.pause = self.precedence.as_ref().and_then(Precedence::pause);
        }
        let Some(pause) = self.pause.as_mut() else {
            if self.sent >= SLICES_PER_TURN {
                self.yielded = Some(Box::pin(tokio::task::yield_now()));
                return self.poll_turn(cx);
            }
            self.sent += 1;
            return Poll::Ready(());
        };
        let turn = pause.as_mut().poll(cx);
        if turn.is_ready() {
            self.pause = None;
            self.sent = 1;
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
    fn with_no_request_in_flight_a_body_only_lets_its_worker_go_now_and_then() {
        let mut yielding = Yielding::new(Precedence::default());
        let woken = std::sync::Arc::new(WakeCount::default());
        let waker = std::task::Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        for _ in 0..3 {
            for _ in 0..SLICES_PER_TURN {
                assert_eq!(yielding.poll_turn(&mut cx), Poll::Ready(()));
            }
            assert_eq!(yielding.poll_turn(&mut cx), Poll::Pending);
        }
        assert_eq!(woken.0.load(Ordering::SeqCst), 3, "each yield wakes itself");
    }

    /// As an actix worker runs them (a current-thread runtime and a
    /// `LocalSet`): bodies that always have a slice ready, and a listener.
    /// Each time a connection arrives, count the turns the bodies take
    /// before it is accepted. A body that woke itself at each turn left the
    /// sockets unpolled for up to 61 turns (the `LocalSet`'s tick); a yield
    /// leaves them for at most a round of the bodies.
    #[actix_web::test]
    async fn a_body_that_had_its_turn_lets_its_worker_read_its_sockets() {
        use std::cell::Cell;
        use std::rc::Rc;
        use std::sync::atomic::AtomicBool;

        const BODIES: u64 = 8;
        const CONNECTIONS: usize = 20;
        let connected = Arc::new(AtomicBool::new(false));
        let turns_since = Rc::new(Cell::new(0u64));
        for _ in 0..BODIES {
            let connected = Arc::clone(&connected);
            let turns_since = Rc::clone(&turns_since);
            actix_web::rt::spawn(async move {
                let mut yielding = Yielding::default();
                loop {
                    poll_fn(|cx| {
                        let turn = yielding.poll_turn(cx);
                        if turn.is_pending() && connected.load(Ordering::SeqCst) {
                            turns_since.set(turns_since.get() + 1);
                        }
                        turn
                    })
                    .await;
                }
            });
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (go, went) = std::sync::mpsc::channel::<()>();
        let connector = std::thread::spawn({
            let connected = Arc::clone(&connected);
            move || {
                let mut streams = Vec::new();
                while went.recv().is_ok() {
                    std::thread::sleep(Duration::from_millis(1));
                    streams.push(std::net::TcpStream::connect(addr).unwrap());
                    connected.store(true, Ordering::SeqCst);
                }
            }
        });
        let mut most = 0;
        for _ in 0..CONNECTIONS {
            connected.store(false, Ordering::SeqCst);
            turns_since.set(0);
            go.send(()).unwrap();
            let _accepted = listener.accept().await.unwrap();
            most = most.max(turns_since.get());
        }
        drop(go);
        connector.join().unwrap();
        assert!(
            most <= 2 * BODIES,
            "a connection waited {most} turns of {BODIES} bodies before it was accepted"
        );
    }

    #[derive(Default)]
    struct WakeCount(AtomicUsize);

    impl std::task::Wake for WakeCount {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_body_waits_for_a_request_and_goes_on_when_it_ends() {
        // A pause longer than any test: the body can only go on because
        // the request ended.
        let precedence = Precedence::with_max_pause(Duration::from_secs(3600));
        let mut yielding = Yielding::new(precedence.clone());
        let request = precedence.enter();
        assert_eq!(poll_once(&mut yielding), Poll::Pending);
        assert_eq!(
            poll_once(&mut yielding),
            Poll::Pending,
            "the request is still in flight"
        );
        let resumed = tokio::spawn(async move { poll_fn(|cx| yielding.poll_turn(cx)).await });
        tokio::task::yield_now().await;
        drop(request);
        tokio::time::timeout(Duration::from_secs(60), resumed)
            .await
            .expect("the body goes on once the request has ended")
            .unwrap();
        assert_eq!(precedence.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_request_that_ends_while_a_pause_begins_is_not_missed() {
        let precedence = Precedence::with_max_pause(Duration::from_secs(3600));
        for _ in 0..1_000 {
            let request = precedence.enter();
            let mut yielding = Yielding::new(precedence.clone());
            let ender = std::thread::spawn(move || drop(request));
            let turn = poll_fn(|cx| yielding.poll_turn(cx));
            tokio::time::timeout(Duration::from_secs(60), turn)
                .await
                .expect("woken by the request's end wherever it fell");
            ender.join().unwrap();
        }
    }

    #[tokio::test]
    async fn under_requests_that_never_end_a_body_still_sends_a_slice_per_pause() {
        let precedence = Precedence::with_max_pause(Duration::from_millis(1));
        let _request = precedence.enter();
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

    #[tokio::test]
    async fn a_list_begins_when_the_requests_in_flight_end() {
        let idle = Precedence::with_max_pause(Duration::from_secs(3600));
        tokio::time::timeout(Duration::from_secs(60), idle.make_way())
            .await
            .expect("nothing in flight: no wait");
        let busy = Precedence::with_max_pause(Duration::from_secs(3600));
        let request = busy.enter();
        let mut waiting = Box::pin(busy.make_way());
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        drop(request);
        tokio::time::timeout(Duration::from_secs(60), waiting)
            .await
            .expect("goes on once the request has ended");
    }

    #[actix_web::test]
    async fn all_but_full_lists_and_admin_count() {
        let precedence = Precedence::default();
        let app = actix_web::test::init_service(
            actix_web::App::new()
                .default_service(actix_web::web::to({
                    let precedence = precedence.clone();
                    move || {
                        let in_flight = precedence.in_flight();
                        async move { actix_web::HttpResponse::Ok().body(in_flight.to_string()) }
                    }
                }))
                .wrap_fn({
                    let precedence = precedence.clone();
                    move |req, service| others_first(&precedence, req, service)
                }),
        )
        .await;
        for (method, path, counted) in [
            (Method::POST, "/orders", "1"),
            (Method::PATCH, "/orders/x/status", "1"),
            (Method::DELETE, "/orders/x", "1"),
            (Method::GET, "/orders/x", "1"),
            (Method::GET, "/orders?limit=10", "1"),
            (Method::GET, "/orders?status=shipped&cursor=00", "1"),
            (Method::GET, "/health", "1"),
            (Method::GET, "/orders", "0"),
            (Method::GET, "/orders?status=shipped", "0"),
            (Method::POST, "/admin/seed", "0"),
            (Method::POST, "/admin/reset", "0"),
        ] {
            let req = actix_web::test::TestRequest::default()
                .method(method.clone())
                .uri(path)
                .to_request();
            let body = actix_web::test::call_and_read_body(&app, req).await;
            assert_eq!(body, counted, "{method} {path}");
        }
        assert_eq!(
            precedence.in_flight(),
            0,
            "each request's count ended with it"
        );
    }
}
