//! The bench's load generator: N keep-alive HTTP/1.1 connections, each
//! sending its next request as soon as the last response is read (no
//! waits), all on ONE thread.
//!
//! Why not goose here: on a 2-core machine the generator competes with the
//! server for CPU, so whatever the generator spends per request is taken
//! from the server. Goose sends every request's metric through a channel to
//! an aggregator and runs users on a multi-thread runtime; a bare hyper
//! connection on a current-thread runtime costs a few microseconds per
//! request and can never take more than one core, so the server always has
//! at least one (wrk, which measured the original, works the same way).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One request a conversation wants sent.
#[derive(Debug, Clone)]
pub struct Call {
    /// The request kind results are grouped by, such as `GET /orders/{id}`.
    pub kind: &'static str,
    pub method: Method,
    pub path: String,
    pub body: Option<Bytes>,
    pub expected_status: u16,
    /// Sent as `Accept-Encoding`; none by default.
    pub accept_encoding: Option<&'static str>,
    /// An API key, sent as `Authorization: Bearer <key>`; none by default.
    pub bearer: Option<std::sync::Arc<str>>,
}

impl Call {
    pub fn get(kind: &'static str, path: impl Into<String>) -> Self {
        Self {
            kind,
            method: Method::GET,
            path: path.into(),
            body: None,
            expected_status: 200,
            accept_encoding: None,
            bearer: None,
        }
    }

    pub fn with_bearer(mut self, key: std::sync::Arc<str>) -> Self {
        self.bearer = Some(key);
        self
    }

    pub fn accepting(mut self, encoding: &'static str) -> Self {
        self.accept_encoding = Some(encoding);
        self
    }

    pub fn with_body(mut self, method: Method, body: impl serde::Serialize, expected: u16) -> Self {
        self.method = method;
        self.body = Some(Bytes::from(
            serde_json::to_vec(&body).expect("request bodies always serialise"),
        ));
        self.expected_status = expected;
        self
    }
}

/// What one connection sends, one request after another: a fixed request,
/// or a user of a scenario that remembers what it created.
pub trait Conversation: Send + 'static {
    fn next_call(&mut self) -> Call;

    /// Sees each response with the expected status; false when the body
    /// is not what the conversation needs (counted as an error).
    fn on_response(&mut self, call: &Call, body: &Bytes) -> bool {
        let _ = (call, body);
        true
    }

    /// Whether `on_response` looks at the body of `call`'s response. When
    /// it does not, the body is still read to its end (and its length
    /// checked by hyper) but not joined into one buffer: a copy of 230 KB
    /// per cached list would cost the one-threaded generator as much as a
    /// third of its time, measuring the generator instead of the server.
    fn reads_body(&self, call: &Call) -> bool {
        let _ = call;
        true
    }

    /// How long to wait before the next request (a user's think time); no
    /// wait by default.
    fn wait_before(&mut self) -> Duration {
        Duration::ZERO
    }
}

/// The measurements of one request kind.
#[derive(Debug, Clone, Default)]
pub struct KindResult {
    pub kind: &'static str,
    /// Microseconds from sending the request to having read the whole body,
    /// of every response, failed or not.
    pub latencies_us: Vec<u32>,
    pub errors: u64,
    /// What went wrong, such as `status 503`, and how often.
    pub error_causes: BTreeMap<String, u64>,
    /// Body bytes received, counted as they arrive.
    pub body_bytes: u64,
}

/// Error causes besides a status.
pub const UNEXPECTED_BODY: &str = "unexpected body";
pub const CONNECTION_ERROR: &str = "connection error";
pub const TIMED_OUT: &str = "timed out";

impl KindResult {
    pub fn add_error(&mut self, cause: String) {
        self.errors += 1;
        *self.error_causes.entry(cause).or_default() += 1;
    }
}

#[derive(Debug, Clone, Default)]
pub struct DriveResult {
    pub elapsed: Duration,
    pub kinds: Vec<KindResult>,
    /// CPU time the generator's thread used; near `elapsed` means the
    /// generator, not the server, was the limit.
    pub generator_cpu: Option<Duration>,
}

