//! Ed25519 signatures with domain separation (RFC 8032 Ed25519, strict verification).
//!
//! Every signature covers `u64be(len(domain)) ‖ domain ‖ message`, so a signature made for one purpose (a
//! credential, a key request, an enrollment) never verifies for another. Verification is dalek's
//! `verify_strict`: non-canonical `S`, non-canonical `R`, and small-order `R` or public keys are refused.

use core::fmt::{self, Debug, Formatter};

use ed25519_dalek::Signer as _;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::error::{malformed, Error, Result};

/// The bytes an Ed25519 signature in `domain` over the concatenation of `message` covers.
fn signing_input(domain: &[u8], message: &[&[u8]]) -> Vec<u8> {
    let len = message.iter().map(|part| part.len()).sum::<usize>();
    let mut input = Vec::with_capacity(8 + domain.len() + len);
    // usize → u64 is lossless on every target Rust supports (pointers are at most 64 bits).
    input.extend_from_slice(&(domain.len() as u64).to_be_bytes());
    input.extend_from_slice(domain);
    for part in message {
        input.extend_from_slice(part);
    }
    input
}

/// An Ed25519 signing key: the authority's, or a device's.
///
/// Zeroized on drop, printed as `SigningKey(<redacted>)`, compared in constant time. Export only through
/// [`SigningKey::to_bytes`].
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A fresh key from `rng` (use `rand_core::OsRng` outside tests).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::generate(rng))
    }

    /// The key with the 32-byte RFC 8032 secret `bytes` (the seed, not the expanded key).
    pub fn from_bytes(bytes: &[u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(bytes))
    }

    /// The 32-byte secret, zeroized when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// Signs `u64be(len(domain)) ‖ domain ‖ message`. Deterministic (RFC 8032).
    pub fn sign(&self, domain: &[u8], message: &[u8]) -> [u8; 64] {
        self.sign_parts(domain, &[message])
    }

    /// [`sign`](Self::sign) over the concatenation of `message`, copied once.
    pub(crate) fn sign_parts(&self, domain: &[u8], message: &[&[u8]]) -> [u8; 64] {
        self.0.sign(&signing_input(domain, message)).to_bytes()
    }
}

impl Debug for SigningKey {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl ConstantTimeEq for SigningKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.as_bytes().ct_eq(other.0.as_bytes())
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for SigningKey {}

/// An Ed25519 public key: the canonical encoding of a curve point that is not of small order (validated by
/// [`VerifyingKey::from_bytes`]). Printed as hex; it is public. Kept decompressed, so that verifying does not
/// decompress the point again for every signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// Decodes a public key.
    ///
    /// # Errors
    /// [`Error::Malformed`] for bytes that do not decode to a curve point, a non-canonical encoding (y ≥ p, or
    /// the sign bit set on x = 0), or a point of small order (which would let one signature verify for many
    /// messages).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<VerifyingKey> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map_err(|_| malformed("Ed25519 key", "not a curve point"))?;
        if key.to_edwards().compress().to_bytes() != *bytes {
            return Err(malformed("Ed25519 key", "non-canonical encoding"));
        }
        if key.is_weak() {
            return Err(malformed("Ed25519 key", "point of small order"));
        }
        Ok(VerifyingKey(key))
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Checks `signature` over `u64be(len(domain)) ‖ domain ‖ message` with strict Ed25519 verification.
    ///
    /// # Errors
    /// [`Error::BadSignature`].
    pub fn verify(&self, domain: &[u8], message: &[u8], signature: &[u8; 64]) -> Result<()> {
        self.verify_parts(domain, &[message], signature)
    }

    /// [`verify`](Self::verify) over the concatenation of `message`, copied once.
    pub(crate) fn verify_parts(&self, domain: &[u8], message: &[&[u8]], signature: &[u8; 64]) -> Result<()> {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(&signing_input(domain, message), &signature).map_err(|_| Error::BadSignature)
    }

    /// The first 16 bytes of SHA-256 of the encoding, as 32 lowercase hex digits: a short name for logs and
    /// configuration.
    pub fn fingerprint(&self) -> String {
        hex::encode(&Sha256::digest(self.0.to_bytes())[..16])
    }
}

impl Debug for VerifyingKey {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", hex::encode(self.0.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn sign_verify_and_domain_separation() {
        let sk = key(7);
        let vk = sk.verifying_key();
        let sig = sk.sign(b"smqtt/test/v1", b"hello");
        assert_eq!(vk.verify(b"smqtt/test/v1", b"hello", &sig), Ok(()));
        assert_eq!(vk.verify(b"smqtt/test/v2", b"hello", &sig), Err(Error::BadSignature));
        assert_eq!(vk.verify(b"smqtt/test/v1", b"hellO", &sig), Err(Error::BadSignature));
        // The length prefix keeps (domain, message) splits apart.
        assert_eq!(vk.verify(b"smqtt/test/v1h", b"ello", &sig), Err(Error::BadSignature));
        assert_eq!(key(8).verifying_key().verify(b"smqtt/test/v1", b"hello", &sig), Err(Error::BadSignature));
    }

    #[test]
    fn secrets_are_redacted_and_round_trip() {
        let sk = key(1);
        assert_eq!(format!("{sk:?}"), "SigningKey(<redacted>)");
        assert_eq!(*sk.to_bytes(), [1u8; 32]);
        assert_eq!(SigningKey::from_bytes(&sk.to_bytes()), sk);
        assert_ne!(key(2), sk);
        let vk = sk.verifying_key();
        assert_eq!(VerifyingKey::from_bytes(&vk.to_bytes()), Ok(vk));
        assert_eq!(format!("{vk:?}"), format!("VerifyingKey({})", hex::encode(vk.to_bytes())));
    }

    /// RFC 8032 §7.1, test 1: the key pair, the signature of the empty message, and our fingerprint of the key
    /// (SHA-256 computed independently).
    #[test]
    fn rfc8032_test_1() {
        let secret = unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let sk = SigningKey::from_bytes(&secret.try_into().unwrap_or_else(|_| panic!("32 bytes")));
        let vk = sk.verifying_key();
        assert_eq!(hex::encode(vk.to_bytes()), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let rfc_signature = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
        assert_eq!(hex::encode(sk.0.sign(b"").to_bytes()), rfc_signature);
        // Ours is that scheme over the length-prefixed domain: the empty domain and message is 8 zero bytes.
        assert_eq!(sk.sign(b"", b""), sk.0.sign(&[0u8; 8]).to_bytes());
        assert_eq!(vk.fingerprint(), "21fe31dfa154a261626bf854046fd227");
    }

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap_or_else(|e| panic!("{e}"))
    }
}
