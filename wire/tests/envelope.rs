//! Envelopes: round trips with a real FAME data key, the documented layout (against an independent encoder),
//! tampering, topic binding, truncation, bounds, and the replay window.

mod common;

use common::envelope::{fame, key_id, publisher, resign, session_key, RawEnvelope, PUBLISHER, TOPIC};
use common::{credential, device, ok};
use proptest::collection::vec;
use proptest::prelude::*;
use smqtt_abe::Capsule;
use smqtt_wire::limits::{MAX_CAPSULE_LEN, MAX_CREDENTIAL_LEN, MAX_ENVELOPE_LEN, MAX_PAYLOAD};
use smqtt_wire::{
    envelope_overhead, key_id_for, seal_envelope, seal_envelope_unsigned, DeviceId, EnvelopeParts, Error,
    ParsedEnvelope, ReplayWindow, SessionKey, SigningKey, UnverifiedCredential, REPLAY_WINDOW,
};

const PLAINTEXT: &[u8] = b"{\"celsius\": 21.5}";

fn seal(sequence: u64, capsule: bool, credential_too: bool, plaintext: &[u8]) -> Vec<u8> {
    let id = publisher();
    let cred = credential();
    let parts = EnvelopeParts {
        publisher: &id,
        sequence,
        timestamp_ms: 1_700_000_100_000 + sequence,
        capsule: capsule.then_some(fame().capsule.as_slice()),
        credential: credential_too.then_some(cred.as_slice()),
        retained: false,
    };
    ok(seal_envelope(TOPIC, &parts, &session_key(), plaintext, &device()))
}

fn parse(bytes: &[u8]) -> ParsedEnvelope<'_> {
    ok(ParsedEnvelope::parse(bytes))
}

fn malformed(reason: &'static str) -> Error {
    Error::Malformed { what: "envelope", reason }
}

/// Parse, verify with the fixture device key, open with the fixture session key.
fn receive(bytes: &[u8], topic: &str) -> Result<Vec<u8>, Error> {
    let envelope = ParsedEnvelope::parse(bytes)?;
    envelope.verify_signature(topic, &device().verifying_key())?.open(&session_key()).map(|p| p.to_vec())
}

#[test]
fn round_trip_with_a_fame_data_key() {
    let bytes = seal(7, true, true, PLAINTEXT);
    let envelope = parse(&bytes);
    assert_eq!(envelope.publisher().as_str(), PUBLISHER);
    assert_eq!(envelope.key_id(), key_id(&fame().capsule));
    assert_eq!(envelope.key_id(), session_key().key_id());
    assert_eq!((envelope.sequence(), envelope.timestamp_ms()), (7, 1_700_000_100_007));
    assert_eq!(envelope.capsule(), Some(fame().capsule.as_slice()));
    assert_eq!(envelope.credential(), Some(credential().as_slice()));
    assert_eq!(envelope.ciphertext_len(), PLAINTEXT.len() + 16);
    assert_eq!(envelope.as_bytes(), &bytes[..]);
    let verified = ok(envelope.verify_signature(TOPIC, &device().verifying_key()));
    assert_eq!(verified.topic(), TOPIC);

    // A subscriber recovers the data key from the capsule in the envelope, as the SDK does.
    let capsule = ok(Capsule::from_bytes(envelope.capsule().unwrap_or_default()));
    let data_key = ok(fame().user.decapsulate(&fame().pk, &capsule));
    let key = SessionKey::new(&data_key, envelope.capsule().unwrap_or_default());
    assert_eq!(key, session_key());
    assert_eq!(ok(verified.open(&key)).as_slice(), PLAINTEXT);

    // The credential inside is the publisher's and verifies.
    let cred = ok(UnverifiedCredential::from_bytes(envelope.credential().unwrap_or_default()));
    assert_eq!(cred.device_id(), envelope.publisher());

    // Later messages of the session carry neither; the cached key opens them.
    let bare = seal(8, false, false, b"");
    let envelope = parse(&bare);
    assert_eq!((envelope.capsule(), envelope.credential()), (None, None));
    assert_eq!(ok(ok(envelope.verify_signature(TOPIC, &device().verifying_key())).open(&key)).len(), 0);
    assert_eq!(receive(&bare, TOPIC), Ok(Vec::new()));
}

