//! The authority's state behind one trait, so that another database can serve when one authority is not enough.
//!
//! Every method that changes state also appends its audit entry, in the same transaction: if the audit write
//! fails, the change does not happen. Every row that decides what a device or administrator may hold or do is
//! authenticated with a MAC under a key derived from the authority's secrets ([`integrity`]): a store opened
//! with them checks the whole database first and every such row again as it reads it. [`SqliteStore`] is the
//! embedded default.

pub mod integrity;
mod schema;
mod sqlite;

pub use sqlite::SqliteStore;

use crate::audit::{Action, Entry, Verification};
use crate::error::Result;
use smqtt_wire::VerifyingKey;

/// What the authority knows about a database's row MACs from outside the database — from its sealed secrets,
/// which nobody without the unseal secret can change — so that no edit of the database can change it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// `init` is creating the database: it has MACs from its first row, and nothing is upgraded.
    New,
    /// The database has had MACs (since `init`, or since its upgrade): one without them is refused, and a
    /// missing database file is not created.
    HadMacs,
    /// Sealed before the seal recorded it: a database from before MACs gets them, once, audited (if its audit
    /// chain verifies and, when it has rows, is not empty); the caller then records it in the seal.
    Unrecorded,
}

/// How often an enrollment may be retried (same token, same device key, its answer lost) while the token lives.
pub const MAX_ENROLL_RETRIES: u64 = 5;

/// Where a device is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Registered by an administrator, not yet enrolled.
    Pending,
    /// Enrolled: has a device key.
    Enrolled,
    /// Revoked: gets no more keys or credentials.
    Revoked,
}

impl DeviceStatus {
    /// Its name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Enrolled => "enrolled",
            DeviceStatus::Revoked => "revoked",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<DeviceStatus> {
        match text {
            "pending" => Some(DeviceStatus::Pending),
            "enrolled" => Some(DeviceStatus::Enrolled),
            "revoked" => Some(DeviceStatus::Revoked),
            _ => None,
        }
    }
}

/// A device as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Its id (validated by `smqtt_wire::DeviceId`).
    pub id: String,
    /// Canonical attribute list.
    pub attributes: String,
    /// Canonical topic filters it may publish on.
    pub publish: Vec<String>,
    /// Its state.
    pub status: DeviceStatus,
    /// Its Ed25519 verifying key, once enrolled.
    pub device_key: Option<[u8; 32]>,
    /// Registration time.
    pub created_at: u64,
    /// Enrollment time.
    pub enrolled_at: Option<u64>,
    /// Revocation time.
    pub revoked_at: Option<u64>,
}

/// An epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Epoch {
    /// Its number, from 1.
    pub number: u64,
    /// When it started.
    pub started_at: u64,
}

/// What redeeming an enrollment token gave: the device, and the epoch read in the same transaction (its
/// credential is for that epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrollment {
    /// The enrolled device.
    pub device: DeviceRecord,
    /// The current epoch when it enrolled.
    pub epoch: Epoch,
    /// A retry: the token had been redeemed with this very device key before (its answer was lost).
    pub retry: bool,
}

/// A new enrollment token: only its hash is stored.
#[derive(Clone, Copy, Debug)]
pub struct TokenHash {
    /// SHA-256 of the token text.
    pub hash: [u8; 32],
    /// Expiry, unix seconds.
    pub expires_at: u64,
}

