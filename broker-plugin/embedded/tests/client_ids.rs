//! Session takeover by client id, against the real embedded broker: rumqttd hands whoever connects with a client
//! id that id's session (kicking the live connection; with `clean_session = false` resuming its subscriptions
//! and queued messages). The gate keeps every identity in its own client-id space.

mod common;

use std::time::Duration;

use common::{broker, devices, next, options4, raw4, raw4_with, raw5, token, Seen4, Seen5};
use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as Code5;
use rumqttc::{ConnectReturnCode as Code4, QoS, SubscribeFilter, SubscribeReasonCode as Sub4};
use smqtt_client::Identity;
use tokio::sync::mpsc::Receiver;

/// Anonymous onlookers may read `public/#` only; nothing is protected (plain payloads keep the test short).
const GATE: &str = "[gate.anonymous]\nallow = true\nsubscribe = [\"public/#\"]\n";

/// A device's raw v3.1.1 connection as `client_id`, persistent (`clean_session = false`) or not.
fn device4(
    addr: std::net::SocketAddr,
    device: &Identity,
    client_id: &str,
    clean: bool,
) -> (rumqttc::AsyncClient, Receiver<Seen4>) {
    let login = token(device, client_id);
    let mut options = options4(addr, client_id, Some((device.device_id().as_str(), &login)));
    options.set_clean_session(clean);
    raw4_with(options)
}

/// The next PUBLISH's payload, skipping acks.
async fn next_payload(rx: &mut Receiver<Seen4>, what: &str) -> Vec<u8> {
    loop {
        match next(rx, what).await {
            Seen4::Publish(p) => return p.payload.to_vec(),
            Seen4::PubAck(_) | Seen4::SubAck(_) => continue,
            other => panic!("expected {what}, got {other:?}"),
        }
    }
}

async fn expect_connack(rx: &mut Receiver<Seen4>, who: &str) {
    match next(rx, "connack").await {
        Seen4::ConnAck(Code4::Success) => {}
        other => panic!("{who}: expected CONNACK success, got {other:?}"),
    }
}

