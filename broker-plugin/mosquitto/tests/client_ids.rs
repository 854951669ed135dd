//! Session takeover by client id, against a real `mosquitto` with the plugin: Mosquitto hands whoever connects
//! with a client id that id's session (kicking the live connection; with `clean_session = false` resuming its
//! subscriptions and queued messages). The gate keeps every identity in its own client-id space. Skipped,
//! loudly, if mosquitto is not installed.

mod common;

use std::sync::Arc;

use common::{metric, Mosquitto, World, WAIT};
use rumqttc::{ConnectReturnCode as Code4, QoS, SubscribeFilter, SubscribeReasonCode as Sub4};
use smqtt_client::Identity;
use smqtt_testkit::clients::{options4, raw4_with, Seen4 as Seen};
use tokio::sync::mpsc::Receiver;

/// A raw MQTT 3.1.1 client; it does not reconnect after an error.
fn raw(port: u16, client_id: &str, login: Option<(&str, &str)>, clean: bool) -> (rumqttc::AsyncClient, Receiver<Seen>) {
    let mut options = options4(smqtt_testkit::ports::loopback(port), client_id, login);
    options.set_clean_session(clean);
    raw4_with(options)
}

fn device(port: u16, identity: &Identity, client_id: &str, clean: bool) -> (rumqttc::AsyncClient, Receiver<Seen>) {
    let login = common::token(identity, client_id);
    raw(port, client_id, Some((identity.device_id().as_str(), &login)), clean)
}

async fn next(rx: &mut Receiver<Seen>, what: &str, broker: &Mosquitto) -> Seen {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(seen)) => seen,
        _ => panic!("no {what} within {WAIT:?}\n{}", broker.log_text()),
    }
}

async fn connected(rx: &mut Receiver<Seen>, who: &str, broker: &Mosquitto) {
    match next(rx, "connack", broker).await {
        Seen::ConnAck(Code4::Success) => {}
        other => panic!("{who}: expected CONNACK success, got {other:?}\n{}", broker.log_text()),
    }
}

async fn next_payload(rx: &mut Receiver<Seen>, what: &str, broker: &Mosquitto) -> Vec<u8> {
    loop {
        match next(rx, what, broker).await {
            Seen::Publish(publish) => return publish.payload.to_vec(),
            Seen::PubAck(_) | Seen::SubAck(_) => continue,
            other => panic!("expected {what}, got {other:?}"),
        }
    }
}

async fn publish_acked(client: &rumqttc::AsyncClient, rx: &mut Receiver<Seen>, topic: &str, text: &str, b: &Mosquitto) {
    client.publish(topic, QoS::AtLeastOnce, false, text.as_bytes().to_vec()).await.expect("publish");
    while !matches!(next(rx, "puback", b).await, Seen::PubAck(_)) {}
}

