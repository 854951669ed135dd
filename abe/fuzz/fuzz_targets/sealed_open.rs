//! Sealed messages: reading the policy and opening never panic, whatever the bytes.
//!
//! The key pair comes from the same seeded RNG and attribute list as the seed corpus (written by
//! `abe/tests/decoders.rs`, see `abe/fuzz/README.md`), so the corpus's valid messages open and mutations of them
//! reach decapsulation and the AEAD.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use smqtt_abe::{seal, setup, AttributeSet, PublicKey, UserKey};

/// Must match `FIXTURE_SEED` and `FIXTURE_ATTRIBUTES` in `abe/tests/decoders.rs`.
const SEED: u64 = 0x534d_5154_545f_4142;
const ATTRIBUTES: &str = "a, b, level = 5";

fn keys() -> &'static Option<(PublicKey, UserKey)> {
    static KEYS: OnceLock<Option<(PublicKey, UserKey)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(SEED);
        let (pk, msk) = setup(&mut rng).ok()?;
        let attributes = AttributeSet::parse(ATTRIBUTES).ok()?;
        let key = msk.keygen(&pk, &attributes, &mut rng).ok()?;
        Some((pk, key))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((pk, key)) = keys() else { panic!("fixture key generation failed") };
    let policy = seal::sealed_policy(data);
    if seal::open(pk, key, data).is_ok() {
        let readable = matches!(&policy, Ok(policy) if key.satisfies(policy));
        assert!(readable, "opened a message whose policy is not one the key satisfies: {policy:?}");
    }
});
