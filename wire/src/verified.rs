//! Envelopes whose origin is settled, and the only way to their plaintext.
//!
//! [`ParsedEnvelope::parse`] checks structure; a [`VerifiedEnvelope`] comes from
//! [`ParsedEnvelope::verify_signature`] (the publisher's Ed25519 signature over the topic and the envelope) or,
//! for an unsigned envelope (§6.5), from [`ParsedEnvelope::accept_unsigned`] — the caller's decision that the
//! session key alone may authenticate it on this topic. Either way the topic is fixed at that step, and
//! [`VerifiedEnvelope::open`] decrypts under exactly that topic: there is no way to decrypt an envelope whose
//! signature was never looked at, nor to open it for another topic than the one it was verified for.

use core::fmt::{self, Debug, Formatter};
use core::ops::Deref;

use chacha20poly1305::aead::{Aead, Payload};
use zeroize::Zeroizing;

use crate::batch::{leaf_hash, root_from_path, signed_root, BatchRoots, Root, ENVELOPE_BATCH_DOMAIN};
use crate::encoding::SIGNATURE_LEN;
use crate::envelope::{nonce, put_topic_prefix, ParsedEnvelope, SessionKey, ENVELOPE_DOMAIN};
use crate::error::{Error, Result};
use crate::sign::VerifyingKey;
use crate::topic::validate_topic;

/// An envelope whose signature verified for its topic, or an unsigned one deliberately accepted for its topic.
/// Dereferences to its [`ParsedEnvelope`] for the header fields.
#[derive(Clone)]
pub struct VerifiedEnvelope<'a, 't> {
    envelope: ParsedEnvelope<'a>,
    topic: &'t str,
}

impl<'a> ParsedEnvelope<'a> {
    /// Checks the publisher's Ed25519 signature over `u16(len(topic)) ‖ topic ‖` the envelope without its
    /// signature, in [`ENVELOPE_DOMAIN`]; for a batch-signed envelope (§6.6), the batch signature over the root
    /// its audit path leads to, in [`ENVELOPE_BATCH_DOMAIN`](crate::ENVELOPE_BATCH_DOMAIN). An envelope moved to
    /// another topic fails here.
    ///
    /// # Errors
    /// [`Error::InvalidTopic`] for a topic that may not be published to; [`Error::Unsigned`] for an envelope
    /// without a signature; [`Error::BadSignature`].
    pub fn verify_signature<'t>(
        &self,
        topic: &'t str,
        publisher_key: &VerifyingKey,
    ) -> Result<VerifiedEnvelope<'a, 't>> {
        self.verify(topic, publisher_key, None)
    }

    /// [`verify_signature`](Self::verify_signature), remembering verified batch roots in `roots`: the other
    /// envelopes of a batch whose root verified cost two to nine SHA-256 compressions instead of an Ed25519
    /// verification. A single-signed envelope is verified as always.
    ///
    /// # Errors
    /// As [`verify_signature`](Self::verify_signature).
    pub fn verify_signature_cached<'t>(
        &self,
        topic: &'t str,
        publisher_key: &VerifyingKey,
        roots: &mut BatchRoots,
    ) -> Result<VerifiedEnvelope<'a, 't>> {
        self.verify(topic, publisher_key, Some(roots))
    }

    fn verify<'t>(
        &self,
        topic: &'t str,
        publisher_key: &VerifyingKey,
        mut roots: Option<&mut BatchRoots>,
    ) -> Result<VerifiedEnvelope<'a, 't>> {
        validate_topic(topic)?;
        if !self.signed {
            return Err(Error::Unsigned);
        }
        let signed_len = self.ciphertext_at + self.ciphertext_len;
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(&self.bytes[self.bytes.len() - SIGNATURE_LEN..]);
        let mut prefix = Vec::with_capacity(2 + topic.len());
        put_topic_prefix(&mut prefix, topic);
        let Some(batch) = self.batch else {
            publisher_key.verify_parts(ENVELOPE_DOMAIN, &[&prefix, &self.bytes[..signed_len]], &signature)?;
            return Ok(VerifiedEnvelope { envelope: self.clone(), topic });
        };
        let leaf = leaf_hash(&[&prefix, &self.bytes[..signed_len]]);
        let (size, index) = (usize::from(batch.size), usize::from(batch.index));
        let path: Vec<[u8; 32]> = self.bytes[batch.path_at..self.bytes.len() - SIGNATURE_LEN]
            .chunks_exact(32)
            .map(|hash| hash.try_into().unwrap_or([0; 32]))
            .collect();
        let root = root_from_path(leaf, index, size, &path).ok_or(Error::BadSignature)?;
        let verified = Root { publisher: publisher_key.to_bytes(), size: batch.size, root, signature };
        if let Some(roots) = roots.as_deref_mut() {
            if roots.contains(&verified) {
                return Ok(VerifiedEnvelope { envelope: self.clone(), topic });
            }
        }
        publisher_key.verify_parts(ENVELOPE_BATCH_DOMAIN, &[&signed_root(size, &root)], &signature)?;
        if let Some(roots) = roots {
            roots.insert(verified);
        }
        Ok(VerifiedEnvelope { envelope: self.clone(), topic })
    }

    /// Accepts an unsigned envelope (§6.5) for `topic` on the caller's word: the session key (checked by
    /// [`VerifiedEnvelope::open`]) is then its only authentication, so any holder of that key could have
    /// sealed it. Decide it only where unsigned envelopes are wanted on this topic and the session was
    /// introduced by a signed envelope of the same publisher.
    ///
    /// # Errors
    /// [`Error::InvalidTopic`]; [`Error::Malformed`] for a signed envelope (its signature must be verified).
    pub fn accept_unsigned<'t>(&self, topic: &'t str) -> Result<VerifiedEnvelope<'a, 't>> {
        validate_topic(topic)?;
        if self.signed {
            return Err(Error::Malformed { what: "envelope", reason: "a signed envelope is accepted only verified" });
        }
        Ok(VerifiedEnvelope { envelope: self.clone(), topic })
    }
}

