//! The engine's errors: [`Error`] for what stops sealing or a store, [`MessageError`] for why one delivered
//! message was refused (the stream goes on after each).

use std::path::PathBuf;

/// What can stop the engine itself: a policy that cannot be sealed under, a sealing failure, a device store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A policy that cannot be encrypted under (with the epoch attribute added).
    #[error("policy: {0}")]
    Policy(#[source] smqtt_abe::Error),
    /// Encapsulating a session key or sealing an envelope failed (a payload over the bound, a failing RNG).
    #[error("sealing: {0}")]
    Seal(#[source] SealFailure),
    /// A device store file could not be read or written.
    #[error("device store {}: {source}", path.display())]
    StoreIo {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A device store file is there but unusable: corrupt, of the wrong size, not private, or not belonging
    /// with the rest of the store.
    #[error("device store {}: {problem}", path.display())]
    StoreInvalid {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// The decoder's error, if one refused it.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A renewal offered an older epoch than the store has already seen signed.
    #[error("the authority offered epoch {offered}, older than epoch {stored} already seen: refusing it")]
    EpochRegressed {
        /// The newest epoch the store has a signed statement of.
        stored: u64,
        /// The epoch offered.
        offered: u64,
    },
}

/// Why sealing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealFailure {
    /// The envelope could not be sealed (e.g. a payload over [`smqtt_wire::MAX_PAYLOAD`]).
    #[error("envelope: {0}")]
    Envelope(#[source] smqtt_wire::Error),
}

impl Error {
    pub(crate) fn invalid(path: impl Into<PathBuf>, problem: impl Into<String>) -> Error {
        Error::StoreInvalid { path: path.into(), problem: problem.into(), source: None }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        problem: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::StoreInvalid { path: path.into(), problem: problem.into(), source: Some(Box::new(source)) }
    }
}

/// Why one delivered message was not accepted. The stream goes on after each of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Not an SMQTT envelope (plaintext, truncated, wrong version …).
    #[error("malformed envelope on {topic}: {reason}")]
    Malformed {
        /// The topic it arrived on.
        topic: String,
        /// Why.
        reason: String,
    },
    /// This device's attribute key does not satisfy the message's policy.
    #[error("not authorised to read {topic} (policy: {policy})")]
    NotAuthorised {
        /// The topic.
        topic: String,
        /// The policy it was encrypted under.
        policy: String,
    },
    /// The publisher's signature does not verify, or it is not the credential's device.
    #[error("bad signature on {topic} (claimed publisher {publisher})")]
    BadSignature {
        /// The topic.
        topic: String,
        /// Who it claims to be from.
        publisher: String,
    },
    /// An unsigned envelope (`docs/wire.md` §6.5) that this subscriber does not accept: unsigned envelopes
    /// are off ([`Opener::accept_unsigned`](crate::Opener::accept_unsigned)), or the session was not
    /// introduced by a signed envelope of the same publisher.
    #[error("unsigned envelope on {topic} (claimed publisher {publisher}) not accepted")]
    Unsigned {
        /// The topic.
        topic: String,
        /// Who it claims to be from.
        publisher: String,
    },
    /// The publisher's credential is missing, not signed by the authority, expired, or of a past epoch.
    #[error("untrusted publisher {publisher} on {topic}: {reason}")]
    UntrustedPublisher {
        /// The topic.
        topic: String,
        /// Who it claims to be from.
        publisher: String,
        /// Why.
        reason: String,
    },
    /// The publisher's credential does not grant publishing on this topic.
    #[error("{publisher} may not publish on {topic}")]
    TopicNotPermitted {
        /// The topic.
        topic: String,
        /// The publisher.
        publisher: String,
    },
    /// Seen before (or older than the replay window).
    #[error("replayed message on {topic} from {publisher}")]
    Replay {
        /// The topic.
        topic: String,
        /// The publisher.
        publisher: String,
    },
    /// The envelope's ciphertext or capsule does not decrypt: it was modified.
    #[error("tampered message on {topic} from {publisher}")]
    Tampered {
        /// The topic.
        topic: String,
        /// The publisher.
        publisher: String,
    },
    /// Delivered with the MQTT retain flag, but not sealed as retained by its publisher (`docs/wire.md` §6.4):
    /// a live message replayed as a retained one.
    #[error("retained delivery on {topic} (claimed publisher {publisher}) was not sealed as retained")]
    NotSealedRetained {
        /// The topic.
        topic: String,
        /// Who it claims to be from.
        publisher: String,
    },
    /// Sealed longer ago than the maximum message age, or in the future ([`OpenerLimits`](crate::OpenerLimits)).
    #[error("stale message on {topic} (claimed publisher {publisher}): {reason}")]
    Stale {
        /// The topic.
        topic: String,
        /// Who it claims to be from.
        publisher: String,
        /// How old (or how far in the future).
        reason: String,
    },
    /// The publisher started more new sessions than its budget allows ([`OpenerLimits`](crate::OpenerLimits));
    /// the capsule was not decoded. An honest publisher's comes again with a later envelope of the session.
    #[error("{publisher} starts sessions too fast; capsule on {topic} not decoded")]
    SessionFlood {
        /// The topic.
        topic: String,
        /// The publisher (its signature verified).
        publisher: String,
    },
    /// The session key is not known yet: the capsule comes with a later message of the session.
    #[error("unknown session key on {topic} from {publisher}; waiting for its capsule")]
    UnknownKey {
        /// The topic.
        topic: String,
        /// The publisher.
        publisher: String,
    },
}

impl MessageError {
    /// A stable one-word name for logs and the CLI's `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageError::Malformed { .. } => "malformed",
            MessageError::NotAuthorised { .. } => "not_authorised",
            MessageError::BadSignature { .. } => "bad_signature",
            MessageError::Unsigned { .. } => "unsigned",
            MessageError::UntrustedPublisher { .. } => "untrusted_publisher",
            MessageError::TopicNotPermitted { .. } => "topic_not_permitted",
            MessageError::Replay { .. } => "replay",
            MessageError::Tampered { .. } => "tampered",
            MessageError::UnknownKey { .. } => "unknown_key",
            MessageError::NotSealedRetained { .. } => "retain_not_sealed",
            MessageError::Stale { .. } => "stale",
            MessageError::SessionFlood { .. } => "session_flood",
        }
    }
}
