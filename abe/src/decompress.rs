//! Decompression of BLS12-381 points with faster square roots.
//!
//! The encoding is exactly arkworks' (= zcash's) compressed one, as read by `ark-bls12-381`'s
//! `read_g1_compressed` / `read_g2_compressed`:
//!
//! * the top three bits of the first byte are flags: `0x80` compressed (must be set), `0x40` infinity,
//!   `0x20` "y is the lexicographically largest of ±y" (must be clear when infinity is set);
//! * the rest is x big-endian: G1 one Fq (48 bytes), G2 `x.c1 ‖ x.c0` (96 bytes), each part < p;
//! * infinity needs every other bit zero (for G2 the flags live in the `c1` half only).
//!
//! What differs from arkworks is only how y is found: the Fq square root a^((p+1)/4) (p ≡ 3 mod 4) uses a
//! sliding-window exponentiation (≈ 80 multiplications instead of 228 for plain square-and-multiply), and the
//! Fq2 square root needs two such exponentiations instead of three (see [`sqrt_fq2`]). Every root is verified
//! by squaring; the sign of y, the on-curve check and the prime-order subgroup check follow arkworks
//! (`is_in_correct_subgroup_assuming_on_curve`). The exponent is public, so nothing here is constant time.

use ark_bls12_381::{g1, g2, Fq, Fq2, G1Affine, G2Affine};
use ark_ec::short_weierstrass::SWCurveConfig;
use ark_ff::{AdditiveGroup, BigInt, Field, MontFp, PrimeField, Zero};

/// Flag bits of the first byte.
const COMPRESSED: u8 = 0x80;
const INFINITY: u8 = 0x40;
const LARGEST: u8 = 0x20;
const FLAG_BITS: u8 = COMPRESSED | INFINITY | LARGEST;

/// Bytes of one encoded Fq element.
const FQ_LEN: usize = 48;

/// (p − 3) / 4 = ⌊p / 4⌋, little-endian limbs. As p ≡ 3 (mod 4), a^((p+1)/4) = a^((p−3)/4) · a is a square
/// root of every square a.
const P_MINUS_3_DIV_4: [u64; 6] = shift_right_2(<Fq as PrimeField>::MODULUS.0);

/// 1/2 in Fq, i.e. (p + 1) / 2.
const TWO_INV: Fq = MontFp!(
    "2001204777610833696708894912867952078278441409969503942666029068062015825245418932221343814564507832018947136279894"
);

/// Window width of the exponentiation: a table of 2^(W−1) = 16 odd powers.
const WINDOW: usize = 5;

/// ⌊m / 4⌋ of a little-endian 384-bit number (evaluated at compile time).
const fn shift_right_2(m: [u64; 6]) -> [u64; 6] {
    let mut out = [0u64; 6];
    let mut i = 0;
    while i < 6 {
        let high = if i + 1 < 6 { m[i + 1] << 62 } else { 0 };
        out[i] = (m[i] >> 2) | high;
        i += 1;
    }
    out
}

/// The decoded flag bits, with arkworks' rules applied: not compressed, or "largest" together with infinity,
/// is invalid.
struct Flags {
    infinity: bool,
    largest: bool,
}

fn flags(first: u8) -> Option<Flags> {
    let compressed = first & COMPRESSED != 0;
    let infinity = first & INFINITY != 0;
    let largest = first & LARGEST != 0;
    // arkworks: `get_flags` refuses largest && (!compressed || infinity); the compressed reader refuses
    // !compressed. Together: exactly this.
    if !compressed || (largest && infinity) {
        return None;
    }
    Some(Flags { infinity, largest })
}

/// A canonical Fq element from 48 big-endian bytes (flags already removed); `None` if the value is ≥ p.
fn fq_from_be(bytes: &[u8; FQ_LEN]) -> Option<Fq> {
    let mut limbs = [0u64; 6];
    // The most significant 8 bytes are the last limb.
    for (limb, chunk) in limbs.iter_mut().rev().zip(bytes.chunks_exact(8)) {
        *limb = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    }
    Fq::from_bigint(BigInt::new(limbs))
}

