//! User key decoding never panics, and accepts only canonical encodings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smqtt_abe::UserKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = UserKey::from_bytes(data) {
        assert_eq!(key.to_bytes().as_slice(), data, "accepted a non-canonical user key");
    }
});
