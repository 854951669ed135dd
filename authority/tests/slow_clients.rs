//! Slow clients (issue 13): floods of half-sent requests over real loopback sockets, plain HTTP and TLS. The
//! slow sockets must be closed within the header (or handshake) timeout plus a margin, and honest requests must
//! be answered promptly while the flood lasts.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smqtt_authority::{init, AppState, Authority, Config, TlsConfig, UnsealWith};
use smqtt_authority_api::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The header timeout the tests configure (seconds).
const HEADER_TIMEOUT: u64 = 2;
/// Slack on top of a timeout before a socket still open counts as a failure.
const MARGIN: Duration = Duration::from_secs(2);
/// How long an honest request may take during a flood.
const HONEST: Duration = Duration::from_secs(2);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn server_addr(url: &str) -> SocketAddr {
    url.rsplit('/').next().expect("host:port").parse().expect("socket address")
}

/// A connection from `source` (any 127.0.0.0/8 address is loopback on Linux).
async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(server).await
}

#[derive(Clone, Copy, Debug)]
enum Slow {
    /// Connects and sends nothing.
    Silent,
    /// Sends a request head one byte every 100 ms, never finishing it.
    Dribble,
    /// Sends one complete request, reads the answer, then keeps the connection idle.
    IdleKeepAlive,
}

/// Runs one slow client; returns how long the server kept it open (from the moment it became slow), or
/// `None` if it was still open at `give_up`.
async fn slow_client(kind: Slow, mut stream: TcpStream, give_up: Duration) -> Option<Duration> {
    if let Slow::IdleKeepAlive = kind {
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: authority\r\n\r\n").await.ok()?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.windows(1).any(|w| w == b"}") {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return Some(Duration::ZERO);
            }
            answer.extend_from_slice(&buf[..n]);
        }
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    }
    let started = Instant::now();
    let head = b"GET /v1/params HTTP/1.1\r\nHost: authority\r\nX-Slow: ";
    let mut sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut buf = [0u8; 256];
    while started.elapsed() < give_up {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Some(started.elapsed()),
                Ok(_) => {}
            },
            _ = tick.tick() => {
                if let Slow::Dribble = kind {
                    let byte = head.get(sent).copied().unwrap_or(b'a');
                    sent += 1;
                    if stream.write_all(&[byte]).await.is_err() {
                        return Some(started.elapsed());
                    }
                }
            }
        }
    }
    None
}

/// Honest requests while the flood lasts: each must be answered within [`HONEST`].
async fn honest_requests(client: Client, rounds: usize) {
    for round in 0..rounds {
        let client = client.clone();
        let (took, ok) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let ok = client.params().is_ok() && client.epoch().is_ok();
            (started.elapsed(), ok)
        })
        .await
        .expect("honest request task");
        assert!(ok, "honest request {round} failed during the flood");
        assert!(took < HONEST, "honest requests {round} took {took:?} during the flood");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checks that every slow client was closed, within `bound`.
fn assert_closed(kind: &str, results: &[Option<Duration>], bound: Duration) {
    let open = results.iter().filter(|r| r.is_none()).count();
    let slowest = results.iter().flatten().max().copied().unwrap_or_default();
    eprintln!("{kind}: {} sockets, {open} still open, slowest closed after {slowest:?}", results.len());
    assert_eq!(open, 0, "{kind}: {open} of {} slow sockets still open", results.len());
    assert!(slowest <= bound, "{kind}: a slow socket stayed open {slowest:?} (bound {bound:?})");
}

