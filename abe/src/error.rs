//! The crate's one error type.

use thiserror::Error;

/// Which bound an input ran into (see [`crate::limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// Bytes of policy text.
    PolicyLength,
    /// Nesting depth of gates.
    PolicyDepth,
    /// Leaves of a policy, or rows of its LSSS matrix after numeric expansion.
    PolicyRows,
    /// Bytes of one attribute name.
    AttributeLength,
    /// Attributes in one key.
    KeyAttributes,
    /// Bytes of an encoded object.
    EncodedLength,
}

impl core::fmt::Display for Limit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Limit::PolicyLength => "policy length in bytes",
            Limit::PolicyDepth => "policy nesting depth",
            Limit::PolicyRows => "policy rows",
            Limit::AttributeLength => "attribute length in bytes",
            Limit::KeyAttributes => "attributes per key",
            Limit::EncodedLength => "encoded length in bytes",
        })
    }
}

/// Everything that can go wrong in `smqtt-abe`.
///
/// Cryptographic failures are deliberately opaque: a ciphertext that fails the pairing equation, the CCA check
/// or the AEAD tag is [`Error::DecryptionFailed`], whatever the cause. Whether a key *can* satisfy a policy is
/// decided from public data and reported separately as [`Error::PolicyNotSatisfied`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The policy text does not parse. `column` is 1-based and counts bytes.
    #[error("policy syntax error at column {column}: {reason}")]
    PolicySyntax {
        /// 1-based byte column where the problem was found.
        column: usize,
        /// What was expected or found.
        reason: String,
    },
    /// A threshold gate `k of (...)` with k = 0 or k greater than its number of children.
    #[error("invalid threshold {k} of {n}")]
    InvalidThreshold {
        /// The threshold.
        k: usize,
        /// The number of children.
        n: usize,
    },
    /// A numeric comparison that no value can satisfy (e.g. `level < 0`).
    #[error("comparison can never be satisfied: {0}")]
    UnsatisfiableComparison(String),
    /// A policy uses the same attribute on more than one row (see the crate docs for why this is refused).
    #[error("attribute {0} appears more than once in the policy; factor it out, e.g. `a and (b or c)`")]
    DuplicateAttribute(String),
    /// The key attribute list does not parse or repeats a name.
    #[error("invalid key attribute list: {0}")]
    InvalidAttributes(String),
    /// The policy JSON form is malformed.
    #[error("invalid policy JSON: {0}")]
    PolicyJson(String),
    /// An input exceeded one of the crate's bounds.
    #[error("{what} exceeds the limit of {limit}")]
    LimitExceeded {
        /// Which bound.
        what: Limit,
        /// The bound's value.
        limit: usize,
    },
    /// Bytes that are not a valid encoding of the expected object.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The object being decoded ("ciphertext", "user key", ...).
        what: &'static str,
        /// What is wrong, without any secret material.
        reason: &'static str,
    },
    /// The key's attributes do not satisfy the ciphertext's policy (decided on public data).
    #[error("key does not satisfy the policy")]
    PolicyNotSatisfied,
    /// The ciphertext did not decrypt: pairing equation, CCA check or AEAD tag. Deliberately opaque.
    #[error("decryption failed")]
    DecryptionFailed,
    /// A key or ciphertext was made under different public parameters.
    #[error("object belongs to different public parameters")]
    ParameterMismatch,
    /// The system's random number generator failed.
    #[error("random number generator failure")]
    Rng,
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
