//! Clients that hold connection slots without being slow at any one step (cheap keep-alive requests from a few
//! addresses), and limits meant as "never".

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn server_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().expect("address")
}

async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(server).await
}

/// One `GET /healthz` on a fresh connection from `source`; whether it was answered within `within`.
async fn answered(source: Ipv4Addr, server: SocketAddr, within: Duration) -> bool {
    let Ok(mut stream) = connect_from(source, server).await else { return false };
    if stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    read.is_ok() && answer.starts_with(b"HTTP/1.1 200")
}

#[test]
fn a_few_addresses_cannot_hold_every_connection_with_keep_alive() {
    let t = common::start(|c| {
        c.limits.header_timeout_secs = 2;
        c.limits.idle_timeout_secs = 2;
        c.limits.max_connections = 16;
        c.limits.max_connections_per_ip = 4;
    });
    let server = server_addr(&t.url);
    runtime().block_on(async move {
        // 16 keep-alive connections from 4 addresses, each a cheap request just inside the header timeout.
        let stop = Arc::new(AtomicBool::new(false));
        for i in 0..16u8 {
            let mut stream = connect_from(Ipv4Addr::new(127, 0, 7, 1 + i / 4), server).await.expect("connect");
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n").await.is_err() {
                        return;
                    }
                    if matches!(stream.read(&mut buf).await, Ok(0) | Err(_)) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // An honest client from its own address waits in the backlog for a slot made free for it.
        let started = Instant::now();
        assert!(answered(Ipv4Addr::new(127, 0, 8, 1), server, Duration::from_secs(10)).await, "honest refused");
        eprintln!("honest request answered after {:?} with every slot held", started.elapsed());
        stop.store(true, Ordering::Relaxed);
    });
}

#[test]
fn limits_meant_as_never_still_answer() {
    for tweak in [
        (|c: &mut smqtt_authority::Config| c.limits.idle_timeout_secs = u64::MAX) as fn(&mut smqtt_authority::Config),
        |c| c.limits.header_timeout_secs = u64::MAX,
        |c| c.limits.tls_handshake_timeout_secs = u64::MAX,
    ] {
        let t = common::start(tweak);
        let server = server_addr(&t.url);
        assert!(runtime().block_on(answered(Ipv4Addr::new(127, 0, 11, 1), server, Duration::from_secs(5))));
    }
}
