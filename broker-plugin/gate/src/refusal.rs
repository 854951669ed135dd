//! Decisions, refusals with stable reasons, and the crate's error type.

use core::fmt::{self, Display, Formatter};

/// Why the gate refused something. The names ([`as_str`](Self::as_str)) are stable: they label metrics and
/// appear in logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalReason {
    /// No credential or password where one is required, or an unknown username.
    NotAuthenticated,
    /// A CONNECT token or credential that does not decode or verify, or names another device.
    BadCredential,
    /// A CONNECT token whose timestamp is outside the allowed clock skew.
    StaleToken,
    /// A credential outside its validity window.
    Expired,
    /// A credential of an epoch older than the current minimum (revocation).
    RevokedEpoch,
    /// A device the configuration refuses outright.
    DeviceDenied,
    /// A legacy client's password does not verify.
    BadPassword,
    /// An authenticated client asked for a client id outside its own space (a device: `<device_id>` or
    /// `<device_id>/<suffix>`; a legacy client: `legacy:<username>[/<suffix>]`; anonymous: `anon:<…>`), which
    /// would let it take over another identity's session.
    ClientIdNotOwned,
    /// An anonymous client tried to publish.
    AnonymousReadOnly,
    /// A publish outside the client's rights.
    TopicNotPermitted,
    /// A topic name or filter that is not valid.
    BadTopic,
    /// A payload on a protected topic that is not a well-formed SMQTT envelope.
    NotAnEnvelope,
    /// An envelope on a protected topic whose publisher is not the connected device.
    ForeignSigner,
    /// An envelope whose signature does not verify with the connected device's key for this topic.
    BadSignature,
    /// An unsigned envelope (session-key authentication, `docs/wire.md` §6.5) on a protected topic not
    /// configured to accept them.
    Unsigned,
    /// A payload over the configured size limit.
    Oversize,
    /// A subscription the configuration refuses.
    SubscribeDenied,
    /// Broker-side sealing failed (no broker identity, policy, or crypto error).
    SealFailed,
    /// Too many failed passwords from this source address (for this username or in all): refused without
    /// hashing until its backoff ends. A client whose password verified before is never throttled.
    Throttled,
    /// The session table is full of connected sessions, or this identity already holds its maximum number of
    /// connected client ids: the CONNECT is refused rather than evicting a live session.
    TooManySessions,
    /// A PUBLISH with the MQTT retain flag whose envelope is not sealed for retained publication (wire.md §6.4):
    /// subscribers would refuse it, so it never reaches the retained store.
    RetainNotSealed,
}

