//! `smqtt-demo demo`: the whole SMQTT system on loopback, in a temporary directory, explained as it runs.
//!
//! It starts the key authority (SQLite, sealed secrets) and the embedded broker with enforcement, enrolls five
//! devices, lets a temperature sensor and a legacy plaintext sensor (whose messages the broker seals) publish to
//! three subscribers with different attributes, shows who reads what and why the others cannot, then revokes one
//! subscriber: the epoch advances and new data is unreadable to it while the others go on. Exit status 0 when
//! every expectation held, 1 when one did not, 2 when the demo could not run. `--keep` leaves the authority and
//! the broker running and prints the commands to try `smqtt pub` / `smqtt sub` by hand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod scenario;
mod world;

#[derive(Debug, Parser)]
#[command(name = "smqtt-demo", version, about = "The whole SMQTT system on loopback, in one command")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Authority + broker + two publishers + three subscribers + a revocation, on loopback.
    Demo {
        /// Leave the authority and the broker running afterwards (until Ctrl-C), with commands to try.
        #[arg(long)]
        keep: bool,
        /// Messages the temperature sensor publishes in each round.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        messages: u32,
    },
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DemoError {
    /// Something the demo needs could not be set up (port, directory, a component refused to start).
    #[error("{0}")]
    Setup(String),
    /// The system did not behave as the scenario expects.
    #[error("expectation failed: {0}")]
    Expectation(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Demo { keep, messages } = cli.command;
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("smqtt-demo: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(scenario::run(scenario::Options { keep, messages }));
    // The runtime owns the authority's server task and the clients; shut it down without waiting on them.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ DemoError::Expectation(_)) => {
            eprintln!("smqtt-demo: {error}");
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("smqtt-demo: {error}");
            ExitCode::from(2)
        }
    }
}
