//! Raw MQTT 3.1.1 packets, encoded by hand, for what well-behaved clients will not send (wills of a test's
//! choosing, garbage after a CONNECT, floods), and a CONNECT over a plain socket.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};

use crate::wait::WAIT;

/// The remaining-length varint of MQTT.
pub fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return;
        }
    }
}

/// A length-prefixed field (UTF-8 string or binary data).
pub fn field(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&u16::try_from(bytes.len()).expect("an MQTT field of at most 65535 bytes").to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A packet: the first byte, the remaining length, `body`.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    remaining_length(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// A will: topic, payload, QoS, retain.
#[derive(Debug, Clone, Copy)]
pub struct Will<'a> {
    /// The will's topic.
    pub topic: &'a str,
    /// The will's payload.
    pub payload: &'a [u8],
    /// Its QoS (0–2).
    pub qos: u8,
    /// Its retain flag.
    pub retain: bool,
}

/// CONNECT (MQTT 3.1.1, clean session, keep-alive 60 s), with the fields given.
pub fn connect_packet(
    client_id: &str,
    username: Option<&str>,
    password: Option<&[u8]>,
    will: Option<&Will<'_>>,
) -> Vec<u8> {
    let mut flags = 0x02u8;
    if let Some(will) = will {
        flags |= 0x04 | (will.qos << 3) | if will.retain { 0x20 } else { 0 };
    }
    if username.is_some() {
        flags |= 0x80;
    }
    if password.is_some() {
        flags |= 0x40;
    }
    let mut body = Vec::new();
    field(b"MQTT", &mut body);
    body.extend_from_slice(&[4, flags, 0, 60]);
    field(client_id.as_bytes(), &mut body);
    if let Some(will) = will {
        field(will.topic.as_bytes(), &mut body);
        field(will.payload, &mut body);
    }
    if let Some(username) = username {
        field(username.as_bytes(), &mut body);
    }
    if let Some(password) = password {
        field(password, &mut body);
    }
    packet(0x10, &body)
}

/// [`connect_packet`] with a username and password (`login`), or neither.
pub fn login_packet(client_id: &str, login: Option<(&str, &str)>, will: Option<&Will<'_>>) -> Vec<u8> {
    connect_packet(client_id, login.map(|(user, _)| user), login.map(|(_, password)| password.as_bytes()), will)
}

/// PUBLISH at QoS 0.
pub fn publish_packet(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    field(topic.as_bytes(), &mut body);
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

/// Connects over a plain socket, sends `connect`, and returns the socket with the CONNACK's return code
/// (`None`: the broker closed the connection or did not answer within [`WAIT`] — some do that for malformed
/// CONNECTs, or when they are full).
pub fn raw_connect(addr: SocketAddr, connect: &[u8]) -> (TcpStream, Option<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(WAIT)).expect("set a read timeout");
    stream.set_nodelay(true).expect("set TCP_NODELAY");
    if stream.write_all(connect).is_err() {
        return (stream, None);
    }
    let mut connack = [0u8; 4];
    match stream.read_exact(&mut connack) {
        Ok(()) => {
            assert_eq!(connack[..2], [0x20, 2], "not a CONNACK");
            (stream, Some(connack[3]))
        }
        Err(_) => (stream, None),
    }
}
