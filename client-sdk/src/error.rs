//! The crate's error type (the per-message reasons a delivered publish was refused are the engine's
//! [`MessageError`](smqtt_session::MessageError)). Errors keep their causes ([`std::error::Error::source`]);
//! they are `Clone` (a connection's state is watched by many), so causes are shared [`Cause`]s.

pub use smqtt_authority_api::Cause;

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
        /// The underlying error (I/O, a format's), if any.
        #[source]
        source: Option<Cause>,
    },
    /// An identity offered to a connected client (`SmqttClient::install`) that is another device's.
    #[error("renewed identity is for {offered}, not {connected}")]
    OtherDevice {
        /// The offered identity's device.
        offered: String,
        /// The device the client is connected as.
        connected: String,
    },
    /// The authority refused or could not be reached (or its client could not be set up: a bad CA file).
    #[error("{0}")]
    Authority(#[source] smqtt_authority_api::ClientError),
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
    Policy(#[source] Cause),
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
    #[error("TLS: {message}")]
    Tls {
        /// What went wrong, with the file or name concerned.
        message: String,
        /// The underlying error (I/O, PEM, rustls), if any.
        #[source]
        source: Option<Cause>,
    },
    /// The broker could not be reached, or refused the connection (see [`SmqttClient::wait_connected`]).
    ///
    /// [`SmqttClient::wait_connected`]: crate::SmqttClient::wait_connected
    #[error("{message}")]
    Connect {
        /// What happened.
        message: String,
        /// The underlying error (the MQTT client's, I/O), if any.
        #[source]
        source: Option<Cause>,
    },
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
    /// A thread or task of the SDK could not start or did not finish (the system's limits, a panic).
    #[error("{message}")]
    Internal {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Cause>,
    },
    /// A cryptographic step failed (RNG, sealing).
    #[error("{message}")]
    Crypto {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Cause>,
    },
}

impl Error {
    /// [`Error::Tls`] without an underlying error.
    pub(crate) fn tls(message: impl Into<String>) -> Error {
        Error::Tls { message: message.into(), source: None }
    }

    /// [`Error::Tls`] with its cause: `"{context}: {cause}"`.
    pub(crate) fn tls_from(
        context: impl core::fmt::Display,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Tls { message: format!("{context}: {cause}"), source: Some(Cause::new(cause)) }
    }

    /// [`Error::Connect`] without an underlying error.
    pub(crate) fn connect(message: impl Into<String>) -> Error {
        Error::Connect { message: message.into(), source: None }
    }
}

impl From<smqtt_session::Error> for Error {
    fn from(error: smqtt_session::Error) -> Error {
        use smqtt_session::Error as E;
        match error {
            E::Policy(e) => Error::Policy(Cause::new(e)),
            E::EpochRegressed { stored, offered } => Error::EpochRegressed { stored, offered },
            E::StoreIo { path, source } => Error::Store {
                path: path.display().to_string(),
                message: source.to_string(),
                source: Some(Cause::new(source)),
            },
            E::StoreInvalid { path, problem, source } => Error::Store {
                path: path.display().to_string(),
                message: match &source {
                    Some(cause) => format!("{problem}: {cause}"),
                    None => problem,
                },
                source: source.map(boxed_cause),
            },
            other => Error::Crypto { message: other.to_string(), source: Some(Cause::new(other)) },
        }
    }
}

/// A boxed error as a [`Cause`].
pub(crate) fn boxed_cause(error: Box<dyn std::error::Error + Send + Sync>) -> Cause {
    Cause::new(BoxedCause(error))
}

/// A boxed error as an error of its own (a `Box<dyn Error>` is not one, so it cannot be shared as is).
#[derive(Debug)]
struct BoxedCause(Box<dyn std::error::Error + Send + Sync>);

impl core::fmt::Display for BoxedCause {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for BoxedCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
