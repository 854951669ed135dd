//! Publishing in bursts through a real rumqttd (`docs/wire.md` §6.6): a burst of publishes goes out under batch
//! signatures — fewer signatures than messages — and every message opens at the subscriber, in order, exactly
//! once; a lone publish after a pause is sealed at once, alone (not held back for company); a tampered batch
//! envelope injected by a raw client is refused while its honest neighbours open.

mod common;

use std::time::{Duration, Instant};

use smqtt_abe::Policy;
use smqtt_client::{MessageError, QoS, SmqttClient};
use smqtt_wire::ParsedEnvelope;

use common::{raw_subscriber, subscribed, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_are_batch_signed_every_message_opens_and_a_lone_one_is_not_held_back() {
    let broker = common::start_rumqttd();
    let (world, (_, sensor), (_, operator)) = tokio::task::spawn_blocking(move || {
        let w = common::World::new(broker);
        let a = w.device("sensor-b", "role:sensor", &["burst/#"]);
        let b = w.device("op-b", "role:operator", &[]);
        (w, a, b)
    })
    .await
    .expect("devices");
    let config = common::World::config_for(broker);
    let (publisher, _) = SmqttClient::connect(sensor, &config).expect("connect");
    let (op, mut op_rx) = SmqttClient::connect(operator, &config).expect("connect");
    publisher.wait_connected(WAIT).await.expect("publisher up");
    subscribed(&op, "burst/#", QoS::AtLeastOnce).await;
    let (raw, mut raw_rx) = raw_subscriber(broker, "observer-b", "burst/#", rumqttc::QoS::AtLeastOnce).await;

    let policy = Policy::parse("role:operator").expect("policy");
    const N: usize = 400;
    for i in 0..N {
        let text = format!("reading {i}");
        publisher
            .publish(&format!("burst/{}", i % 4), &policy, QoS::AtLeastOnce, false, text.as_bytes())
            .await
            .expect("publish");
    }
    // The subscriber opens all of them, in order, once.
    for i in 0..N {
        let message = op_rx.next_timeout(WAIT).await.expect("delivery").expect("opened");
        assert_eq!(message.payload(), format!("reading {i}").as_bytes(), "message {i}");
    }
    // The broker saw batch-signed envelopes: fewer signatures than messages.
    let mut batched = 0;
    let mut envelopes = Vec::new();
    for _ in 0..N {
        let seen = tokio::time::timeout(WAIT, raw_rx.recv()).await.expect("raw copy").expect("raw copy");
        let parsed = ParsedEnvelope::parse(&seen.payload).expect("an envelope");
        batched += usize::from(parsed.batch_position().is_some());
        envelopes.push((seen.topic.clone(), seen.payload.to_vec()));
    }
    assert!(batched > N / 4, "only {batched} of {N} envelopes were batch-signed");

    // A lone publish after a pause: an ordinary signed envelope, delivered at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    publisher.publish("burst/lone", &policy, QoS::AtLeastOnce, false, b"alone").await.expect("publish");
    let message = op_rx.next_timeout(WAIT).await.expect("delivery").expect("opened");
    assert_eq!(message.payload(), b"alone");
    assert!(started.elapsed() < Duration::from_secs(1), "held back {:?}", started.elapsed());
    let seen = tokio::time::timeout(WAIT, raw_rx.recv()).await.expect("raw copy").expect("raw copy");
    assert_eq!(ParsedEnvelope::parse(&seen.payload).map(|p| p.batch_position()), Ok(None));

    // An attacker re-publishes a batch envelope with one ciphertext byte changed, and replays an honest one:
    // the subscriber refuses both (its cached root does not cover the changed leaf; the window has the other).
    let (topic, honest) = envelopes
        .iter()
        .find(|(_, e)| ParsedEnvelope::parse(e).is_ok_and(|p| p.batch_position().is_some()))
        .cloned()
        .expect("a batch envelope");
    let parsed = ParsedEnvelope::parse(&honest).expect("parse");
    let (size, index) = parsed.batch_position().expect("batch");
    let path_hashes = {
        // RFC 9162 path length for (index, size).
        let (mut i, mut n, mut h) = (index, size, 0);
        while n > 1 {
            // The largest power of two below n.
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            if i < k {
                n = k;
            } else {
                i -= k;
                n -= k;
            }
            h += 1;
        }
        h
    };
    let mut tampered = honest.clone();
    let at = tampered.len() - 64 - 32 * path_hashes - 4 - 1;
    tampered[at] ^= 1;
    raw.publish(topic.as_str(), rumqttc::QoS::AtLeastOnce, false, tampered).await.expect("inject");
    raw.publish(topic.as_str(), rumqttc::QoS::AtLeastOnce, false, honest).await.expect("inject");
    match op_rx.next_timeout(WAIT).await.expect("delivery") {
        Err(MessageError::BadSignature { .. }) => {}
        other => panic!("tampered batch envelope: {other:?}"),
    }
    match op_rx.next_timeout(WAIT).await.expect("delivery") {
        Err(MessageError::Replay { .. }) => {}
        other => panic!("replayed batch envelope: {other:?}"),
    }
    publisher.disconnect().await;
    op.disconnect().await;
    common::finish(world).await;
}
