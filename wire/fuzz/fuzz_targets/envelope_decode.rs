//! Envelope parsing never panics; whatever parses, verifies and opens under the fixture keys re-seals to exactly
//! the input (the encoding is canonical, ChaCha20-Poly1305 and Ed25519 are deterministic); a batch-signed one
//! (§6.6) verifies with a cache of roots exactly when it verifies without, the root cached or not.
//!
//! The keys and topic are those of `wire/tests/common/envelope.rs`: the publisher key of seed 0x22 × 32 and the
//! data key of its seeded FAME encapsulation, which made the seed corpus's valid envelopes (written by
//! `wire/tests/envelope_vectors.rs`, which also checks that the constants below are current), so mutations of
//! them reach the signature check and the AEAD.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smqtt_wire::{seal_envelope, BatchRoots, EnvelopeParts, ParsedEnvelope, ReplayWindow, SessionKey, SigningKey};

const TOPIC: &str = "plant/berlin/hall-3/temperature";
/// The fixture session's data key (`docs/vectors/wire/envelope-ok.txt`).
const DATA_KEY: &str = "95c94ceb12fa3d39bfa3b4db236a9a7f56af3ec69cf073907d401b37e4f3b30b";

fn data_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&DATA_KEY[2 * i..2 * i + 2], 16).expect("hex");
    }
    key
}

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = ParsedEnvelope::parse(data) else { return };
    assert_eq!(envelope.as_bytes(), data);
    assert!(envelope.ciphertext_len() >= 16);
    if let Some(capsule) = envelope.capsule() {
        assert_eq!(smqtt_wire::key_id_for(capsule), envelope.key_id());
    }
    let publisher = SigningKey::from_bytes(&[0x22; 32]);
    let signed = envelope.verify_signature(TOPIC, &publisher.verifying_key()).is_ok();
    let mut roots = BatchRoots::new(2);
    for _ in 0..2 {
        let cached = envelope.verify_signature_cached(TOPIC, &publisher.verifying_key(), &mut roots).is_ok();
        assert_eq!(cached, signed, "the root cache changed the verdict");
    }
    // Whatever the key id, try the fixture data key under it: that reaches the AEAD for every input.
    let key = SessionKey::from_raw_for_tests(&data_key(), envelope.key_id());
    let Ok(plaintext) = envelope.open_unverified(TOPIC, &key) else { return };
    assert_eq!(plaintext.len() + 16, envelope.ciphertext_len());
    let mut replay = ReplayWindow::new(2);
    assert!(replay.check_and_record(envelope.publisher(), envelope.key_id(), envelope.sequence()).is_ok());
    assert!(replay.check_and_record(envelope.publisher(), envelope.key_id(), envelope.sequence()).is_err());
    if signed && envelope.batch_position().is_none() {
        let parts = EnvelopeParts {
            publisher: envelope.publisher(),
            sequence: envelope.sequence(),
            timestamp_ms: envelope.timestamp_ms(),
            capsule: envelope.capsule(),
            credential: envelope.credential(),
            retained: envelope.is_sealed_retained(),
        };
        let resealed = seal_envelope(TOPIC, &parts, &key, &plaintext, &publisher).expect("an accepted envelope seals");
        assert_eq!(resealed, data, "accepted a non-canonical envelope");
    }
});