#[test]
fn overhead_and_lengths() {
    assert_eq!(envelope_overhead(0), 124);
    assert_eq!(envelope_overhead(PUBLISHER.len()), 132);
    let cap = fame().capsule.len();
    let cred = credential().len();
    for (c, k) in [(false, false), (true, false), (false, true), (true, true)] {
        for n in [0, 1, 100] {
            let bytes = seal(1, c, k, &vec![0x5a; n]);
            let expected = envelope_overhead(8) + n + if c { 4 + cap } else { 0 } + if k { 2 + cred } else { 0 };
            assert_eq!(bytes.len(), expected, "capsule {c}, credential {k}, {n} bytes");
        }
    }
    // With a batch signature's size, index and longest audit path (§6.6): 4 + 8 × 32.
    assert_eq!(MAX_ENVELOPE_LEN, 124 + 64 + 4 + MAX_CAPSULE_LEN + 2 + MAX_CREDENTIAL_LEN + MAX_PAYLOAD + 260);
    assert_eq!(MAX_ENVELOPE_LEN, 541_126, "docs/wire.md §6.2");
}

/// The library's bytes are exactly what the independent encoder of `common::envelope` writes from the spec.
#[test]
fn the_encoding_matches_an_independent_encoder() {
    for (c, k) in [(false, false), (true, false), (false, true), (true, true)] {
        for sequence in [0, 1, 0x0102_0304_0506_0708, u64::MAX] {
            let raw = RawEnvelope::new(c, k, sequence, PLAINTEXT);
            assert_eq!(seal(sequence, c, k, PLAINTEXT), raw.build(), "capsule {c}, credential {k}, seq {sequence}");
        }
    }
}

#[test]
fn every_single_byte_flip_fails() {
    for (c, k) in [(true, true), (false, false)] {
        let bytes = seal(3, c, k, PLAINTEXT);
        assert_eq!(receive(&bytes, TOPIC).as_deref(), Ok(PLAINTEXT));
        let signature_at = bytes.len() - 64;
        for i in 0..bytes.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[i] ^= mask;
                let parsed = ParsedEnvelope::parse(&damaged);
                let verified = parsed
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|e| e.verify_signature(TOPIC, &device().verifying_key()));
                assert!(verified.is_err(), "byte {i} ^ {mask:#x} passed parse and signature");
                // The AEAD alone catches every change before the signature, too.
                if i < signature_at {
                    let opened = parsed.and_then(|e| e.open_unverified(TOPIC, &session_key()));
                    assert!(opened.is_err(), "byte {i} ^ {mask:#x} passed parse and open");
                }
            }
        }
    }
}

#[test]
fn another_topic_fails_the_signature_and_the_aead() {
    let bytes = seal(1, true, true, PLAINTEXT);
    let envelope = parse(&bytes);
    let vk = device().verifying_key();
    for topic in [
        "plant/berlin/hall-3/temperaturE",
        "plant/berlin/hall-3/temperature/",
        "plant/berlin/hall-3/temperatur",
        "plant/berlin/hall-4/temperature",
        "/plant/berlin/hall-3/temperature",
        "x",
    ] {
        assert_eq!(envelope.verify_signature(topic, &vk).map(|_| ()), Err(Error::BadSignature), "{topic}");
        // With the signature skipped, the AEAD refuses it on its own.
        let opened = envelope.open_unverified(topic, &session_key()).map(|_| ());
        assert_eq!(opened, Err(Error::DecryptionFailed), "{topic}");
    }
    for bad in ["", "plant/+/x", "plant/#"] {
        assert!(matches!(envelope.verify_signature(bad, &vk), Err(Error::InvalidTopic(_))), "{bad:?}");
        assert!(matches!(envelope.open_unverified(bad, &session_key()), Err(Error::InvalidTopic(_))), "{bad:?}");
    }
    // Signed for the new topic but sealed for the old: only the AEAD stands between.
    let raw = RawEnvelope::new(true, true, 1, PLAINTEXT);
    let moved = raw.sealed(TOPIC, "plant/x", fame().data_key.expose_secret(), &device());
    let envelope = parse(&moved);
    let verified = ok(envelope.verify_signature("plant/x", &vk));
    assert_eq!(verified.open(&session_key()).map(|_| ()), Err(Error::DecryptionFailed));
    assert_eq!(ok(envelope.open_unverified(TOPIC, &session_key())).as_slice(), PLAINTEXT);
}

