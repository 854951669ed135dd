//! End-to-end throughput: one publisher → one subscriber on loopback, 256 B payloads, encrypted
//! (`SmqttClient::publish` + `Messages`) against plaintext (raw `rumqttc::AsyncClient` publish / subscribe), through
//! (i) rumqttd in-process and (ii) a Mosquitto 2 process, at QoS 0 and QoS 1, all in the same run.
//!
//! A real authority (in-process, loopback HTTP) enrolls the two devices and is stopped before the load. Each row
//! uses fresh connections and its own topic: the subscriber subscribes, probes are published until one arrives
//! (and 200 more, for the SDK to start its session, open the capsule and cache the credential), then N numbered
//! messages are published as fast as the client accepts them. Rate = distinct numbered messages received / time
//! from the first publish to the last receive; lost = N − received (counted after 2 s without progress).
//!
//! `cargo bench -p smqtt-benches --bench e2e_throughput`; `SMQTT_E2E_MESSAGES` sets N (default 20000), `SMQTT_E2E_ONLY` picks rows by label. Prints a
//! Markdown table and writes it to `target/e2e-throughput.md`. Without `--bench` (as under
//! `cargo test --benches`) it prints a note and exits.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use smqtt_abe::Policy;
use smqtt_client::{ClientConfig, DeviceStore, SmqttClient, MAX_PACKET_BYTES};
use smqtt_testkit::mosquitto::{mosquitto_binary, Mosquitto, MosquittoConfig};
use smqtt_testkit::TestAuthority;

const DEFAULT_MESSAGES: usize = 20_000;
const PAYLOAD_BYTES: usize = 256;
/// Probes after the first one arrived: the SDK's capsule rides on the first message of a session, so the warm-up
/// opens it.
const WARMUP: usize = 200;
/// A row ends this long after the subscriber last made progress.
const IDLE: Duration = Duration::from_secs(2);
/// No row takes longer than this (publishing and receiving).
const ROW_CAP: Duration = Duration::from_secs(40);
/// Rows not started by then are skipped, so that the whole run stays under 5 minutes.
const RUN_BUDGET: Duration = Duration::from_secs(240);
const POLICY: &str = "site:bench and role:operator";
/// Target from the brief: encrypted at least this fraction of plaintext msgs/s.
const TARGET_RATIO: f64 = 0.80;

const MARK_PROBE: u8 = 0;
const MARK_MEASURED: u8 = 1;

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

/// rumqttd with one MQTT 3.1.1 listener on a free loopback port, as the client SDK's tests start it. Its
/// threads live until the process exits.
fn start_rumqttd() -> SocketAddr {
    smqtt_testkit::rumqttd::start_rumqttd()
}

/// A Mosquitto process (default settings but for the listener, logging to a file); killed when dropped.
struct Broker {
    mosquitto: Mosquitto,
    version: String,
}

impl Broker {
    fn addr(&self) -> SocketAddr {
        self.mosquitto.addr
    }

    /// Whether Mosquitto logged that it dropped outgoing messages for `client_id` (it does so once, when the
    /// client's queue — `max_queued_messages`, 1000 by default, beyond `max_inflight_messages` — overflows).
    fn dropped_for(&self, client_id: &str) -> bool {
        self.mosquitto.log_contains(&format!("Outgoing messages are being dropped for client {client_id}."))
    }
}

fn start_mosquitto() -> Result<Broker, String> {
    let binary = mosquitto_binary().ok_or("mosquitto is not installed")?;
    let version = Command::new(&binary)
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_owned))
        .unwrap_or_else(|| "mosquitto".to_owned());
    Ok(Broker { mosquitto: MosquittoConfig::plain().try_start()?, version })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Plaintext,
    Encrypted,
    /// Session-key authentication (wire.md §6.5): only the capsule-bearing envelopes are signed.
    EncryptedUnsigned,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Plaintext => "plaintext (rumqttc)",
            Mode::Encrypted => "encrypted (SmqttClient)",
            Mode::EncryptedUnsigned => "encrypted, unsigned §6.5 (SmqttClient)",
        }
    }
}

/// What the subscriber saw.
#[derive(Debug, Default)]
struct Tally {
    /// Deliveries before the measurement: probes, and (SDK) refusals such as a missed capsule.
    warmup: u64,
    measuring: bool,
    /// Distinct numbered messages.
    received: u64,
    duplicates: u64,
    /// SDK refusals during the measurement.
    refused: u64,
    /// Numbered messages that arrived after a higher number.
    reordered: u64,
    highest: Option<u32>,
    seen: Vec<bool>,
    last_at: Option<Instant>,
    notes: Vec<String>,
}

