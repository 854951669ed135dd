//! Session takeover by client id, against a real `mosquitto` with the plugin: Mosquitto hands whoever connects
//! with a client id that id's session (kicking the live connection; with `clean_session = false` resuming its
//! subscriptions and queued messages). The gate keeps every identity in its own client-id space. Skipped,
//! loudly, if mosquitto is not installed.

mod common;

use std::sync::Arc;

use common::{metric, Mosquitto, World, WAIT};
use rumqttc::{ConnectReturnCode as Code4, QoS, SubscribeFilter, SubscribeReasonCode as Sub4};
use smqtt_client::Identity;
use tokio::sync::mpsc::Receiver;

/// What a raw v3.1.1 client saw.
#[derive(Debug)]
enum Seen {
    ConnAck,
    Publish(Vec<u8>),
    SubAck(Vec<Sub4>),
    PubAck,
    Refused(Code4),
    Closed,
}

/// A raw MQTT 3.1.1 client; it does not reconnect after an error.
fn raw(port: u16, client_id: &str, login: Option<(&str, &str)>, clean: bool) -> (rumqttc::AsyncClient, Receiver<Seen>) {
    let mut options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_keep_alive(std::time::Duration::from_secs(30));
    options.set_clean_session(clean);
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        use rumqttc::{ConnectionError, Event, Packet};
        loop {
            let seen = match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => Seen::ConnAck,
                Ok(Event::Incoming(Packet::Publish(p))) => Seen::Publish(p.payload.to_vec()),
                Ok(Event::Incoming(Packet::SubAck(s))) => Seen::SubAck(s.return_codes),
                Ok(Event::Incoming(Packet::PubAck(_))) => Seen::PubAck,
                Ok(_) => continue,
                Err(ConnectionError::ConnectionRefused(code)) => {
                    let _ = tx.send(Seen::Refused(code)).await;
                    return;
                }
                Err(_) => {
                    let _ = tx.send(Seen::Closed).await;
                    return;
                }
            };
            if tx.send(seen).await.is_err() {
                return;
            }
        }
    });
    (client, rx)
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
        Seen::ConnAck => {}
        other => panic!("{who}: expected CONNACK success, got {other:?}\n{}", broker.log_text()),
    }
}

async fn next_payload(rx: &mut Receiver<Seen>, what: &str, broker: &Mosquitto) -> Vec<u8> {
    loop {
        match next(rx, what, broker).await {
            Seen::Publish(payload) => return payload,
            Seen::PubAck | Seen::SubAck(_) => continue,
            other => panic!("expected {what}, got {other:?}"),
        }
    }
}

async fn publish_acked(client: &rumqttc::AsyncClient, rx: &mut Receiver<Seen>, topic: &str, text: &str, b: &Mosquitto) {
    client.publish(topic, QoS::AtLeastOnce, false, text.as_bytes().to_vec()).await.expect("publish");
    while !matches!(next(rx, "puback", b).await, Seen::PubAck) {}
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
    while !matches!(next(&mut bob_rx, "close", &broker).await, Seen::Closed) {}

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
            Seen::SubAck(codes) => assert_eq!(codes, vec![Sub4::Success(QoS::AtLeastOnce), Sub4::Failure]),
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
