//! The plugin loaded by a real `mosquitto` process (Debian's 2.0.11 in CI), against SDK clients, Mosquitto's
//! own `mosquitto_pub`/`mosquitto_sub` and raw sockets. Skipped, loudly, if mosquitto is not installed.

mod common;

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{metric, password_hash, raw_connect, Mosquitto, Will, World, WAIT};
use smqtt_abe::Policy;
use smqtt_client::{ClientConfig, Message, MessageError, Messages, QoS, Sealer, SessionPolicy, SmqttClient};
use smqtt_testkit::clients::subscribed;
use smqtt_testkit::metrics::wait_metric;

const LEGACY_PASSWORD: &str = "meter-1 secret";

/// The gate's broker.toml: protected `plant/#`, legacy `meter-1` sealed under `legacy/#`, anonymous read-only.
fn gate_toml(world: &World, anonymous: bool) -> String {
    let store = world.store_dir("broker");
    format!(
        r#"[authority]
verifying_key = "{key}"
[anonymous]
allow = {anonymous}
subscribe = ["plant/#", "legacy/#"]
[topics]
protected = ["plant/#"]
[sealing]
store = "{store}"
topics = [{{ filter = "legacy/#", policy = "role:operator" }}]
[[legacy]]
username = "meter-1"
password_hash = "{hash}"
publish = ["legacy/meter-1/#"]
"#,
        key = store.join("authority.pub").display(),
        store = store.display(),
        hash = password_hash(LEGACY_PASSWORD),
    )
}

fn policy() -> Policy {
    Policy::parse("site:berlin and role:operator").expect("policy")
}

/// The next delivery, opened; on a timeout or a refusal the broker log is shown.
async fn opened(rx: &mut Messages, broker: &Mosquitto) -> Message {
    match rx.next_timeout(WAIT).await {
        Some(Ok(message)) => message,
        Some(Err(e)) => panic!("delivery refused by the subscriber: {e:?}\n{}", broker.log_text()),
        None => panic!("no delivery within {WAIT:?}\n{}", broker.log_text()),
    }
}

