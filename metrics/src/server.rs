//! A tiny HTTP responder for `GET /metrics` and `GET /healthz`, on a thread of its own (never a broker's
//! thread, which must not block). One request at a time, one request per connection, a bounded request and a
//! deadline per connection: it is for a local scraper, not for the open internet.

use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::text::CONTENT_TYPE;

/// Renders the metrics text on each scrape (called on the responder's thread).
type Render = Box<dyn Fn() -> String + Send + 'static>;

/// The longest request read (request line and headers); the rest is not read.
pub const MAX_REQUEST: usize = 4096;
/// How long one connection may take to send its request, and again to take the answer: a client that is slow
/// or silent is dropped after that, so the next scrape waits at most about twice this.
pub const IO_DEADLINE: Duration = Duration::from_secs(2);

/// The running responder. [`MetricsServer::stop`] (or dropping it) ends the thread;
/// [`MetricsServer::detach`] leaves it running until the process exits.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl core::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MetricsServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl MetricsServer {
    /// Binds `addr` and starts serving.
    ///
    /// # Errors
    /// The bind or thread-spawn error.
    pub fn start(addr: SocketAddr, render: impl Fn() -> String + Send + 'static) -> io::Result<MetricsServer> {
        MetricsServer::start_on(TcpListener::bind(addr)?, render)
    }

    /// Starts serving on a listener already bound.
    ///
    /// # Errors
    /// The listener's address or the thread-spawn error.
    pub fn start_on(listener: TcpListener, render: impl Fn() -> String + Send + 'static) -> io::Result<MetricsServer> {
        let addr = listener.local_addr()?;
        let render: Render = Box::new(render);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread =
            std::thread::Builder::new().name("smqtt-metrics".into()).spawn(move || serve(&listener, &flag, &render))?;
        Ok(MetricsServer { addr, stop, thread: Some(thread) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the thread and waits for it (at most the deadline of a connection being answered).
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Leaves the thread serving until the process exits; returns the bound address.
    pub fn detach(mut self) -> SocketAddr {
        self.thread = None;
        self.addr
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept (an unspecified address is reached through loopback).
        let mut wake = self.addr;
        match wake.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => wake.set_ip(Ipv4Addr::LOCALHOST.into()),
            IpAddr::V6(ip) if ip.is_unspecified() => wake.set_ip(Ipv6Addr::LOCALHOST.into()),
            _ => {}
        }
        let _ = TcpStream::connect_timeout(&wake, IO_DEADLINE);
        let _ = thread.join();
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(listener: &TcpListener, stop: &AtomicBool, render: &Render) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(stream) = stream {
            let _ = answer(stream, render);
        }
    }
}

/// Sets the socket's timeout to what is left until `deadline`; `TimedOut` once it has passed.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
    }
    Ok(left)
}

/// Reads the request line and headers (up to [`MAX_REQUEST`] bytes) within [`IO_DEADLINE`].
fn read_request(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + IO_DEADLINE;
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while request.len() < MAX_REQUEST
        && !request.windows(4).any(|w| w == b"\r\n\r\n")
        && !request.windows(2).any(|w| w == b"\n\n")
    {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        let want = buf.len().min(MAX_REQUEST - request.len());
        let n = stream.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    Ok(request)
}

/// Writes all of `bytes` within [`IO_DEADLINE`].
fn write_answer(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    let deadline = Instant::now() + IO_DEADLINE;
    let mut written = 0;
    while written < bytes.len() {
        stream.set_write_timeout(Some(remaining(deadline)?))?;
        match stream.write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    stream.flush()
}

fn answer(mut stream: TcpStream, render: &Render) -> io::Result<()> {
    let request = read_request(&mut stream)?;
    let line = request.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (status, body) = match (parts.next(), parts.next()) {
        // A panicking renderer answers 500 and leaves the responder serving.
        (Some(b"GET"), Some(b"/metrics")) => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(render)) {
            Ok(text) => ("200 OK", text),
            Err(_) => ("500 Internal Server Error", "internal error\n".to_owned()),
        },
        (Some(b"GET"), Some(b"/healthz")) => ("200 OK", "ok\n".to_owned()),
        _ => ("404 Not Found", "not found\n".to_owned()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body.as_bytes());
    write_answer(&mut stream, &response)
}
