//! Epoch statement and enrollment-token decoding never panic on any text; whatever verifies under the fixture
//! authority key re-encodes to the same statement text, and no other key verifies it.
//!
//! The authority key is the fixture's (seed 0x11 × 32, `wire/tests/common/mod.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smqtt_wire::{enrollment_token_authority, EpochStatement, SigningKey};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = enrollment_token_authority(&text);
    let authority = SigningKey::from_bytes(&[0x11; 32]).verifying_key();
    if let Ok(statement) = EpochStatement::parse(&text) {
        if let Ok(verified) = statement.clone().verify(&authority) {
            assert_eq!(verified.to_text(), text.trim());
            let other = SigningKey::from_bytes(&[0x12; 32]).verifying_key();
            assert!(statement.verify(&other).is_err());
        }
    }
});
