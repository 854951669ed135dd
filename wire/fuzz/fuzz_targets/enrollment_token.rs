//! Enrollment tokens (`smqtt-enroll-<secret>.<authority key>`, what a device is given out of band and sends
//! to the authority): `enrollment_token_authority` never panics; a token it accepts names its key in canonical
//! base64url (re-encoding the key gives the same text), and when its secret is 32 bytes of canonical base64url
//! the token is exactly `enrollment_token(secret, key)` (after trimming surrounding whitespace).
//!
//! Input: text (lossy UTF-8).
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use smqtt_wire::{enrollment_token, enrollment_token_authority, ENROLL_TOKEN_PREFIX};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(key) = enrollment_token_authority(&text) else { return };
    let rest = text.trim().strip_prefix(ENROLL_TOKEN_PREFIX).expect("accepted tokens have the prefix");
    let (secret, key_text) = rest.split_once('.').expect("accepted tokens pin a key");
    assert_eq!(URL_SAFE_NO_PAD.encode(key.to_bytes()), key_text, "non-canonical key text accepted");
    if let Ok(secret) = <[u8; 32]>::try_from(URL_SAFE_NO_PAD.decode(secret).unwrap_or_default()) {
        assert_eq!(enrollment_token(&secret, &key), text.trim());
    }
});