async fn publish_acked(client: &rumqttc::AsyncClient, rx: &mut Receiver<Seen4>, topic: &str, payload: &str) {
    client.publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec()).await.expect("publish");
    loop {
        match next(rx, "puback").await {
            Seen4::PubAck(_) => return,
            Seen4::Publish(_) | Seen4::SubAck(_) => continue,
            other => panic!("publishing {payload}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_impostor_cannot_take_over_a_devices_persistent_session() {
    let mut enrolled = devices(vec![
        ("c1-bob", "role:operator", vec![]),
        ("c1-mallory", "role:operator", vec![]),
        ("c1-sensor", "role:sensor", vec!["plant/#", "public/#"]),
    ])
    .await;
    let (_, sensor) = enrolled.pop().expect("sensor");
    let (_, mallory) = enrolled.pop().expect("mallory");
    let (_, bob) = enrolled.pop().expect("bob");
    let dir = tempfile::tempdir().expect("dir");
    let b = broker(GATE, dir.path());
    let (v4, v5) = (b.v4.expect("v4"), b.v5.expect("v5"));

    // bob subscribes to plant/# (outside the anonymous allow-list) in a persistent session and goes offline.
    let (bob_client, mut bob_rx) = device4(v4, &bob, "c1-bob", false);
    expect_connack(&mut bob_rx, "bob").await;
    bob_client.subscribe("plant/#", QoS::AtLeastOnce).await.expect("subscribe");
    assert!(matches!(next(&mut bob_rx, "suback").await, Seen4::SubAck(_)));
    bob_client.disconnect().await.expect("disconnect");
    while !matches!(next(&mut bob_rx, "close").await, Seen4::Closed(_)) {}
    // A deliberate pause for rumqttd to take bob offline: nothing it exports shows when it has.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Meanwhile the sensor publishes for him.
    let (sensor_client, mut sensor_rx) = device4(v4, &sensor, "c1-sensor", true);
    expect_connack(&mut sensor_rx, "sensor").await;
    publish_acked(&sensor_client, &mut sensor_rx, "plant/line1/temp", "queued 1").await;

    // The impostors: anonymous with bob's client id or one of his suffixed ids, persistent or not, and a real
    // device (with a valid token made for bob's id): refused at CONNACK with "identifier rejected".
    for (client_id, clean) in [("c1-bob", false), ("c1-bob", true), ("c1-bob/x", false)] {
        let mut options = options4(v4, client_id, None);
        options.set_clean_session(clean);
        let (_impostor, mut rx) = raw4_with(options);
        match next(&mut rx, "the impostor's connack").await {
            Seen4::Refused(Code4::BadClientId) => {}
            other => panic!("anonymous {client_id:?} (clean {clean}): {other:?}"),
        }
    }
    let (_impostor, mut rx) = device4(v4, &mallory, "c1-bob", false);
    assert!(matches!(next(&mut rx, "connack").await, Seen4::Refused(Code4::BadClientId)));
    let (_impostor, mut rx) = raw5(v5, "c1-bob", None).await;
    match next(&mut rx, "the v5 impostor's connack").await {
        Seen5::Refused(Code5::ClientIdentifierNotValid) => {}
        other => panic!("anonymous v5 c1-bob: {other:?}"),
    }
    publish_acked(&sensor_client, &mut sensor_rx, "plant/line1/temp", "queued 2").await;

    // bob comes back: his session is still his, with both messages queued for him.
    let (_bob_client, mut bob_rx) = device4(v4, &bob, "c1-bob", false);
    expect_connack(&mut bob_rx, "bob again").await;
    assert_eq!(next_payload(&mut bob_rx, "queued 1").await, b"queued 1");
    assert_eq!(next_payload(&mut bob_rx, "queued 2").await, b"queued 2");

    // The honest onlooker, in its own space: connects, gets public/# and not plant/#.
    let (watcher, mut watcher_rx) = raw4(v4, "anon:watcher", None, None).await;
    expect_connack(&mut watcher_rx, "anon:watcher").await;
    watcher
        .subscribe_many([
            SubscribeFilter::new("public/#".into(), QoS::AtLeastOnce),
            SubscribeFilter::new("plant/#".into(), QoS::AtLeastOnce),
        ])
        .await
        .expect("subscribe");
    match next(&mut watcher_rx, "suback").await {
        Seen4::SubAck(ack) => assert_eq!(ack.return_codes, vec![Sub4::Success(QoS::AtLeastOnce), Sub4::Failure]),
        other => panic!("{other:?}"),
    }
    publish_acked(&sensor_client, &mut sensor_rx, "public/notice", "hello").await;
    assert_eq!(next_payload(&mut watcher_rx, "the public notice").await, b"hello");

    let text = b.metrics_text();
    let refused =
        common::metric_or_zero(&text, r#"smqtt_gate_refused_total{check="connect",reason="client_id_not_owned"}"#);
    assert_eq!(refused, 5, "{text}");
}

/// Anonymous clients without a client id: the broker names them `anon:<random>` (v5: in the CONNACK).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_client_without_a_client_id_is_given_one_in_its_space() {
    tokio::task::spawn_blocking(|| {
        let _ = common::world();
    })
    .await
    .expect("the authority starts off the workers");
    let dir = tempfile::tempdir().expect("dir");
    let b = broker(GATE, dir.path());
    let (v4, v5) = (b.v4.expect("v4"), b.v5.expect("v5"));
    let (_c, mut rx) = raw5(v5, "", None).await;
    assert!(matches!(next(&mut rx, "connack").await, Seen5::ConnAck(Code5::Success)));
    match next(&mut rx, "the assigned client id").await {
        Seen5::Assigned(id) => assert!(id.starts_with("anon:") && id.len() > 20, "{id}"),
        other => panic!("{other:?}"),
    }
    let (_c, mut rx) = raw4(v4, "", None, None).await;
    expect_connack(&mut rx, "v3.1.1 without an id").await;
}

/// A device's further connections (`<device_id>/<suffix>`, even with characters rumqttd's router refuses in
/// ids) live side by side; an impostor with one of those ids is refused and kicks none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impostors_cannot_kick_a_devices_live_connections() {
    let mut enrolled =
        devices(vec![("c3-bob", "role:operator", vec![]), ("c3-sensor", "role:sensor", vec!["plant/#"])]).await;
    let (_, sensor) = enrolled.pop().expect("sensor");
    let (_, bob) = enrolled.pop().expect("bob");
    let dir = tempfile::tempdir().expect("dir");
    let b = broker(GATE, dir.path());
    let v4 = b.v4.expect("v4");

    let ids = ["c3-bob", "c3-bob/tablet", "c3-bob/x/y", "c3-bob/x%2Fy", "c3-bob/+#$"];
    let mut live = Vec::new();
    for id in ids {
        let (client, mut rx) = device4(v4, &bob, id, true);
        expect_connack(&mut rx, id).await;
        client.subscribe("plant/#", QoS::AtLeastOnce).await.expect("subscribe");
        assert!(matches!(next(&mut rx, "suback").await, Seen4::SubAck(_)), "{id}");
        live.push((id, client, rx));
    }
    for id in ids {
        let (_impostor, mut rx) = raw4(v4, id, None, None).await;
        assert!(matches!(next(&mut rx, "connack").await, Seen4::Refused(Code4::BadClientId)), "{id}");
    }
    // A deliberate window for a kick to take effect (none must): the message below reaches every connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (sensor_client, mut sensor_rx) = device4(v4, &sensor, "c3-sensor", true);
    expect_connack(&mut sensor_rx, "sensor").await;
    publish_acked(&sensor_client, &mut sensor_rx, "plant/x", "to every connection").await;
    for (id, _client, rx) in &mut live {
        assert_eq!(next_payload(rx, id).await, b"to every connection", "{id}");
    }
}
