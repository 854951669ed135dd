//! Policy JSON: decoding never panics; an accepted policy survives JSON → decode and print → parse unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smqtt_abe::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(policy) = Policy::from_json(text) else { return };
    let json = policy.to_json();
    assert_eq!(Policy::from_json(&json), Ok(policy.clone()), "JSON round trip of {text:?} via {json}");
    let printed = policy.to_string();
    assert_eq!(Policy::parse(&printed), Ok(policy), "print/parse of {text:?} via {printed:?}");
});
