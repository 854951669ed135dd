//! The FAME algorithms (Agrawal–Chase, CCS 2017, k = 2) in KEM form, with the FO-style CCA check.
//!
//! Additive notation; notation and correctness argument as in the design notes (`fame.md` §4–§8). Hashes,
//! attribute key parts and ciphertext rows live in G1; sk0, ct0, H1, H2 in G2; T1, T2 in GT.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use ark_bls12_381::{g1, g2, Bls12_381, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::pairing::{MillerLoopOutput, Pairing};
use ark_ec::scalar_mul::glv::GLVConfig;
use ark_ec::{AffineRepr, CurveGroup, PrimeGroup};
use ark_ff::{Field, One, PrimeField, Zero};
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::encoding;
use crate::error::{Error, Result};
use crate::fixed_base::{FixedBase, GlvFixedBase};
use crate::hash::{HashCache, HashPoints};
use crate::kdf;
use crate::keys::{Capsule, DataKey, Gt, MasterKey, ParamsId, Prepared, PublicKey, UserKey};
use crate::label::Label;
use crate::label_tables::{Digits, LabelTable, Lookup, TableCache, TableKey};
use crate::limits::MAX_KEY_ATTRIBUTES;
use crate::lsss::Lsss;
use crate::msm::msm;
#[allow(unused_imports)]
use crate::parallel::*;
use crate::policy::{AttributeSet, Policy};

/// A table that is only built once it would pay for itself: the first multiplication by a base is done
/// directly, the second builds the table.
///
/// The build runs outside the `OnceLock` (racing first builders waste a build, nothing more): builds use rayon
/// internally, and a rayon worker that waits inside `get_or_init` can steal a job that waits on the same lock,
/// which deadlocks. Key generation also looks its tables up once, on the calling thread, before going parallel.
struct LazyTable<T> {
    uses: AtomicUsize,
    table: OnceLock<T>,
}

impl<T> LazyTable<T> {
    const fn new() -> Self {
        LazyTable { uses: AtomicUsize::new(0), table: OnceLock::new() }
    }

    fn get(&self, build: impl FnOnce() -> T) -> Option<&T> {
        if let Some(t) = self.table.get() {
            return Some(t);
        }
        if self.uses.fetch_add(1, Ordering::Relaxed) == 0 {
            return None;
        }
        let _ = self.table.set(build());
        self.table.get()
    }
}

static G_TABLE: LazyTable<GlvFixedBase> = LazyTable::new();
static H_TABLE: LazyTable<FixedBase<G2Projective>> = LazyTable::new();

fn g_table() -> Option<&'static GlvFixedBase> {
    G_TABLE.get(|| GlvFixedBase::new(G1Affine::generator()))
}

fn h_table() -> Option<&'static FixedBase<G2Projective>> {
    H_TABLE.get(|| FixedBase::new(G2Projective::generator()))
}

/// `s · g`, by table if there is one.
fn mul_g(table: Option<&GlvFixedBase>, s: &Fr) -> G1Projective {
    match table {
        Some(t) => t.mul(s),
        None => G1Projective::generator() * s,
    }
}

/// `s · h`.
fn mul_h(s: &Fr) -> G2Projective {
    mul_h_with(h_table(), s)
}

/// `s · h`, by table if there is one.
fn mul_h_with(table: Option<&FixedBase<G2Projective>>, s: &Fr) -> G2Projective {
    match table {
        Some(t) => t.mul(s),
        None => g2_mul(G2Affine::generator(), s),
    }
}

/// Variable-base G2 multiplication with GLV (arkworks' default G2 `Mul` is plain double-and-add).
fn g2_mul(p: G2Affine, s: &Fr) -> G2Projective {
    <g2::Config as GLVConfig>::glv_mul_projective(p.into(), *s)
}

/// A uniform scalar from 64 random bytes reduced mod r (bias < 2^-250). Goes through `try_fill_bytes` so that a
/// failing system RNG is an [`Error::Rng`], not a panic.
fn random_scalar<R: RngCore + CryptoRng>(rng: &mut R) -> Result<Fr> {
    let mut wide = Zeroizing::new([0u8; 64]);
    rng.try_fill_bytes(wide.as_mut()).map_err(|_| Error::Rng)?;
    Ok(Fr::from_le_bytes_mod_order(wide.as_ref()))
}

