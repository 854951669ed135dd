//! Key attribute lists: parsing never panics; an accepted list survives Display → parse unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smqtt_abe::AttributeSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(set) = AttributeSet::parse(text) else { return };
    let printed = set.to_string();
    assert_eq!(AttributeSet::parse(&printed), Ok(set), "print/parse of {text:?} via {printed:?}");
});
