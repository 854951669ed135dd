//! The SMQTT key authority: enrolls devices, issues credentials and FAME attribute keys, rotates epochs, and
//! keeps a hash-chained audit log — the one trusted component of an SMQTT deployment.
//!
//! The library exposes the pieces the `smqtt-authority` binary is made of, so that tests and embedders can run
//! the real service in-process: [`init`] creates an authority's sealed secrets and database, [`Authority`] holds
//! them unsealed, [`router`] is the HTTP API over it.
//!
//! ```no_run
//! use std::sync::Arc;
//! use smqtt_authority::{init, router, AppState, Authority, Config, UnsealWith};
//!
//! # async fn run() -> Result<(), smqtt_authority::Error> {
//! let dir = std::path::PathBuf::from("authority-data");
//! std::fs::write("authority.key", [7u8; 32]).ok();
//! let with = UnsealWith::KeyFile("authority.key".into());
//! init(&dir, &with, &mut rand_core::OsRng, 0)?;
//! let mut config = Config::new(dir);
//! config.unseal.key_file = Some("authority.key".into());
//! let authority = Arc::new(Authority::open(config)?);
//! let app = router(AppState::new(authority));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8740")
//!     .await
//!     .map_err(|source| smqtt_authority::Error::Listener { source })?;
//! axum::serve(listener, app).await.ok();
//! # Ok(()) }
//! ```
//!
//! # What revocation does and does not do
//!
//! Every key carries the attribute `epoch:<N>` of the epoch it was issued in, and publishers add `epoch:<N>`
//! of the current epoch to every policy. Revoking a device refuses it every further key and credential, and
//! (by default) advances the epoch, so data encrypted after the rotation needs an `epoch:<N+1>` key, which the
//! revoked device never gets. Data encrypted *before* the rotation stays readable to every key of the old epoch,
//! the revoked device's included: revocation is forward-only. Credentials already issued stay valid until they
//! expire; brokers and subscribers refuse credentials of past epochs where they require the current one.

mod audit;
mod config;
mod error;
mod files;
mod http;
mod sealed;
mod service;
pub mod store;

pub use audit::{Action, Entry, Verification, Verifier};
pub use config::{
    Config, CredentialConfig, EnrollmentConfig, EpochConfig, Limits, Revocation, TlsConfig, UnsealConfig,
};
pub use error::{Error, Result};
pub use files::{read_verifying_key, write_statement};
pub use http::{router, serve, serve_tls, ApiError, AppState, Metrics, RateLimiter, OPENAPI};
pub use sealed::{seal, unseal, Secrets, UnsealWith};
pub use service::{epoch_attribute, init, Authority};

/// The sealed secrets in the data directory.
pub const SEALED_FILE: &str = "authority.sealed";
/// The SQLite database in the data directory.
pub const DATABASE_FILE: &str = "authority.db";
/// The FAME public key (`smqtt-abe` encoding), for convenience; the authoritative copy is inside the seal.
pub const PUBLIC_KEY_FILE: &str = "public.key";
/// The authority's Ed25519 verifying key, base64, one line.
pub const VERIFYING_KEY_FILE: &str = "authority.pub";
/// Environment variable read for the passphrase when nothing else is configured.
pub const DEFAULT_PASSPHRASE_ENV: &str = "SMQTT_AUTHORITY_PASSPHRASE";
