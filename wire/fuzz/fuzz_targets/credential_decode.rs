//! Credential decoding never panics; whatever verifies under the fixture authority key re-signs to exactly the
//! input (the encoding is canonical and Ed25519 is deterministic).
//!
//! The authority key is the one of `wire/tests/common/mod.rs` (seed 0x11 × 32), which signed the seed corpus's
//! valid credentials (written by `wire/tests/vectors.rs`, see `wire/fuzz/README.md`), so mutations of them reach
//! the signature check, the attribute parser and the validity window.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smqtt_wire::{SigningKey, UnverifiedCredential};

/// Inside the seed credentials' validity window.
const NOW: u64 = 1_700_000_100;

fuzz_target!(|data: &[u8]| {
    let authority = SigningKey::from_bytes(&[0x11; 32]);
    let Ok(unverified) = UnverifiedCredential::from_bytes(data) else { return };
    let device = unverified.device_id().clone();
    let Ok(verified) = unverified.verify(&authority.verifying_key(), NOW) else { return };
    assert_eq!(verified.to_bytes(), data);
    assert_eq!(verified.body().device_id, device);
    let resigned = verified.body().clone().sign(&authority).expect("a verified body signs again");
    assert_eq!(resigned, data, "accepted a non-canonical credential");
    let _ = verified.may_publish("plant/berlin/hall-3/temperature");
});
