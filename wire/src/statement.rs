//! What the authority signs besides credentials (`docs/wire.md` §10): epoch statements that devices and brokers
//! follow, the binding of a key delivery to the request it answers, and the authority key pinned in an
//! enrollment token.
//!
//! ```
//! use smqtt_wire::{EpochBody, EpochStatement, Error, SigningKey};
//!
//! let authority = SigningKey::from_bytes(&[1; 32]);
//! let body = EpochBody { epoch: 7, started_at: 1_700_000_000, issued_at: 1_700_000_060, params_id: [9; 32] };
//! let text = body.sign(&authority);
//! assert!(text.starts_with("smqtt-epoch1."));
//!
//! // A broker or device, with the pinned authority key: nothing is readable before the signature checks.
//! let verified = EpochStatement::parse(&text)?.verify(&authority.verifying_key())?;
//! assert_eq!(verified.epoch(), 7);
//! assert_eq!(verified.to_text(), text);
//! let impostor = SigningKey::from_bytes(&[2; 32]).verifying_key();
//! assert_eq!(EpochStatement::parse(&text)?.verify(&impostor).err(), Some(Error::BadSignature));
//! # Ok::<(), Error>(())
//! ```

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::error::{malformed, Error, Result};
use crate::request::KeyRequest;
use crate::sign::{SigningKey, VerifyingKey};

/// The signature domain of epoch statements.
pub const EPOCH_DOMAIN: &[u8] = b"smqtt/epoch/v1";
/// The signature domain of key deliveries ([`KeyDelivery`]).
pub const KEY_DELIVERY_DOMAIN: &[u8] = b"smqtt/key-delivery/v1";
/// The text prefix of an epoch statement (format version 1).
pub const EPOCH_STATEMENT_PREFIX: &str = "smqtt-epoch1.";
/// The text prefix of enrollment tokens.
pub const ENROLL_TOKEN_PREFIX: &str = "smqtt-enroll-";

const BODY_LEN: usize = 8 + 8 + 8 + 32;
const STATEMENT_LEN: usize = BODY_LEN + 64;
/// Longest statement text looked at (prefix, base64 and some surrounding whitespace).
const MAX_STATEMENT_TEXT: usize = 512;
/// Longest enrollment token looked at.
const MAX_TOKEN_TEXT: usize = 128;

/// What the authority states about an epoch: its number, when it started, when the statement was made, and the
/// FAME public parameters (their [`ParamsId`](smqtt_abe::ParamsId) bytes) every key of the epoch belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochBody {
    /// The epoch number (from 1).
    pub epoch: u64,
    /// When the epoch started, unix seconds.
    pub started_at: u64,
    /// When the authority made this statement, unix seconds.
    pub issued_at: u64,
    /// SHA-256 of the FAME public key's encoding (`smqtt_abe::PublicKey::id`).
    pub params_id: [u8; 32],
}

impl EpochBody {
    /// The signed bytes: `u64be(epoch) ‖ u64be(started_at) ‖ u64be(issued_at) ‖ params_id (32)`.
    pub fn signing_bytes(&self) -> [u8; BODY_LEN] {
        let mut out = [0u8; BODY_LEN];
        out[..8].copy_from_slice(&self.epoch.to_be_bytes());
        out[8..16].copy_from_slice(&self.started_at.to_be_bytes());
        out[16..24].copy_from_slice(&self.issued_at.to_be_bytes());
        out[24..].copy_from_slice(&self.params_id);
        out
    }

    /// The statement text, `smqtt-epoch1.<base64url(body ‖ signature)>`, signed in [`EPOCH_DOMAIN`].
    pub fn sign(&self, authority: &SigningKey) -> String {
        let body = self.signing_bytes();
        let signature = authority.sign(EPOCH_DOMAIN, &body);
        encode(&body, &signature)
    }
}

fn encode(body: &[u8; BODY_LEN], signature: &[u8; 64]) -> String {
    let mut raw = [0u8; STATEMENT_LEN];
    raw[..BODY_LEN].copy_from_slice(body);
    raw[BODY_LEN..].copy_from_slice(signature);
    format!("{EPOCH_STATEMENT_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(word)
}

/// An epoch statement as received: its fields stay unreadable until [`verify`](Self::verify) checks the
/// authority's signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochStatement {
    body: EpochBody,
    signature: [u8; 64],
}

