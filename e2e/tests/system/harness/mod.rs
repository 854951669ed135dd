//! What the end-to-end tests do with processes. The generic parts — child processes killed on drop with their
//! log tail printed on failure, bounded runs of commands, the workspace's binaries, bounded waits, test
//! directories kept on failure, Mosquitto — come from `smqtt-testkit`; here are the parts of these tests: the
//! `smqtt-authority` process ([`authority`]), the `smqtt` CLI and devices enrolled with it ([`cli`]), and the
//! `smqtt-broker` and Mosquitto processes with the gate configuration all tests use ([`brokers`]).

mod authority;
mod brokers;
mod cli;

use std::sync::Mutex;
use std::time::Duration;

pub use authority::{Authority, Sealing, STATEMENT_CONFIG};
pub use brokers::{gate_toml, gate_toml_polling, statement_epoch, Mosquitto, SmqttBroker};
pub use cli::{enroll, enroll_many, publish_cli, smqtt, CliSubscriber, Device};
pub use smqtt_testkit::clients::client_config;
pub use smqtt_testkit::process::{artifact, binary, run, run_ok, s, Lines, Proc};
pub use smqtt_testkit::wait::wait_for;

/// Upper bound of every wait for something that should happen promptly (a process ready, a message delivered).
pub const WAIT: Duration = Duration::from_secs(15);

/// Runs one test's body: one test at a time (they share two cores with whatever else runs, and time things),
/// on a runtime of its own with two workers (the body itself runs on the test thread and may block on child
/// processes; clients' event loops run on the workers).
pub fn run_test<F: std::future::Future<Output = ()>>(body: F) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    runtime.block_on(body);
}

/// A fresh temporary directory for one test (`smqtt-e2e-<name>-…`), kept on failure: its path is printed.
#[derive(Debug)]
pub struct TestDir(smqtt_testkit::process::TestDir);

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        TestDir(smqtt_testkit::process::TestDir::new(&format!("e2e-{name}")))
    }

    pub fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

/// Waits until `addr` accepts connections; panics with the log tail if `process` exits first.
pub fn wait_listening(addr: std::net::SocketAddr, what: &str, process: &mut Proc) {
    wait_for(&format!("{what} listening on {addr}"), WAIT, || {
        if let Some(status) = process.exited() {
            panic!("{what} exited ({status}) before listening:\n{}", process.tail(40));
        }
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
    });
}
