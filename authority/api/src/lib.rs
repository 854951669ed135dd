//! The SMQTT key authority's HTTP API: its JSON types and a blocking client for administrators and devices.
//!
//! The server lives in `smqtt-authority`; this crate is what talks to it (the `smqtt-authority` admin commands,
//! the client SDK, tests).
//!
//! ```no_run
//! use smqtt_authority_api::{Client, NewDevice};
//!
//! let admin = Client::new("http://127.0.0.1:8740").with_admin_token("smqtt-admin-...");
//! let created = admin.add_device(&NewDevice {
//!     device_id: "sensor-1".into(),
//!     attributes: "role:sensor, site:berlin".into(),
//!     publish: vec!["plant/berlin/#".into()],
//!     token_ttl_secs: None,
//! })?;
//! println!("enrollment token: {}", created.enrollment_token);
//! # Ok::<(), smqtt_authority_api::ClientError>(())
//! ```

mod client;
pub mod types;

pub use client::{Client, DeviceKeys, Enrollment, Params, Pinned};
pub use types::*;

/// What a call to the authority can fail with.
///
/// A failure of a library below (the HTTP transport, TLS, JSON, an encoding, the random number generator, the
/// key math) is kept as the variant's `source`, a [`Cause`]: [`std::error::Error::source`] returns that
/// library's error itself. Messages read as they always have; where one quotes the underlying error, a report
/// that prints the whole chain shows that part twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The authority answered with an error.
    #[error("authority refused ({status} {code}): {message}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The stable error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The authority could not be reached, or its answer could not be read.
    #[error("cannot reach the authority: {source}")]
    Transport {
        /// The transport's error.
        #[source]
        source: Cause,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the authority: {message}")]
    Decode {
        /// What in the answer is wrong.
        message: String,
        /// The decoder's or verifier's error, if any.
        #[source]
        source: Option<Cause>,
    },
    /// A device id given to [`Client::show_device`] or [`Client::revoke_device`] that is not one, refused before
    /// it is put into a URL (the message keeps the wording it has always had).
    #[error("unexpected answer from the authority: device id: {source}")]
    InvalidDeviceId {
        /// Why it is not a device id.
        #[source]
        source: Cause,
    },
    /// The CA certificates given for an `https://` authority are unusable.
    #[error("{message}")]
    Tls {
        /// What is wrong with them.
        message: String,
        /// The PEM parser's or TLS library's error, if any.
        #[source]
        source: Option<Cause>,
    },
    /// A local cryptographic step failed: the random number generator, or the trial encapsulation a delivered
    /// key is checked with.
    #[error("{message}")]
    Crypto {
        /// What failed.
        message: String,
        /// Its error.
        #[source]
        source: Option<Cause>,
    },
    /// The authority offered another verifying key than the pinned one (fingerprints).
    #[error("the authority's key {offered} is not the pinned key {pinned}: refusing it (a swapped trust root)")]
    AuthorityKeyMismatch {
        /// Fingerprint of the pinned key.
        pinned: String,
        /// Fingerprint of the key offered.
        offered: String,
    },
    /// An enrollment token that pins no authority key, and none was given out of band.
    #[error("the enrollment token pins no authority key; pass the authority's key explicitly")]
    NoPinnedAuthority,
    /// An answer the pinned authority key did not sign.
    #[error("{0} is not signed by the pinned authority key")]
    BadAuthoritySignature(&'static str),
    /// An answer for another FAME parameter set than the pinned one.
    #[error("the authority's FAME public parameters changed under this device: refusing them")]
    ParamsChanged,
    /// A delivered attribute key that does not decapsulate under the pinned public parameters.
    #[error("the delivered attribute key does not belong to the pinned public parameters")]
    KeyMismatch,
}

impl ClientError {
    /// [`ClientError::Decode`] without an underlying error.
    pub(crate) fn decode(message: impl Into<String>) -> ClientError {
        ClientError::Decode { message: message.into(), source: None }
    }

    /// [`ClientError::Decode`] of `what`, caused by `source`: the message is `what: source`.
    pub(crate) fn decode_of(what: &str, source: impl std::error::Error + Send + Sync + 'static) -> ClientError {
        ClientError::Decode { message: format!("{what}: {source}"), source: Some(Cause::new(source)) }
    }

    /// [`ClientError::Transport`] caused by `source`.
    pub(crate) fn transport(source: impl std::error::Error + Send + Sync + 'static) -> ClientError {
        ClientError::Transport { source: Cause::new(source) }
    }
}

/// The underlying error of a [`ClientError`]: the HTTP, TLS, JSON, encoding or cryptographic library's own
/// error, opaque (no dependency's type is part of this API) and shared, so that [`ClientError`] stays `Clone`.
///
/// It displays as that error and dereferences to it; [`std::error::Error::source`] of the [`ClientError`]
/// returns the error itself, so `downcast_ref` works on either. Two causes are equal when their messages are
/// (as the messages alone were compared before causes were kept).
#[derive(Clone)]
pub struct Cause(std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Cause {
    /// Keeps `error`.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause(std::sync::Arc::new(error))
    }

    /// The error itself, if it is an `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref()
    }
}

// `Cause` is deliberately not itself a `std::error::Error`: `ClientError::source` then hands out the error it
// holds (through `Deref`), not a wrapper around it.
impl core::ops::Deref for Cause {
    type Target = dyn std::error::Error + Send + Sync + 'static;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl core::fmt::Debug for Cause {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&*self.0, f)
    }
}

impl core::fmt::Display for Cause {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&*self.0, f)
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Cause) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

/// `rand_core::Error` as a `std::error::Error` whatever `rand_core`'s features (it implements the trait only
/// with `std`).
struct RngFailure(rand_core::Error);

impl core::fmt::Debug for RngFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&self.0, f)
    }
}

impl core::fmt::Display for RngFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for RngFailure {}
