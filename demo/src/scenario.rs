//! The scenario: who publishes, who subscribes, who reads what — then a revocation.

use std::collections::BTreeMap;

use std::time::{Duration, Instant};

use smqtt_abe::Policy;
use smqtt_client::{ClientConfig, DeviceStore, MessageError, Messages, QoS, SmqttClient};

use crate::world::{self, BrokerPlan, DeviceSpec};
use crate::DemoError;

/// Command-line options.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    pub(crate) keep: bool,
    pub(crate) messages: u32,
}

const TEMPERATURE_TOPIC: &str = "plant/berlin/hall/temp";
const TEMPERATURE_POLICY: &str = "site:berlin and (role:operator or role:admin)";
const LEGACY_TOPIC: &str = "legacy/berlin/humidity";
const LEGACY_POLICY: &str = "site:berlin and role:admin";
const LEGACY_USER: &str = "legacy-humidity";
const LEGACY_MESSAGES: u32 = 5;
/// How long a subscriber waits for a delivery before counting it missing.
const WAIT: Duration = Duration::from_secs(5);

const SENSOR: DeviceSpec =
    DeviceSpec { id: "temp-sensor", attributes: "role:sensor, site:berlin", publish: &["plant/berlin/#"] };
const BROKER: DeviceSpec = DeviceSpec { id: "smqtt-broker", attributes: "role:broker", publish: &["legacy/#"] };
const SUBSCRIBERS: [DeviceSpec; 3] = [
    DeviceSpec { id: "alice", attributes: "role:operator, site:berlin", publish: &[] },
    DeviceSpec { id: "bob", attributes: "role:admin, site:berlin", publish: &[] },
    DeviceSpec { id: "carol", attributes: "role:operator, site:paris", publish: &[] },
];

fn expect(what: bool, message: impl FnOnce() -> String) -> Result<(), DemoError> {
    if what {
        Ok(())
    } else {
        Err(DemoError::Expectation(message()))
    }
}

fn setup_error(what: &str, e: impl core::fmt::Display) -> DemoError {
    DemoError::Setup(format!("{what}: {e}"))
}

/// One subscriber of the scenario.
struct Subscriber {
    spec: DeviceSpec,
    store: DeviceStore,
    client: SmqttClient,
    messages: Messages,
    revoked: bool,
}

impl Subscriber {
    /// Whether a delivery is waiting (consumes it).
    fn delivery_waiting(&mut self) -> bool {
        self.messages.try_next().is_some()
    }
}

/// What one subscriber got in one round.
#[derive(Default, Debug)]
struct Tally {
    read: BTreeMap<&'static str, u32>,
    refused: BTreeMap<&'static str, u32>,
    first_refusal: Option<String>,
    open_time: Duration,
}

/// Totals for the summary.
#[derive(Default, Debug)]
struct Totals {
    sent: u32,
    read: u32,
    refused: BTreeMap<&'static str, u32>,
    seal_time: Duration,
    sealed: u32,
    first_seal: Vec<Duration>,
}

fn label(topic: &str) -> &'static str {
    if topic == TEMPERATURE_TOPIC {
        "temperature"
    } else {
        "humidity"
    }
}

/// Waits for `expected` deliveries (or [`WAIT`] of silence) and counts them.
async fn collect(sub: &mut Subscriber, expected: u32) -> Tally {
    let mut tally = Tally::default();
    let started = Instant::now();
    for _ in 0..expected {
        match sub.messages.next_timeout(WAIT).await {
            Some(Ok(message)) => *tally.read.entry(label(message.topic())).or_default() += 1,
            Some(Err(refused)) => {
                *tally.refused.entry(refused.kind()).or_default() += 1;
                tally.first_refusal.get_or_insert_with(|| describe(&refused));
            }
            None => break,
        }
    }
    tally.open_time = started.elapsed();
    tally
}

fn describe(refused: &MessageError) -> String {
    match refused {
        MessageError::NotAuthorised { policy, .. } => {
            format!("its key does not satisfy `{policy}` — decapsulation fails in the pairing equation")
        }
        other => other.to_string(),
    }
}

