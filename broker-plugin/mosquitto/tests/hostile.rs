//! Hostile peers against the Mosquitto plugin over real sockets (project issue 13): a password guesser at
//! 127.0.0.2 must not lock out the honest legacy client at 127.0.0.1 (the plugin hands the gate
//! `mosquitto_client_address`); wider wildcards must not get around `deny_subscribe`.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;

/// A CONNECT from the local address `from` (all of 127.0.0.0/8 is loopback on Linux): the CONNACK code.
fn connect_from(runtime: &tokio::runtime::Runtime, from: IpAddr, to: SocketAddr, packet: &[u8]) -> u8 {
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(from, 0)).expect("bind");
        socket.connect(to).await.expect("connect").into_std().expect("std")
    });
    let mut stream = stream;
    stream.set_nonblocking(false).expect("blocking");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(packet).expect("send CONNECT");
    let mut connack = [0u8; 4];
    match stream.read_exact(&mut connack) {
        Ok(()) => connack[3],
        Err(_) => 0xff,
    }
}

#[test]
fn a_password_guesser_at_another_address_does_not_lock_the_honest_client_out() {
    if !have_mosquitto() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let key = smqtt_wire::SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes();
    std::fs::write(dir.path().join("authority.pub"), key).expect("key");
    let gate = format!(
        "[authority]\nverifying_key = {:?}\n[topics]\ndeny_subscribe = [\"test/nosubscribe\"]\n\
         [[legacy]]\nusername = \"meter-1\"\npassword_hash = \"{}\"\npublish = [\"legacy/#\"]\n",
        dir.path().join("authority.pub"),
        password_hash("meter-pw")
    );
    let broker = Mosquitto::start(&gate);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (attacker, honest): (IpAddr, IpAddr) = ([127, 0, 0, 2].into(), [127, 0, 0, 1].into());
    let guess = connect_packet("legacy:meter-1", Some("meter-1"), Some(b"guess"), None);
    let right = connect_packet("legacy:meter-1/h", Some("meter-1"), Some(b"meter-pw"), None);
    let (mut guesses, mut honest_ok) = (0u32, 0u32);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        for _ in 0..20 {
            assert_ne!(connect_from(&runtime, attacker, broker.addr(), &guess), 0, "a guess got in");
            guesses += 1;
        }
        // The first honest CONNECT follows the guesses and is hashed; every one gets in.
        assert_eq!(connect_from(&runtime, honest, broker.addr(), &right), 0, "refused after {guesses} guesses");
        honest_ok += 1;
    }
    assert!(honest_ok >= 3, "{honest_ok}");
    let text = http_get(broker.metrics);
    let throttled =
        metric(&text, r#"smqtt_gate_refused_total{check="connect",reason="throttled"}"#).expect("throttled metric");
    let wrong =
        metric(&text, r#"smqtt_gate_refused_total{check="connect",reason="bad_password"}"#).expect("bad_password");
    assert!(wrong <= 2 && throttled + wrong == u64::from(guesses), "{wrong} hashed, {throttled} throttled");
    // Wider wildcards do not get around deny_subscribe (the subscribe check); other filters still work.
    let refused = |filter: &str| {
        let out = std::process::Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-u", "meter-1", "-P", "meter-pw"])
            .args(["-i", "legacy:meter-1/s", "-t", filter, "-W", "1", "-V", "mqttv311"])
            .output()
            .expect("mosquitto_sub");
        String::from_utf8_lossy(&out.stderr).contains("ubscri")
    };
    for filter in ["test/#", "#", "+/nosubscribe", "test/+"] {
        assert!(refused(filter), "{filter} was granted");
    }
    assert!(!refused("other/#"));
}