impl Tally {
    fn new(n: usize) -> Tally {
        Tally { seen: vec![false; n], ..Tally::default() }
    }

    fn record(&mut self, payload: &[u8]) {
        match payload.first() {
            Some(&MARK_MEASURED) if payload.len() >= 5 => {
                let index = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
                let Some(slot) = self.seen.get_mut(index as usize) else {
                    self.notes.push(format!("number {index} out of range"));
                    return;
                };
                if *slot {
                    self.duplicates += 1;
                } else {
                    *slot = true;
                    self.received += 1;
                }
                if self.highest.is_some_and(|h| index < h) {
                    self.reordered += 1;
                }
                self.highest = self.highest.max(Some(index));
                self.last_at = Some(Instant::now());
            }
            _ => self.warmup += 1,
        }
    }

    fn refuse(&mut self, reason: String) {
        let phase = if self.measuring {
            self.refused += 1;
            "measured"
        } else {
            self.warmup += 1;
            "warm-up"
        };
        // The first few distinct refusals (the topic makes each row's text distinct from the others').
        let note = format!("{phase}: {reason}");
        if self.notes.len() < 4 && !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }
}

type Shared = Arc<Mutex<Tally>>;

fn with<T>(tally: &Shared, f: impl FnOnce(&mut Tally) -> T) -> T {
    let mut guard = tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&mut guard)
}

fn qos(level: u8) -> QoS {
    if level == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

fn raw_options(id: &str, addr: SocketAddr) -> MqttOptions {
    let mut options = MqttOptions::new(id, "127.0.0.1", addr.port());
    // As the SDK configures its rumqttc client.
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    options
}

/// Polls a raw rumqttc event loop, feeding publishes to `tally` (if any), until it disconnects or fails.
fn spawn_raw_loop(mut eventloop: rumqttc::EventLoop, tally: Option<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if let Some(tally) = &tally {
                        with(tally, |t| t.record(&publish.payload));
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(rumqttc::ConnectionError::RequestsDone) => return,
                Err(e) => {
                    if let Some(tally) = &tally {
                        with(tally, |t| t.notes.push(format!("subscriber connection: {e}")));
                    } else {
                        eprintln!("e2e_throughput: plaintext publisher connection: {e}");
                    }
                    return;
                }
            }
        }
    })
}

/// One side of a row, either kind.
#[derive(Debug)]
enum Endpoint {
    Plain(AsyncClient),
    Smqtt(SmqttClient),
}

impl Endpoint {
    async fn publish(&self, topic: &str, level: u8, policy: &Policy, payload: &[u8]) -> Result<(), String> {
        match self {
            Endpoint::Plain(client) => {
                client.publish(topic, qos(level), false, payload.to_vec()).await.map_err(|e| e.to_string())
            }
            Endpoint::Smqtt(client) => {
                let level = smqtt_client::QoS::try_from(level).map_err(|e| e.to_string())?;
                client.publish(topic, policy, level, false, payload).await.map_err(|e| e.to_string())
            }
        }
    }

    async fn subscribe(&self, topic: &str, level: u8) -> Result<(), String> {
        match self {
            Endpoint::Plain(client) => client.subscribe(topic, qos(level)).await.map_err(|e| e.to_string()),
            Endpoint::Smqtt(client) => {
                let level = smqtt_client::QoS::try_from(level).map_err(|e| e.to_string())?;
                client.subscribe(topic, level).await.map_err(|e| e.to_string())
            }
        }
    }

    async fn disconnect(&self) {
        match self {
            Endpoint::Plain(client) => {
                let _ = client.disconnect().await;
            }
            Endpoint::Smqtt(client) => client.disconnect().await,
        }
    }
}

#[derive(Debug)]
struct Devices {
    publisher: DeviceStore,
    subscriber: DeviceStore,
}

#[derive(Debug)]
struct Row {
    broker: &'static str,
    qos: u8,
    mode: Mode,
    sent: usize,
    received: u64,
    duplicates: u64,
    refused: u64,
    reordered: u64,
    publish_secs: f64,
    /// First publish → last receive.
    secs: f64,
    notes: Vec<String>,
}

impl Row {
    fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.received as f64 / self.secs
        } else {
            f64::NAN
        }
    }

    fn lost(&self) -> u64 {
        (self.sent as u64).saturating_sub(self.received)
    }
}

