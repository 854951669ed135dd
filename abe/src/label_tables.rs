//! Fixed-base window tables for the hash points of recurring labels, and the bounded cache that keeps them.
//!
//! Every key part needs, for t = 1, 2, the sum Σ_l coeff[l][t]·H(y, l, t) over the label's three hash points;
//! the coefficients are the same for every label of a key, the points differ per label. A Straus MSM for such a
//! sum ([`crate::msm`]) spends ≈ 128 doublings, ≈ 150 additions and the building of its odd-multiple tables on
//! every call. The authority, however, issues the same labels again and again (and the constant V hashes of sk'
//! in every key), so for a label that recurs we keep, per hash point P, the affine multiples
//! `m·2^(W·j)·P` for m = 1..=2^(W−1) and j = 0..WINDOWS. A product k·P then splits k with the GLV endomorphism
//! into halves k1 + λ·k2 of at most 128 bits, recodes each half into WINDOWS signed base-2^W digits
//! (|digit| ≤ 2^(W−1)), and costs one mixed addition per non-zero digit and no doubling. The λ-halves of all
//! three terms are accumulated apart and mapped through φ(x, y) = (β·x, y) once at the end, so one table serves
//! both halves. With W = 6 a three-term sum is ≤ 132 mixed additions; the digits of a key's six coefficients are
//! computed once per key, not once per label.
//!
//! A label's table is built only after the label has taken the plain path a few times (see [`TableCache`] for
//! the adaptive rule), so one-off labels never pay the building (about ten key parts' worth of work), and a
//! working set larger than the cache does not rebuild tables on every use. At most [`MAX_CACHE_BYTES`] of
//! tables are kept; the least recently used table is evicted first.
//!
//! Hash outputs depend only on public inputs, so caching tables of them leaks nothing by itself; the lookups,
//! however, are indexed by digits of secret scalars, so like [`crate::fixed_base`] this is **not constant
//! time** (see the crate's security notes).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, OnceLock};

use ark_bls12_381::{g1, Fr, G1Affine, G1Projective};
use ark_ec::scalar_mul::glv::GLVConfig;
use ark_ff::Zero;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::fixed_base::{add_digits, glv_windows, point_table, recode};
use crate::hash::{lock, HashPoints};
use crate::label::Label;
#[allow(unused_imports)]
use crate::parallel::*;

/// Window width in bits. 6 is the measured sweet spot: 7 saves ≈ 10 % of the additions for 1.7× the memory.
const W: usize = 6;
/// Table entries per window: the multiples 1..=2^(W−1) (negatives are free).
const HALF: usize = 1 << (W - 1);
/// Windows per half; two spare bits so a signed recoding of any 128-bit value ends without carry.
const WINDOWS: usize = glv_windows(W);
/// Entries in one hash point's table.
const POINT_ENTRIES: usize = WINDOWS * HALF;
/// Bytes of one label's table (six points): 6 × 22 × 32 × 96 B = 396 KiB for W = 6.
pub(crate) const TABLE_BYTES: usize = 6 * POINT_ENTRIES * size_of::<G1Affine>();
/// Upper bound on the bytes of tables the process-wide cache holds (≈ 165 labels, V included).
pub(crate) const MAX_CACHE_BYTES: usize = 64 << 20;
// The budget holds the working set of a typical authority: ≈ 165 labels (V included).
const _: () = assert!(TABLE_BYTES == 405_504 && MAX_CACHE_BYTES / TABLE_BYTES >= 160);

/// The signed digits of the GLV halves of a key's six coefficients, indexed `[l][t][half][window]`, with the
/// halves' signs folded in. Computed once per key; zeroized on drop (they are as secret as the coefficients).
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Digits([[[[i16; WINDOWS]; 2]; 2]; 3]);

