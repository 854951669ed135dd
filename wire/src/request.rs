//! What devices sign: enrollment proofs of possession and key requests (`docs/wire.md` §4).

use crate::error::Result;
use crate::ids::DeviceId;
use crate::sign::{SigningKey, VerifyingKey};

/// The signature domain of enrollment proofs ([`enrollment_signing_bytes`]).
pub const ENROLL_DOMAIN: &[u8] = b"smqtt/enroll/v1";
/// The signature domain of key requests ([`KeyRequest`]).
pub const KEY_REQUEST_DOMAIN: &[u8] = b"smqtt/key-request/v1";

/// A device's request for its attribute key, as signed by the device.
///
/// Transport (JSON over HTTPS) and replay protection (a fresh `timestamp`, a `nonce` not seen before) are the
/// authority's job; this type fixes the bytes the signature covers. `reply_key` is the X25519 public key of the
/// device's [`ReplySecret`](crate::ReplySecret): the authority seals the key to it with
/// [`seal_to`](crate::seal_to).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyRequest {
    /// The requesting device.
    pub device_id: DeviceId,
    /// When the request was made, unix seconds.
    pub timestamp: u64,
    /// Random, unique per request.
    pub nonce: [u8; 16],
    /// Where to seal the answer: an X25519 public key.
    pub reply_key: [u8; 32],
}

impl KeyRequest {
    /// The canonical bytes: `u8 len(device_id) ‖ device_id ‖ u64be(timestamp) ‖ nonce (16) ‖ reply_key (32)`.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let id = self.device_id.as_str().as_bytes();
        let mut out = Vec::with_capacity(1 + id.len() + 8 + 16 + 32);
        // A DeviceId is 1..=64 bytes.
        out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(id);
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.reply_key);
        out
    }

    /// The device's signature over [`signing_bytes`](Self::signing_bytes) in [`KEY_REQUEST_DOMAIN`].
    pub fn sign(&self, device: &SigningKey) -> [u8; 64] {
        device.sign(KEY_REQUEST_DOMAIN, &self.signing_bytes())
    }

    /// Checks a device's signature made by [`sign`](Self::sign).
    ///
    /// # Errors
    /// [`crate::Error::BadSignature`].
    pub fn verify(&self, device: &VerifyingKey, signature: &[u8; 64]) -> Result<()> {
        device.verify(KEY_REQUEST_DOMAIN, &self.signing_bytes(), signature)
    }
}

/// The bytes a device signs in [`ENROLL_DOMAIN`] to prove, at enrollment, that it holds the key it registers:
/// `u64be(len(token)) ‖ token ‖ device_key (32)`.
///
/// The result contains the enrollment token: treat it (and a signature over it, which lets anyone holding it
/// test guesses of a low-entropy token) as secret as the token.
pub fn enrollment_signing_bytes(token: &str, device_key: &VerifyingKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + token.len() + 32);
    // usize → u64 is lossless on every target Rust supports.
    out.extend_from_slice(&(token.len() as u64).to_be_bytes());
    out.extend_from_slice(token.as_bytes());
    out.extend_from_slice(&device_key.to_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn request() -> KeyRequest {
        KeyRequest {
            device_id: DeviceId::new("dev").unwrap_or_else(|e| panic!("{e}")),
            timestamp: 0x0102_0304_0506_0708,
            nonce: [0xaa; 16],
            reply_key: [0xbb; 32],
        }
    }

    #[test]
    fn signing_bytes_layout() {
        let mut expected = b"\x03dev\x01\x02\x03\x04\x05\x06\x07\x08".to_vec();
        expected.extend_from_slice(&[0xaa; 16]);
        expected.extend_from_slice(&[0xbb; 32]);
        assert_eq!(request().signing_bytes(), expected);
    }

    #[test]
    fn every_field_is_covered_by_the_signature() {
        let device = SigningKey::from_bytes(&[5; 32]);
        let signature = request().sign(&device);
        let vk = device.verifying_key();
        assert_eq!(request().verify(&vk, &signature), Ok(()));
        let changes: [&dyn Fn(&mut KeyRequest); 4] = [
            &|r| r.device_id = DeviceId::new("deV").unwrap_or_else(|e| panic!("{e}")),
            &|r| r.timestamp += 1,
            &|r| r.nonce[15] ^= 1,
            &|r| r.reply_key[0] ^= 1,
        ];
        for change in changes {
            let mut r = request();
            change(&mut r);
            assert_eq!(r.verify(&vk, &signature), Err(Error::BadSignature));
        }
        // Not an enrollment signature, nor made by another key.
        assert_eq!(vk.verify(ENROLL_DOMAIN, &request().signing_bytes(), &signature), Err(Error::BadSignature));
        let other = SigningKey::from_bytes(&[6; 32]).verifying_key();
        assert_eq!(request().verify(&other, &signature), Err(Error::BadSignature));
    }

    #[test]
    fn enrollment_bytes_bind_token_and_key() {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let bytes = enrollment_signing_bytes("tok", &key);
        assert_eq!(&bytes[..11], b"\0\0\0\0\0\0\0\x03tok");
        assert_eq!(&bytes[11..], &key.to_bytes());
        assert_ne!(enrollment_signing_bytes("tok2", &key), bytes);
        // The length prefix keeps token bytes from sliding into the key.
        assert_ne!(enrollment_signing_bytes("", &key)[..8], bytes[..8]);
    }
}
