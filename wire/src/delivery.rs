//! Key delivery: the authority seals a device's attribute key to the X25519 reply key of its request
//! (`docs/wire.md` §5). An ECIES in the style of age's X25519 recipient and HPKE's base mode:
//!
//! ```text
//! eph      = fresh X25519 secret, eph_pub = X25519(eph, 9)
//! shared   = X25519(eph, reply_key)                      ; all-zero (low-order reply key) is refused
//! key      = HKDF-SHA-256(ikm = shared, salt = eph_pub ‖ reply_key, info = "smqtt/key-delivery/v1" ‖ context)
//! sealed   = eph_pub (32) ‖ ChaCha20-Poly1305(key, nonce = 0^12, aad = context, plaintext)   ; ciphertext ‖ tag (16)
//! ```
//!
//! The all-zero nonce is safe because every key is used once: it is derived from a fresh ephemeral secret.

use core::fmt::{self, Debug, Formatter};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::{malformed, Error, Result};
use crate::limits::{MAX_DELIVERY_CONTEXT, MAX_DELIVERY_PLAINTEXT};

/// The HKDF `info` prefix of key deliveries (the caller's context follows it).
pub const KEY_DELIVERY_LABEL: &[u8] = b"smqtt/key-delivery/v1";
/// Bytes a sealed delivery adds to its plaintext: the ephemeral public key and the tag.
pub const DELIVERY_OVERHEAD: usize = 32 + 16;

/// The device's ephemeral X25519 secret while it waits for a sealed key; its [`public`](Self::public) half goes
/// into the [`KeyRequest`](crate::KeyRequest).
///
/// Zeroized on drop, printed as `ReplySecret(<redacted>)`, compared in constant time, never exported.
pub struct ReplySecret(StaticSecret);

impl ReplySecret {
    /// A fresh secret from `rng` (use `rand_core::OsRng` outside tests).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> ReplySecret {
        ReplySecret(StaticSecret::random_from_rng(rng))
    }

    /// The secret with the 32 bytes `bytes` (an X25519 scalar, clamped when used), for a device that keeps its
    /// pending request across a restart, and for test vectors. There is deliberately no way back to bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> ReplySecret {
        ReplySecret(StaticSecret::from(*bytes))
    }

    /// The X25519 public key to put in the request's `reply_key`.
    pub fn public(&self) -> [u8; 32] {
        PublicKey::from(&self.0).to_bytes()
    }

    /// Opens a delivery made by [`seal_to`] for this secret's public key with the same `context`.
    ///
    /// # Errors
    /// [`Error::DecryptionFailed`] for a wrong secret, a wrong context, any modification, or a low-order
    /// ephemeral key; [`Error::Malformed`] for input shorter than [`DELIVERY_OVERHEAD`];
    /// [`Error::LimitExceeded`] for input or context beyond the [limits](crate::limits).
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        check_context(context)?;
        if sealed.len() > MAX_DELIVERY_PLAINTEXT + DELIVERY_OVERHEAD {
            return Err(Error::LimitExceeded {
                what: "sealed key delivery bytes",
                limit: MAX_DELIVERY_PLAINTEXT + DELIVERY_OVERHEAD,
            });
        }
        if sealed.len() < DELIVERY_OVERHEAD {
            return Err(malformed("sealed key delivery", "truncated"));
        }
        let (eph_pub, body) = sealed.split_at(32);
        let mut eph = [0u8; 32];
        eph.copy_from_slice(eph_pub);
        let shared = self.0.diffie_hellman(&PublicKey::from(eph));
        if !shared.was_contributory() {
            return Err(Error::DecryptionFailed);
        }
        let cipher = cipher(shared.as_bytes(), &eph, &self.public(), context)?;
        cipher
            .decrypt(&Nonce::from([0u8; 12]), Payload { msg: body, aad: context })
            .map(Zeroizing::new)
            .map_err(|_| Error::DecryptionFailed)
    }
}