/// The authority's persistent state.
pub trait Store: Send + Sync + 'static {
    /// The current epoch.
    ///
    /// # Errors
    /// [`crate::Error::Integrity`] for a row that does not match its MAC; storage errors.
    fn epoch(&self) -> Result<Epoch>;

    /// Registers a device with its enrollment token.
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] if the id is taken; storage and audit errors.
    fn add_device(&self, device: &DeviceRecord, token: TokenHash, audit: &Action, now: u64) -> Result<()>;

    /// One device.
    ///
    /// # Errors
    /// [`crate::Error::Integrity`] for a row that does not match its MAC; storage errors.
    fn device(&self, id: &str) -> Result<Option<DeviceRecord>>;

    /// Every device, by id.
    ///
    /// # Errors
    /// [`crate::Error::Integrity`] for a row that does not match its MAC; storage errors.
    fn devices(&self) -> Result<Vec<DeviceRecord>>;

    /// Redeems an enrollment token once: the token is consumed and its device enrolled with `device_key`, and
    /// the current epoch is read, in one transaction. Redeeming it again with the same `device_key` (a client
    /// whose answer was lost) gives the same device again, `retry` set, until the token expires and at most
    /// [`MAX_ENROLL_RETRIES`] times (counted in the audit log: the entries `audit(device, true)` makes for the
    /// device); with another key it is refused. `audit(device, retry)` makes the audit entry.
    ///
    /// # Errors
    /// [`crate::Error::TokenInvalid`] for an unknown, used or expired token, or one retried too often;
    /// [`crate::Error::Revoked`] for a retry of a device revoked since; [`crate::Error::Integrity`], storage and audit errors.
    fn enroll(
        &self,
        token_hash: &[u8; 32],
        device_key: &[u8; 32],
        audit: &dyn Fn(&DeviceRecord, bool) -> Action,
        now: u64,
    ) -> Result<Enrollment>;

    /// Revokes a device and, if `advance_epoch`, starts the next epoch.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`], [`crate::Error::Conflict`] if already revoked; storage and audit errors.
    fn revoke(&self, id: &str, advance_epoch: bool, audit: &Action, now: u64) -> Result<(DeviceRecord, Epoch)>;

    /// Starts the next epoch.
    ///
    /// # Errors
    /// Storage and audit errors.
    fn rotate(&self, audit: &Action, now: u64) -> Result<Epoch>;

    /// Starts issuing a key, in one transaction: checks that `device_id` is enrolled with `device_key` and not
    /// revoked, reads the current epoch, records the request's nonce (refusing one seen before; nonces older
    /// than `forget_before` are forgotten) and the audit entry `audit(device, epoch)`. The key and credential
    /// are then made for the returned device and epoch: a revocation commits either before this transaction
    /// (and the device is refused) or after it (and the epoch is older than the one the revocation starts).
    ///
    /// # Errors
    /// [`crate::Error::Unauthorized`] for an unknown device or another key, [`crate::Error::Revoked`],
    /// [`crate::Error::Replay`]; [`crate::Error::Integrity`], storage and audit errors.
    fn begin_key_issue(
        &self,
        device_id: &str,
        device_key: &[u8; 32],
        nonce: &[u8; 16],
        audit: &dyn Fn(&DeviceRecord, Epoch) -> Action,
        now: u64,
        forget_before: u64,
    ) -> Result<(DeviceRecord, Epoch)>;

    /// Stores an admin token's hash; returns its id.
    ///
    /// # Errors
    /// Storage and audit errors.
    fn add_admin_token(&self, hash: &[u8; 32], label: &str, audit: &Action, now: u64) -> Result<u64>;

    /// The id of the admin token with this hash, if it exists and is not revoked.
    ///
    /// # Errors
    /// [`crate::Error::Integrity`] for a row that does not match its MAC; storage errors.
    fn admin_token(&self, hash: &[u8; 32]) -> Result<Option<u64>>;

    /// Appends an audit entry on its own.
    ///
    /// # Errors
    /// Storage and audit errors.
    fn append_audit(&self, audit: &Action, now: u64) -> Result<()>;

    /// The newest `limit` audit entries, oldest first.
    ///
    /// # Errors
    /// Storage errors.
    fn audit_entries(&self, limit: u32) -> Result<Vec<Entry>>;

    /// Checks the whole audit chain against the authority's verifying key.
    ///
    /// # Errors
    /// Storage errors (a broken chain is reported in the [`Verification`], not as an error).
    fn audit_verify(&self, key: &VerifyingKey) -> Result<Verification>;
}

/// Verifies the audit chain of a data directory without its secrets: reads the verifying key from
/// `authority.pub` and the database without changing it (refused if its schema is not the authority's; an
/// empty audit log is reported as a problem). Without the secrets the rows' MACs cannot be
/// checked ([`integrity`]): `serve` does that when it opens the database.
///
/// # Errors
/// [`crate::Error::Io`], [`crate::Error::Config`] for an unreadable key file, storage errors.
pub fn verify_offline(data_dir: &std::path::Path) -> Result<Verification> {
    let key = crate::files::read_verifying_key(data_dir)?;
    let db = data_dir.join(crate::DATABASE_FILE);
    if !db.exists() {
        return Err(crate::Error::io(&db, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")));
    }
    SqliteStore::open(&db, None, Provenance::HadMacs)?.audit_verify(&key)
}

#[cfg(test)]
mod tests;