#[test]
fn truncations_and_trailing_bytes_are_malformed() {
    for (c, k) in [(true, true), (false, false)] {
        let bytes = seal(2, c, k, PLAINTEXT);
        for len in 0..bytes.len() {
            assert_eq!(ParsedEnvelope::parse(&bytes[..len]).map(|_| ()), Err(malformed("truncated")), "{len}");
        }
        for extra in [&[0u8][..], &[0; 64], &bytes[..16]] {
            let longer = [&bytes[..], extra].concat();
            assert_eq!(ParsedEnvelope::parse(&longer).map(|_| ()), Err(malformed("trailing bytes")));
        }
    }
}

#[test]
fn the_wrong_publisher_key_fails() {
    let bytes = seal(1, false, true, PLAINTEXT);
    let envelope = parse(&bytes);
    for seed in [0x11u8, 0x23, 0x33] {
        let other = SigningKey::from_bytes(&[seed; 32]).verifying_key();
        assert_eq!(envelope.verify_signature(TOPIC, &other).map(|_| ()), Err(Error::BadSignature));
    }
    // An envelope naming sensor-7 but signed by another device fails with sensor-7's key.
    let raw = RawEnvelope::new(false, true, 1, PLAINTEXT);
    let forged = raw.sealed(TOPIC, TOPIC, fame().data_key.expose_secret(), &SigningKey::from_bytes(&[0x33; 32]));
    let verified = parse(&forged).verify_signature(TOPIC, &device().verifying_key()).map(|_| ());
    assert_eq!(verified, Err(Error::BadSignature));
}

#[test]
fn a_capsule_must_hash_to_the_key_id() {
    // Parsing: a capsule changed in one byte, or another session's capsule, re-signed by the publisher.
    let mut raw = RawEnvelope::new(true, false, 1, PLAINTEXT);
    if let Some(capsule) = raw.capsule.as_mut() {
        capsule[100] ^= 1;
    }
    assert_eq!(ParsedEnvelope::parse(&raw.build()).map(|_| ()), Err(malformed("capsule does not match the key id")));
    raw.capsule = Some(fame().other_capsule.clone());
    assert_eq!(ParsedEnvelope::parse(&raw.build()).map(|_| ()), Err(malformed("capsule does not match the key id")));
    raw.key_id = key_id(&fame().other_capsule);
    assert!(ParsedEnvelope::parse(&raw.build()).is_ok());
    // Sealing: the library refuses to pair a session key with another session's capsule.
    let id = publisher();
    let parts = EnvelopeParts {
        publisher: &id,
        sequence: 0,
        timestamp_ms: 0,
        capsule: Some(&fame().other_capsule),
        credential: None,
        retained: false,
    };
    let r = seal_envelope(TOPIC, &parts, &session_key(), PLAINTEXT, &device());
    assert_eq!(r, Err(malformed("capsule does not match the key id")));
    assert_eq!(key_id_for(&fame().capsule), key_id(&fame().capsule));
}

#[test]
fn reserved_flag_bits_are_rejected() {
    for bit in 5..8 {
        let mut raw = RawEnvelope::new(true, true, 1, PLAINTEXT);
        raw.flags |= 1 << bit;
        assert_eq!(ParsedEnvelope::parse(&raw.build()).map(|_| ()), Err(malformed("reserved flag bits set")), "{bit}");
    }
    // Bit 4 (batch signature, §6.6) on a single-signed envelope: its signature is read as size, index and path.
    let mut raw = RawEnvelope::new(true, true, 1, PLAINTEXT);
    raw.flags |= 0x10;
    assert!(ParsedEnvelope::parse(&raw.build()).is_err());
    // The defined bits must match the fields present: a capsule flag without a capsule misreads the rest.
    let mut raw = RawEnvelope::new(false, false, 1, PLAINTEXT);
    raw.flags = 0x01;
    assert!(ParsedEnvelope::parse(&raw.build()).is_err());
}