impl DriveResult {
    pub fn requests(&self) -> u64 {
        self.kinds.iter().map(|k| k.latencies_us.len() as u64).sum()
    }

    pub fn errors(&self) -> u64 {
        self.kinds.iter().map(|k| k.errors).sum()
    }

    pub fn body_bytes(&self) -> u64 {
        self.kinds.iter().map(|k| k.body_bytes).sum()
    }

    /// The errors by kind and cause, such as
    /// `POST /orders: status 503 x3; GET /orders: timed out x1`; empty
    /// without errors.
    pub fn error_causes(&self) -> String {
        self.kinds
            .iter()
            .filter(|kind| kind.errors > 0)
            .map(|kind| {
                let causes: Vec<String> = kind
                    .error_causes
                    .iter()
                    .map(|(cause, count)| format!("{cause} x{count}"))
                    .collect();
                format!("{}: {}", kind.kind, causes.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The results of request kind `kind` alone, over the same time.
    pub fn only(&self, kind: &str) -> DriveResult {
        DriveResult {
            elapsed: self.elapsed,
            kinds: self
                .kinds
                .iter()
                .filter(|k| k.kind == kind)
                .cloned()
                .collect(),
            generator_cpu: None,
        }
    }

    /// The generator's CPU use, in percent of one core.
    pub fn generator_cpu_percent(&self) -> Option<f64> {
        self.generator_cpu
            .map(|cpu| 100.0 * cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9))
    }

    pub fn requests_per_second(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency `quantile` (0 to 1) of all kinds together, in ms.
    pub fn percentile_ms(&self, quantile: f64) -> f64 {
        let mut all: Vec<u32> = self
            .kinds
            .iter()
            .flat_map(|k| k.latencies_us.iter().copied())
            .collect();
        all.sort_unstable();
        percentile_ms(&all, quantile)
    }

    /// One line per request kind: its share of the requests, p50 and p99;
    /// what a blended row's latency is made of.
    pub fn by_kind(&self) -> String {
        let total = self.requests().max(1) as f64;
        self.kinds
            .iter()
            .map(|kind| {
                let mut sorted = kind.latencies_us.clone();
                sorted.sort_unstable();
                format!(
                    "{} {:.0}% p50 {:.1} ms p99 {:.1} ms",
                    kind.kind,
                    100.0 * sorted.len() as f64 / total,
                    percentile_ms(&sorted, 0.50),
                    percentile_ms(&sorted, 0.99),
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn merge(&mut self, other: DriveResult) {
        for kind in other.kinds {
            match self.kinds.iter_mut().find(|k| k.kind == kind.kind) {
                Some(mine) => {
                    mine.latencies_us.extend(kind.latencies_us);
                    mine.errors += kind.errors;
                    mine.body_bytes += kind.body_bytes;
                    for (cause, count) in kind.error_causes {
                        *mine.error_causes.entry(cause).or_default() += count;
                    }
                }
                None => self.kinds.push(kind),
            }
        }
    }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
pub fn percentile_ms(sorted_us: &[u32], quantile: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (quantile * sorted_us.len() as f64).ceil() as usize;
    f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]) / 1000.0
}

/// Runs `connections` conversations against `addr` for `duration` on a
/// thread of its own with a current-thread runtime, and returns what they
/// measured. A request still running 5 s after `duration` is an error.
pub async fn drive<C, F>(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    make: F,
) -> std::io::Result<DriveResult>
where
    C: Conversation,
    F: Fn(usize) -> C + Send + 'static,
{
    drive_with(addr, connections, duration, None, make).await
}

/// [`drive`] with a time limit per request: with `request_timeout`, each
/// request may take that long from its start (a slow request is slow, not
/// failed), even past the end of `duration`; without, it must end within
/// 5 s of the end.
pub async fn drive_with<C, F>(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    request_timeout: Option<Duration>,
    make: F,
) -> std::io::Result<DriveResult>
where
    C: Conversation,
    F: Fn(usize) -> C + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let cpu_before = thread_cpu_time();
            let started = Instant::now();
            let deadline = tokio::time::Instant::now() + duration;
            let tasks: Vec<_> = (0..connections)
                .map(|index| {
                    tokio::spawn(run_connection(addr, deadline, request_timeout, make(index)))
                })
                .collect();
            let mut result = DriveResult::default();
            for task in tasks {
                result.merge(task.await.map_err(std::io::Error::other)?);
            }
            result.elapsed = started.elapsed();
            result.generator_cpu = thread_cpu_time()
                .zip(cpu_before)
                .map(|(after, before)| after.saturating_sub(before));
            result.kinds.sort_by_key(|k| k.kind);
            Ok(result)
        })
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The calling thread's CPU time so far (Linux: the first field of
/// `/proc/thread-self/schedstat`, in nanoseconds).
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

async fn connect(addr: SocketAddr) -> std::io::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    // The connection task ends when the sender is dropped.
    tokio::spawn(connection);
    Ok(sender)
}

fn request(addr: SocketAddr, call: &Call) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(call.method.clone())
        .uri(call.path.as_str())
        .header(hyper::header::HOST, addr.to_string());
    if call.body.is_some() {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    if let Some(encoding) = call.accept_encoding {
        builder = builder.header(hyper::header::ACCEPT_ENCODING, encoding);
    }
    if let Some(key) = &call.bearer {
        builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {key}"));
    }
    builder
        .body(Full::new(call.body.clone().unwrap_or_default()))
        .expect("a request from valid parts")
}

async fn run_connection<C: Conversation>(
    addr: SocketAddr,
    deadline: tokio::time::Instant,
    request_timeout: Option<Duration>,
    mut conversation: C,
) -> DriveResult {
    let mut result = DriveResult::default();
    let mut sender = None;
    while tokio::time::Instant::now() < deadline {
        let wait = conversation.wait_before();
        if !wait.is_zero() {
            let until = tokio::time::Instant::now() + wait;
            if until >= deadline {
                break;
            }
            tokio::time::sleep_until(until).await;
        }
        let call = conversation.next_call();
        let reads_body = conversation.reads_body(&call);
        let index = match result.kinds.iter().position(|k| k.kind == call.kind) {
            Some(index) => index,
            None => {
                result.kinds.push(KindResult {
                    kind: call.kind,
                    ..KindResult::default()
                });
                result.kinds.len() - 1
            }
        };
        let started = Instant::now();
        let limit = match request_timeout {
            Some(timeout) => tokio::time::Instant::now() + timeout,
            None => deadline + Duration::from_secs(5),
        };
        let mut body_bytes = 0u64;
        let outcome = tokio::time::timeout_at(limit, async {
            if sender.is_none() {
                sender = Some(connect(addr).await?);
            }
            let live = sender.as_mut().expect("connected above");
            let response = live
                .send_request(request(addr, &call))
                .await
                .map_err(std::io::Error::other)?;
            let status = response.status().as_u16();
            let mut body = response.into_body();
            let body = if reads_body {
                let body = body
                    .collect()
                    .await
                    .map_err(std::io::Error::other)?
                    .to_bytes();
                body_bytes = body.len() as u64;
                body
            } else {
                while let Some(frame) = body.frame().await {
                    if let Some(data) = frame.map_err(std::io::Error::other)?.data_ref() {
                        body_bytes += data.len() as u64;
                    }
                }
                Bytes::new()
            };
            Ok::<_, std::io::Error>((status, body))
        })
        .await;
        let elapsed = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        let kind = &mut result.kinds[index];
        kind.latencies_us.push(elapsed);
        kind.body_bytes += body_bytes;
        let cause = match outcome {
            Ok(Ok((status, _))) if status != call.expected_status => {
                Some(format!("status {status}"))
            }
            Ok(Ok((_, body))) => {
                (!conversation.on_response(&call, &body)).then(|| UNEXPECTED_BODY.to_owned())
            }
            // A broken or hung connection: count it and open a new one.
            Ok(Err(_)) => {
                sender = None;
                Some(CONNECTION_ERROR.to_owned())
            }
            Err(_) => {
                sender = None;
                Some(TIMED_OUT.to_owned())
            }
        };
        if let Some(cause) = cause {
            kind.add_error(cause);
        }
    }
    result
}

/// One request outside a measurement (readiness, seeding, ids), with a
/// time limit.
pub async fn request_once(
    addr: SocketAddr,
    call: &Call,
    headers: &[(&str, &str)],
    limit: Duration,
) -> std::io::Result<(u16, Bytes)> {
    tokio::time::timeout(limit, async {
        let mut sender = connect(addr).await?;
        let mut request = request(addr, call);
        for (name, value) in headers {
            request.headers_mut().insert(
                hyper::header::HeaderName::from_bytes(name.as_bytes())
                    .map_err(std::io::Error::other)?,
                hyper::header::HeaderValue::from_str(value).map_err(std::io::Error::other)?,
            );
        }
        let response = sender
            .send_request(request)
            .await
            .map_err(std::io::Error::other)?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        Ok((status, body))
    })
    .await
    .map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{} {} took over {limit:?}", call.method, call.path),
        )
    })?
}

/// A response read to its last byte without keeping it: its status, its
/// first bytes, how many bytes it had and how long it took from sending the
/// request.
#[derive(Debug, Clone)]
pub struct Streamed {
    pub status: u16,
    /// Up to [`STREAMED_HEAD`] bytes from the start of the body.
    pub head: Bytes,
    pub body_bytes: u64,
    pub elapsed: Duration,
}

pub const STREAMED_HEAD: usize = 256;

/// One request on a new connection whose body (a full list may be
/// hundreds of MB) is counted as it streams in, never held whole.
pub async fn request_streamed(
    addr: SocketAddr,
    call: &Call,
    limit: Duration,
) -> std::io::Result<Streamed> {
    let started = Instant::now();
    tokio::time::timeout(limit, async {
        let mut sender = connect(addr).await?;
        let response = sender
            .send_request(request(addr, call))
            .await
            .map_err(std::io::Error::other)?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut head = Vec::new();
        let mut body_bytes = 0u64;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame.map_err(std::io::Error::other)?.data_ref() {
                body_bytes += data.len() as u64;
                let room = STREAMED_HEAD.saturating_sub(head.len());
                head.extend_from_slice(&data[..room.min(data.len())]);
            }
        }
        Ok(Streamed {
            status,
            head: Bytes::from(head),
            body_bytes,
            elapsed: started.elapsed(),
        })
    })
    .await
    .map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{} {} took over {limit:?}", call.method, call.path),
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&sorted, 0.50), 50.0);
        assert_eq!(percentile_ms(&sorted, 0.99), 99.0);
        assert_eq!(percentile_ms(&sorted, 1.0), 100.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
        assert_eq!(percentile_ms(&[7000], 0.01), 7.0);
    }

    #[test]
    fn error_causes_are_counted_by_kind() {
        let mut create = KindResult {
            kind: "POST /orders",
            ..KindResult::default()
        };
        create.add_error("status 503".into());
        create.add_error("status 503".into());
        create.add_error(TIMED_OUT.into());
        let mut result = DriveResult {
            kinds: vec![create],
            ..DriveResult::default()
        };
        result.merge(DriveResult {
            kinds: vec![KindResult {
                kind: "GET /orders",
                latencies_us: vec![1],
                ..KindResult::default()
            }],
            ..DriveResult::default()
        });
        assert_eq!(result.errors(), 3);
        assert_eq!(
            result.error_causes(),
            "POST /orders: status 503 x2, timed out x1"
        );
    }

    #[test]
    fn by_kind_gives_each_kind_its_share_and_latencies() {
        let result = DriveResult {
            elapsed: Duration::from_secs(1),
            kinds: vec![
                KindResult {
                    kind: "GET /orders",
                    latencies_us: vec![3000, 1000, 2000],
                    errors: 0,
                    error_causes: BTreeMap::new(),
                    body_bytes: 0,
                },
                KindResult {
                    kind: "POST /orders",
                    latencies_us: vec![40_000],
                    errors: 0,
                    error_causes: BTreeMap::new(),
                    body_bytes: 0,
                },
            ],
            generator_cpu: None,
        };
        assert_eq!(
            result.by_kind(),
            "GET /orders 75% p50 2.0 ms p99 3.0 ms; POST /orders 25% p50 40.0 ms p99 40.0 ms"
        );
    }
}
