//! Fixed-base scalar multiplication with precomputed window tables, for the bases that never change
//! (g, h, and a public key's H1, H2, T1, T2).
//!
//! The table is arkworks' `BatchMulPreprocessing` (w = 8: 32 windows of 256 multiples); the evaluation below
//! accumulates in projective form so a single product costs 32 additions and no inversion. Table lookups are
//! indexed by secret scalar bits, so this is **not constant-time** (see the crate's security notes).

use ark_ec::scalar_mul::{BatchMulPreprocessing, ScalarMul};
use ark_ff::{BigInteger, PrimeField};

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
