//! `smqtt`: enroll a device, publish and subscribe like mosquitto_pub / mosquitto_sub, end-to-end encrypted.
//!
//! Exit codes: 0 success; 1 refused (the authority refused or could not be reached, or a publish the credential
//! does not allow); 2 bad input, configuration or an unreachable broker. Errors are one line on stderr.

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use smqtt_client::{ClientConfig, DeviceStore, Error, SmqttClient};

/// SMQTT: end-to-end confidential MQTT with attribute-based encryption.
#[derive(Debug, Parser)]
#[command(name = "smqtt", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Broker {
    /// Broker host.
    #[arg(short = 'H', long = "host", default_value = "127.0.0.1")]
    host: String,
    /// Broker port.
    #[arg(short, long, default_value_t = 1883)]
    port: u16,
    /// The device store (from `smqtt enroll`).
    #[arg(long, env = "SMQTT_STORE")]
    store: PathBuf,
    /// MQTT protocol version: `mqttv311` or `mqttv5` (as mosquitto_pub's -V).
    #[arg(short = 'V', long = "protocol-version", default_value = "mqttv311", value_parser = ["mqttv311", "mqttv5"])]
    protocol: String,
    /// Session-key authentication (docs/wire.md §6.5): `pub` signs only the envelopes that carry the capsule,
    /// `sub` accepts unsigned envelopes on its -t filters from the publisher whose signed envelope introduced the
    /// session (use it only where the broker binds them to their publisher, e.g. smqtt-gate's [topics] unsigned).
    #[arg(long)]
    unsigned: bool,
}

impl Broker {
    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(&self.host, self.port);
        if self.protocol == "mqttv5" {
            config.protocol = smqtt_client::MqttVersion::V5;
        }
        config.sessions.sign_every_message = !self.unsigned;
        config
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enroll this device with a one-time token from the administrator.
    Enroll {
        /// The authority's URL.
        #[arg(long)]
        authority: String,
        /// The enrollment token.
        #[arg(long)]
        token: String,
        /// Where to keep the device's keys (created 0700).
        #[arg(long)]
        store: PathBuf,
    },
    /// Fetch a fresh key and credential for the authority's current epoch.
    Renew {
        /// The device store.
        #[arg(long, env = "SMQTT_STORE")]
        store: PathBuf,
    },
    /// Publish one message (-m or -f), or one per stdin line (-l).
    Pub {
        #[command(flatten)]
        broker: Broker,
        /// Topic.
        #[arg(short, long)]
        topic: String,
        /// Policy the message is encrypted under (the current epoch is added).
        #[arg(long)]
        policy: String,
        /// The message.
        #[arg(short, long, conflicts_with_all = ["file", "lines"])]
        message: Option<String>,
        /// Send this file as the message.
        #[arg(short, long, conflicts_with = "lines")]
        file: Option<PathBuf>,
        /// One message per line of standard input.
        #[arg(short, long)]
        lines: bool,
        /// QoS 0, 1 or 2.
        #[arg(short, long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
        qos: u8,
        /// Retain.
        #[arg(short, long)]
        retain: bool,
    },
    /// Subscribe and print what this device may read (and one line per message it could not).
    Sub {
        #[command(flatten)]
        broker: Broker,
        /// Topic filter (`+`, `#`); repeatable.
        #[arg(short, long, required = true)]
        topic: Vec<String>,
        /// QoS.
        #[arg(short, long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
        qos: u8,
        /// Print topic and publisher before each payload.
        #[arg(short, long)]
        verbose: bool,
        /// Exit after this many messages (accepted or not).
        #[arg(short = 'C', long)]
        count: Option<u64>,
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
    },
}