impl RefusalReason {
    /// Every reason, in a fixed order (the metrics' order).
    pub const ALL: [RefusalReason; 21] = [
        RefusalReason::NotAuthenticated,
        RefusalReason::BadCredential,
        RefusalReason::StaleToken,
        RefusalReason::Expired,
        RefusalReason::RevokedEpoch,
        RefusalReason::DeviceDenied,
        RefusalReason::BadPassword,
        RefusalReason::AnonymousReadOnly,
        RefusalReason::TopicNotPermitted,
        RefusalReason::BadTopic,
        RefusalReason::NotAnEnvelope,
        RefusalReason::ForeignSigner,
        RefusalReason::BadSignature,
        RefusalReason::Unsigned,
        RefusalReason::Oversize,
        RefusalReason::SubscribeDenied,
        RefusalReason::SealFailed,
        RefusalReason::ClientIdNotOwned,
        RefusalReason::Throttled,
        RefusalReason::TooManySessions,
        RefusalReason::RetainNotSealed,
    ];

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::NotAuthenticated => "not_authenticated",
            RefusalReason::BadCredential => "bad_credential",
            RefusalReason::StaleToken => "stale_token",
            RefusalReason::Expired => "expired",
            RefusalReason::RevokedEpoch => "revoked_epoch",
            RefusalReason::DeviceDenied => "device_denied",
            RefusalReason::BadPassword => "bad_password",
            RefusalReason::ClientIdNotOwned => "client_id_not_owned",
            RefusalReason::AnonymousReadOnly => "anonymous_read_only",
            RefusalReason::TopicNotPermitted => "topic_not_permitted",
            RefusalReason::BadTopic => "bad_topic",
            RefusalReason::NotAnEnvelope => "not_an_envelope",
            RefusalReason::ForeignSigner => "foreign_signer",
            RefusalReason::BadSignature => "bad_signature",
            RefusalReason::Unsigned => "unsigned",
            RefusalReason::Oversize => "oversize",
            RefusalReason::SubscribeDenied => "subscribe_denied",
            RefusalReason::SealFailed => "seal_failed",
            RefusalReason::Throttled => "throttled",
            RefusalReason::TooManySessions => "too_many_sessions",
            RefusalReason::RetainNotSealed => "retain_not_sealed",
        }
    }

    /// The MQTT 5 reason code for a CONNACK, PUBACK/PUBREC or SUBACK refusing for this reason: 0x86 (bad user
    /// name or password) for credential problems at CONNECT, 0x85 (client identifier not valid) for a client id
    /// outside the client's space, 0x87 (not authorised) for policy refusals, 0x99
    /// (payload format invalid) for a payload that is not an envelope, 0x95 (packet too large), 0x90 (topic
    /// name invalid; 0x8F topic filter invalid in a SUBACK, see [`mqtt5_suback_code`](Self::mqtt5_suback_code)),
    /// 0x80 (unspecified) when sealing failed, 0x9F (connection rate exceeded) when throttled, 0x97 (quota
    /// exceeded) for too many sessions.
    pub fn mqtt5_code(self) -> u8 {
        match self {
            RefusalReason::BadCredential
            | RefusalReason::StaleToken
            | RefusalReason::Expired
            | RefusalReason::BadPassword => 0x86,
            RefusalReason::NotAuthenticated
            | RefusalReason::RevokedEpoch
            | RefusalReason::DeviceDenied
            | RefusalReason::AnonymousReadOnly
            | RefusalReason::TopicNotPermitted
            | RefusalReason::ForeignSigner
            | RefusalReason::BadSignature
            | RefusalReason::Unsigned
            | RefusalReason::SubscribeDenied => 0x87,
            RefusalReason::NotAnEnvelope | RefusalReason::RetainNotSealed => 0x99,
            RefusalReason::Throttled => 0x9F,
            RefusalReason::TooManySessions => 0x97,
            RefusalReason::Oversize => 0x95,
            RefusalReason::BadTopic => 0x90,
            RefusalReason::SealFailed => 0x80,
            RefusalReason::ClientIdNotOwned => 0x85,
        }
    }

    /// The MQTT 5 SUBACK reason code: [`mqtt5_code`](Self::mqtt5_code), except 0x8F for an invalid filter.
    pub fn mqtt5_suback_code(self) -> u8 {
        match self {
            RefusalReason::BadTopic => 0x8F,
            other => other.mqtt5_code(),
        }
    }

    /// The MQTT 3.1.1 CONNACK return code: 4 (bad user name or password) for credential problems, 2 (identifier
    /// rejected) for a client id outside the client's space, 5 (not authorised) otherwise.
    pub fn mqtt311_connack_code(self) -> u8 {
        match self.mqtt5_code() {
            0x86 => 4,
            0x85 => 2,
            _ => 5,
        }
    }
}

impl Display for RefusalReason {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: the reason and a human-readable message (no secrets, no payload bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub reason: RefusalReason,
    /// Details for logs.
    pub message: String,
}

impl Refusal {
    /// A refusal for `reason` with `message`.
    pub fn new(reason: RefusalReason, message: impl Into<String>) -> Refusal {
        Refusal { reason, message: message.into() }
    }

    /// The MQTT 5 reason code ([`RefusalReason::mqtt5_code`]).
    pub fn mqtt5_code(&self) -> u8 {
        self.reason.mqtt5_code()
    }
}

impl Display for Refusal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

impl std::error::Error for Refusal {}

/// What to do with a PUBLISH (or a will).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishDecision {
    /// Forward the payload as it is.
    Accept,
    /// Forward this payload instead: the plaintext sealed by the broker into an SMQTT envelope.
    Replace(Vec<u8>),
    /// Drop the message.
    Refuse(Refusal),
}

impl PublishDecision {
    /// Whether the message goes on (accepted or replaced).
    pub fn is_forwarded(&self) -> bool {
        !matches!(self, PublishDecision::Refuse(_))
    }

    /// The refusal, if any.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            PublishDecision::Refuse(refusal) => Some(refusal),
            _ => None,
        }
    }
}

/// Loading the gate's configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// A file could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The configuration is invalid (syntax, unknown key, bad value).
    #[error("configuration: {0}")]
    Config(String),
    /// The broker's device store (for sealing) could not be loaded or does not fit the configuration.
    #[error("broker identity: {0}")]
    Identity(String),
}
