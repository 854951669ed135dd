//! `smqtt`: enroll a device, publish and subscribe like mosquitto_pub / mosquitto_sub, end-to-end encrypted.
//!
//! Exit codes: 0 success (`pub`: every message acknowledged by the broker); 1 refused (by the authority, or by
//! the broker: the CONNECT after a renewal attempt, a publish or a subscription; a publish the credential does not
//! allow); 2 bad input, configuration, an unreachable or silent broker, a failed TLS handshake (an untrusted broker
//! certificate); 3 sent but not acknowledged (the connection failed or `--timeout` passed first: the message may or
//! may not have arrived: sending it again may deliver it twice). Errors are one line on stderr.

mod follow;
mod output;
mod stream;

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use smqtt_client::{ClientConfig, DeviceStore, Error, QoS, TlsConfig};

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
    /// Broker port [default: 1883, or 8883 with TLS].
    #[arg(short, long)]
    port: Option<u16>,
    /// The broker as a URL instead of -H/-p: `mqtt://HOST[:PORT]` (TCP, port 1883 by default) or
    /// `mqtts://HOST[:PORT]` (TLS, port 8883 by default; the system's trusted CAs unless --cafile).
    #[arg(short = 'L', long = "url", value_name = "URL", conflicts_with_all = ["host", "port"])]
    url: Option<String>,
    /// TLS: trust the CA certificates of this PEM file for the broker's certificate (TLS also with -H/-p).
    #[arg(long, value_name = "FILE")]
    cafile: Option<PathBuf>,
    /// TLS with -H/-p, trusting the system's CAs (SSL_CERT_FILE / SSL_CERT_DIR if set), as mqtts:// does.
    #[arg(long, conflicts_with = "cafile")]
    tls_use_os_certs: bool,
    /// TLS: present this client certificate (PEM chain) to a broker that requires one; with --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// TLS: the private key of --cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// TLS: verify the broker's certificate for this name instead of the host connected to.
    #[arg(long, value_name = "NAME")]
    tls_server_name: Option<String>,
    /// The device store (from `smqtt enroll`).
    #[arg(long, env = "SMQTT_STORE")]
    store: PathBuf,
    /// Seconds to wait for the broker: to accept the connection (exit 2 after that) and for each acknowledgement
    /// (exit 3).
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// MQTT client id [default: the device id]. An SMQTT broker accepts only the device id or `<device id>/<suffix>`
    /// (e.g. `sensor-7/sub-2` for a second connection of the same device); two connections with one id knock each
    /// other off.
    #[arg(short = 'i', long = "id", value_name = "ID")]
    client_id: Option<String>,
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
    fn config(&self) -> Result<ClientConfig, Failure> {
        let tls_options = self.cafile.is_some() || self.tls_use_os_certs;
        let (host, port, tls) = match &self.url {
            Some(url) => {
                let (host, port, tls) = parse_url(url)?;
                if !tls && tls_options {
                    return Err(Failure(
                        format!("--cafile / --tls-use-os-certs need TLS: mqtts:// rather than {url}"),
                        2,
                    ));
                }
                (host, port, tls)
            }
            None => (self.host.clone(), self.port, tls_options),
        };
        if !tls && (self.cert.is_some() || self.tls_server_name.is_some()) {
            let how = "mqtts://, --cafile or --tls-use-os-certs";
            return Err(Failure(format!("--cert / --tls-server-name need TLS ({how})"), 2));
        }
        let mut config = ClientConfig::new(&host, port.unwrap_or(if tls { 8883 } else { 1883 }));
        if tls {
            let mut settings = match &self.cafile {
                Some(path) => TlsConfig::ca_file(path)?,
                None => TlsConfig::system_roots(),
            };
            if let Some(name) = &self.tls_server_name {
                settings = settings.with_server_name(name)?;
            }
            if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
                settings = settings.with_client_cert_files(cert, key)?;
            }
            config.tls = Some(settings);
        }
        if self.protocol == "mqttv5" {
            config.protocol = smqtt_client::MqttVersion::V5;
        }
        config.sessions.sign_every_message = !self.unsigned;
        config.client_id = self.client_id.clone();
        Ok(config)
    }

    /// `--timeout`.
    fn wait(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }
}

