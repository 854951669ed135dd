//! The crate's error type, and the per-message reasons a delivered publish could not be accepted.

/// Everything that can stop the SDK itself (setup, publishing, the store).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The device store is missing, incomplete or unreadable.
    #[error("device store {path}: {message}")]
    Store {
        /// The file or folder.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The authority refused or could not be reached.
    #[error("{0}")]
    Authority(String),
    /// An answer that is not from the pinned authority, or for other FAME parameters than the pinned ones: a
    /// swapped trust root is refused, never stored.
    #[error("untrusted authority answer: {0}")]
    Untrusted(#[source] smqtt_authority_api::ClientError),
    /// An enrollment token would travel in the clear: plain HTTP to an authority that is not on loopback.
    #[error("refusing to send the enrollment token over plain HTTP to {0}: use https:// (or a loopback address)")]
    InsecureAuthority(String),
    /// The authority offered an older epoch than this store has already seen signed.
    #[error("the authority offered epoch {offered}, older than epoch {stored} already seen: refusing it")]
    EpochRegressed {
        /// The newest epoch the store has a signed statement of.
        stored: u64,
        /// The epoch offered.
        offered: u64,
    },
    /// A policy that cannot be encrypted under.
    #[error("policy: {0}")]
    Policy(String),
    /// A topic or filter that MQTT does not allow.
    #[error("topic: {0}")]
    Topic(String),
    /// This device's credential does not allow publishing on the topic (checked before sending).
    #[error("not allowed to publish on {0}")]
    NotPermitted(String),
    /// A payload over the envelope's bound.
    #[error("payload too large ({size} bytes, at most {limit})")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The bound.
        limit: usize,
    },
    /// The MQTT client stopped (disconnected for good, or the SDK was dropped).
    #[error("MQTT client closed")]
    Closed,
    /// TLS to the broker: an unreadable or invalid PEM file, no trusted CA, or a handshake that failed (an
    /// untrusted or misnamed server certificate, a client certificate the broker refused).
    #[error("TLS: {0}")]
    Tls(String),
    /// The broker could not be reached, or refused the connection (see [`SmqttClient::wait_connected`]).
    ///
    /// [`SmqttClient::wait_connected`]: crate::SmqttClient::wait_connected
    #[error("{0}")]
    Connect(String),
    /// The broker refused the CONNECT with this return (3.1.1) or reason (5) code. `permanent` when retrying
    /// as is cannot help (bad or stale credentials, a revoked device, a banned or foreign client id): renew the
    /// credential or give up; otherwise the broker is busy or unavailable for now.
    #[error("broker {broker} refused the connection: {reason}")]
    ConnectRefused {
        /// `host:port`.
        broker: String,
        /// The broker's code, e.g. `NotAuthorized`.
        reason: String,
        /// Whether retrying as is can never succeed.
        permanent: bool,
    },
    /// No acknowledgement came for a publish or subscription (the connection failed first, or a timeout
    /// passed): it may or may not have reached the broker (a retry may deliver it twice).
    #[error("not acknowledged: {0}")]
    NotAcknowledged(String),
    /// The broker answered a publish with a failure reason code (MQTT 5).
    #[error("the broker refused the publish: {0}")]
    PublishRefused(String),
    /// The broker refused a subscription in its SUBACK.
    #[error("the broker refused the subscription: {0}")]
    SubscribeRefused(String),
    /// A cryptographic step failed (RNG, sealing).
    #[error("{0}")]
    Crypto(String),
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
