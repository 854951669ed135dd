//! Hostile peers against subscribers, mounted for real on loopback (rumqttd in-process, a real authority):
//! replays through the unauthenticated MQTT retain flag, and a capsule flood from a device with ordinary
//! publish rights. Each attack must fail while the honest path keeps working.

mod common;

use std::time::{Duration, Instant};

use rumqttc::QoS;
use smqtt_abe::Policy;
use smqtt_client::{Delivery, MessageError, Messages, OpenerLimits, SmqttClient};
use smqtt_wire::{key_id_for, seal_envelope, EnvelopeParts, SessionKey};

use common::{raw_subscriber, subscribed, WAIT};

fn policy(text: &str) -> Policy {
    Policy::parse(text).expect("policy")
}

fn now_ms() -> u64 {
    common::now() * 1000
}

/// Every delivery that arrives within `quiet` of the previous one.
async fn drain(rx: &mut Messages, quiet: Duration) -> Vec<Delivery> {
    let mut all = Vec::new();
    while let Some(delivery) = rx.next_timeout(quiet).await {
        all.push(delivery);
    }
    all
}

fn kinds(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| match d {
            Ok(m) => format!("ok:{}", String::from_utf8_lossy(m.payload())),
            Err(e) => e.kind().to_owned(),
        })
        .collect()
}

/// An on-path attacker (here: any MQTT client of an unprotected broker) captures envelopes and publishes them
/// again with the retain flag, as often as it likes. A live envelope is refused as not sealed retained; a
/// retained one is shown once per subscriber; nothing older than the maximum age is shown at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_through_the_retain_flag_are_refused() {
    let broker = common::start_rumqttd();
    let (world, sensor, reader, late_reader, aged_reader) = tokio::task::spawn_blocking(move || {
        let w = common::World::new(broker);
        let (_, sensor) = w.device("sensor-r", "role:sensor", &["site/#"]);
        let (store, reader) = w.device("reader", "role:operator", &[]);
        let late = store.load().expect("load");
        let aged = store.load().expect("load");
        (w, sensor, reader, late, aged)
    })
    .await
    .expect("devices");
    let config = common::World::config_for(broker);
    let p = policy("role:operator");

    let (_spy, mut captured) = raw_subscriber(broker, "spy", "site/#", QoS::AtMostOnce).await;
    let (sub, mut rx) = SmqttClient::connect(reader, &config).expect("connect");
    subscribed(&sub, "site/#", smqtt_client::QoS::AtLeastOnce).await;
    sub.wait_connected(WAIT).await.expect("connected");
    let (publisher, _) = SmqttClient::connect(sensor, &config).expect("connect");
    publisher.wait_connected(WAIT).await.expect("connected");

    publisher.publish("site/a/live", &p, smqtt_client::QoS::AtLeastOnce, false, b"door unlocked").await.expect("live");
    publisher.publish("site/a/state", &p, smqtt_client::QoS::AtLeastOnce, true, b"armed").await.expect("retained");
    let live = captured.recv().await.expect("captured live");
    let retained = captured.recv().await.expect("captured retained");
    assert_eq!(live.topic, "site/a/live");
    assert_eq!(retained.topic, "site/a/state");
    let honest = drain(&mut rx, Duration::from_millis(800)).await;
    assert_eq!(kinds(&honest), ["ok:door unlocked", "ok:armed"], "the honest path");

    // The attack: the live envelope as a retained message, the retained one again, each several times.
    let (attacker, _) = common::raw_client(broker, "attacker").await;
    for _ in 0..3 {
        attacker.publish("site/a/live", QoS::AtLeastOnce, true, live.payload.to_vec()).await.expect("inject");
        attacker.publish("site/a/state", QoS::AtLeastOnce, true, retained.payload.to_vec()).await.expect("inject");
    }
    let replayed = drain(&mut rx, Duration::from_millis(800)).await;
    assert!(!replayed.is_empty(), "the injected copies reached the subscriber");
    assert!(replayed.iter().all(Result::is_err), "a replayed copy was shown: {:?}", kinds(&replayed));

    // A subscriber that starts now: the broker holds the attacker's copies as retained messages. The live
    // envelope is refused whatever its flag says; the retained value (the one sealed as such) is shown once.
    // (The same device with a second client id: one id per connection, or the two would take it in turns.)
    let mut late_config = config.clone();
    late_config.client_id = Some("reader-late".into());
    let (late, mut late_rx) = SmqttClient::connect(late_reader, &late_config).expect("connect");
    late.subscribe("site/#", smqtt_client::QoS::AtLeastOnce).await.expect("sub");
    let first = drain(&mut late_rx, Duration::from_millis(800)).await;
    let shown: Vec<_> = first.iter().filter_map(|d| d.as_ref().ok()).collect();
    assert_eq!(shown.len(), 1, "{:?}", kinds(&first));
    assert!(shown[0].retain() && shown[0].payload() == b"armed");
    assert!(
        first.iter().any(|d| matches!(d, Err(MessageError::NotSealedRetained { .. }))),
        "the live envelope stored as retained is refused: {:?}",
        kinds(&first)
    );
    // Subscribing again makes the broker deliver the retained messages again: nothing is shown twice.
    late.subscribe("site/a/#", smqtt_client::QoS::AtLeastOnce).await.expect("sub again");
    attacker.publish("site/a/state", QoS::AtLeastOnce, true, retained.payload.to_vec()).await.expect("inject");
    let again = drain(&mut late_rx, Duration::from_millis(800)).await;
    assert!(!again.is_empty());
    assert!(again.iter().all(Result::is_err), "shown twice: {:?}", kinds(&again));

    // With a maximum age of one second, the retained value two seconds old is not shown to a new subscriber.
    // (A deliberate sleep: the retained value must grow older than the maximum age, nothing to wait on.)
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut aged_config = config.clone();
    aged_config.client_id = Some("reader-aged".into());
    aged_config.limits = OpenerLimits { max_message_age: Duration::from_secs(1), ..OpenerLimits::default() };
    let (aged, mut aged_rx) = SmqttClient::connect(aged_reader, &aged_config).expect("connect");
    aged.subscribe("site/a/state", smqtt_client::QoS::AtLeastOnce).await.expect("sub");
    let old = aged_rx.next_timeout(WAIT).await.expect("the retained copy is delivered");
    assert!(matches!(old, Err(MessageError::Stale { .. })), "{old:?}");
    // …while a fresh message still is.
    publisher.publish("site/a/state", &p, smqtt_client::QoS::AtLeastOnce, true, b"disarmed").await.expect("retained");
    let fresh = aged_rx.next_timeout(WAIT).await.expect("delivery").expect("a fresh message opens");
    assert_eq!(fresh.payload(), b"disarmed");
    common::finish(world).await;
}