fn payload(mark: u8, index: u32) -> Vec<u8> {
    let mut p: Vec<u8> = (0..PAYLOAD_BYTES).map(|i| (i * 7 + 3) as u8).collect();
    p[0] = mark;
    p[1..5].copy_from_slice(&index.to_be_bytes());
    p
}

/// The subscriber's client id. No row goes through a gate, so these need not be in the clients' own spaces
/// (through a gate: `<device id>/row<n>` for the SDK clients, `anon:…` for raw ones); rumqttd 0.20 refuses
/// client ids containing any of `/ + # $` outright (the embedded smqtt-broker escapes them for it).
fn subscriber_id(mode: Mode, row_id: usize) -> String {
    match mode {
        Mode::Plaintext => format!("plain-sub-{row_id}"),
        Mode::Encrypted | Mode::EncryptedUnsigned => format!("smqtt-sub-{row_id}"),
    }
}

async fn run_row(
    broker: &'static str,
    addr: SocketAddr,
    level: u8,
    mode: Mode,
    n: usize,
    row_id: usize,
    devices: &Devices,
) -> Result<Row, String> {
    let topic = format!("bench/e2e/row{row_id}");
    let tally: Shared = Arc::new(Mutex::new(Tally::new(n)));
    let policy = Policy::parse(POLICY).map_err(|e| e.to_string())?;
    let mut tasks = Vec::new();
    let (publisher, subscriber) = match mode {
        Mode::Plaintext => {
            let (sub, sub_loop) = AsyncClient::new(raw_options(&subscriber_id(mode, row_id), addr), 64);
            tasks.push(spawn_raw_loop(sub_loop, Some(tally.clone())));
            let (publ, pub_loop) = AsyncClient::new(raw_options(&format!("plain-pub-{row_id}"), addr), 64);
            tasks.push(spawn_raw_loop(pub_loop, None));
            (Endpoint::Plain(publ), Endpoint::Plain(sub))
        }
        Mode::Encrypted | Mode::EncryptedUnsigned => {
            let identity = devices.subscriber.load().map_err(|e| e.to_string())?;
            let mut config = ClientConfig::new("127.0.0.1", addr.port());
            config.sessions.sign_every_message = mode == Mode::Encrypted;
            if mode == Mode::EncryptedUnsigned {
                config.accept_unsigned = vec!["bench/#".to_owned()];
            }
            config.client_id = Some(subscriber_id(mode, row_id));
            let (sub, mut messages) = SmqttClient::connect(identity, &config).map_err(|e| e.to_string())?;
            let t = tally.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(delivery) = messages.next().await {
                    match delivery {
                        Ok(message) => with(&t, |t| t.record(message.payload())),
                        Err(refused) => with(&t, |t| t.refuse(refused.to_string())),
                    }
                }
            }));
            let identity = devices.publisher.load().map_err(|e| e.to_string())?;
            config.client_id = Some(format!("smqtt-pub-{row_id}"));
            // The publisher's own stream stays open (it subscribes to nothing).
            let (publ, own) = SmqttClient::connect(identity, &config).map_err(|e| e.to_string())?;
            tasks.push(tokio::spawn(async move {
                let mut own = own;
                while own.next().await.is_some() {}
            }));
            (Endpoint::Smqtt(publ), Endpoint::Smqtt(sub))
        }
    };
    let result = measure(&publisher, &subscriber, &topic, level, &policy, n, &tally).await;
    subscriber.disconnect().await;
    publisher.disconnect().await;
    for task in tasks {
        let abort = task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), task).await.is_err() {
            eprintln!("e2e_throughput: a client task of row {row_id} did not stop; aborting it");
            abort.abort();
        }
    }
    let (publish_secs, secs) = result?;
    let (received, duplicates, refused, reordered, notes) =
        with(&tally, |t| (t.received, t.duplicates, t.refused, t.reordered, std::mem::take(&mut t.notes)));
    Ok(Row { broker, qos: level, mode, sent: n, received, duplicates, refused, reordered, publish_secs, secs, notes })
}