impl Digits {
    /// Recodes `coeff`. `None` only if a GLV half were longer than 128 bits (never seen; the caller then
    /// takes the plain MSM path).
    pub(crate) fn new(coeff: &[[Fr; 2]; 3]) -> Option<Digits> {
        let mut out = Digits([[[[0; WINDOWS]; 2]; 2]; 3]);
        for (row, coeffs) in out.0.iter_mut().zip(coeff) {
            for (halves, k) in row.iter_mut().zip(coeffs) {
                let ((pos1, mut k1), (pos2, mut k2)) = g1::Config::scalar_decomposition(*k);
                let ok = recode(&k1, pos1, W, &mut halves[0]) && recode(&k2, pos2, W, &mut halves[1]);
                k1.zeroize();
                k2.zeroize();
                if !ok {
                    return None;
                }
            }
        }
        Some(out)
    }
}

/// One label's tables: for each of its six hash points (in [`HashPoints`] order), `WINDOWS` rows of `HALF`
/// affine multiples, flattened.
pub(crate) struct LabelTable {
    entries: Vec<G1Affine>,
}

impl core::fmt::Debug for LabelTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LabelTable").field("entries", &self.entries.len()).finish()
    }
}

impl LabelTable {
    /// Builds the tables for `points` (≈ 4 200 additions and one batch normalisation per point, the six points
    /// in parallel).
    pub(crate) fn new(points: &HashPoints) -> LabelTable {
        let bases: Vec<G1Affine> = points.iter().flatten().copied().collect();
        let tables: Vec<Vec<G1Affine>> = par_iter(&bases).map(|p| point_table(p, W, WINDOWS)).collect();
        LabelTable { entries: tables.concat() }
    }

    /// Σ_l coeff[l][t]·P[l][t] for the coefficients `digits` was made from, t ∈ {0, 1}.
    pub(crate) fn sum(&self, digits: &Digits, t: usize) -> G1Projective {
        let mut acc = [G1Projective::zero(); 2];
        for (l, row) in digits.0.iter().enumerate() {
            let table = &self.entries[(2 * l + t) * POINT_ENTRIES..][..POINT_ENTRIES];
            for (a, half) in acc.iter_mut().zip(&row[t]) {
                add_digits(a, table, HALF, half);
            }
        }
        acc[0] + g1::Config::endomorphism(&acc[1])
    }
}

/// What a table is cached for: a key label, or the constant V hashes of sk'.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TableKey {
    /// The V (column 1) hashes every key's sk' uses.
    V,
    /// A key label.
    Label(Label),
}

/// The answer of [`TableCache::lookup`].
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The table is cached.
    Hit(Arc<LabelTable>),
    /// Used often enough without a table: worth building and [`TableCache::insert`]ing now.
    Build,
    /// Not (yet) worth a table: use the plain path.
    Miss,
}

#[derive(Debug)]
struct Slot {
    table: Arc<LabelTable>,
    last_use: u64,
    /// Lookups that found this table; a table repays its build after about [`REPAID_HITS`] of them.
    hits: u32,
}

#[derive(Debug)]
struct Inner {
    tables: HashMap<TableKey, Slot>,
    /// Plain-path uses of labels without a table, by a keyed 64-bit hash of the label.
    uses: HashMap<u64, u32>,
    /// Plain-path uses after which a label's table is built; adapts between the cache's base and
    /// [`MAX_THRESHOLD`].
    threshold: u32,
    clock: u64,
    #[cfg(test)]
    builds: usize,
}

/// Building a table costs about as much as ten key parts on the plain path ([`LabelTable::new`]).
const REPAID_HITS: u32 = 10;
/// The highest build threshold: a label then takes the plain path 64 times before its table is built, which
/// bounds the cost of builds to ≈ 15 % of the plain path even when every table is evicted before it is used.
const MAX_THRESHOLD: u32 = 64;
/// The default build threshold: the third use of a label builds its table.
const BASE_THRESHOLD: u32 = 2;

