//! Robustness of every decoder against hostile bytes: arbitrary input never panics, damaged encodings
//! (truncated, extended, wrong version or kind, any single bit flipped in a sealed message) are rejected, and
//! whatever is accepted is canonical.
//!
//! Also writes the fuzzers' seed corpus (`abe/fuzz/corpus/<target>/`) when `SMQTT_WRITE_FUZZ_CORPUS=1`:
//!
//! ```text
//! SMQTT_WRITE_FUZZ_CORPUS=1 cargo test --release -p smqtt-abe --test decoders fuzz_corpus
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use proptest::collection::vec;
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use smqtt_abe::encoding::{MAGIC, VERSION};
use smqtt_abe::limits::MAX_POLICY_LEN;
use smqtt_abe::{seal, setup, AttributeSet, Capsule, Error, MasterKey, Policy, PublicKey, UserKey};

/// Seed of the fixture keys. `abe/fuzz/fuzz_targets/sealed_open.rs` derives its key from the same seed and
/// attributes, so that the sealed messages of the corpus open there.
const FIXTURE_SEED: u64 = 0x534d_5154_545f_4142;
/// Attributes of the fixture user key.
const FIXTURE_ATTRIBUTES: &str = "a, b, level = 5";
/// Policy of the fixture capsule and sealed message.
const FIXTURE_POLICY: &str = "a and b";
/// Plaintext of the fixture sealed message.
const PLAINTEXT: &[u8] = b"23.5 C";

/// Keys, a capsule and a sealed message from [`FIXTURE_SEED`], with their encodings.
struct Fixture {
    pk: PublicKey,
    msk: MasterKey,
    key: UserKey,
    pk_bytes: Vec<u8>,
    msk_bytes: Vec<u8>,
    key_bytes: Vec<u8>,
    capsule_bytes: Vec<u8>,
    sealed: Vec<u8>,
}

/// The fixture key pair: `setup` then `keygen` for [`FIXTURE_ATTRIBUTES`] on one RNG seeded with
/// [`FIXTURE_SEED`] (exactly what the `sealed_open` fuzz target does), and that RNG for further use.
fn fixture_keys() -> (PublicKey, MasterKey, UserKey, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(FIXTURE_SEED);
    let (pk, msk) = setup(&mut rng).expect("setup");
    let attributes = AttributeSet::parse(FIXTURE_ATTRIBUTES).expect("fixture attributes parse");
    let key = msk.keygen(&pk, &attributes, &mut rng).expect("keygen");
    (pk, msk, key, rng)
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (pk, msk, key, mut rng) = fixture_keys();
        let policy = Policy::parse(FIXTURE_POLICY).expect("fixture policy parses");
        let (_, capsule) = pk.encapsulate(&policy, &mut rng).expect("encapsulate");
        let sealed = seal::seal(&pk, &policy, PLAINTEXT, &mut rng).expect("seal");
        Fixture {
            pk_bytes: pk.to_bytes(),
            msk_bytes: msk.to_bytes().to_vec(),
            key_bytes: key.to_bytes().to_vec(),
            capsule_bytes: capsule.to_bytes(),
            sealed,
            pk,
            msk,
            key,
        }
    })
}

/// The encoded object types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Object {
    PublicKey,
    MasterKey,
    UserKey,
    Capsule,
    Sealed,
}

const OBJECTS: [Object; 5] = [Object::PublicKey, Object::MasterKey, Object::UserKey, Object::Capsule, Object::Sealed];

impl Object {
    /// The kind byte (the sixth byte of the encoding).
    fn kind(self) -> u8 {
        match self {
            Object::PublicKey => 0x01,
            Object::MasterKey => 0x02,
            Object::UserKey => 0x03,
            Object::Capsule => 0x04,
            Object::Sealed => 0x05,
        }
    }

