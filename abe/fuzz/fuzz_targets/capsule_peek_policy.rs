//! `Capsule::peek_policy` (what a subscriber reads from every capsule before decoding a single point, to drop
//! capsules its key cannot open) never panics; a policy it returns prints back to the canonical text it was
//! stored as and parses again to itself; and it agrees with the full decoder: whatever `Capsule::from_bytes`
//! accepts, `peek_policy` accepts with the same policy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smqtt_abe::{Capsule, Policy};

fuzz_target!(|data: &[u8]| {
    let peeked = Capsule::peek_policy(data);
    if let Ok(policy) = &peeked {
        let text = policy.to_string();
        assert_eq!(Policy::parse(&text).as_ref(), Ok(policy), "peeked policy {text:?} does not parse back");
        assert!(!text.is_empty(), "empty policy");
        assert!(data.windows(text.len()).any(|w| w == text.as_bytes()), "peeked policy is not in the input");
    }
    if let Ok(capsule) = Capsule::from_bytes(data) {
        assert_eq!(peeked.as_ref().ok(), Some(capsule.policy()), "from_bytes accepted what peek_policy refused");
    }
});