impl ParsedEnvelope<'_> {
    /// Decrypts without looking at the signature (feature `hazmat`, for tests that show the AEAD binds the
    /// topic and the header on its own, for vectors and for fuzzing). Never in a receiver.
    ///
    /// # Errors
    /// As [`VerifiedEnvelope::open`], and [`Error::InvalidTopic`].
    #[cfg(feature = "hazmat")]
    pub fn open_unverified(&self, topic: &str, key: &SessionKey) -> Result<Zeroizing<Vec<u8>>> {
        validate_topic(topic)?;
        VerifiedEnvelope { envelope: self.clone(), topic }.open(key)
    }
}

impl<'a> VerifiedEnvelope<'a, '_> {
    /// The topic it was verified (or accepted) for.
    pub fn topic(&self) -> &str {
        self.topic
    }

    /// The envelope's header fields.
    pub fn envelope(&self) -> &ParsedEnvelope<'a> {
        &self.envelope
    }

    /// Decrypts the payload with `key`, the verified topic bound as associated data. Record the sequence number
    /// in a [`ReplayWindow`](crate::ReplayWindow) only after this succeeded.
    ///
    /// # Errors
    /// [`Error::UnknownKey`] if `key`'s key id is not the envelope's; [`Error::DecryptionFailed`] for a wrong
    /// key or any modification.
    pub fn open(&self, key: &SessionKey) -> Result<Zeroizing<Vec<u8>>> {
        let e = &self.envelope;
        if key.key_id() != e.key_id {
            return Err(Error::UnknownKey);
        }
        let mut aad = Vec::with_capacity(2 + self.topic.len() + e.ciphertext_at);
        put_topic_prefix(&mut aad, self.topic);
        aad.extend_from_slice(&e.bytes[..e.ciphertext_at]);
        let ciphertext = &e.bytes[e.ciphertext_at..e.ciphertext_at + e.ciphertext_len];
        key.cipher()?
            .decrypt(&nonce(e.sequence), Payload { msg: ciphertext, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| Error::DecryptionFailed)
    }
}

impl<'a> Deref for VerifiedEnvelope<'a, '_> {
    type Target = ParsedEnvelope<'a>;

    fn deref(&self) -> &ParsedEnvelope<'a> {
        &self.envelope
    }
}

impl Debug for VerifiedEnvelope<'_, '_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedEnvelope").field("topic", &self.topic).field("envelope", &self.envelope).finish()
    }
}