    /// The fixture's valid encoding.
    fn valid(self) -> &'static [u8] {
        let f = fixture();
        match self {
            Object::PublicKey => &f.pk_bytes,
            Object::MasterKey => &f.msk_bytes,
            Object::UserKey => &f.key_bytes,
            Object::Capsule => &f.capsule_bytes,
            Object::Sealed => &f.sealed,
        }
    }

    /// Decodes `bytes`; what is accepted must re-encode to exactly `bytes`. A sealed message is opened with the
    /// fixture key (its policy must then decode too, and the plaintext be the fixture's).
    fn decode(self, bytes: &[u8]) -> Result<(), Error> {
        match self {
            Object::PublicKey => PublicKey::from_bytes(bytes).map(|x| assert_canonical(bytes, &x.to_bytes())),
            Object::MasterKey => MasterKey::from_bytes(bytes).map(|x| assert_canonical(bytes, &x.to_bytes())),
            Object::UserKey => UserKey::from_bytes(bytes).map(|x| assert_canonical(bytes, &x.to_bytes())),
            Object::Capsule => Capsule::from_bytes(bytes).map(|x| assert_canonical(bytes, &x.to_bytes())),
            Object::Sealed => {
                let f = fixture();
                let policy = seal::sealed_policy(bytes);
                let plaintext = seal::open(&f.pk, &f.key, bytes)?;
                assert!(policy.is_ok(), "opened a message whose policy does not decode: {policy:?}");
                assert_eq!(plaintext.as_slice(), PLAINTEXT, "opened to another plaintext");
                Ok(())
            }
        }
    }
}