/// A device with ordinary publish rights floods a subscriber with envelopes that carry maximal (256-row)
/// capsules under a policy the subscriber satisfies, each with a fresh key id: every one would make the
/// subscriber validate all its points and run pairings (≈ 2000× the work of sending it). Another publisher's
/// message, sent while the flood is queued, must still arrive within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capsule_flood_does_not_hold_up_another_publisher() {
    let broker = common::start_rumqttd();
    let (world, honest, flooder, reader) = tokio::task::spawn_blocking(move || {
        let w = common::World::new(broker);
        let (_, honest) = w.device("honest", "role:sensor", &["plant/#"]);
        let (_, flooder) = w.device("flooder", "role:sensor", &["plant/#"]);
        let (_, reader) = w.device("reader", "role:operator", &[]);
        (w, honest, flooder, reader)
    })
    .await
    .expect("devices");
    let config = common::World::config_for(broker);

    // The attacker's one maximal capsule (its policy: the reader's attribute or 255 others, all as rows)…
    let leaves: Vec<String> = (1..256).map(|i| format!("x:{i}")).collect();
    let wide = policy(&format!("role:operator or {}", leaves.join(" or ")));
    let (_, capsule) = flooder.public_key().encapsulate(&wide, &mut rand_core::OsRng).expect("encapsulate");
    let capsule = capsule.to_bytes();
    assert!(capsule.len() > 256 * 144, "a 256-row capsule, {} bytes", capsule.len());
    // …in 300 variants (the masked seed at its end changed: all points still valid, a fresh key id each).
    let flood: Vec<Vec<u8>> = (0..300u16)
        .map(|i| {
            let mut variant = capsule.clone();
            let n = variant.len();
            variant[n - 2..].copy_from_slice(&i.to_be_bytes());
            let key = SessionKey::from_raw_for_tests(&[7; 32], key_id_for(&variant));
            let parts = EnvelopeParts {
                publisher: flooder.device_id(),
                sequence: 0,
                timestamp_ms: now_ms(),
                capsule: Some(&variant),
                credential: Some(flooder.credential()),
                retained: false,
            };
            seal_envelope("plant/flood", &parts, &key, b"x", flooder.signing_key()).expect("seal")
        })
        .collect();

    let (sub, mut rx) = SmqttClient::connect(reader, &config).expect("connect");
    subscribed(&sub, "plant/#", smqtt_client::QoS::AtMostOnce).await;
    sub.wait_connected(WAIT).await.expect("connected");
    let (publisher, _) = SmqttClient::connect(honest, &config).expect("connect");
    publisher.wait_connected(WAIT).await.expect("connected");
    let (attacker, _) = common::raw_client(broker, "flooder").await;

    for envelope in flood {
        attacker.publish("plant/flood", QoS::AtMostOnce, false, envelope).await.expect("flood");
    }
    // Let the flood reach the subscriber's queue, then publish honestly (a new session: its capsule too). A
    // deliberate sleep: the flood is QoS 0 and must not be read before the honest message, so nothing shows
    // when it has arrived.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    publisher
        .publish("plant/hall/temp", &policy("role:operator"), smqtt_client::QoS::AtMostOnce, false, b"21.5")
        .await
        .expect("publish");
    let mut flood_refusals = Vec::new();
    let delay = loop {
        match rx.next_timeout(WAIT).await.expect("the honest message arrives") {
            Ok(message) => {
                assert_eq!(message.publisher(), "honest", "a flood envelope was shown");
                assert_eq!(message.payload(), b"21.5");
                break sent.elapsed();
            }
            Err(refused) => flood_refusals.push(refused.kind()),
        }
    };
    let rest = drain(&mut rx, Duration::from_secs(2)).await;
    assert!(rest.iter().all(Result::is_err), "a flood envelope was shown");
    flood_refusals.extend(rest.iter().filter_map(|d| d.as_ref().err()).map(MessageError::kind));
    let budgeted = flood_refusals.iter().filter(|k| **k == "session_flood").count();
    eprintln!("honest message after {delay:?}; {} flood envelopes refused ({budgeted} unopened)", flood_refusals.len());
    assert!(flood_refusals.len() >= 100, "the flood reached the subscriber: {}", flood_refusals.len());
    assert!(budgeted + 16 >= flood_refusals.len(), "at most the burst was decoded: {flood_refusals:?}");
    assert!(delay < Duration::from_secs(1), "the honest message waited {delay:?} behind the flood");
    common::finish(world).await;
}