#[test]
fn unsigned_envelopes_round_trip_and_refuse_signature_checks() {
    let id = publisher();
    let parts = EnvelopeParts {
        publisher: &id,
        sequence: 3,
        timestamp_ms: 5,
        capsule: None,
        credential: None,
        retained: false,
    };
    let bytes = ok(seal_envelope_unsigned(TOPIC, &parts, &session_key(), PLAINTEXT));
    let signed = seal(3, false, false, PLAINTEXT);
    assert_eq!(bytes.len() + 64, signed.len(), "64 bytes shorter than the signed envelope");
    let envelope = parse(&bytes);
    assert!(!envelope.is_signed() && parse(&signed).is_signed());
    // No signature to check: a verifier that requires one is told so, whatever key it holds.
    assert_eq!(envelope.verify_signature(TOPIC, &device().verifying_key()).map(|_| ()), Err(Error::Unsigned));
    assert_eq!(ok(ok(envelope.accept_unsigned(TOPIC)).open(&session_key())).as_slice(), PLAINTEXT);
    // A signed envelope is never accepted as unsigned: its signature must be checked.
    assert!(matches!(parse(&signed).accept_unsigned(TOPIC), Err(Error::Malformed { .. })));
    // The AEAD still binds the topic, the header (the unsigned flag included) and every ciphertext byte.
    let moved = ok(envelope.accept_unsigned("plant/berlin/hall-4/temperature"));
    assert_eq!(moved.open(&session_key()), Err(Error::DecryptionFailed));
    for at in [6, 8, bytes.len() - 20, bytes.len() - 1] {
        let mut tampered = bytes.clone();
        tampered[at] ^= 1;
        let r = ParsedEnvelope::parse(&tampered)
            .and_then(|e| e.accept_unsigned(TOPIC).and_then(|v| v.open(&session_key())).map(|_| ()));
        assert!(r.is_err(), "byte {at} flipped");
    }
    // Capsules and credentials travel only signed.
    for (capsule, credential) in [(Some(fame().capsule.as_slice()), None), (None, Some(b"cred".as_slice()))] {
        let parts = EnvelopeParts { capsule, credential, ..parts };
        let r = seal_envelope_unsigned(TOPIC, &parts, &session_key(), PLAINTEXT);
        assert_eq!(r, Err(malformed("an unsigned envelope cannot carry a capsule or a credential")));
    }
    // Retained envelopes travel only signed, too.
    let retained = EnvelopeParts { retained: true, ..parts };
    let r = seal_envelope_unsigned(TOPIC, &retained, &session_key(), PLAINTEXT);
    assert_eq!(r, Err(malformed("an unsigned envelope cannot be sealed as retained")));
}

#[test]
fn the_claimed_publisher_is_read_from_the_header_alone() {
    let bytes = seal(4, true, true, PLAINTEXT);
    assert_eq!(smqtt_wire::claimed_publisher(&bytes), Some(PUBLISHER));
    // Only the first bytes count: a damaged body still names its publisher (for queueing, not for trust).
    assert_eq!(smqtt_wire::claimed_publisher(&bytes[..8 + PUBLISHER.len()]), Some(PUBLISHER));
    for junk in [&b""[..], b"SMQW", b"SMQW\x01\x02\x00", b"plain text payload", &bytes[..8 + PUBLISHER.len() - 1]] {
        assert_eq!(smqtt_wire::claimed_publisher(junk), None, "{junk:?}");
    }
    let mut bad = bytes.clone();
    bad[8] = b' ';
    assert_eq!(smqtt_wire::claimed_publisher(&bad), None, "not a device id");
}

