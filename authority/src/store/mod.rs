//! The authority's state behind one trait, so that another database can serve when one authority is not enough.
//!
//! Every method that changes state also appends its audit entry, in the same transaction: if the audit write
//! fails, the change does not happen. [`SqliteStore`] is the embedded default.

mod sqlite;

pub use sqlite::SqliteStore;

use crate::audit::{Action, Entry, Verification};
use crate::error::Result;
use smqtt_wire::VerifyingKey;

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
    /// [`crate::Error::Storage`].
    fn epoch(&self) -> Result<Epoch>;

    /// Registers a device with its enrollment token.
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] if the id is taken; storage and audit errors.
    fn add_device(&self, device: &DeviceRecord, token: TokenHash, audit: &Action, now: u64) -> Result<()>;

    /// One device.
    ///
    /// # Errors
    /// Storage errors.
    fn device(&self, id: &str) -> Result<Option<DeviceRecord>>;

    /// Every device, by id.
    ///
    /// # Errors
    /// Storage errors.
    fn devices(&self) -> Result<Vec<DeviceRecord>>;

    /// Redeems an enrollment token once: the token is consumed and its device enrolled with `device_key`.
    ///
    /// # Errors
    /// [`crate::Error::TokenInvalid`] for an unknown, used or expired token; storage and audit errors.
    fn enroll(
        &self,
        token_hash: &[u8; 32],
        device_key: &[u8; 32],
        actor_audit: &dyn Fn(&DeviceRecord) -> Action,
        now: u64,
    ) -> Result<DeviceRecord>;

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

    /// Records a key request's nonce (refusing one seen before) and its audit entry; forgets nonces older than
    /// `forget_before`.
    ///
    /// # Errors
    /// [`crate::Error::Replay`]; storage and audit errors.
    fn record_key_request(
        &self,
        device_id: &str,
        nonce: &[u8; 16],
        audit: &Action,
        now: u64,
        forget_before: u64,
    ) -> Result<()>;

    /// Stores an admin token's hash; returns its id.
    ///
    /// # Errors
    /// Storage and audit errors.
    fn add_admin_token(&self, hash: &[u8; 32], label: &str, audit: &Action, now: u64) -> Result<u64>;

    /// The id of the admin token with this hash, if it exists and is not revoked.
    ///
    /// # Errors
    /// Storage errors.
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
/// `authority.pub` and the database read-only for audited changes.
///
/// # Errors
/// [`crate::Error::Io`], [`crate::Error::Config`] for an unreadable key file, storage errors.
pub fn verify_offline(data_dir: &std::path::Path) -> Result<Verification> {
    use base64::Engine as _;
    let key_path = data_dir.join(crate::VERIFYING_KEY_FILE);
    let text = std::fs::read_to_string(&key_path).map_err(|e| crate::Error::io(&key_path, &e))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| crate::Error::Config(format!("{} is not base64", key_path.display())))?;
    let bytes: [u8; 32] =
        bytes.try_into().map_err(|_| crate::Error::Config(format!("{} is not a 32-byte key", key_path.display())))?;
    let key =
        VerifyingKey::from_bytes(&bytes).map_err(|e| crate::Error::Config(format!("{}: {e}", key_path.display())))?;
    let db = data_dir.join(crate::DATABASE_FILE);
    if !db.exists() {
        return Err(crate::Error::Io { path: db.display().to_string(), message: "no such file".into() });
    }
    SqliteStore::open(&db, None)?.audit_verify(&key)
}
