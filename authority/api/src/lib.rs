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
    /// The authority could not be reached.
    #[error("cannot reach the authority: {0}")]
    Transport(String),
    /// The answer was not what the API promises.
    #[error("unexpected answer from the authority: {0}")]
    Decode(String),
    /// A local cryptographic step failed.
    #[error("{0}")]
    Crypto(String),
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