/// A bounded LRU cache of [`LabelTable`]s with an adaptive admission rule. The process-wide one is
/// [`TableCache::global`]; tests make small ones to exercise eviction.
///
/// * **Memory.** At most `capacity` tables ([`TABLE_BYTES`] each) are cached, plus the use counters (at most
///   [`USES_CAPACITY`] entries of 12 B, then emptied). A running key generation keeps the tables it looked up
///   alive until it returns, so an evicted table can outlive its eviction by one key generation.
/// * **Admission.** A label's table is built once the label has taken the plain path `threshold` times.
///   Evicting a table that was hit fewer than [`REPAID_HITS`] times (the cache is too small for the working set
///   and builds do not pay off) doubles the threshold, up to [`MAX_THRESHOLD`]; evicting one that paid off
///   halves it again, down to the base. So a working set that fits is served from tables after a few keys, and
///   one that does not costs little more than the plain path instead of a build for every use.
#[derive(Debug)]
pub(crate) struct TableCache {
    inner: Mutex<Inner>,
    hasher: RandomState,
    capacity: usize,
    base_threshold: u32,
}

/// Use counters kept before they are emptied and start over.
const USES_CAPACITY: usize = 1 << 14;

impl TableCache {
    /// The process-wide cache: at most [`MAX_CACHE_BYTES`] of tables.
    pub(crate) fn global() -> &'static TableCache {
        static CACHE: OnceLock<TableCache> = OnceLock::new();
        CACHE.get_or_init(|| TableCache::new(MAX_CACHE_BYTES / TABLE_BYTES, BASE_THRESHOLD))
    }

    /// A cache of at most `capacity` tables that builds a label's table after `base_threshold` (at least 1)
    /// plain-path uses while it is not thrashing.
    pub(crate) fn new(capacity: usize, base_threshold: u32) -> TableCache {
        let base_threshold = base_threshold.clamp(1, MAX_THRESHOLD);
        let inner = Inner {
            tables: HashMap::new(),
            uses: HashMap::new(),
            threshold: base_threshold,
            clock: 0,
            #[cfg(test)]
            builds: 0,
        };
        TableCache { inner: Mutex::new(inner), hasher: RandomState::new(), capacity, base_threshold }
    }

    /// Looks `key` up, marking a cached table as just used and counting a plain-path use otherwise.
    pub(crate) fn lookup(&self, key: &TableKey) -> Lookup {
        let mut inner = lock(&self.inner);
        inner.clock += 1;
        let now = inner.clock;
        if let Some(slot) = inner.tables.get_mut(key) {
            slot.last_use = now;
            slot.hits = slot.hits.saturating_add(1);
            return Lookup::Hit(Arc::clone(&slot.table));
        }
        if self.capacity == 0 {
            return Lookup::Miss;
        }
        let h = self.hasher.hash_one(key);
        let threshold = inner.threshold;
        if inner.uses.get(&h).is_some_and(|&n| n >= threshold) {
            inner.uses.remove(&h);
            #[cfg(test)]
            {
                inner.builds += 1;
            }
            return Lookup::Build;
        }
        if inner.uses.len() >= USES_CAPACITY && !inner.uses.contains_key(&h) {
            inner.uses.clear();
        }
        *inner.uses.entry(h).or_insert(0) += 1;
        Lookup::Miss
    }

    /// Caches `table` for `key`, evicting the least recently used table when full (and adapting the build
    /// threshold to whether that table paid off).
    pub(crate) fn insert(&self, key: TableKey, table: Arc<LabelTable>) {
        let mut inner = lock(&self.inner);
        if self.capacity == 0 {
            return;
        }
        if inner.tables.len() >= self.capacity && !inner.tables.contains_key(&key) {
            let oldest = inner.tables.iter().min_by_key(|(_, slot)| slot.last_use).map(|(k, _)| k.clone());
            if let Some(victim) = oldest.and_then(|k| inner.tables.remove(&k)) {
                inner.threshold = if victim.hits < REPAID_HITS {
                    inner.threshold.saturating_mul(2).min(MAX_THRESHOLD)
                } else {
                    (inner.threshold / 2).max(self.base_threshold)
                };
            }
        }
        let last_use = inner.clock;
        inner.tables.insert(key, Slot { table, last_use, hits: 0 });
    }

    /// Number of cached tables.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.inner).tables.len()
    }

    /// Number of [`Lookup::Build`] answers so far.
    #[cfg(test)]
    pub(crate) fn builds(&self) -> usize {
        lock(&self.inner).builds
    }

    /// The current build threshold.
    #[cfg(test)]
    pub(crate) fn threshold(&self) -> u32 {
        lock(&self.inner).threshold
    }
}

