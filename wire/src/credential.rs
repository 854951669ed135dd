//! Device credentials: what the authority signs about a device (`docs/wire.md` §3).
//!
//! A credential binds a [`DeviceId`] to the device's Ed25519 key, its ABE attributes and the topics it may
//! publish to, for a validity window. Decoding yields an [`UnverifiedCredential`], whose contents stay out of
//! reach (except the device id, for lookups and error messages) until [`UnverifiedCredential::verify`] has
//! checked the authority's signature and the window and returned a [`VerifiedCredential`]: code that holds a
//! `VerifiedCredential` cannot have skipped the check.

use core::fmt::{self, Debug, Formatter};

use smqtt_abe::AttributeSet;

use crate::encoding::SIGNATURE_LEN;
use crate::encoding::{header, Reader, KIND_CREDENTIAL};
use crate::error::{malformed, Error, Result};
use crate::ids::DeviceId;
use crate::limits::{MAX_CREDENTIAL_LEN, MAX_DEVICE_ID_LEN, MAX_PUBLISH_FILTERS, MAX_TOPIC_LEN};
use crate::sign::{SigningKey, VerifyingKey};
use crate::topic::{validate_topic, TopicFilter};

/// The signature domain of credentials.
pub const CREDENTIAL_DOMAIN: &[u8] = b"smqtt/credential/v1";

const WHAT: &str = "credential";

/// The contents of a credential, before signing or after verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialBody {
    /// Who the credential is about.
    pub device_id: DeviceId,
    /// The device's own signing key (it signs key requests with it).
    pub device_key: VerifyingKey,
    /// The device's ABE attributes, encoded as their canonical printing.
    pub attributes: AttributeSet,
    /// Topic filters the device may publish to: at most [`MAX_PUBLISH_FILTERS`].
    pub publish: Vec<TopicFilter>,
    /// The authority's key epoch the credential belongs to.
    pub epoch: u64,
    /// Start of validity, unix seconds (inclusive).
    pub not_before: u64,
    /// End of validity, unix seconds (exclusive); later than `not_before`.
    pub not_after: u64,
}

impl CredentialBody {
    /// Encodes the body and signs it with the authority's key: the returned bytes are the credential.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for more than [`MAX_PUBLISH_FILTERS`] filters, attribute text beyond 65 535 bytes
    /// or an encoding beyond [`MAX_CREDENTIAL_LEN`]; [`Error::Malformed`] when `not_after <= not_before`;
    /// [`Error::InvalidAttributes`] if the attribute set's printing does not parse back to the same set.
    pub fn sign(self, authority: &SigningKey) -> Result<Vec<u8>> {
        let mut out = self.encode_unsigned()?;
        let signature = authority.sign(CREDENTIAL_DOMAIN, &out);
        out.extend_from_slice(&signature);
        Ok(out)
    }

    /// Everything but the signature.
    fn encode_unsigned(&self) -> Result<Vec<u8>> {
        if self.publish.len() > MAX_PUBLISH_FILTERS {
            return Err(Error::LimitExceeded { what: "publish filters", limit: MAX_PUBLISH_FILTERS });
        }
        if self.not_after <= self.not_before {
            return Err(malformed(WHAT, "not_after must be later than not_before"));
        }
        let text = self.attributes.to_string();
        if AttributeSet::parse(&text).as_ref() != Ok(&self.attributes) {
            return Err(Error::InvalidAttributes("the attribute set does not print canonically".to_owned()));
        }
        let text_len = u16::try_from(text.len())
            .map_err(|_| Error::LimitExceeded { what: "attribute text bytes", limit: usize::from(u16::MAX) })?;

        let mut out = header(KIND_CREDENTIAL);
        let id = self.device_id.as_str().as_bytes();
        // DeviceId guarantees 1..=64 bytes.
        out.push(u8::try_from(id.len()).map_err(|_| Error::InvalidDeviceId("longer than 64 bytes"))?);
        out.extend_from_slice(id);
        out.extend_from_slice(&self.device_key.to_bytes());
        out.extend_from_slice(&text_len.to_be_bytes());
        out.extend_from_slice(text.as_bytes());
        // At most MAX_PUBLISH_FILTERS (64), checked above.
        out.push(u8::try_from(self.publish.len()).unwrap_or(u8::MAX));
        for filter in &self.publish {
            let bytes = filter.as_str().as_bytes();
            // TopicFilter guarantees at most MAX_TOPIC_LEN (1024) bytes.
            out.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.not_before.to_be_bytes());
        out.extend_from_slice(&self.not_after.to_be_bytes());
        if out.len() + SIGNATURE_LEN > MAX_CREDENTIAL_LEN {
            return Err(Error::LimitExceeded { what: "credential bytes", limit: MAX_CREDENTIAL_LEN });
        }
        Ok(out)
    }
}

