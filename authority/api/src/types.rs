//! The JSON bodies of the authority's HTTP API (`/v1/...`), shared by the server and its clients.
//!
//! Binary values (keys, credentials, signatures, nonces) travel as standard base64 with padding. Every request
//! type rejects unknown fields, so a typo in a client is a 400, not a silently ignored option.

use serde::{Deserialize, Serialize};

/// `GET /v1/params`: what every participant needs and nobody needs to keep secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicParams {
    /// The FAME public key (`smqtt-abe` encoding), base64.
    pub public_key: String,
    /// The authority's Ed25519 verifying key (credentials, audit entries), base64 of 32 bytes.
    pub verifying_key: String,
    /// The current epoch: publishers add `epoch:<N>` to every policy.
    pub epoch: EpochInfo,
}

/// The authority's current epoch and its rotation schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochInfo {
    /// The epoch number, starting at 1.
    pub epoch: u64,
    /// The attribute that keys of this epoch carry and policies must require, `epoch:<N>`.
    pub attribute: String,
    /// When the epoch started (unix seconds).
    pub started_at: u64,
    /// When the scheduler will advance it (unix seconds), if periodic rotation is on.
    pub next_rotation_at: Option<u64>,
    /// The same epoch as an authority-signed statement (`smqtt-epoch1.…`, `docs/wire.md` §10), binding the
    /// number, its start and the FAME parameter set. Devices and brokers trust only this field.
    pub statement: String,
}

/// `POST /v1/devices` (admin): register a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    /// 1–64 characters of `[A-Za-z0-9._-]`.
    pub device_id: String,
    /// Attribute list in the `smqtt-abe` syntax, e.g. `role:operator, site:berlin, level = 5`. `epoch` is
    /// reserved.
    pub attributes: String,
    /// MQTT topic filters (`+`, `#`) the device may publish on.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Lifetime of the enrollment token in seconds (default from the config).
    #[serde(default)]
    pub token_ttl_secs: Option<u64>,
}

/// Answer to [`NewDevice`]: the one-time enrollment token, shown once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCreated {
    /// The registered device.
    pub device: Device,
    /// The enrollment token; only its hash is stored.
    pub enrollment_token: String,
    /// When the token stops working (unix seconds).
    pub token_expires_at: u64,
}

/// A device as the authority records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Its id.
    pub device_id: String,
    /// Canonical attribute list.
    pub attributes: String,
    /// Topic filters it may publish on.
    pub publish: Vec<String>,
    /// `pending` (registered, not enrolled), `enrolled` or `revoked`.
    pub status: String,
    /// Its Ed25519 verifying key once enrolled, base64.
    pub device_key: Option<String>,
    /// Registration time (unix seconds).
    pub created_at: u64,
    /// Enrollment time.
    pub enrolled_at: Option<u64>,
    /// Revocation time.
    pub revoked_at: Option<u64>,
}

/// `GET /v1/devices` (admin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceList {
    /// Every device, ordered by id.
    pub devices: Vec<Device>,
}

/// Answer to `POST /v1/devices/{id}/revoke` (admin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoked {
    /// The device, now revoked.
    pub device: Device,
    /// The epoch after the revocation (advanced unless rotation on revocation is deferred by config).
    pub epoch: EpochInfo,
    /// Whether this revocation advanced the epoch now.
    pub epoch_advanced: bool,
}

/// `POST /v1/enroll`: a device presents its token and its public key, proving possession of the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The one-time token from the administrator.
    pub token: String,
    /// The device's Ed25519 verifying key, base64.
    pub device_key: String,
    /// Ed25519 signature over `smqtt_wire::enrollment_signing_bytes(token, device_key)`, base64.
    pub signature: String,
}

/// Answer to enrollment and to key requests: the device's credential for the current epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrolled {
    /// The device id.
    pub device_id: String,
    /// The signed credential (`smqtt-wire` encoding), base64.
    pub credential: String,
    /// The current epoch.
    pub epoch: EpochInfo,
}

/// `POST /v1/keys`: a device asks for its attribute key, signed with its device key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRequestBody {
    /// The requesting device.
    pub device_id: String,
    /// Unix seconds when the request was made; must be within the authority's clock skew window.
    pub timestamp: u64,
    /// 16 random bytes, base64; a nonce seen before is a replay.
    pub nonce: String,
    /// An ephemeral X25519 public key the key is sealed to, base64.
    pub reply_key: String,
    /// Ed25519 signature over `smqtt_wire::KeyRequest::signing_bytes`, base64.
    pub signature: String,
}

/// Answer to [`KeyRequestBody`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuedKey {
    /// The epoch the key is for.
    pub epoch: EpochInfo,
    /// The FAME user key for the device's attributes plus `epoch:<N>`, sealed to `reply_key`, base64.
    pub sealed_key: String,
    /// A fresh credential for this epoch, base64.
    pub credential: String,
    /// The authority's signature (base64) over the key delivery (`docs/wire.md` §10.2): the request's digest,
    /// the epoch, the parameter set and the digests of `sealed_key` and `credential`.
    pub delivery_signature: String,
}

/// `POST /v1/epoch/rotate` (admin) body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Why, for the audit log.
    #[serde(default)]
    pub reason: Option<String>,
}

/// One audit log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Unix seconds.
    pub at: u64,
    /// Who: `admin:<token id>`, `device:<id>`, `cli`, `scheduler`.
    pub actor: String,
    /// What, e.g. `device.add`, `key.issue`.
    pub action: String,
    /// On what, e.g. the device id.
    pub subject: String,
    /// Details (never secrets).
    pub detail: String,
    /// SHA-256 chain hash of this entry, hex.
    pub hash: String,
}

/// `GET /v1/audit` (admin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditLog {
    /// Entries in order.
    pub entries: Vec<AuditEntry>,
}

/// `GET /v1/audit/verify` (admin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditVerification {
    /// Whether every entry's hash, link and signature checked out.
    pub ok: bool,
    /// Entries checked.
    pub entries: u64,
    /// The first problem found, if any.
    pub problem: Option<String>,
}

/// Every error answer: a stable machine-readable code and a message that leaks nothing internal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// See [`ErrorBody`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable code, e.g. `unauthorized`, `invalid_request`, `replayed_request`.
    pub code: String,
    /// Human-readable, one line.
    pub message: String,
}