fn random_nonzero<R: RngCore + CryptoRng>(rng: &mut R) -> Result<Fr> {
    loop {
        let x = random_scalar(rng)?;
        if !x.is_zero() {
            return Ok(x);
        }
    }
}

/// Plain-path operations on a public key before its fixed-base tables are built.
const PUBLIC_TABLES_AFTER: u32 = 16;

impl PublicKey {
    pub(crate) fn from_parts(h1: G2Affine, h2: G2Affine, t1: Gt, t2: Gt) -> PublicKey {
        let mut pk = PublicKey {
            h1,
            h2,
            t1,
            t2,
            id: ParamsId([0; 32]),
            tables: OnceLock::new(),
            uses: core::sync::atomic::AtomicU32::new(0),
        };
        pk.id = ParamsId(kdf::sha256(&encoding::public_key_bytes(&pk)));
        pk
    }

    /// Per-key tables (≈ 0.2 s of CPU and ≈ 12 MB to build) only once this key has been used
    /// [`PUBLIC_TABLES_AFTER`] times: a process holding many copies of a key that each see a few operations (an
    /// SDK client per device, say) must not build them for every copy. Counted per key, not per process.
    fn use_tables(&self) -> bool {
        self.tables.get().is_some() || self.uses.fetch_add(1, Ordering::Relaxed) >= PUBLIC_TABLES_AFTER
    }

    /// ct0 = (s1·H1, s2·H2, (s1 + s2)·h).
    fn ct0(&self, s: &[Fr; 2]) -> [G2Affine; 3] {
        let sum = s[0] + s[1];
        // Three independent products: on two cores this is the FO check's critical path at decapsulation.
        let ((a, b), c) = if self.use_tables() {
            let t = self.tables();
            join(|| join(|| t.h1.mul(&s[0]), || t.h2.mul(&s[1])), || mul_h(&sum))
        } else {
            join(|| join(|| g2_mul(self.h1, &s[0]), || g2_mul(self.h2, &s[1])), || mul_h(&sum))
        };
        let pts = G2Projective::normalize_batch(&[a, b, c]);
        [pts[0], pts[1], pts[2]]
    }

    /// K = s1·T1 + s2·T2 (in GT, written additively).
    fn kem_value(&self, s: &[Fr; 2]) -> Gt {
        if self.use_tables() {
            let t = self.tables();
            t.t1.mul(&s[0]) + t.t2.mul(&s[1])
        } else {
            self.t1 * s[0] + self.t2 * s[1]
        }
    }

    /// Encapsulates a fresh data key under `policy`. One capsule per (policy, epoch, rotation period) is the
    /// intended use; the data key then protects many messages (see [`crate::seal`] for one-shot sealing).
    ///
    /// # Errors
    /// Policy errors from compiling the LSSS ([`Error::DuplicateAttribute`], [`Error::LimitExceeded`],
    /// [`Error::UnsatisfiableComparison`]) and [`Error::Rng`].
    pub fn encapsulate<R: RngCore + CryptoRng>(&self, policy: &Policy, rng: &mut R) -> Result<(DataKey, Capsule)> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.try_fill_bytes(seed.as_mut()).map_err(|_| Error::Rng)?;
        let (key, capsule, _) = self.encapsulate_with_seed(policy, &seed)?;
        Ok((key, capsule))
    }

    /// Deterministic encapsulation from a seed (the FO transform's derandomised encryption).
    pub(crate) fn encapsulate_with_seed(&self, policy: &Policy, seed: &[u8; 32]) -> Result<(DataKey, Capsule, Gt)> {
        let lsss = Lsss::new(policy)?;
        let policy_text = policy.to_string();
        if policy_text.len() > crate::limits::MAX_POLICY_LEN {
            // Policies built through `parse`/`from_json` never get here; the check keeps every capsule decodable.
            return Err(Error::LimitExceeded {
                what: crate::Limit::PolicyLength,
                limit: crate::limits::MAX_POLICY_LEN,
            });
        }
        let s = Zeroizing::new(kdf::coins(&self.id, policy_text.as_bytes(), seed));
        let ct0 = self.ct0(&s);
        let rows = encrypt_rows(&lsss, &s);
        let k = self.kem_value(&s);
        let k_bytes = kdf::gt_bytes(&k);
        let mut masked_seed = *kdf::seed_mask(&self.id, &k_bytes);
        masked_seed.iter_mut().zip(seed).for_each(|(m, s)| *m ^= s);
        let mut capsule =
            Capsule { policy: policy.clone(), lsss, ct0, rows, masked_seed, params: self.id, digest: [0; 32] };
        capsule.digest = kdf::sha256(&encoding::capsule_bytes(&capsule));
        let key = DataKey::from_bytes(*kdf::data_key(&k_bytes, seed, &capsule.digest));
        Ok((key, capsule, k))
    }
}

