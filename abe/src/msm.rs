//! Small multi-scalar multiplications Σ k_i·P_i (2–3 terms) by Straus' interleaved method over GLV halves.
//!
//! Each scalar is split with the curve's GLV endomorphism into two ≈128-bit halves, so an n-term product needs
//! ≈128 doublings shared by all 2n half-products plus ≈2n·128/5 mixed additions (width-4 NAF), about 2.5× fewer
//! operations than n separate GLV multiplications; arkworks' Pippenger MSM is tuned for large n. Variable time,
//! like the rest of arkworks (see the crate's security notes).

use ark_ec::scalar_mul::glv::GLVConfig;
use ark_ec::short_weierstrass::{Affine, Projective};
use ark_ec::{AdditiveGroup, AffineRepr, CurveGroup};
use ark_ff::{BigInteger, PrimeField, Zero};

/// Width of the NAF recoding: digits are odd and below 2^(W−1) in absolute value.
const W: usize = 4;
/// Odd multiples kept per point: P, 3P, 5P, 7P.
const TABLE: usize = 1 << (W - 2);

/// Σ scalars[i]·bases[i]. Slices of different lengths use the shorter one.
pub(crate) fn msm<C: GLVConfig>(bases: &[Affine<C>], scalars: &[C::ScalarField]) -> Projective<C> {
    let mut points = Vec::with_capacity(2 * bases.len());
    let mut digits = Vec::with_capacity(2 * bases.len());
    for (base, k) in bases.iter().zip(scalars) {
        if base.is_zero() || k.is_zero() {
            continue;
        }
        let ((pos1, k1), (pos2, k2)) = C::scalar_decomposition(*k);
        let endo = C::endomorphism_affine(base);
        for (point, positive, half) in [(*base, pos1, k1), (endo, pos2, k2)] {
            let naf = half.into_bigint().find_wnaf(W).unwrap_or_default();
            if naf.iter().all(|d| *d == 0) {
                continue;
            }
            points.push(if positive { point } else { -point });
            digits.push(naf);
        }
    }
    // Odd multiples of every point, normalised together (one inversion) for mixed additions.
    let mut projective = Vec::with_capacity(points.len() * TABLE);
    for p in &points {
        let p1 = Projective::<C>::from(*p);
        let double = p1.double();
        let mut current = p1;
        for _ in 0..TABLE {
            projective.push(current);
            current += double;
        }
    }
    let tables = Projective::<C>::normalize_batch(&projective);
    let len = digits.iter().map(Vec::len).max().unwrap_or(0);
    let mut acc = Projective::<C>::zero();
    for i in (0..len).rev() {
        acc.double_in_place();
        for (j, naf) in digits.iter().enumerate() {
            let d = naf.get(i).copied().unwrap_or(0);
            if d != 0 {
                let entry = tables[j * TABLE + (d.unsigned_abs() as usize) / 2];
                if d > 0 {
                    acc += entry;
                } else {
                    acc -= entry;
                }
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use ark_bls12_381::{g1, Fr, G1Affine, G1Projective};
    use ark_ec::{CurveGroup, PrimeGroup};
    use ark_std::UniformRand;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn matches_separate_multiplications() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        for n in 0..4 {
            let bases: Vec<G1Affine> =
                (0..n).map(|_| (G1Projective::generator() * Fr::rand(&mut rng)).into_affine()).collect();
            let mut scalars: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
            if n == 3 {
                scalars[1] = Fr::from(0u64);
                scalars[2] = -Fr::from(1u64);
            }
            let expected: G1Projective = bases.iter().zip(&scalars).map(|(b, s)| *b * s).sum();
            assert_eq!(super::msm::<g1::Config>(&bases, &scalars), expected);
        }
    }
}
