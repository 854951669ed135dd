//! CONNECT token checking never panics on any text, client id or username; whatever verifies under the fixture
//! authority key names the claimed username, and the same token for another client id does not verify.
//!
//! The authority key is the fixture's (seed 0x11 × 32, `wire/tests/common/mod.rs`); the input's first byte
//! splits off a client id, the rest is the token (lossily UTF-8).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smqtt_wire::{ConnectToken, SigningKey};

/// Inside the seed credentials' validity window.
const NOW: u64 = 1_700_000_100;

fuzz_target!(|data: &[u8]| {
    let authority = SigningKey::from_bytes(&[0x11; 32]).verifying_key();
    let (split, rest) = data.split_first().map_or((0, data), |(b, rest)| (usize::from(*b), rest));
    let split = split.min(rest.len());
    let client = String::from_utf8_lossy(&rest[..split]);
    let token = String::from_utf8_lossy(&rest[split..]);
    for user in ["sensor-7", ""] {
        if let Ok(verified) = ConnectToken::verify(&token, &client, user, &authority, NOW, 120) {
            assert_eq!(verified.body().device_id.as_str(), user);
            let other = format!("{client}x");
            assert!(ConnectToken::verify(&token, &other, user, &authority, NOW, 120).is_err());
        }
    }
});