/// ct_{i,l} = s1·A_{i,l} + s2·B_{i,l} with A = H(ρ(i),l,1) + Σ_j M_ij·U_{j,l,1} and B likewise for t = 2
/// (M entries are 0/±1 except under thresholds, so A and B are mostly sums); rows in parallel.
fn encrypt_rows(lsss: &Lsss, s: &[Fr; 2]) -> Vec<[G1Affine; 3]> {
    let cache = HashCache::global();
    let columns = cache.columns(lsss.columns());
    let minus_one = -Fr::one();
    let row_bases = |(label, row): (&Label, &crate::lsss::SparseRow)| -> [G1Projective; 6] {
        let h: HashPoints = cache.label(label);
        let mut acc = [G1Projective::zero(); 6];
        for l in 0..3 {
            for t in 0..2 {
                let a = &mut acc[2 * l + t];
                *a = h[l][t].into();
                for (j, m) in row {
                    let u = columns[*j][l][t];
                    if m.is_one() {
                        *a += u;
                    } else if *m == minus_one {
                        *a -= u;
                    } else {
                        *a += G1Projective::from(u) * m;
                    }
                }
            }
        }
        acc
    };
    let bases: Vec<[G1Projective; 6]> = par_iter(lsss.labels()).zip(par_iter(lsss.rows())).map(row_bases).collect();
    let flat: Vec<G1Projective> = bases.into_iter().flatten().collect();
    let affine = G1Projective::normalize_batch(&flat);
    let cts: Vec<G1Projective> = par_chunks(&affine, 2).map(|pair| msm::<g1::Config>(pair, s)).collect();
    let out = G1Projective::normalize_batch(&cts);
    out.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
}

/// Setup: (a1, a2, b1, b2) ← (Z_p*)⁴, (d1, d2, d3) ← Z_p³; H_t = a_t·h, T_t = (d_t·a_t + d3)·e(g, h).
///
/// # Errors
/// [`Error::Rng`] if the random number generator fails.
pub fn setup<R: RngCore + CryptoRng>(rng: &mut R) -> Result<(PublicKey, MasterKey)> {
    let mut a = [random_nonzero(rng)?, random_nonzero(rng)?];
    let b = [random_nonzero(rng)?, random_nonzero(rng)?];
    let mut d = [random_scalar(rng)?, random_scalar(rng)?, random_scalar(rng)?];
    let e_gh = Bls12_381::pairing(G1Affine::generator(), G2Affine::generator());
    let h = G2Projective::generator();
    let hs = G2Projective::normalize_batch(&[h * a[0], h * a[1]]);
    let t1 = e_gh * (d[0] * a[0] + d[2]);
    let t2 = e_gh * (d[1] * a[1] + d[2]);
    let pk = PublicKey::from_parts(hs[0], hs[1], t1, t2);
    let g = G1Projective::generator();
    let g_d = G1Projective::normalize_batch(&[g * d[0], g * d[1], g * d[2]]);
    let msk = MasterKey { a, b, g_d: [g_d[0], g_d[1], g_d[2]], params: pk.id };
    a.zeroize();
    d.zeroize();
    Ok((pk, msk))
}

