//! Key derivation: every secret that leaves the pairing goes through HKDF-SHA-256 with a label of its own.
//! Labels are listed in `docs/format.md` §"Derivations".

use ark_bls12_381::Fr;
use ark_ff::PrimeField;
use ark_serialize::CanonicalSerialize;
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::keys::{Gt, ParamsId};

/// FO coins: (s1, s2) = HKDF(salt = label, ikm = seed, info = params id ‖ len ‖ canonical policy).
pub(crate) const COINS_LABEL: &[u8] = b"smqtt/v1/fame/coins";
/// Mask for the FO seed: HKDF(salt = label, ikm = K, info = params id).
pub(crate) const SEED_MASK_LABEL: &[u8] = b"smqtt/v1/fame/seed-mask";
/// Data key: HKDF(salt = label, ikm = K ‖ seed, info = SHA-256(capsule encoding)).
pub(crate) const DATA_KEY_LABEL: &[u8] = b"smqtt/v1/fame/data-key";
/// Payload key and nonce of a sealed file: HKDF(salt = label, ikm = data key, info = SHA-256(header)).
pub(crate) const SEAL_LABEL: &[u8] = b"smqtt/v1/seal/chacha20poly1305";

fn expand<const N: usize>(salt: &[u8], ikm: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; N]> {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut out = Zeroizing::new([0u8; N]);
    // N ≤ 255 · 32 for every caller in this crate, the only failure case of `expand_multi_info`.
    if hk.expand_multi_info(info, out.as_mut()).is_err() {
        unreachable!("HKDF output length {N} out of range");
    }
    out
}

/// The FO coins for a seed and a canonical policy.
pub(crate) fn coins(params: &ParamsId, policy_text: &[u8], seed: &[u8; 32]) -> [Fr; 2] {
    let len = u32::try_from(policy_text.len()).unwrap_or(u32::MAX).to_be_bytes();
    let wide = expand::<128>(COINS_LABEL, seed, &[params.as_bytes(), &len, policy_text]);
    [Fr::from_le_bytes_mod_order(&wide[..64]), Fr::from_le_bytes_mod_order(&wide[64..])]
}

/// The canonical bytes of a GT element (576 bytes), zeroized on drop.
pub(crate) fn gt_bytes(k: &Gt) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(576));
    if k.serialize_compressed(&mut *out).is_err() {
        unreachable!("serialising into a Vec cannot fail");
    }
    out
}

/// The mask that hides the FO seed.
pub(crate) fn seed_mask(params: &ParamsId, k: &[u8]) -> Zeroizing<[u8; 32]> {
    expand::<32>(SEED_MASK_LABEL, k, &[params.as_bytes()])
}

/// The data key bound to the whole capsule.
pub(crate) fn data_key(k: &[u8], seed: &[u8; 32], capsule_digest: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut ikm = Zeroizing::new(Vec::with_capacity(k.len() + 32));
    ikm.extend_from_slice(k);
    ikm.extend_from_slice(seed);
    expand::<32>(DATA_KEY_LABEL, &ikm, &[capsule_digest])
}

/// AEAD key (32 bytes) and nonce (12 bytes) for one sealed message.
pub(crate) fn seal_key(data_key: &[u8; 32], header_digest: &[u8; 32]) -> Zeroizing<[u8; 44]> {
    expand::<44>(SEAL_LABEL, data_key, &[header_digest])
}

/// SHA-256.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
