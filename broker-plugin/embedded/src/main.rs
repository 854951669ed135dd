//! `smqtt-broker --config broker.toml`: the embedded SMQTT broker. It runs until SIGTERM or SIGINT, then stops
//! (`smqtt-broker: stopping (SIGTERM)` on stderr). Exit codes: 0 stopped by a signal, 1 the broker could not
//! start, 2 bad command line or configuration. Errors are one line on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// The SMQTT broker: rumqttd with SMQTT enforcement (credentials at CONNECT, publish rights, envelope checks,
/// broker-side sealing for legacy clients) and Prometheus metrics.
#[derive(Debug, Parser)]
#[command(name = "smqtt-broker", version)]
struct Args {
    /// The broker configuration (TOML); see the smqtt-broker crate docs.
    #[arg(long, short)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if e.use_stderr() => {
            eprintln!("smqtt-broker: {}", e.to_string().lines().next().unwrap_or("bad arguments"));
            return ExitCode::from(2);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("smqtt_broker=info,rumqttd=off"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let config = match smqtt_broker::BrokerConfig::from_file(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("smqtt-broker: {e}");
            return ExitCode::from(2);
        }
    };
    let broker = match smqtt_broker::start(config) {
        Ok(broker) => broker,
        Err(e @ (smqtt_broker::Error::Config(_) | smqtt_broker::Error::Gate(_))) => {
            eprintln!("smqtt-broker: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("smqtt-broker: {e}");
            return ExitCode::from(1);
        }
    };
    // The handlers are in place before "listening" is printed: a supervisor may signal as soon as it reads it.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("smqtt-broker: cannot wait for signals: {e}");
            return ExitCode::from(1);
        }
    };
    let signals = match runtime.block_on(async { StopSignals::install() }) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("smqtt-broker: cannot wait for signals: {e}");
            return ExitCode::from(1);
        }
    };
    let show = |a: Option<std::net::SocketAddr>| a.map_or_else(|| "-".to_owned(), |a| a.to_string());
    tracing::info!(v4 = %show(broker.v4), v5 = %show(broker.v5), metrics = %show(broker.metrics), "smqtt-broker listening");
    eprintln!(
        "smqtt-broker: listening: v4 {} v5 {} metrics {}",
        show(broker.v4),
        show(broker.v5),
        show(broker.metrics)
    );
    let signal = runtime.block_on(signals.first());
    // rumqttd keeps its state in memory and has no shutdown of its own: leaving the process ends its threads;
    // everything logged is already written (stderr is unbuffered).
    tracing::info!(signal, "smqtt-broker stopping");
    eprintln!("smqtt-broker: stopping ({signal})");
    ExitCode::SUCCESS
}

/// SIGTERM and SIGINT, caught from [`install`](Self::install) on.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Catches both (inside a Tokio runtime).
    fn install() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    /// The first of them to arrive, by name.
    async fn first(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