fn print_tally(sub: &Subscriber, tally: &Tally, sent: &[(&'static str, u32)]) {
    let mut parts = Vec::new();
    for (what, n) in sent {
        parts.push(format!("{what} {}/{n}", tally.read.get(what).copied().unwrap_or(0)));
    }
    let mut line = format!("    {:<6} {:<28} read {}", sub.spec.id, sub.spec.attributes, parts.join(", "));
    if let Some(reason) = &tally.first_refusal {
        line.push_str(&format!("\n           refused: {reason}"));
    }
    println!("{line}");
}

/// Runs the whole scenario.
pub(crate) async fn run(options: Options) -> Result<(), DemoError> {
    let dir = tempfile::Builder::new().prefix("smqtt-demo-").tempdir().map_err(|e| setup_error("temp dir", e))?;
    let root = dir.path().to_path_buf();
    println!("SMQTT demo — everything runs on loopback, state in {}\n", root.display());

    println!("[1/6] key authority");
    let authority = world::start_authority(&root).await?;
    println!("    FAME master key and Ed25519 signing key sealed at rest in {}", authority.data_dir.display());
    println!("    SQLite state + hash-chained audit log; HTTP API on {}", authority.url);

    println!("\n[2/6] devices: registered by the administrator, enrolled with one-time tokens (each makes its own");
    println!("      Ed25519 key; its attribute key arrives sealed to it)");
    let (sensor_store, sensor_identity) = world::enroll(&authority, &root, SENSOR).await?;
    let (broker_store, _) = world::enroll(&authority, &root, BROKER).await?;
    for spec in [SENSOR, BROKER].iter().chain(SUBSCRIBERS.iter()) {
        let rights = if spec.publish.is_empty() {
            "subscribes only".to_owned()
        } else {
            format!("publishes {}", spec.publish.join(", "))
        };
        println!("    {:<13} {:<28} {rights}", spec.id, spec.attributes);
    }
    let mut identities = Vec::new();
    for spec in SUBSCRIBERS {
        identities.push((spec, world::enroll(&authority, &root, spec).await?));
    }

    println!("\n[3/6] broker: rumqttd with the SMQTT gate (verifies credentials and envelope signatures; holds no");
    println!("      attribute key, cannot read a payload)");
    let epoch_file = root.join("epoch.statement");
    let legacy_password = "humidity-sensor-password";
    let broker = world::start_broker(&BrokerPlan {
        dir: &root,
        authority_pub: &root.join("stores").join(BROKER.id).join("authority.pub"),
        broker_store: &root.join("stores").join(BROKER.id),
        authority_url: &authority.url,
        epoch_file: &epoch_file,
        legacy_username: LEGACY_USER,
        legacy_password,
        legacy_topic: LEGACY_TOPIC,
        legacy_policy: LEGACY_POLICY,
    })?;
    println!("    MQTT 3.1.1 on {}  (config: {})", broker.mqtt, broker.config_path.display());
    let config = ClientConfig::new("127.0.0.1", broker.mqtt.port());

    let mut subscribers = Vec::new();
    for (spec, (store, identity)) in identities {
        let (client, messages) = SmqttClient::connect(identity, &config).map_err(|e| setup_error(spec.id, e))?;
        client.subscribe("plant/#", QoS::AtLeastOnce).await.map_err(|e| setup_error(spec.id, e))?;
        client.subscribe("legacy/#", QoS::AtLeastOnce).await.map_err(|e| setup_error(spec.id, e))?;
        subscribers.push(Subscriber { spec, store, client, messages, revoked: false });
    }
    let (sensor, _) = SmqttClient::connect(sensor_identity, &config).map_err(|e| setup_error(SENSOR.id, e))?;
    let legacy = plain_client(broker.mqtt, LEGACY_USER, Some(legacy_password), None).await;
    let (watch_tx, mut watched) = tokio::sync::mpsc::channel(4096);
    let eavesdropper = plain_client(broker.mqtt, "eavesdropper", None, Some(watch_tx)).await;
    for filter in ["plant/#", "legacy/#"] {
        eavesdropper.subscribe(filter, rumqttc::QoS::AtMostOnce).await.map_err(|e| setup_error("eavesdropper", e))?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut totals = Totals::default();
    let policy = Policy::parse(TEMPERATURE_POLICY).map_err(|e| setup_error("policy", e))?;

    println!("\n[4/6] publishing (epoch 1)");
    println!("    temp-sensor     → {TEMPERATURE_TOPIC}  ×{}, policy `{TEMPERATURE_POLICY}`", options.messages);
    println!(
        "    {LEGACY_USER} → {LEGACY_TOPIC}  ×{LEGACY_MESSAGES}, plain MQTT; the broker seals it under `{LEGACY_POLICY}`"
    );
    publish_round(&sensor, &policy, &legacy, options.messages, LEGACY_MESSAGES, 1, &mut totals).await?;
    let sent = [("temperature", options.messages), ("humidity", LEGACY_MESSAGES)];
    println!("    who read what:");
    let mut round_one = Vec::new();
    for sub in &mut subscribers {
        let tally = collect(sub, options.messages + LEGACY_MESSAGES).await;
        print_tally(sub, &tally, &sent);
        round_one.push(tally);
    }
    check_round_one(&round_one, options.messages)?;
    show_eavesdropper(&mut watched)?;

    println!("    an intruder without credentials publishes plaintext on {TEMPERATURE_TOPIC}:");
    eavesdropper
        .publish(TEMPERATURE_TOPIC, rumqttc::QoS::AtMostOnce, false, b"99.9 C (forged)".to_vec())
        .await
        .map_err(|e| setup_error("intruder", e))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let leaked = subscribers.iter_mut().map(Subscriber::delivery_waiting).filter(|waiting| *waiting).count();
    expect(leaked == 0, || format!("{leaked} subscribers received the intruder's publish"))?;
    let metrics = broker.running.metrics_text();
    let refusals: Vec<&str> =
        metrics.lines().filter(|l| l.starts_with("smqtt_gate_refused_total{") && !l.ends_with(" 0")).collect();
    expect(!refusals.is_empty(), || "the broker counted the refusal".into())?;
    for line in refusals {
        println!("      refused by the broker, nobody received it: {line}");
    }
    for tally in &round_one {
        add(&mut totals, tally);
    }

    println!("\n[5/6] revocation: the administrator revokes alice; the epoch advances");
    let admin = authority.admin.clone();
    let revoked = tokio::task::spawn_blocking(move || admin.revoke_device("alice"))
        .await
        .map_err(|e| setup_error("revoke", e))?
        .map_err(|e| setup_error("revoke", e))?;
    let epoch = revoked.epoch.epoch;
    println!("    epoch {epoch}: keys now carry `epoch:{epoch}`, publishers encrypt for it");
    let renewed = sensor.renew(&sensor_store).await.map_err(|e| setup_error("renew temp-sensor", e))?;
    println!("    temp-sensor    renewed for epoch {renewed}");
    let broker_epoch = broker_follows(&broker, &broker_store, epoch).await?;
    println!(
        "    smqtt-broker   followed the authority's signed epoch {epoch} and renewed its sealing identity for epoch \
         {broker_epoch} by itself"
    );
    for sub in &mut subscribers {
        match sub.client.renew(&sub.store).await {
            Ok(e) => println!("    {:<13}  renewed for epoch {e}", sub.spec.id),
            Err(e) => {
                sub.revoked = true;
                println!("    {:<13}  refused by the authority: {e}", sub.spec.id);
            }
        }
    }
    expect(subscribers.iter().filter(|s| s.revoked).count() == 1, || "exactly alice is refused".into())?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish_round(&sensor, &policy, &legacy, options.messages, LEGACY_MESSAGES, 2, &mut totals).await?;
    println!("    epoch {epoch} messages, who read what:");
    let mut round_two = Vec::new();
    for sub in &mut subscribers {
        let tally = collect(sub, options.messages + LEGACY_MESSAGES).await;
        print_tally(sub, &tally, &sent);
        round_two.push(tally);
    }
    check_round_two(&round_two, options.messages)?;
    for tally in &round_two {
        add(&mut totals, tally);
    }

    print_summary(&totals, &round_one, &round_two);
    if options.keep {
        print_keep(&authority, &broker, &root);
        let _ = tokio::signal::ctrl_c().await;
    }
    drop(dir);
    Ok(())
}

fn add(totals: &mut Totals, tally: &Tally) {
    totals.read += tally.read.values().sum::<u32>();
    for (kind, n) in &tally.refused {
        *totals.refused.entry(kind).or_default() += n;
    }
}

/// Round one: alice and bob read the temperature, only bob (admin) the broker-sealed humidity; carol nothing.
fn check_round_one(tallies: &[Tally], messages: u32) -> Result<(), DemoError> {
    let read = |i: usize, what: &str| tallies[i].read.get(what).copied().unwrap_or(0);
    expect(read(0, "temperature") == messages, || "alice reads every temperature message".into())?;
    expect(read(1, "temperature") == messages, || "bob reads every temperature message".into())?;
    expect(read(1, "humidity") == LEGACY_MESSAGES, || "bob reads every broker-sealed humidity message".into())?;
    expect(read(0, "humidity") == 0, || "alice (not admin) reads no humidity message".into())?;
    expect(tallies[2].read.is_empty(), || "carol (paris) reads nothing".into())
}

/// Round two: alice is revoked and reads nothing new; bob goes on.
fn check_round_two(tallies: &[Tally], messages: u32) -> Result<(), DemoError> {
    let read = |i: usize, what: &str| tallies[i].read.get(what).copied().unwrap_or(0);
    expect(tallies[0].read.is_empty(), || "revoked alice reads nothing of the new epoch".into())?;
    expect(read(1, "temperature") == messages, || "bob reads every new temperature message".into())?;
    expect(read(1, "humidity") == LEGACY_MESSAGES, || "bob reads every new humidity message".into())?;
    expect(tallies[2].read.is_empty(), || "carol still reads nothing".into())
}

/// Shows what a client without any key sees of round one: envelopes, never the plaintext.
fn show_eavesdropper(watched: &mut tokio::sync::mpsc::Receiver<rumqttc::Publish>) -> Result<(), DemoError> {
    let mut seen = Vec::new();
    while let Ok(publish) = watched.try_recv() {
        seen.push(publish);
    }
    let leaked = seen.iter().filter(|p| contains(&p.payload, b" C (epoch") || contains(&p.payload, b"% rH")).count();
    println!(
        "    an eavesdropper (anonymous, read-only) received {} payloads on the same topics; {leaked} contain plaintext",
        seen.len()
    );
    if let Some(first) = seen.first() {
        let hex: String = first.payload.iter().take(24).map(|b| format!("{b:02x}")).collect();
        println!("      e.g. {} bytes on {}: {hex}…", first.payload.len(), first.topic);
    }
    expect(!seen.is_empty() && leaked == 0, || "the eavesdropper sees ciphertext only".into())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn publish_round(
    sensor: &SmqttClient,
    policy: &Policy,
    legacy: &rumqttc::AsyncClient,
    messages: u32,
    legacy_messages: u32,
    round: u32,
    totals: &mut Totals,
) -> Result<(), DemoError> {
    for i in 0..messages {
        let reading = format!("{:.1} C (epoch round {round}, #{i})", 20.0 + f64::from(i % 40) / 10.0);
        let started = Instant::now();
        sensor
            .publish(TEMPERATURE_TOPIC, policy, QoS::AtLeastOnce, false, reading.as_bytes())
            .await
            .map_err(|e| setup_error("publish", e))?;
        let took = started.elapsed();
        if i == 0 {
            totals.first_seal.push(took);
        } else {
            totals.seal_time += took;
            totals.sealed += 1;
        }
        totals.sent += 1;
    }
    for i in 0..legacy_messages {
        legacy
            .publish(LEGACY_TOPIC, rumqttc::QoS::AtLeastOnce, false, format!("{}% rH (#{i})", 40 + i).into_bytes())
            .await
            .map_err(|e| setup_error("legacy publish", e))?;
        totals.sent += 1;
    }
    Ok(())
}

/// A plain MQTT client — what a constrained sensor without SMQTT runs (with a password), or an anonymous
/// onlooker (without); `seen` receives what it is delivered. Each connects with a client id in its own space
/// (`legacy:<username>`, `anon:<name>`): the broker refuses ids that are another identity's.
async fn plain_client(
    broker: std::net::SocketAddr,
    id: &str,
    password: Option<&str>,
    seen: Option<tokio::sync::mpsc::Sender<rumqttc::Publish>>,
) -> rumqttc::AsyncClient {
    let client_id = if password.is_some() { format!("legacy:{id}") } else { format!("anon:{id}") };
    let mut options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", broker.port());
    if let Some(password) = password {
        options.set_credentials(id, password);
    }
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish))) => {
                    if let Some(seen) = &seen {
                        let _ = seen.try_send(publish);
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    client
}

fn print_summary(totals: &Totals, round_one: &[Tally], round_two: &[Tally]) {
    println!("\n[6/6] summary");
    let refused: u32 = totals.refused.values().sum();
    let reasons: Vec<String> = totals.refused.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "    messages sent {}, deliveries read {}, refused {refused} ({})",
        totals.sent,
        totals.read,
        reasons.join(", ")
    );
    let firsts: Vec<String> = totals.first_seal.iter().map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3)).collect();
    println!(
        "    publish: first message of each session {} (a FAME encapsulation; the very first also builds the public \
         key's tables), then {:.1} µs per message (AEAD + Ed25519 signature)",
        firsts.join(" / "),
        per_message_us(totals.seal_time, totals.sealed)
    );
    let bob_time = round_one[1].open_time + round_two[1].open_time;
    let bob_read: u32 = round_one[1].read.values().sum::<u32>() + round_two[1].read.values().sum::<u32>();
    println!(
        "    subscriber: {:.1} µs per delivery on average, network wait included (a capsule costs one decapsulation \
         per session, later messages an AEAD open and a signature check)",
        per_message_us(bob_time, bob_read)
    );
    println!("    the broker forwarded ciphertext only; it never held an attribute key\n");
}

