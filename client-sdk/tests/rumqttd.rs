//! The SDK against a real rumqttd broker and a real authority, both on loopback.

mod common;

use smqtt_abe::Policy;
use smqtt_client::{MessageError, QoS, SmqttClient};

use common::{raw_subscriber, subscribed, WAIT};

fn policy(text: &str) -> Policy {
    Policy::parse(text).expect("policy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorised_read_others_refused_wildcards_qos_tampering_and_replay() {
    let broker = common::start_rumqttd();
    let (world, (_, sensor), (_, operator), (_, intern), (_, mallory)) = tokio::task::spawn_blocking(move || {
        let w = common::World::new(broker);
        let a = w.device("sensor-1", "role:sensor, site:berlin", &["plant/berlin/#"]);
        let b = w.device("op-1", "role:operator, site:berlin", &[]);
        let c = w.device("intern-1", "role:intern, site:berlin", &[]);
        let d = w.device("mallory", "role:sensor, site:berlin", &["plant/paris/#"]);
        (w, a, b, c, d)
    })
    .await
    .expect("devices");

    let config = common::World::config_for(broker);
    let (publisher, _) = SmqttClient::connect(sensor, &config).expect("connect");
    let (op, mut op_rx) = SmqttClient::connect(operator, &config).expect("connect");
    let (int, mut int_rx) = SmqttClient::connect(intern, &config).expect("connect");
    let (evil, _) = SmqttClient::connect(mallory, &config).expect("connect");
    subscribed(&op, "plant/+/line1/#", QoS::AtLeastOnce).await;
    subscribed(&int, "plant/#", QoS::AtMostOnce).await;
    let (raw, mut raw_rx) = raw_subscriber(broker, "observer", "plant/#", rumqttc::QoS::AtLeastOnce).await;

    let p = policy("site:berlin and (role:operator or role:admin)");
    publisher.publish("plant/berlin/line1/temp", &p, QoS::AtLeastOnce, false, b"23.5 C").await.expect("publish");
    publisher.publish("plant/berlin/line1/temp", &p, QoS::AtMostOnce, false, b"23.6 C").await.expect("publish");

    for expected in [&b"23.5 C"[..], b"23.6 C"] {
        let message = op_rx.next_timeout(WAIT).await.expect("delivery").expect("operator reads");
        assert_eq!(message.payload(), expected);
        assert_eq!(message.topic(), "plant/berlin/line1/temp");
        assert_eq!(message.publisher(), "sensor-1");
        assert_eq!(message.publisher_attributes(), "role:sensor, site:berlin");
        assert!(message.policy().contains("epoch:1"), "{}", message.policy());
    }
    for _ in 0..2 {
        match int_rx.next_timeout(WAIT).await.expect("delivery") {
            Err(MessageError::NotAuthorised { .. }) => {}
            other => panic!("intern got {other:?}"),
        }
    }
    // The broker carries only ciphertext.
    let seen = raw_rx.recv().await.expect("raw copy");
    assert!(!seen.payload.windows(6).any(|w| w == b"23.5 C"));
    let envelope = seen.payload.to_vec();
    let _ = raw_rx.recv().await;

    // Replay of a captured envelope, a flipped byte, a swapped topic, plaintext: each refused, stream goes on.
    // One at a time: the subscriber serves each claimed publisher in its own lane, so refusals of deliveries
    // with different (or no) publisher headers need not come back in the order they were sent.
    let mut flipped = envelope.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let attacks: [(&str, Vec<u8>, &[&str]); 4] = [
        ("plant/berlin/line1/temp", envelope.clone(), &["replay"]),
        ("plant/berlin/line1/temp", flipped, &["bad_signature", "malformed", "tampered"]),
        ("plant/paris/line1/temp", envelope.clone(), &["bad_signature"]),
        ("plant/berlin/line1/temp", b"23.5 C plain".to_vec(), &["malformed"]),
    ];
    for (topic, payload, expected) in attacks {
        raw.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload).await.expect("inject");
        let refused = op_rx.next_timeout(WAIT).await.expect("delivery").expect_err("must be refused");
        assert!(expected.contains(&refused.kind()), "{topic}: {} not in {expected:?}", refused.kind());
    }

    // A device with valid ABE access but no right to the topic: its publish is refused locally, and a
    // hand-made envelope from it is refused by subscribers.
    assert!(matches!(
        evil.publish("plant/berlin/line1/temp", &p, QoS::AtLeastOnce, false, b"fake").await,
        Err(smqtt_client::Error::NotPermitted(_))
    ));
    // Still flowing: the next real message arrives.
    publisher.publish("plant/berlin/line1/temp", &p, QoS::AtLeastOnce, false, b"23.7 C").await.expect("publish");
    let message = op_rx.next_timeout(WAIT).await.expect("delivery").expect("reads");
    assert_eq!(message.payload(), b"23.7 C");
    common::finish(world).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_reads_retained_and_publisher_restart_is_not_a_replay() {
    let broker = common::start_rumqttd();
    let (world, sensor_store, sensor, reader) = tokio::task::spawn_blocking(move || {
        let w = common::World::new(broker);
        let (store, sensor) = w.device("sensor-2", "role:sensor", &["site/+/state"]);
        let (_, reader) = w.device("reader", "role:operator", &[]);
        (w, store, sensor, reader)
    })
    .await
    .expect("devices");
    let config = common::World::config_for(broker);
    let p = policy("role:operator");
    let (publisher, _) = SmqttClient::connect(sensor, &config).expect("connect");
    publisher.publish("site/a/state", &p, QoS::AtLeastOnce, true, b"open").await.expect("retained");
    for i in 0..2 {
        publisher
            .publish("site/a/state", &p, QoS::AtLeastOnce, false, format!("live {i}").as_bytes())
            .await
            .expect("publish");
    }
    // The broker has them all (one connection's publishes come in order) once it acknowledged the last.
    let last =
        publisher.publish_acknowledged("site/a/state", &p, QoS::AtLeastOnce, false, b"live 2").await.expect("publish");
    last.wait(WAIT).await.expect("PUBACK");
    publisher.disconnect().await;

    // Joins after everything was sent: the retained message carries its capsule, so it opens.
    let (sub, mut rx) = SmqttClient::connect(reader, &config).expect("connect");
    sub.subscribe("site/#", QoS::AtLeastOnce).await.expect("sub");
    let message = rx.next_timeout(WAIT).await.expect("delivery").expect("retained opens");
    assert_eq!(message.payload(), b"open");
    assert!(message.retain());

    // The publisher restarts (new process state): a new session key, sequence numbers start again, no replay.
    let restarted = sensor_store.load().expect("load");
    let (publisher, _) = SmqttClient::connect(restarted, &config).expect("reconnect");
    publisher.wait_connected(WAIT).await.expect("connected");
    for i in 0..3 {
        publisher
            .publish("site/a/state", &p, QoS::AtLeastOnce, false, format!("after restart {i}").as_bytes())
            .await
            .expect("publish");
    }
    for i in 0..3 {
        let message = rx.next_timeout(WAIT).await.expect("delivery").expect("opens after restart");
        assert_eq!(message.payload(), format!("after restart {i}").as_bytes());
    }
    common::finish(world).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_mid_stream() {
    let broker = common::start_rumqttd();
    let (world, admin, sensor_store, reader_store, sensor, reader) = tokio::task::spawn_blocking(move || {
        let w = common::World::new(broker);
        let (s_store, sensor) = w.device("sensor-3", "role:sensor", &["line/#"]);
        let (r_store, reader) = w.device("reader-3", "role:operator", &[]);
        let admin = w.admin.clone();
        (w, admin, s_store, r_store, sensor, reader)
    })
    .await
    .expect("devices");
    let mut config = common::World::config_for(broker);
    // The capsule repeats within the 60 messages below (the default, 256, would not).
    config.sessions.capsule_every = 50;
    let p = policy("role:operator");
    let (publisher, _) = SmqttClient::connect(sensor, &config).expect("connect");
    let (sub, mut rx) = SmqttClient::connect(reader, &config).expect("connect");
    subscribed(&sub, "line/#", QoS::AtLeastOnce).await;
    publisher.publish("line/1", &p, QoS::AtLeastOnce, false, b"epoch one").await.expect("publish");
    assert_eq!(rx.next_timeout(WAIT).await.expect("d").expect("reads").payload(), b"epoch one");

    // The authority rotates; the publisher renews in place (same connection) and encrypts for epoch 2.
    let rotating = admin.clone();
    tokio::task::spawn_blocking(move || rotating.rotate_epoch(Some("test".into())).expect("rotate"))
        .await
        .expect("rotate");
    assert_eq!(publisher.renew(&sensor_store).await.expect("renew"), 2);
    assert_eq!(publisher.epoch(), 2);
    publisher.publish("line/1", &p, QoS::AtLeastOnce, false, b"epoch two").await.expect("publish");
    // The subscriber still holds an epoch-1 key: not authorised, until it renews too.
    match rx.next_timeout(WAIT).await.expect("delivery") {
        Err(MessageError::NotAuthorised { policy, .. }) => assert!(policy.contains("epoch:2")),
        Ok(m) => panic!("epoch-1 key read epoch-2 data: {m:?}"),
        Err(e) => panic!("unexpected {e}"),
    }
    assert_eq!(sub.renew(&reader_store).await.expect("renew"), 2);
    let (sub2, mut rx2) = (sub, rx);
    // It joined mid-session: messages before the session's next capsule are "unknown key", then it reads.
    let mut unknown = 0;
    for i in 0..60 {
        publisher.publish("line/1", &p, QoS::AtLeastOnce, false, format!("two {i}").as_bytes()).await.expect("publish");
        match rx2.next_timeout(WAIT).await.expect("delivery") {
            Ok(message) => {
                assert_eq!(message.payload(), format!("two {i}").as_bytes());
                break;
            }
            Err(MessageError::UnknownKey { .. }) => unknown += 1,
            Err(e) => panic!("unexpected {e}"),
        }
        assert!(i < 59, "the capsule never came again");
    }
    assert!(unknown > 0, "a mid-session joiner cannot know the key before the capsule repeats");

    // Revoked: the authority refuses its renewal, and the client keeps what it had (epoch 2).
    tokio::task::spawn_blocking(move || admin.revoke_device("reader-3").expect("revoke")).await.expect("revoke");
    match sub2.renew(&reader_store).await {
        Err(smqtt_client::Error::Authority(error)) => assert!(error.to_string().contains("revoked"), "{error}"),
        other => panic!("a revoked device renewed: {other:?}"),
    }
    assert_eq!(sub2.epoch(), 2);
    assert_eq!(publisher.renew(&sensor_store).await.expect("renew"), 3);
    common::finish(world).await;
}

/// Valid ABE, but the publisher is not who it says (wrong key), or its credential is not the authority's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_publishers_are_refused() {
    use smqtt_client::{Sealer, SessionPolicy};
    use smqtt_wire::{CredentialBody, SigningKey, TopicFilter};
    use std::sync::Arc;

    let broker = common::start_rumqttd();
    let (world, (_, sensor), (_, reader), (_, mallory)) = tokio::task::spawn_blocking(move || {
        let w = common::World::new(broker);
        let a = w.device("sensor-f", "role:sensor", &["f/#"]);
        let b = w.device("reader-f", "role:operator", &[]);
        let c = w.device("mallory-f", "role:sensor", &[]);
        (w, a, b, c)
    })
    .await
    .expect("devices");
    let config = common::World::config_for(broker);
    let public_key = Arc::new(smqtt_abe::PublicKey::from_bytes(&reader.public_key().to_bytes()).expect("pk"));
    let p = policy("role:operator");
    // 1. Mallory signs with her own key but presents sensor-f's genuine credential.
    let stolen = sensor.credential().to_vec();
    let mallory_key = SigningKey::from_bytes(&mallory.signing_key().to_bytes());
    let mut impostor =
        Sealer::new(sensor.device_id().clone(), mallory_key, stolen, public_key.clone(), 1, SessionPolicy::default());
    let forged =
        impostor.seal("f/x", &p, b"forged", false, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng).expect("seal");
    // 2. Mallory makes her own "authority" and issues herself a credential for the topic.
    let fake_authority = SigningKey::generate(&mut rand_core::OsRng);
    let body = CredentialBody {
        device_id: mallory.device_id().clone(),
        device_key: mallory.signing_key().verifying_key(),
        attributes: smqtt_abe::AttributeSet::parse("role:admin").expect("attrs"),
        publish: vec![TopicFilter::new("f/#").expect("filter")],
        epoch: 1,
        not_before: common::now() - 10,
        not_after: common::now() + 3600,
    };
    let fake_credential = body.sign(&fake_authority).expect("sign");
    let mut self_made = Sealer::new(
        mallory.device_id().clone(),
        SigningKey::from_bytes(&mallory.signing_key().to_bytes()),
        fake_credential,
        public_key,
        1,
        SessionPolicy::default(),
    );
    let self_signed = self_made
        .seal("f/x", &p, b"self-made", false, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng)
        .expect("seal");

    let (sub, mut rx) = SmqttClient::connect(reader, &config).expect("connect");
    subscribed(&sub, "f/#", QoS::AtLeastOnce).await;
    let (raw, _) = common::raw_client(broker, "mallory-raw").await;
    raw.publish("f/x", rumqttc::QoS::AtLeastOnce, false, forged).await.expect("publish");
    raw.publish("f/x", rumqttc::QoS::AtLeastOnce, false, self_signed).await.expect("publish");
    let first = rx.next_timeout(WAIT).await.expect("delivery");
    assert!(
        matches!(first, Err(MessageError::BadSignature { ref publisher, .. }) if publisher == "sensor-f"),
        "{first:?}"
    );
    let second = rx.next_timeout(WAIT).await.expect("delivery");
    assert!(matches!(second, Err(MessageError::UntrustedPublisher { .. })), "{second:?}");
    // The genuine publisher still gets through.
    let (publisher, _) = SmqttClient::connect(sensor, &config).expect("connect");
    publisher.publish("f/x", &p, QoS::AtLeastOnce, false, b"genuine").await.expect("publish");
    assert_eq!(rx.next_timeout(WAIT).await.expect("d").expect("genuine reads").payload(), b"genuine");
    common::finish(world).await;
}

/// The same SDK over MQTT 5: authorised read, refusal by policy, QoS 1 and a retained late-joiner read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_publish_subscribe_retained() {
    let broker = common::start_rumqttd_v5();
    let (world, sensor, reader, outsider, late) = tokio::task::spawn_blocking(move || {
        let w = common::World::new(broker);
        let (_, sensor) = w.device("sensor-5", "role:sensor", &["v5/#"]);
        let (_, reader) = w.device("reader-5", "role:operator", &[]);
        let (_, outsider) = w.device("outsider-5", "role:visitor", &[]);
        let (_, late) = w.device("late-5", "role:operator", &[]);
        (w, sensor, reader, outsider, late)
    })
    .await
    .expect("devices");
    let mut config = common::World::config_for(broker);
    config.protocol = smqtt_client::MqttVersion::V5;
    let p = policy("role:operator");
    let (publisher, _) = SmqttClient::connect(sensor, &config).expect("connect");
    let (sub, mut rx) = SmqttClient::connect(reader, &config).expect("connect");
    let (other, mut other_rx) = SmqttClient::connect(outsider, &config).expect("connect");
    subscribed(&sub, "v5/+/temp", QoS::AtLeastOnce).await;
    subscribed(&other, "v5/#", QoS::AtLeastOnce).await;
    publisher.publish("v5/hall/temp", &p, QoS::AtLeastOnce, true, b"21.0 C").await.expect("publish");
    let message = rx.next_timeout(WAIT).await.expect("delivery").expect("reads");
    assert_eq!((message.payload(), message.qos().level(), message.publisher()), (&b"21.0 C"[..], 1, "sensor-5"));
    match other_rx.next_timeout(WAIT).await.expect("delivery") {
        Err(MessageError::NotAuthorised { .. }) => {}
        other => panic!("a visitor key read operator data: {other:?}"),
    }
    let (late_client, mut late_rx) = SmqttClient::connect(late, &config).expect("connect");
    late_client.subscribe("v5/#", QoS::AtLeastOnce).await.expect("sub");
    let retained = late_rx.next_timeout(WAIT).await.expect("retained delivery").expect("reads");
    assert!(retained.retain(), "delivered as retained");
    assert_eq!(retained.payload(), b"21.0 C");
    common::finish(world).await;
}

