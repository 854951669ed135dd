//! Opening a sealed key delivery (`ReplySecret::open`, what a device does with the authority's answer) never
//! panics on any bytes; what opens has exactly 48 bytes of overhead, does not open under another context, and —
//! when it uses the fixture's ephemeral key — re-seals to exactly the input (X25519, HKDF and
//! ChaCha20-Poly1305 are deterministic once the ephemeral secret is fixed).
//!
//! The reply secret, context and ephemeral secret are those of `docs/vectors/wire/key-delivery.txt` (RFC 7748
//! §6.1 keys), whose sealed payload is the `valid` seed, so mutations of it reach the AEAD.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand_core::{CryptoRng, RngCore};
use smqtt_wire::{seal_to, ReplySecret, DELIVERY_OVERHEAD};

const REPLY_SECRET: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const EPHEMERAL_SECRET: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
/// X25519(EPHEMERAL_SECRET, 9): RFC 7748 §6.1's Bob public key.
const EPHEMERAL_PUBLIC: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
/// The key request's signing bytes (`docs/vectors/wire/key-request.txt`).
const CONTEXT: &str = "0873656e736f722d37000000006553f1c8303132333435363738396162636465668520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

fn array(text: &str) -> [u8; 32] {
    hex(text).try_into().expect("32 bytes")
}

/// An "RNG" that hands out the fixture's ephemeral secret.
struct Fixed([u8; 32]);

impl RngCore for Fixed {
    fn next_u32(&mut self) -> u32 {
        u32::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }
    fn next_u64(&mut self) -> u64 {
        u64::from(self.next_u32()) | (u64::from(self.next_u32()) << 32)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.copy_from_slice(&self.0[..dest.len()]);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Fixed {}

fuzz_target!(|data: &[u8]| {
    let secret = ReplySecret::from_bytes(&array(REPLY_SECRET));
    let context = hex(CONTEXT);
    let Ok(plaintext) = secret.open(&context, data) else { return };
    assert_eq!(plaintext.len() + DELIVERY_OVERHEAD, data.len());
    assert!(secret.open(&context[1..], data).is_err(), "opened under another context");
    if data[..32] == array(EPHEMERAL_PUBLIC) {
        let resealed = seal_to(&secret.public(), &context, &plaintext, &mut Fixed(array(EPHEMERAL_SECRET)))
            .expect("an opened delivery seals again");
        assert_eq!(resealed, data, "accepted a non-canonical delivery");
    }
});
