//! One-shot hybrid sealing: a fresh FAME capsule per message, its data key through HKDF into
//! ChaCha20-Poly1305, with the whole header as associated data.
//!
//! ```text
//! sealed = "SMQA" ‖ 0x01 ‖ 0x05 ‖ u32_be(len(capsule)) ‖ capsule ‖ AEAD ciphertext ‖ tag(16)
//! (key ‖ nonce) = HKDF-SHA-256(salt = "smqtt/v1/seal/chacha20poly1305", ikm = data key,
//!                              info = SHA-256(header)), header = everything before the AEAD ciphertext
//! AAD = header
//! ```
//!
//! **Nonce rule.** Each sealed message has its own capsule and therefore its own data key, so every
//! (key, nonce) pair is used exactly once; the nonce is derived with the key. Protocols that reuse a data key
//! for many messages (the MQTT envelope) need their own nonce discipline and must not use this module.
//!
//! ```
//! use smqtt_abe::{seal, setup, AttributeSet, Policy};
//! let mut rng = rand_core::OsRng;
//! let (pk, msk) = setup(&mut rng)?;
//! let alice = msk.keygen(&pk, &AttributeSet::parse("role:operator, site:berlin")?, &mut rng)?;
//! let policy = Policy::parse("(role:operator and site:berlin) or role:admin")?;
//! let sealed = seal::seal(&pk, &policy, b"23.5 C", &mut rng)?;
//! assert_eq!(seal::open(&pk, &alice, &sealed)?.as_slice(), b"23.5 C");
//! # Ok::<(), smqtt_abe::Error>(())
//! ```

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::encoding::{header, Kind, Reader};
use crate::error::{Error, Limit, Result};
use crate::kdf;
use crate::keys::{Capsule, DataKey, PublicKey, UserKey};
use crate::limits::{MAX_OBJECT_LEN, MAX_SEALED_PLAINTEXT};
use crate::policy::Policy;

fn cipher(key: &DataKey, header_bytes: &[u8]) -> Result<(ChaCha20Poly1305, Nonce)> {
    let okm = kdf::seal_key(key.expose_secret(), &kdf::sha256(header_bytes));
    let cipher = ChaCha20Poly1305::new_from_slice(&okm[..32]).map_err(|_| Error::DecryptionFailed)?;
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&okm[32..44]);
    Ok((cipher, Nonce::from(nonce)))
}

fn sealed_header(capsule: &[u8]) -> Vec<u8> {
    let mut out = header(Kind::Sealed);
    out.extend_from_slice(&u32::try_from(capsule.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(capsule);
    out
}

/// Encrypts `plaintext` so that only keys satisfying `policy` can read it.
///
/// # Errors
/// Policy errors, [`Error::LimitExceeded`] past [`MAX_SEALED_PLAINTEXT`], [`Error::Rng`].
pub fn seal<R: RngCore + CryptoRng>(pk: &PublicKey, policy: &Policy, plaintext: &[u8], rng: &mut R) -> Result<Vec<u8>> {
    if plaintext.len() > MAX_SEALED_PLAINTEXT {
        return Err(Error::LimitExceeded { what: Limit::EncodedLength, limit: MAX_SEALED_PLAINTEXT });
    }
    let (key, capsule) = pk.encapsulate(policy, rng)?;
    let mut out = sealed_header(&capsule.to_bytes());
    let (cipher, nonce) = cipher(&key, &out)?;
    let body = cipher.encrypt(&nonce, Payload { msg: plaintext, aad: &out }).map_err(|_| Error::DecryptionFailed)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Splits a sealed message into its header bytes, capsule and AEAD body, validating the capsule.
fn split(sealed: &[u8]) -> Result<(&[u8], Capsule, &[u8])> {
    if sealed.len() > MAX_SEALED_PLAINTEXT + MAX_OBJECT_LEN {
        return Err(Error::LimitExceeded { what: Limit::EncodedLength, limit: MAX_SEALED_PLAINTEXT + MAX_OBJECT_LEN });
    }
    let mut r = Reader::open(sealed, Kind::Sealed, "sealed message")?;
    let capsule_bytes = r.len_prefixed(MAX_OBJECT_LEN)?;
    let body = r.rest();
    if body.len() < 16 {
        return Err(Error::Malformed { what: "sealed message", reason: "truncated" });
    }
    let capsule = Capsule::from_bytes(capsule_bytes)?;
    let header_len = sealed.len() - body.len();
    Ok((&sealed[..header_len], capsule, body))
}

/// The policy a sealed message was encrypted under (validates the whole header).
///
/// # Errors
/// [`Error::Malformed`] and friends for an invalid message.
pub fn sealed_policy(sealed: &[u8]) -> Result<Policy> {
    split(sealed).map(|(_, capsule, _)| capsule.policy().clone())
}

/// Decrypts a sealed message.
///
/// # Errors
/// [`Error::PolicyNotSatisfied`] when the key's attributes do not satisfy the policy,
/// [`Error::DecryptionFailed`] for any cryptographic failure (tampering included), [`Error::Malformed`] for a
/// message that does not parse, [`Error::ParameterMismatch`] for another parameter set.
pub fn open(pk: &PublicKey, key: &UserKey, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let (header_bytes, capsule, body) = split(sealed)?;
    let data_key = key.decapsulate(pk, &capsule)?;
    let (cipher, nonce) = cipher(&data_key, header_bytes)?;
    cipher
        .decrypt(&nonce, Payload { msg: body, aad: header_bytes })
        .map(Zeroizing::new)
        .map_err(|_| Error::DecryptionFailed)
}
