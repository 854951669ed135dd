//! The engine's batch sealing (`Sealer::seal_batch`, `docs/wire.md` §6.6) through the real `Opener`: a burst
//! under one signature opens message by message, in any order and with losses, exactly as if each had been
//! signed alone; replays, topic moves and tampering are refused as they are for single signatures; a lone
//! message is sealed as `seal` seals it.

use std::sync::Arc;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use smqtt_abe::{setup, AttributeSet, Policy, PublicKey, UserKey};
use smqtt_session::{MessageError, Opener, Outgoing, QoS, Sealer, SessionPolicy};
use smqtt_wire::{CredentialBody, DeviceId, ParsedEnvelope, SigningKey, TopicFilter, UnixTime};

const NOW: UnixTime = UnixTime::from_secs(1_800_000_000);

struct World {
    public_key: Arc<PublicKey>,
    authority: SigningKey,
    reader: UserKey,
    sealer: Sealer,
    rng: ChaCha20Rng,
}

fn world(policy: SessionPolicy) -> World {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (public_key, master_key) = setup(&mut rng).expect("setup");
    let public_key = Arc::new(public_key);
    let authority = SigningKey::from_bytes(&[1; 32]);
    let device_key = SigningKey::from_bytes(&[2; 32]);
    let credential = CredentialBody {
        device_id: DeviceId::new("sensor-7").expect("id"),
        device_key: device_key.verifying_key(),
        attributes: AttributeSet::parse("role:sensor").expect("attributes"),
        publish: vec![TopicFilter::new("plant/#").expect("filter")],
        epoch: 1,
        not_before: NOW.as_secs() - 60,
        not_after: NOW.as_secs() + 3600,
    }
    .sign(&authority)
    .expect("credential");
    let attributes = AttributeSet::parse("role:operator, epoch:1").expect("attributes");
    let reader = master_key.keygen(&public_key, &attributes, &mut rng).expect("keygen");
    let device = DeviceId::new("sensor-7").expect("id");
    let sealer = Sealer::new(device, device_key, credential, Arc::clone(&public_key), 1, policy);
    World { public_key, authority, reader, sealer, rng }
}

impl World {
    fn opener(&self) -> Opener {
        let reader = UserKey::from_bytes(&self.reader.to_bytes()).expect("user key");
        Opener::new(Arc::clone(&self.public_key), reader, self.authority.verifying_key(), 1)
    }
}

fn topic(i: usize) -> String {
    format!("plant/line{}/temp", i % 3)
}

#[test]
fn a_burst_under_one_signature_opens_one_by_one_with_losses_and_in_any_order() {
    let mut w = world(SessionPolicy::default());
    let policy = Policy::parse("role:operator").expect("policy");
    let topics: Vec<String> = (0..12).map(topic).collect();
    let payloads: Vec<Vec<u8>> = (0..12).map(|i| format!("{i}.5 C").into_bytes()).collect();
    let messages: Vec<Outgoing<'_>> = (0..12)
        .map(|i| Outgoing { topic: &topics[i], policy: &policy, payload: &payloads[i], retain: false })
        .collect();
    let sealed = w.sealer.seal_batch(&messages, NOW, &mut w.rng).expect("seal");
    assert_eq!(sealed.len(), 12);
    for (i, envelope) in sealed.iter().enumerate() {
        let parsed = ParsedEnvelope::parse(envelope).expect("parse");
        assert_eq!(parsed.batch_position(), Some((12, i)), "one batch of 12");
        assert_eq!(parsed.sequence(), i as u64);
    }
    // The first carries the capsule: a subscriber that lost it waits for the next one (unknown key), as ever.
    let mut late = w.opener();
    assert!(matches!(
        late.open(&topics[5], &sealed[5], QoS::AtLeastOnce, false, NOW),
        Err(MessageError::UnknownKey { .. })
    ));
    // Every other one, backwards after the first: all open; each once only.
    let mut opener = w.opener();
    let order = [0usize, 11, 9, 7, 5, 3, 1];
    for &i in &order {
        let message = opener.open(&topics[i], &sealed[i], QoS::AtLeastOnce, false, NOW).expect("open");
        assert_eq!((message.payload(), message.publisher()), (payloads[i].as_slice(), "sensor-7"));
    }
    assert!(matches!(
        opener.open(&topics[9], &sealed[9], QoS::AtLeastOnce, false, NOW),
        Err(MessageError::Replay { .. })
    ));
    // Moved to another topic, or one byte of the ciphertext changed: refused although the root is remembered.
    assert!(matches!(
        opener.open(&topics[3], &sealed[2], QoS::AtLeastOnce, false, NOW),
        Err(MessageError::BadSignature { .. })
    ));
    let mut tampered = sealed[4].clone();
    let at = tampered.len() - 64 - 4 - 32 * 4 - 1;
    tampered[at] ^= 1;
    assert!(matches!(
        opener.open(&topics[4], &tampered, QoS::AtLeastOnce, false, NOW),
        Err(MessageError::BadSignature { .. })
    ));
    // The untouched one still opens.
    assert!(opener.open(&topics[4], &sealed[4], QoS::AtLeastOnce, false, NOW).is_ok());
}

