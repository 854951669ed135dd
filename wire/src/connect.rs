//! The CONNECT credential token (`docs/wire.md` §9): how a device proves who it is to a broker in the MQTT
//! CONNECT packet, with the broker needing nothing but the authority's verifying key.
//!
//! The MQTT username is the device id; the password is a text token
//!
//! ```text
//! smqtt1.<base64url(credential)>.<base64url(u64be(timestamp) ‖ signature)>
//! ```
//!
//! where the signature is the device's, in the domain [`CONNECT_DOMAIN`], over the client id, the username, the
//! timestamp and the SHA-256 of the credential. The token is ASCII (it fits `mosquitto_pub -P` and rumqttd's
//! UTF-8 password) and at most [`MAX_CONNECT_TOKEN_LEN`] bytes.
//!
//! ```
//! use smqtt_abe::AttributeSet;
//! use smqtt_wire::{ConnectToken, CredentialBody, DeviceId, Error, SigningKey, TopicFilter};
//!
//! let authority = SigningKey::from_bytes(&[1; 32]);
//! let device = SigningKey::from_bytes(&[2; 32]);
//! let credential = CredentialBody {
//!     device_id: DeviceId::new("sensor-7")?,
//!     device_key: device.verifying_key(),
//!     attributes: AttributeSet::parse("role:sensor").map_err(|e| Error::InvalidAttributes(e.to_string()))?,
//!     publish: vec![TopicFilter::new("plant/#")?],
//!     epoch: 1,
//!     not_before: 1_700_000_000,
//!     not_after: 1_700_086_400,
//! }
//! .sign(&authority)?;
//!
//! // The device, at CONNECT time: username "sensor-7", password `token`.
//! let token = ConnectToken::create(&device, &credential, "sensor-7-main", 1_700_000_100)?;
//! assert!(token.starts_with("smqtt1."));
//!
//! // The broker, offline, with the authority's verifying key and a clock skew allowance.
//! let verified =
//!     ConnectToken::verify(&token, "sensor-7-main", "sensor-7", &authority.verifying_key(), 1_700_000_130, 120)?;
//! assert!(verified.may_publish("plant/line-1"));
//! assert_eq!(
//!     ConnectToken::verify(&token, "other-client", "sensor-7", &authority.verifying_key(), 1_700_000_130, 120).err(),
//!     Some(Error::BadSignature)
//! );
//! # Ok::<(), Error>(())
//! ```
//!
//! A token is a bearer proof for its client id within the skew window: anyone who reads it off the wire can
//! connect with the same client id until then (and, because brokers kick the older connection with a duplicate
//! client id, disconnect the device). Send it only over TLS where the network is not trusted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::credential::{Credential, UnverifiedCredential, VerifiedCredential};
use crate::error::{malformed, Error, Result};
use crate::limits::{MAX_CONNECT_TOKEN_LEN, MAX_CREDENTIAL_LEN};
use crate::sign::{SigningKey, VerifyingKey};

/// The signature domain of CONNECT tokens.
pub const CONNECT_DOMAIN: &[u8] = b"smqtt/connect/v1";
/// The first dot-separated field of every token (format version 1).
pub const CONNECT_TOKEN_PREFIX: &str = "smqtt1";

const WHAT: &str = "connect token";
/// `u64be(timestamp) ‖ signature`.
const PROOF_LEN: usize = 8 + 64;

/// Creating and checking CONNECT tokens.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ConnectToken;

impl ConnectToken {
    /// The signature domain, [`CONNECT_DOMAIN`].
    pub const DOMAIN: &'static [u8] = CONNECT_DOMAIN;
    /// The longest token accepted, [`MAX_CONNECT_TOKEN_LEN`].
    pub const MAX_LEN: usize = MAX_CONNECT_TOKEN_LEN;

    /// The bytes the device signs: `u16(len(client_id)) ‖ client_id ‖ u8(len(username)) ‖ username ‖
    /// u64(timestamp) ‖ SHA-256(credential)`, all integers big-endian.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for a client id over 65 535 bytes or a username over 255 bytes.
    pub fn signing_bytes(client_id: &str, username: &str, timestamp: u64, credential: &[u8]) -> Result<Vec<u8>> {
        let id_len = u16::try_from(client_id.len())
            .map_err(|_| Error::LimitExceeded { what: "client id bytes", limit: usize::from(u16::MAX) })?;
        let user_len = u8::try_from(username.len())
            .map_err(|_| Error::LimitExceeded { what: "username bytes", limit: usize::from(u8::MAX) })?;
        let mut out = Vec::with_capacity(2 + client_id.len() + 1 + username.len() + 8 + 32);
        out.extend_from_slice(&id_len.to_be_bytes());
        out.extend_from_slice(client_id.as_bytes());
        out.push(user_len);
        out.extend_from_slice(username.as_bytes());
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(&Sha256::digest(credential));
        Ok(out)
    }

