//! smqtt-broker (rumqttd with the gate) in-process, from the same TOML an operator writes: listeners on
//! `127.0.0.1:0` (the broker resolves the ports), optional TLS and metrics, limits, and the gate inline (`[gate]`)
//! or in a file of its own (`gate_config`). Its threads live until the process exits.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use smqtt_broker::{BrokerConfig, RunningBroker};

/// A `broker.toml` in the making; [`SmqttBroker::start`].
#[derive(Debug, Clone)]
pub struct SmqttBroker {
    v4: bool,
    v5: bool,
    metrics: bool,
    tls: Option<(PathBuf, PathBuf)>,
    limits: String,
    gate: Option<String>,
    gate_config: Option<PathBuf>,
}

impl Default for SmqttBroker {
    fn default() -> Self {
        SmqttBroker::new()
    }
}

impl SmqttBroker {
    /// An MQTT 3.1.1 and an MQTT 5 listener, nothing else (the gate's defaults).
    pub fn new() -> SmqttBroker {
        SmqttBroker {
            v4: true,
            v5: true,
            metrics: false,
            tls: None,
            limits: String::new(),
            gate: None,
            gate_config: None,
        }
    }

    /// Only the MQTT 3.1.1 listener.
    pub fn v4_only(mut self) -> SmqttBroker {
        self.v5 = false;
        self
    }

    /// `GET /metrics` on a free port too ([`RunningBroker::metrics`]).
    pub fn metrics(mut self) -> SmqttBroker {
        self.metrics = true;
        self
    }

    /// TLS on the MQTT listeners, with this certificate chain and key (PEM files).
    pub fn tls(mut self, cert: &Path, key: &Path) -> SmqttBroker {
        self.tls = Some((cert.to_owned(), key.to_owned()));
        self
    }

    /// Lines of the `[limits]` table (e.g. `max_segment_count = 2\n`).
    pub fn limits(mut self, lines: &str) -> SmqttBroker {
        self.limits.push_str(lines);
        if !self.limits.ends_with('\n') {
            self.limits.push('\n');
        }
        self
    }

    /// The gate's configuration inline: the text goes under `[gate]` (its own tables as `[gate.topics]` etc.).
    pub fn gate(mut self, text: &str) -> SmqttBroker {
        self.gate = Some(text.to_owned());
        self
    }

    /// The gate's configuration in a file of its own (`gate_config`, the format the Mosquitto plugin reads).
    pub fn gate_config(mut self, file: &Path) -> SmqttBroker {
        self.gate_config = Some(file.to_owned());
        self
    }

    /// The `broker.toml` text.
    pub fn text(&self) -> String {
        let mut text = String::new();
        if let Some(file) = &self.gate_config {
            let _ = writeln!(text, "gate_config = {file:?}");
        }
        let tls = self.tls.as_ref().map(|(cert, key)| format!("tls = {{ certpath = {cert:?}, keypath = {key:?} }}\n"));
        for (on, table) in [(self.v4, "v4"), (self.v5, "v5")] {
            if on {
                let _ = write!(text, "[{table}]\nlisten = \"127.0.0.1:0\"\n{}", tls.as_deref().unwrap_or(""));
            }
        }
        if self.metrics {
            text.push_str("[metrics]\nlisten = \"127.0.0.1:0\"\n");
        }
        if !self.limits.is_empty() {
            let _ = write!(text, "[limits]\n{}", self.limits);
        }
        if let Some(gate) = &self.gate {
            let _ = write!(text, "[gate]\n{gate}");
        }
        text
    }

    /// Starts the broker, relative paths taken from `dir`.
    pub fn start(&self, dir: &Path) -> RunningBroker {
        start_toml(&self.text(), dir)
    }
}

/// Starts smqtt-broker from a whole `broker.toml` text (relative paths from `dir`); panics with the reason and
/// the text when the configuration is refused.
pub fn start_toml(text: &str, dir: &Path) -> RunningBroker {
    let config = BrokerConfig::from_toml_str(text, dir).unwrap_or_else(|e| panic!("{e}\n{text}"));
    smqtt_broker::start(config).unwrap_or_else(|e| panic!("start smqtt-broker: {e}\n{text}"))
}