impl MasterKey {
    /// Issues a key for `attributes` (a numeric attribute becomes one key part per bit).
    ///
    /// Labels issued repeatedly use cached window tables of their hash points (bounded to 64 MiB per process,
    /// see the crate docs on key generation caches); the key is bit for bit the same either way.
    ///
    /// # Errors
    /// [`Error::ParameterMismatch`] if `pk` is not this master key's, [`Error::LimitExceeded`] for too many
    /// attributes, [`Error::Rng`] if the random number generator fails.
    pub fn keygen<R: RngCore + CryptoRng>(
        &self,
        pk: &PublicKey,
        attributes: &AttributeSet,
        rng: &mut R,
    ) -> Result<UserKey> {
        self.keygen_with(pk, attributes, rng, Some(TableCache::global()))
    }

    /// [`MasterKey::keygen`] with the given table cache, or none (always the plain MSM path).
    pub(crate) fn keygen_with<R: RngCore + CryptoRng>(
        &self,
        pk: &PublicKey,
        attributes: &AttributeSet,
        rng: &mut R,
        tables: Option<&TableCache>,
    ) -> Result<UserKey> {
        if pk.id != self.params {
            return Err(Error::ParameterMismatch);
        }
        if attributes.len() > MAX_KEY_ATTRIBUTES {
            return Err(Error::LimitExceeded { what: crate::Limit::KeyAttributes, limit: MAX_KEY_ATTRIBUTES });
        }
        let labels = Label::for_key(attributes);
        let r = Zeroizing::new([random_scalar(rng)?, random_scalar(rng)?]);
        let br = Zeroizing::new([self.b[0] * r[0], self.b[1] * r[1], r[0] + r[1]]);
        let mut inv_a = Zeroizing::new([Fr::zero(); 2]);
        for (inv, a) in inv_a.iter_mut().zip(&self.a) {
            *inv = a.inverse().ok_or(Error::Malformed { what: "master key", reason: "zero scalar" })?;
        }
        // coeff[l][t] = (Br)_l / a_t, shared by every label.
        let mut coeff = Zeroizing::new([[Fr::zero(); 2]; 3]);
        for l in 0..3 {
            for t in 0..2 {
                coeff[l][t] = br[l] * inv_a[t];
            }
        }
        // Their table digits, once per key; without them (never in practice) every label takes the MSM path.
        let digits = tables.and_then(|_| Digits::new(&coeff));
        let tables = tables.filter(|_| digits.is_some());
        let cache = HashCache::global();
        let bases = |key: TableKey, points: &dyn Fn() -> HashPoints| match tables.map(|c| c.lookup(&key)) {
            Some(Lookup::Hit(table)) => Bases::Table(table),
            Some(Lookup::Build) => Bases::Build(key, points()),
            Some(Lookup::Miss) | None => Bases::Points(points()),
        };
        let mut jobs = Vec::with_capacity(labels.len() + 1);
        for label in &labels {
            let source = bases(TableKey::Label(label.clone()), &|| cache.label(label));
            jobs.push((source, random_scalar(rng)?, [G1Projective::zero(); 3]));
        }
        let v = bases(TableKey::V, &|| cache.columns(1)[0]);
        jobs.push((v, random_scalar(rng)?, self.g_d.map(G1Projective::from)));
        // sk0's three G2 products run alongside the key parts; each key part splits once more (see key_part).
        let (g, h) = (g_table(), h_table());
        let sums = Sums { coeff: &coeff, inv_a: &inv_a, digits: digits.as_ref(), tables, g };
        let (sk0, parts) = join(
            || G2Projective::normalize_batch(&br[..3].iter().map(|b| mul_h_with(h, b)).collect::<Vec<_>>()),
            || -> Vec<[G1Projective; 3]> {
                par_iter(&jobs).map(|(source, sigma, offset)| key_part(source, &sums, sigma, offset)).collect()
            },
        );
        jobs.iter_mut().for_each(|(_, sigma, offset)| {
            sigma.zeroize();
            offset.zeroize();
        });
        let mut flat: Vec<G1Projective> = parts.into_iter().flatten().collect();
        let mut affine = G1Projective::normalize_batch(&flat);
        flat.zeroize();
        let mut chunks: Vec<[G1Affine; 3]> = affine.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
        affine.zeroize();
        let sk_prime = chunks.pop().unwrap_or_else(|| unreachable!("sk' is always pushed"));
        Ok(UserKey::assemble(attributes.clone(), labels, [sk0[0], sk0[1], sk0[2]], chunks, sk_prime, pk.id))
    }
}