impl EpochStatement {
    /// Decodes statement text (surrounding whitespace, e.g. a file's final newline, is ignored).
    ///
    /// # Errors
    /// [`Error::Malformed`] for anything but a version-1 statement of the exact length.
    pub fn parse(text: &str) -> Result<EpochStatement> {
        const WHAT: &str = "epoch statement";
        if text.len() > MAX_STATEMENT_TEXT {
            return Err(malformed(WHAT, "too long"));
        }
        let encoded = text.trim().strip_prefix(EPOCH_STATEMENT_PREFIX).ok_or(malformed(WHAT, "unknown prefix"))?;
        let raw = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| malformed(WHAT, "not base64url"))?;
        if raw.len() != STATEMENT_LEN {
            return Err(malformed(WHAT, "wrong length"));
        }
        let mut params_id = [0u8; 32];
        params_id.copy_from_slice(&raw[24..BODY_LEN]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&raw[BODY_LEN..]);
        let body =
            EpochBody { epoch: u64_at(&raw, 0), started_at: u64_at(&raw, 8), issued_at: u64_at(&raw, 16), params_id };
        Ok(EpochStatement { body, signature })
    }

    /// Checks the authority's signature.
    ///
    /// # Errors
    /// [`Error::BadSignature`].
    pub fn verify(self, authority: &VerifyingKey) -> Result<VerifiedEpoch> {
        authority.verify(EPOCH_DOMAIN, &self.body.signing_bytes(), &self.signature)?;
        Ok(VerifiedEpoch { body: self.body, signature: self.signature })
    }
}

/// An epoch statement whose signature verified under the key it was checked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedEpoch {
    body: EpochBody,
    signature: [u8; 64],
}

impl VerifiedEpoch {
    /// The signed fields.
    pub fn body(&self) -> &EpochBody {
        &self.body
    }

    /// The epoch number.
    pub fn epoch(&self) -> u64 {
        self.body.epoch
    }

    /// The FAME parameter set's id bytes.
    pub fn params_id(&self) -> &[u8; 32] {
        &self.body.params_id
    }

    /// The statement text again, byte for byte as signed (to store or forward).
    pub fn to_text(&self) -> String {
        encode(&self.body.signing_bytes(), &self.signature)
    }
}

/// What the authority signs when it answers a key request: the request's digest, the epoch and parameter set
/// of the key, and the digests of the sealed key and of the credential that come with it. A device checks it
/// against its pinned authority key before opening the sealed key, so nobody on the path can substitute a key
/// sealed to the (public) reply key, or another credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDelivery {
    /// SHA-256 of [`KeyRequest::signing_bytes`].
    pub request_digest: [u8; 32],
    /// The epoch of the key and credential.
    pub epoch: u64,
    /// The FAME parameter set's id bytes.
    pub params_id: [u8; 32],
    /// SHA-256 of the sealed key bytes.
    pub sealed_key_digest: [u8; 32],
    /// SHA-256 of the credential bytes.
    pub credential_digest: [u8; 32],
}

impl KeyDelivery {
    /// The delivery of `sealed_key` and `credential` in answer to `request`.
    pub fn new(request: &KeyRequest, epoch: u64, params_id: &[u8; 32], sealed_key: &[u8], credential: &[u8]) -> Self {
        KeyDelivery {
            request_digest: Sha256::digest(request.signing_bytes()).into(),
            epoch,
            params_id: *params_id,
            sealed_key_digest: Sha256::digest(sealed_key).into(),
            credential_digest: Sha256::digest(credential).into(),
        }
    }

    /// `request_digest ‖ u64be(epoch) ‖ params_id ‖ sealed_key_digest ‖ credential_digest` (136 bytes).
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + 8 + 32 * 3);
        out.extend_from_slice(&self.request_digest);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.params_id);
        out.extend_from_slice(&self.sealed_key_digest);
        out.extend_from_slice(&self.credential_digest);
        out
    }

    /// The authority's signature in [`KEY_DELIVERY_DOMAIN`].
    pub fn sign(&self, authority: &SigningKey) -> [u8; 64] {
        authority.sign(KEY_DELIVERY_DOMAIN, &self.signing_bytes())
    }

    /// Checks the authority's signature.
    ///
    /// # Errors
    /// [`Error::BadSignature`].
    pub fn verify(&self, authority: &VerifyingKey, signature: &[u8; 64]) -> Result<()> {
        authority.verify(KEY_DELIVERY_DOMAIN, &self.signing_bytes(), signature)
    }
}