#[test]
fn slow_client_flood_is_closed_in_time_and_honest_requests_are_served() {
    let t = common::start(|c| c.limits.header_timeout_secs = HEADER_TIMEOUT);
    let server = server_addr(&t.url);
    let honest = t.anonymous();
    runtime().block_on(async move {
        // 480 slow sockets from 48 addresses (10 each, within the per-address cap), a third of each kind.
        let kinds = [Slow::Silent, Slow::Dribble, Slow::IdleKeepAlive];
        let mut clients = Vec::new();
        for i in 0..480u32 {
            let source = Ipv4Addr::new(127, 0, 1, 1 + (i % 48) as u8);
            let stream = connect_from(source, server).await.expect("slow client connects");
            let kind = kinds[i as usize % 3];
            clients.push((kind, tokio::spawn(slow_client(kind, stream, Duration::from_secs(HEADER_TIMEOUT) * 4))));
        }
        honest_requests(honest, 5).await;
        let bound = Duration::from_secs(HEADER_TIMEOUT) + MARGIN;
        for kind in kinds {
            let mut results = Vec::new();
            for (_, task) in
                clients.iter_mut().filter(|(k, _)| std::mem::discriminant(k) == std::mem::discriminant(&kind))
            {
                results.push(task.await.expect("slow client task"));
            }
            assert_closed(&format!("{kind:?}"), &results, bound);
        }
    });
}

#[test]
fn one_address_cannot_take_every_connection() {
    let t = common::start(|c| {
        c.limits.header_timeout_secs = HEADER_TIMEOUT;
        c.limits.max_connections_per_ip = 8;
        c.limits.max_connections = 64;
    });
    let server = server_addr(&t.url);
    let honest = t.anonymous();
    runtime().block_on(async move {
        // 100 silent sockets from one address: 8 are admitted, the rest closed at once.
        let source = Ipv4Addr::new(127, 0, 2, 1);
        let mut streams = Vec::new();
        for _ in 0..100 {
            streams.push(connect_from(source, server).await.expect("connect"));
        }
        let mut tasks = Vec::new();
        for stream in streams {
            tasks.push(tokio::spawn(slow_client(Slow::Silent, stream, Duration::from_secs(HEADER_TIMEOUT) * 4)));
        }
        honest_requests(honest, 3).await;
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        let refused = results.iter().flatten().filter(|d| **d < Duration::from_millis(HEADER_TIMEOUT * 500)).count();
        assert_eq!(refused, 92, "connections past the per-address cap are closed at once");
        assert_closed("per-address flood", &results, Duration::from_secs(HEADER_TIMEOUT) + MARGIN);
    });
}

#[test]
fn at_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let t = common::start(|c| {
        c.limits.header_timeout_secs = HEADER_TIMEOUT;
        c.limits.max_connections = 16;
    });
    let server = server_addr(&t.url);
    runtime().block_on(async move {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..16u8 {
            let stream = connect_from(Ipv4Addr::new(127, 0, 3, 1 + i), server).await.expect("connect");
            tasks.push(tokio::spawn(slow_client(Slow::Silent, stream, Duration::from_secs(HEADER_TIMEOUT) * 4)));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The 17th connection is not refused: it waits in the backlog while the 16 are young, and is served once
        // a slot frees (at the cap, connections older than a second that handle no request make room).
        let mut stream = connect_from(Ipv4Addr::new(127, 0, 3, 100), server).await.expect("connect");
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await.expect("write");
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        let early = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await;
        assert!(early.is_err(), "served past the connection cap: {early:?}");
        let read = tokio::time::timeout(Duration::from_secs(HEADER_TIMEOUT) + MARGIN, stream.read_to_end(&mut answer));
        read.await.expect("served once a slot freed").expect("read");
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
        assert!(started.elapsed() <= Duration::from_secs(HEADER_TIMEOUT) + MARGIN);
        for task in tasks {
            assert!(task.await.expect("task").is_some(), "silent socket closed");
        }
    });
}

