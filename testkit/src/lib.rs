//! The SMQTT test world, written once: every test crate, the benches and the end-to-end tests build on it
//! (as a dev-dependency; no library depends on it).
//!
//! | module | what it gives |
//! |---|---|
//! | [`ports`] | free loopback ports, waiting until something listens |
//! | [`wait`] | bounded waits on a condition, a channel or a metric instead of fixed sleeps |
//! | [`metrics`] | `GET /metrics` and reading Prometheus text |
//! | [`authority`] | a real authority in-process on loopback HTTP(S), and devices enrolled with it |
//! | [`credentials`] | credentials, tokens, stores and gates minted offline (no authority), Argon2 hashes |
//! | [`rumqttd`] | rumqttd in-process (v3.1.1, v5, TLS, several listeners) |
//! | [`embedded`] | smqtt-broker in-process from a TOML text |
//! | [`mosquitto`] | a Mosquitto process, with or without `libsmqtt_mosquitto.so`, killed on drop |
//! | [`process`] | child processes killed on drop whose log tail is printed when a test fails; workspace binaries |
//! | [`packets`] | raw MQTT 3.1.1 packets (CONNECT, PUBLISH) and a raw CONNECT over a socket |
//! | [`clients`] | raw rumqttc clients (v3.1.1, v5) reporting what they see, SDK helpers |
//! | [`tls`] | test certificate authorities and the certificates they issue (rcgen) |
//!
//! Everything here panics with a message naming what failed: it is test code, and a failed set-up is a failed
//! test.

pub mod authority;
pub mod clients;
pub mod credentials;
pub mod embedded;
pub mod metrics;
pub mod mosquitto;
pub mod packets;
pub mod ports;
pub mod process;
pub mod rumqttd;
pub mod tls;
pub mod wait;

pub use authority::{Enrolled, TestAuthority};
pub use ports::free_port;
pub use wait::{wait_until, WAIT};

/// Seconds since the Unix epoch (the clock credentials and CONNECT tokens are checked against).
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
