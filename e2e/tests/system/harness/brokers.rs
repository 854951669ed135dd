//! The brokers as processes: `smqtt-broker` (rumqttd with the gate, restartable on its port) and Mosquitto
//! (from `smqtt-testkit`: with the plugin when there is a gate configuration, optionally with persistence), and
//! the gate configuration all tests use.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use smqtt_testkit::free_port;
use smqtt_testkit::mosquitto::{mosquitto_binary, MosquittoConfig};

use super::{artifact, binary, s, wait_listening, Authority, Proc};

/// The `smqtt-broker` process (rumqttd with the gate).
#[derive(Debug)]
pub struct SmqttBroker {
    pub proc: Proc,
    pub port: u16,
    pub config: PathBuf,
    logs: PathBuf,
}

impl SmqttBroker {
    /// Writes `gate.toml` (`gate`) and `broker.toml` (an MQTT 3.1.1 listener on a free port, that gate) and
    /// starts `smqtt-broker --config broker.toml`; `None` if the binary is not built.
    pub fn start(dir: &Path, gate: &str) -> Option<SmqttBroker> {
        let bin = artifact("smqtt-broker")?;
        let port = free_port();
        let config = dir.join("broker.toml");
        std::fs::write(dir.join("gate.toml"), gate).expect("gate.toml");
        std::fs::write(&config, broker_toml(port)).expect("broker.toml");
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).expect("logs dir");
        let mut command = Command::new(&bin);
        command.arg("--config").arg(&config).env("RUST_LOG", "warn");
        let mut proc = Proc::spawn("smqtt-broker", command, &logs, false);
        wait_listening(SocketAddr::from(([127, 0, 0, 1], port)), "smqtt-broker", &mut proc);
        Some(SmqttBroker { proc, port, config, logs })
    }

    /// SIGTERM and start again with the same configuration (same port).
    pub fn restart(&mut self) {
        let _ = self.proc.terminate(Duration::from_secs(10));
        let mut command = Command::new(binary("smqtt-broker"));
        command.arg("--config").arg(&self.config).env("RUST_LOG", "warn");
        self.proc = Proc::spawn("smqtt-broker", command, &self.logs, false);
        wait_listening(SocketAddr::from(([127, 0, 0, 1], self.port)), "smqtt-broker", &mut self.proc);
    }
}

/// The embedded broker's configuration (see the smqtt-broker crate): an MQTT 3.1.1 listener on `port`, and the
/// gate's own file, in the same format the Mosquitto plugin reads.
fn broker_toml(port: u16) -> String {
    format!("gate_config = \"gate.toml\"\n\n[v4]\nlisten = \"127.0.0.1:{port}\"\n")
}

/// The gate configuration all tests use: the authority's key, `plant/#` protected, optionally an epoch file.
///
/// The epoch file must hold an authority-signed statement (`smqtt-epoch1.…`, docs/wire.md §10), never a bare
/// number: point it at the authority's `[epochs] statement_file` ([`super::STATEMENT_CONFIG`],
/// [`Authority::statement_file`]), which `serve` keeps current, as an operator with broker and authority on one
/// host does.
pub fn gate_toml(authority: &Authority, epoch_file: Option<&Path>) -> String {
    let mut text = format!("[authority]\nverifying_key = \"{}\"\n", s(&authority.verifying_key()));
    if let Some(file) = epoch_file {
        text.push_str(&format!("epoch_file = \"{}\"\n", s(file)));
    }
    text.push_str("[topics]\nprotected = [\"plant/#\", \"load/#\"]\n");
    text
}

/// The epoch named by the statement in `file`, if it holds one signed by `authority` (a device's pinned key).
pub fn statement_epoch(file: &Path, authority: &smqtt_wire::VerifyingKey) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    smqtt_wire::EpochStatement::parse(text.trim()).ok()?.verify(authority).ok().map(|v| v.epoch())
}

/// [`gate_toml`] for a broker that follows the authority itself, as one on another host does: it polls the
/// authority's signed epoch statement every second (`[authority] url`) and caches the newest in `cache`.
pub fn gate_toml_polling(authority: &Authority, cache: &Path) -> String {
    gate_toml(authority, Some(cache)).replacen(
        "[topics]",
        &format!("url = \"{}\"\nepoch_poll_secs = 1\n[topics]", authority.url),
        1,
    )
}

/// Mosquitto as a process (`log_type all`), optionally with the SMQTT plugin and persistence.
#[derive(Debug)]
pub struct Mosquitto {
    pub broker: smqtt_testkit::mosquitto::Mosquitto,
    pub with_plugin: bool,
}

impl std::ops::Deref for Mosquitto {
    type Target = smqtt_testkit::mosquitto::Mosquitto;

    fn deref(&self) -> &Self::Target {
        &self.broker
    }
}

impl std::ops::DerefMut for Mosquitto {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.broker
    }
}

impl Mosquitto {
    /// With the plugin and `gate` when given, else plain; in `dir` (logs in `dir/logs`, the database in
    /// `dir/mosquitto-db`). `None` (after saying so on stderr) if Mosquitto is not installed.
    pub fn start(dir: &Path, gate: Option<&str>, persistence: bool) -> Option<Mosquitto> {
        if mosquitto_binary().is_none() {
            eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto; .ci/run does)");
            return None;
        }
        let config = match gate {
            Some(gate) => {
                let plugin = artifact("libsmqtt_mosquitto.so").unwrap_or_else(|| binary("libsmqtt_mosquitto.so"));
                let gate_file = dir.join("mosquitto-gate.toml");
                std::fs::write(&gate_file, gate).expect("gate config");
                MosquittoConfig::with_plugin_file(&plugin, &gate_file)
            }
            None => MosquittoConfig::plain(),
        };
        let config = if persistence { config.persistence() } else { config };
        Some(Mosquitto { broker: config.log_all().start_in(dir), with_plugin: gate.is_some() })
    }
}
