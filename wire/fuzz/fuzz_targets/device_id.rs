//! Device ids (the MQTT username, file name and URL segment every message names): `DeviceId::new` never
//! panics, agrees with a byte-class oracle, and an accepted id prints back to exactly its input.
//!
//! Input: any bytes; non-UTF-8 input is checked through its lossy conversion (the parser takes `&str`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smqtt_wire::DeviceId;

fn oracle(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s != "."
        && s != ".."
        && s.chars().all(|c| matches!(c, 'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '-'))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = DeviceId::new(&text);
    assert_eq!(parsed.is_ok(), oracle(&text), "DeviceId::new({text:?})");
    let Ok(id) = parsed else { return };
    assert_eq!(id.as_str(), text);
    assert_eq!(id.to_string().parse::<DeviceId>().as_ref(), Ok(&id));
});