/// Probes until the subscription is live, warms up, publishes `n` numbered messages and waits for them:
/// (seconds publishing, seconds from the first publish to the last receive).
async fn measure(
    publisher: &Endpoint,
    subscriber: &Endpoint,
    topic: &str,
    level: u8,
    policy: &Policy,
    n: usize,
    tally: &Shared,
) -> Result<(f64, f64), String> {
    subscriber.subscribe(topic, level).await?;
    let probe = payload(MARK_PROBE, 0);
    let live_by = Instant::now() + Duration::from_secs(10);
    loop {
        publisher.publish(topic, level, policy, &probe).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if with(tally, |t| t.warmup) > 0 {
            break;
        }
        if Instant::now() > live_by {
            return Err("the subscription did not become live within 10 s".into());
        }
    }
    for _ in 0..WARMUP {
        publisher.publish(topic, level, policy, &probe).await?;
    }
    let quiet_by = Instant::now() + Duration::from_secs(10);
    let mut last = u64::MAX;
    while Instant::now() < quiet_by {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = with(tally, |t| t.warmup);
        if now == last {
            break;
        }
        last = now;
    }
    with(tally, |t| t.measuring = true);

    let start = Instant::now();
    let publishing = async {
        for i in 0..n {
            // n ≤ u32::MAX is checked in main.
            publisher.publish(topic, level, policy, &payload(MARK_MEASURED, i as u32)).await?;
        }
        Ok::<(), String>(())
    };
    match tokio::time::timeout(ROW_CAP, publishing).await {
        Ok(result) => result?,
        Err(_) => return Err(format!("publishing {n} messages took longer than {} s", ROW_CAP.as_secs())),
    }
    let publish_secs = start.elapsed().as_secs_f64();
    let mut last_count = 0;
    let mut last_change = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let count = with(tally, |t| t.received);
        if count >= n as u64 || start.elapsed() > ROW_CAP {
            break;
        }
        if count != last_count {
            last_count = count;
            last_change = Instant::now();
        } else if last_change.elapsed() > IDLE {
            break;
        }
    }
    let secs = with(tally, |t| t.last_at).map_or(0.0, |at| at.duration_since(start).as_secs_f64());
    Ok((publish_secs, secs))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"))
}

fn messages_per_row() -> usize {
    match std::env::var("SMQTT_E2E_MESSAGES") {
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if (1..=10_000_000).contains(&n) => n,
            _ => panic!("SMQTT_E2E_MESSAGES must be a number of messages in 1..=10000000, got {text:?}"),
        },
        Err(_) => DEFAULT_MESSAGES,
    }
}

fn report(rows: &[Row], skipped: &[String], n: usize, context: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# End-to-end throughput: one publisher → one subscriber over loopback\n");
    let _ = writeln!(md, "{context}\n");
    let _ = writeln!(
        md,
        "| broker | QoS | mode | sent | received | lost | refused | dup | reordered | publish s | \
         first publish → last receive s | msgs/s | encrypted / plaintext |"
    );
    let _ = writeln!(md, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let ratio = match r.mode {
            Mode::Plaintext => String::new(),
            Mode::Encrypted | Mode::EncryptedUnsigned => rows
                .iter()
                .find(|p| p.mode == Mode::Plaintext && p.broker == r.broker && p.qos == r.qos)
                .map_or_else(|| "n/a".to_owned(), |p| format!("{:.0} %", 100.0 * r.rate() / p.rate())),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.0} | {} |",
            r.broker,
            r.qos,
            r.mode.label(),
            r.sent,
            r.received,
            r.lost(),
            r.refused,
            r.duplicates,
            r.reordered,
            r.publish_secs,
            r.secs,
            r.rate(),
            ratio
        );
    }
    for r in rows.iter().filter(|r| !r.notes.is_empty()) {
        let _ = writeln!(md, "\nNotes, {} QoS {} {}: {}", r.broker, r.qos, r.mode.label(), r.notes.join("; "));
    }
    for s in skipped {
        let _ = writeln!(md, "\nSkipped: {s}");
    }
    let _ = writeln!(md);
    for r in rows.iter().filter(|r| r.mode != Mode::Plaintext) {
        if let Some(p) = rows.iter().find(|p| p.mode == Mode::Plaintext && p.broker == r.broker && p.qos == r.qos) {
            let ratio = r.rate() / p.rate();
            let _ = writeln!(
                md,
                "- {} QoS {}: {} {:.0} msgs/s = {:.0} % of plaintext {:.0} msgs/s — target ≥ {:.0} % {}.",
                r.broker,
                r.qos,
                r.mode.label(),
                r.rate(),
                100.0 * ratio,
                p.rate(),
                100.0 * TARGET_RATIO,
                if ratio >= TARGET_RATIO { "met" } else { "not met" }
            );
        }
    }
    let _ = writeln!(md, "\n{n} messages per row.");
    md
}

