//! What the bench's connections send: one request kind over and over, the
//! original's mixed scenario (without waits, or with them through
//! [`Paced`]), a walk through keyset pages, or a writer's create, ship and
//! delete cycle.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use domain::{OrderId, OrderStatus};
use hyper::Method;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::bench::driver::{Call, Conversation};
use crate::contract::{self, NewOrderBody};

pub const HEALTHZ: &str = "GET /healthz";
pub const LIST: &str = "GET /orders";
pub const LIST_GZIP: &str = "GET /orders, gzip";
pub const DETAIL: &str = "GET /orders/{id}";
pub const DETAIL_BROWSER: &str = "GET /orders/{id}, browser";
/// The ceiling's fixed bytes ([`ceiling::BODY`]).
pub const CEILING_BODY: &str = "GET /body";
/// What browsers send: every order goes out as it is (under 1 KiB).
const BROWSER_ENCODINGS: &str = "gzip, deflate, br, zstd";
pub const CREATE: &str = "POST /orders";
pub const STATUS: &str = "PATCH /orders/{id}/status";
pub const DELETE: &str = "DELETE /orders/{id}";
pub const PAGE: &str = "GET /orders?limit=50";

fn rng(connection: usize) -> SmallRng {
    SmallRng::seed_from_u64(0x5eed ^ connection as u64)
}

fn create_call(rng: &mut SmallRng) -> Call {
    Call::get(CREATE, "/orders").with_body(Method::POST, NewOrderBody::random(rng), 201)
}

fn status_call(id: OrderId, status: OrderStatus) -> Call {
    Call::get(STATUS, format!("/orders/{id}/status")).with_body(
        Method::PATCH,
        serde_json::json!({ "status": status.as_str() }),
        200,
    )
}

fn delete_call(id: OrderId) -> Call {
    let mut call = Call::get(DELETE, format!("/orders/{id}"));
    call.method = Method::DELETE;
    call
}

/// The same kind of request over and over; for detail and status changes
/// on a random order of the seeded ones.
pub struct Repeat {
    kind: &'static str,
    ids: Arc<Vec<OrderId>>,
    rng: SmallRng,
}

impl Repeat {
    pub fn new(kind: &'static str, ids: Arc<Vec<OrderId>>, connection: usize) -> Self {
        Self {
            kind,
            ids,
            rng: rng(connection),
        }
    }

    fn some_id(&mut self) -> OrderId {
        self.ids[self.rng.random_range(0..self.ids.len())]
    }
}

impl Conversation for Repeat {
    fn next_call(&mut self) -> Call {
        match self.kind {
            HEALTHZ => Call::get(HEALTHZ, "/healthz"),
            LIST => Call::get(LIST, "/orders"),
            LIST_GZIP => Call::get(LIST_GZIP, "/orders").accepting("gzip, deflate"),
            DETAIL => {
                let id = self.some_id();
                Call::get(DETAIL, format!("/orders/{id}"))
            }
            DETAIL_BROWSER => {
                let id = self.some_id();
                Call::get(DETAIL_BROWSER, format!("/orders/{id}")).accepting(BROWSER_ENCODINGS)
            }
            CEILING_BODY => Call::get(CEILING_BODY, ceiling::BODY),
            CREATE => create_call(&mut self.rng),
            STATUS => {
                let id = self.some_id();
                let status = OrderStatus::ALL[self.rng.random_range(0..OrderStatus::ALL.len())];
                status_call(id, status)
            }
            other => unreachable!("no repeat workload {other}"),
        }
    }

    fn reads_body(&self, _call: &Call) -> bool {
        false
    }
}

/// The original's mixed Locust user with its waits removed: list 5,
/// create 2, open an own order 3, complete an own received order 1, delete
/// an own order 1. A task with no own order to act on is skipped, as the
/// Locust user skipped it.
pub struct Mixed {
    rng: SmallRng,
    own: Vec<(OrderId, OrderStatus)>,
}

impl Mixed {
    pub fn new(connection: usize) -> Self {
        Self {
            rng: rng(connection),
            own: Vec::new(),
        }
    }
}

const MIXED_WEIGHTS: [(&str, u32); 5] = [
    (LIST, 5),
    (CREATE, 2),
    (DETAIL, 3),
    (STATUS, 1),
    (DELETE, 1),
];

impl Conversation for Mixed {
    fn next_call(&mut self) -> Call {
        let total: u32 = MIXED_WEIGHTS.iter().map(|(_, weight)| weight).sum();
        loop {
            let mut roll = self.rng.random_range(0..total);
            let task = MIXED_WEIGHTS
                .iter()
                .find(|(_, weight)| {
                    let hit = roll < *weight;
                    roll = roll.saturating_sub(*weight);
                    hit
                })
                .map(|(task, _)| *task)
                .expect("the roll is below the total");
            let received: Vec<OrderId> = self
                .own
                .iter()
                .filter(|(_, status)| *status == OrderStatus::Received)
                .map(|(id, _)| *id)
                .collect();
            let any_own = (!self.own.is_empty())
                .then(|| self.own[self.rng.random_range(0..self.own.len())].0);
            match task {
                LIST => return Call::get(LIST, "/orders"),
                CREATE => return create_call(&mut self.rng),
                DETAIL => {
                    if let Some(id) = any_own {
                        return Call::get(DETAIL, format!("/orders/{id}"));
                    }
                }
                STATUS => {
                    if !received.is_empty() {
                        let id = received[self.rng.random_range(0..received.len())];
                        return status_call(id, OrderStatus::Completed);
                    }
                }
                _ => {
                    if let Some(id) = any_own {
                        return delete_call(id);
                    }
                }
            }
        }
    }

