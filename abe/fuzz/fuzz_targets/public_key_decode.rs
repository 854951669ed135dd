//! Public key decoding never panics, and accepts only canonical encodings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smqtt_abe::PublicKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(pk) = PublicKey::from_bytes(data) {
        assert_eq!(pk.to_bytes(), data, "accepted a non-canonical public key");
    }
});
