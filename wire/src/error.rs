//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in `smqtt-wire`.
///
/// Decoding failures are [`Error::Malformed`] with a static description (never the offending bytes); a
/// signature that does not verify is [`Error::BadSignature`], whatever the cause; a key delivery or envelope that
/// does not open is [`Error::DecryptionFailed`], whatever the cause. No variant carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes that are not a valid encoding of the expected object.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The object or field being decoded.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A signature does not verify under the given key (or is not a canonical Ed25519 signature).
    #[error("signature does not verify")]
    BadSignature,
    /// An envelope without a signature where one is required (§6.5 of `docs/wire.md`).
    #[error("envelope is not signed")]
    Unsigned,
    /// The credential's validity window ended (`now >= not_after`).
    #[error("credential expired")]
    Expired,
    /// The credential's validity window has not started (`now < not_before`).
    #[error("credential not yet valid")]
    NotYetValid,
    /// A device id outside `1..=64` bytes of `[A-Za-z0-9._-]`.
    #[error("invalid device id: {0}")]
    InvalidDeviceId(&'static str),
    /// A topic name that may not be published to (MQTT 3.1.1 §4.7).
    #[error("invalid topic: {0}")]
    InvalidTopic(&'static str),
    /// A topic filter that violates MQTT 3.1.1 §4.7.
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(&'static str),
    /// Attribute text that does not parse, or is not the canonical printing of what it parses to. The message
    /// comes from `smqtt-abe` and describes the text's syntax only.
    #[error("invalid attributes: {0}")]
    InvalidAttributes(String),
    /// A key delivery or envelope that could not be opened: wrong secret or key, wrong context or topic,
    /// tampering, or a low-order ephemeral key — deliberately not distinguished.
    #[error("decryption failed")]
    DecryptionFailed,
    /// An envelope sealed under another session key than the one given (its key id differs).
    #[error("envelope is sealed under another session key")]
    UnknownKey,
    /// A sequence number seen before for the same publisher and session key, or older than the replay window.
    #[error("sequence number replayed or older than the replay window")]
    Replay,
    /// An input beyond one of the crate's bounds (see [`crate::limits`]).
    #[error("{what} exceeds the limit of {limit}")]
    LimitExceeded {
        /// Which bound.
        what: &'static str,
        /// The bound's value.
        limit: usize,
    },
    /// A CONNECT token whose timestamp is further from the verifier's clock than the allowed skew.
    #[error("connect token timestamp outside the allowed clock skew")]
    StaleToken,
    /// A credential presented for another device than the one claimed (e.g. the MQTT username).
    #[error("credential is for another device")]
    WrongDevice,
    /// The random number generator failed.
    #[error("random number generator failed")]
    Rng,
}

/// `Result` with this crate's [`Error`](enum@Error).
pub type Result<T> = std::result::Result<T, Error>;

/// A [`Error::Malformed`] for `what`.
pub(crate) fn malformed(what: &'static str, reason: &'static str) -> Error {
    Error::Malformed { what, reason }
}