/// A credential that has been decoded but not verified.
///
/// Its fields are deliberately out of reach: only [`device_id`](Self::device_id) (to pick the right records or
/// name the device in an error) and [`verify`](Self::verify). The attribute text is not even parsed before the
/// signature checks out, so the attribute parser only ever sees what the authority signed.
pub struct UnverifiedCredential {
    bytes: Vec<u8>,
    device_id: DeviceId,
    device_key: VerifyingKey,
    /// Byte range of the attribute text inside `bytes` (valid UTF-8, checked by the decoder).
    attributes: (usize, usize),
    publish: Vec<TopicFilter>,
    epoch: u64,
    not_before: u64,
    not_after: u64,
}

impl UnverifiedCredential {
    /// Decodes the structure of a credential: header, every length against its bound and the remaining input,
    /// the device id's alphabet, the device key (canonical, not of small order), each topic filter, the
    /// validity window's order, and the exact total length (trailing bytes are refused). Checks no signature.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for input beyond [`MAX_CREDENTIAL_LEN`]; [`Error::Malformed`] for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Result<UnverifiedCredential> {
        if bytes.len() > MAX_CREDENTIAL_LEN {
            return Err(Error::LimitExceeded { what: "credential bytes", limit: MAX_CREDENTIAL_LEN });
        }
        let mut r = Reader::open(bytes, KIND_CREDENTIAL, WHAT)?;

        let id_len = usize::from(r.u8()?);
        if id_len == 0 || id_len > MAX_DEVICE_ID_LEN {
            return Err(malformed(WHAT, "device id length out of range"));
        }
        let device_id = core::str::from_utf8(r.take(id_len)?)
            .ok()
            .and_then(|id| DeviceId::new(id).ok())
            .ok_or(malformed(WHAT, "invalid device id"))?;

        let device_key = VerifyingKey::from_bytes(&r.array()?).map_err(|_| malformed(WHAT, "invalid device key"))?;

        let text_len = usize::from(r.u16()?);
        let start = r.position();
        let text = r.take(text_len)?;
        core::str::from_utf8(text).map_err(|_| malformed(WHAT, "attribute text is not UTF-8"))?;
        let attributes = (start, start + text_len);

        let count = usize::from(r.u8()?);
        if count > MAX_PUBLISH_FILTERS {
            return Err(malformed(WHAT, "too many publish filters"));
        }
        let mut publish = Vec::with_capacity(count);
        for _ in 0..count {
            let len = usize::from(r.u16()?);
            if len == 0 || len > MAX_TOPIC_LEN {
                return Err(malformed(WHAT, "topic filter length out of range"));
            }
            let text = core::str::from_utf8(r.take(len)?).map_err(|_| malformed(WHAT, "topic filter is not UTF-8"))?;
            publish.push(TopicFilter::new(text).map_err(|_| malformed(WHAT, "invalid topic filter"))?);
        }

        let epoch = r.u64()?;
        let not_before = r.u64()?;
        let not_after = r.u64()?;
        if not_after <= not_before {
            return Err(malformed(WHAT, "empty validity window"));
        }
        r.take(SIGNATURE_LEN)?;
        r.finish()?;

