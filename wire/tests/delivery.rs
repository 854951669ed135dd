//! Key delivery: round trips, wrong secrets and contexts, tampering, low-order keys, truncation.

mod common;

use common::{ok, unhex};
use proptest::collection::vec;
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use smqtt_wire::{seal_to, Error, ReplySecret, DELIVERY_OVERHEAD};

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

const CONTEXT: &[u8] = b"request sensor-7 nonce 0123";
const KEY: &[u8] = b"SMQA\x01\x03 an attribute key, really";

#[test]
fn round_trip() {
    let mut rng = rng(1);
    let secret = ReplySecret::generate(&mut rng);
    let sealed = ok(seal_to(&secret.public(), CONTEXT, KEY, &mut rng));
    assert_eq!(sealed.len(), KEY.len() + DELIVERY_OVERHEAD);
    assert_eq!(ok(secret.open(CONTEXT, &sealed)).as_slice(), KEY);
    // Empty plaintext and empty context work too.
    let sealed = ok(seal_to(&secret.public(), b"", b"", &mut rng));
    assert_eq!(ok(secret.open(b"", &sealed)).len(), 0);
}

#[test]
fn each_delivery_uses_a_fresh_ephemeral_key() {
    let mut rng = rng(2);
    let secret = ReplySecret::generate(&mut rng);
    let a = ok(seal_to(&secret.public(), CONTEXT, KEY, &mut rng));
    let b = ok(seal_to(&secret.public(), CONTEXT, KEY, &mut rng));
    assert_ne!(a[..32], b[..32]);
    assert_ne!(a[32..], b[32..]);
}

#[test]
fn the_wrong_secret_fails() {
    let mut rng = rng(3);
    let secret = ReplySecret::generate(&mut rng);
    let other = ReplySecret::generate(&mut rng);
    let sealed = ok(seal_to(&secret.public(), CONTEXT, KEY, &mut rng));
    assert_eq!(other.open(CONTEXT, &sealed).map(|_| ()), Err(Error::DecryptionFailed));
}

#[test]
fn the_wrong_context_fails() {
    let mut rng = rng(4);
    let secret = ReplySecret::generate(&mut rng);
    let sealed = ok(seal_to(&secret.public(), CONTEXT, KEY, &mut rng));
    for context in [&b""[..], b"request sensor-7 nonce 0124", b"request sensor-7 nonce 012", &[CONTEXT, b"\0"].concat()]
    {
        assert_eq!(secret.open(context, &sealed).map(|_| ()), Err(Error::DecryptionFailed), "{context:?}");
    }
}

#[test]
fn every_byte_flip_fails() {
    let mut rng = rng(5);
    let secret = ReplySecret::generate(&mut rng);
    let sealed = ok(seal_to(&secret.public(), CONTEXT, KEY, &mut rng));
    for i in 0..sealed.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut damaged = sealed.clone();
            damaged[i] ^= mask;
            assert_eq!(
                secret.open(CONTEXT, &damaged).map(|_| ()),
                Err(Error::DecryptionFailed),
                "byte {i} ^ {mask:#x}"
            );
        }
    }
}

#[test]
fn truncation_and_extension_fail() {
    let mut rng = rng(6);
    let secret = ReplySecret::generate(&mut rng);
    let sealed = ok(seal_to(&secret.public(), CONTEXT, KEY, &mut rng));
    for len in 0..sealed.len() {
        let r = secret.open(CONTEXT, &sealed[..len]).map(|_| ());
        if len < DELIVERY_OVERHEAD {
            assert!(matches!(r, Err(Error::Malformed { .. })), "length {len}: {r:?}");
        } else {
            assert_eq!(r, Err(Error::DecryptionFailed), "length {len}");
        }
    }
    let mut longer = sealed.clone();
    longer.push(0);
    assert_eq!(secret.open(CONTEXT, &longer).map(|_| ()), Err(Error::DecryptionFailed));
}

