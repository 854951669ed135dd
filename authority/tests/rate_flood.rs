//! Rate limiting under an address flood (issue 13): many distinct source addresses must not reset the bucket of
//! a client already over its limit, and known honest clients keep being served.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use smqtt_authority::RateLimiter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

#[test]
fn limiter_keeps_exhausted_buckets_through_a_flood_of_addresses() {
    // One token a second, burst 20: a reset would hand the attacker 20 requests at once.
    let limiter = RateLimiter::new(1, 20);
    let attacker = IpAddr::from([192, 0, 2, 1]);
    let honest = IpAddr::from([192, 0, 2, 2]);
    assert!(limiter.allow(honest));
    let allowed = (0..40).filter(|_| limiter.allow(attacker)).count();
    assert_eq!(allowed, 20);
    // 50 000 distinct addresses, five times the table.
    for i in 0..50_000u32 {
        let _ = limiter.allow(IpAddr::from(Ipv4Addr::from(0x0a00_0000 + i)));
        if i % 5_000 == 0 {
            // At most a token or two refilled since; never the whole burst.
            let again = (0..5).filter(|_| limiter.allow(attacker)).count();
            assert!(again <= 2, "the attacker's bucket was reset by the flood ({again} of 5 allowed)");
        }
    }
    assert!(limiter.tracked() <= 10_000, "table bounded: {}", limiter.tracked());
    let again = (0..5).filter(|_| limiter.allow(attacker)).count();
    assert!(again <= 2, "the attacker's bucket was reset by the flood ({again} of 5 allowed)");
    // The honest client, known before the flood, still has its own bucket.
    assert!(limiter.allow(honest), "honest client refused after the flood");
}

#[test]
fn limiter_keys_ipv6_by_slash_64() {
    let limiter = RateLimiter::new(1, 5);
    let base = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0));
    let allowed = (0..1_000u128).filter(|i| limiter.allow(IpAddr::from(Ipv6Addr::from(base + i * 7919)))).count();
    assert_eq!(allowed, 5, "addresses rotated inside one /64 share one bucket");
    let neighbour = IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
    assert!(limiter.allow(neighbour), "another /64 has its own bucket");
}

#[test]
fn limiter_full_table_sends_new_clients_to_one_overflow_bucket_and_recovers() {
    let limiter = RateLimiter::with_capacity(1, 3, 100);
    for i in 0..100u32 {
        assert!(limiter.allow(IpAddr::from(Ipv4Addr::from(0x0a00_0000 + i))));
    }
    // The table is full: 1 000 new addresses share one bucket of 3 (nobody is reset to make room).
    let allowed = (0..1_000u32).filter(|i| limiter.allow(IpAddr::from(Ipv4Addr::from(0x0b00_0000 + i)))).count();
    assert_eq!(allowed, 3);
    assert_eq!(limiter.tracked(), 100);
    // Once the flood's buckets have refilled (governor keeps a state one emission interval, here 1 s, past
    // that), a sweep frees their entries and new clients get buckets again.
    std::thread::sleep(Duration::from_millis(2_100));
    assert!(limiter.allow(IpAddr::from([198, 51, 100, 1])));
    assert!(limiter.tracked() < 100, "sweep dropped refilled buckets: {}", limiter.tracked());
}

/// `GET /healthz` from `source` (a 127.0.0.0/8 address); the status code.
async fn status_from(source: Ipv4Addr, server: SocketAddr) -> u16 {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::from((source, 0))).expect("bind source address");
    let mut stream = socket.connect(server).await.expect("connect");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: authority\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let text = String::from_utf8_lossy(&answer);
    text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not an HTTP answer: {text}"))
}

#[test]
fn http_address_flood_does_not_reset_limits() {
    let t = common::start(|c| {
        c.limits.rate_per_sec = 1;
        c.limits.rate_burst = 20;
        c.limits.rate_tracked_clients = 50;
    });
    let server: SocketAddr = t.url.trim_start_matches("http://").parse().expect("address");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    runtime.block_on(async move {
        let attacker = Ipv4Addr::new(127, 0, 0, 1);
        let honest = Ipv4Addr::new(127, 0, 9, 9);
        assert_eq!(status_from(honest, server).await, 200);
        let mut ok = 0;
        for _ in 0..25 {
            if status_from(attacker, server).await == 200 {
                ok += 1;
            }
        }
        assert!((20..=21).contains(&ok), "burst of 20 (+1 refilled): {ok}");
        // 600 distinct source addresses in batches of 100 (the table holds 50); after each batch the attacker
        // is still limited.
        for batch in 0..6u8 {
            let mut flood = Vec::new();
            for i in 0..100u8 {
                flood.push(tokio::spawn(status_from(Ipv4Addr::new(127, 1, batch, 1 + i), server)));
            }
            for request in flood {
                request.await.expect("flood request");
            }
            let mut again = 0;
            for _ in 0..5 {
                if status_from(attacker, server).await == 200 {
                    again += 1;
                }
            }
            assert!(again <= 2, "batch {batch}: the attacker's limit was reset ({again} of 5 served)");
        }
        assert_eq!(status_from(honest, server).await, 200, "the honest client is still served");
    });
}