/// Where a key part's hash points come from.
enum Bases {
    /// A cached table.
    Table(Arc<LabelTable>),
    /// A recurring label's points, whose table this key part builds and caches.
    Build(TableKey, HashPoints),
    /// A first-seen label's points: the MSM path.
    Points(HashPoints),
}

/// What every key part of one key shares: the coefficients, 1/a_t, the coefficients' table digits, the label
/// table cache and g's table.
struct Sums<'a> {
    coeff: &'a [[Fr; 2]; 3],
    inv_a: &'a [Fr; 2],
    digits: Option<&'a Digits>,
    tables: Option<&'a TableCache>,
    g: Option<&'a GlvFixedBase>,
}

impl Sums<'_> {
    /// The table for `source`: the cached one, or for a recurring label a new one (then cached); `None` for the
    /// MSM path.
    fn table(&self, source: &Bases) -> Option<Arc<LabelTable>> {
        self.digits?;
        match source {
            Bases::Table(table) => Some(Arc::clone(table)),
            Bases::Build(key, points) => {
                let table = Arc::new(LabelTable::new(points));
                if let Some(cache) = self.tables {
                    cache.insert(key.clone(), Arc::clone(&table));
                }
                Some(table)
            }
            Bases::Points(_) => None,
        }
    }

    /// Σ_l coeff[l][t]·P[l][t], by table if there is one, else by MSM over the points.
    fn hash_term(&self, source: &Bases, table: Option<&LabelTable>, t: usize) -> G1Projective {
        match (table, self.digits, source) {
            (Some(table), Some(digits), _) => table.sum(digits, t),
            (_, _, Bases::Points(points) | Bases::Build(_, points)) => {
                let bases = [points[0][t], points[1][t], points[2][t]];
                let scalars = Zeroizing::new([self.coeff[0][t], self.coeff[1][t], self.coeff[2][t]]);
                msm::<g1::Config>(&bases, scalars.as_ref())
            }
            (_, _, Bases::Table(_)) => unreachable!("cached tables are only looked up with digits"),
        }
    }
}

/// One key part: for t = 1, 2: offset_t + Σ_l coeff[l][t]·P[l][t] + (σ/a_t)·g, and offset_3 − σ·g. The t = 1
/// component and the other two are computed in parallel (22 tasks of about equal size for a 10-label key, which
/// two cores share more evenly than 11).
fn key_part(source: &Bases, sums: &Sums<'_>, sigma: &Fr, offset: &[G1Projective; 3]) -> [G1Projective; 3] {
    let table = sums.table(source);
    let part =
        |t: usize| offset[t] + sums.hash_term(source, table.as_deref(), t) + mul_g(sums.g, &(*sigma * sums.inv_a[t]));
    let (first, (second, third)) = join(|| part(0), || (part(1), offset[2] - mul_g(sums.g, sigma)));
    [first, second, third]
}