/// X25519 public keys whose shared secret with any scalar is all zero: the u-coordinates of the Curve25519
/// torsion points (computed from curve25519-dalek's table) and the usual blocklist of their encodings,
/// including non-canonical ones (≥ p) and the ignored top bit set.
fn low_order_x25519_keys() -> Vec<[u8; 32]> {
    let mut keys: Vec<[u8; 32]> =
        curve25519_dalek::constants::EIGHT_TORSION.iter().map(|p| p.to_montgomery().to_bytes()).collect();
    for hex in [
        "0000000000000000000000000000000000000000000000000000000000000000", // 0
        "0100000000000000000000000000000000000000000000000000000000000000", // 1
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", // order 8
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", // order 8
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p − 1
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p + 1
    ] {
        let bytes: [u8; 32] = unhex(hex).try_into().unwrap_or_else(|_| panic!("32 bytes"));
        keys.push(bytes);
        let mut high = bytes;
        high[31] |= 0x80;
        keys.push(high);
    }
    keys
}

#[test]
fn low_order_reply_keys_are_refused() {
    let mut rng = rng(7);
    let keys = low_order_x25519_keys();
    assert!(keys.len() >= 20);
    for key in keys {
        assert!(matches!(seal_to(&key, CONTEXT, KEY, &mut rng), Err(Error::Malformed { .. })), "{key:02x?}");
    }
}

/// A forger who picks a low-order `eph_pub` knows the shared secret (all zeros) and so the AEAD key: the opener
/// must refuse such a delivery even though its tag is correct.
#[test]
fn a_low_order_ephemeral_key_does_not_open() {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{ChaCha20Poly1305, Nonce};

    let mut rng = rng(8);
    let secret = ReplySecret::generate(&mut rng);
    for eph in low_order_x25519_keys() {
        let salt = [&eph[..], &secret.public()[..]].concat();
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), &[0u8; 32]);
        let mut key = [0u8; 32];
        ok(hk.expand_multi_info(&[b"smqtt/key-delivery/v1", CONTEXT], &mut key).map_err(|e| e.to_string()));
        let aead = ok(ChaCha20Poly1305::new_from_slice(&key).map_err(|e| e.to_string()));
        let body =
            ok(aead.encrypt(&Nonce::from([0u8; 12]), Payload { msg: KEY, aad: CONTEXT }).map_err(|e| e.to_string()));
        let forged = [&eph[..], &body].concat();
        assert_eq!(secret.open(CONTEXT, &forged).map(|_| ()), Err(Error::DecryptionFailed), "{eph:02x?}");
    }
}

#[test]
fn a_failing_rng_is_reported() {
    struct Broken;
    impl rand_core::RngCore for Broken {
        fn next_u32(&mut self) -> u32 {
            0
        }
        fn next_u64(&mut self) -> u64 {
            0
        }
        fn fill_bytes(&mut self, _: &mut [u8]) {}
        fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), rand_core::Error> {
            Err(rand_core::Error::from(
                core::num::NonZeroU32::new(rand_core::Error::CUSTOM_START).unwrap_or(core::num::NonZeroU32::MIN),
            ))
        }
    }
    impl rand_core::CryptoRng for Broken {}
    let secret = ReplySecret::generate(&mut rng(9));
    assert_eq!(seal_to(&secret.public(), CONTEXT, KEY, &mut Broken), Err(Error::Rng));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_round_trips(seed in any::<u64>(), context in vec(any::<u8>(), 0..64), plaintext in vec(any::<u8>(), 0..512)) {
        let mut rng = rng(seed);
        let secret = ReplySecret::generate(&mut rng);
        let sealed = seal_to(&secret.public(), &context, &plaintext, &mut rng).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(secret.open(&context, &sealed).map(|p| p.to_vec()), Ok(plaintext));
    }

    #[test]
    fn arbitrary_sealed_bytes_never_panic_and_never_open(bytes in vec(any::<u8>(), 0..256)) {
        let secret = ReplySecret::generate(&mut rng(10));
        prop_assert!(secret.open(CONTEXT, &bytes).is_err());
    }
}