/// An enrollment token that pins the authority: `smqtt-enroll-<base64url(secret, 32)>.<base64url(authority
/// verifying key, 32)>`. The whole text is the secret the authority stores a hash of.
pub fn enrollment_token(secret: &[u8; 32], authority: &VerifyingKey) -> String {
    format!("{ENROLL_TOKEN_PREFIX}{}.{}", URL_SAFE_NO_PAD.encode(secret), URL_SAFE_NO_PAD.encode(authority.to_bytes()))
}

/// The authority key an enrollment token pins (see [`enrollment_token`]).
///
/// # Errors
/// [`Error::Malformed`] for a token without a pinned key, or whose key does not decode.
pub fn enrollment_token_authority(token: &str) -> Result<VerifyingKey> {
    const WHAT: &str = "enrollment token";
    if token.len() > MAX_TOKEN_TEXT {
        return Err(malformed(WHAT, "too long"));
    }
    let rest = token.trim().strip_prefix(ENROLL_TOKEN_PREFIX).ok_or(malformed(WHAT, "unknown prefix"))?;
    let (_secret, key) = rest.split_once('.').ok_or(malformed(WHAT, "pins no authority key"))?;
    let bytes: [u8; 32] = URL_SAFE_NO_PAD
        .decode(key)
        .map_err(|_| malformed(WHAT, "authority key is not base64url"))?
        .try_into()
        .map_err(|_| malformed(WHAT, "authority key is not 32 bytes"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| Error::Malformed { what: WHAT, reason: "authority key is invalid" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> EpochBody {
        EpochBody { epoch: 3, started_at: 10, issued_at: 20, params_id: [7; 32] }
    }

    #[test]
    fn every_field_is_signed() {
        let sk = SigningKey::from_bytes(&[4; 32]);
        let vk = sk.verifying_key();
        let text = body().sign(&sk);
        assert!(EpochStatement::parse(&text).and_then(|s| s.verify(&vk)).is_ok());
        let mut raw = URL_SAFE_NO_PAD.decode(&text[EPOCH_STATEMENT_PREFIX.len()..]).unwrap_or_default();
        for i in 0..raw.len() {
            raw[i] ^= 1;
            let flipped = format!("{EPOCH_STATEMENT_PREFIX}{}", URL_SAFE_NO_PAD.encode(&raw));
            assert_eq!(EpochStatement::parse(&flipped).and_then(|s| s.verify(&vk)).err(), Some(Error::BadSignature));
            raw[i] ^= 1;
        }
        // Not a signature of another purpose.
        let signature = sk.sign(crate::CREDENTIAL_DOMAIN, &body().signing_bytes());
        let forged = encode(&body().signing_bytes(), &signature);
        assert_eq!(EpochStatement::parse(&forged).and_then(|s| s.verify(&vk)).err(), Some(Error::BadSignature));
    }

    #[test]
    fn malformed_statements_are_refused() {
        let sk = SigningKey::from_bytes(&[4; 32]);
        let text = body().sign(&sk);
        for bad in [
            "",
            "smqtt-epoch1.",
            "smqtt-epoch2.AAAA",
            &text[..text.len() - 1],
            &format!("{text}A"),
            &"x".repeat(600),
            &text.replace("smqtt-epoch1.", "smqtt-epoch1.="),
        ] {
            assert!(matches!(EpochStatement::parse(bad), Err(Error::Malformed { .. })), "{bad:?}");
        }
        assert!(EpochStatement::parse(&format!("  {text}\n")).is_ok());
    }

    #[test]
    fn tokens_pin_their_authority() {
        let vk = SigningKey::from_bytes(&[4; 32]).verifying_key();
        let token = enrollment_token(&[1; 32], &vk);
        assert!(token.len() <= MAX_TOKEN_TEXT);
        assert_eq!(enrollment_token_authority(&token), Ok(vk));
        for bad in ["smqtt-enroll-AAAA", "smqtt-enroll-AAAA.AAAA", "other-AAAA.AAAA", &format!("{token}A")] {
            assert!(matches!(enrollment_token_authority(bad), Err(Error::Malformed { .. })), "{bad:?}");
        }
    }
}
