//! The `/metrics` responder: routes, bounds, slow and silent clients, stopping.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smqtt_metrics::{Exposition, MetricsServer, IO_DEADLINE, MAX_REQUEST};

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn started() -> MetricsServer {
    MetricsServer::start(loopback(), || {
        let mut x = Exposition::new();
        x.gauge("smqtt_test_up", "Up.", 1u64);
        x.finish()
    })
    .expect("start")
}

/// Sends `request` on a fresh connection and reads the whole answer (bounded by a generous timeout).
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(request).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

fn scrape(addr: SocketAddr) -> String {
    exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
}

#[test]
fn metrics_answers_with_the_exposition() {
    let server = started();
    let response = scrape(server.addr());
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(head.contains("\r\nContent-Type: text/plain; version=0.0.4\r\n"), "{response}");
    assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())), "{response}");
    assert!(head.contains("\r\nConnection: close"), "{response}");
    assert_eq!(body, "# HELP smqtt_test_up Up.\n# TYPE smqtt_test_up gauge\nsmqtt_test_up 1\n");
    server.stop();
}

#[test]
fn healthz_answers_ok_and_everything_else_404() {
    let server = started();
    let addr = server.addr();
    let health = exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n") && health.ends_with("\r\n\r\nok\n"), "{health}");
    // HTTP/1.0 and bare-newline requests are understood too.
    assert!(exchange(addr, b"GET /metrics HTTP/1.0\n\n").starts_with("HTTP/1.1 200 OK\r\n"));
    for request in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET /metrics/x HTTP/1.1\r\n\r\n",
        b"GET /metricsx HTTP/1.1\r\n\r\n",
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"HEAD /healthz HTTP/1.1\r\n\r\n",
        b"\r\n\r\n",
        b"garbage\r\n\r\n",
    ] {
        let response = exchange(addr, request);
        assert!(response.starts_with("HTTP/1.1 404 Not Found\r\n"), "{request:?}: {response}");
        assert!(response.ends_with("\r\n\r\nnot found\n"), "{request:?}: {response}");
    }
    server.stop();
}

#[test]
fn renders_on_every_scrape() {
    let scrapes = Arc::new(AtomicU64::new(0));
    let counted = scrapes.clone();
    let server = MetricsServer::start(loopback(), move || {
        let mut x = Exposition::new();
        x.counter("smqtt_test_scrapes_total", "Scrapes.", counted.fetch_add(1, Ordering::SeqCst) + 1);
        x.finish()
    })
    .expect("start");
    assert!(scrape(server.addr()).ends_with("\nsmqtt_test_scrapes_total 1\n"));
    assert!(scrape(server.addr()).ends_with("\nsmqtt_test_scrapes_total 2\n"));
    // /healthz does not render.
    exchange(server.addr(), b"GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(scrapes.load(Ordering::SeqCst), 2);
}

#[test]
fn a_silent_client_does_not_hold_the_responder() {
    let server = started();
    let silent = TcpStream::connect(server.addr()).expect("connect");
    // Let the responder take the silent connection first.
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let response = scrape(server.addr());
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(started.elapsed() < IO_DEADLINE + Duration::from_secs(2), "answered after {:?}", started.elapsed());
    drop(silent);
    server.stop();
}

#[test]
fn a_slow_client_is_cut_off_at_the_deadline() {
    let server = started();
    let addr = server.addr();
    // Dribbles one byte every 300 ms: each read is well within a per-read timeout, the request never ends.
    let dribbler = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        let started = Instant::now();
        for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
            if started.elapsed() > Duration::from_secs(15) {
                break;
            }
        }
        // Cut off: the responder closed without answering the unfinished request.
        let mut rest = Vec::new();
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = stream.read_to_end(&mut rest);
        (started.elapsed(), rest)
    });
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let response = scrape(addr);
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(started.elapsed() < IO_DEADLINE + Duration::from_secs(2), "answered after {:?}", started.elapsed());
    let (_, rest) = dribbler.join().expect("dribbler");
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"), "the unfinished request was answered");
    server.stop();
}

#[test]
fn an_oversized_request_is_cut_at_the_bound() {
    let server = started();
    let mut stream = TcpStream::connect(server.addr()).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    // A request line that never ends: the responder reads MAX_REQUEST bytes and answers what it has.
    let mut request = b"GET /metrics HTTP/1.1\r\nX-Long: ".to_vec();
    request.resize(MAX_REQUEST + 1024, b'a');
    let _ = stream.write_all(&request);
    let _ = stream.shutdown(Shutdown::Write);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    // The answer may be lost to a reset (unread bytes were discarded); if it arrived, it is the metrics.
    assert!(response.is_empty() || response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    // Either way the responder is free again.
    assert!(scrape(server.addr()).starts_with("HTTP/1.1 200 OK\r\n"));
    server.stop();
}

#[test]
fn a_panicking_renderer_answers_500_and_keeps_serving() {
    let server = MetricsServer::start(loopback(), || -> String { panic!("render failed") }).expect("start");
    let response = scrape(server.addr());
    assert!(response.starts_with("HTTP/1.1 500 "), "{response}");
    let health = exchange(server.addr(), b"GET /healthz HTTP/1.1\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    server.stop();
}

#[test]
fn stop_and_drop_end_the_thread_and_free_the_port() {
    let server = started();
    let addr = server.addr();
    server.stop();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(), "still listening after stop");
    let dropped = started();
    let addr = dropped.addr();
    drop(dropped);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(), "still listening after drop");
}

#[test]
fn stop_returns_while_a_silent_client_is_connected() {
    let server = started();
    let _silent = TcpStream::connect(server.addr()).expect("connect");
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    server.stop();
    assert!(started.elapsed() < IO_DEADLINE + Duration::from_secs(2), "stopped after {:?}", started.elapsed());
}

#[test]
fn stops_when_bound_to_the_unspecified_address() {
    let server = MetricsServer::start(SocketAddr::from(([0, 0, 0, 0], 0)), String::new).expect("start");
    let started = Instant::now();
    server.stop();
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn detach_keeps_serving_and_start_on_takes_a_bound_listener() {
    let listener = TcpListener::bind(loopback()).expect("bind");
    let addr = MetricsServer::start_on(listener, || "smqtt_test_detached 1\n".to_owned()).expect("start").detach();
    assert!(scrape(addr).ends_with("\r\n\r\nsmqtt_test_detached 1\n"));
}
