//! For the TLS tests, from `smqtt-testkit`: certificate authorities made here (rcgen), smqtt-broker with TLS
//! listeners in-process, Mosquitto with a TLS listener (and a plain one for spies) as a process, and an impostor
//! rumqttd.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use smqtt_testkit::tls::{Ca, Issued};

/// smqtt-broker (the gate trusting `authority_pub`, `plant/#` protected) with TLS on its v3.1.1 and v5
/// listeners, from the `server` certificate.
pub fn smqtt_broker(authority_pub: &Path, dir: &Path, server: &Issued) -> smqtt_broker::RunningBroker {
    smqtt_testkit::embedded::SmqttBroker::new()
        .tls(&server.cert, &server.key)
        .gate(&format!(
            "[gate.authority]\nverifying_key = {authority_pub:?}\n[gate.topics]\nprotected = [\"plant/#\"]\n"
        ))
        .start(dir)
}

/// A Mosquitto process: a TLS listener (`tls`) and a plain one on loopback (`plain`, for spies and attackers).
#[derive(Debug)]
pub struct Mosquitto {
    pub tls: SocketAddr,
    pub plain: SocketAddr,
    pub log: PathBuf,
    broker: smqtt_testkit::mosquitto::Mosquitto,
}

impl Mosquitto {
    /// Its log so far (for assertion messages).
    pub fn log(&self) -> String {
        self.broker.log_text()
    }
}

/// Mosquitto (verbose) with `server` on its TLS listener; `require_certificate`: clients need a certificate
/// from `ca`.
pub fn mosquitto(ca: &Ca, server: &Issued, require_certificate: bool) -> Mosquitto {
    let broker = smqtt_testkit::mosquitto::MosquittoConfig::plain()
        .tls(&ca.file, &server.cert, &server.key, require_certificate)
        .verbose()
        .start();
    Mosquitto {
        tls: broker.tls.expect("the TLS listener"),
        plain: broker.addr,
        log: broker.proc.log_path().to_owned(),
        broker,
    }
}

/// An impostor broker: rumqttd (accepting anyone) with a TLS listener presenting `server` and a plain listener
/// where the attacker sits. Returns (tls, plain).
pub fn impostor(server: &Issued) -> (SocketAddr, SocketAddr) {
    let addrs = smqtt_testkit::rumqttd::Rumqttd::v4()
        .max_connections(100)
        .tls_listener("impostor-tls", &server.cert, &server.key)
        .listener("impostor-plain")
        .start();
    (addrs[0], addrs[1])
}