/// Bit `i` of a little-endian exponent (0 beyond its end).
fn bit(exp: &[u64; 6], i: usize) -> bool {
    exp.get(i / 64).is_some_and(|limb| (limb >> (i % 64)) & 1 == 1)
}

/// base^exp by left-to-right sliding windows of width [`WINDOW`] (variable time: the exponent is public).
fn pow_vartime(base: &Fq, exp: &[u64; 6]) -> Fq {
    // table[k] = base^(2k + 1)
    let mut table = [*base; 1 << (WINDOW - 1)];
    let square = base.square();
    let mut power = *base;
    for entry in table.iter_mut().skip(1) {
        power *= square;
        *entry = power;
    }

    let mut acc: Option<Fq> = None;
    let mut top = 64 * exp.len(); // one past the highest bit still to process
    while top > 0 {
        let i = top - 1;
        if !bit(exp, i) {
            if let Some(a) = acc.as_mut() {
                a.square_in_place();
            }
            top = i;
            continue;
        }
        // The window bits i..=lo, where lo is the lowest set bit among the next WINDOW bits: an odd value.
        let mut lo = i.saturating_sub(WINDOW - 1);
        while !bit(exp, lo) {
            lo += 1;
        }
        let value = (lo..=i).rev().fold(0usize, |v, j| (v << 1) | usize::from(bit(exp, j)));
        // `value` is odd and below 2^WINDOW, so the entry always exists.
        let entry = table.get(value >> 1).copied().unwrap_or(*base);
        acc = Some(match acc {
            None => entry,
            Some(mut a) => {
                for _ in lo..=i {
                    a.square_in_place();
                }
                a * entry
            }
        });
        top = lo;
    }
    acc.unwrap_or(Fq::ONE)
}

/// (s, t) = (a^((p−3)/4), a^((p+1)/4)). t is a square root of `a` if `a` is a square (the same value arkworks'
/// `Fq::sqrt` returns), and s·t = a^((p−1)/2) is the Legendre symbol of `a` (1, −1, or 0 for a = 0), so for
/// a ≠ 0 s = ±1/t.
fn sqrt_parts(a: &Fq) -> (Fq, Fq) {
    let s = pow_vartime(a, &P_MINUS_3_DIV_4);
    (s, s * a)
}

/// A square root in Fq, verified; `None` for non-squares.
fn sqrt_fq(a: &Fq) -> Option<Fq> {
    let (_, root) = sqrt_parts(a);
    (root.square() == *a).then_some(root)
}

/// A square root in Fq2 = Fq[u]/(u² + 1), verified; `None` for non-squares. The root may be the negation of
/// the one arkworks' `Fq2::sqrt` returns (callers fix the sign themselves).
///
/// The complex method (eprint 2012/685, Algorithm 8, as arkworks uses it) for a = c0 + c1·u with c1 ≠ 0:
/// α = √(c0² + c1²) (the norm; a is a square iff its norm is), δ± = (c0 ± α)/2, y = √δ + c1/(2√δ)·u for the
/// δ that is a square. arkworks spends a Legendre symbol, a second square root and an inversion on this; we
/// need one exponentiation: δ+·δ− = −c1²/4 is a non-square (−1 is one, as p ≡ 3 mod 4), so exactly one of
/// δ± is a square, and with (s, t) = [`sqrt_parts`]`(δ+)` (δ+ ≠ 0 as c1 ≠ 0), χ = s·t = ±1, t² = χ·δ+ and
/// 1/t = χ·s. If χ = 1 then y = t + c1/(2t)·u; otherwise t² = −δ+, (c1/(2t))² = δ−, and y = c1/(2t) + t·u.
/// Either way y² = δ+ + δ− + c1·u = a, which is checked at the end regardless.
fn sqrt_fq2(a: &Fq2) -> Option<Fq2> {
    let root = if a.c1.is_zero() {
        // √c0 in Fq if c0 is a square there, else √(−c0)·u (u² = −1).
        let (_, t) = sqrt_parts(&a.c0);
        if t.square() == a.c0 {
            Fq2::new(t, Fq::ZERO)
        } else {
            Fq2::new(Fq::ZERO, t)
        }
    } else {
        let alpha = sqrt_fq(&a.norm())?;
        let delta = (a.c0 + alpha) * TWO_INV;
        let (s, t) = sqrt_parts(&delta);
        let half_c1_s = a.c1 * TWO_INV * s; // c1/(2t) if χ = 1, −c1/(2t) if χ = −1
        if s * t == Fq::ONE {
            Fq2::new(t, half_c1_s)
        } else {
            Fq2::new(-half_c1_s, t)
        }
    };
    (root.square() == *a).then_some(root)
}