fn main() {
    // `cargo test --benches` runs bench binaries without `--bench`: do nothing there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("e2e_throughput: run with `cargo bench -p smqtt-benches --bench e2e_throughput`; skipping");
        return;
    }
    let n = messages_per_row();
    // `SMQTT_E2E_ONLY=text`: only the rows whose label ("<broker> QoS <n> <mode>") contains `text`.
    let only = std::env::var("SMQTT_E2E_ONLY").ok();
    assert!(u32::try_from(n).is_ok(), "too many messages");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_before = load_average();
    let bench_start = Instant::now();

    eprintln!("e2e_throughput: starting the authority and enrolling two devices …");
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = TestAuthority::new();
    let devices = Devices {
        publisher: server.device_in(dir.path(), "bench-pub", "role:sensor, site:bench", &["bench/#"]).store(),
        subscriber: server.device_in(dir.path(), "bench-sub", "role:operator, site:bench", &[]).store(),
    };
    drop(server);

    let rumqttd = start_rumqttd();
    let mosquitto = start_mosquitto();
    let mut brokers: Vec<(&'static str, SocketAddr)> = vec![("rumqttd 0.20 (in-process)", rumqttd)];
    let mut skipped = Vec::new();
    let mut mosquitto_version = String::new();
    match &mosquitto {
        Ok(m) => {
            mosquitto_version = m.version.clone();
            brokers.push(("Mosquitto (process)", m.addr()));
        }
        Err(e) => skipped.push(format!("Mosquitto rows: {e}")),
    }

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let mut rows = Vec::new();
    let mut row_id = 0;
    runtime.block_on(async {
        for &(broker, addr) in &brokers {
            for level in [0u8, 1] {
                for mode in [Mode::Plaintext, Mode::Encrypted, Mode::EncryptedUnsigned] {
                    row_id += 1;
                    let what = format!("{broker} QoS {level} {}", mode.label());
                    if only.as_deref().is_some_and(|only| !what.contains(only)) {
                        continue;
                    }
                    if bench_start.elapsed() > RUN_BUDGET {
                        skipped.push(format!("{what}: time budget of {} s used up", RUN_BUDGET.as_secs()));
                        continue;
                    }
                    eprintln!("e2e_throughput: {what}, {n} messages …");
                    match run_row(broker, addr, level, mode, n, row_id, &devices).await {
                        Ok(mut row) => {
                            let id = subscriber_id(mode, row_id);
                            if mosquitto.as_ref().is_ok_and(|m| m.addr() == addr && m.dropped_for(&id)) {
                                row.notes.push(format!(
                                    "Mosquitto logged \"Outgoing messages are being dropped for client {id}\" \
                                     (its per-client queue, max_queued_messages = 1000 by default, overflowed)"
                                ));
                            }
                            eprintln!(
                                "e2e_throughput:   {} received, {} lost, {:.0} msgs/s",
                                row.received,
                                row.lost(),
                                row.rate()
                            );
                            rows.push(row);
                        }
                        Err(e) => {
                            eprintln!("e2e_throughput:   failed: {e}");
                            skipped.push(format!("{what}: {e}"));
                        }
                    }
                }
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    drop(mosquitto);

    let context = format!(
        "QoS 0 and 1, {PAYLOAD_BYTES} B payloads (the encrypted rows carry {PAYLOAD_BYTES} B plaintext in an envelope \
         of about {} B; the capsule and credential ride on every 256th), policy `{POLICY}` + epoch. Publisher and \
         subscriber in this process (tokio, 2 workers); rumqttd in this process too (its own threads, the SDK \
         tests' settings); {} with default settings but the listener. Each row: fresh connections, a probe phase \
         and {WARMUP} warm-up messages, then the measured messages as fast as the client takes them. {cores} \
         cores. Load average (1/5/15 min): {load_before} at start, {} at the end. Whole run {:.1} s.",
        PAYLOAD_BYTES + smqtt_wire::envelope_overhead("bench-pub".len()),
        if mosquitto_version.is_empty() { "Mosquitto".to_owned() } else { mosquitto_version },
        load_average(),
        bench_start.elapsed().as_secs_f64()
    );
    let md = report(&rows, &skipped, n, &context);
    print!("{md}");
    let target = target_dir();
    let _ = std::fs::create_dir_all(&target);
    let path = std::fs::canonicalize(&target).unwrap_or(target).join("e2e-throughput.md");
    match std::fs::write(&path, &md) {
        Ok(()) => eprintln!("e2e_throughput: wrote {}", path.display()),
        Err(e) => eprintln!("e2e_throughput: could not write {}: {e}", path.display()),
    }
}