/// Seals `plaintext` to the X25519 public key `reply_key`, bound to `context` (see the module docs).
///
/// `context` should name what is delivered and to whom (for instance the request's signing bytes), so that a
/// delivery cannot be replayed as the answer to another request.
///
/// # Errors
/// [`Error::Malformed`] for a low-order `reply_key` (including all zeros), whose shared secret would be
/// predictable; [`Error::LimitExceeded`] for a plaintext beyond [`MAX_DELIVERY_PLAINTEXT`] or a context beyond
/// [`MAX_DELIVERY_CONTEXT`]; [`Error::Rng`] if `rng` fails.
pub fn seal_to<R: RngCore + CryptoRng>(
    reply_key: &[u8; 32],
    context: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>> {
    check_context(context)?;
    if plaintext.len() > MAX_DELIVERY_PLAINTEXT {
        return Err(Error::LimitExceeded { what: "key delivery plaintext bytes", limit: MAX_DELIVERY_PLAINTEXT });
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    rng.try_fill_bytes(seed.as_mut()).map_err(|_| Error::Rng)?;
    let eph = StaticSecret::from(*seed);
    let eph_pub = PublicKey::from(&eph).to_bytes();
    let shared = eph.diffie_hellman(&PublicKey::from(*reply_key));
    if !shared.was_contributory() {
        return Err(malformed("reply key", "low-order X25519 point"));
    }
    let cipher = cipher(shared.as_bytes(), &eph_pub, reply_key, context)?;
    let body = cipher
        .encrypt(&Nonce::from([0u8; 12]), Payload { msg: plaintext, aad: context })
        .map_err(|_| Error::LimitExceeded { what: "key delivery plaintext bytes", limit: MAX_DELIVERY_PLAINTEXT })?;
    let mut out = Vec::with_capacity(32 + body.len());
    out.extend_from_slice(&eph_pub);
    out.extend_from_slice(&body);
    Ok(out)
}

fn check_context(context: &[u8]) -> Result<()> {
    if context.len() > MAX_DELIVERY_CONTEXT {
        return Err(Error::LimitExceeded { what: "key delivery context bytes", limit: MAX_DELIVERY_CONTEXT });
    }
    Ok(())
}

/// The single-use AEAD of one delivery.
fn cipher(shared: &[u8; 32], eph_pub: &[u8; 32], reply_key: &[u8; 32], context: &[u8]) -> Result<ChaCha20Poly1305> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(eph_pub);
    salt[32..].copy_from_slice(reply_key);
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA-256's 8160-byte output bound, the only failure of `expand_multi_info`.
    hk.expand_multi_info(&[KEY_DELIVERY_LABEL, context], key.as_mut()).map_err(|_| Error::DecryptionFailed)?;
    ChaCha20Poly1305::new_from_slice(key.as_ref()).map_err(|_| Error::DecryptionFailed)
}

impl Debug for ReplySecret {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("ReplySecret(<redacted>)")
    }
}

impl ConstantTimeEq for ReplySecret {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.as_bytes().ct_eq(other.0.as_bytes())
    }
}

impl PartialEq for ReplySecret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for ReplySecret {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn the_layout_is_eph_pub_then_aead() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let secret = ReplySecret::generate(&mut rng);
        let sealed = seal_to(&secret.public(), b"ctx", b"key", &mut rng).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sealed.len(), 3 + DELIVERY_OVERHEAD);
        // Recompute the AEAD by hand from the ephemeral public key the receiver sees.
        let mut eph = [0u8; 32];
        eph.copy_from_slice(&sealed[..32]);
        let shared = secret.0.diffie_hellman(&PublicKey::from(eph));
        let hk = Hkdf::<Sha256>::new(Some(&[&eph[..], &secret.public()[..]].concat()), shared.as_bytes());
        let mut key = [0u8; 32];
        hk.expand(b"smqtt/key-delivery/v1ctx", &mut key).unwrap_or_else(|e| panic!("{e}"));
        let aead = ChaCha20Poly1305::new_from_slice(&key).unwrap_or_else(|e| panic!("{e}"));
        let plain = aead.decrypt(&Nonce::from([0u8; 12]), Payload { msg: &sealed[32..], aad: b"ctx" });
        assert_eq!(plain.as_deref(), Ok(&b"key"[..]));
    }

    #[test]
    fn secrets_are_redacted_and_compared() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let a = ReplySecret::generate(&mut rng);
        let b = ReplySecret::generate(&mut rng);
        assert_eq!(format!("{a:?}"), "ReplySecret(<redacted>)");
        assert!(a == a && a != b);
        assert_ne!(a.public(), b.public());
    }

    #[test]
    fn bounds() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let secret = ReplySecret::generate(&mut rng);
        let big = vec![0u8; MAX_DELIVERY_PLAINTEXT + 1];
        assert!(matches!(seal_to(&secret.public(), b"", &big, &mut rng), Err(Error::LimitExceeded { .. })));
        let context = vec![0u8; MAX_DELIVERY_CONTEXT + 1];
        assert!(matches!(seal_to(&secret.public(), &context, b"", &mut rng), Err(Error::LimitExceeded { .. })));
        assert!(matches!(secret.open(&context, &[0u8; 48]), Err(Error::LimitExceeded { .. })));
        let huge = vec![0u8; MAX_DELIVERY_PLAINTEXT + DELIVERY_OVERHEAD + 1];
        assert!(matches!(secret.open(b"", &huge), Err(Error::LimitExceeded { .. })));
        let max = vec![7u8; MAX_DELIVERY_PLAINTEXT];
        let sealed = seal_to(&secret.public(), b"", &max, &mut rng).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(secret.open(b"", &sealed).map(|p| p.len()), Ok(MAX_DELIVERY_PLAINTEXT));
    }
}
