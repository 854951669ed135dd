//! The crate's one error type. Messages never contain secrets; the HTTP layer maps each variant to a status
//! and a stable code, and answers internal failures with a generic message.
//!
//! A failure of a library below (SQLite, the file system, TOML, TLS, an encoding, the random number generator,
//! the key math) is kept as the variant's `source` — boxed, so that no dependency's type is part of this API;
//! [`std::error::Error::source`] returns it, to downcast and inspect. Messages read as they always have (the
//! API answers and the operators' logs rely on them): where a message quoted the underlying error, it still
//! does, so a report that prints the whole chain shows that part twice.

use std::path::Path;

/// A failure of a library below, kept as a variant's `source`.
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong in the authority.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration, a command-line option or a file one of them names is unusable.
    #[error("{message}")]
    Config {
        /// What is wrong, naming the option or file.
        message: String,
        /// The underlying failure, if any: the TOML parser's, the TLS library's, a key file's decoding.
        #[source]
        source: Option<Cause>,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The listening socket could not be set up.
    #[error("listener: {source}")]
    Listener {
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// `init` found existing state and will not overwrite it.
    #[error("{0} already exists; refusing to overwrite it")]
    AlreadyExists(String),
    /// The sealed secrets did not open: wrong passphrase or key file, or the file was modified. Deliberately
    /// without a cause: every way of failing looks the same.
    #[error("cannot unseal the authority secrets: wrong passphrase or key file, or the sealed file was modified")]
    Unseal,
    /// The secrets could not be sealed (the cipher refused its input).
    #[error("cannot seal the authority secrets")]
    Seal,
    /// The random number generator failed.
    #[error("the random number generator failed")]
    Rng {
        /// Its own error.
        #[source]
        source: Cause,
    },
    /// The database failed (the message is for the operator's log, not for API clients).
    #[error("database: {source}")]
    Storage {
        /// SQLite's error (or the encoder's, for a value on its way into a row).
        #[source]
        source: Cause,
    },
    /// The database cannot be used by this program as it is: its schema is newer, SQLite does not take a
    /// hardening setting, or it has no epoch (it was never initialised).
    #[error("database: {0}")]
    DatabaseUnusable(String),
    /// A stored value does not decode: a row the authority would not have written.
    #[error("database: {message}")]
    StoredValue {
        /// Which value, and what is wrong with it.
        message: String,
        /// The decoder's error, if any.
        #[source]
        source: Option<Cause>,
    },
    /// The audit entry could not be written; the change it records is not made.
    #[error("audit log: {source}")]
    AuditWrite {
        /// SQLite's error, or what went wrong.
        #[source]
        source: Cause,
    },
    /// A stored audit entry does not decode (a hash or signature of the wrong length).
    #[error("audit log: {0}")]
    AuditEntry(String),
    /// A lock was poisoned or a worker task panicked (a bug elsewhere); the operation was not done. The message
    /// keeps the `database:` prefix it has always had.
    #[error("database: {what}")]
    Internal {
        /// Which lock or task.
        what: &'static str,
        /// The task's panic, where there is one to keep.
        #[source]
        source: Option<Cause>,
    },
    /// A request that is not well-formed or not allowed as given.
    #[error("{message}")]
    Invalid {
        /// What is wrong with it, naming the field (this is the API answer's message).
        message: String,
        /// The parser's error, if any.
        #[source]
        source: Option<Cause>,
    },
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
    #[error("key issuance failed: {source}")]
    Crypto {
        /// The key math's or the signer's error.
        #[source]
        source: Cause,
    },
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
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.display().to_string(), source }
    }

    /// [`Error::Config`] without an underlying failure.
    pub(crate) fn config(message: impl Into<String>) -> Error {
        Error::Config { message: message.into(), source: None }
    }

    /// [`Error::Config`] caused by `source` (the message says what it needs to of it).
    pub(crate) fn config_from(message: impl Into<String>, source: impl Into<Cause>) -> Error {
        Error::Config { message: message.into(), source: Some(source.into()) }
    }

    /// [`Error::Invalid`] without an underlying failure.
    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid { message: message.into(), source: None }
    }

    /// [`Error::Invalid`] for `field`, caused by `source`: the message is `field: source`.
    pub(crate) fn invalid_field(field: &str, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Invalid { message: format!("{field}: {source}"), source: Some(Box::new(source)) }
    }

    /// [`Error::StoredValue`] without an underlying failure.
    pub(crate) fn stored(message: impl Into<String>) -> Error {
        Error::StoredValue { message: message.into(), source: None }
    }

    /// [`Error::StoredValue`] for `what`, caused by `source`: the message is `what: source`.
    pub(crate) fn stored_value(what: &str, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::StoredValue { message: format!("{what}: {source}"), source: Some(Box::new(source)) }
    }

    /// [`Error::Crypto`] caused by `source`.
    pub(crate) fn crypto(source: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Crypto { source: Box::new(source) }
    }

    /// [`Error::Rng`] caused by `source`.
    pub(crate) fn rng(source: rand_core::Error) -> Error {
        Error::Rng { source: Box::new(RngFailure(source)) }
    }

    /// [`Error::Rng`] for the key math's report of a failed random number generator.
    pub(crate) fn rng_in(source: smqtt_abe::Error) -> Error {
        Error::Rng { source: Box::new(source) }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Error {
        Error::Storage { source: Box::new(error) }
    }
}

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

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// The messages are the ones the API and the logs have always shown; the cause is there as well.
    #[test]
    fn messages_read_as_before_and_causes_are_kept() {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let io = Error::io(Path::new("/x/authority.db"), missing);
        assert_eq!(io.to_string(), "/x/authority.db: no such file");
        let kind = io.source().and_then(|s| s.downcast_ref::<std::io::Error>()).map(std::io::Error::kind);
        assert_eq!(kind, Some(std::io::ErrorKind::NotFound));

        let sql = Error::from(rusqlite::Error::QueryReturnedNoRows);
        assert_eq!(sql.to_string(), format!("database: {}", rusqlite::Error::QueryReturnedNoRows));
        assert!(sql.source().is_some_and(|s| s.is::<rusqlite::Error>()));

        let parse = smqtt_wire::DeviceId::new("not an id!").expect_err("invalid");
        let invalid = Error::invalid_field("device_id", parse.clone());
        assert_eq!(invalid.to_string(), format!("device_id: {parse}"));
        assert_eq!(invalid.source().and_then(|s| s.downcast_ref::<smqtt_wire::Error>()), Some(&parse));

        let written = Error::AuditWrite { source: "the audit entry was not stored".into() };
        assert_eq!(written.to_string(), "audit log: the audit entry was not stored");
        assert_eq!(Error::stored("unknown device status").to_string(), "database: unknown device status");
        assert!(Error::config("x").source().is_none());
    }
}
