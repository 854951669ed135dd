//! Known-answer files in `docs/vectors/`: a fixed parameter set, two user keys, and sealed messages with the
//! outcome every decoder and `seal::open` must produce (mostly negative). `SMQTT_WRITE_VECTORS=1` regenerates
//! them from a seeded RNG; the normal run reads and checks them.

use std::fmt::Write as _;
use std::path::PathBuf;

use ark_bls12_381::{Fq, Fq2, G1Affine, G2Affine};

use ark_serialize::CanonicalSerialize;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use smqtt_abe::{seal, setup, AttributeSet, Error, Policy, PublicKey, UserKey};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or_else(|e| panic!("{e}"))).collect()
}

/// A point on E(Fp) outside the order-r subgroup, compressed.
fn g1_outside_subgroup() -> [u8; 48] {
    (1u64..)
        .filter_map(|x| G1Affine::get_point_from_x_unchecked(Fq::from(x), true))
        .find(|p| !p.is_in_correct_subgroup_assuming_on_curve())
        .map(|p| {
            let mut out = [0u8; 48];
            p.serialize_compressed(&mut out[..]).unwrap_or_else(|e| panic!("{e}"));
            out
        })
        .unwrap_or_else(|| unreachable!())
}

fn g2_outside_subgroup() -> [u8; 96] {
    (1u64..)
        .filter_map(|x| G2Affine::get_point_from_x_unchecked(Fq2::new(Fq::from(x), Fq::from(1u64)), true))
        .find(|p| !p.is_in_correct_subgroup_assuming_on_curve())
        .map(|p| {
            let mut out = [0u8; 96];
            p.serialize_compressed(&mut out[..]).unwrap_or_else(|e| panic!("{e}"));
            out
        })
        .unwrap_or_else(|| unreachable!())
}

/// A compressed G1 encoding whose x has no point on the curve.
fn g1_off_curve() -> [u8; 48] {
    let x = (1u64..).find(|x| G1Affine::get_point_from_x_unchecked(Fq::from(*x), true).is_none()).unwrap_or(0);
    let mut out = [0u8; 48];
    out[40..].copy_from_slice(&x.to_be_bytes());
    out[0] |= 0x80; // compression flag
    out
}

const HEADER: usize = 6;
/// Offsets inside the sealed vector: header, capsule length, capsule header, params id, policy length.
fn policy_offset() -> usize {
    HEADER + 4 + HEADER + 32 + 4
}

struct Case {
    name: &'static str,
    key: &'static str,
    expect: &'static str,
    bytes: Vec<u8>,
}

