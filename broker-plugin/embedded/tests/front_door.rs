//! The front door (`front.rs`) accepts every connection and relays it to rumqttd's loopback listener behind a
//! header only it can write (`internal_port.rs` dials that port directly). Attacks here: idle sockets holding `max_connections` slots (found by an adversarial review: a slot used to stay taken
//! until *both* directions ended, so `max_connections` sockets that never send nor close shut every client out
//! for good); a password guesser over TLS.

mod common;

use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{login_packet, password_hash, raw_connect, WAIT};

/// The CONNACK's return code for `packet` on a fresh connection (`None`: closed without one).
fn connack(addr: SocketAddr, packet: &[u8]) -> Option<u8> {
    raw_connect(addr, packet).1
}

fn connect_packet(client_id: &str, user: &str, password: &str) -> Vec<u8> {
    login_packet(client_id, Some((user, password)), None)
}

#[test]
fn idle_sockets_hold_the_front_door_slots_forever() {
    let dir = tempfile::tempdir().expect("dir");
    let text = format!(
        "[v4]\nlisten = \"127.0.0.1:0\"\n[limits]\nmax_connections = 3\nconnection_timeout_ms = 300\n\
         max_segment_count = 2\n[gate]\nenforcement = false\n[[gate.legacy]]\nusername = \"meter-1\"\n\
         password_hash = \"{}\"\npublish = [\"legacy/#\"]\n",
        password_hash("meter-pw")
    );
    let broker = smqtt_testkit::embedded::start_toml(&text, dir.path());
    let v4 = broker.v4.expect("v4");
    let honest = connect_packet("legacy:meter-1", "meter-1", "meter-pw");
    assert_eq!(connack(v4, &honest), Some(0), "baseline");
    // A deliberate pause for the front door to release the baseline's slot (nothing shows when it has).
    std::thread::sleep(Duration::from_millis(300));
    // Three sockets that never send a byte and never close.
    let idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(v4).expect("connect")).collect();
    // rumqttd gives up on them after 300 ms (no CONNECT) and closes its side: each client sees EOF...
    for mut s in &idle {
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut b = [0u8; 1];
        assert!(matches!(s.read(&mut b), Ok(0)), "rumqttd closed its side: the client sees EOF");
    }
    // ...and so does the relay: the slots are free again (each released just after its EOF was sent).
    let started = std::time::Instant::now();
    while connack(v4, &honest) != Some(0) {
        assert!(started.elapsed() < WAIT, "an honest client is shut out by 3 idle sockets");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(idle);
}

/// A CONNECT over TLS from `from` (a loopback address), trusting `ca`: the CONNACK's return code.
async fn connack_over_tls(from: [u8; 4], to: SocketAddr, ca: &rcgen::Certificate, packet: &[u8]) -> Option<u8> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).expect("root");
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::from((from, 0))).expect("bind");
    let tcp = socket.connect(to).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.ok()?;
    tls.write_all(packet).await.ok()?;
    let mut ack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(3), tls.read_exact(&mut ack)).await.ok()?.ok()?;
    Some(ack[3])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_guesser_does_not_lock_out_the_honest_legacy_client_elsewhere() {
    let dir = tempfile::tempdir().expect("dir");
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    std::fs::write(dir.path().join("cert.pem"), issued.cert.pem()).expect("cert");
    std::fs::write(dir.path().join("key.pem"), issued.key_pair.serialize_pem()).expect("key");
    let text = format!(
        "[v4]\nlisten = \"127.0.0.1:0\"\ntls = {{ certpath = \"cert.pem\", keypath = \"key.pem\" }}\n\
         [limits]\nmax_segment_count = 2\n[gate.authority]\nverifying_key = {:?}\n[[gate.legacy]]\n\
         username = \"meter-1\"\npassword_hash = \"{}\"\npublish = [\"legacy/#\"]\n",
        tokio::task::block_in_place(|| common::world().authority_pub()),
        password_hash("meter-pw")
    );
    let broker = tokio::task::block_in_place(|| smqtt_testkit::embedded::start_toml(&text, dir.path()));
    let v4 = broker.v4.expect("v4");
    let guess = connect_packet("legacy:meter-1", "meter-1", "guess");
    let right = connect_packet("legacy:meter-1/h", "meter-1", "meter-pw");
    let mut refused = Vec::new();
    for round in 0..3 {
        for _ in 0..4 {
            refused.push(connack_over_tls([127, 0, 0, 2], v4, &issued.cert, &guess).await);
        }
        // The attacker's guesses are wrong (4) or throttled (5); the honest client at another address, over TLS
        // as well, is hashed and let in every round.
        assert_eq!(connack_over_tls([127, 0, 0, 1], v4, &issued.cert, &right).await, Some(0), "round {round}");
    }
    assert!(refused.iter().all(|code| matches!(code, Some(4 | 5))), "{refused:?}");
    assert!(refused.contains(&Some(5)), "the guesser is throttled: {refused:?}");
}