#[cfg(test)]
mod tests {
    use ark_bls12_381::{Fr, G1Projective};
    use ark_ec::{CurveGroup, PrimeGroup};
    use ark_ff::{Field, One, Zero};
    use ark_std::UniformRand;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use std::sync::Arc;

    use super::{Digits, LabelTable, Lookup, TableCache, TableKey, MAX_CACHE_BYTES, TABLE_BYTES};
    use crate::hash::HashPoints;
    use crate::keys::UserKey;
    use crate::policy::{AttributeSet, Policy};

    #[test]
    fn table_sums_match_direct_multiplication() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let mut points: HashPoints = Default::default();
        for p in points.iter_mut().flatten() {
            *p = (G1Projective::generator() * Fr::rand(&mut rng)).into_affine();
        }
        let table = LabelTable::new(&points);
        let edge = [Fr::zero(), Fr::one(), -Fr::one(), Fr::from(2u64).pow([200]), -Fr::from(2u64).pow([128])];
        for round in 0..12 {
            let mut coeff = [[Fr::zero(); 2]; 3];
            for (i, c) in coeff.iter_mut().flatten().enumerate() {
                *c = if round < 2 { edge[(i + round) % edge.len()] } else { Fr::rand(&mut rng) };
            }
            let digits = Digits::new(&coeff).unwrap_or_else(|| panic!("recoding failed"));
            for t in 0..2 {
                let expected: G1Projective = (0..3).map(|l| points[l][t] * coeff[l][t]).sum();
                assert_eq!(table.sum(&digits, t), expected, "round {round}, t = {t}");
            }
        }
    }

    fn key_bytes(key: &UserKey) -> Vec<u8> {
        key.to_bytes().to_vec()
    }

    /// Keys from the cached-table path equal the plain path's bit for bit (same RNG stream), through first
    /// sightings, table building, hits and evictions, and decrypt alike.
    #[test]
    fn cached_tables_give_identical_keys() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let (pk, msk) = crate::setup(&mut rng).unwrap_or_else(|e| panic!("{e}"));
        let sets = ["a, b, c", "a, level = 9", "b, c, d, e", "a, b, c"]
            .map(|s| AttributeSet::parse(s).unwrap_or_else(|e| panic!("{e}")));
        // Capacity 3 is far below the 38 tables (a–e, 32 bit labels, V) in play, so tables are evicted and rebuilt constantly;
        // capacity 100 keeps them all.
        for capacity in [3, 100] {
            let cache = TableCache::new(capacity, 1);
            for round in 0..3u64 {
                for (i, set) in sets.iter().enumerate() {
                    let seed = 1000 * capacity as u64 + 10 * round + i as u64;
                    let plain = msk
                        .keygen_with(&pk, set, &mut ChaCha20Rng::seed_from_u64(seed), None)
                        .unwrap_or_else(|e| panic!("{e}"));
                    let cached = msk
                        .keygen_with(&pk, set, &mut ChaCha20Rng::seed_from_u64(seed), Some(&cache))
                        .unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(key_bytes(&plain), key_bytes(&cached), "capacity {capacity}, round {round}, set {i}");
                    assert!(cache.len() <= capacity);
                }
            }
            // a–e, 32 bit labels of `level`, and V.
            assert_eq!(cache.len(), capacity.min(38));
            if capacity == 100 {
                assert!(matches!(cache.lookup(&TableKey::V), Lookup::Hit(_)));
            }
        }
        // And a cached-path key decrypts what the plain-path key decrypts.
        let cache = TableCache::new(1, 1);
        let set = &sets[1];
        let key = (0..3)
            .map(|_| msk.keygen_with(&pk, set, &mut rng, Some(&cache)).unwrap_or_else(|e| panic!("{e}")))
            .last()
            .unwrap_or_else(|| unreachable!());
        let policy = Policy::parse("a and level > 8").unwrap_or_else(|e| panic!("{e}"));
        let (data_key, capsule) = pk.encapsulate(&policy, &mut rng).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.decapsulate(&pk, &capsule), Ok(data_key));
    }

    fn key(i: usize) -> TableKey {
        TableKey::Label(crate::label::Label::Plain(
            crate::policy::Attribute::new(format!("a{i}")).unwrap_or_else(|e| panic!("{e}")),
        ))
    }

    /// Runs `rounds` passes over `labels` distinct labels through `cache` (with empty stand-in tables) and
    /// returns how many lookups hit.
    fn cycle(cache: &TableCache, labels: usize, rounds: usize) -> usize {
        let mut hits = 0;
        for _ in 0..rounds {
            for i in 0..labels {
                match cache.lookup(&key(i)) {
                    Lookup::Hit(_) => hits += 1,
                    Lookup::Build => cache.insert(key(i), Arc::new(LabelTable { entries: Vec::new() })),
                    Lookup::Miss => {}
                }
                assert!(cache.len() <= cache.capacity);
            }
        }
        hits
    }

    /// The byte budget holds, the count bound holds under any sequence, and the least recently used table goes.
    #[test]
    fn cache_is_bounded_and_evicts_least_recently_used() {
        let global = TableCache::global();
        assert!(global.capacity * TABLE_BYTES <= MAX_CACHE_BYTES);
        let cache = TableCache::new(2, 1);
        for i in 0..3 {
            assert!(matches!(cache.lookup(&key(i)), Lookup::Miss));
            assert!(matches!(cache.lookup(&key(i)), Lookup::Build));
            cache.insert(key(i), Arc::new(LabelTable { entries: Vec::new() }));
            if i == 1 {
                // Touch 0, so 1 is the least recently used when 2 arrives.
                assert!(matches!(cache.lookup(&key(0)), Lookup::Hit(_)));
            }
        }
        assert_eq!(cache.len(), 2);
        assert!(matches!(cache.lookup(&key(0)), Lookup::Hit(_)));
        assert!(matches!(cache.lookup(&key(2)), Lookup::Hit(_)));
        assert!(!matches!(cache.lookup(&key(1)), Lookup::Hit(_)));
        // A cache of capacity 0 never asks for a build.
        let none = TableCache::new(0, 1);
        assert_eq!(cycle(&none, 3, 10), 0);
        assert_eq!((none.len(), none.builds()), (0, 0));
    }

    /// A working set that fits is built once and then always hit; one that does not fit raises the threshold
    /// until builds are rare, instead of rebuilding a table for every use.
    #[test]
    fn admission_adapts_to_the_working_set() {
        let fits = TableCache::new(10, 2);
        let hits = cycle(&fits, 6, 50);
        assert_eq!(fits.builds(), 6);
        assert_eq!(hits, 6 * (50 - 3));
        assert_eq!(fits.threshold(), 2);

        let thrashes = TableCache::new(4, 2);
        let rounds = 200;
        let hits = cycle(&thrashes, 8, rounds);
        let uses = 8 * rounds;
        // Without adaptation every third use would build (≈ 530 builds, no hits). With it the threshold climbs,
        // builds get rare (≈ 75 seen), the tables built stay long enough to be hit (≈ 750 hits seen, half the
        // uses, the best 4 of 8 slots allow), and the threshold swings between 16 and 64.
        assert!(thrashes.threshold() >= 8, "threshold {}", thrashes.threshold());
        assert!(thrashes.builds() <= uses / 15, "{} builds for {uses} uses", thrashes.builds());
        assert!(hits >= uses / 4, "{hits} hits for {uses} uses");
        assert!(thrashes.len() <= 4);
    }
}
