//! Low-level access for negative tests: run the decapsulation equation with key parts of the caller's choosing,
//! **skipping the satisfaction check**. Nothing here is needed to use the crate. It exists so that tests can
//! show that a key which must not decrypt fails *in the pairing equation* (design notes, `pitfalls.md` §10),
//! not merely in a policy pre-check.

use std::collections::HashMap;

use rand_core::{CryptoRng, RngCore};

use crate::error::{Error, Result};
use crate::fame::{finish_decapsulation, pairing_value};
use crate::kdf::gt_bytes;
use crate::keys::{Capsule, DataKey, PublicKey, UserKey};
use crate::policy::Policy;

/// The raw KEM value K = s1·T1 + s2·T2 ∈ GT, as its 576 canonical bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct RawKem(Vec<u8>);

impl core::fmt::Debug for RawKem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RawKem(<redacted>)")
    }
}

/// Encapsulates like [`PublicKey::encapsulate`] and also returns the raw K, for comparison.
///
/// # Errors
/// As [`PublicKey::encapsulate`].
pub fn encapsulate_raw<R: RngCore + CryptoRng>(
    pk: &PublicKey,
    policy: &Policy,
    rng: &mut R,
) -> Result<(DataKey, Capsule, RawKem)> {
    let mut seed = [0u8; 32];
    rng.try_fill_bytes(&mut seed).map_err(|_| Error::Rng)?;
    let (key, capsule, k) = pk.encapsulate_with_seed(policy, &seed)?;
    Ok((key, capsule, RawKem(gt_bytes(&k).to_vec())))
}

/// Runs the pairing equation with `base`'s sk0 and sk′ plus key parts pooled from `base` and `donors`
/// (collusion), with no satisfaction check. Rows are combined with the reconstruction coefficients of the
/// pooled labels if they satisfy the policy, otherwise with those of a full attribute set, leaving out every row
/// the pool lacks. Returns the raw K′ the equation produced and the result of the CCA check on it.
pub fn forced_decapsulate(
    pk: &PublicKey,
    capsule: &Capsule,
    base: &UserKey,
    donors: &[&UserKey],
) -> (RawKem, Result<DataKey>) {
    let mut pool = HashMap::new();
    for key in core::iter::once(base).chain(donors.iter().copied()) {
        for (label, part) in key.labels.iter().zip(&key.parts) {
            pool.entry(label.clone()).or_insert(*part);
        }
    }
    let gammas = capsule
        .lsss
        .coefficients(|l| pool.contains_key(l))
        .or_else(|| capsule.lsss.coefficients(|_| true))
        .unwrap_or_default();
    let used: Vec<_> = gammas
        .into_iter()
        .filter_map(|(row, gamma)| {
            let part = pool.get(&capsule.lsss.labels()[row])?;
            Some((*part, capsule.rows[row], gamma))
        })
        .collect();
    match pairing_value(base.prepared(), &base.sk_prime, &used, &capsule.ct0) {
        Some(k) => (RawKem(gt_bytes(&k).to_vec()), finish_decapsulation(pk, capsule, &k)),
        None => (RawKem(Vec::new()), Err(Error::DecryptionFailed)),
    }
}

/// The pairing part of decapsulation alone — no FO re-encryption check, no key derivation — so that benchmarks
/// can report what the CCA check costs. `None` if the key does not satisfy the policy.
pub fn pairing_only(key: &UserKey, capsule: &Capsule) -> Option<RawKem> {
    let gammas = capsule.lsss.coefficients(|l| key.index.contains_key(l))?;
    let used: Vec<_> = gammas
        .into_iter()
        .filter_map(|(row, gamma)| {
            let part = key.index.get(&capsule.lsss.labels()[row]).and_then(|&i| key.parts.get(i))?;
            Some((*part, capsule.rows[row], gamma))
        })
        .collect();
    pairing_value(key.prepared(), &key.sk_prime, &used, &capsule.ct0).map(|k| RawKem(gt_bytes(&k).to_vec()))
}
