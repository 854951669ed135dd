//! A local process dialling rumqttd's loopback listener behind smqtt-broker's front door directly, which would
//! skip the front door's PUBLISH checks and claim any source address: without the front door's header, or with
//! a header whose secret is guessed, the connection is closed before any CONNACK. Alone in its test binary, so
//! that every loopback listener of the process is this broker's.

use std::net::SocketAddr;

use smqtt_testkit::packets::{login_packet, raw_connect};

fn connack(addr: SocketAddr, packet: &[u8]) -> Option<u8> {
    raw_connect(addr, packet).1
}

/// The TCP ports this process listens on at 127.0.0.1 (from `/proc/net/tcp`, sockets matched to our fds).
fn own_loopback_listeners() -> Vec<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .expect("fds")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            let (ip, port) = local.split_once(':')?;
            (*state == "0A" && ip == "0100007F" && inodes.contains(*inode))
                .then(|| u16::from_str_radix(port, 16).ok())?
        })
        .collect()
}

#[test]
fn dialling_rumqttd_behind_the_front_door_directly_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = smqtt_testkit::embedded::SmqttBroker::new().metrics().gate("enforcement = false\n").start(dir.path());
    let (v4, v5, metrics) = (broker.v4.expect("v4"), broker.v5.expect("v5"), broker.metrics.expect("metrics"));
    // Longer than the header, so that it is read (and refused) as one.
    let honest = login_packet("anyone-with-a-client-id-longer-than-the-header", None, None);
    assert_eq!(connack(v4, &honest), Some(0), "through the front door");
    let public = [v4.port(), v5.port(), metrics.port()];
    let internal: Vec<u16> = own_loopback_listeners().into_iter().filter(|p| !public.contains(p)).collect();
    assert!(internal.len() >= 2, "rumqttd's loopback listeners of this broker: {internal:?}");
    let mut forged = b"SMQTTPX2".to_vec();
    forged.extend([0u8; 40]);
    forged.extend(&honest);
    for port in internal {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(connack(addr, &honest), None, "port {port}: a CONNECT without the header");
        assert_eq!(connack(addr, &forged), None, "port {port}: a header with a guessed secret");
    }
    assert_eq!(connack(v4, &honest), Some(0), "the honest path still works");
}
