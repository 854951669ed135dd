//! `broker.toml`: listeners, limits, metrics and the gate (inline or a path).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

/// The broker's configuration. Every key is optional except at least one of `[v4]` / `[v5]` and the gate (a
/// `[gate]` table or `gate_config`); unknown keys are an error.
///
/// ```toml
/// gate_config = "gate.toml"          # or an inline [gate] table with the same keys (see smqtt-gate)
/// [v4]
/// listen = "0.0.0.0:1883"            # MQTT 3.1.1; port 0 picks a free port
/// [v5]
/// listen = "0.0.0.0:1884"            # MQTT 5
/// tls = { certpath = "cert.pem", keypath = "key.pem" }   # optional, per listener (PEM chain + key)
/// [metrics]
/// listen = "127.0.0.1:9883"          # GET /metrics (Prometheus text)
/// [limits]
/// max_connections = 10000
/// max_packet_size = 393216           # bytes per MQTT packet (envelopes of 256 KiB payloads fit)
/// max_inflight_count = 100
/// connection_timeout_ms = 5000       # time to send CONNECT
/// max_outgoing_packet_count = 200
/// max_segment_size = 1048576         # in-memory log per topic filter: segment bytes...
/// max_segment_count = 4              # ...and segments kept
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// MQTT 3.1.1 listener.
    #[serde(default)]
    pub v4: Option<ListenerConfig>,
    /// MQTT 5 listener.
    #[serde(default)]
    pub v5: Option<ListenerConfig>,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Path of the gate's configuration file (relative to this file).
    #[serde(default)]
    pub gate_config: Option<PathBuf>,
    /// The gate's configuration inline (relative paths inside it are relative to this file).
    #[serde(default)]
    pub gate: Option<toml::Table>,
    /// Directory relative paths are resolved against (set by [`BrokerConfig::from_file`]; not a TOML key).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// One MQTT listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Address to listen on (port 0: a free port, reported by [`crate::RunningBroker`]).
    pub listen: SocketAddr,
    /// TLS: PEM certificate chain and private key.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
}

/// TLS files of a listener (rustls; TLS 1.2/1.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub certpath: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub keypath: PathBuf,
}

/// The metrics endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address for `GET /metrics`.
    pub listen: SocketAddr,
}

/// Broker limits (rumqttd's upstream defaults allow 1 GB logs per filter and 20 KiB payloads; these do not).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Concurrent connections.
    #[serde(default = "d_connections")]
    pub max_connections: usize,
    /// Largest MQTT packet accepted; larger ones close the connection.
    #[serde(default = "d_packet")]
    pub max_packet_size: usize,
    /// Unacknowledged packets per connection.
    #[serde(default = "d_inflight")]
    pub max_inflight_count: usize,
    /// Time a new connection has to send CONNECT (at most 65 535 ms).
    #[serde(default = "d_timeout")]
    pub connection_timeout_ms: u16,
    /// Packets queued to a slow subscriber before the router stops reading for it.
    #[serde(default = "d_outgoing")]
    pub max_outgoing_packet_count: u64,
    /// Bytes per in-memory log segment (per topic filter; at least 1024).
    #[serde(default = "d_segment")]
    pub max_segment_size: usize,
    /// Segments kept per filter (at least 1).
    #[serde(default = "d_segments")]
    pub max_segment_count: usize,
}

fn d_connections() -> usize {
    10_000
}
fn d_packet() -> usize {
    384 * 1024
}
fn d_inflight() -> usize {
    100
}
fn d_timeout() -> u16 {
    5000
}
fn d_outgoing() -> u64 {
    200
}
fn d_segment() -> usize {
    1024 * 1024
}
fn d_segments() -> usize {
    4
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: d_connections(),
            max_packet_size: d_packet(),
            max_inflight_count: d_inflight(),
            connection_timeout_ms: d_timeout(),
            max_outgoing_packet_count: d_outgoing(),
            max_segment_size: d_segment(),
            max_segment_count: d_segments(),
        }
    }
}

impl BrokerConfig {
    /// Parses `text`; relative paths resolve against `base_dir`.
    ///
    /// # Errors
    /// [`Error::Config`].
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<BrokerConfig, Error> {
        let mut config: BrokerConfig = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        config.base_dir = base_dir.to_path_buf();
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses the file at `path`.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Config`].
    pub fn from_file(path: &Path) -> Result<BrokerConfig, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        BrokerConfig::from_toml_str(&text, path.parent().unwrap_or_else(|| Path::new(".")))
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.v4.is_none() && self.v5.is_none() {
            return Err(Error::Config("configure at least one of [v4] and [v5]".into()));
        }
        if self.gate.is_some() == self.gate_config.is_some() {
            return Err(Error::Config(
                "configure the gate either inline ([gate]) or as gate_config, exactly once".into(),
            ));
        }
        let l = &self.limits;
        if l.max_segment_size < 1024 || l.max_segment_count == 0 || l.max_connections == 0 || l.max_inflight_count == 0
        {
            return Err(Error::Config(
                "[limits]: max_segment_size >= 1024, max_segment_count, max_connections, max_inflight_count >= 1"
                    .into(),
            ));
        }
        if l.max_packet_size < 1024 {
            return Err(Error::Config("[limits] max_packet_size must be at least 1024".into()));
        }
        Ok(())
    }

    pub(crate) fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}