#[test]
fn the_retained_mark_is_authenticated() {
    let id = publisher();
    let cred = credential();
    let parts = EnvelopeParts {
        publisher: &id,
        sequence: 4,
        timestamp_ms: 6,
        capsule: Some(fame().capsule.as_slice()),
        credential: Some(cred.as_slice()),
        retained: true,
    };
    let bytes = ok(seal_envelope(TOPIC, &parts, &session_key(), PLAINTEXT, &device()));
    let envelope = parse(&bytes);
    assert!(envelope.is_sealed_retained());
    assert_eq!(receive(&bytes, TOPIC), Ok(PLAINTEXT.to_vec()));
    let live = seal(4, true, true, PLAINTEXT);
    assert!(!parse(&live).is_sealed_retained());
    // Flipping the mark either way breaks the signature, and re-signing does not get past the AEAD.
    for original in [&bytes, &live] {
        let mut flipped = original.clone();
        flipped[6] ^= 0x08;
        assert_eq!(receive(&flipped, TOPIC).map(|_| ()), Err(Error::BadSignature));
        let resigned = resign(&flipped, TOPIC);
        assert_eq!(receive(&resigned, TOPIC).map(|_| ()), Err(Error::DecryptionFailed));
    }
}

#[test]
fn the_wrong_session_key_fails() {
    let bytes = seal(1, false, false, PLAINTEXT);
    let envelope = parse(&bytes);
    let other = SessionKey::new(&fame().other_data_key, &fame().other_capsule);
    let verified = ok(envelope.verify_signature(TOPIC, &device().verifying_key()));
    assert_eq!(verified.open(&other).map(|_| ()), Err(Error::UnknownKey));
    // The right key id with the wrong key bytes: the AEAD refuses.
    let impostor = SessionKey::from_raw_for_tests(fame().other_data_key.expose_secret(), session_key().key_id());
    assert_eq!(verified.open(&impostor).map(|_| ()), Err(Error::DecryptionFailed));
}

