//! Master key decoding never panics, and accepts only canonical encodings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smqtt_abe::MasterKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(msk) = MasterKey::from_bytes(data) {
        assert_eq!(msk.to_bytes().as_slice(), data, "accepted a non-canonical master key");
    }
});
