//! smqtt-broker for real: sockets, a real authority, enrolled devices, the SDK, rumqttc v3.1.1 and v5 clients,
//! `mosquitto_pub` and python paho-mqtt when installed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{broker, devices, metric_or_zero as metric, next, password_hash, raw4, raw5, scrape, token, world};
use common::{Seen4, Seen5};
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode as Code5, PubAckReason, SubscribeReasonCode as Sub5};
use rumqttc::{ConnectReturnCode as Code4, LastWill, QoS, SubscribeReasonCode as Sub4};
use smqtt_abe::Policy;
use smqtt_client::{ClientConfig, MqttVersion, SmqttClient};
use smqtt_testkit::credentials::sealer;

fn policy(text: &str) -> Policy {
    Policy::parse(text).expect("policy")
}

fn sdk(port: u16, protocol: MqttVersion) -> ClientConfig {
    let mut config = ClientConfig::new("127.0.0.1", port);
    config.protocol = protocol;
    config
}

async fn opened(rx: &mut smqtt_client::Messages, what: &str) -> smqtt_client::Message {
    match rx.next_timeout(common::WAIT).await {
        Some(Ok(message)) => message,
        other => panic!("expected {what}, got {other:?}"),
    }
}

const GATE: &str = "[gate.topics]\nprotected = [\"plant/#\"]\ndeny_subscribe = [\"secret/#\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refusals_rights_envelopes_retained_and_wills() {
    let mut enrolled = devices(vec![
        ("b1-sensor", "role:sensor, site:berlin", vec!["plant/berlin/#", "status/b1-sensor"]),
        ("b1-op", "role:operator, site:berlin", vec![]),
        ("b1-mallory", "role:sensor", vec!["plant/#"]),
    ])
    .await;
    let (mallory_store, mallory) = enrolled.pop().expect("mallory");
    let (_, operator) = enrolled.pop().expect("operator");
    let (sensor_store, sensor) = enrolled.pop().expect("sensor");
    let dir = tempfile::tempdir().expect("dir");
    let b = broker(GATE, dir.path());
    let (v4, v5) = (b.v4.expect("v4"), b.v5.expect("v5"));

    // CONNECT: nothing, a non-token password, a garbage token, a token for another client id, someone else's
    // credential signed with the wrong key: all refused with a CONNACK code.
    let (_c, mut rx) = raw4(v4, "anon:x", None, None).await;
    assert!(matches!(next(&mut rx, "connack").await, Seen4::Refused(Code4::NotAuthorized)));
    let (_c, mut rx) = raw4(v4, "b1-sensor", Some(("b1-sensor", "hunter2")), None).await;
    assert!(matches!(next(&mut rx, "connack").await, Seen4::Refused(Code4::NotAuthorized)));
    let (_c, mut rx) = raw4(v4, "b1-sensor", Some(("b1-sensor", "smqtt1.AAAA.AAAA")), None).await;
    assert!(matches!(next(&mut rx, "connack").await, Seen4::Refused(Code4::BadUserNamePassword)));
    let (_c, mut rx) = raw4(v4, "other-id", Some(("b1-sensor", &token(&sensor, "b1-sensor"))), None).await;
    assert!(matches!(next(&mut rx, "connack").await, Seen4::Refused(Code4::BadUserNamePassword)));
    let forged =
        smqtt_wire::ConnectToken::create(mallory.signing_key(), sensor.credential(), "b1-sensor", common::now())
            .expect("token");
    let (_c, mut rx) = raw5(v5, "b1-sensor", Some(("b1-sensor", &forged))).await;
    assert!(matches!(next(&mut rx, "connack").await, Seen5::Refused(Code5::BadUserNamePassword)));

    // The SDK connects with tokens it mints itself (v3.1.1 publisher, v5 subscriber).
    let (publisher, _) = SmqttClient::connect(sensor, &sdk(v4.port(), MqttVersion::V311)).expect("connect");
    let (op, mut op_rx) = SmqttClient::connect(operator, &sdk(v5.port(), MqttVersion::V5)).expect("connect");
    op.subscribe("plant/#", smqtt_client::QoS::AtLeastOnce).await.expect("sub");
    // Further connections of one device: `<device_id>/<suffix>` (tests/client_ids.rs).
    let (watch, mut watch_rx) =
        raw5(v5, "b1-mallory/watch", Some(("b1-mallory", &token(&mallory, "b1-mallory/watch")))).await;
    assert!(matches!(next(&mut watch_rx, "connack").await, Seen5::ConnAck(Code5::Success)));
    watch.subscribe("plant/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce).await.expect("sub");
    assert!(matches!(next(&mut watch_rx, "suback").await, Seen5::SubAck(_)));
    let p = policy("site:berlin and role:operator");
    // Until the subscriptions are live: probes until the SDK subscriber has one (the watcher sees them too).
    for _ in 0..50 {
        publisher
            .publish(
                "plant/berlin/probe",
                &policy("role:operator or role:probe"),
                smqtt_client::QoS::AtMostOnce,
                false,
                b"probe",
            )
            .await
            .expect("probe");
        if matches!(op_rx.next_timeout(Duration::from_millis(200)).await, Some(Ok(_))) {
            break;
        }
    }
    while op_rx.next_timeout(Duration::from_millis(300)).await.is_some() {}
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), watch_rx.recv()).await {}
    publisher
        .publish("plant/berlin/line1/temp", &p, smqtt_client::QoS::AtLeastOnce, false, b"23.5 C")
        .await
        .expect("publish");
    let Seen5::Publish(captured) = next(&mut watch_rx, "envelope").await else { panic!("publish") };
    let message = opened(&mut op_rx, "message 1").await;
    assert_eq!((message.payload(), message.publisher()), (&b"23.5 C"[..], "b1-sensor"));
    assert!(!captured.payload.windows(6).any(|w| w == b"23.5 C"), "only ciphertext on the wire");

    // Mallory (a real device, v5) replays the captured envelope, publishes plaintext, and publishes outside its
    // rights: refused with reason codes; nothing reaches the subscribers.
    let q1 = rumqttc::v5::mqttbytes::QoS::AtLeastOnce;
    let reasons = [
        ("plant/berlin/line1/temp", captured.payload.clone(), PubAckReason::NotAuthorized),
        ("plant/berlin/line1/temp", bytes_of(b"plaintext"), PubAckReason::PayloadFormatInvalid),
        ("status/b1-sensor", bytes_of(b"online"), PubAckReason::NotAuthorized),
    ];
    for (topic, payload, expected) in reasons {
        watch.publish(topic, q1, false, payload).await.expect("publish");
        match next(&mut watch_rx, "puback").await {
            Seen5::PubAck(ack) => assert_eq!(ack.reason, expected, "{topic}"),
            other => panic!("expected a PUBACK, got {other:?}"),
        }
    }
    // A v3.1.1 client gets a plain PUBACK and its refused message is gone; QoS 0 refusals are dropped.
    let (m4, mut m4_rx) =
        raw4(v4, "b1-mallory/m4", Some(("b1-mallory", &token(&mallory, "b1-mallory/m4"))), None).await;
    assert!(matches!(next(&mut m4_rx, "connack").await, Seen4::ConnAck(Code4::Success)));
    m4.publish("plant/berlin/x", QoS::AtLeastOnce, false, b"plain".to_vec()).await.expect("publish");
    assert!(matches!(next(&mut m4_rx, "puback").await, Seen4::PubAck(_)));
    m4.publish("plant/berlin/x", QoS::AtMostOnce, false, b"plain".to_vec()).await.expect("publish");
    // Its own valid envelope (it may publish on plant/#) does flow.
    let mut mallory_sealer = sealer(&mallory_store);
    let own = mallory_sealer
        .seal("plant/paris/x", &p, b"from mallory", false, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng)
        .expect("seal");
    m4.publish("plant/paris/x", QoS::AtLeastOnce, false, own).await.expect("publish");
    let message = opened(&mut op_rx, "message 2").await;
    assert_eq!((message.payload(), message.publisher()), (&b"from mallory"[..], "b1-mallory"));
    if let Some(unexpected) = op_rx.next_timeout(Duration::from_millis(300)).await {
        panic!("a refused publish got through: {unexpected:?}");
    }

    // Denied subscription: v5 SUBACK 0x87, v3.1.1 0x80, other filters of the same SUBSCRIBE granted.
    watch.subscribe("secret/#", q1).await.expect("sub");
    loop {
        match next(&mut watch_rx, "suback").await {
            Seen5::SubAck(ack) => break assert_eq!(ack.return_codes, vec![Sub5::NotAuthorized]),
            Seen5::Publish(_) => continue,
            other => panic!("{other:?}"),
        }
    }
    m4.subscribe_many([
        rumqttc::SubscribeFilter::new("secret/a".into(), QoS::AtMostOnce),
        rumqttc::SubscribeFilter::new("ok/a".into(), QoS::AtLeastOnce),
    ])
    .await
    .expect("sub");
    loop {
        match next(&mut m4_rx, "suback").await {
            Seen4::SubAck(ack) => {
                break assert_eq!(ack.return_codes, vec![Sub4::Failure, Sub4::Success(QoS::AtLeastOnce)])
            }
            Seen4::PubAck(_) | Seen4::Publish(_) => continue,
            other => panic!("{other:?}"),
        }
    }

    // Retained: plaintext refused, a valid retained envelope reaches a late subscriber.
    m4.publish("plant/paris/r", QoS::AtLeastOnce, true, b"plain".to_vec()).await.expect("publish");
    let retained = mallory_sealer
        .seal("plant/paris/r", &p, b"retained", true, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng)
        .expect("seal");
    m4.publish("plant/paris/r", QoS::AtLeastOnce, true, retained).await.expect("publish");
    let message = opened(&mut op_rx, "message 3").await;
    assert_eq!(message.payload(), b"retained");
    let late = tokio::task::spawn_blocking(move || world().device("b1-late", "role:operator, site:berlin", &[]))
        .await
        .expect("enroll")
        .identity;
    let (late, mut late_rx) = SmqttClient::connect(late, &sdk(v4.port(), MqttVersion::V311)).expect("connect");
    late.subscribe("plant/paris/r", smqtt_client::QoS::AtLeastOnce).await.expect("sub");
    let message = opened(&mut late_rx, "message 4").await;
    assert!(message.retain() && message.payload() == b"retained", "{message:?}");

    // Wills: a plaintext will on a protected topic refuses the CONNECT; an envelope will fires on a broken
    // connection and is opened by the subscriber.
    let plain_will = LastWill::new("plant/paris/will", b"gone".to_vec(), QoS::AtLeastOnce, false);
    let login = token(&mallory, "b1-mallory/w1");
    let (_c, mut rx) = raw4(v4, "b1-mallory/w1", Some(("b1-mallory", &login)), Some(plain_will)).await;
    assert!(matches!(next(&mut rx, "connack").await, Seen4::Refused(Code4::NotAuthorized)));
    let sealed_will = mallory_sealer
        .seal("plant/paris/will", &p, b"gone", false, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng)
        .expect("seal");
    let login = token(&mallory, "b1-mallory/w2");
    let will = common::Will { topic: "plant/paris/will", payload: &sealed_will, qos: 1, retain: false };
    let packet = common::login_packet("b1-mallory/w2", Some(("b1-mallory", &login)), Some(&will));
    let (socket, code) = tokio::task::spawn_blocking(move || common::raw_connect(v4, &packet)).await.expect("connect");
    assert_eq!(code, Some(0));
    drop(socket); // closed without DISCONNECT: the will fires
    let message = opened(&mut op_rx, "message 5").await;
    assert_eq!((message.topic(), message.payload()), ("plant/paris/will", &b"gone"[..]));
    let _ = sensor_store;

    let text = scrape(b.metrics.expect("metrics"));
    assert_eq!(metric(&text, "smqtt_broker_up"), 1);
    assert!(metric(&text, r#"smqtt_gate_refused_total{check="connect",reason="bad_credential"}"#) >= 3, "{text}");
    assert!(metric(&text, r#"smqtt_gate_refused_total{check="publish",reason="not_an_envelope"}"#) >= 3, "{text}");
    assert!(metric(&text, r#"smqtt_gate_refused_total{check="publish",reason="foreign_signer"}"#) >= 1, "{text}");
    assert!(metric(&text, r#"smqtt_gate_refused_total{check="will",reason="not_an_envelope"}"#) >= 1, "{text}");
    assert!(metric(&text, "smqtt_broker_quarantined_total") >= 4, "{text}");
    publisher.disconnect().await;
    op.disconnect().await;
}

fn bytes_of(b: &[u8]) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_plaintext_is_sealed_by_the_broker() {
    let mut enrolled = devices(vec![
        ("b2-broker", "role:broker", vec!["legacy/#"]),
        ("b2-op", "role:operator", vec![]),
        ("b2-obs", "role:observer", vec![]),
    ])
    .await;
    let (_, observer) = enrolled.pop().expect("observer");
    let (_, operator) = enrolled.pop().expect("operator");
    let (broker_store, _) = enrolled.pop().expect("broker");
    let dir = tempfile::tempdir().expect("dir");
    let gate = format!(
        "[gate.sealing]\nstore = {broker_store:?}\ntopics = [{{ filter = \"legacy/#\", policy = \"role:operator\" }}]\n\
         [[gate.legacy]]\nusername = \"meter-1\"\npassword_hash = \"{}\"\npublish = [\"legacy/meters/#\"]\n",
        password_hash("meter-pw")
    );
    let b = broker(&gate, dir.path());
    let (v4, v5) = (b.v4.expect("v4"), b.v5.expect("v5"));

    let (op, mut op_rx) = SmqttClient::connect(operator, &sdk(v5.port(), MqttVersion::V5)).expect("connect");
    op.subscribe("legacy/#", smqtt_client::QoS::AtLeastOnce).await.expect("sub");
    let (raw, mut raw_rx) = raw4(v4, "b2-obs", Some(("b2-obs", &token(&observer, "b2-obs"))), None).await;
    assert!(matches!(next(&mut raw_rx, "connack").await, Seen4::ConnAck(Code4::Success)));
    raw.subscribe("legacy/#", QoS::AtLeastOnce).await.expect("sub");
    // A legacy client's client ids: `legacy:<username>[/<suffix>]`.
    let (_bad, mut bad_rx) = raw4(v4, "legacy:meter-1", Some(("meter-1", "wrong")), None).await;
    assert!(matches!(next(&mut bad_rx, "connack").await, Seen4::Refused(Code4::BadUserNamePassword)));
    // A deliberate sleep: the gate refuses unhashed for 1 s after a failure (time has to pass).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (meter, mut meter_rx) = raw4(v4, "legacy:meter-1", Some(("meter-1", "meter-pw")), None).await;
    assert!(matches!(next(&mut meter_rx, "connack").await, Seen4::ConnAck(Code4::Success)));
    for _ in 0..50 {
        meter.publish("legacy/meters/probe", QoS::AtMostOnce, false, b"probe".to_vec()).await.expect("probe");
        if matches!(op_rx.next_timeout(Duration::from_millis(200)).await, Some(Ok(_))) {
            break;
        }
    }
    while op_rx.next_timeout(Duration::from_millis(300)).await.is_some() {}
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), raw_rx.recv()).await {}

    meter.publish("legacy/meters/m1/kwh", QoS::AtLeastOnce, false, b"42.1 kWh".to_vec()).await.expect("publish");
    let message = opened(&mut op_rx, "the sealed reading").await;
    assert_eq!((message.payload(), message.publisher()), (&b"42.1 kWh"[..], "b2-broker"));
    assert_eq!(message.policy(), "role:operator and epoch:1");
    loop {
        match next(&mut raw_rx, "the raw copy").await {
            Seen4::Publish(p) => {
                assert!(!p.payload.windows(8).any(|w| w == b"42.1 kWh"), "plaintext on the wire");
                let envelope = smqtt_wire::ParsedEnvelope::parse(&p.payload).expect("an envelope");
                assert_eq!(envelope.publisher().as_str(), "b2-broker");
                break;
            }
            _ => continue,
        }
    }
    // Outside its rights: refused (plain PUBACK for v3.1.1, nothing delivered).
    meter.publish("legacy/other", QoS::AtMostOnce, false, b"x".to_vec()).await.expect("publish");

    // The same with Debian's mosquitto_pub, and mosquitto_sub sees only ciphertext.
    if std::process::Command::new("mosquitto_pub").arg("--help").output().is_err() {
        eprintln!("\n*** SKIPPED the mosquitto_pub/mosquitto_sub part: not installed (apt-get install mosquitto-clients) ***\n");
        return;
    }
    let port = v4.port().to_string();
    let sub_token = token(&observer, "b2-obs/ms");
    let args = ["-h", "127.0.0.1", "-p", &port, "-i", "b2-obs/ms", "-u", "b2-obs", "-P", &sub_token];
    let subscribes = metric(&b.metrics_text(), r#"smqtt_gate_accepted_total{check="subscribe"}"#);
    let mosquitto_sub = std::process::Command::new("mosquitto_sub")
        .args(args)
        .args(["-t", "legacy/meters/ms", "-C", "1", "-W", "10", "-q", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    // The gate let mosquitto_sub's SUBSCRIBE through (rumqttd adds it right after).
    common::eventually("mosquitto_sub subscribed", common::WAIT, || {
        metric(&b.metrics_text(), r#"smqtt_gate_accepted_total{check="subscribe"}"#) > subscribes
    })
    .await;
    let status = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-i", "legacy:meter-1/ms", "-u", "meter-1", "-P", "meter-pw"])
        .args(["-t", "legacy/meters/ms", "-m", "from mosquitto_pub", "-q", "1"])
        .status()
        .expect("mosquitto_pub");
    assert!(status.success());
    let message = opened(&mut op_rx, "mosquitto_pub's reading").await;
    assert_eq!((message.payload(), message.publisher()), (&b"from mosquitto_pub"[..], "b2-broker"));
    let seen = tokio::task::spawn_blocking(move || mosquitto_sub.wait_with_output()).await.expect("join").expect("sub");
    assert!(seen.stdout.len() > 100, "mosquitto_sub got {} bytes", seen.stdout.len());
    assert!(!seen.stdout.windows(18).any(|w| w == b"from mosquitto_pub"), "mosquitto_sub saw plaintext");
    assert!(seen.stdout.starts_with(b"SMQW"), "mosquitto_sub saw an envelope");
    let text = b.metrics_text();
    assert!(metric(&text, "smqtt_gate_sealed_total") >= 2, "{text}");
    assert!(metric(&text, r#"smqtt_gate_refused_total{check="publish",reason="topic_not_permitted"}"#) >= 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_malformed_packets_does_not_stop_other_clients() {
    let mut enrolled =
        devices(vec![("b3-pub", "role:sensor", vec!["plant/#"]), ("b3-sub", "role:operator", vec![])]).await;
    let (_, subscriber) = enrolled.pop().expect("sub");
    let (_, publisher) = enrolled.pop().expect("pub");
    let dir = tempfile::tempdir().expect("dir");
    let b = broker(GATE, dir.path());
    let v4 = b.v4.expect("v4");

    // The attacker: reconnects over and over, sending garbage of every kind, for the whole test.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            use std::io::Write as _;
            let garbage: Vec<Vec<u8>> = vec![
                vec![0x20, 2, 0, 0],                                        // CONNACK from a client
                vec![0xff; 64],                                             // reserved type, nonsense length
                vec![0x10, 0xff, 0xff, 0xff, 0xff, 0x7f],                   // malformed remaining length
                vec![0x30, 5, 0, 9, b'a'],                                  // PUBLISH before CONNECT, truncated topic
                common::login_packet("x", Some(("u", "smqtt1.A.A")), None), // forged token
                [common::login_packet("anon:flood", None, None), vec![0x32, 3, 0, 1, b'a']].concat(),
                (0..=255u8).collect(),
            ];
            let mut rounds = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for bytes in &garbage {
                    if let Ok(mut stream) = std::net::TcpStream::connect(v4) {
                        let _ = stream.write_all(bytes);
                    }
                }
                rounds += 1;
            }
            rounds
        })
    };

    let (p, _) = SmqttClient::connect(publisher, &sdk(v4.port(), MqttVersion::V311)).expect("connect");
    let (s, mut s_rx) = SmqttClient::connect(subscriber, &sdk(v4.port(), MqttVersion::V311)).expect("connect");
    s.subscribe("plant/#", smqtt_client::QoS::AtLeastOnce).await.expect("sub");
    let policy = policy("role:operator");
    // Probes under another policy (another session), so the real messages start a session with its capsule.
    let probe = self::policy("role:operator or role:probe");
    for _ in 0..50 {
        p.publish("plant/probe", &probe, smqtt_client::QoS::AtMostOnce, false, b"probe").await.expect("probe");
        if matches!(s_rx.next_timeout(Duration::from_millis(200)).await, Some(Ok(_))) {
            break;
        }
    }
    while s_rx.next_timeout(Duration::from_millis(300)).await.is_some() {}
    for i in 0..20u32 {
        p.publish("plant/line1/count", &policy, smqtt_client::QoS::AtLeastOnce, false, &i.to_be_bytes())
            .await
            .expect("publish");
    }
    for i in 0..20u32 {
        let message = opened(&mut s_rx, "a message during the flood").await;
        assert_eq!(message.payload(), i.to_be_bytes());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = tokio::task::spawn_blocking(move || attacker.join()).await.expect("join").expect("attacker");
    assert!(rounds > 0);
    let text = b.metrics_text();
    assert!(metric(&text, "smqtt_broker_protocol_errors_total") > 0, "{text}");
    assert!(metric(&text, r#"smqtt_gate_refused_total{check="connect",reason="bad_credential"}"#) > 0, "{text}");
}

/// python paho-mqtt from PyPI (CI installs it; `.ci/run`): keep-alive 0, wildcards, QoS 0/1, retained, will,
/// a denied subscription, against the broker with anonymous clients allowed and enforcement off on `paho/#`.
#[test]
fn python_paho_mqtt_client() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let present = std::process::Command::new(&python).args(["-c", "import paho.mqtt.client"]).output();
    if !present.is_ok_and(|o| o.status.success()) {
        eprintln!("\n*** SKIPPED python_paho_mqtt_client: {python} with paho-mqtt not found (pip install paho-mqtt; CI installs it) ***\n");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let gate =
        "[gate.anonymous]\nallow = true\n[gate.topics]\nopen = [\"paho/#\"]\ndeny_subscribe = [\"test/nosubscribe\"]\n";
    let b = broker(gate, dir.path());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/paho_client.py");
    let output = std::process::Command::new(&python)
        .arg(&script)
        .args(["127.0.0.1", &b.v4.expect("v4").port().to_string()])
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("paho_client: ok"), "{stdout}");
}