#[test]
fn field_bounds_are_enforced() {
    let id = publisher();
    let parts = |capsule, credential| EnvelopeParts {
        publisher: &id,
        sequence: 0,
        timestamp_ms: 0,
        capsule,
        credential,
        retained: false,
    };
    let key = session_key();
    let max = vec![1u8; MAX_PAYLOAD];
    let bytes = ok(seal_envelope(TOPIC, &parts(None, None), &key, &max, &device()));
    assert_eq!(receive(&bytes, TOPIC).map(|p| p.len()), Ok(MAX_PAYLOAD));
    let over = vec![1u8; MAX_PAYLOAD + 1];
    assert!(matches!(
        seal_envelope(TOPIC, &parts(None, None), &key, &over, &device()),
        Err(Error::LimitExceeded { .. })
    ));
    let big = vec![1u8; MAX_CREDENTIAL_LEN + 1];
    let r = seal_envelope(TOPIC, &parts(None, Some(&big)), &key, b"", &device());
    assert!(matches!(r, Err(Error::LimitExceeded { .. })));
    let r = seal_envelope(TOPIC, &parts(None, Some(b"")), &key, b"", &device());
    assert_eq!(r, Err(malformed("empty credential")));
    let r = seal_envelope(TOPIC, &parts(Some(b""), None), &key, b"", &device());
    assert_eq!(r, Err(malformed("empty capsule")));
    let big = vec![1u8; MAX_CAPSULE_LEN + 1];
    let r = seal_envelope(TOPIC, &parts(Some(&big), None), &key, b"", &device());
    assert!(matches!(r, Err(Error::LimitExceeded { .. })));
    for bad in ["", "a/+", "#", "a\0b", &"x".repeat(1025)] {
        let r = seal_envelope(bad, &parts(None, None), &key, b"", &device());
        assert!(matches!(r, Err(Error::InvalidTopic(_))), "{bad:?}");
    }

    let huge = vec![0u8; MAX_ENVELOPE_LEN + 1];
    assert!(matches!(ParsedEnvelope::parse(&huge), Err(Error::LimitExceeded { .. })));
    let check = |f: &dyn Fn(&mut RawEnvelope), reason| {
        let mut raw = RawEnvelope::new(true, true, 1, PLAINTEXT);
        f(&mut raw);
        assert_eq!(ParsedEnvelope::parse(&raw.build()).map(|_| ()), Err(malformed(reason)), "{reason}");
    };
    check(&|r| r.ciphertext_len = Some(15), "ciphertext length out of range");
    check(&|r| r.ciphertext_len = Some((MAX_PAYLOAD + 17) as u32), "ciphertext length out of range");
    check(&|r| r.ciphertext_len = Some(u32::MAX), "ciphertext length out of range");
    check(&|r| r.credential = Some(Vec::new()), "credential length out of range");
    check(&|r| r.capsule = Some(Vec::new()), "capsule length out of range");
    check(&|r| r.publisher = Vec::new(), "publisher length out of range");
    check(&|r| r.publisher = vec![b'a'; 65], "publisher length out of range");
    check(&|r| r.publisher = b"sensor 7".to_vec(), "invalid publisher");
    check(&|r| r.publisher = b"..".to_vec(), "invalid publisher");
    check(&|r| r.publisher = vec![0xc3, 0xa4], "invalid publisher");
    check(&|r| r.kind = 1, "wrong kind");
    check(&|r| r.version = 2, "unsupported version");
    // An oversized capsule length field is refused before the remaining input is consulted.
    let mut raw = RawEnvelope::new(true, false, 1, PLAINTEXT);
    raw.capsule = Some(vec![0; MAX_CAPSULE_LEN + 1]);
    assert_eq!(ParsedEnvelope::parse(&raw.build()).map(|_| ()), Err(malformed("capsule length out of range")));
    // A 64-byte publisher id is fine.
    let long = ok(DeviceId::new(&"p".repeat(64)));
    let bytes =
        ok(seal_envelope(TOPIC, &EnvelopeParts { publisher: &long, ..parts(None, None) }, &key, b"", &device()));
    assert_eq!(bytes.len(), envelope_overhead(64));
    assert_eq!(parse(&bytes).publisher(), &long);
}

#[test]
fn envelopes_and_credentials_do_not_cross() {
    let bytes = seal(1, false, false, PLAINTEXT);
    assert_eq!(
        UnverifiedCredential::from_bytes(&bytes).map(|_| ()),
        Err(Error::Malformed { what: "credential", reason: "wrong kind" })
    );
    assert_eq!(ParsedEnvelope::parse(&credential()).map(|_| ()), Err(malformed("wrong kind")));
}

#[test]
fn sequence_numbers_change_the_ciphertext_and_debug_output_is_safe() {
    let a = seal(1, false, false, PLAINTEXT);
    let b = seal(2, false, false, PLAINTEXT);
    let (ea, eb) = (parse(&a), parse(&b));
    let ct = |bytes: &[u8]| bytes[bytes.len() - 64 - PLAINTEXT.len() - 16..bytes.len() - 64].to_vec();
    assert_ne!(ct(&a), ct(&b));
    assert!(format!("{ea:?}").contains("ciphertext_len: 33"), "{ea:?}");
    assert!(!format!("{eb:?}").contains(&common::hex(&ct(&b))[..8]));
    let key = format!("{:?}", session_key());
    assert!(key.contains("<redacted>") && key.contains(&common::hex(&session_key().key_id())));
    assert!(!key.contains(&common::hex(fame().data_key.expose_secret())[..8]));
}

// The replay window.

fn dev(name: &str) -> DeviceId {
    ok(DeviceId::new(name))
}

