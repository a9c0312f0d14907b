//! The draining state of a graceful stop, shared by the process that stops
//! the server and every connection it serves.
//!
//! Once draining, every response says `Connection: close` and `/readyz`
//! answers 503, so that a client (or a load balancer) sends no further
//! request on a connection the server is about to close, and takes the
//! instance out of rotation. The count of open connections tells the
//! stopper when the last one has gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;

#[derive(Debug, Default)]
struct State {
    draining: AtomicBool,
    open: AtomicUsize,
}

/// A handle on the draining state; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Drain(Arc<State>);

impl Drain {
    /// From now on every response closes its connection.
    pub fn start(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::SeqCst)
    }

    /// Client connections the server holds open (idle ones included).
    pub fn open_connections(&self) -> usize {
        self.0.open.load(Ordering::SeqCst)
    }

    /// Counts one connection for as long as the guard lives (actix keeps it
    /// in the connection's data, dropped when the connection ends).
    pub(crate) fn connection(&self) -> OpenConnection {
        self.0.open.fetch_add(1, Ordering::SeqCst);
        OpenConnection(self.0.clone())
    }
}

pub(crate) struct OpenConnection(Arc<State>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Middleware: while draining, the response closes its connection.
pub(crate) fn close_while_draining<S, B>(
    drain: Drain,
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    let response = service.call(req);
    async move {
        let mut response = response.await?;
        if drain.is_draining() {
            response
                .response_mut()
                .head_mut()
                .set_connection_type(ConnectionType::Close);
        }
        Ok(response)
    }
}