/// The pairing side of decapsulation: K = Σ_t e(D_t, ct0_t) − e(C_t, sk0_t), with D_t = sk'_t + Σ γ_i·sk_{ρ(i),t}
/// and C_t = Σ γ_i·ct_{i,t}, as one 6-pair multi-pairing. `used` pairs each row's ciphertext part with the key
/// part the caller claims for it. `None` only if the Miller loop degenerates.
pub(crate) fn pairing_value(
    sk0: &[Prepared; 3],
    sk_prime: &[G1Affine; 3],
    used: &[([G1Affine; 3], [G1Affine; 3], Fr)],
    ct0: &[G2Affine; 3],
) -> Option<Gt> {
    let mut d = sk_prime.map(G1Projective::from);
    let mut c = [G1Projective::zero(); 3];
    for (key_part, row, gamma) in used {
        for t in 0..3 {
            if gamma.is_one() {
                d[t] += key_part[t];
                c[t] += row[t];
            } else {
                d[t] += G1Projective::from(key_part[t]) * gamma;
                c[t] += G1Projective::from(row[t]) * gamma;
            }
        }
    }
    let mut g1 = G1Projective::normalize_batch(&[d[0], d[1], d[2], -c[0], -c[1], -c[2]]);
    d.zeroize();
    // Two Miller loops side by side instead of arkworks' chunks of four (4 + 2 pairs, the 4 on one core): the
    // key's three prepared pairs plus ct0_1 on one side, ct0_2 and ct0_3 (their line preparation included) on
    // the other. The product of the two partial loops is the 6-pair loop.
    let (left, right) = join(
        || {
            let ps = [g1[0], g1[3], g1[4], g1[5]];
            let qs = [Prepared::from(ct0[0]), sk0[0].clone(), sk0[1].clone(), sk0[2].clone()];
            Bls12_381::multi_miller_loop(ps, qs)
        },
        || Bls12_381::multi_miller_loop([g1[1], g1[2]], [Prepared::from(ct0[1]), Prepared::from(ct0[2])]),
    );
    g1.zeroize();
    Bls12_381::final_exponentiation(MillerLoopOutput(left.0 * right.0))
}

impl UserKey {
    /// Recovers the data key from a capsule.
    ///
    /// # Errors
    /// [`Error::ParameterMismatch`] for a capsule or public key of another parameter set;
    /// [`Error::PolicyNotSatisfied`] when this key's attributes do not satisfy the policy (decided on public
    /// data before any pairing); [`Error::DecryptionFailed`] when the pairing result fails the CCA check.
    pub fn decapsulate(&self, pk: &PublicKey, capsule: &Capsule) -> Result<DataKey> {
        if pk.id != self.params || capsule.params != self.params {
            return Err(Error::ParameterMismatch);
        }
        let gammas = capsule.lsss.coefficients(|l| self.index.contains_key(l)).ok_or(Error::PolicyNotSatisfied)?;
        let mut used = Vec::with_capacity(gammas.len());
        for (row, gamma) in gammas {
            let label = &capsule.lsss.labels()[row];
            let part = self.index.get(label).and_then(|&i| self.parts.get(i)).ok_or(Error::PolicyNotSatisfied)?;
            used.push((*part, capsule.rows[row], gamma));
        }
        let k = pairing_value(self.prepared(), &self.sk_prime, &used, &capsule.ct0).ok_or(Error::DecryptionFailed)?;
        finish_decapsulation(pk, capsule, &k)
    }
}

/// The FO check: unmask the seed with K, re-derive the coins, and require that they reproduce ct0 exactly.
/// On success the data key is bound to K, the seed and the whole capsule. The crate docs argue why checking
/// ct0 (not every row) suffices when the data key is bound to the capsule's digest.
pub(crate) fn finish_decapsulation(pk: &PublicKey, capsule: &Capsule, k: &Gt) -> Result<DataKey> {
    let k_bytes = kdf::gt_bytes(k);
    let mut seed = Zeroizing::new(capsule.masked_seed);
    seed.iter_mut().zip(kdf::seed_mask(&pk.id, &k_bytes).iter()).for_each(|(s, m)| *s ^= m);
    let s = Zeroizing::new(kdf::coins(&pk.id, capsule.policy.to_string().as_bytes(), &seed));
    let expected = pk.ct0(&s);
    let expected_bytes = encoding::g2_triple_bytes(&expected);
    let actual_bytes = encoding::g2_triple_bytes(&capsule.ct0);
    if !bool::from(expected_bytes.ct_eq(&actual_bytes)) {
        return Err(Error::DecryptionFailed);
    }
    Ok(DataKey::from_bytes(*kdf::data_key(&k_bytes, &seed, &capsule.digest)))
}