#[test]
fn replay_in_order_duplicates_and_reordering() {
    let mut w = ReplayWindow::new(8);
    let p = dev("p");
    for s in 0..3000 {
        assert_eq!(w.check_and_record(&p, [1; 16], s), Ok(()), "{s}");
        assert_eq!(w.check_and_record(&p, [1; 16], s), Err(Error::Replay), "{s}");
    }
    // Out of order within the window: a gap filled later, in reverse.
    let mut w = ReplayWindow::new(8);
    assert_eq!(w.check_and_record(&p, [1; 16], 5000), Ok(()));
    for s in (5000 - 1023..5000).rev() {
        assert_eq!(w.check_and_record(&p, [1; 16], s), Ok(()), "{s}");
    }
    for s in 5000 - 1023..=5000 {
        assert_eq!(w.check_and_record(&p, [1; 16], s), Err(Error::Replay), "{s}");
    }
    // Too old: exactly the window below the top.
    assert_eq!(w.check_and_record(&p, [1; 16], 5000 - REPLAY_WINDOW), Err(Error::Replay));
    assert_eq!(w.check_and_record(&p, [1; 16], 0), Err(Error::Replay));
    // A jump forward makes everything that fell out of the window too old, and keeps what stayed in.
    let mut w = ReplayWindow::new(8);
    for s in [10, 12, 14] {
        assert_eq!(w.check_and_record(&p, [2; 16], s), Ok(()));
    }
    assert_eq!(w.check_and_record(&p, [2; 16], 10 + 1023), Ok(()));
    assert_eq!(w.check_and_record(&p, [2; 16], 10), Err(Error::Replay));
    assert_eq!(w.check_and_record(&p, [2; 16], 11), Ok(()));
    assert_eq!(w.check_and_record(&p, [2; 16], 12), Err(Error::Replay));
    assert_eq!(w.check_and_record(&p, [2; 16], 13), Ok(()));
    // Top 2059, window 1036..=2059: 1036 and 1037 share the slots of 12 and 13, which the slide cleared.
    assert_eq!(w.check_and_record(&p, [2; 16], 11 + 2 * 1024), Ok(()));
    assert_eq!(w.check_and_record(&p, [2; 16], 12 + 1024), Ok(()));
    assert_eq!(w.check_and_record(&p, [2; 16], 13 + 1024), Ok(()));
    assert_eq!(w.check_and_record(&p, [2; 16], 12 + 1024), Err(Error::Replay));
    assert_eq!(w.check_and_record(&p, [2; 16], 11 + 1024), Err(Error::Replay), "just below the window");
    assert_eq!(w.check_and_record(&p, [2; 16], 10 + 1023), Err(Error::Replay), "seen, and below the window");
}

#[test]
fn replay_sessions_are_separate() {
    let mut w = ReplayWindow::new(8);
    let (a, b) = (dev("a"), dev("b"));
    assert_eq!(w.check_and_record(&a, [1; 16], 0), Ok(()));
    assert_eq!(w.check_and_record(&a, [2; 16], 0), Ok(()));
    assert_eq!(w.check_and_record(&b, [1; 16], 0), Ok(()));
    assert_eq!(w.check_and_record(&a, [1; 16], 0), Err(Error::Replay));
    assert_eq!(w.check_and_record(&b, [2; 16], 0), Ok(()));
    assert_eq!(w.len(), 4);
}

#[test]
fn replay_tracking_is_bounded_least_recently_used_first() {
    let mut w = ReplayWindow::new(3);
    assert!(w.is_empty());
    let p = dev("p");
    for k in 1..=3u8 {
        assert_eq!(w.check_and_record(&p, [k; 16], 100), Ok(()));
    }
    // Session 1 is used again, so 2 is the least recently used when 4 arrives.
    assert_eq!(w.check_and_record(&p, [1; 16], 100), Err(Error::Replay));
    assert_eq!(w.check_and_record(&p, [4; 16], 100), Ok(()));
    assert_eq!(w.len(), 3);
    assert_eq!(w.check_and_record(&p, [1; 16], 100), Err(Error::Replay), "1 was kept");
    assert_eq!(w.check_and_record(&p, [3; 16], 100), Err(Error::Replay), "3 was kept");
    assert_eq!(w.check_and_record(&p, [4; 16], 100), Err(Error::Replay), "4 was kept");
    assert_eq!(w.check_and_record(&p, [2; 16], 100), Ok(()), "2 was evicted and forgotten");
    assert_eq!(w.len(), 3);

    // Many publishers and sessions: never more than the capacity, and the newest ones are remembered.
    let mut w = ReplayWindow::new(100);
    for i in 0..10_000u32 {
        let p = dev(&format!("d{}", i % 37));
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&i.to_be_bytes());
        assert_eq!(w.check_and_record(&p, k, u64::from(i)), Ok(()));
        assert!(w.len() <= 100);
    }
    assert_eq!(w.len(), 100);
    for i in 9_900..10_000u32 {
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&i.to_be_bytes());
        assert_eq!(w.check_and_record(&dev(&format!("d{}", i % 37)), k, u64::from(i)), Err(Error::Replay), "{i}");
    }
    assert_eq!(format!("{w:?}"), "ReplayWindow { sessions: 100, capacity: 100 }");
    let mut tiny = ReplayWindow::new(0);
    assert_eq!(tiny.capacity(), 1);
    assert_eq!(tiny.check_and_record(&p, [1; 16], 0), Ok(()));
    assert_eq!(tiny.check_and_record(&p, [1; 16], 0), Err(Error::Replay));
}