/// `mqtt://HOST[:PORT][/]` or `mqtts://…` (`[v6]` in brackets): host, port if given, TLS.
fn parse_url(url: &str) -> Result<(String, Option<u16>, bool), Failure> {
    let bad =
        |why: &str| Failure(format!("--url {url}: {why} (expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT])"), 2);
    let (tls, rest) = match (url.strip_prefix("mqtts://"), url.strip_prefix("mqtt://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => return Err(bad("not an mqtt:// or mqtts:// URL")),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') || authority.contains('@') || authority.contains('?') {
        return Err(bad("only a host and port (give the topic with -t; the device store authenticates)"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, after)) => (host, Some(after.strip_prefix(':').ok_or_else(|| bad("bad port"))?)),
            None => return Err(bad("unclosed [")),
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = port.map(|p| p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| bad("bad port"))).transpose()?;
    Ok((host.to_owned(), port, tls))
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enroll this device with a one-time token from the administrator.
    Enroll {
        /// The authority's URL.
        #[arg(long)]
        authority: String,
        /// The enrollment token (it pins the authority's key: any other authority is refused).
        #[arg(long)]
        token: String,
        /// Where to keep the device's keys (created 0700). Run the same command again after an interrupted
        /// enrollment: it completes it with the same device key.
        #[arg(long)]
        store: PathBuf,
        /// The authority's verifying key, given out of band (base64, or a file holding it such as the
        /// authority's `authority.pub`); required for tokens that pin none, must agree with the token's otherwise.
        #[arg(long = "authority-key", value_name = "KEY|FILE")]
        authority_key: Option<String>,
        /// PEM CA certificate(s) of an https:// authority with a private CA (kept in the store for renewals).
        /// The token is sent only over https://, or plain http:// to a loopback address.
        #[arg(long = "authority-cafile", value_name = "FILE")]
        authority_cafile: Option<PathBuf>,
    },
    /// Fetch a fresh key and credential for the authority's current epoch.
    Renew {
        /// The device store.
        #[arg(long, env = "SMQTT_STORE")]
        store: PathBuf,
    },
    /// Keep a broker's view of the authority current from beside it (for the Mosquitto plugin, which does not
    /// reach the authority itself): write the authority's signed epoch statement to --epoch-file whenever it
    /// names a newer epoch (the gate's `[authority] epoch_file`; never backwards), and renew the store's identity
    /// (the broker's sealing identity) for each new epoch. Every --every seconds until SIGINT/SIGTERM (exit 0);
    /// with --once a single step (exit 0, or the failure's code). One line on stderr per change.
    Follow {
        /// The device store whose authority is followed and whose identity is renewed (the broker's own).
        #[arg(long, env = "SMQTT_STORE")]
        store: PathBuf,
        /// Where the gate reads the epoch statement (its `[authority] epoch_file`).
        #[arg(long = "epoch-file", value_name = "FILE")]
        epoch_file: Option<PathBuf>,
        /// Seconds between steps.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        every: u64,
        /// One step, then exit (run it before starting the broker, so that the epoch file exists).
        #[arg(long)]
        once: bool,
    },
    /// Publish one message (-m, -f, or all of stdin), or one per stdin line as each arrives (-l). Exits 0 only
    /// once the broker acknowledged every message (PUBACK for QoS 1, PUBCOMP for QoS 2; written for QoS 0).
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
        /// One message per line of standard input (without its `\n`), each published as soon as it is read.
        #[arg(short, long)]
        lines: bool,
        /// QoS 0, 1 or 2.
        #[arg(short, long, default_value_t = QoS::AtMostOnce, value_parser = parse_qos)]
        qos: QoS,
        /// Retain.
        #[arg(short, long)]
        retain: bool,
    },
    /// Subscribe and print what this device may read, one message per line, flushed as it arrives (refusals on
    /// stderr as `smqtt: refused: …`). Once the broker acknowledged every subscription, prints
    /// `smqtt: subscribed to <filters>` on stderr. A lost connection is reported on stderr and retried; a refused
    /// CONNECT ends the command (exit 1) unless renewing the credential at the authority lets it in.
    Sub {
        #[command(flatten)]
        broker: Broker,
        /// Topic filter (`+`, `#`); repeatable.
        #[arg(short, long, required = true)]
        topic: Vec<String>,
        /// QoS.
        #[arg(short, long, default_value_t = QoS::AtMostOnce, value_parser = parse_qos)]
        qos: QoS,
        /// `topic [publisher] payload` per line, each escaped (`\\`, `\n`, `\r`, `\t`, `\xNN` for other control
        /// characters and non-UTF-8 bytes).
        #[arg(short, long)]
        verbose: bool,
        /// Exit after this many messages (accepted or not).
        #[arg(short = 'C', long)]
        count: Option<u64>,
        /// One JSON object per line: topic, publisher, payload (text, or null when not UTF-8), payload_base64 (the
        /// exact bytes), policy, qos, retain; a refused delivery as {"error": kind, "message": text} (on stdout).
        #[arg(long)]
        json: bool,
    },
}

