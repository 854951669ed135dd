//! The accept loop and per-connection bounds, for plain HTTP and TLS alike (HTTP/1.1 only).
//!
//! Every connection is bounded, whatever the client does:
//!
//! * **Connections in all**: at most `max_connections` are open; at the limit the loop stops accepting (new
//!   connections wait in the kernel's listen backlog, first come first served) and, every
//!   [`PRESSURE_EVERY`], closes every connection that handles no request and is older than
//!   [`PRESSURE_MIN_AGE`] (idle keep-alive, a head not sent in time): nobody keeps a slot between requests
//!   while others wait, so a few addresses cannot hold every slot with cheap keep-alive requests.
//! * **Connections per client**: at most `max_per_client` from one IPv4 address or IPv6 /64 (the rate
//!   limiter's key); further ones are closed as soon as they are accepted, so one address cannot take all.
//! * **TLS handshake**: done in the connection's own task (a slow handshake never holds up the loop) and
//!   given `handshake_timeout`.
//! * **Request head**: hyper's header-read timeout, `header_timeout`, counted from the start of the
//!   connection (after the handshake) and again from the end of each response. A client that has not sent a
//!   complete head by then (sending nothing, or a byte at a time) is closed; so is an idle keep-alive
//!   connection. A head is at most [`MAX_HEAD_BYTES`].
//! * **Stalls**: a connection on which no request is being handled and no byte has moved in either direction
//!   for `idle_timeout` is closed. While a request is being handled, the router's `request_timeout_secs` bounds
//!   it (body reading included). Output the client does not take: once a write could not hand over all it had
//!   (the client reads slower than we answer, e.g. pipelined requests read a few bytes at a time), the
//!   connection has `idle_timeout` to take everything, or it is closed, whatever trickles meanwhile.
//! * **Lifetime**: a connection lives at most [`LIFETIME_IDLE_TIMEOUTS`] × `idle_timeout` (2 minutes by
//!   default): then it finishes the request it is in and closes, so no pattern of trickles (a client reading a
//!   pipeline of answers a few bytes at a time) holds a slot for longer.
//!
//! Shutdown: the loop stops accepting, every connection finishes the request it is in and closes, and the
//! loop waits for them all, for at most `grace` if one is given (then the rest are closed).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt as _;

use super::limiter::ClientKey;

/// Largest request head (request line and headers), and the largest read buffer of a connection.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Pause after an accept error that is not about one connection (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At the connection limit, how often idle connections are told to make room.
pub(crate) const PRESSURE_EVERY: Duration = Duration::from_millis(500);
/// Connections younger than this are spared at the limit (their first request head is on its way).
pub(crate) const PRESSURE_MIN_AGE: Duration = Duration::from_secs(1);
/// A connection's lifetime, in idle timeouts.
pub(crate) const LIFETIME_IDLE_TIMEOUTS: u32 = 8;
/// The longest timeout used (larger configured ones are cut to it: no clock arithmetic overflows).
const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// The bounds of [the module documentation](self), from `[limits]`.
#[derive(Clone, Debug)]
pub(super) struct ConnLimits {
    pub(super) header_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) handshake_timeout: Duration,
    pub(super) max_connections: usize,
    pub(super) max_per_client: usize,
}

impl ConnLimits {
    pub(super) fn new(limits: &crate::Limits) -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_secs(limits.header_timeout_secs.max(1)).min(MAX_TIMEOUT),
            idle_timeout: Duration::from_secs(limits.idle_timeout_secs.max(1)).min(MAX_TIMEOUT),
            handshake_timeout: Duration::from_secs(limits.tls_handshake_timeout_secs.max(1)).min(MAX_TIMEOUT),
            max_connections: limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
            max_per_client: limits.max_connections_per_ip.max(1),
        }
    }
}

/// What the connections are told by the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// Finish the current request, then close.
    Draining,
    /// Close now (the grace period is over).
    Closing,
}

/// Open connections per client key.
#[derive(Debug)]
struct PerClient {
    max: usize,
    open: Mutex<HashMap<ClientKey, usize>>,
}

impl PerClient {
    fn lock(&self) -> MutexGuard<'_, HashMap<ClientKey, usize>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a connection from `remote`, unless its client is at the limit.
    fn admit(self: &Arc<Self>, remote: SocketAddr, permit: OwnedSemaphorePermit) -> Option<Slot> {
        let key = ClientKey::of(remote.ip());
        let mut open = self.lock();
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot { clients: self.clone(), key, _permit: permit })
    }
}

/// One open connection's share of both limits, given back on drop.
#[derive(Debug)]
struct Slot {
    clients: Arc<PerClient>,
    key: ClientKey,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.clients.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// When a connection last moved a byte, since when its output waits for the client, and how many of its
/// requests are being handled.
#[derive(Debug)]
struct Activity {
    born: Instant,
    last_io_millis: AtomicU64,
    /// Milliseconds since `born` + 1 when a write first could not hand over everything; 0: nothing waits.
    backlogged_since: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            born: Instant::now(),
            last_io_millis: AtomicU64::new(0),
            backlogged_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_io_millis.store(self.millis(), Ordering::Relaxed);
    }

    /// A write handed over `written` of `offered` bytes (or none: `Pending`).
    fn wrote(&self, written: usize, offered: usize) {
        if written > 0 {
            self.touch();
        }
        if written >= offered {
            self.backlogged_since.store(0, Ordering::Relaxed);
        } else if self.backlogged_since.load(Ordering::Relaxed) == 0 {
            self.backlogged_since.store(self.millis().saturating_add(1), Ordering::Relaxed);
        }
    }