struct Failure(String, u8);

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let code = match error {
            Error::Authority(_) | Error::NotPermitted(_) => 1,
            _ => 2,
        };
        Failure(error.to_string(), code)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime.block_on(run(cli.command)),
        Err(e) => Err(Failure(format!("cannot start runtime: {e}"), 2)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message, code)) => {
            let _ = writeln!(std::io::stderr(), "smqtt: {message}");
            ExitCode::from(code)
        }
    }
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Enroll { authority, token, store } => {
            let identity = tokio::task::spawn_blocking(move || DeviceStore::enroll(&store, &authority, &token))
                .await
                .map_err(|e| Failure(e.to_string(), 2))??;
            println!("enrolled {} (epoch {})", identity.device_id, identity.epoch);
            Ok(())
        }
        Command::Renew { store } => {
            let identity = tokio::task::spawn_blocking(move || DeviceStore::at(&store).renew())
                .await
                .map_err(|e| Failure(e.to_string(), 2))??;
            println!("renewed {} (epoch {})", identity.device_id, identity.epoch);
            Ok(())
        }
        Command::Pub { broker, topic, policy, message, file, lines, qos, retain } => {
            let policy = smqtt_abe::Policy::parse(&policy).map_err(|e| Failure(format!("policy: {e}"), 2))?;
            let identity = DeviceStore::at(&broker.store).load()?;
            let (client, _messages) = SmqttClient::connect(identity, &broker.config())?;
            let mut payloads = Vec::new();
            if let Some(m) = message {
                payloads.push(m.into_bytes());
            } else if let Some(path) = file {
                payloads.push(std::fs::read(&path).map_err(|e| Failure(format!("{}: {e}", path.display()), 2))?);
            } else if lines {
                for line in std::io::stdin().lock().lines() {
                    payloads.push(line.map_err(|e| Failure(format!("stdin: {e}"), 2))?.into_bytes());
                }
            } else {
                let mut all = Vec::new();
                std::io::stdin().read_to_end(&mut all).map_err(|e| Failure(format!("stdin: {e}"), 2))?;
                payloads.push(all);
            }
            for payload in payloads {
                client.publish(&topic, &policy, qos, retain, &payload).await?;
            }
            // Let the event loop flush before disconnecting.
            tokio::time::sleep(Duration::from_millis(200)).await;
            client.disconnect().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(())
        }
        Command::Sub { broker, topic, qos, verbose, count, json } => {
            let identity = DeviceStore::at(&broker.store).load()?;
            let mut config = broker.config();
            if broker.unsigned {
                config.accept_unsigned = topic.clone();
            }
            let (client, mut messages) = SmqttClient::connect(identity, &config)?;
            for filter in &topic {
                client.subscribe(filter, qos).await?;
            }
            let mut seen = 0u64;
            while let Some(delivery) = messages.next().await {
                let mut out = std::io::stdout().lock();
                let written = match (&delivery, json) {
                    (Ok(m), false) if verbose => {
                        writeln!(out, "{} [{}] {}", m.topic, m.publisher, String::from_utf8_lossy(&m.payload))
                    }
                    (Ok(m), false) => out.write_all(&m.payload).and_then(|()| out.write_all(b"\n")),
                    (Ok(m), true) => writeln!(
                        out,
                        "{{\"topic\":{},\"publisher\":{},\"payload\":{},\"policy\":{},\"qos\":{},\"retain\":{}}}",
                        json_string(&m.topic),
                        json_string(&m.publisher),
                        json_string(&String::from_utf8_lossy(&m.payload)),
                        json_string(&m.policy),
                        m.qos,
                        m.retain
                    ),
                    (Err(e), false) => writeln!(std::io::stderr(), "smqtt: refused: {e}"),
                    (Err(e), true) => {
                        writeln!(
                            out,
                            "{{\"error\":{},\"message\":{}}}",
                            json_string(e.kind()),
                            json_string(&e.to_string())
                        )
                    }
                };
                if written.is_err() {
                    return Ok(()); // stdout closed (e.g. piped into head)
                }
                seen += 1;
                if count.is_some_and(|c| seen >= c) {
                    break;
                }
            }
            client.disconnect().await;
            Ok(())
        }
    }
}
