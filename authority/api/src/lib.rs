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

pub use client::{Client, DeviceKeys, Params};
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
}