    /// A token for connecting as `client_id` at `now_unix`, with the credential's device id as the username.
    ///
    /// `device` must be the key the credential names (nothing here can check that: the credential is not
    /// verified on this side).
    ///
    /// # Errors
    /// Those of [`UnverifiedCredential::from_bytes`] for bytes that are not a credential,
    /// [`Error::LimitExceeded`] for a client id over 65 535 bytes or a token over [`MAX_CONNECT_TOKEN_LEN`].
    pub fn create(device: &SigningKey, credential: &[u8], client_id: &str, now_unix: u64) -> Result<String> {
        let unverified = UnverifiedCredential::from_bytes(credential)?;
        let message = Self::signing_bytes(client_id, unverified.device_id().as_str(), now_unix, credential)?;
        let signature = device.sign(CONNECT_DOMAIN, &message);
        let mut proof = [0u8; PROOF_LEN];
        proof[..8].copy_from_slice(&now_unix.to_be_bytes());
        proof[8..].copy_from_slice(&signature);
        let token =
            format!("{CONNECT_TOKEN_PREFIX}.{}.{}", URL_SAFE_NO_PAD.encode(credential), URL_SAFE_NO_PAD.encode(proof));
        if token.len() > MAX_CONNECT_TOKEN_LEN {
            return Err(Error::LimitExceeded { what: "connect token bytes", limit: MAX_CONNECT_TOKEN_LEN });
        }
        Ok(token)
    }

    /// Checks a token presented by `client_id` with MQTT username `username` at `now_unix`: its form and size,
    /// the timestamp within `max_skew_secs` of `now_unix` either way, the credential (signed by `authority`,
    /// valid now), the credential's device id equal to `username`, and the device's signature with the
    /// credential's device key.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for a token over [`MAX_CONNECT_TOKEN_LEN`]; [`Error::Malformed`] for anything that
    /// is not a token; [`Error::StaleToken`] for a timestamp outside the skew; the credential's errors
    /// ([`Error::BadSignature`], [`Error::Expired`], [`Error::NotYetValid`], [`Error::InvalidAttributes`],
    /// [`Error::Malformed`]); [`Error::WrongDevice`] when the credential names another device than `username`;
    /// [`Error::BadSignature`] when the device's signature does not verify (other client id, other timestamp,
    /// another key).
    pub fn verify(
        token: &str,
        client_id: &str,
        username: &str,
        authority: &VerifyingKey,
        now_unix: u64,
        max_skew_secs: u64,
    ) -> Result<VerifiedCredential> {
        if token.len() > MAX_CONNECT_TOKEN_LEN {
            return Err(Error::LimitExceeded { what: "connect token bytes", limit: MAX_CONNECT_TOKEN_LEN });
        }
        let mut fields = token.split('.');
        let (Some(prefix), Some(credential), Some(proof), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(malformed(WHAT, "not three dot-separated fields"));
        };
        if prefix != CONNECT_TOKEN_PREFIX {
            return Err(malformed(WHAT, "unknown prefix"));
        }
        // base64 of MAX_CREDENTIAL_LEN bytes is longer than any token we accept, so this only bounds decoding.
        if credential.is_empty() || credential.len() > (MAX_CREDENTIAL_LEN * 4).div_ceil(3) {
            return Err(malformed(WHAT, "credential field length out of range"));
        }
        let credential =
            URL_SAFE_NO_PAD.decode(credential).map_err(|_| malformed(WHAT, "credential is not base64url"))?;
        let proof = URL_SAFE_NO_PAD.decode(proof).map_err(|_| malformed(WHAT, "proof is not base64url"))?;
        let Ok(proof) = <[u8; PROOF_LEN]>::try_from(proof.as_slice()) else {
            return Err(malformed(WHAT, "proof is not 72 bytes"));
        };
        let mut stamp = [0u8; 8];
        stamp.copy_from_slice(&proof[..8]);
        let timestamp = u64::from_be_bytes(stamp);
        if timestamp.abs_diff(now_unix) > max_skew_secs {
            return Err(Error::StaleToken);
        }
        let verified = Credential::verify(&credential, authority, now_unix)?;
        if verified.body().device_id.as_str() != username {
            return Err(Error::WrongDevice);
        }
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&proof[8..]);
        let message = Self::signing_bytes(client_id, username, timestamp, &credential)?;
        verified.body().device_key.verify(CONNECT_DOMAIN, &message, &signature)?;
        Ok(verified)
    }
}