/// An impostor's CONNECT: refused at CONNACK (Mosquitto's plugin API makes every refusal "not authorised").
async fn refused(port: u16, client_id: &str, login: Option<(&str, &str)>, clean: bool, broker: &Mosquitto) {
    let (_impostor, mut rx) = raw(port, client_id, login, clean);
    match next(&mut rx, "the impostor's connack", broker).await {
        Seen::Refused(Code4::NotAuthorized) => {}
        other => panic!("impostor {client_id:?} (clean {clean}): {other:?}\n{}", broker.log_text()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_impostor_cannot_take_over_a_devices_persistent_session() {
    if !common::have_mosquitto() {
        return;
    }
    let world = tokio::task::spawn_blocking(|| {
        let world = World::new();
        world.device("bob", "role:operator", &[]);
        world.device("mallory", "role:operator", &[]);
        world.device("sensor", "role:sensor", &["plant/#", "public/#"]);
        world
    })
    .await
    .expect("enroll");
    let world = Arc::new(world);
    let gate = format!(
        "[authority]\nverifying_key = {:?}\n[anonymous]\nallow = true\nsubscribe = [\"public/#\"]\n",
        world.store_dir("bob").join("authority.pub")
    );
    let broker = Mosquitto::start(&gate);
    let port = broker.port;
    let (bob, mallory) = (world.identity("bob"), world.identity("mallory"));

    // bob subscribes to plant/# (outside the anonymous allow-list) in a persistent session and goes offline.
    let (bob_client, mut bob_rx) = device(port, &bob, "bob", false);
    connected(&mut bob_rx, "bob", &broker).await;
    bob_client.subscribe("plant/#", QoS::AtLeastOnce).await.expect("subscribe");
    assert!(matches!(next(&mut bob_rx, "suback", &broker).await, Seen::SubAck(_)));
    bob_client.disconnect().await.expect("disconnect");
    while !matches!(next(&mut bob_rx, "close", &broker).await, Seen::Closed(_)) {}

    // Meanwhile the sensor publishes for him.
    let (sensor_client, mut sensor_rx) = device(port, &world.identity("sensor"), "sensor", true);
    connected(&mut sensor_rx, "sensor", &broker).await;
    publish_acked(&sensor_client, &mut sensor_rx, "plant/line1/temp", "queued 1", &broker).await;

    // The impostors: anonymous with bob's id or one of his suffixed ids, persistent or not, and a real device
    // with a valid token made for bob's id.
    for (client_id, clean) in [("bob", false), ("bob", true), ("bob/x", false)] {
        refused(port, client_id, None, clean, &broker).await;
    }
    let stolen = common::token(&mallory, "bob");
    refused(port, "bob", Some(("mallory", &stolen)), false, &broker).await;
    publish_acked(&sensor_client, &mut sensor_rx, "plant/line1/temp", "queued 2", &broker).await;

    // bob comes back: his session is still his, with both messages queued for him.
    let (_bob_client, mut bob_rx) = device(port, &bob, "bob", false);
    connected(&mut bob_rx, "bob again", &broker).await;
    assert_eq!(next_payload(&mut bob_rx, "queued 1", &broker).await, b"queued 1");
    assert_eq!(next_payload(&mut bob_rx, "queued 2", &broker).await, b"queued 2");
    // Online, he cannot be kicked either.
    refused(port, "bob", None, true, &broker).await;
    publish_acked(&sensor_client, &mut sensor_rx, "plant/line1/temp", "live", &broker).await;
    assert_eq!(next_payload(&mut bob_rx, "the live message", &broker).await, b"live");

    // The honest onlookers, in their own space: `anon:watcher`, and one without a client id (Mosquitto names
    // it `anon:<uuid>` with `auto_id_prefix anon:`): public/# yes, plant/# no.
    for client_id in ["anon:watcher", ""] {
        let (watcher, mut watcher_rx) = raw(port, client_id, None, true);
        connected(&mut watcher_rx, client_id, &broker).await;
        let filters = ["public/#", "plant/#"].map(|f| SubscribeFilter::new(f.into(), QoS::AtLeastOnce));
        watcher.subscribe_many(filters).await.expect("subscribe");
        match next(&mut watcher_rx, "suback", &broker).await {
            Seen::SubAck(ack) => assert_eq!(ack.return_codes, vec![Sub4::Success(QoS::AtLeastOnce), Sub4::Failure]),
            other => panic!("{other:?}"),
        }
        publish_acked(&sensor_client, &mut sensor_rx, "public/notice", "hello", &broker).await;
        assert_eq!(next_payload(&mut watcher_rx, "the public notice", &broker).await, b"hello");
    }

    let text = tokio::task::spawn_blocking({
        let metrics = broker.metrics;
        move || common::http_get(metrics)
    })
    .await
    .expect("metrics");
    let not_owned = metric(&text, r#"smqtt_gate_refused_total{check="connect",reason="client_id_not_owned"}"#);
    assert_eq!(not_owned, Some(5), "{text}");
    drop(broker);
    tokio::task::spawn_blocking(move || drop(world)).await.expect("drop");
}
