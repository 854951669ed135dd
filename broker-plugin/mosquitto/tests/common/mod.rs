//! The plugin tests' world, from `smqtt-testkit`: an in-process authority with enrolled devices, a real
//! `mosquitto` process with the plugin loaded (and its metrics), and raw MQTT 3.1.1 packets for what clients
//! won't send.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::net::{SocketAddr, TcpStream};

pub use smqtt_testkit::credentials::{password_hash, token};
pub use smqtt_testkit::metrics::metric;
pub use smqtt_testkit::mosquitto::{
    have_mosquitto, mosquitto_sub_once, plugin_conf as mosquitto_conf, plugin_path, MosquittoConfig,
};
pub use smqtt_testkit::packets::{connect_packet, publish_packet, Will};
pub use smqtt_testkit::wait::WAIT;
pub use smqtt_testkit::{free_port, now, TestAuthority as World};

/// A mosquitto process with the plugin loaded and its metrics on; killed on drop.
#[derive(Debug)]
pub struct Mosquitto {
    pub port: u16,
    pub metrics: SocketAddr,
    broker: smqtt_testkit::mosquitto::Mosquitto,
}

impl std::ops::Deref for Mosquitto {
    type Target = smqtt_testkit::mosquitto::Mosquitto;

    fn deref(&self) -> &Self::Target {
        &self.broker
    }
}

impl Mosquitto {
    /// Starts mosquitto on a free port with the gate configuration `gate_toml`.
    pub fn start(gate_toml: &str) -> Mosquitto {
        Mosquitto::started(MosquittoConfig::with_plugin(gate_toml).metrics().start())
    }

    /// [`start`](Self::start), logging every subscription (`wait_subscribed`).
    pub fn logging_subscriptions(gate_toml: &str) -> Mosquitto {
        Mosquitto::started(MosquittoConfig::with_plugin(gate_toml).metrics().log_subscriptions().start())
    }

    fn started(broker: smqtt_testkit::mosquitto::Mosquitto) -> Mosquitto {
        Mosquitto { port: broker.port, metrics: broker.metrics_addr(), broker }
    }

    pub fn addr(&self) -> SocketAddr {
        self.broker.addr
    }
}

/// `GET /metrics` from the plugin's responder at `addr`.
pub fn http_get(addr: SocketAddr) -> String {
    smqtt_testkit::metrics::scrape(addr)
}

/// Connects a raw client and returns the socket and the CONNACK return code (0xff: closed without one, as
/// Mosquitto may do for malformed CONNECTs).
pub fn raw_connect(addr: SocketAddr, connect: &[u8]) -> (TcpStream, u8) {
    let (stream, code) = smqtt_testkit::packets::raw_connect(addr, connect);
    (stream, code.unwrap_or(0xff))
}