fn topic() -> impl Strategy<Value = String> {
    "[a-z0-9$ /_.-]{1,24}(/[a-zA-Z0-9é😀]{0,8}){0,3}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..4096)) {
        let _ = receive(&bytes, TOPIC);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(flags in 0u8..4, body in vec(any::<u8>(), 0..2048)) {
        let mut bytes = vec![b'S', b'M', b'Q', b'W', 1, 2, flags];
        bytes.extend_from_slice(&body);
        let _ = receive(&bytes, TOPIC);
    }

    #[test]
    fn mutated_envelopes_never_panic_and_never_pass(
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let good = seal(9, true, true, PLAINTEXT);
        let mut bytes = good.clone();
        for (at, value, op) in edits {
            let i = at.index(bytes.len().max(1));
            match op {
                0 if i < bytes.len() => bytes[i] = value,
                1 => bytes.insert(i.min(bytes.len()), value),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        prop_assume!(bytes != good);
        prop_assert!(receive(&bytes, TOPIC).is_err());
    }

    #[test]
    fn round_trips(
        plaintext in vec(any::<u8>(), 0..4096),
        topic in topic(),
        sequence in any::<u64>(),
        timestamp_ms in any::<u64>(),
        with_capsule in any::<bool>(),
        with_credential in any::<bool>(),
        retained in any::<bool>(),
    ) {
        prop_assume!(smqtt_wire::validate_topic(&topic).is_ok());
        let id = publisher();
        let cred = credential();
        let parts = EnvelopeParts {
            publisher: &id,
            sequence,
            timestamp_ms,
            capsule: with_capsule.then_some(fame().capsule.as_slice()),
            credential: with_credential.then_some(cred.as_slice()),
            retained,
        };
        let bytes = ok(seal_envelope(&topic, &parts, &session_key(), &plaintext, &device()));
        let envelope = ok(ParsedEnvelope::parse(&bytes));
        prop_assert_eq!(envelope.is_sealed_retained(), retained);
        prop_assert_eq!(bytes[6] & 0x08 != 0, retained);
        prop_assert_eq!((envelope.sequence(), envelope.timestamp_ms()), (sequence, timestamp_ms));
        prop_assert_eq!(envelope.capsule().is_some(), with_capsule);
        prop_assert_eq!(envelope.credential().is_some(), with_credential);
        prop_assert_eq!(envelope.ciphertext_len(), plaintext.len() + 16);
        let verified = ok(envelope.verify_signature(&topic, &device().verifying_key()));
        let opened = ok(verified.open(&session_key()));
        prop_assert_eq!(opened.as_slice(), &plaintext[..]);
        let other = format!("{topic}/x");
        let refused = envelope.verify_signature(&other, &device().verifying_key()).map(|_| ());
        prop_assert_eq!(refused, Err(Error::BadSignature));
        prop_assert_eq!(envelope.open_unverified(&other, &session_key()).map(|_| ()), Err(Error::DecryptionFailed));
    }
}