    fn on_response(&mut self, call: &Call, body: &Bytes) -> bool {
        match call.kind {
            CREATE => match contract::order(body) {
                Ok(order) => {
                    self.own.push((order.id, order.status));
                    true
                }
                Err(_) => false,
            },
            STATUS => match contract::order(body) {
                Ok(order) => {
                    if let Some(own) = self.own.iter_mut().find(|(id, _)| *id == order.id) {
                        own.1 = order.status;
                    }
                    order.status == OrderStatus::Completed
                }
                Err(_) => false,
            },
            DELETE => {
                let id = call.path.trim_start_matches("/orders/");
                self.own.retain(|(own, _)| own.to_string() != id);
                true
            }
            _ => true,
        }
    }

    /// The list is read to its end but never held: at 1,000,000 orders it
    /// is 320 MB, for each user at once.
    fn reads_body(&self, call: &Call) -> bool {
        call.kind != LIST
    }
}

/// A conversation with a user's think time: a random wait between `min`
/// and `max` before each request, the first one too, so that users
/// started together spread out as the original's Locust users did.
pub struct Paced<C> {
    inner: C,
    rng: SmallRng,
    min: Duration,
    max: Duration,
}

impl<C> Paced<C> {
    pub fn new(inner: C, connection: usize, min: Duration, max: Duration) -> Self {
        Self {
            inner,
            rng: SmallRng::seed_from_u64(0x9a_ced ^ connection as u64),
            min,
            max: max.max(min),
        }
    }
}

impl<C: Conversation> Conversation for Paced<C> {
    fn next_call(&mut self) -> Call {
        self.inner.next_call()
    }

    fn on_response(&mut self, call: &Call, body: &Bytes) -> bool {
        self.inner.on_response(call, body)
    }

    fn reads_body(&self, call: &Call) -> bool {
        self.inner.reads_body(call)
    }

    fn wait_before(&mut self) -> Duration {
        Duration::from_secs_f64(
            self.rng
                .random_range(self.min.as_secs_f64()..=self.max.as_secs_f64()),
        )
    }
}

/// A writer: creates an order, sets it to `shipped`, deletes it, and round
/// again, so that the table keeps its size. A failed step moves on all the
/// same (a failed create starts over), so one failure is one error.
pub struct WriteCycle {
    rng: SmallRng,
    next: WriteStep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteStep {
    Create,
    Ship(OrderId),
    Delete(OrderId),
}

impl WriteCycle {
    pub fn new(connection: usize) -> Self {
        Self {
            rng: rng(connection),
            next: WriteStep::Create,
        }
    }
}

impl Conversation for WriteCycle {
    fn next_call(&mut self) -> Call {
        match self.next {
            WriteStep::Create => create_call(&mut self.rng),
            WriteStep::Ship(id) => {
                self.next = WriteStep::Delete(id);
                status_call(id, OrderStatus::Shipped)
            }
            WriteStep::Delete(id) => {
                self.next = WriteStep::Create;
                delete_call(id)
            }
        }
    }

    fn on_response(&mut self, call: &Call, body: &Bytes) -> bool {
        match call.kind {
            CREATE => match contract::order(body) {
                Ok(order) => {
                    self.next = WriteStep::Ship(order.id);
                    true
                }
                Err(_) => false,
            },
            STATUS => contract::order(body).is_ok_and(|order| order.status == OrderStatus::Shipped),
            _ => true,
        }
    }
}

/// Connections of two kinds in one measurement, such as writers beside
/// readers; their request kinds keep them apart in the results.
pub enum OneOf<A, B> {
    First(A),
    Second(B),
}

impl<A: Conversation, B: Conversation> Conversation for OneOf<A, B> {
    fn next_call(&mut self) -> Call {
        match self {
            Self::First(a) => a.next_call(),
            Self::Second(b) => b.next_call(),
        }
    }

    fn on_response(&mut self, call: &Call, body: &Bytes) -> bool {
        match self {
            Self::First(a) => a.on_response(call, body),
            Self::Second(b) => b.on_response(call, body),
        }
    }

    fn reads_body(&self, call: &Call) -> bool {
        match self {
            Self::First(a) => a.reads_body(call),
            Self::Second(b) => b.reads_body(call),
        }
    }

