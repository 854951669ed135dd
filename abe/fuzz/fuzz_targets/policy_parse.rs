//! Policy text: parsing never panics; an accepted policy survives print → parse and JSON → parse unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smqtt_abe::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(policy) = Policy::parse(text) else { return };
    let printed = policy.to_string();
    assert_eq!(Policy::parse(&printed), Ok(policy.clone()), "print/parse of {text:?} via {printed:?}");
    let json = policy.to_json();
    assert_eq!(Policy::from_json(&json), Ok(policy), "JSON round trip of {text:?} via {json}");
});
