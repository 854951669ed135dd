//! The crate's one error type. Messages never contain secrets; the HTTP layer maps each variant to a status
//! and a stable code, and answers internal failures with a generic message.

use std::path::Path;

/// Everything that can go wrong in the authority.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration or a command-line option is unusable.
    #[error("{0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        message: String,
    },
    /// `init` found existing state and will not overwrite it.
    #[error("{0} already exists; refusing to overwrite it")]
    AlreadyExists(String),
    /// The sealed secrets did not open: wrong passphrase or key file, or the file was modified.
    #[error("cannot unseal the authority secrets: wrong passphrase or key file, or the sealed file was modified")]
    Unseal,
    /// The random number generator failed.
    #[error("the random number generator failed")]
    Rng,
    /// The database failed (the message is for the operator's log, not for API clients).
    #[error("database: {0}")]
    Storage(String),
    /// The audit log could not be written or does not verify.
    #[error("audit log: {0}")]
    Audit(String),
    /// A request that is not well-formed or not allowed as given.
    #[error("{0}")]
    Invalid(String),
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with existing state (e.g. a device id taken).
    #[error("{0}")]
    Conflict(String),
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// An enrollment token that is unknown, used or expired (one message for all three).
    #[error("enrollment token is invalid, used or expired")]
    TokenInvalid,
    /// A signed request whose timestamp is outside the allowed clock skew.
    #[error("request timestamp is outside the allowed clock skew")]
    Stale,
    /// A signed request seen before.
    #[error("request was already used (replay)")]
    Replay,
    /// The device is revoked.
    #[error("device is revoked")]
    Revoked,
    /// The device has not enrolled yet.
    #[error("device has not enrolled")]
    NotEnrolled,
    /// Cryptographic failure issuing a key (should not happen with valid state).
    #[error("key issuance failed: {0}")]
    Crypto(String),
    /// A row that decides what a device or administrator may hold or do does not match its MAC, or rows were
    /// deleted, added or rolled back: the database was changed outside the authority. Nothing is served from
    /// it (see `store::integrity`).
    #[error("database integrity: table {table} row {row}: {problem}; the database was changed outside the authority, refusing to use it")]
    Integrity {
        /// The table.
        table: &'static str,
        /// The row's primary key (`*` when the problem is with the table as a whole).
        row: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// The store was opened without the authority's secrets (offline `audit verify`): it can neither change
    /// state nor authenticate rows.
    #[error("the database was opened without the authority's secrets: read-only, rows cannot be authenticated")]
    ReadOnly,
}

impl Error {
    pub(crate) fn io(path: &Path, error: &std::io::Error) -> Error {
        Error::Io { path: path.display().to_string(), message: error.to_string() }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Error {
        Error::Storage(error.to_string())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
