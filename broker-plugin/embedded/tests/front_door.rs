//! The front door (`front.rs`, plain TCP with legacy clients configured) holds a `max_connections` slot per
//! relayed connection. Found by an adversarial review: a slot used to stay taken until *both* directions ended,
//! so `max_connections` sockets that never send nor close shut every plain-TCP client out for good.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn password_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    let params = argon2::Params::new(1024, 1, 1, None).expect("params");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"smqtt-test-salt!").expect("salt");
    argon.hash_password(password.as_bytes(), &salt).expect("hash").to_string()
}

fn put_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn connect_packet(client_id: &str, user: &str, password: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60];
    put_str(&mut body, client_id.as_bytes());
    put_str(&mut body, user.as_bytes());
    put_str(&mut body, password.as_bytes());
    assert!(body.len() < 128);
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend_from_slice(&body);
    packet
}

fn connack(addr: SocketAddr, packet: &[u8]) -> Option<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    stream.write_all(packet).ok()?;
    let mut ack = [0u8; 4];
    stream.read_exact(&mut ack).ok().map(|()| ack[3])
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
    let config = smqtt_broker::BrokerConfig::from_toml_str(&text, dir.path()).expect("config");
    let broker = smqtt_broker::start(config).expect("start");
    let v4 = broker.v4.expect("v4");
    let honest = connect_packet("legacy:meter-1", "meter-1", "meter-pw");
    assert_eq!(connack(v4, &honest), Some(0), "baseline");
    std::thread::sleep(Duration::from_millis(300));
    // Three sockets that never send a byte and never close.
    let idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(v4).expect("connect")).collect();
    // rumqttd gives up on them after 300 ms (no CONNECT) and closes its side...
    std::thread::sleep(Duration::from_millis(2000));
    for mut s in &idle {
        s.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
        let mut b = [0u8; 1];
        assert!(matches!(s.read(&mut b), Ok(0)), "rumqttd closed its side: the client sees EOF");
    }
    // ...and so does the relay: the slots are free again.
    assert_eq!(connack(v4, &honest), Some(0), "an honest client is shut out by 3 idle sockets");
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
    let config = smqtt_broker::BrokerConfig::from_toml_str(&text, dir.path()).expect("config");
    let broker = tokio::task::block_in_place(|| smqtt_broker::start(config)).expect("start");
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
