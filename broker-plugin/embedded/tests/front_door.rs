//! The front door (`front.rs`, plain TCP with legacy clients configured) holds a `max_connections` slot per
//! relayed connection. Found by an adversarial review: a slot used to stay taken until *both* directions ended,
//! so `max_connections` sockets that never send nor close shut every plain-TCP client out for good.

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