struct Failure(String, u8);

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let code = match error {
            Error::Authority(_)
            | Error::NotPermitted(_)
            | Error::Untrusted(_)
            | Error::EpochRegressed { .. }
            | Error::ConnectRefused { permanent: true, .. }
            | Error::PublishRefused(_)
            | Error::SubscribeRefused(_) => 1,
            Error::NotAcknowledged(_) => 3,
            _ => 2,
        };
        Failure(error.to_string(), code)
    }
}

/// `--qos`: 0, 1 or 2.
fn parse_qos(text: &str) -> Result<QoS, String> {
    let level: u8 = text.parse().map_err(|_| format!("`{text}` is not 0, 1 or 2"))?;
    QoS::try_from(level).map_err(|e| e.to_string())
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

/// `--authority-key`: base64 of the 32-byte key, or a file holding that text (or the raw 32 bytes).
fn parse_authority_key(text: &str) -> Result<smqtt_wire::VerifyingKey, Failure> {
    use base64::Engine as _;
    let bad = |why: &str| Failure(format!("--authority-key: {why}"), 2);
    let path = std::path::Path::new(text);
    let bytes = if path.is_file() {
        let raw = std::fs::read(path).map_err(|e| bad(&format!("{}: {e}", path.display())))?;
        if raw.len() == 32 {
            raw
        } else {
            let text = String::from_utf8(raw).map_err(|_| bad("file is neither 32 bytes nor base64 text"))?;
            base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|_| bad("file is not base64"))?
        }
    } else {
        base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|_| bad("not base64 nor a file"))?
    };
    let array: [u8; 32] = bytes.try_into().map_err(|_| bad("not a 32-byte key"))?;
    smqtt_wire::VerifyingKey::from_bytes(&array).map_err(|e| bad(&e.to_string()))
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Enroll { authority, token, store, authority_key, authority_cafile } => {
            let authority_key = authority_key.as_deref().map(parse_authority_key).transpose()?;
            let authority_ca_pem = authority_cafile
                .map(|path| {
                    std::fs::read(&path).map_err(|e| Failure(format!("--authority-cafile {}: {e}", path.display()), 2))
                })
                .transpose()?;
            let options = smqtt_client::EnrollOptions { authority_key, authority_ca_pem };
            let identity =
                tokio::task::spawn_blocking(move || DeviceStore::enroll_pinned(&store, &authority, &token, &options))
                    .await
                    .map_err(|e| Failure(e.to_string(), 2))??;
            println!("enrolled {} (epoch {})", identity.device_id(), identity.epoch());
            Ok(())
        }
        Command::Renew { store } => {
            let identity = tokio::task::spawn_blocking(move || DeviceStore::at(&store).renew())
                .await
                .map_err(|e| Failure(e.to_string(), 2))??;
            println!("renewed {} (epoch {})", identity.device_id(), identity.epoch());
            Ok(())
        }
        Command::Follow { store, epoch_file, every, once } => {
            follow::run(store, epoch_file, Duration::from_secs(every), once).await
        }
        Command::Pub { broker, topic, policy, message, file, lines, qos, retain } => {
            let policy = smqtt_abe::Policy::parse(&policy).map_err(|e| Failure(format!("policy: {e}"), 2))?;
            let payload = match (message, file, lines) {
                (Some(m), _, _) => Some(m.into_bytes()),
                (None, Some(path), _) => {
                    Some(std::fs::read(&path).map_err(|e| Failure(format!("{}: {e}", path.display()), 2))?)
                }
                (None, None, true) => None,
                (None, None, false) => {
                    let mut all = Vec::new();
                    std::io::stdin().read_to_end(&mut all).map_err(|e| Failure(format!("stdin: {e}"), 2))?;
                    Some(all)
                }
            };
            let (client, _messages) = stream::connect(&broker, broker.config()?).await?;
            let publication = stream::Publication { client: &client, topic: &topic, policy: &policy, qos, retain };
            let sent = match payload {
                Some(payload) => publication.one(&payload, broker.wait()).await,
                None => publication.lines(broker.wait()).await,
            };
            stream::close(&client).await;
            sent
        }
        Command::Sub { broker, topic, qos, verbose, count, json } => {
            let mut config = broker.config()?;
            if broker.unsigned {
                config.accept_unsigned = topic.clone();
            }
            let format = match (json, verbose) {
                (true, _) => stream::Format::Json,
                (false, true) => stream::Format::Verbose,
                (false, false) => stream::Format::Plain,
            };
            let (client, messages) = stream::connect(&broker, config).await?;
            let result = stream::subscribe(&client, &broker, &topic, qos).await;
            let result = match result {
                Ok(()) => stream::print(&client, messages, &broker, format, count).await,
                Err(e) => Err(e),
            };
            stream::close(&client).await;
            result
        }
    }
}