/// y or −y as arkworks' `get_point_from_x_unchecked` picks it: the larger (lexicographically, as field
/// elements are ordered in arkworks: integers for Fq, c1 first then c0 for Fq2) if the flag is set, else the
/// smaller.
fn choose_sign<F: Field + Ord>(y: F, largest: bool) -> F {
    let neg = -y;
    let (smaller, larger) = if y < neg { (y, neg) } else { (neg, y) };
    if largest {
        larger
    } else {
        smaller
    }
}

/// A G1 point from its 48-byte compressed encoding: on the curve and in the prime-order subgroup (the identity
/// is returned for the canonical infinity encoding). Accepts and rejects exactly what
/// `G1Affine::deserialize_compressed` does, with the same result.
pub(crate) fn g1_from_compressed(bytes: &[u8; 48]) -> Option<G1Affine> {
    let flags = flags(bytes[0])?;
    let mut x_bytes = *bytes;
    x_bytes[0] &= !FLAG_BITS;
    if flags.infinity {
        return x_bytes.iter().all(|&b| b == 0).then(G1Affine::identity);
    }
    let x = fq_from_be(&x_bytes)?;
    let y = sqrt_fq(&(x.square() * x + g1::Config::COEFF_B))?;
    let p = G1Affine::new_unchecked(x, choose_sign(y, flags.largest));
    (p.is_on_curve() && p.is_in_correct_subgroup_assuming_on_curve()).then_some(p)
}

