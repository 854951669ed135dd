//! Hashing labels and column indices to G1 with RFC 9380 (`BLS12381G1_XMD:SHA-256_SSWU_RO_`).
//!
//! Every hash input is tagged by family and length-prefixed (spec: `docs/format.md` §"Hash inputs"):
//!
//! | family            | bytes                                                               |
//! |-------------------|---------------------------------------------------------------------|
//! | plain attribute   | `0x01 ‖ u32_be(len) ‖ name ‖ u8(l) ‖ u8(t)`                          |
//! | column `j`        | `0x02 ‖ u32_be(j) ‖ u8(l) ‖ u8(t)`                                   |
//! | numeric bit       | `0x03 ‖ u32_be(len) ‖ name ‖ u8(bit) ‖ u8(value) ‖ u8(l) ‖ u8(t)`    |
//!
//! The first byte separates the families and each family's layout is fixed, so no attribute name can produce a
//! column input (the key's constant "V" hashes are the column-1 hashes by construction).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use ark_bls12_381::{g1, G1Affine, G1Projective};
use ark_ec::hashing::curve_maps::wb::WBMap;
use ark_ec::hashing::map_to_curve_hasher::MapToCurveBasedHasher;
use ark_ec::hashing::HashToCurve;
use ark_ff::field_hashers::DefaultFieldHasher;
use sha2::Sha256;

use crate::label::Label;

/// Domain-separation tag for all of SMQTT's hashes to G1, in RFC 9380 naming style.
pub(crate) const HASH_TO_G1_DST: &[u8] = b"SMQTT-FAME-V01-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";

type G1Hasher = MapToCurveBasedHasher<G1Projective, DefaultFieldHasher<Sha256, 128>, WBMap<g1::Config>>;

/// The six points H(x, l, t) for l = 1..3, t = 1..2, indexed `[l - 1][t - 1]`.
pub(crate) type HashPoints = [[G1Affine; 2]; 3];

const TAG_ATTRIBUTE: u8 = 0x01;
const TAG_COLUMN: u8 = 0x02;
const TAG_NUMERIC_BIT: u8 = 0x03;

/// Hash input for a label and (l, t). Public within the crate so tests can check injectivity.
pub(crate) fn label_input(label: &Label, l: u8, t: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    match label {
        Label::Plain(name) => {
            out.push(TAG_ATTRIBUTE);
            push_len_prefixed(&mut out, name.as_bytes());
        }
        Label::Bit { name, bit, value } => {
            out.push(TAG_NUMERIC_BIT);
            push_len_prefixed(&mut out, name.as_bytes());
            out.push(*bit);
            out.push(u8::from(*value));
        }
    }
    out.push(l);
    out.push(t);
    out
}

/// Hash input for column `j` (1-based) and (l, t).
pub(crate) fn column_input(j: u32, l: u8, t: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(7);
    out.push(TAG_COLUMN);
    out.extend_from_slice(&j.to_be_bytes());
    out.push(l);
    out.push(t);
    out
}

fn push_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    // Attribute names are bounded far below u32::MAX (limits::MAX_ATTRIBUTE_LEN).
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn hasher() -> &'static G1Hasher {
    static HASHER: OnceLock<G1Hasher> = OnceLock::new();
    HASHER.get_or_init(|| match G1Hasher::new(HASH_TO_G1_DST) {
        Ok(h) => h,
        // `new` only fails in arkworks' own test builds (parameter self-check) for a fixed, valid suite.
        Err(e) => unreachable!("BLS12-381 G1 SSWU hasher rejected its fixed parameters: {e}"),
    })
}

/// RFC 9380 `hash_to_curve` into G1 with our DST.
pub(crate) fn hash_to_g1(msg: &[u8]) -> G1Affine {
    match hasher().hash(msg) {
        Ok(p) => p,
        // SSWU is total on the base field; the map has no failing input for a valid suite.
        Err(e) => unreachable!("hash to G1 failed: {e}"),
    }
}

fn points_for(input: impl Fn(u8, u8) -> Vec<u8>) -> HashPoints {
    let mut out = [[G1Affine::default(); 2]; 3];
    for (l, row) in out.iter_mut().enumerate() {
        for (t, slot) in row.iter_mut().enumerate() {
            *slot = hash_to_g1(&input(l as u8 + 1, t as u8 + 1));
        }
    }
    out
}

/// Bounded, process-wide cache of label and column hashes. Hash outputs depend only on public inputs, so
/// sharing them between keys and parameter sets leaks nothing.
#[derive(Debug, Default)]
pub(crate) struct HashCache {
    labels: Mutex<HashMap<Label, HashPoints>>,
    columns: Mutex<Vec<HashPoints>>,
}