#[test]
fn a_lone_message_is_sealed_as_seal_seals_it_and_unsigned_ones_stay_out_of_the_batch() {
    let mut w = world(SessionPolicy::default());
    let policy = Policy::parse("role:operator").expect("policy");
    let one = [Outgoing { topic: "plant/a", policy: &policy, payload: b"x", retain: false }];
    let lone = w.sealer.seal_batch(&one, NOW, &mut w.rng).expect("seal");
    assert_eq!(ParsedEnvelope::parse(&lone[0]).map(|p| p.batch_position()), Ok(None));

    // The unsigned mode (§6.5): only capsule-bearing envelopes are signed; in a burst the unsigned ones are
    // sealed alone and the signed ones (here just the first) keep their own signature.
    let mut w = world(SessionPolicy { sign_every_message: false, ..SessionPolicy::default() });
    let burst: Vec<Outgoing<'_>> =
        (0..5).map(|_| Outgoing { topic: "plant/a", policy: &policy, payload: b"y", retain: false }).collect();
    let sealed = w.sealer.seal_batch(&burst, NOW, &mut w.rng).expect("seal");
    let shapes: Vec<(bool, Option<(usize, usize)>)> = sealed
        .iter()
        .map(|e| ParsedEnvelope::parse(e).map(|p| (p.is_signed(), p.batch_position())).expect("parse"))
        .collect();
    assert_eq!(shapes, vec![(true, None), (false, None), (false, None), (false, None), (false, None)]);
}

#[test]
fn a_refused_message_refuses_the_batch_without_using_up_sequence_numbers() {
    let mut w = world(SessionPolicy::default());
    let policy = Policy::parse("role:operator").expect("policy");
    let big = vec![0u8; smqtt_wire::MAX_PAYLOAD + 1];
    let bad = [
        Outgoing { topic: "plant/a", policy: &policy, payload: b"ok", retain: false },
        Outgoing { topic: "plant/a", policy: &policy, payload: &big, retain: false },
    ];
    assert!(w.sealer.seal_batch(&bad, NOW, &mut w.rng).is_err());
    let invalid = [Outgoing { topic: "plant/+", policy: &policy, payload: b"ok", retain: false }];
    assert!(w.sealer.seal_batch(&invalid, NOW, &mut w.rng).is_err());
    // Nothing was used up: the next message is the session's first, with the capsule.
    let next = w.sealer.seal("plant/a", &policy, b"ok", false, NOW, &mut w.rng).expect("seal");
    let parsed = ParsedEnvelope::parse(&next).expect("parse");
    assert_eq!((parsed.sequence(), parsed.capsule().is_some()), (0, true));
    let mut opener = w.opener();
    assert!(opener.open("plant/a", &next, QoS::AtMostOnce, false, NOW).is_ok());
}