/// A G2 point from its 96-byte compressed encoding (`x.c1 ‖ x.c0`, flags in the first byte): on the curve and
/// in the prime-order subgroup (the identity for the canonical infinity encoding). Accepts and rejects exactly
/// what `G2Affine::deserialize_compressed` does, with the same result.
pub(crate) fn g2_from_compressed(bytes: &[u8; 96]) -> Option<G2Affine> {
    let flags = flags(bytes[0])?;
    let (c1_bytes, c0_bytes) = bytes.split_at(FQ_LEN);
    let mut c1_bytes: [u8; FQ_LEN] = c1_bytes.try_into().ok()?;
    let c0_bytes: [u8; FQ_LEN] = c0_bytes.try_into().ok()?;
    c1_bytes[0] &= !FLAG_BITS;
    if flags.infinity {
        let all_zero = c1_bytes.iter().chain(&c0_bytes).all(|&b| b == 0);
        return all_zero.then(G2Affine::identity);
    }
    let x = Fq2::new(fq_from_be(&c0_bytes)?, fq_from_be(&c1_bytes)?);
    let y = sqrt_fq2(&(x.square() * x + g2::Config::COEFF_B))?;
    let p = G2Affine::new_unchecked(x, choose_sign(y, flags.largest));
    (p.is_on_curve() && p.is_in_correct_subgroup_assuming_on_curve()).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bls12_381::{FqConfig, Fr};
    use ark_ec::{AffineRepr, CurveGroup};
    use ark_ff::{BigInteger, MontConfig, UniformRand};
    use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
    use proptest::prelude::*;
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn ark_g1(bytes: &[u8; 48]) -> Option<G1Affine> {
        G1Affine::deserialize_compressed(&bytes[..]).ok()
    }

    fn ark_g2(bytes: &[u8; 96]) -> Option<G2Affine> {
        G2Affine::deserialize_compressed(&bytes[..]).ok()
    }

    fn enc_g1(p: &G1Affine) -> [u8; 48] {
        let mut out = [0u8; 48];
        p.serialize_compressed(&mut out[..]).expect("48 bytes");
        out
    }

    fn enc_g2(p: &G2Affine) -> [u8; 96] {
        let mut out = [0u8; 96];
        p.serialize_compressed(&mut out[..]).expect("96 bytes");
        out
    }

    /// Both decoders give the same answer; returns whether the bytes were accepted.
    fn agree_g1(bytes: &[u8; 48]) -> bool {
        let ours = g1_from_compressed(bytes);
        assert_eq!(ours, ark_g1(bytes), "G1 disagreement on {bytes:02x?}");
        ours.is_some()
    }

    fn agree_g2(bytes: &[u8; 96]) -> bool {
        let ours = g2_from_compressed(bytes);
        assert_eq!(ours, ark_g2(bytes), "G2 disagreement on {bytes:02x?}");
        ours.is_some()
    }

    fn fq_be(x: &Fq) -> [u8; 48] {
        let mut out = [0u8; 48];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(x.into_bigint().0.iter().rev()) {
            chunk.copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// p as 48 big-endian bytes.
    fn modulus_be() -> [u8; 48] {
        let mut out = [0u8; 48];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(<Fq as PrimeField>::MODULUS.0.iter().rev()) {
            chunk.copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// 48 big-endian bytes plus a small number.
    fn add_small(mut bytes: [u8; 48], mut k: u64) -> [u8; 48] {
        for b in bytes.iter_mut().rev() {
            let s = u64::from(*b) + (k & 0xff);
            *b = s as u8;
            k = (k >> 8) + (s >> 8);
        }
        bytes
    }

    #[test]
    fn constants() {
        let mut plus_one_div_four = BigInt(P_MINUS_3_DIV_4);
        plus_one_div_four.add_with_carry(&BigInt::from(1u64));
        assert_eq!(Some(plus_one_div_four), <FqConfig as MontConfig<6>>::MODULUS_PLUS_ONE_DIV_FOUR);
        assert_eq!(Some(TWO_INV), Fq::from(2u64).inverse());
        assert_eq!(
            shift_right_2([0b1011, 0b11, 0, 0, 0, u64::MAX]),
            [0b10 | 0b11 << 62, 0, 0, 0, 0b11 << 62, u64::MAX >> 2]
        );
        assert_eq!(fq_from_be(&modulus_be()), None);
        assert_eq!(fq_from_be(&add_small(modulus_be(), u64::MAX)), None);
    }

    #[test]
    fn pow_matches_arkworks() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for _ in 0..300 {
            let a = Fq::rand(&mut rng);
            let mut e = [0u64; 6];
            e.iter_mut().for_each(|l| *l = rng.next_u64());
            // Sparse and short exponents too.
            let mask = rng.next_u64();
            for (i, l) in e.iter_mut().enumerate() {
                if mask >> i & 1 == 1 {
                    *l &= rng.next_u64() & rng.next_u64();
                }
            }
            assert_eq!(pow_vartime(&a, &e), a.pow(e));
            assert_eq!(pow_vartime(&a, &[e[0] & 0xff, 0, 0, 0, 0, 0]), a.pow([e[0] & 0xff]));
        }
        for k in 0..64u64 {
            assert_eq!(pow_vartime(&Fq::from(3u64), &[k, 0, 0, 0, 0, 0]), Fq::from(3u64).pow([k]));
        }
        assert_eq!(pow_vartime(&Fq::from(5u64), &[0; 6]), Fq::ONE);
    }

    #[test]
    fn sqrt_matches_arkworks() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for i in 0..1000u64 {
            let a = if i < 20 { Fq::from(i) - Fq::from(10u64) } else { Fq::rand(&mut rng) };
            assert_eq!(sqrt_fq(&a), a.sqrt());
            let b = match i % 4 {
                0 => Fq2::new(a, Fq::ZERO),
                1 => Fq2::new(Fq::ZERO, a),
                _ => Fq2::new(a, Fq::rand(&mut rng)),
            };
            let ours = sqrt_fq2(&b);
            match b.sqrt() {
                None => assert_eq!(ours, None),
                Some(r) => assert!(ours == Some(r) || ours == Some(-r), "{b}"),
            }
            // And squares always have roots.
            let s = b.square();
            assert!(sqrt_fq2(&s).is_some_and(|r| r == b || r == -b));
        }
    }

    #[test]
    fn random_points_decode_like_arkworks() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (g1, g2) = (G1Affine::generator(), G2Affine::generator());
        for _ in 0..2000 {
            let p = (g1 * Fr::rand(&mut rng)).into_affine();
            for q in [p, -p] {
                let bytes = enc_g1(&q);
                assert_eq!(g1_from_compressed(&bytes), Some(q));
                assert!(agree_g1(&bytes));
            }
        }
        for _ in 0..1000 {
            let p = (g2 * Fr::rand(&mut rng)).into_affine();
            for q in [p, -p] {
                let bytes = enc_g2(&q);
                assert_eq!(g2_from_compressed(&bytes), Some(q));
                assert!(agree_g2(&bytes));
            }
        }
        assert!(agree_g1(&enc_g1(&g1)) && agree_g2(&enc_g2(&g2)));
    }

    #[test]
    fn damaged_encodings_agree() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let p1 = enc_g1(&(G1Affine::generator() * Fr::rand(&mut rng)).into_affine());
        let p2 = enc_g2(&(G2Affine::generator() * Fr::rand(&mut rng)).into_affine());
        // Every flag combination, every single bit flipped.
        for flags in 0..8u8 {
            let mut b1 = p1;
            b1[0] = (b1[0] & 0x1f) | flags << 5;
            agree_g1(&b1);
            let mut b2 = p2;
            b2[0] = (b2[0] & 0x1f) | flags << 5;
            agree_g2(&b2);
        }
        for bit in 0..48 * 8 {
            let mut b1 = p1;
            b1[bit / 8] ^= 1 << (bit % 8);
            agree_g1(&b1);
        }
        for bit in 0..96 * 8 {
            let mut b2 = p2;
            b2[bit / 8] ^= 1 << (bit % 8);
            agree_g2(&b2);
        }
    }

    #[test]
    fn infinity_encodings() {
        let mut inf1 = [0u8; 48];
        inf1[0] = 0xc0;
        assert_eq!(g1_from_compressed(&inf1), Some(G1Affine::identity()));
        assert!(agree_g1(&inf1));
        let mut inf2 = [0u8; 96];
        inf2[0] = 0xc0;
        assert_eq!(g2_from_compressed(&inf2), Some(G2Affine::identity()));
        assert!(agree_g2(&inf2));
        // Stray flag bits and stray bits anywhere else.
        for first in [0x40u8, 0x60, 0xe0, 0xc1, 0xd0, 0xc8] {
            let mut b1 = inf1;
            b1[0] = first;
            assert!(!agree_g1(&b1));
            let mut b2 = inf2;
            b2[0] = first;
            assert!(!agree_g2(&b2));
        }
        for bit in 0..47 * 8 {
            let mut b1 = inf1;
            b1[1 + bit / 8] ^= 1 << (bit % 8);
            assert!(!agree_g1(&b1));
        }
        for bit in 0..95 * 8 {
            let mut b2 = inf2;
            b2[1 + bit / 8] ^= 1 << (bit % 8);
            assert!(!agree_g2(&b2));
        }
        // The all-zero string (not compressed) is refused.
        assert!(!agree_g1(&[0u8; 48]) && !agree_g2(&[0u8; 96]));
    }

    #[test]
    fn x_not_below_p_is_refused() {
        for k in [0u64, 1, 2, 3, 1000, u64::MAX] {
            let x = add_small(modulus_be(), k);
            if x[0] & FLAG_BITS != 0 {
                continue;
            }
            for flag in [0x80u8, 0xa0] {
                let mut b1 = x;
                b1[0] |= flag;
                assert!(!agree_g1(&b1));
                // x.c1 ≥ p, x.c0 ≥ p, and both, each with an otherwise valid other half.
                let g2 = enc_g2(&G2Affine::generator());
                let mut c1_bad = g2;
                c1_bad[..48].copy_from_slice(&x);
                c1_bad[0] |= flag;
                assert!(!agree_g2(&c1_bad));
                let mut c0_bad = g2;
                c0_bad[48..].copy_from_slice(&x);
                c0_bad[0] = (c0_bad[0] & 0x1f) | flag;
                assert!(!agree_g2(&c0_bad));
                let mut both = [0u8; 96];
                both[..48].copy_from_slice(&x);
                both[48..].copy_from_slice(&x);
                both[0] |= flag;
                assert!(!agree_g2(&both));
            }
        }
        // The largest value that fits: all 381 bits set.
        let mut b1 = [0xffu8; 48];
        assert!(!agree_g1(&b1));
        b1[0] = 0x9f;
        assert!(!agree_g1(&b1));
        let mut b2 = [0xffu8; 96];
        b2[0] = 0x9f;
        assert!(!agree_g2(&b2));
    }

    #[test]
    fn small_x_values_agree() {
        // Off the curve, on the curve outside the subgroup, with both signs: arkworks tells them apart.
        let (mut off, mut outside) = (0, 0);
        for i in 0..300u64 {
            let x = Fq::from(i);
            match G1Affine::get_point_from_x_unchecked(x, false) {
                None => off += 1,
                Some(p) => {
                    assert!(p.is_on_curve());
                    if !p.is_in_correct_subgroup_assuming_on_curve() {
                        outside += 1;
                    }
                }
            }
            for flag in [0x80u8, 0xa0] {
                let mut b1 = fq_be(&x);
                b1[0] |= flag;
                agree_g1(&b1);
            }
            for x2 in [Fq2::new(x, Fq::ZERO), Fq2::new(Fq::ZERO, x), Fq2::new(x, Fq::from(i + 1))] {
                match G2Affine::get_point_from_x_unchecked(x2, true) {
                    None => off += 1,
                    Some(p) => {
                        if !p.is_in_correct_subgroup_assuming_on_curve() {
                            outside += 1;
                        }
                    }
                }
                for flag in [0x80u8, 0xa0] {
                    let mut b2 = [0u8; 96];
                    b2[..48].copy_from_slice(&fq_be(&x2.c1));
                    b2[48..].copy_from_slice(&fq_be(&x2.c0));
                    b2[0] |= flag;
                    agree_g2(&b2);
                }
            }
        }
        assert!(off > 100 && outside > 100, "{off} off the curve, {outside} outside the subgroup");
    }

    #[test]
    fn random_bytes_agree() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        for _ in 0..3000 {
            let mut b1 = [0u8; 48];
            rng.fill_bytes(&mut b1);
            agree_g1(&b1);
            b1[0] |= 0x80; // reach the square root
            agree_g1(&b1);
            let mut b2 = [0u8; 96];
            rng.fill_bytes(&mut b2);
            agree_g2(&b2);
            b2[0] |= 0x80;
            agree_g2(&b2);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_g1_bytes_agree(bytes in proptest::array::uniform32(any::<u8>()), tail in proptest::array::uniform16(any::<u8>())) {
            let mut b = [0u8; 48];
            b[..32].copy_from_slice(&bytes);
            b[32..].copy_from_slice(&tail);
            prop_assert_eq!(g1_from_compressed(&b), ark_g1(&b));
        }

        #[test]
        fn arbitrary_g2_bytes_agree(a in proptest::array::uniform32(any::<u8>()), b in proptest::array::uniform32(any::<u8>()), c in proptest::array::uniform32(any::<u8>())) {
            let mut x = [0u8; 96];
            x[..32].copy_from_slice(&a);
            x[32..64].copy_from_slice(&b);
            x[64..].copy_from_slice(&c);
            prop_assert_eq!(g2_from_compressed(&x), ark_g2(&x));
        }

        #[test]
        fn valid_points_with_one_byte_changed_agree(seed in any::<u64>(), at in 0usize..96, value in any::<u8>()) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let mut b1 = enc_g1(&(G1Affine::generator() * Fr::rand(&mut rng)).into_affine());
            b1[at % 48] = value;
            prop_assert_eq!(g1_from_compressed(&b1), ark_g1(&b1));
            let mut b2 = enc_g2(&(G2Affine::generator() * Fr::rand(&mut rng)).into_affine());
            b2[at] = value;
            prop_assert_eq!(g2_from_compressed(&b2), ark_g2(&b2));
        }
    }
}