/// Entries kept before the label cache is emptied and starts over (simple and bounded; ≈ 600 B per entry: six points and the label).
const LABEL_CACHE_CAPACITY: usize = 8192;

impl HashCache {
    /// The process-wide cache.
    pub(crate) fn global() -> &'static HashCache {
        static CACHE: OnceLock<HashCache> = OnceLock::new();
        CACHE.get_or_init(HashCache::default)
    }

    /// H(label, l, t) for all l, t.
    pub(crate) fn label(&self, label: &Label) -> HashPoints {
        if let Some(points) = lock(&self.labels).get(label) {
            return *points;
        }
        let points = points_for(|l, t| label_input(label, l, t));
        let mut cache = lock(&self.labels);
        if cache.len() >= LABEL_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(label.clone(), points);
        points
    }

    /// H(column j, l, t) for columns 1..=count, computed once per process.
    pub(crate) fn columns(&self, count: usize) -> Vec<HashPoints> {
        let mut cache = lock(&self.columns);
        while cache.len() < count {
            let j = u32::try_from(cache.len() + 1).unwrap_or(u32::MAX);
            cache.push(points_for(|l, t| column_input(j, l, t)));
        }
        cache[..count].to_vec()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned cache only means another thread panicked mid-insert; the map itself stays consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use ark_bls12_381::{Fq, G1Affine};
    use ark_ec::hashing::HashToCurve;
    use ark_ff::{BigInteger, PrimeField};

    use super::{column_input, label_input, G1Hasher, HashCache};
    use crate::label::Label;
    use crate::policy::Attribute;

    fn hex(s: &str) -> Vec<u8> {
        let s = s.trim().trim_start_matches("0x");
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    fn fq_hex(x: &Fq) -> Vec<u8> {
        x.into_bigint().to_bytes_be()
    }

    #[test]
    fn matches_rfc9380_test_vectors() {
        let text = include_str!("../tests/vectors/rfc9380_g1_ro.txt");
        let dst = text.lines().next().and_then(|l| l.split("DST = ").nth(1)).unwrap_or_default();
        let hasher = G1Hasher::new(dst.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let mut checked = 0;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let fields: Vec<&str> = line.split('|').collect();
            let p: G1Affine = hasher.hash(&hex(fields[0])).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(fq_hex(&p.x), hex(fields[1]), "x for msg {}", fields[0]);
            assert_eq!(fq_hex(&p.y), hex(fields[2]), "y for msg {}", fields[0]);
            checked += 1;
        }
        assert_eq!(checked, 5);
    }

    fn plain(name: &[u8]) -> Label {
        Label::Plain(Attribute::new(name.to_vec()).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn no_attribute_name_reaches_a_column_or_v_input() {
        let names: [&[u8]; 9] =
            [b"01", b"0", b"02", b"0 0", b"0|1", b"\x02\x00\x00\x00\x01", b"\x00", "münchen".as_bytes(), b"_"];
        let mut inputs = std::collections::HashSet::new();
        for j in 1..=8u32 {
            for (l, t) in [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)] {
                assert!(inputs.insert(column_input(j, l, t)));
            }
        }
        for name in names {
            for (l, t) in [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)] {
                assert!(inputs.insert(label_input(&plain(name), l, t)), "{name:?} collides");
                let bit = Label::Bit {
                    name: Attribute::new(name.to_vec()).unwrap_or_else(|e| panic!("{e}")),
                    bit: 1,
                    value: true,
                };
                assert!(inputs.insert(label_input(&bit, l, t)), "bit label of {name:?} collides");
            }
        }
        // And the points differ too: the "01" attribute's hashes are not the V (column 1) hashes.
        let cache = HashCache::default();
        let v = cache.columns(1)[0];
        let h01 = cache.label(&plain(b"01"));
        for l in 0..3 {
            for t in 0..2 {
                assert_ne!(v[l][t], h01[l][t]);
            }
        }
    }

    #[test]
    fn inputs_are_length_prefixed_so_concatenations_differ() {
        // "ab" with (l, t) = (1, 2) must not equal "a" followed by other bytes.
        assert_ne!(label_input(&plain(b"ab"), 1, 2), label_input(&plain(b"a"), 1, 2));
        let a = label_input(&plain(b"a\x01"), 1, 1);
        let b = label_input(&plain(b"a"), 1, 1);
        assert!(!a.starts_with(&b[..b.len() - 2]) || a.len() != b.len());
        assert_eq!(&label_input(&plain(b"01"), 2, 1)[..5], &[0x01, 0, 0, 0, 2]);
    }
}