        Ok(UnverifiedCredential {
            bytes: bytes.to_vec(),
            device_id,
            device_key,
            attributes,
            publish,
            epoch,
            not_before,
            not_after,
        })
    }

    /// The device the credential claims to be about (not yet vouched for by anyone).
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// Checks the authority's signature, then the attribute text (it must parse and be its own canonical
    /// printing), then the validity window `not_before <= now_unix < not_after`.
    ///
    /// # Errors
    /// [`Error::BadSignature`], [`Error::InvalidAttributes`], [`Error::NotYetValid`], [`Error::Expired`].
    pub fn verify(self, authority: &VerifyingKey, now_unix: u64) -> Result<VerifiedCredential> {
        let signed_len = self.bytes.len() - SIGNATURE_LEN;
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(&self.bytes[signed_len..]);
        authority.verify(CREDENTIAL_DOMAIN, &self.bytes[..signed_len], &signature)?;

        let text = core::str::from_utf8(&self.bytes[self.attributes.0..self.attributes.1])
            .map_err(|_| malformed(WHAT, "attribute text is not UTF-8"))?;
        let attributes = AttributeSet::parse(text).map_err(|e| Error::InvalidAttributes(e.to_string()))?;
        if attributes.to_string() != text {
            return Err(Error::InvalidAttributes("attribute text is not in canonical form".to_owned()));
        }

        if now_unix < self.not_before {
            return Err(Error::NotYetValid);
        }
        if now_unix >= self.not_after {
            return Err(Error::Expired);
        }
        let body = CredentialBody {
            device_id: self.device_id,
            device_key: self.device_key,
            attributes,
            publish: self.publish,
            epoch: self.epoch,
            not_before: self.not_before,
            not_after: self.not_after,
        };
        Ok(VerifiedCredential { body, bytes: self.bytes })
    }
}

impl Debug for UnverifiedCredential {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedCredential").field("device_id", &self.device_id).finish_non_exhaustive()
    }
}

/// A credential whose authority signature, attribute text and validity window have been checked.
///
/// The only ways to get one are [`UnverifiedCredential::verify`] and [`Credential::verify`].
#[derive(Clone, Debug)]
pub struct VerifiedCredential {
    body: CredentialBody,
    bytes: Vec<u8>,
}

impl VerifiedCredential {
    /// The verified contents.
    pub fn body(&self) -> &CredentialBody {
        &self.body
    }

    /// The verified contents, consuming the credential.
    pub fn into_body(self) -> CredentialBody {
        self.body
    }

    /// The exact signed bytes the credential was decoded from.
    pub fn to_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether the device may publish to `topic`: `topic` is a valid topic name and one of the credential's
    /// filters matches it. The validity window was checked at verification time, not now.
    pub fn may_publish(&self, topic: &str) -> bool {
        validate_topic(topic).is_ok() && self.body.publish.iter().any(|filter| filter.matches(topic))
    }
}

/// Credential-level constants and the one-call decode-and-verify.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Credential;

impl Credential {
    /// The signature domain, [`CREDENTIAL_DOMAIN`].
    pub const DOMAIN: &'static [u8] = CREDENTIAL_DOMAIN;
    /// The largest encoding accepted, [`MAX_CREDENTIAL_LEN`].
    pub const MAX_LEN: usize = MAX_CREDENTIAL_LEN;

    /// [`UnverifiedCredential::from_bytes`] followed by [`UnverifiedCredential::verify`].
    ///
    /// # Errors
    /// Those of both steps.
    pub fn verify(bytes: &[u8], authority: &VerifyingKey, now_unix: u64) -> Result<VerifiedCredential> {
        UnverifiedCredential::from_bytes(bytes)?.verify(authority, now_unix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> CredentialBody {
        CredentialBody {
            device_id: DeviceId::new("dev-1").unwrap_or_else(|e| panic!("{e}")),
            device_key: SigningKey::from_bytes(&[2; 32]).verifying_key(),
            attributes: AttributeSet::parse("role:sensor").unwrap_or_else(|e| panic!("{e}")),
            publish: vec![TopicFilter::new("a/#").unwrap_or_else(|e| panic!("{e}"))],
            epoch: 1,
            not_before: 10,
            not_after: 20,
        }
    }

    #[test]
    fn the_encoding_has_the_documented_layout() {
        let bytes = body().sign(&SigningKey::from_bytes(&[1; 32])).unwrap_or_else(|e| panic!("{e}"));
        let mut expected = b"SMQW\x01\x01\x05dev-1".to_vec();
        expected.extend_from_slice(&body().device_key.to_bytes());
        expected.extend_from_slice(b"\x00\x0brole:sensor\x01\x00\x03a/#");
        for v in [1u64, 10, 20] {
            expected.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(&bytes[..bytes.len() - 64], &expected[..]);
        assert_eq!(bytes.len(), expected.len() + 64);
    }

    #[test]
    fn unverified_debug_shows_only_the_device() {
        let bytes = body().sign(&SigningKey::from_bytes(&[1; 32])).unwrap_or_else(|e| panic!("{e}"));
        let unverified = UnverifiedCredential::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(format!("{unverified:?}"), r#"UnverifiedCredential { device_id: DeviceId("dev-1"), .. }"#);
    }
}
