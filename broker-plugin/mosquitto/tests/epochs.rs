//! Mosquitto with the plugin follows the authority's epoch, only through authority-signed statements in its
//! `epoch_file`: kept current from beside the broker by `smqtt follow` (`DeviceStore::follow_once`, which also
//! renews the broker's sealing identity; the plugin itself links no HTTP client), or by the authority itself
//! (`[epochs] statement_file`). A revoked device is refused at CONNECT and its publishes on a
//! still-open connection are dropped; an honest device that renewed in place keeps publishing on its connection;
//! the broker's sealing identity is renewed and reloaded. Unsigned or foreign statements never move the broker, and an
//! epoch file without a signed statement stops Mosquitto at start-up. Its own test binary, because it rotates the
//! authority's epoch. Skipped, loudly, if mosquitto is not installed.

mod common;

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{metric, Mosquitto, World, WAIT};
use smqtt_abe::Policy;
use smqtt_client::{ClientConfig, DeviceStore, Identity, Message, Messages, QoS, SmqttClient};
use smqtt_wire::{EpochBody, EpochStatement, SigningKey, VerifiedEpoch, VerifyingKey};

/// How long the broker may take to follow (the follower steps every 200 ms, the plugin re-reads its file at most
/// every second).
const PATIENCE: Duration = Duration::from_secs(15);
const METER_PASSWORD: &str = "meter secret";

fn argon2_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    let salt = SaltString::encode_b64(b"smqtt test salt!").expect("salt");
    argon2::Argon2::default().hash_password(password.as_bytes(), &salt).expect("hash").to_string()
}

/// Runs blocking work (HTTP, raw sockets, Mosquitto's clients, the authority client) off the async workers.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

fn scrape(broker: &Mosquitto) -> String {
    common::http_get(broker.metrics)
}

/// The epoch the gate enforces (`smqtt_gate_min_epoch`).
fn enforced_epoch(broker: &Mosquitto) -> Option<u64> {
    metric(&scrape(broker), "smqtt_gate_min_epoch")
}

fn refused(text: &str, check: &str, reason: &str) -> u64 {
    metric(text, &format!("smqtt_gate_refused_total{{check=\"{check}\",reason=\"{reason}\"}}")).unwrap_or(0)
}

/// Waits until `done` holds, checking every 100 ms for at most [`PATIENCE`]; on a timeout the broker log is shown.
fn within(what: &str, broker: &Mosquitto, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if done() {
            return;
        }
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}\n{}", broker.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`within`], from async code.
async fn eventually(what: &str, broker: &Mosquitto, done: impl FnMut() -> bool) {
    blocking(|| within(what, broker, done));
}

/// The CONNACK return code for `identity` connecting as `client_id` with a fresh CONNECT token (0 accepted,
/// 5 not authorised: Mosquitto's plugin API makes every refusal that).
fn connack(addr: SocketAddr, identity: &Identity, client_id: &str) -> u8 {
    let token = common::token(identity, client_id);
    let packet = common::connect_packet(client_id, Some(identity.device_id().as_str()), Some(token.as_bytes()), None);
    common::raw_connect(addr, &packet).1
}

fn verified(text: &str, authority: &VerifyingKey) -> VerifiedEpoch {
    EpochStatement::parse(text)
        .and_then(|s| s.verify(authority))
        .unwrap_or_else(|e| panic!("not a statement of the authority ({e}): {text:?}"))
}

fn read_verified(path: &Path, authority: &VerifyingKey) -> VerifiedEpoch {
    verified(&std::fs::read_to_string(path).expect("statement file"), authority)
}

fn store_epoch(store: &Path) -> u64 {
    DeviceStore::at(store).load().map_or(0, |identity| identity.epoch())
}

/// The next delivery, opened; on a timeout or a refusal the broker log is shown.
async fn opened(rx: &mut Messages, broker: &Mosquitto) -> Message {
    match rx.next_timeout(WAIT).await {
        Some(Ok(message)) => message,
        Some(Err(e)) => panic!("delivery refused by the subscriber: {e:?}\n{}", broker.log_text()),
        None => panic!("no delivery within {WAIT:?}\n{}", broker.log_text()),
    }
}

/// The next delivery must be `payload` from `publisher` under `policy`.
async fn delivered(rx: &mut Messages, broker: &Mosquitto, payload: &str, publisher: &str, policy: &str) {
    let m = opened(rx, broker).await;
    assert_eq!(
        (String::from_utf8_lossy(m.payload()).as_ref(), m.publisher(), m.policy()),
        (payload, publisher, policy),
        "{}",
        broker.log_text()
    );
}

