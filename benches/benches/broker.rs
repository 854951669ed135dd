//! Broker enforcement cost: the same SMQTT envelopes (256 B plaintext) through four brokers in the same run —
//! plain rumqttd 0.20, smqtt-broker (rumqttd + the gate, envelopes checked on a protected topic), plain
//! Mosquitto, and Mosquitto with `libsmqtt_mosquitto.so` (the same gate) — with 1 → N subscriber fan-out;
//! plus a criterion micro-bench of the gate's per-publish decision.
//!
//! Per row: fresh connections; subscribers subscribe (QoS 1), probes until each has one; then
//! * **throughput**: N envelopes published at QoS 1 as fast as the client accepts them; msgs/s = N / time from the
//!   first publish to the last delivery at the slowest subscriber (deliveries/s = that × subscribers); lost =
//!   expected deliveries not seen after 2 s without progress;
//! * **latency**: 500 envelopes paced every 2 ms; p50/p99 of publish call → delivery, over all subscribers.
//!
//! Credentials and CONNECT tokens are minted in-process with `smqtt-wire` (no authority needed); envelopes are
//! sealed before the clock starts (the publisher's crypto is not what is measured). The Mosquitto + plugin row
//! needs `target/release/libsmqtt_mosquitto.so` (`cargo build --release -p smqtt-mosquitto`); it is skipped with a
//! note otherwise, as are both Mosquitto rows without Mosquitto installed.
//!
//! `cargo bench -p smqtt-benches --bench broker`; `SMQTT_BROKER_MESSAGES` sets N (default 10000),
//! `SMQTT_BROKER_REPEATS` runs each row that often (brokers taking turns) and reports the median. Prints a
//! Markdown table and writes it to `target/broker-bench.md`. Without `--bench` it prints a note and exits.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::Criterion;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use smqtt_abe::{AttributeSet, Policy};
use smqtt_client::{Sealer, SessionPolicy};
use smqtt_session::Outgoing;
use smqtt_testkit::embedded::SmqttBroker;
use smqtt_testkit::mosquitto::{Mosquitto, MosquittoConfig};
use smqtt_testkit::rumqttd::Rumqttd;
use smqtt_wire::{ConnectToken, CredentialBody, DeviceId, ParsedEnvelope, SigningKey, TopicFilter};

const PROBES: u64 = 200;
const LATENCY_MESSAGES: u64 = 500;
const PACE: Duration = Duration::from_millis(2);
const IDLE: Duration = Duration::from_secs(2);
const FAN_OUT: [usize; 2] = [1, 4];
/// The brief's target: enforcement costs at most this fraction of throughput.
const TARGET_COST: f64 = 0.15;

use smqtt_testkit::now;

/// The authority key, the devices (publisher + subscribers) and their credentials.
struct Identities {
    authority: SigningKey,
    devices: Vec<(String, SigningKey, Vec<u8>)>,
}

impl Identities {
    fn new(subscribers: usize) -> Identities {
        let authority = SigningKey::generate(&mut rand_core::OsRng);
        let mut devices = Vec::new();
        for i in 0..=subscribers {
            let (id, publish) =
                if i == 0 { ("bench-pub".to_owned(), vec!["plant/#"]) } else { (format!("bench-sub-{i}"), vec![]) };
            let key = SigningKey::generate(&mut rand_core::OsRng);
            let credential = CredentialBody {
                device_id: DeviceId::new(&id).expect("id"),
                device_key: key.verifying_key(),
                attributes: AttributeSet::parse("role:bench").expect("attributes"),
                publish: publish.iter().map(|f| TopicFilter::new(f).expect("filter")).collect(),
                epoch: 1,
                not_before: now() - 60,
                not_after: now() + 86_400,
            }
            .sign(&authority)
            .expect("credential");
            devices.push((id, key, credential));
        }
        Identities { authority, devices }
    }

    fn login(&self, index: usize, client_id: &str) -> (String, String) {
        let (id, key, credential) = &self.devices[index];
        (id.clone(), ConnectToken::create(key, credential, client_id, now()).expect("token"))
    }
}