async fn next_payload(rx: &mut Messages, broker: &Mosquitto) -> Vec<u8> {
    opened(rx, broker).await.into_payload()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A v5 QoS 1 `mosquitto_pub` whose PUBACK must say "Not authorized" (0x87), the connection staying up.
fn assert_refused_publish(broker: &Mosquitto, args: &[&str]) {
    let mut full = vec!["-V", "5", "-q", "1"];
    full.extend_from_slice(args);
    let output = broker.publish(&full);
    assert!(
        stderr(&output).contains("Not authorized"),
        "publish {args:?} not refused: {}\n{}",
        stderr(&output),
        broker.log_text()
    );
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcement_and_sealing_through_mosquitto() {
    if !common::have_mosquitto() {
        return;
    }
    let world = blocking(|| {
        let world = World::new();
        world.device("sensor-1", "role:sensor, site:berlin", &["plant/berlin/#"]);
        world.device("op-1", "role:operator, site:berlin", &[]);
        world.device("op-late", "role:operator, site:berlin", &[]);
        world.device("mallory", "role:sensor, site:berlin", &["plant/#"]);
        world.device("broker", "role:broker", &["legacy/#"]);
        world
    })
    .await;
    let world = Arc::new(world);
    let broker = Mosquitto::logging_subscriptions(&gate_toml(&world, true));
    let port = broker.port.to_string();
    let config = ClientConfig::new("127.0.0.1", broker.port);

    let (op, mut op_rx) = SmqttClient::connect(world.identity("op-1"), &config).expect("connect op");
    subscribed(&op, "plant/#", QoS::AtLeastOnce).await;
    subscribed(&op, "legacy/#", QoS::AtLeastOnce).await;
    let (sensor, _) = SmqttClient::connect(world.identity("sensor-1"), &config).expect("connect sensor");
    let spy = broker.subscribe(&["-i", "anon:spy", "-t", "plant/#", "-C", "1", "-N", "-W", "10"]);
    tokio::task::block_in_place(|| broker.wait_subscribed("anon:spy", "plant/#"));
    sensor.wait_connected(WAIT).await.expect("sensor connected");

    // --- CONNECT: wrong tokens refused (anonymous is allowed here, read-only; see the flood test for "off").
    let sensor_id = world.identity("sensor-1");
    let mallory_id = world.identity("mallory");
    let good = common::token(&sensor_id, "sensor-1/cli");
    let forged = smqtt_wire::ConnectToken::create(
        mallory_id.signing_key(),
        sensor_id.credential(),
        "sensor-1/cli",
        common::now(),
    )
    .expect("forged token");
    for (client_id, username, password) in [
        ("sensor-1/cli", "sensor-1", "not a token"),
        ("sensor-1/cli", "sensor-1", forged.as_str()),
        ("sensor-1/other", "sensor-1", good.as_str()),
        ("sensor-1/cli", "mallory", good.as_str()),
        ("legacy:nobody", "nobody", "x"),
    ] {
        let output = broker.publish(&["-i", client_id, "-u", username, "-P", password, "-t", "plant/x", "-m", "x"]);
        assert!(!output.status.success(), "CONNECT {client_id}/{username} accepted");
        assert!(stderr(&output).contains("not authorised"), "{}", stderr(&output));
    }
    // Anonymous clients may read (below) but not publish.
    assert_refused_publish(&broker, &["-t", "plant/berlin/line1/temp", "-m", "anonymous"]);

    // --- valid envelopes flow, and the broker carries only ciphertext.
    sensor
        .publish("plant/berlin/line1/temp", &policy(), QoS::AtLeastOnce, false, b"secret 23.5 C")
        .await
        .expect("publish");
    let message = opened(&mut op_rx, &broker).await;
    assert_eq!((message.payload(), message.publisher()), (&b"secret 23.5 C"[..], "sensor-1"));
    let spied = blocking(move || spy.wait_with_output()).await.expect("spy");
    let envelope = spied.stdout;
    assert!(envelope.starts_with(smqtt_wire::MAGIC), "not an envelope: {envelope:?}");
    assert!(!envelope.windows(6).any(|w| w == b"secret"), "plaintext at the broker");

    // --- refused publishes: outside rights, plaintext, a foreign signer's envelope (all v5 QoS 1 → 0x87).
    let envelope_file = world.dir.path().join("captured.bin");
    std::fs::write(&envelope_file, &envelope).expect("write");
    let file = envelope_file.to_str().expect("path");
    let as_sensor = ["-i", "sensor-1/cli", "-u", "sensor-1", "-P", good.as_str()];
    let mallory_token = common::token(&mallory_id, "mallory/cli");
    let as_mallory = ["-i", "mallory/cli", "-u", "mallory", "-P", mallory_token.as_str()];
    assert_refused_publish(&broker, &[&as_sensor[..], &["-t", "plant/paris/line1/temp", "-f", file]].concat());
    assert_refused_publish(&broker, &[&as_sensor[..], &["-t", "plant/berlin/line1/temp", "-m", "plain 1"]].concat());
    assert_refused_publish(&broker, &[&as_mallory[..], &["-t", "plant/berlin/line1/temp", "-f", file]].concat());
    // Refused retained plaintext is not stored either.
    assert_refused_publish(
        &broker,
        &[&as_mallory[..], &["-r", "-t", "plant/berlin/line2/state", "-m", "plain"]].concat(),
    );
    // Nothing of that reached the subscriber: the next delivery is the marker published after them.
    sensor.publish("plant/berlin/line1/temp", &policy(), QoS::AtLeastOnce, false, b"marker 1").await.expect("publish");
    assert_eq!(next_payload(&mut op_rx, &broker).await, b"marker 1");

    // --- retained: a valid envelope is stored; a legacy plaintext publish is sealed by the broker.
    sensor.publish("plant/berlin/line1/state", &policy(), QoS::AtLeastOnce, true, b"running").await.expect("publish");
    assert_eq!(next_payload(&mut op_rx, &broker).await, b"running");
    let legacy = ["-i", "legacy:meter-1", "-u", "meter-1", "-P", LEGACY_PASSWORD];
    let output =
        broker.publish(&[&legacy[..], &["-q", "1", "-r", "-t", "legacy/meter-1/power", "-m", "42 W"]].concat());
    assert!(output.status.success(), "legacy publish: {}\n{}", stderr(&output), broker.log_text());
    let sealed = opened(&mut op_rx, &broker).await;
    assert_eq!((sealed.payload(), sealed.publisher()), (&b"42 W"[..], "broker"));
    assert!(sealed.policy().contains("role:operator"), "{}", sealed.policy());
    // A plain mosquitto_sub sees the retained legacy message only as ciphertext.
    let stored = broker.subscribe(&["-t", "legacy/meter-1/power", "-C", "1", "-N", "-W", "10"]);
    let stored = blocking(move || stored.wait_with_output()).await.expect("sub").stdout;
    assert!(stored.starts_with(smqtt_wire::MAGIC), "legacy message stored as {stored:?}");
    assert!(!stored.windows(4).any(|w| w == b"42 W"), "legacy plaintext stored");
    // A late joiner gets exactly the two valid retained messages, then the live marker.
    let (late, mut late_rx) = SmqttClient::connect(world.identity("op-late"), &config).expect("connect late");
    subscribed(&late, "plant/#", QoS::AtLeastOnce).await;
    subscribed(&late, "legacy/#", QoS::AtLeastOnce).await;
    sensor.publish("plant/berlin/line1/temp", &policy(), QoS::AtLeastOnce, false, b"marker 2").await.expect("publish");
    // (The SDK may subscribe twice around its first CONNACK, and MQTT resends retained messages then: each
    // (session, sequence) is shown once, the second copy is a replay. Retained messages have sessions of their
    // own, so the late joiner may not know the live session's key yet: the marker then is an unknown key.)
    let mut retained = std::collections::BTreeSet::new();
    loop {
        match late_rx.next_timeout(WAIT).await {
            Some(Ok(message)) if message.payload() == b"marker 2" => break,
            Some(Ok(message)) => {
                retained.insert(message.into_payload());
            }
            Some(Err(MessageError::Replay { .. })) => {}
            Some(Err(MessageError::UnknownKey { topic, .. })) if topic == "plant/berlin/line1/temp" => break,
            other => panic!("late joiner: {other:?}\n{}", broker.log_text()),
        }
    }
    assert_eq!(retained.into_iter().collect::<Vec<_>>(), [b"42 W".to_vec(), b"running".to_vec()]);
    assert_eq!(next_payload(&mut op_rx, &broker).await, b"marker 2");

    // --- wills, checked when they fire (Mosquitto 2.0 shows them to plugins only then).
    let mut sealer = Sealer::new(
        sensor_id.device_id().clone(),
        world.identity("sensor-1").into_parts().signing_key,
        sensor_id.credential().to_vec(),
        Arc::new(world.identity("sensor-1").into_parts().public_key),
        sensor_id.epoch(),
        SessionPolicy::default(),
    );
    let mut seal = |topic: &str, text: &[u8]| {
        sealer.seal(topic, &policy(), text, false, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng).expect("seal")
    };
    let will_topic = "plant/berlin/line1/will";
    let connect = |client_id: &str, will: &Will<'_>| {
        let token = common::token(&sensor_id, client_id);
        common::connect_packet(client_id, Some("sensor-1"), Some(token.as_bytes()), Some(will))
    };
    // A valid envelope as will: delivered when the connection drops.
    let payload = seal(will_topic, b"sensor gone");
    let (stream, rc) = raw_connect(
        broker.addr(),
        &connect("sensor-1/w1", &Will { topic: will_topic, payload: &payload, qos: 1, retain: false }),
    );
    assert_eq!(rc, 0, "{}", broker.log_text());
    drop(stream);
    assert_eq!(next_payload(&mut op_rx, &broker).await, b"sensor gone");
    // Taken over by a new connection with the same client id: the old one's will fires, checked with the old
    // connection's session.
    let payload = seal(will_topic, b"taken over");
    let (first, rc) = raw_connect(
        broker.addr(),
        &connect("sensor-1/w2", &Will { topic: will_topic, payload: &payload, qos: 1, retain: false }),
    );
    assert_eq!(rc, 0);
    let token = common::token(&sensor_id, "sensor-1/w2");
    let (second, rc) = raw_connect(
        broker.addr(),
        &common::connect_packet("sensor-1/w2", Some("sensor-1"), Some(token.as_bytes()), None),
    );
    assert_eq!(rc, 0);
    assert_eq!(next_payload(&mut op_rx, &broker).await, b"taken over");
    drop((first, second));
    // A plaintext will, a will outside the rights, and mallory's will made of the sensor's envelope: refused.
    let plaintext = b"plain will".to_vec();
    let elsewhere = seal("plant/paris/will", b"elsewhere");
    let mallory_will = common::token(&mallory_id, "mallory/w");
    for (client_id, username, token, topic, payload) in [
        ("sensor-1/w3", "sensor-1", common::token(&sensor_id, "sensor-1/w3"), will_topic, &plaintext),
        ("sensor-1/w4", "sensor-1", common::token(&sensor_id, "sensor-1/w4"), "plant/paris/will", &elsewhere),
        ("mallory/w", "mallory", mallory_will, "plant/berlin/line1/temp", &envelope),
    ] {
        let will = Will { topic, payload, qos: 1, retain: false };
        let packet = common::connect_packet(client_id, Some(username), Some(token.as_bytes()), Some(&will));
        let (stream, rc) = raw_connect(broker.addr(), &packet);
        assert_eq!(rc, 0);
        drop(stream);
    }
    // A legacy client's plaintext will is sealed by the broker.
    let legacy_connect = common::connect_packet(
        "legacy:meter-1",
        Some("meter-1"),
        Some(LEGACY_PASSWORD.as_bytes()),
        Some(&Will { topic: "legacy/meter-1/status", payload: b"meter offline", qos: 1, retain: false }),
    );
    let (stream, rc) = raw_connect(broker.addr(), &legacy_connect);
    assert_eq!(rc, 0, "{}", broker.log_text());
    drop(stream);
    let will = opened(&mut op_rx, &broker).await;
    assert_eq!(
        (will.payload(), will.publisher(), will.topic()),
        (&b"meter offline"[..], "broker", "legacy/meter-1/status")
    );
    // The three refused wills have been decided (their connections closed before the legacy one's).
    blocking({
        let metrics = broker.metrics;
        move || {
            let text = || common::http_get(metrics);
            wait_metric("three refused wills", text, "smqtt_mosquitto_wills_refused_total", |n| n >= 3)
        }
    })
    .await;
    sensor.publish("plant/berlin/line1/temp", &policy(), QoS::AtLeastOnce, false, b"marker 3").await.expect("publish");
    assert_eq!(next_payload(&mut op_rx, &broker).await, b"marker 3", "a refused will got through");

    // A wrong legacy password (late: the gate refuses a username for a second after a failure).
    let output =
        broker.publish(&["-i", "legacy:meter-1", "-u", "meter-1", "-P", "wrong", "-t", "legacy/meter-1/x", "-m", "x"]);
    assert!(stderr(&output).contains("not authorised"), "{}", stderr(&output));

    // --- SUBSCRIBE: anonymous clients only within their filters.
    let denied = blocking({
        let port = port.clone();
        move || common::mosquitto_sub_once(&port, &["-t", "secret/#", "-E"])
    })
    .await;
    assert!(denied.contains("All subscription requests were denied"), "{denied}");
    let allowed = blocking(move || common::mosquitto_sub_once(&port, &["-t", "plant/#", "-E"])).await;
    assert!(!allowed.contains("denied"), "{allowed}");

    // --- metrics: the gate's counters by reason and the plugin's own.
    let text = blocking({
        let metrics = broker.metrics;
        move || common::http_get(metrics)
    })
    .await;
    let refused = |check: &str, reason: &str| {
        metric(&text, &format!("smqtt_gate_refused_total{{check=\"{check}\",reason=\"{reason}\"}}")).unwrap_or(0)
    };
    let connects: u64 = text
        .lines()
        .filter(|l| l.starts_with("smqtt_gate_refused_total{check=\"connect\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(connects >= 6, "{connects} CONNECTs refused\n{text}");
    assert!(refused("connect", "bad_password") >= 1, "{text}");
    assert!(refused("publish", "topic_not_permitted") >= 1, "{text}");
    assert!(refused("publish", "not_an_envelope") >= 1, "{text}");
    assert!(refused("publish", "foreign_signer") >= 1, "{text}");
    assert!(refused("publish", "anonymous_read_only") >= 1, "{text}");
    assert_eq!(metric(&text, "smqtt_mosquitto_publishes_sealed_total"), Some(1), "{text}");
    assert_eq!(metric(&text, "smqtt_mosquitto_wills_refused_total"), Some(3), "{text}");
    assert_eq!(metric(&text, "smqtt_mosquitto_panics_total"), Some(0), "{text}");
    drop((op, sensor, late));
    blocking(move || drop(world)).await;
}

/// One client floods the broker with garbage (raw bytes before CONNECT, malformed CONNECTs, and thousands of
/// refused PUBLISHes on an authenticated connection); the others keep being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_client_does_not_stop_the_others() {
    if !common::have_mosquitto() {
        return;
    }
    let world = blocking(|| {
        let world = World::new();
        world.device("sensor-1", "role:sensor, site:berlin", &["plant/berlin/#"]);
        world.device("op-1", "role:operator, site:berlin", &[]);
        world.device("broker", "role:broker", &["legacy/#"]);
        world
    })
    .await;
    let broker = Mosquitto::start(&gate_toml(&world, false));
    let addr = broker.addr();
    // With anonymous access off, a CONNECT without credentials is refused (CONNACK 5, not authorised).
    assert_eq!(raw_connect(addr, &common::connect_packet("anon:nobody", None, None, None)).1, 5);

    let config = ClientConfig::new("127.0.0.1", broker.port);
    let (op, mut op_rx) = SmqttClient::connect(world.identity("op-1"), &config).expect("connect op");
    subscribed(&op, "plant/#", QoS::AtLeastOnce).await;
    let (sensor, _) = SmqttClient::connect(world.identity("sensor-1"), &config).expect("connect sensor");
    sensor.wait_connected(WAIT).await.expect("sensor connected");

    let flooder = world.identity("sensor-1");
    let token = common::token(&flooder, "sensor-1/flooder");
    let flood = std::thread::spawn(move || {
        let packet = common::connect_packet("sensor-1/flooder", Some("sensor-1"), Some(token.as_bytes()), None);
        let (mut stream, rc) = raw_connect(addr, &packet);
        assert_eq!(rc, 0);
        let started = Instant::now();
        let mut sent = 0u64;
        let mut garbage = vec![0u8; 300];
        while started.elapsed() < Duration::from_millis(1500) {
            for (i, byte) in garbage.iter_mut().enumerate() {
                *byte = (sent as usize).wrapping_mul(31).wrapping_add(i * 7) as u8;
            }
            if stream.write_all(&common::publish_packet("plant/berlin/flood", &garbage)).is_err() {
                break;
            }
            sent += 1;
            if sent % 500 == 0 {
                // Now and then, a connection that sends bytes that are no MQTT, and a malformed CONNECT.
                if let Ok(mut junk) = std::net::TcpStream::connect(addr) {
                    let _ = junk.write_all(&[0xff; 64]);
                }
                if let Ok(mut junk) = std::net::TcpStream::connect(addr) {
                    let _ = junk.write_all(&[0x10, 0x7f, 0, 4, b'M', b'Q', b'T', b'X', 9, 9]);
                }
            }
        }
        sent
    });
    // Meanwhile the legitimate publisher and subscriber carry on.
    let started = Instant::now();
    for i in 0..20u32 {
        let text = format!("reading {i}");
        sensor
            .publish("plant/berlin/line1/temp", &policy(), QoS::AtLeastOnce, false, text.as_bytes())
            .await
            .expect("publish");
        assert_eq!(next_payload(&mut op_rx, &broker).await, text.as_bytes());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = blocking(move || flood.join().expect("flood thread")).await;
    assert!(sent > 1000, "the flood sent only {sent} packets");
    assert!(started.elapsed() < WAIT, "service too slow under the flood: {:?}", started.elapsed());
    // Still serving after the flood, and the refusals were counted, not logged one by one.
    sensor.publish("plant/berlin/line1/temp", &policy(), QoS::AtLeastOnce, false, b"after").await.expect("publish");
    assert_eq!(next_payload(&mut op_rx, &broker).await, b"after");
    let text = blocking({
        let metrics = broker.metrics;
        move || common::http_get(metrics)
    })
    .await;
    let refused = metric(&text, "smqtt_gate_refused_total{check=\"publish\",reason=\"not_an_envelope\"}").unwrap_or(0);
    assert!(refused > 1000, "{refused} refusals counted for {sent} garbage publishes\n{text}");
    let log = broker.log_text();
    assert!(log.contains("further refusals not logged") || log.lines().count() < 200, "{log}");
    drop((op, sensor));
    blocking(move || drop(world)).await;
}

/// A configuration the plugin cannot use stops the broker at start-up, with the reason in its log.
#[test]
fn bad_configuration_stops_the_broker() {
    if !common::have_mosquitto() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = common::plugin_path();
    let missing = dir.path().join("missing.toml");
    let cases = [
        (common::mosquitto_conf(common::free_port(), &plugin, &missing, None), "gate configuration"),
        (
            format!("{}plugin_opt_confg typo\n", common::mosquitto_conf(common::free_port(), &plugin, &missing, None)),
            "unknown option plugin_opt_confg",
        ),
    ];
    for (conf, expected) in cases {
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, conf).expect("conf");
        let output = std::process::Command::new("mosquitto").arg("-c").arg(&path).output().expect("mosquitto");
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "mosquitto started with a bad plugin configuration");
        assert!(log.contains("smqtt: not loaded") && log.contains(expected), "{log}");
    }
}