fn per_message_us(total: Duration, n: u32) -> f64 {
    if n == 0 {
        0.0
    } else {
        total.as_secs_f64() * 1e6 / f64::from(n)
    }
}

fn print_keep(authority: &world::AuthorityHandle, broker: &world::BrokerHandle, root: &std::path::Path) {
    let stores = root.join("stores");
    println!("Still running (Ctrl-C ends it). Try, in another terminal:");
    println!("  export SMQTT_STORE={}/bob", stores.display());
    println!(
        "  cargo run --release -p smqtt-cli -- sub -H 127.0.0.1 -p {} -t 'plant/#' -t 'legacy/#' -v",
        broker.mqtt.port()
    );
    println!(
        "  cargo run --release -p smqtt-cli -- pub --store {}/temp-sensor -H 127.0.0.1 -p {} \
         -t {TEMPERATURE_TOPIC} --policy '{TEMPERATURE_POLICY}' -m 'hello'",
        stores.display(),
        broker.mqtt.port()
    );
    println!(
        "  mosquitto_sub -h 127.0.0.1 -p {} -t 'plant/#' -C 1 | xxd | head   # anonymous, read-only: ciphertext only",
        broker.mqtt.port()
    );
    println!(
        "  mosquitto_pub -h 127.0.0.1 -p {} -i legacy:{LEGACY_USER} -u {LEGACY_USER} -P humidity-sensor-password \
         -t {LEGACY_TOPIC} -m '47% rH'   \
         # sealed by the broker; bob reads it",
        broker.mqtt.port()
    );
    println!("  authority API: {}  (admin token: {})", authority.url, authority.admin_token);
}

/// Waits (at most 15 s) until the broker enforces `epoch` (it polls the authority's signed statement) and its
/// sealing identity has renewed itself for it; returns the identity's epoch.
async fn broker_follows(broker: &world::BrokerHandle, store: &DeviceStore, epoch: u64) -> Result<u64, DemoError> {
    let enforced = format!("smqtt_gate_min_epoch {epoch}");
    for _ in 0..150 {
        let store = store.clone();
        let identity = tokio::task::spawn_blocking(move || store.load().map(|i| i.epoch())).await.ok();
        let sealing = identity.and_then(Result::ok).unwrap_or(0);
        if broker.running.metrics_text().lines().any(|l| l == enforced) && sealing >= epoch {
            return Ok(sealing);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(DemoError::Setup(format!("the broker did not follow the authority to epoch {epoch} within 15 s")))
}