/// The gate's configuration; with `verify` false signed envelopes are bound to their connection but their
/// signatures left to the subscribers (`verify_signatures = false`).
fn gate_toml(dir: &Path, identities: &Identities, verify: bool) -> PathBuf {
    std::fs::write(dir.join("authority.pub"), identities.authority.verifying_key().to_bytes()).expect("key");
    let path = dir.join(if verify { "gate.toml" } else { "gate-bind.toml" });
    std::fs::write(
        &path,
        format!(
            "[authority]\nverifying_key = \"authority.pub\"\n[topics]\nprotected = [\"plant/#\"]\n\
             unsigned = [\"plant/bench/unsigned/#\"]\nverify_signatures = {verify}\n"
        ),
    )
    .expect("gate");
    path
}

/// rumqttd with its limits raised for the load (payloads up to 384 KiB, no pause between connections).
fn start_rumqttd() -> SocketAddr {
    Rumqttd::v4()
        .max_payload_size(384 * 1024)
        .next_connection_delay_ms(0)
        .max_connections(10_000)
        .segments(1024 * 1024, 4)
        .start_one()
}

fn start_smqtt_broker(gate: &Path) -> SocketAddr {
    SmqttBroker::new().v4_only().gate_config(gate).start(Path::new(".")).v4.expect("v4")
}

/// Mosquitto with queues and in-flight windows raised for the load, no log; with the plugin and gate file given.
fn start_mosquitto(plugin: Option<(&Path, &Path)>) -> Result<Mosquitto, String> {
    let config = match plugin {
        Some((lib, gate)) => MosquittoConfig::with_plugin_file(lib, gate),
        None => MosquittoConfig::plain(),
    };
    config.line("max_queued_messages 1000000").line("max_inflight_messages 100").no_log().try_start()
}

/// How a row's envelopes are authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Sealing {
    /// Each envelope signed on its own (what a lone message gets).
    Each,
    /// Signed in batches of 256 (wire.md §6.6): what the SDK's outbox does with a burst.
    Batched,
    /// Only the capsule-bearing ones (every 256th) signed: session-key authentication (wire.md §6.5).
    Unsigned,
}

impl Sealing {
    fn label(self) -> &'static str {
        match self {
            Sealing::Each => "signed, one by one",
            Sealing::Batched => "signed, batches of 256 (§6.6)",
            Sealing::Unsigned => "unsigned (§6.5)",
        }
    }

    fn topic(self, fan: usize) -> String {
        match self {
            Sealing::Each => format!("plant/bench/fan{fan}"),
            Sealing::Batched => format!("plant/bench/batched/fan{fan}"),
            Sealing::Unsigned => format!("plant/bench/unsigned/fan{fan}"),
        }
    }
}

/// Envelopes for `topic`: sequence numbers 0.. (probes, measured, latency), sealed once, as `sealing` says.
fn envelopes(identities: &Identities, topic: &str, count: u64, sealing: Sealing) -> Vec<Vec<u8>> {
    let (pk, _) = smqtt_abe::setup(&mut rand_core::OsRng).expect("setup");
    let (id, key, credential) = &identities.devices[0];
    let mut sealer = Sealer::new(
        DeviceId::new(id).expect("id"),
        SigningKey::from_bytes(&key.to_bytes()),
        credential.clone(),
        Arc::new(pk),
        1,
        SessionPolicy { sign_every_message: sealing != Sealing::Unsigned, ..SessionPolicy::default() },
    );
    let policy = Policy::parse("role:bench").expect("policy");
    let payload = [0x5a; 256];
    if sealing == Sealing::Batched {
        let burst = vec![Outgoing { topic, policy: &policy, payload: &payload, retain: false }; smqtt_wire::MAX_BATCH];
        let mut out = Vec::new();
        while (out.len() as u64) < count {
            let take = (count - out.len() as u64).min(burst.len() as u64) as usize;
            let sealed = sealer.seal_batch(&burst[..take], smqtt_wire::UnixTime::now(), &mut rand_core::OsRng);
            out.extend(sealed.expect("seal a batch"));
        }
        return out;
    }
    (0..count)
        .map(|_| {
            sealer
                .seal(topic, &policy, &payload, false, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng)
                .expect("seal")
        })
        .collect()
}

type Seen = Arc<Mutex<Vec<(u64, Instant)>>>;