/// Session-key authentication (docs/wire.md §6.5): a publisher that signs only the envelopes carrying its
/// capsule reaches a subscriber that accepts unsigned envelopes, while a strict subscriber refuses every unsigned
/// one; an unsigned envelope is refused before its session was introduced by a signature, replays are still
/// caught, and a rewritten publisher field is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_envelopes_are_accepted_only_where_enabled_and_introduced() {
    let broker = common::start_rumqttd();
    let (world, (_, sensor), (_, strict), (_, lenient), (_, late)) = tokio::task::spawn_blocking(move || {
        let w = common::World::new(broker);
        let a = w.device("sensor-1", "role:sensor, site:berlin", &["plant/berlin/#"]);
        let b = w.device("op-1", "role:operator, site:berlin", &[]);
        let c = w.device("op-2", "role:operator, site:berlin", &[]);
        let d = w.device("op-3", "role:operator, site:berlin", &[]);
        (w, a, b, c, d)
    })
    .await
    .expect("devices");

    let mut publisher_config = common::World::config_for(broker);
    publisher_config.sessions.sign_every_message = false;
    publisher_config.sessions.capsule_every = 6;
    let (publisher, _) = SmqttClient::connect(sensor, &publisher_config).expect("connect");
    let (strict, mut strict_rx) = SmqttClient::connect(strict, &common::World::config_for(broker)).expect("connect");
    let mut lenient_config = common::World::config_for(broker);
    lenient_config.accept_unsigned = vec!["plant/berlin/line1/#".to_owned()];
    let (lenient, mut lenient_rx) = SmqttClient::connect(lenient, &lenient_config).expect("connect");
    subscribed(&strict, "plant/#", QoS::AtLeastOnce).await;
    subscribed(&lenient, "plant/#", QoS::AtLeastOnce).await;
    let (raw, mut raw_rx) = raw_subscriber(broker, "observer", "plant/#", rumqttc::QoS::AtLeastOnce).await;

    let p = policy("role:operator");
    let topic = "plant/berlin/line1/temp";
    for i in 0..5u8 {
        publisher.publish(topic, &p, QoS::AtLeastOnce, false, &[b'0' + i]).await.expect("publish");
    }
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(raw_rx.recv().await.expect("raw copy").payload.to_vec());
    }
    let signed: Vec<bool> =
        seen.iter().map(|b| smqtt_wire::ParsedEnvelope::parse(b).expect("envelope").is_signed()).collect();
    assert_eq!(signed, [true, false, false, false, false], "only the capsule-bearing envelope is signed");

    for i in 0..5u8 {
        let m = lenient_rx.next_timeout(WAIT).await.expect("delivery").expect("lenient reads");
        assert_eq!((m.payload(), m.publisher()), (&[b'0' + i][..], "sensor-1"));
    }
    let first = strict_rx.next_timeout(WAIT).await.expect("delivery").expect("strict reads the signed one");
    assert_eq!(first.payload(), b"0");
    for _ in 0..4 {
        let refused = strict_rx.next_timeout(WAIT).await.expect("delivery").expect_err("unsigned refused");
        assert_eq!(refused.kind(), "unsigned");
    }

    // The same session on a topic outside the lenient subscriber's unsigned filters: refused there too.
    publisher.publish("plant/berlin/line2/temp", &p, QoS::AtLeastOnce, false, b"x").await.expect("publish");
    let outside = lenient_rx.next_timeout(WAIT).await.expect("delivery").expect_err("outside the filters");
    assert_eq!(outside.kind(), "unsigned");
    let _ = strict_rx.next_timeout(WAIT).await.expect("delivery").expect_err("strict refuses it too");
    assert!(smqtt_wire::ParsedEnvelope::parse(&raw_rx.recv().await.expect("raw copy").payload)
        .is_ok_and(|e| !e.is_signed()));

    // A replayed unsigned envelope, and one whose publisher field names another device.
    raw.publish(topic, rumqttc::QoS::AtLeastOnce, false, seen[3].clone()).await.expect("replay");
    let mut renamed_bytes = seen[3].clone();
    let at = seen[3].windows(8).position(|w| w == b"sensor-1").expect("publisher field");
    renamed_bytes[at..at + 8].copy_from_slice(b"sensor-2");
    raw.publish(topic, rumqttc::QoS::AtLeastOnce, false, renamed_bytes).await.expect("renamed");
    // The two claim different publishers, so they are served in separate lanes, in either order.
    let mut refusals = Vec::new();
    for _ in 0..2 {
        refusals.push(lenient_rx.next_timeout(WAIT).await.expect("delivery").expect_err("refused").kind());
    }
    let replay_at = refusals.iter().position(|k| *k == "replay").expect("the replay is refused as one");
    let renamed = refusals[1 - replay_at];
    assert!(["unsigned", "untrusted_publisher", "tampered"].contains(&renamed), "{refusals:?}");

    // A late joiner that accepts unsigned envelopes: an unsigned envelope of a session it has not seen
    // introduced is an unknown key; the next capsule round (the 7th message, signed) lets it in.
    let (late_client, mut late_rx) = SmqttClient::connect(late, &lenient_config).expect("connect");
    subscribed(&late_client, "plant/#", QoS::AtLeastOnce).await;
    raw.publish(topic, rumqttc::QoS::AtLeastOnce, false, seen[4].clone()).await.expect("unsigned again");
    let early = late_rx.next_timeout(WAIT).await.expect("delivery").expect_err("not introduced yet");
    assert_eq!(early.kind(), "unknown_key");
    publisher.publish(topic, &p, QoS::AtLeastOnce, false, b"5").await.expect("publish");
    let m = late_rx.next_timeout(WAIT).await.expect("delivery").expect("late joiner reads the signed capsule");
    assert_eq!(m.payload(), b"5");
    common::finish(world).await;
}

