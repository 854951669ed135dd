//! `claimed_publisher` (run on every delivery before any parsing, to sort deliveries into per-publisher
//! queues) never panics, agrees with an index-by-index oracle written from `docs/wire.md` §6 (magic `SMQW`,
//! version 1, kind 2, flags, `u8` id length, id), returns a slice of the input at offset 8, and names the same
//! publisher as `ParsedEnvelope::parse` whenever that accepts the input.
//!
//! Input: bytes (an envelope).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smqtt_wire::{claimed_publisher, DeviceId, ParsedEnvelope};

fn oracle(bytes: &[u8]) -> Option<&str> {
    if bytes.len() < 8 || &bytes[..4] != b"SMQW" || bytes[4] != 1 || bytes[5] != 2 {
        return None;
    }
    let len = usize::from(bytes[7]);
    if bytes.len() < 8 + len {
        return None;
    }
    let id = std::str::from_utf8(&bytes[8..8 + len]).ok()?;
    DeviceId::new(id).ok()?;
    Some(id)
}

fuzz_target!(|data: &[u8]| {
    let claimed = claimed_publisher(data);
    assert_eq!(claimed, oracle(data));
    if let Some(id) = claimed {
        assert_eq!(id.as_ptr(), data[8..].as_ptr(), "not read from the header");
    }
    if let Ok(envelope) = ParsedEnvelope::parse(data) {
        assert_eq!(claimed, Some(envelope.publisher().as_str()));
    }
});
