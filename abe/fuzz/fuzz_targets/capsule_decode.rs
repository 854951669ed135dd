//! Capsule decoding never panics, and accepts only canonical encodings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smqtt_abe::Capsule;

fuzz_target!(|data: &[u8]| {
    if let Ok(capsule) = Capsule::from_bytes(data) {
        assert_eq!(capsule.to_bytes(), data, "accepted a non-canonical capsule");
    }
});