    fn wait_before(&mut self) -> Duration {
        match self {
            Self::First(a) => a.wait_before(),
            Self::Second(b) => b.wait_before(),
        }
    }
}

/// Walks the keyset pages of `GET /orders?limit=50`, newest first, from
/// the first page to the last and round again: deep pages must cost what
/// the first one does.
pub struct PageWalk {
    next_cursor: Option<String>,
}

pub const PAGE_LIMIT: usize = 50;

impl PageWalk {
    pub fn new() -> Self {
        Self { next_cursor: None }
    }
}

impl Default for PageWalk {
    fn default() -> Self {
        Self::new()
    }
}

impl Conversation for PageWalk {
    fn next_call(&mut self) -> Call {
        let path = match &self.next_cursor {
            Some(cursor) => format!("/orders?limit={PAGE_LIMIT}&cursor={cursor}"),
            None => format!("/orders?limit={PAGE_LIMIT}"),
        };
        Call::get(PAGE, path)
    }

    fn on_response(&mut self, _call: &Call, body: &Bytes) -> bool {
        match contract::page(body, PAGE_LIMIT) {
            Ok((_, next)) => {
                self.next_cursor = next;
                true
            }
            Err(_) => {
                self.next_cursor = None;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_skips_own_tasks_until_it_has_orders_then_tracks_them() {
        let mut user = Mixed::new(1);
        for _ in 0..50 {
            let call = user.next_call();
            assert!([LIST, CREATE].contains(&call.kind), "{}", call.kind);
        }
        let id = OrderId::new();
        let created = format!(
            r#"{{"order_id":"{id}","customer_name":"A","status":"received","items":[{{"name":"Pen","quantity":1}}],"created_at":"x","updated_at":"x","version":1}}"#
        );
        assert!(user.on_response(&create_call(&mut rng(0)), &Bytes::from(created)));
        let kinds: Vec<&str> = (0..200).map(|_| user.next_call().kind).collect();
        for kind in [LIST, CREATE, DETAIL, STATUS, DELETE] {
            assert!(kinds.contains(&kind), "{kind} never chosen");
        }
        let delete = Call {
            method: Method::DELETE,
            ..Call::get(DELETE, format!("/orders/{id}"))
        };
        assert!(user.on_response(&delete, &Bytes::new()));
        assert!(user.own.is_empty());
    }

    #[test]
    fn write_cycle_creates_ships_and_deletes_its_own_order() {
        let mut writer = WriteCycle::new(0);
        let create = writer.next_call();
        assert_eq!((create.kind, create.method.clone()), (CREATE, Method::POST));
        // A failed create starts over.
        assert!(!writer.on_response(&create, &Bytes::from_static(b"{}")));
        assert_eq!(writer.next_call().kind, CREATE);
        let id = OrderId::new();
        let order = |status: &str| {
            Bytes::from(format!(
                r#"{{"order_id":"{id}","customer_name":"A","status":"{status}","items":[{{"name":"Pen","quantity":1}}],"created_at":"x","updated_at":"x","version":1}}"#
            ))
        };
        assert!(writer.on_response(&create, &order("received")));
        let ship = writer.next_call();
        assert_eq!(ship.path, format!("/orders/{id}/status"));
        assert_eq!(ship.body.as_deref(), Some(&br#"{"status":"shipped"}"#[..]));
        assert!(writer.on_response(&ship, &order("shipped")));
        let delete = writer.next_call();
        assert_eq!(
            (delete.kind, delete.method.clone()),
            (DELETE, Method::DELETE)
        );
        assert_eq!(delete.path, format!("/orders/{id}"));
        assert_eq!(writer.next_call().kind, CREATE);
    }

    #[test]
    fn paced_waits_within_its_bounds_and_mixed_never_holds_the_list() {
        let mut user = Paced::new(
            Mixed::new(3),
            3,
            Duration::from_secs(1),
            Duration::from_secs(3),
        );
        for _ in 0..100 {
            let wait = user.wait_before();
            assert!(
                (Duration::from_secs(1)..=Duration::from_secs(3)).contains(&wait),
                "{wait:?}"
            );
        }
        assert!(!user.reads_body(&Call::get(LIST, "/orders")));
        assert!(user.reads_body(&create_call(&mut rng(0))));
    }

    #[test]
    fn page_walk_follows_the_cursor_and_restarts_at_the_end() {
        let mut walk = PageWalk::new();
        let first = walk.next_call();
        assert_eq!(first.path, "/orders?limit=50");
        let body = br#"{"total_orders":0,"orders":[],"next_cursor":"abc"}"#;
        assert!(walk.on_response(&first, &Bytes::from_static(body)));
        let second = walk.next_call();
        assert_eq!(second.path, "/orders?limit=50&cursor=abc");
        let last = br#"{"total_orders":0,"orders":[],"next_cursor":null}"#;
        assert!(walk.on_response(&second, &Bytes::from_static(last)));
        assert_eq!(walk.next_call().path, "/orders?limit=50");
        assert!(!walk.on_response(&second, &Bytes::from_static(b"<html>")));
    }
}
