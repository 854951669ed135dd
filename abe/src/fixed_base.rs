//! Fixed-base scalar multiplication with precomputed window tables, for the bases that never change
//! (g, h, and a public key's H1, H2, T1, T2).
//!
//! [`FixedBase`] is arkworks' `BatchMulPreprocessing` (w = 8: 32 windows of 256 multiples); the evaluation below
//! accumulates in projective form so a single product costs 32 additions and no inversion. [`GlvFixedBase`]
//! (for g in key generation, where every key part needs three multiples of g) and the per-label tables of
//! [`crate::label_tables`] instead split the scalar with the GLV endomorphism into two ≈ 128-bit halves and
//! recode each into signed base-2^w digits, so one table of 2^(w−1) multiples per window serves both halves
//! and a product costs ≈ 2·⌈130/w⌉ additions; the helpers for that live here too. Table lookups are indexed
//! by secret scalar bits, so all of this is **not constant-time** (see the crate's security notes).

use ark_bls12_381::{g1, Fq, Fr, G1Affine, G1Projective};
use ark_ec::scalar_mul::glv::GLVConfig;
use ark_ec::scalar_mul::{BatchMulPreprocessing, ScalarMul};
use ark_ec::{AdditiveGroup, CurveGroup};
use ark_ff::{BigInteger, Field, One, PrimeField, Zero};
use zeroize::Zeroize;

/// Number of scalars arkworks sizes the window for: 2^12 gives w = 8.
const WINDOW_SCALARS: usize = 1 << 12;

/// A precomputed table for one base.
pub(crate) struct FixedBase<T: ScalarMul> {
    table: BatchMulPreprocessing<T>,
}

impl<T: ScalarMul> core::fmt::Debug for FixedBase<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FixedBase").field("window", &self.table.window).finish_non_exhaustive()
    }
}

impl<T: ScalarMul> FixedBase<T> {
    /// Builds the table (a few milliseconds for G1, more for G2 and GT).
    pub(crate) fn new(base: T) -> Self {
        let bits = T::ScalarField::MODULUS_BIT_SIZE as usize;
        FixedBase { table: BatchMulPreprocessing::with_num_scalars_and_scalar_size(base, WINDOW_SCALARS, bits) }
    }

    /// `scalar · base`.
    pub(crate) fn mul(&self, scalar: &T::ScalarField) -> T {
        let window = self.table.window;
        let bits = scalar.into_bigint().to_bits_le();
        let mut acc = T::zero();
        for (outer, row) in self.table.table.iter().enumerate() {
            let mut index = 0usize;
            for i in 0..window {
                if bits.get(outer * window + i).copied().unwrap_or(false) {
                    index |= 1 << i;
                }
            }
            if let Some(multiple) = row.get(index) {
                acc += multiple;
            }
        }
        acc
    }
}

/// Bit length bound of a GLV half on BLS12-381 G1 (its decomposition lattice has 128-bit basis vectors).
const GLV_HALF_BITS: usize = 128;

/// Signed base-2^w windows that hold any GLV half: two spare bits so the recoding of a 128-bit value ends
/// without carry.
pub(crate) const fn glv_windows(w: usize) -> usize {
    (GLV_HALF_BITS + 2).div_ceil(w)
}

/// Writes the signed base-2^w digits of ±k (each in [−2^(w−1), 2^(w−1)), least significant first) into `out`;
/// false (and `out` unusable) if k does not fit.
pub(crate) fn recode(k: &Fr, positive: bool, w: usize, out: &mut [i16]) -> bool {
    let mut big = k.into_bigint();
    let fits = big.num_bits() as usize <= GLV_HALF_BITS && out.len() * w >= GLV_HALF_BITS + 2;
    let half = 1i16 << (w - 1);
    let mut carry = 0i16;
    if fits {
        let limbs = big.as_ref();
        for (j, digit) in out.iter_mut().enumerate() {
            let v = window(limbs, j * w, w) + carry;
            let d = if v >= half { v - 2 * half } else { v };
            carry = i16::from(v >= half);
            *digit = if positive { d } else { -d };
        }
    }
    big.zeroize();
    fits && carry == 0
}

/// Bits `pos .. pos + w` of a little-endian limb slice (w ≤ 14).
fn window(limbs: &[u64], pos: usize, w: usize) -> i16 {
    let (limb, shift) = (pos / 64, pos % 64);
    let mut v = limbs.get(limb).map_or(0, |x| x >> shift);
    if shift + w > 64 {
        v |= limbs.get(limb + 1).map_or(0, |x| x << (64 - shift));
    }
    (v & ((1 << w) - 1)) as i16
}

/// The affine multiples `m·2^(w·j)·p` for j = 0..windows, m = 1..=2^(w−1), in that order.
pub(crate) fn point_table(p: &G1Affine, w: usize, windows: usize) -> Vec<G1Affine> {
    let half = 1 << (w - 1);
    let mut multiples = Vec::with_capacity(windows * half);
    let mut base = G1Projective::from(*p);
    for _ in 0..windows {
        let mut current = base;
        multiples.push(current);
        for _ in 1..half {
            current += base;
            multiples.push(current);
        }
        // 2^(w−1)·2^(w·j)·p doubled is the next window's base.
        base = current.double();
    }
    G1Projective::normalize_batch(&multiples)
}

