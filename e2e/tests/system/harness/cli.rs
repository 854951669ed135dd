//! The `smqtt` CLI: devices enrolled with `smqtt enroll` (one by one, or many in parallel), `smqtt pub` of one
//! message, and `smqtt sub --json` processes read line by line.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use smqtt_client::{DeviceStore, Identity};

use super::{binary, run_ok, s, Authority, Lines, Proc};

/// `smqtt <args>` with a clean environment.
pub fn smqtt(args: &[&str]) -> Command {
    let mut command = Command::new(binary("smqtt"));
    command.args(args).env_remove("SMQTT_STORE").env("RUST_LOG", "warn");
    command
}

/// A device enrolled with `smqtt enroll` into its own store.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    pub store: PathBuf,
}

impl Device {
    pub fn store(&self) -> DeviceStore {
        DeviceStore::at(&self.store)
    }

    pub fn identity(&self) -> Identity {
        self.store().load().unwrap_or_else(|e| panic!("load the store of {}: {e}", self.id))
    }

    pub fn store_arg(&self) -> &str {
        s(&self.store)
    }
}

/// Registers `id` with the admin CLI and enrolls it with `smqtt enroll`.
pub fn enroll(authority: &Authority, id: &str, attrs: &str, publish: &[&str]) -> Device {
    let token = authority.add_device(id, attrs, publish);
    let store = authority.dir.join("stores").join(id);
    let out = run_ok(
        "smqtt enroll",
        smqtt(&["enroll", "--authority", &authority.url, "--token", &token, "--store", s(&store)]),
    );
    assert!(out.starts_with(&format!("enrolled {id} (epoch ")), "smqtt enroll said {out:?}");
    Device { id: id.to_owned(), store }
}

/// Registers many devices over the API and enrolls them with `smqtt enroll`, `parallel` processes at a time.
pub fn enroll_many(authority: &Authority, devices: &[(String, String, Vec<String>)], parallel: usize) -> Vec<Device> {
    let tokens = authority.add_devices_api(devices);
    let stores = authority.dir.join("stores");
    let mut out = Vec::new();
    for (chunk, tokens) in devices.chunks(parallel).zip(tokens.chunks(parallel)) {
        let children: Vec<(Device, Child)> = chunk
            .iter()
            .zip(tokens)
            .map(|((id, _, _), token)| {
                let store = stores.join(id);
                let child = smqtt(&["enroll", "--authority", &authority.url, "--token", token, "--store", s(&store)])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start smqtt enroll");
                (Device { id: id.clone(), store }, child)
            })
            .collect();
        for (device, child) in children {
            let result = child.wait_with_output().expect("wait for smqtt enroll");
            assert!(
                result.status.success(),
                "smqtt enroll {} failed: {}",
                device.id,
                String::from_utf8_lossy(&result.stderr)
            );
            out.push(device);
        }
    }
    out
}

/// `smqtt pub` of one message; asserts exit 0.
pub fn publish_cli(device: &Device, port: u16, topic: &str, policy: &str, message: &str) {
    run_ok(
        "smqtt pub",
        smqtt(&[
            "pub",
            "--store",
            device.store_arg(),
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "--policy",
            policy,
            "-m",
            message,
            "-q",
            "1",
        ]),
    );
}

/// A running `smqtt sub --json` process and its output lines.
#[derive(Debug)]
pub struct CliSubscriber {
    pub proc: Proc,
    pub lines: Lines,
}

impl CliSubscriber {
    pub fn start(device: &Device, port: u16, filter: &str, logs: &Path) -> CliSubscriber {
        let command =
            smqtt(&["sub", "--store", device.store_arg(), "-p", &port.to_string(), "-t", filter, "-q", "1", "--json"]);
        let mut proc = Proc::spawn(&format!("smqtt-sub-{}", device.id), command, logs, true);
        let lines = proc.stdout_lines();
        CliSubscriber { proc, lines }
    }

    /// The next JSON line within `timeout`.
    pub fn next_json(&mut self, timeout: Duration) -> Option<serde_json::Value> {
        let line = self.lines.next(timeout)?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", self.proc.name)))
    }

    /// The next JSON line that is not about `skip_topic` (probes), within `timeout`.
    pub fn next_skipping(&mut self, skip_topic: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let value = self
                .next_json(left)
                .unwrap_or_else(|| panic!("{}: nothing but probes within {timeout:?}", self.proc.name));
            if !mentions_topic(&value, skip_topic) {
                return value;
            }
        }
    }
}

/// Whether a `smqtt sub --json` line is about `topic` or below (an accepted message's `topic`, or a refusal's
/// text).
pub fn mentions_topic(value: &serde_json::Value, topic: &str) -> bool {
    value["topic"].as_str().is_some_and(|t| t.starts_with(topic))
        || value["message"].as_str().is_some_and(|m| m.contains(topic))
}