/// The legacy meter publishes plaintext (QoS 1, through `mosquitto_pub`); the broker seals it.
fn meter_publishes(broker: &Mosquitto, text: &str) {
    let output = broker.publish(&[
        "-i",
        "legacy:meter",
        "-u",
        "meter",
        "-P",
        METER_PASSWORD,
        "-q",
        "1",
        "-t",
        "legacy/meter/power",
        "-m",
        text,
    ]);
    assert!(output.status.success(), "{}\n{}", String::from_utf8_lossy(&output.stderr), broker.log_text());
}

/// Connections Mosquitto accepted for `client_id` (its "New client connected … as <id> (…)" log lines).
fn connections_of(broker: &Mosquitto, client_id: &str) -> usize {
    broker.log_text().matches(&format!(" as {client_id} (")).count()
}

/// `smqtt follow` beside the broker, as the CLI runs it: one step every 200 ms until dropped.
struct Follower {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Follower {
    fn start(store: &Path, epoch_file: &Path) -> Follower {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, store, epoch_file) = (stop.clone(), DeviceStore::at(store), epoch_file.to_path_buf());
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = store.follow_once(Some(&epoch_file));
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Follower { stop, thread: Some(thread) }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_authority_from_beside_mosquitto_a_revocation_reaches_it_by_itself() {
    if !common::have_mosquitto() {
        return;
    }
    let world = blocking(|| {
        let world = World::new();
        world.device("op", "role:operator", &[]);
        world.device("sensor", "role:sensor", &["plant/#"]);
        world.device("victim", "role:sensor", &["plant/#"]);
        world.device("broker", "role:broker", &["legacy/#"]);
        world
    });
    let authority = *world.identity("op").authority_key();
    let cache = world.dir.path().join("cached.statement");
    let broker_store = world.store_dir("broker");
    let gate = format!(
        r#"[authority]
verifying_key = "{key}"
epoch_file = "{cache}"
[topics]
protected = ["plant/#"]
[sealing]
store = "{store}"
topics = [{{ filter = "legacy/#", policy = "role:operator" }}]
[[legacy]]
username = "meter"
password_hash = "{hash}"
publish = ["legacy/meter/#"]
"#,
        key = broker_store.join("authority.pub").display(),
        cache = cache.display(),
        store = broker_store.display(),
        hash = argon2_hash(METER_PASSWORD),
    );
    // `smqtt follow --once` before the broker starts (the epoch file must exist), then the loop beside it.
    let first = blocking(|| DeviceStore::at(&broker_store).follow_once(Some(&cache))).expect("follow --once");
    let epoch1 = blocking(|| world.admin.epoch()).expect("epoch").epoch;
    assert_eq!(first, smqtt_client::Followed { epoch: epoch1, statement_written: true, renewed: false });
    assert_eq!(read_verified(&cache, &authority).epoch(), epoch1);
    let broker = Mosquitto::start(&gate);
    let follower = Follower::start(&broker_store, &cache);
    let addr = broker.addr();
    eventually("the gate enforces the authority's epoch", &broker, || enforced_epoch(&broker) == Some(epoch1)).await;

    let config = ClientConfig::new("127.0.0.1", broker.port);
    let (op, mut op_rx) = SmqttClient::connect(world.identity("op"), &config).expect("op");
    let (sensor, _) = SmqttClient::connect(world.identity("sensor"), &config).expect("sensor");
    let (victim, _) = SmqttClient::connect(world.identity("victim"), &config).expect("victim");
    for (name, client) in [("op", &op), ("sensor", &sensor), ("victim", &victim)] {
        client.wait_connected(WAIT).await.unwrap_or_else(|e| panic!("{name}: {e}\n{}", broker.log_text()));
    }
    op.subscribe("plant/#", QoS::AtLeastOnce).await.expect("subscribe");
    op.subscribe("legacy/#", QoS::AtLeastOnce).await.expect("subscribe");
    eventually("op's subscriptions are in place", &broker, || {
        metric(&scrape(&broker), r#"smqtt_gate_accepted_total{check="subscribe"}"#).unwrap_or(0) >= 2
    })
    .await;

    // Epoch 1: everyone publishes; the meter's plaintext is sealed by the broker's own identity.
    let policy = Policy::parse("role:operator").expect("policy");
    let sealed = |epoch: u64| format!("role:operator and epoch:{epoch}");
    sensor.publish("plant/line1/temp", &policy, QoS::AtLeastOnce, false, b"before").await.expect("publish");
    delivered(&mut op_rx, &broker, "before", "sensor", &sealed(epoch1)).await;
    victim.publish("plant/line1/temp", &policy, QoS::AtLeastOnce, false, b"victim before").await.expect("publish");
    delivered(&mut op_rx, &broker, "victim before", "victim", &sealed(epoch1)).await;
    blocking(|| meter_publishes(&broker, "1 W"));
    delivered(&mut op_rx, &broker, "1 W", "broker", &sealed(epoch1)).await;
    let (victim_old, sensor_old) = (world.identity("victim"), world.identity("sensor"));
    assert_eq!(blocking(|| connack(addr, &victim_old, "victim/probe")), 0, "{}", broker.log_text());

    // The administrator revokes the victim. Nobody touches the broker: the follower brings the signed epoch.
    let revoked = blocking(|| world.admin.revoke_device("victim")).expect("revoke");
    let epoch2 = revoked.epoch.epoch;
    assert!(revoked.epoch_advanced && epoch2 > epoch1, "{revoked:?}");
    eventually("the plugin enforces the new epoch", &broker, || enforced_epoch(&broker) == Some(epoch2)).await;

    // The revoked device cannot come back (nor can a credential of the old epoch, honest or not) …
    assert_eq!(blocking(|| connack(addr, &victim_old, "victim")), 5, "{}", broker.log_text());
    assert_eq!(blocking(|| connack(addr, &sensor_old, "sensor/probe")), 5, "{}", broker.log_text());
    assert_eq!(refused(&blocking(|| scrape(&broker)), "connect", "revoked_epoch"), 2);
    // … and what it publishes on its still-open connection is dropped (counted here, absent below).
    victim.publish("plant/line1/temp", &policy, QoS::AtLeastOnce, false, b"victim after").await.expect("publish");
    eventually("the victim's publish is refused", &broker, || {
        refused(&scrape(&broker), "publish", "revoked_epoch") == 1
    })
    .await;
    assert!(blocking(|| DeviceStore::at(&world.store_dir("victim")).renew()).is_err(), "the victim renewed");

    // The broker's sealing identity was renewed beside it and reloaded: the meter's next reading is sealed for
    // the new epoch.
    eventually("the sealing identity was renewed", &broker, || store_epoch(&broker_store) == epoch2).await;
    assert_eq!(op.renew(&DeviceStore::at(&world.store_dir("op"))).await.expect("op renews"), epoch2);
    blocking(|| meter_publishes(&broker, "2 W"));
    // The first delivery since the rotation: the victim's publish never reached the subscriber.
    delivered(&mut op_rx, &broker, "2 W", "broker", &sealed(epoch2)).await;

    // The honest sensor, on its original connection: refused with its old credential, accepted once it has
    // renewed in place (its next envelope carries the renewed credential).
    sensor.publish("plant/line1/temp", &policy, QoS::AtLeastOnce, false, b"stale").await.expect("publish");
    eventually("the sensor's stale publish is refused", &broker, || {
        refused(&scrape(&broker), "publish", "revoked_epoch") == 2
    })
    .await;
    assert_eq!(sensor.renew(&DeviceStore::at(&world.store_dir("sensor"))).await.expect("sensor renews"), epoch2);
    for i in 0..3 {
        let text = format!("renewed {i}");
        sensor.publish("plant/line1/temp", &policy, QoS::AtLeastOnce, false, text.as_bytes()).await.expect("publish");
        delivered(&mut op_rx, &broker, &text, "sensor", &sealed(epoch2)).await;
    }
    let text = blocking(|| scrape(&broker));
    assert_eq!(refused(&text, "publish", "revoked_epoch"), 2, "{text}");
    assert_eq!(refused(&text, "publish", "seal_failed"), 0, "{text}");
    // All of it on the connections made before the rotation: nobody reconnected.
    let log = broker.log_text();
    for client_id in ["op", "sensor", "victim"] {
        assert_eq!(connections_of(&broker, client_id), 1, "{client_id} reconnected:\n{log}");
    }
    assert_eq!(connections_of(&broker, "victim/probe"), 1, "{log}");

    // The cache holds the authority's statement of the new epoch.
    assert_eq!(read_verified(&cache, &authority).epoch(), epoch2);
    drop(follower);
    drop((op, sensor, victim));
    blocking(move || drop((broker, world)));
}

/// Connects `honest` and `revoked` repeatedly for longer than the broker's file re-read interval (1 s), so the
/// file is re-read at least once: the honest device (current epoch) gets in every time, the revoked one never,
/// and the enforced epoch stays `epoch`.
fn holds_still(broker: &Mosquitto, epoch: u64, honest: &Identity, revoked: &Identity, after: &str) {
    let until = Instant::now() + Duration::from_millis(1600);
    while Instant::now() < until {
        assert_eq!(connack(broker.addr(), honest, "honest"), 0, "after {after}: honest refused\n{}", broker.log_text());
        assert_eq!(
            connack(broker.addr(), revoked, "first"),
            5,
            "after {after}: revoked accepted\n{}",
            broker.log_text()
        );
        assert_eq!(enforced_epoch(broker), Some(epoch), "after {after}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn following_the_authoritys_statement_file_only_signed_statements_move_mosquitto() {
    if !common::have_mosquitto() {
        return;
    }
    let world = World::with_statement_file();
    world.device("honest", "role:operator", &[]);
    world.device("first", "role:operator", &["data/#"]);
    world.device("second", "role:operator", &[]);
    let file = world.statement_file();
    let deadline = Instant::now() + PATIENCE;
    while !file.exists() {
        assert!(Instant::now() < deadline, "the authority did not write {}", file.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    let authority = *world.identity("honest").authority_key();
    let statement1 = std::fs::read_to_string(&file).expect("statement");
    let epoch1 = verified(&statement1, &authority).epoch();
    let gate = format!(
        "[authority]\nverifying_key = \"{}\"\nepoch_file = \"{}\"\n[topics]\nprotected = [\"plant/#\"]\n",
        world.store_dir("honest").join("authority.pub").display(),
        file.display()
    );
    let broker = Mosquitto::start(&gate);
    let addr = broker.addr();
    assert_eq!(enforced_epoch(&broker), Some(epoch1));
    let first = world.identity("first");
    assert_eq!(connack(addr, &first, "first"), 0, "{}", broker.log_text());
    // `first` also keeps a connection open, publishing (plaintext: `data/#` is in its rights, not protected).
    let token = common::token(&first, "first/open");
    let packet = common::connect_packet("first/open", Some("first"), Some(token.as_bytes()), None);
    let (mut open, rc) = common::raw_connect(addr, &packet);
    assert_eq!(rc, 0, "{}", broker.log_text());
    open.write_all(&common::publish_packet("data/first", b"before")).expect("publish");
    within("first's publish is accepted", &broker, || {
        metric(&scrape(&broker), r#"smqtt_gate_accepted_total{check="publish"}"#) == Some(1)
    });

    // The authority revokes `first` and rewrites its statement file; the broker re-reads it (at most once a
    // second, when a client acts) without being told: `first`'s publishes on its open connection are refused,
    // before any new CONNECT.
    let epoch2 = world.admin.revoke_device("first").expect("revoke").epoch.epoch;
    assert!(epoch2 > epoch1);
    within("the broker refuses the revoked device's publishes", &broker, || {
        open.write_all(&common::publish_packet("data/first", b"after")).expect("publish");
        refused(&scrape(&broker), "publish", "revoked_epoch") >= 1
    });
    let text = scrape(&broker);
    assert_eq!(metric(&text, "smqtt_gate_min_epoch"), Some(epoch2), "{text}");
    // (No CONNECT since the two before the revocation: the publishes alone made the broker re-read its file.)
    assert_eq!(metric(&text, "smqtt_mosquitto_connects_accepted_total"), Some(2), "{text}");
    assert_eq!(metric(&text, "smqtt_mosquitto_connects_refused_total"), Some(0), "{text}");
    // Nor can it come back.
    assert_eq!(connack(addr, &first, "first"), 5, "{}", broker.log_text());
    let statement2 = verified(&std::fs::read_to_string(&file).expect("statement"), &authority);
    assert_eq!(statement2.epoch(), epoch2);
    let honest_old = world.identity("honest");
    assert_eq!(connack(addr, &honest_old, "honest"), 5, "a credential of epoch {epoch1} accepted");
    let honest = DeviceStore::at(&world.store_dir("honest")).renew().expect("renew");
    assert_eq!(honest.epoch(), epoch2);
    assert_eq!(connack(addr, &honest, "honest"), 0, "{}", broker.log_text());

    // Whatever else lands in the file does not move the broker, forward or back: a bare number, a statement of
    // a later epoch signed by another key (otherwise the authority's own), the authority's statement of an older
    // epoch.
    let later = epoch2 + 10;
    let mut forged = *statement2.body();
    (forged.epoch, forged.issued_at) = (later, common::now());
    let impostor = SigningKey::from_bytes(&[7; 32]);
    for (what, text) in [
        ("a bare number", format!("{later}\n")),
        ("a statement signed by another key", format!("{}\n", forged.sign(&impostor))),
        ("the authority's statement of an older epoch", statement1),
    ] {
        std::fs::write(&file, text).expect("write the epoch file");
        holds_still(&broker, epoch2, &honest, &first, what);
    }

    // The authority's next statement does: it revokes `second`, and the renewed honest credential of epoch 2
    // is of a past epoch at the next re-read.
    let epoch3 = world.admin.revoke_device("second").expect("revoke").epoch.epoch;
    assert!(epoch3 > epoch2);
    within("the broker enforces the authority's next epoch", &broker, || connack(addr, &honest, "honest") == 5);
    assert_eq!(enforced_epoch(&broker), Some(epoch3));
    assert_eq!(read_verified(&file, &authority).epoch(), epoch3);
    let honest = DeviceStore::at(&world.store_dir("honest")).renew().expect("renew");
    assert_eq!(honest.epoch(), epoch3);
    assert_eq!(connack(addr, &honest, "honest"), 0, "{}", broker.log_text());
    assert_eq!(connack(addr, &first, "first"), 5);
    // Every CONNECT refused here was refused for its epoch.
    let text = scrape(&broker);
    let connects_refused: u64 = text
        .lines()
        .filter(|l| l.starts_with(r#"smqtt_gate_refused_total{check="connect""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(connects_refused, refused(&text, "connect", "revoked_epoch"), "{text}");
}

/// Starts mosquitto with the plugin and `gate_toml`, expecting it to refuse the plugin: it must exit with an
/// error, never having listened, within [`WAIT`]. Returns its log.
fn refused_to_load(gate_toml: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = dir.path().join("broker.toml");
    std::fs::write(&toml, gate_toml).expect("broker.toml");
    let port = common::free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(&conf, common::mosquitto_conf(port, &common::plugin_path(), &toml, None)).expect("conf");
    let log = dir.path().join("mosquitto.log");
    let mut child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("mosquitto");
    let deadline = Instant::now() + WAIT;
    let mut listened = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        listened |= TcpStream::connect(("127.0.0.1", port)).is_ok();
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.is_some_and(|s| !s.success()), "mosquitto kept running ({status:?}):\n{text}");
    assert!(!listened, "mosquitto listened before refusing the plugin:\n{text}");
    text
}

#[test]
fn an_epoch_file_without_a_signed_statement_stops_mosquitto() {
    if !common::have_mosquitto() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let authority = SigningKey::from_bytes(&[1; 32]);
    let key = dir.path().join("authority.pub");
    std::fs::write(&key, authority.verifying_key().to_bytes()).expect("key");
    let statement = |epoch: u64, signer: &SigningKey| {
        let now = common::now();
        EpochBody { epoch, started_at: now, issued_at: now, params_id: [9; 32] }.sign(signer)
    };
    let gate = |file: &Path| {
        format!("[authority]\nverifying_key = \"{}\"\nepoch_file = \"{}\"\n", key.display(), file.display())
    };

    // The control: the authority's statement loads, and is enforced.
    let good = dir.path().join("good.statement");
    std::fs::write(&good, format!("{}\n", statement(3, &authority))).expect("statement");
    let broker = Mosquitto::start(&gate(&good));
    assert_eq!(enforced_epoch(&broker), Some(3));
    drop(broker);

    let impostor = SigningKey::from_bytes(&[2; 32]);
    for (name, text, reason) in [
        ("number", "7\n".to_owned(), "not a bare number"),
        ("foreign", statement(7, &impostor), "not signed by the authority key"),
    ] {
        let file = dir.path().join(format!("{name}.statement"));
        std::fs::write(&file, text).expect("epoch file");
        let log = refused_to_load(&gate(&file));
        assert!(log.contains("smqtt: not loaded") && log.contains(reason), "{name}: {log}");
    }
}

#[test]
fn an_authority_url_stops_mosquitto_with_the_way_to_follow_it() {
    if !common::have_mosquitto() {
        return;
    }
    // The plugin reaches no authority itself (it links no HTTP client): `url` is refused at start with the
    // command that follows the authority from beside the broker.
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("authority.pub");
    std::fs::write(&key, SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes()).expect("key");
    let gate = format!("[authority]\nverifying_key = \"{}\"\nurl = \"http://127.0.0.1:8740\"\n", key.display());
    let log = refused_to_load(&gate);
    assert!(log.contains("smqtt: not loaded") && log.contains("smqtt follow"), "{log}");
}