#[track_caller]
fn assert_canonical(input: &[u8], encoded: &[u8]) {
    assert!(input == encoded, "accepted a non-canonical encoding:\n{}", hex(input));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds `bytes` to every decoder (the sealed-message ones included); panics are the failure.
fn decode_everything(bytes: &[u8]) {
    for object in OBJECTS {
        let _ = object.decode(bytes);
    }
}

/// `bytes` must be rejected as `object`; the message names the damage.
#[track_caller]
fn assert_rejected(object: Object, bytes: &[u8], damage: &str) {
    if object.decode(bytes).is_ok() {
        panic!("{object:?} {damage} was accepted:\n{}", hex(bytes));
    }
}

#[test]
fn valid_encodings_decode_canonically() {
    for object in OBJECTS {
        let bytes = object.valid();
        assert_eq!(&bytes[..4], MAGIC, "{object:?}");
        assert_eq!(bytes[4], VERSION, "{object:?}");
        assert_eq!(bytes[5], object.kind(), "{object:?}");
        assert_eq!(object.decode(bytes), Ok(()), "{object:?}");
    }
    let f = fixture();
    assert_eq!(seal::sealed_policy(&f.sealed), Policy::parse(FIXTURE_POLICY));
    assert_eq!(f.msk.params_id(), f.pk.id());
}

#[test]
fn every_truncation_is_rejected() {
    for object in OBJECTS {
        let bytes = object.valid();
        for len in 0..bytes.len() {
            assert_rejected(object, &bytes[..len], &format!("truncated to {len} bytes"));
        }
    }
}

#[test]
fn every_single_byte_deletion_is_rejected() {
    for object in OBJECTS {
        let bytes = object.valid();
        for at in 0..bytes.len() {
            let mut damaged = bytes.to_vec();
            damaged.remove(at);
            assert_rejected(object, &damaged, &format!("without its byte {at}"));
        }
    }
}

#[test]
fn an_appended_byte_is_rejected() {
    for object in OBJECTS {
        // Opening a sealed message costs pairings: a few values suffice there (the AEAD tag fails for all).
        let values: Vec<u8> = match object {
            Object::Sealed => vec![0x00, 0x01, 0x80, 0xff],
            _ => (0..=255).collect(),
        };
        for value in values {
            let mut damaged = object.valid().to_vec();
            damaged.push(value);
            assert_rejected(object, &damaged, &format!("with {value:#04x} appended"));
        }
    }
}

#[test]
fn wrong_version_or_kind_is_rejected() {
    for object in OBJECTS {
        for value in 0..=255u8 {
            let mut damaged = object.valid().to_vec();
            damaged[4] = value;
            if value != VERSION {
                let result = object.decode(&damaged);
                assert!(matches!(result, Err(Error::Malformed { .. })), "{object:?} version {value:#04x}: {result:?}");
            }
            let mut damaged = object.valid().to_vec();
            damaged[5] = value;
            if value != object.kind() {
                let result = object.decode(&damaged);
                assert!(matches!(result, Err(Error::Malformed { .. })), "{object:?} kind {value:#04x}: {result:?}");
            }
        }
        for other in OBJECTS {
            if other != object {
                let result = other.decode(object.valid());
                assert!(matches!(result, Err(Error::Malformed { .. })), "{object:?} read as {other:?}: {result:?}");
            }
        }
    }
}

#[test]
fn every_bit_flip_of_a_sealed_message_fails_to_open() {
    let f = fixture();
    assert_eq!(seal::open(&f.pk, &f.key, &f.sealed).map(|p| p.to_vec()), Ok(PLAINTEXT.to_vec()));
    // The AEAD body (ciphertext and tag) is the last PLAINTEXT.len() + 16 bytes.
    let body_start = f.sealed.len() - PLAINTEXT.len() - 16;
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for at in 0..f.sealed.len() {
        for bit in 0..8 {
            let mut damaged = f.sealed.clone();
            damaged[at] ^= 1 << bit;
            let error = match seal::open(&f.pk, &f.key, &damaged) {
                Ok(_) => panic!("opened with bit {bit} of byte {at} flipped:\n{}", hex(&damaged)),
                Err(error) => error,
            };
            if at >= body_start {
                assert_eq!(error, Error::DecryptionFailed, "bit {bit} of AEAD body byte {at}");
            }
            let variant = format!("{error:?}");
            let variant = variant.split([' ', '(']).next().unwrap_or_default().to_owned();
            *outcomes.entry(variant).or_default() += 1;
        }
    }
    eprintln!("{} bit flips of a {}-byte sealed message: {outcomes:?}", 8 * f.sealed.len(), f.sealed.len());
}

/// A valid 6-byte header for `kind`, then `body`.
fn with_header(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(body);
    out
}

fn arb_object() -> impl Strategy<Value = Object> {
    proptest::sample::select(OBJECTS.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..2048)) {
        decode_everything(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(kind in 0u8..=6, body in vec(any::<u8>(), 0..2048)) {
        decode_everything(&with_header(kind, &body));
    }

    /// A header, a parameter id, then a length-prefixed text (a policy or attribute list, so that decoding gets
    /// past it) or arbitrary bytes: reaches the point decoders.
    #[test]
    fn structured_bodies_never_panic(
        kind in 1u8..=5,
        params in any::<[u8; 32]>(),
        text in prop_oneof![
            Just(FIXTURE_POLICY.to_owned()),
            Just(FIXTURE_ATTRIBUTES.to_owned()),
            Just(String::new()),
            "[a-c ,()=<>0-9]{0,24}",
        ],
        declared_len in prop_oneof![Just(None), any::<u32>().prop_map(Some)],
        tail in vec(any::<u8>(), 0..1200),
    ) {
        let mut body = params.to_vec();
        let len = declared_len.unwrap_or(text.len() as u32);
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(text.as_bytes());
        body.extend_from_slice(&tail);
        decode_everything(&with_header(kind, &body));
        // The same inside a sealed message's length-prefixed capsule slot.
        let capsule = with_header(kind, &body);
        let mut sealed = (capsule.len() as u32).to_be_bytes().to_vec();
        sealed.extend_from_slice(&capsule);
        sealed.extend_from_slice(&[0u8; 16]);
        decode_everything(&with_header(5, &sealed));
    }

    /// Random overwrites of valid encodings: never a panic, and whatever still decodes is canonical (checked in
    /// [`Object::decode`]); a sealed message that opens must have been left intact.
    #[test]
    fn mutated_encodings_never_panic(
        object in arb_object(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let original = object.valid();
        let mut bytes = original.to_vec();
        for (at, value) in &edits {
            bytes[at.index(original.len())] = *value;
        }
        let result = object.decode(&bytes);
        if object == Object::Sealed && bytes != original {
            prop_assert!(result.is_err(), "opened a modified sealed message:\n{}", hex(&bytes));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Canonical text longer than the decoders' bound.

/// `count` distinct quoted attributes of `'ü'` repeated `width` times: 2 bytes each in the input, printed as
/// 8-byte `\xc3\xbc` escapes by the canonical printer.
fn umlaut_policy_text(count: usize, width: usize) -> String {
    (0..count).map(|i| format!("\"{}{i}\"", "ü".repeat(width))).collect::<Vec<_>>().join(" or ")
}

/// The canonical printer writes every non-ASCII byte as a 4-byte `\xhh` escape, so input within `MAX_POLICY_LEN`
/// can print to more. The bound applies to the printed form too: such a policy is refused at parse time with a
/// typed error, and whatever is accepted reprints within the bound (`parse(print(p)) == p`).
#[test]
fn accepted_policy_text_reprints_within_the_parser_bound() {
    let text = umlaut_policy_text(60, 120);
    assert!(text.len() <= MAX_POLICY_LEN, "the input itself is within the bound ({} bytes)", text.len());
    assert_eq!(
        Policy::parse(&text).err(),
        Some(Error::LimitExceeded { what: smqtt_abe::Limit::PolicyLength, limit: MAX_POLICY_LEN })
    );
    // Just inside the bound once printed: accepted, and the round trip holds.
    let text = umlaut_policy_text(12, 120);
    let policy = Policy::parse(&text).expect("parses");
    let printed = policy.to_string();
    assert!(printed.len() <= MAX_POLICY_LEN && printed.len() > text.len());
    assert_eq!(Policy::parse(&printed).map(|reparsed| reparsed == policy), Ok(true));
}

/// Same cause, on the capsule side: every capsule that `encapsulate` produces decodes again (a policy whose
/// printing is too long for the decoder is refused before any encryption).
#[test]
fn every_capsule_that_encapsulate_produces_decodes() {
    let f = fixture();
    let policy = Policy::parse(&umlaut_policy_text(12, 120)).expect("parses");
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (_, capsule) = f.pk.encapsulate(&policy, &mut rng).expect("encapsulates");
    let bytes = capsule.to_bytes();
    let decoded = Capsule::from_bytes(&bytes).map(|c| c.to_bytes() == bytes);
    assert_eq!(decoded, Ok(true), "capsule of {} bytes with a {}-byte policy", bytes.len(), policy.to_string().len());
}

// ---------------------------------------------------------------------------------------------------------------
// The fuzzers' seed corpus.

/// One seed file: fuzz target, file name, contents.
type Seed = (&'static str, String, Vec<u8>);
/// A named encoding.
type Named = (&'static str, Vec<u8>);

fn text_seeds(target: &'static str, valid: &[&str], invalid: &[&str]) -> Vec<Seed> {
    let named = |prefix: &str, i: usize, s: &&str| (target, format!("{prefix}-{i:02}"), s.as_bytes().to_vec());
    let mut seeds: Vec<Seed> = valid.iter().enumerate().map(|(i, s)| named("valid", i, s)).collect();
    seeds.extend(invalid.iter().enumerate().map(|(i, s)| named("invalid", i, s)));
    seeds
}

/// Damaged variants of a valid binary encoding, each of which must be rejected, then two bit flips (which a
/// scalar or a masked seed may well survive).
fn damaged_seeds(target: &'static str, valid: &[u8]) -> (Vec<Seed>, Vec<Seed>) {
    let mut out: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("magic-only", MAGIC.to_vec()),
        ("header-only", valid[..6].to_vec()),
        ("truncated-by-one", valid[..valid.len() - 1].to_vec()),
        ("truncated-to-half", valid[..valid.len() / 2].to_vec()),
    ];
    let mut trailing = valid.to_vec();
    trailing.push(0);
    out.push(("trailing-byte", trailing));
    let mut version = valid.to_vec();
    version[4] = 0x02;
    out.push(("wrong-version", version));
    let mut kind = valid.to_vec();
    kind[5] = if kind[5] == 0x01 { 0x02 } else { 0x01 };
    out.push(("wrong-kind", kind));
    let invalid = out.into_iter().map(|(name, bytes)| (target, format!("invalid-{name}"), bytes)).collect();
    let mut middle = valid.to_vec();
    middle[valid.len() / 2] ^= 0x01;
    let mut last = valid.to_vec();
    last[valid.len() - 1] ^= 0x80;
    let flips = vec![
        (target, "mutated-bit-flip-middle".to_owned(), middle),
        (target, "mutated-bit-flip-last".to_owned(), last),
    ];
    (invalid, flips)
}

const VALID_POLICIES: [&str; 8] = [
    "a and b",
    "(role:operator and site:berlin) or role:admin",
    "2 of (dept:ops, dept:sec, clearance:high)",
    "level >= 3 and zone:eu",
    r#""quoted attribute with spaces" or "\x00\xff raw bytes""#,
    "A AND (b OR c) and 3 of (d, e, f, g < 7)",
    "x == 4294967295 or (y <= 0 and \"and\")",
    "((a))",
];

const INVALID_POLICIES: [&str; 20] = [
    "((((",
    "3 of (a)",
    "0 of (a, b)",
    r#""\x"#,
    r#""\x4"#,
    r#""\q""#,
    r#""""#,
    "and",
    "a or",
    "of (a)",
    "a ==",
    "a = 1",
    "a < -1",
    ")",
    "a b",
    "4294967296 of (a)",
    "level < 0",
    "a and a",
    "((((((((((((((((((a))))))))))))))))))",
    "2 of (a,, b)",
];

const INVALID_JSON: [&str; 14] = [
    r#"{"attr":""}"#,
    r#"{"and":[]}"#,
    r#"{"or":[{"attr":"a"}]"#,
    r#"{"attr":"a","attr":"b"}"#,
    r#"{"attr":"a","extra":1}"#,
    r#"{"threshold":{"k":3,"of":[{"attr":"a"}]}}"#,
    r#"{"threshold":{"k":0,"of":[{"attr":"a"},{"attr":"b"}]}}"#,
    r#"{"attr_hex":"0g"}"#,
    r#"{"attr_hex":"abc"}"#,
    r#"{"compare":{"name":"a","op":"=","value":1}}"#,
    r#"{"compare":{"name":"a","op":"<","value":-1}}"#,
    r#"{"compare":{"name":"a","op":"<","value":4294967296}}"#,
    r#"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["#,
    "\"a\"",
];

const VALID_ATTRIBUTES: [&str; 5] = [
    "a, b, level = 5",
    "role:operator, site:berlin, level = 5",
    r#""and", "01" = 1, "m\xc3\xbcnchen", "\x00""#,
    "",
    "level, level = 3",
];

const INVALID_ATTRIBUTES: [&str; 10] =
    ["a,", ",a", "a b", "a == 3", "a = 4294967296", "a, b, a", "n = 1, n = 2", "and", r#""\x"#, "a = b"];

/// None of the invalid text seeds parses, except those rejected later on (by the LSSS compiler).
fn assert_none_parse(target: &str, texts: &[&str], parses: impl Fn(&str) -> bool) {
    for text in texts {
        let later = matches!(*text, "a and a" | "level < 0");
        assert!(!parses(text) || later, "{target}: {text:?} should not parse");
    }
}

/// Every seed of the corpus; checks on the way that valid seeds decode and damaged ones do not.
fn corpus() -> Vec<Seed> {
    let f = fixture();
    let mut seeds = Vec::new();

    seeds.extend(text_seeds("policy_parse", &VALID_POLICIES, &INVALID_POLICIES));
    let json: Vec<String> =
        VALID_POLICIES.iter().map(|text| Policy::parse(text).expect("valid seed policy").to_json()).collect();
    let json: Vec<&str> = json.iter().map(String::as_str).collect();
    seeds.extend(text_seeds("policy_json", &json, &INVALID_JSON));
    seeds.extend(text_seeds("attribute_set_parse", &VALID_ATTRIBUTES, &INVALID_ATTRIBUTES));
    assert_none_parse("policy_parse", &INVALID_POLICIES, |t| Policy::parse(t).is_ok());
    assert_none_parse("policy_json", &INVALID_JSON, |t| Policy::from_json(t).is_ok());
    assert_none_parse("attribute_set_parse", &INVALID_ATTRIBUTES, |t| AttributeSet::parse(t).is_ok());

    // A second user key with no attributes, capsules and sealed messages for more policies.
    let mut rng = ChaCha20Rng::seed_from_u64(FIXTURE_SEED + 1);
    let empty_key = f.msk.keygen(&f.pk, &AttributeSet::default(), &mut rng).expect("keygen");
    let numeric = Policy::parse("level >= 3 or c").expect("parses");
    let (_, numeric_capsule) = f.pk.encapsulate(&numeric, &mut rng).expect("encapsulate");

    let binaries: [(&'static str, Object, Vec<Named>); 4] = [
        ("public_key_decode", Object::PublicKey, vec![("valid", f.pk_bytes.clone())]),
        ("master_key_decode", Object::MasterKey, vec![("valid", f.msk_bytes.clone())]),
        (
            "user_key_decode",
            Object::UserKey,
            vec![("valid", f.key_bytes.clone()), ("valid-no-attributes", empty_key.to_bytes().to_vec())],
        ),
        (
            "capsule_decode",
            Object::Capsule,
            vec![("valid", f.capsule_bytes.clone()), ("valid-numeric", numeric_capsule.to_bytes())],
        ),
    ];
    for (target, object, valid) in binaries {
        let first = valid[0].1.clone();
        for (name, bytes) in valid {
            object.decode(&bytes).unwrap_or_else(|e| panic!("{target}/{name}: {e}"));
            seeds.push((target, name.to_owned(), bytes));
        }
        let (invalid, flips) = damaged_seeds(target, &first);
        for seed in invalid {
            assert_rejected(object, &seed.2, &seed.1);
            seeds.push(seed);
        }
        for seed in flips {
            let _ = object.decode(&seed.2);
            seeds.push(seed);
        }
    }

    // Sealed messages, opened with the key the `sealed_open` target derives (fresh from the seed, as it does).
    let (pk, _, key, _) = fixture_keys();
    assert_eq!(pk.to_bytes(), f.pk_bytes, "fixture keys are deterministic");
    let mut sealed = vec![("valid-a-and-b", f.sealed.clone(), true)];
    for (name, policy, opens) in [
        ("valid-numeric", "level >= 3 and a", true),
        ("valid-not-satisfied", "c or d", false),
        ("valid-threshold", "2 of (a, c, level < 9)", true),
    ] {
        let policy = Policy::parse(policy).expect("parses");
        sealed.push((name, seal::seal(&pk, &policy, PLAINTEXT, &mut rng).expect("seal"), opens));
    }
    for (name, bytes, opens) in &sealed {
        let opened = seal::open(&pk, &key, bytes);
        assert_eq!(opened.is_ok(), *opens, "sealed_open/{name}: {opened:?}");
        assert!(seal::sealed_policy(bytes).is_ok(), "sealed_open/{name}");
        seeds.push(("sealed_open", (*name).to_owned(), bytes.clone()));
    }
    let (invalid, flips) = damaged_seeds("sealed_open", &f.sealed);
    for seed in invalid.into_iter().chain(flips) {
        assert!(seal::open(&pk, &key, &seed.2).is_err(), "sealed_open/{} opened", seed.1);
        seeds.push(seed);
    }
    let mut huge_length = with_header(5, &u32::MAX.to_be_bytes());
    huge_length.extend_from_slice(&[0u8; 32]);
    seeds.push(("sealed_open", "invalid-huge-capsule-length".to_owned(), huge_length));
    seeds
}

/// Builds the seed corpus and checks it; writes it under `abe/fuzz/corpus/` when `SMQTT_WRITE_FUZZ_CORPUS=1`
/// (replacing the files there).
#[test]
fn fuzz_corpus() {
    let seeds = corpus();
    let total: usize = seeds.iter().map(|s| s.2.len()).sum();
    assert!(total < 200 * 1024, "corpus of {total} bytes");
    if std::env::var_os("SMQTT_WRITE_FUZZ_CORPUS").is_none_or(|v| v != "1") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus");
    let mut cleared = Vec::new();
    for (target, name, bytes) in &seeds {
        let dir = root.join(target);
        if !cleared.contains(target) {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).expect("clear the corpus directory");
            }
            std::fs::create_dir_all(&dir).expect("create the corpus directory");
            cleared.push(*target);
        }
        std::fs::write(dir.join(name), bytes).expect("write a seed");
    }
    eprintln!("wrote {} seeds ({total} bytes) under {}", seeds.len(), root.display());
}