    /// Since when output has waited for the client, if it does.
    fn backlogged(&self) -> Option<Instant> {
        match self.backlogged_since.load(Ordering::Relaxed) {
            0 => None,
            at => self.born.checked_add(Duration::from_millis(at - 1)),
        }
    }

    fn last_io(&self) -> Instant {
        self.born.checked_add(Duration::from_millis(self.last_io_millis.load(Ordering::Relaxed))).unwrap_or(self.born)
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }
}

/// Counts a request as being handled while alive.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that notes in its [`Activity`] every time a byte moves.
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        match polled {
            Poll::Ready(Ok(n)) => self.activity.wrote(n, buf.len()),
            Poll::Pending => self.activity.wrote(0, buf.len()),
            Poll::Ready(Err(_)) => {}
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        let offered = bufs.iter().map(|b| b.len()).sum();
        match polled {
            Poll::Ready(Ok(n)) => self.activity.wrote(n, offered),
            Poll::Pending => self.activity.wrote(0, offered),
            Poll::Ready(Err(_)) => {}
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What one connection task needs.
#[derive(Clone)]
struct Shared {
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnLimits,
    phase: watch::Receiver<Phase>,
    /// Woken while the connection limit is reached: idle connections make room.
    pressure: Arc<Notify>,
}

/// Serves `router` on `listener` (over TLS with `tls`) within the bounds of `limits` until `shutdown`
/// completes, then drains the connections (for at most `grace`, if given).
pub(super) async fn run(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
    grace: Option<Duration>,
) {
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let clients = Arc::new(PerClient { max: limits.max_per_client, open: Mutex::new(HashMap::new()) });
    let pressure = Arc::new(Notify::new());
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let shared = Shared { router, tls, limits, phase: phase_rx, pressure: pressure.clone() };
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = loop {
            tokio::select! {
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => break Some(permit),
                    Err(_) => break None,
                },
                () = tokio::time::sleep(PRESSURE_EVERY) => pressure.notify_waiters(),
                () = &mut shutdown => break None,
            }
        };
        let Some(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                tracing::warn!(%error, "accept failed; pausing");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let Some(slot) = clients.admit(remote, permit) else {
            tracing::debug!(%remote, "connection refused: too many open from this client");
            continue;
        };
        tokio::spawn(connection(stream, remote, slot, shared.clone()));
    }
    drop(listener);
    let _ = phase_tx.send(Phase::Draining);
    drop(shared);
    if let Some(grace) = grace {
        if tokio::time::timeout(grace, phase_tx.closed()).await.is_ok() {
            return;
        }
        let _ = phase_tx.send(Phase::Closing);
    }
    phase_tx.closed().await;
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// One connection: the TLS handshake if any, then HTTP/1.1 until it ends or a bound closes it.
async fn connection(stream: TcpStream, remote: SocketAddr, slot: Slot, shared: Shared) {
    let activity = Arc::new(Activity::new());
    let stream = Watched { inner: stream, activity: activity.clone() };
    match shared.tls.clone() {
        None => http(stream, remote, activity, shared).await,
        Some(acceptor) => {
            let mut phase = shared.phase.clone();
            let handshake = tokio::time::timeout(shared.limits.handshake_timeout, acceptor.accept(stream));
            let done = tokio::select! {
                done = handshake => Some(done),
                _ = phase.wait_for(|phase| *phase != Phase::Running) => None,
            };
            match done {
                Some(Ok(Ok(stream))) => http(stream, remote, activity, shared).await,
                Some(Ok(Err(error))) => tracing::debug!(%remote, %error, "TLS handshake failed"),
                Some(Err(_)) => tracing::debug!(%remote, "TLS handshake timed out"),
                None => {}
            }
        }
    }
    drop(slot);
}

async fn http<IO>(io: IO, remote: SocketAddr, activity: Arc<Activity>, mut shared: Shared)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = shared.router.clone();
    let watched = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        let busy = InFlight::new(watched.clone());
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await;
            drop(busy);
            response
        }
    });
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(shared.limits.header_timeout).max_buf_size(MAX_HEAD_BYTES);
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));
    let idle = shared.limits.idle_timeout;
    let mut draining = false;
    loop {
        if !draining && *shared.phase.borrow_and_update() != Phase::Running {
            draining = true;
            conn.as_mut().graceful_shutdown();
        }
        let mut check = if activity.busy() { Instant::now() + idle } else { activity.last_io() + idle };
        if let Some(backlogged) = activity.backlogged() {
            check = check.min(backlogged + idle);
        }
        if !draining {
            check = check.min(activity.born + idle * LIFETIME_IDLE_TIMEOUTS);
        }
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%remote, %error, "connection closed");
                }
                return;
            }
            changed = shared.phase.changed() => {
                if changed.is_err() || *shared.phase.borrow() == Phase::Closing {
                    return;
                }
            }
            () = tokio::time::sleep_until(check.into()) => {
                if !activity.busy() && activity.last_io().elapsed() >= idle {
                    tracing::debug!(%remote, "connection closed: idle");
                    return;
                }
                if activity.backlogged().is_some_and(|since| since.elapsed() >= idle) {
                    tracing::debug!(%remote, "connection closed: the client does not take its answers");
                    return;
                }
                if !draining && activity.born.elapsed() >= idle * LIFETIME_IDLE_TIMEOUTS {
                    if !activity.busy() {
                        tracing::debug!(%remote, "connection closed: lifetime over");
                        return;
                    }
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = shared.pressure.notified() => {
                if !activity.busy() && activity.born.elapsed() >= PRESSURE_MIN_AGE {
                    tracing::debug!(%remote, "connection closed: making room at the connection limit");
                    return;
                }
            }
        }
    }
}