/// Deliveries stay in publication order when some open on the event loop (unsigned, cached session) and some on
/// the opener thread (signed, or a new session's capsule to decapsulate): every fourth envelope is signed and
/// sessions rotate every 60 messages, so the stream crosses from quick to slow and back many times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_keep_their_order_across_session_rotations() {
    let broker = common::start_rumqttd();
    let (world, (_, sensor), (_, reader)) = tokio::task::spawn_blocking(move || {
        let w = common::World::new(broker);
        let a = w.device("sensor-9", "role:sensor, site:berlin", &["plant/berlin/#"]);
        let b = w.device("op-9", "role:operator, site:berlin", &[]);
        (w, a, b)
    })
    .await
    .expect("devices");
    let mut publisher_config = common::World::config_for(broker);
    publisher_config.sessions.sign_every_message = false;
    publisher_config.sessions.capsule_every = 4;
    publisher_config.sessions.max_messages = 60;
    let (publisher, _) = SmqttClient::connect(sensor, &publisher_config).expect("connect");
    let mut reader_config = common::World::config_for(broker);
    reader_config.accept_unsigned = vec!["plant/#".to_owned()];
    let (reader, mut rx) = SmqttClient::connect(reader, &reader_config).expect("connect");
    subscribed(&reader, "plant/#", QoS::AtLeastOnce).await;
    let p = policy("role:operator");
    const COUNT: u32 = 600;
    for i in 0..COUNT {
        publisher
            .publish("plant/berlin/line1/seq", &p, QoS::AtLeastOnce, false, &i.to_be_bytes())
            .await
            .expect("publish");
    }
    for i in 0..COUNT {
        let m = rx.next_timeout(WAIT).await.expect("delivery").unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_eq!(m.payload(), i.to_be_bytes(), "delivery {i} out of order");
    }
    common::finish(world).await;
}