/// Adds `Σ_j digits[j]·table_row_j` to `acc`, where row j holds the `half` multiples of window j.
pub(crate) fn add_digits(acc: &mut G1Projective, table: &[G1Affine], half: usize, digits: &[i16]) {
    for (multiples, &d) in table.chunks_exact(half).zip(digits) {
        if d > 0 {
            add_affine(acc, &multiples[d as usize - 1]);
        } else if d < 0 {
            add_affine(acc, &-multiples[d.unsigned_abs() as usize - 1]);
        }
    }
}

/// `acc += p`: arkworks' mixed Jacobian–affine addition (`madd-2007-bl`, the same operations and special cases),
/// with its four field comparisons done inline on the limbs; in arkworks they compile to `memcmp` calls that
/// cost ≈ 10 % of key generation. Montgomery form is canonical, so limb equality is equality.
#[inline]
fn add_affine(acc: &mut G1Projective, p: &G1Affine) {
    if is_zero(&p.x) && is_zero(&p.y) {
        return;
    }
    if is_zero(&acc.z) {
        *acc = G1Projective::new_unchecked(p.x, p.y, Fq::one());
        return;
    }
    let z1z1 = acc.z.square();
    let u2 = p.x * z1z1;
    let s2 = acc.z * p.y * z1z1;
    if equal(&acc.x, &u2) {
        if equal(&acc.y, &s2) {
            acc.double_in_place();
        } else {
            *acc = G1Projective::zero();
        }
        return;
    }
    let h = u2 - acc.x;
    let hh = h.square();
    let i = hh.double().double();
    let j = -(h * i);
    let r = (s2 - acc.y).double();
    let mut v = acc.x * i;
    acc.x = r.square() + j - v.double();
    v -= &acc.x;
    let y1 = acc.y.double();
    acc.y = Fq::sum_of_products(&[r, y1], &[v, j]);
    acc.z *= &h;
    acc.z.double_in_place();
}

fn is_zero(a: &Fq) -> bool {
    a.0 .0.iter().fold(0, |d, x| d | x) == 0
}

fn equal(a: &Fq, b: &Fq) -> bool {
    a.0 .0.iter().zip(&b.0 .0).fold(0, |d, (x, y)| d | (x ^ y)) == 0
}

/// Window width of [`GlvFixedBase`]: 2^11 multiples in each of 11 windows (2.1 MB), 22 additions a product.
const GLV_W: usize = 12;
const GLV_WINDOWS: usize = glv_windows(GLV_W);

/// A fixed-base table for one G1 base with signed windows over GLV halves: `k·p` = `k1·p + φ(k2·p)` costs
/// ≈ 2 × 11 mixed additions instead of the 32 of a w = 8 [`FixedBase`]. Used for g in key generation, where
/// every key part needs three multiples of g. Indexed by secret digits: not constant time.
pub(crate) struct GlvFixedBase {
    entries: Vec<G1Affine>,
}

impl core::fmt::Debug for GlvFixedBase {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GlvFixedBase").field("entries", &self.entries.len()).finish()
    }
}

impl GlvFixedBase {
    /// Builds the table (≈ 22 500 additions, some 20 ms).
    pub(crate) fn new(base: G1Affine) -> Self {
        GlvFixedBase { entries: point_table(&base, GLV_W, GLV_WINDOWS) }
    }

    /// `k · base`.
    pub(crate) fn mul(&self, k: &Fr) -> G1Projective {
        let ((pos1, mut k1), (pos2, mut k2)) = g1::Config::scalar_decomposition(*k);
        let mut digits = [[0i16; GLV_WINDOWS]; 2];
        let ok = recode(&k1, pos1, GLV_W, &mut digits[0]) && recode(&k2, pos2, GLV_W, &mut digits[1]);
        k1.zeroize();
        k2.zeroize();
        if !ok {
            digits.zeroize();
            return g1::Config::glv_mul_projective(self.entries[0].into(), *k);
        }
        let half = 1 << (GLV_W - 1);
        let mut acc = [G1Projective::zero(); 2];
        for (a, d) in acc.iter_mut().zip(&digits) {
            add_digits(a, &self.entries, half, d);
        }
        digits.zeroize();
        acc[0] + g1::Config::endomorphism(&acc[1])
    }
}

#[cfg(test)]
mod tests {
    use ark_bls12_381::{Fr, G1Affine, G1Projective, G2Projective};
    use ark_ec::{AffineRepr, PrimeGroup};
    use ark_ff::{Field, One, Zero};
    use ark_std::UniformRand;
    use rand_chacha::rand_core::SeedableRng;

    use super::{FixedBase, GlvFixedBase};

    #[test]
    fn tables_match_direct_multiplication() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let glv = GlvFixedBase::new(G1Affine::generator());
        let h = FixedBase::new(G2Projective::generator());
        let two = Fr::from(2u64);
        let mut scalars = vec![Fr::zero(), Fr::one(), -Fr::one(), two.pow([127]), two.pow([128]), -two.pow([200])];
        scalars.extend((0..40).map(|_| Fr::rand(&mut rng)));
        for k in &scalars {
            assert_eq!(glv.mul(k), G1Projective::generator() * k, "{k}");
            assert_eq!(h.mul(k), G2Projective::generator() * k, "{k}");
        }
    }
}
