//! FAME end to end: correctness against a boolean oracle, and negative tests that run the pairing equation
//! itself with keys that must not decrypt (bypassing the satisfaction pre-check via `hazmat`).

mod common;

use std::sync::OnceLock;

use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use smqtt_abe::hazmat::{encapsulate_raw, forced_decapsulate};
use smqtt_abe::{seal, setup, AttributeSet, Capsule, Error, MasterKey, Policy, PublicKey, UserKey};

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn params() -> &'static (PublicKey, MasterKey) {
    static PARAMS: OnceLock<(PublicKey, MasterKey)> = OnceLock::new();
    PARAMS.get_or_init(|| setup(&mut rng(1)).unwrap_or_else(|e| panic!("{e}")))
}

fn policy(text: &str) -> Policy {
    Policy::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn key(attrs: &str, seed: u64) -> UserKey {
    let (pk, msk) = params();
    let set = AttributeSet::parse(attrs).unwrap_or_else(|e| panic!("{attrs}: {e}"));
    msk.keygen(pk, &set, &mut rng(seed)).unwrap_or_else(|e| panic!("keygen {attrs}: {e}"))
}

/// Asserts that `key` fails in the pairing equation on a fresh capsule for `text`: the raw K′ differs from K
/// and the CCA check rejects it. `donors` lend key parts (collusion).
fn assert_math_refuses(text: &str, key: &UserKey, donors: &[&UserKey]) {
    let (pk, _) = params();
    let (_, capsule, raw) = encapsulate_raw(pk, &policy(text), &mut rng(99)).unwrap_or_else(|e| panic!("{e}"));
    let (forced, result) = forced_decapsulate(pk, &capsule, key, donors);
    assert_ne!(forced, raw, "{text}: the pairing equation produced the real K");
    assert_eq!(result.err(), Some(Error::DecryptionFailed), "{text}");
}

#[test]
fn round_trip_for_every_gate_kind() {
    let (pk, _) = params();
    let alice = key("role:operator, site:berlin, dept:ops, clearance:high, level = 5, zone:eu", 2);
    for text in [
        "(role:operator and site:berlin) or role:admin",
        "2 of (dept:ops, dept:sec, clearance:high)",
        "level >= 3 and zone:eu",
        "level == 5",
        "level < 6 and level > 4",
        "role:operator and site:berlin and dept:ops and clearance:high and zone:eu",
        "role:admin or role:root or zone:eu",
    ] {
        let (data_key, capsule) = pk.encapsulate(&policy(text), &mut rng(3)).unwrap_or_else(|e| panic!("{e}"));
        let decoded = Capsule::from_bytes(&capsule.to_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(alice.decapsulate(pk, &decoded), Ok(data_key), "{text}");
    }
}

#[test]
fn peeking_at_a_capsule_policy_reads_no_point() {
    let (pk, _) = params();
    let alice = key("role:operator, site:berlin", 2);
    for (text, satisfied) in [("(role:operator and site:berlin) or role:admin", true), ("role:admin", false)] {
        let (_, capsule) = pk.encapsulate(&policy(text), &mut rng(3)).unwrap_or_else(|e| panic!("{e}"));
        let mut bytes = capsule.to_bytes();
        let peeked = Capsule::peek_policy(&bytes).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(&peeked, capsule.policy(), "{text}");
        assert_eq!(alice.satisfies(&peeked), satisfied, "{text}");
        // A point destroyed after the policy: the peek does not notice, the full decoder does.
        let last = bytes.len() - 40;
        bytes[last] ^= 0xff;
        assert_eq!(Capsule::peek_policy(&bytes).as_ref(), Ok(capsule.policy()), "{text}");
        assert!(Capsule::from_bytes(&bytes).is_err(), "{text}");
        // The header and the policy are still checked.
        assert!(Capsule::peek_policy(&bytes[..40]).is_err(), "{text}");
        bytes[0] ^= 1;
        assert!(Capsule::peek_policy(&bytes).is_err(), "{text}");
    }
}

#[test]
fn keys_that_do_not_satisfy_are_refused_before_any_pairing() {
    let (pk, _) = params();
    let bob = key("role:operator, site:paris, level = 2", 4);
    for text in ["(role:operator and site:berlin) or role:admin", "level >= 3", "level == 5"] {
        let (_, capsule) = pk.encapsulate(&policy(text), &mut rng(5)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bob.decapsulate(pk, &capsule), Err(Error::PolicyNotSatisfied), "{text}");
    }
}

#[test]
fn key_with_no_matching_attribute_fails_in_the_pairing_equation() {
    assert_math_refuses("role:admin", &key("role:guest", 6), &[]);
    assert_math_refuses("a and b", &key("c", 6), &[]);
}

#[test]
fn key_with_one_leaf_of_an_and_fails_in_the_pairing_equation() {
    assert_math_refuses("a and b", &key("a", 7), &[]);
    assert_math_refuses("a and b and c", &key("a, c", 7), &[]);
    assert_math_refuses("site:berlin and level >= 3", &key("site:berlin, level = 2", 7), &[]);
}

#[test]
fn key_with_k_minus_one_of_a_threshold_fails_in_the_pairing_equation() {
    assert_math_refuses("2 of (a, b, c)", &key("a", 8), &[]);
    assert_math_refuses("3 of (a, b, c, d)", &key("a, b", 8), &[]);
}

#[test]
fn colluding_partial_keys_fail_in_the_pairing_equation() {
    let a = key("a", 9);
    let b = key("b", 10);
    assert_math_refuses("a and b", &a, &[&b]);
    assert_math_refuses("a and b", &b, &[&a]);
    let third = key("c", 11);
    assert_math_refuses("2 of (a, b, c)", &a, &[&third]);
}

#[test]
fn forced_path_agrees_with_honest_decapsulation_for_satisfying_keys() {
    // Guards the negative tests above: the forced path is the same math, so it must succeed when it should.
    let (pk, _) = params();
    let (data_key, capsule, raw) =
        encapsulate_raw(pk, &policy("a and (b or c)"), &mut rng(12)).unwrap_or_else(|e| panic!("{e}"));
    let (forced, result) = forced_decapsulate(pk, &capsule, &key("a, c", 13), &[]);
    assert_eq!(forced, raw);
    assert_eq!(result, Ok(data_key));
}

#[test]
fn two_keygens_for_the_same_set_are_independent_and_both_work() {
    let (pk, _) = params();
    let k1 = key("a, b", 14);
    let k2 = key("a, b", 15);
    assert_ne!(*k1.to_bytes(), *k2.to_bytes());
    let (data_key, capsule) = pk.encapsulate(&policy("a and b"), &mut rng(16)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(k1.decapsulate(pk, &capsule), Ok(data_key.clone()));
    assert_eq!(k2.decapsulate(pk, &capsule), Ok(data_key));
    assert_math_refuses("a and b and c", &k1, &[]);
}

#[test]
fn attribute_names_that_collided_in_peer_libraries_do_not_decrypt_anything() {
    // "01" made rabe/Charm keys decrypt everything (pitfalls.md §2); "0 0" did the same in GoFE.
    for name in ["\"01\"", "\"0\"", "\"02\"", "\"0 0\"", "\"0|1\"", "\"011\"", "ROLE", "role_admin"] {
        let k = key(name, 17);
        assert_math_refuses("ROLE_ADMIN", &k, &[]);
        assert_math_refuses("x and y", &k, &[]);
    }
}

#[test]
fn user_key_round_trips_through_its_encoding() {
    let (pk, _) = params();
    let k = key("role:operator, level = 7", 18);
    let decoded = UserKey::from_bytes(&k.to_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(*decoded.to_bytes(), *k.to_bytes());
    let (data_key, capsule) = pk.encapsulate(&policy("level >= 7"), &mut rng(19)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(decoded.decapsulate(pk, &capsule), Ok(data_key));
    let pk2 = PublicKey::from_bytes(&pk.to_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pk2.id(), pk.id());
}

#[test]
fn objects_from_other_parameters_are_reported_as_such() {
    let (other_pk, other_msk) = setup(&mut rng(20)).unwrap_or_else(|e| panic!("{e}"));
    let (pk, _) = params();
    let k = key("a", 21);
    let (_, capsule) = other_pk.encapsulate(&policy("a"), &mut rng(22)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(k.decapsulate(pk, &capsule), Err(Error::ParameterMismatch));
    let set = AttributeSet::parse("a").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(other_msk.keygen(pk, &set, &mut rng(23)), Err(Error::ParameterMismatch)));
}

#[test]
fn secrets_print_redacted() {
    let (_, msk) = params();
    let k = key("role:operator", 24);
    let (pk, _) = params();
    let (data_key, _) = pk.encapsulate(&policy("role:operator"), &mut rng(25)).unwrap_or_else(|e| panic!("{e}"));
    let shown = format!("{msk:?} {k:?} {data_key:?}");
    assert!(shown.contains("role:operator") && shown.contains("redacted"), "{shown}");
    let secret_hex: String = data_key.expose_secret().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!shown.contains(&secret_hex[..16]));
}

#[test]
fn sealed_messages_open_only_for_satisfying_keys() {
    let (pk, _) = params();
    let sealed = seal::seal(pk, &policy("site:berlin and role:operator"), b"23.5 C", &mut rng(26))
        .unwrap_or_else(|e| panic!("{e}"));
    let reader = key("site:berlin, role:operator", 27);
    assert_eq!(seal::open(pk, &reader, &sealed).map(|p| p.to_vec()), Ok(b"23.5 C".to_vec()));
    assert_eq!(seal::open(pk, &key("site:berlin", 28), &sealed).err(), Some(Error::PolicyNotSatisfied));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Decryption succeeds exactly when the plain boolean evaluator says the key satisfies the policy, and
    /// an unsatisfying key also fails in the pairing equation.
    #[test]
    fn decryption_matches_the_boolean_oracle(
        policy in common::arb_policy(5),
        attrs in common::arb_attribute_set(),
        seed in any::<u64>(),
    ) {
        let (pk, msk) = params();
        let mut r = rng(seed);
        let key = msk.keygen(pk, &attrs, &mut r).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (_, capsule, raw) = encapsulate_raw(pk, &policy, &mut r).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let result = key.decapsulate(pk, &capsule);
        let expected = policy.is_satisfied_by(&attrs);
        prop_assert_eq!(result.is_ok(), expected, "{} with {}: {:?}", policy, attrs, result);
        if !expected {
            prop_assert_eq!(result.err(), Some(Error::PolicyNotSatisfied));
            let (forced, checked) = forced_decapsulate(pk, &capsule, &key, &[]);
            prop_assert_ne!(forced, raw);
            prop_assert_eq!(checked.err(), Some(Error::DecryptionFailed));
        }
    }
}