fn generate() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<Case>) {
    let mut rng = ChaCha20Rng::seed_from_u64(2026);
    let (pk, msk) = setup(&mut rng).unwrap_or_else(|e| panic!("{e}"));
    let attrs = |s: &str| AttributeSet::parse(s).unwrap_or_else(|e| panic!("{e}"));
    let alice =
        msk.keygen(&pk, &attrs("role:operator, site:berlin, level = 5"), &mut rng).unwrap_or_else(|e| panic!("{e}"));
    let bob = msk.keygen(&pk, &attrs("role:intern, site:paris, level = 1"), &mut rng).unwrap_or_else(|e| panic!("{e}"));
    let policy = Policy::parse("(role:operator and site:berlin) or role:admin").unwrap_or_else(|e| panic!("{e}"));
    let good = seal::seal(&pk, &policy, b"temperature 23.5 C", &mut rng).unwrap_or_else(|e| panic!("{e}"));
    let p = policy_offset();
    let policy_len = policy.to_string().len();
    let ct0 = p + policy_len;
    let rows = ct0 + 3 * 96 + 4;
    let mutate = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let cases = vec![
        Case { name: "sealed-ok", key: "alice", expect: "ok: temperature 23.5 C", bytes: good.clone() },
        Case { name: "sealed-not-satisfied", key: "bob", expect: "policy not satisfied", bytes: good.clone() },
        Case {
            name: "sealed-flipped-tag",
            key: "alice",
            expect: "decryption failed",
            bytes: mutate(&|b| {
                let n = b.len() - 1;
                b[n] ^= 1
            }),
        },
        Case {
            name: "sealed-flipped-body",
            key: "alice",
            expect: "decryption failed",
            bytes: mutate(&|b| {
                let n = b.len() - 20;
                b[n] ^= 0x40
            }),
        },
        Case {
            name: "sealed-flipped-seed",
            key: "alice",
            expect: "decryption failed",
            bytes: mutate(&|b| {
                let n = b.len() - 35;
                b[n] ^= 1
            }),
        },
        Case {
            name: "sealed-truncated",
            key: "alice",
            expect: "malformed: truncated",
            bytes: good[..good.len() / 2].to_vec(),
        },
        Case {
            name: "sealed-trailing-in-capsule",
            key: "alice",
            expect: "malformed: trailing bytes",
            bytes: mutate(&|b| b[HEADER + 3] += 1),
        },
        Case {
            name: "sealed-wrong-version",
            key: "alice",
            expect: "malformed: unsupported version",
            bytes: mutate(&|b| b[4] = 2),
        },
        Case {
            name: "sealed-wrong-kind",
            key: "alice",
            expect: "malformed: wrong object kind",
            bytes: mutate(&|b| b[5] = 4),
        },
        Case {
            name: "sealed-policy-not-canonical",
            key: "alice",
            expect: "malformed: policy does not parse",
            bytes: mutate(&|b| b[p] = b'['),
        },
        Case {
            name: "sealed-policy-uppercase-keyword",
            key: "alice",
            expect: "malformed: policy is not in canonical form",
            bytes: mutate(&|b| {
                let at = p + policy.to_string().find(" or ").unwrap_or(0) + 1;
                b[at] = b'O';
            }),
        },
        Case {
            name: "sealed-row-outside-subgroup",
            key: "alice",
            expect: "malformed: invalid G1 point (not on the curve or not in the subgroup)",
            bytes: mutate(&|b| b[rows..rows + 48].copy_from_slice(&g1_outside_subgroup())),
        },
        Case {
            name: "sealed-row-off-curve",
            key: "alice",
            expect: "malformed: invalid G1 point (not on the curve or not in the subgroup)",
            bytes: mutate(&|b| b[rows..rows + 48].copy_from_slice(&g1_off_curve())),
        },
        Case {
            name: "sealed-row-identity",
            key: "alice",
            expect: "malformed: identity point",
            bytes: mutate(&|b| {
                b[rows..rows + 48].fill(0);
                b[rows] = 0xc0;
            }),
        },
        Case {
            name: "sealed-ct0-outside-subgroup",
            key: "alice",
            expect: "malformed: invalid G2 point (not on the curve or not in the subgroup)",
            bytes: mutate(&|b| b[ct0..ct0 + 96].copy_from_slice(&g2_outside_subgroup())),
        },
        Case {
            name: "sealed-row-count-mismatch",
            key: "alice",
            expect: "malformed: row count does not match the policy",
            bytes: mutate(&|b| b[rows - 1] += 1),
        },
        Case {
            name: "sealed-row-swapped",
            key: "alice",
            expect: "decryption failed",
            bytes: mutate(&|b| {
                let (first, second) = (b[rows..rows + 48].to_vec(), b[rows + 144..rows + 192].to_vec());
                b[rows..rows + 48].copy_from_slice(&second);
                b[rows + 144..rows + 192].copy_from_slice(&first);
            }),
        },
    ];
    (pk.to_bytes(), alice.to_bytes().to_vec(), bob.to_bytes().to_vec(), cases)
}

fn outcome(pk: &PublicKey, key: &UserKey, bytes: &[u8]) -> String {
    match seal::open(pk, key, bytes) {
        Ok(plain) => format!("ok: {}", String::from_utf8_lossy(&plain)),
        Err(Error::PolicyNotSatisfied) => "policy not satisfied".into(),
        Err(Error::DecryptionFailed) => "decryption failed".into(),
        Err(Error::Malformed { reason, .. }) => format!("malformed: {reason}"),
        Err(other) => format!("other: {other}"),
    }
}

#[test]
fn known_answer_files() {
    if std::env::var_os("SMQTT_WRITE_VECTORS").is_some() {
        let (pk, alice, bob, cases) = generate();
        std::fs::create_dir_all(dir()).unwrap_or_else(|e| panic!("{e}"));
        for (name, bytes) in [("public-key", pk), ("alice.key", alice), ("bob.key", bob)] {
            std::fs::write(dir().join(format!("{name}.hex")), hex(&bytes) + "\n").unwrap_or_else(|e| panic!("{e}"));
        }
        for case in cases {
            let mut text = String::new();
            let _ = writeln!(text, "key: {}\nexpect: {}\n\n{}", case.key, case.expect, hex(&case.bytes));
            std::fs::write(dir().join(format!("{}.txt", case.name)), text).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let read = |name: &str| std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let pk = PublicKey::from_bytes(&unhex(&read("public-key.hex"))).unwrap_or_else(|e| panic!("{e}"));
    let alice = UserKey::from_bytes(&unhex(&read("alice.key.hex"))).unwrap_or_else(|e| panic!("{e}"));
    let bob = UserKey::from_bytes(&unhex(&read("bob.key.hex"))).unwrap_or_else(|e| panic!("{e}"));
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir()).unwrap_or_else(|e| panic!("{e}")).flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".txt") {
            continue;
        }
        let text = read(&name);
        let (head, body) = text.split_once("\n\n").unwrap_or_else(|| panic!("{name}: no blank line"));
        let field =
            |k: &str| head.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).unwrap_or_default().to_owned();
        let key = if field("key:") == "bob" { &bob } else { &alice };
        assert_eq!(outcome(&pk, key, &unhex(body)), field("expect:"), "{name}");
        checked += 1;
    }
    assert!(checked >= 17, "only {checked} vectors found");
}