async fn client(addr: SocketAddr, id: &str, login: Option<(String, String)>) -> (AsyncClient, Seen) {
    let mut options = MqttOptions::new(id, "127.0.0.1", addr.port());
    options.set_max_packet_size(1 << 20, 1 << 20);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_inflight(100);
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let at = Instant::now();
                    if let Ok(envelope) = ParsedEnvelope::parse(&p.payload) {
                        if let Ok(mut s) = sink.lock() {
                            s.push((envelope.sequence(), at));
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    (client, seen)
}

struct Row {
    broker: String,
    subscribers: usize,
    rate: f64,
    lost: usize,
    p50_ms: f64,
    p99_ms: f64,
    sealing: Sealing,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[allow(clippy::too_many_arguments)]
async fn run_row(
    broker: &str,
    addr: SocketAddr,
    auth: bool,
    ids: &Identities,
    fan: usize,
    env: &[Vec<u8>],
    n: u64,
    topic: &str,
) -> Row {
    let tag = format!("{}-{fan}-{}", broker.len(), now() % 100_000);
    // Through a gate a device may only use `<device id>` or `<device id>/<suffix>`; plain rumqttd 0.20 refuses
    // any client id with a `/` (the embedded smqtt-broker escapes them for it), so the plain rows keep a `-`.
    let own = |device: &str| if auth { format!("{device}/{tag}") } else { format!("{device}-{tag}") };
    let mut subs = Vec::new();
    for i in 1..=fan {
        let cid = own(&format!("bench-sub-{i}"));
        let login = auth.then(|| ids.login(i, &cid));
        let (c, seen) = client(addr, &cid, login).await;
        c.subscribe(topic, QoS::AtLeastOnce).await.expect("subscribe");
        subs.push((c, seen));
    }
    let cid = own("bench-pub");
    let (publisher, _) = client(addr, &cid, auth.then(|| ids.login(0, &cid))).await;
    // Probes until every subscriber has one.
    let deadline = Instant::now() + Duration::from_secs(20);
    for probe in env.iter().take(PROBES as usize).cycle() {
        publisher.publish(topic, QoS::AtLeastOnce, false, probe.clone()).await.expect("probe");
        tokio::time::sleep(Duration::from_millis(10)).await;
        if subs.iter().all(|(_, s)| s.lock().is_ok_and(|s| !s.is_empty())) || Instant::now() > deadline {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let measured = PROBES..PROBES + n;
    let start = Instant::now();
    for e in &env[measured.start as usize..measured.end as usize] {
        publisher.publish(topic, QoS::AtLeastOnce, false, e.clone()).await.expect("publish");
    }
    let count = |s: &Seen| s.lock().map_or(0, |s| s.iter().filter(|(q, _)| measured.contains(q)).count());
    let expected = n as usize * fan;
    let (mut last, mut last_total) = (Instant::now(), 0);
    loop {
        let total: usize = subs.iter().map(|(_, s)| count(s)).sum();
        if total >= expected || last.elapsed() > IDLE {
            break;
        }
        if total != last_total {
            (last, last_total) = (Instant::now(), total);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let end = subs
        .iter()
        .filter_map(|(_, s)| {
            s.lock().ok().and_then(|s| s.iter().filter(|(q, _)| measured.contains(q)).map(|(_, t)| *t).max())
        })
        .max()
        .unwrap_or(start);
    let delivered: usize = subs.iter().map(|(_, s)| count(s)).sum();
    let rate = n as f64 / end.duration_since(start).as_secs_f64().max(1e-9);
    // Latency: paced.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lat = PROBES + n..PROBES + n + LATENCY_MESSAGES;
    let mut sent = HashMap::new();
    for seq in lat.clone() {
        sent.insert(seq, Instant::now());
        publisher.publish(topic, QoS::AtLeastOnce, false, env[seq as usize].clone()).await.expect("publish");
        tokio::time::sleep(PACE).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies: Vec<f64> = subs
        .iter()
        .flat_map(|(_, s)| s.lock().map(|s| s.clone()).unwrap_or_default())
        .filter_map(|(q, t)| sent.get(&q).map(|at| t.duration_since(*at).as_secs_f64() * 1e3))
        .collect();
    latencies.sort_by(f64::total_cmp);
    for (c, _) in &subs {
        let _ = c.disconnect().await;
    }
    let _ = publisher.disconnect().await;
    Row {
        broker: broker.to_owned(),
        subscribers: fan,
        rate,
        lost: expected.saturating_sub(delivered),
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        sealing: Sealing::Each,
    }
}

/// Criterion: the gate's decision on one 256 B envelope (parse + one Ed25519 verification), and the plaintext
/// refusal; returns mean µs read back from criterion's estimates.
fn gate_micro(ids: &Identities, gate_path: &Path, cases: &[(&str, &String, &[u8])]) -> Vec<(String, f64)> {
    let gate = smqtt_gate::Gate::from_toml_file(gate_path).expect("gate");
    // The publisher's own client id (a device may use only `<device id>` or `<device id>/<suffix>`).
    let (user, token) = ids.login(0, "bench-pub");
    let session = gate.authenticate("bench-pub", Some(&user), Some(token.as_bytes())).expect("session");
    let mut c = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (name, topic, payload) in cases {
        c.bench_function(name, |b| {
            b.iter(|| gate.check_publish(&session, topic, 1, false, std::hint::black_box(payload)))
        });
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion");
    cases
        .iter()
        .map(|(name, _, _)| {
            let file = root.join(name.replace('/', "_")).join("new/estimates.json");
            let file = if file.exists() { file } else { root.join(name).join("new/estimates.json") };
            let mean = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["mean"]["point_estimate"].as_f64())
                .map_or(f64::NAN, |ns| ns / 1e3);
            ((*name).to_owned(), mean)
        })
        .collect()
}

/// The brokers whose gate leaves signatures to the subscribers (run on signed envelopes only).
const BIND_SMQTT: &str = "smqtt-broker (enforcing, verify_signatures = false)";
const BIND_MOSQUITTO: &str = "Mosquitto + libsmqtt_mosquitto.so (verify_signatures = false)";

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("broker: run with `cargo bench -p smqtt-benches --bench broker`; skipping");
        return;
    }
    let n: u64 = std::env::var("SMQTT_BROKER_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("dir");
    let ids = Identities::new(*FAN_OUT.iter().max().unwrap_or(&1));
    let gate = gate_toml(dir.path(), &ids, true);
    let gate_bind = gate_toml(dir.path(), &ids, false);
    let total = PROBES + n + LATENCY_MESSAGES;
    eprintln!("broker bench: sealing {} envelopes per topic …", total);
    let topics: Vec<(usize, Sealing, String, Vec<Vec<u8>>)> = [Sealing::Each, Sealing::Batched, Sealing::Unsigned]
        .into_iter()
        .flat_map(|sealing| FAN_OUT.iter().map(move |&f| (f, sealing)))
        .map(|(f, sealing)| {
            let topic = sealing.topic(f);
            let env = envelopes(&ids, &topic, total, sealing);
            (f, sealing, topic, env)
        })
        .collect();

    let mut skipped = Vec::new();
    // (name, address, authenticates, signed envelopes only)
    let mut brokers: Vec<(String, SocketAddr, bool, bool)> = vec![
        ("rumqttd 0.20 plain".into(), start_rumqttd(), false, false),
        ("smqtt-broker (enforcing)".into(), start_smqtt_broker(&gate), true, false),
        (BIND_SMQTT.into(), start_smqtt_broker(&gate_bind), true, true),
    ];
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/libsmqtt_mosquitto.so");
    let mut keep = Vec::new();
    match start_mosquitto(None) {
        Ok(m) => {
            brokers.push(("Mosquitto plain".into(), m.addr, false, false));
            keep.push(m);
            if plugin.exists() {
                match start_mosquitto(Some((&plugin, &gate))) {
                    Ok(m) => {
                        brokers.push(("Mosquitto + libsmqtt_mosquitto.so".into(), m.addr, true, false));
                        keep.push(m);
                    }
                    Err(e) => skipped.push(format!("Mosquitto + plugin: {e}")),
                }
                match start_mosquitto(Some((&plugin, &gate_bind))) {
                    Ok(m) => {
                        brokers.push((BIND_MOSQUITTO.into(), m.addr, true, true));
                        keep.push(m);
                    }
                    Err(e) => skipped.push(format!("Mosquitto + plugin (verify_signatures = false): {e}")),
                }
            } else {
                skipped.push(format!(
                    "Mosquitto + plugin: {} not built (cargo build --release -p smqtt-mosquitto)",
                    plugin.display()
                ));
            }
        }
        Err(e) => skipped.push(format!("Mosquitto rows: {e}")),
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut rows = Vec::new();
    // `SMQTT_BROKER_REPEATS` (1..=9, default 1): each row that often, the brokers taking turns (so that a
    // machine slowing down mid-run hits all of them alike), and the run with the median rate reported.
    let repeats: usize =
        std::env::var("SMQTT_BROKER_REPEATS").ok().and_then(|v| v.parse().ok()).unwrap_or(1).clamp(1, 9);
    runtime.block_on(async {
        for (fan, sealing, topic, env) in &topics {
            let contenders: Vec<_> = brokers.iter().filter(|b| *sealing != Sealing::Unsigned || !b.3).collect();
            let mut runs: Vec<Vec<Row>> = contenders.iter().map(|_| Vec::new()).collect();
            for round in 0..repeats {
                for ((name, addr, auth, _), runs) in contenders.iter().zip(runs.iter_mut()) {
                    eprintln!("broker bench: {name}, {fan} subscriber(s), {}, run {} …", sealing.label(), round + 1);
                    runs.push(run_row(name, *addr, *auth, &ids, *fan, env, n, topic).await);
                }
            }
            for mut runs in runs {
                runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
                let mut row = runs.swap_remove(runs.len() / 2);
                row.sealing = *sealing;
                rows.push(row);
            }
        }
    });
    let position = |name: &str| brokers.iter().position(|b| b.0 == name).unwrap_or(usize::MAX);
    rows.sort_by_key(|r| (position(&r.broker), r.sealing, r.subscribers));
    let unsigned = topics.iter().find(|t| t.1 == Sealing::Unsigned).expect("unsigned topic");
    let batched = topics.iter().find(|t| t.1 == Sealing::Batched).expect("batched topic");
    let mut micro = gate_micro(
        &ids,
        &gate,
        &[
            ("gate_check_publish/envelope_256B", &topics[0].2, &topics[0].3[PROBES as usize + 1]),
            ("gate_check_publish/batched_envelope_256B", &batched.2, &batched.3[PROBES as usize + 1]),
            ("gate_check_publish/unsigned_envelope_256B", &unsigned.2, &unsigned.3[PROBES as usize + 1]),
            ("gate_check_publish/plaintext_refused", &topics[0].2, b"23.5 C"),
        ],
    );
    micro.extend(gate_micro(
        &ids,
        &gate_bind,
        &[(
            "gate_check_publish/envelope_256B_verify_signatures_false",
            &topics[0].2,
            &topics[0].3[PROBES as usize + 1],
        )],
    ));

    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(out, "Broker bench: {n} envelopes (256 B plaintext, ≈388 B on the wire; every 256th carries capsule + credential) per row at QoS 1, {cores} cores, publisher and subscribers on loopback in this process; median of {repeats} run(s) per row, brokers taking turns.\n");
    let _ = writeln!(
        out,
        "| broker | envelopes | subscribers | msgs/s | deliveries/s | lost | p50 ms | p99 ms | vs plain |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let plain: HashMap<(usize, bool, Sealing), f64> = rows
        .iter()
        .filter(|r| r.broker.contains("plain"))
        .map(|r| ((r.subscribers, r.broker.starts_with("Mosquitto"), r.sealing), r.rate))
        .collect();
    for r in &rows {
        let base =
            plain.get(&(r.subscribers, r.broker.starts_with("Mosquitto"), r.sealing)).copied().unwrap_or(f64::NAN);
        let vs = if r.broker.contains("plain") {
            "—".to_owned()
        } else {
            format!("{:+.1} %", (r.rate / base - 1.0) * 100.0)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.0} | {} | {:.2} | {:.2} | {vs} |",
            r.broker,
            r.sealing.label(),
            r.subscribers,
            r.rate,
            r.rate * r.subscribers as f64,
            r.lost,
            r.p50_ms,
            r.p99_ms
        );
    }
    let _ = writeln!(out, "\nTarget: enforcement costs ≤ {:.0} % of throughput.\n", TARGET_COST * 100.0);
    let _ = writeln!(out, "| gate micro-bench (criterion mean) | µs |\n|---|---:|");
    for (name, us) in &micro {
        let _ = writeln!(out, "| {name} | {us:.2} |");
    }
    for s in &skipped {
        let _ = writeln!(out, "\nSkipped: {s}");
    }
    println!("{out}");
    let _ = std::fs::write(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/broker-bench.md"), &out);
    drop(keep);
}