/// An authority served over TLS in-process (like `common::start`, with `serve_tls`).
struct TlsAuthority {
    url: String,
    ca_pem: String,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TlsAuthority {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start_tls(tweak: impl FnOnce(&mut Config)) -> TlsAuthority {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = common::key_file(dir.path());
    init(&data, &UnsealWith::KeyFile(key.clone()), &mut rand_core::OsRng, common::now()).expect("init");
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    let tls = TlsConfig { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem") };
    std::fs::write(&tls.cert, cert.pem()).expect("cert");
    std::fs::write(&tls.key, key_pair.serialize_pem()).expect("key");
    let mut config = Config::new(data);
    config.unseal.key_file = Some(key);
    config.limits.rate_per_sec = 0;
    tweak(&mut config);
    let authority = Arc::new(Authority::open(config).expect("open"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        runtime().block_on(async move {
            let served = smqtt_authority::serve_tls(AppState::new(authority), listener, &tls, async {
                let _ = rx.await;
            });
            served.await.expect("serve_tls");
        });
    });
    TlsAuthority {
        url: format!("https://{addr}"),
        ca_pem: cert.pem(),
        _dir: dir,
        shutdown: Some(tx),
        thread: Some(thread),
    }
}

/// Completes a TLS handshake (trusting `ca_pem`) on `stream`, then sends nothing.
async fn tls_handshake(stream: TcpStream, ca_pem: &str) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls_pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(std::io::Error::other)?;
    roots.add(ca).map_err(std::io::Error::other)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").map_err(std::io::Error::other)?;
    connector.connect(name, stream).await
}

#[test]
fn tls_handshake_and_head_are_bounded() {
    let t = start_tls(|c| {
        c.limits.header_timeout_secs = HEADER_TIMEOUT;
        c.limits.tls_handshake_timeout_secs = HEADER_TIMEOUT;
    });
    let server = server_addr(&t.url);
    let honest = Client::with_ca_pem(&t.url, t.ca_pem.as_bytes()).expect("TLS client");
    let ca_pem = t.ca_pem.clone();
    runtime().block_on(async move {
        let give_up = Duration::from_secs(HEADER_TIMEOUT) * 4;
        // Silent TCP connections (no ClientHello) and half a TLS record header: the handshake timeout.
        let mut handshaking = Vec::new();
        for i in 0..120u32 {
            let mut stream = connect_from(Ipv4Addr::new(127, 0, 4, 1 + (i % 12) as u8), server).await.expect("connect");
            if i % 2 == 0 {
                stream.write_all(&[0x16, 0x03]).await.expect("partial record");
            }
            handshaking.push(tokio::spawn(slow_client(Slow::Silent, stream, give_up)));
        }
        // Complete handshakes, then nothing or a dribbled head: the header timeout.
        let mut handshaken = Vec::new();
        for i in 0..40u32 {
            let stream = connect_from(Ipv4Addr::new(127, 0, 5, 1 + (i % 4) as u8), server).await.expect("connect");
            let mut tls = tls_handshake(stream, &ca_pem).await.expect("handshake");
            let started = Instant::now();
            let dribble = i % 2 == 0;
            handshaken.push(tokio::spawn(async move {
                let mut buf = [0u8; 256];
                while started.elapsed() < give_up {
                    tokio::select! {
                        read = tls.read(&mut buf) => match read {
                            Ok(0) | Err(_) => return Some(started.elapsed()),
                            Ok(_) => {}
                        },
                        () = tokio::time::sleep(Duration::from_millis(100)) => {
                            if dribble && tls.write_all(b"G").await.is_err() {
                                return Some(started.elapsed());
                            }
                        }
                    }
                }
                None
            }));
        }
        honest_requests(honest, 5).await;
        let bound = Duration::from_secs(HEADER_TIMEOUT) + MARGIN;
        let mut results = Vec::new();
        for task in handshaking {
            results.push(task.await.expect("task"));
        }
        assert_closed("TLS handshake", &results, bound);
        let mut results = Vec::new();
        for task in handshaken {
            results.push(task.await.expect("task"));
        }
        assert_closed("TLS head", &results, bound);
    });
}
