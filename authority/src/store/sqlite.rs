//! The embedded default store: one SQLite file in WAL mode, versioned migrations, a transaction around every
//! change together with its audit entry, and a MAC on every row that decides something ([`super::integrity`]).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::types::Value;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};
use smqtt_wire::{SigningKey, VerifyingKey};

use super::integrity::{self, MacKey, ADMIN_TOKENS, DEVICES, ENROLLMENT_TOKENS, EPOCHS};
use super::schema::{self, MAC_MIGRATION, MIGRATIONS};
use super::{DeviceRecord, DeviceStatus, Enrollment, Epoch, Provenance, Store, TokenHash, MAX_ENROLL_RETRIES};
use crate::audit::{self, Action, Entry, Verification, Verifier};
use crate::error::{Error, Result};

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
    keys: Option<Keys>,
}

/// What the store needs the secrets for: signing audit entries, making and checking row MACs.
struct Keys {
    signer: Arc<SigningKey>,
    mac: MacKey,
}

impl core::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SqliteStore").field("signer", &self.keys.is_some()).finish_non_exhaustive()
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl SqliteStore {
    /// Opens the database at `path` (creating it only for [`Provenance::New`] and
    /// [`Provenance::Unrecorded`]), with triggers and views disabled, and refuses it unless its schema is
    /// exactly the authority's ([`schema::check`]).
    ///
    /// With `signer` (the authority's signing key: it signs audit entries, and the row-MAC key is derived from
    /// it) the database is migrated — a database from before row MACs gets them, once, audited, if
    /// `provenance` (what the sealed secrets say) allows it — and then checked whole
    /// ([`integrity::check_all`]): a database changed outside the authority is refused. Without it the store
    /// is read-only and authenticates nothing (offline `audit verify`); it migrates nothing.
    ///
    /// # Errors
    /// [`Error::Integrity`] naming the table and row (or schema object) that does not match; [`Error::Storage`],
    /// [`Error::DatabaseUnusable`] for a schema newer than this program.
    pub fn open(path: &Path, signer: Option<Arc<SigningKey>>, provenance: Provenance) -> Result<SqliteStore> {
        let mut flags = OpenFlags::default();
        if provenance == Provenance::HadMacs {
            flags.remove(OpenFlags::SQLITE_OPEN_CREATE);
        }
        let mut conn = Connection::open_with_flags(path, flags)?;
        schema::harden(&conn)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL: readers never block the writer; FULL: a transaction that returned is on disk, even on power loss.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(Error::DatabaseUnusable(format!(
                "database schema version {version} is newer than this program"
            )));
        }
        schema::check(&conn, version)?;
        let keys = signer.map(|signer| Keys { mac: MacKey::derive(&signer), signer });
        if let Some(keys) = &keys {
            if provenance == Provenance::HadMacs && version <= MAC_MIGRATION {
                return Err(integrity::macs_missing());
            }
            let mut created = false;
            for (index, sql) in MIGRATIONS.iter().enumerate() {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                // Another process may have migrated since we looked.
                let applied: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
                if usize::try_from(applied).unwrap_or(usize::MAX) > index {
                    continue;
                }
                tx.execute_batch(sql)?;
                created |= index == 0;
                if index == MAC_MIGRATION {
                    if provenance != Provenance::Unrecorded && !created {
                        return Err(integrity::macs_missing());
                    }
                    let upgrade = integrity::protect_existing(&tx, &keys.mac, &keys.signer.verifying_key())?;
                    // A database from before MACs (not one made just now): the upgrade is always audited.
                    if !created {
                        let rows: Vec<String> = upgrade.rows.iter().map(|(t, n)| format!("{t}={n}")).collect();
                        let action = Action::new("cli", integrity::UPGRADE_ACTION, "").detail(format!(
                            "{} added to {}",
                            integrity::MARKER,
                            rows.join(" ")
                        ));
                        append_audit(&tx, keys, &action, smqtt_wire::UnixTime::now().as_secs())?;
                    }
                }
                tx.pragma_update(None, "user_version", index as i64 + 1)?;
                tx.commit()?;
            }
            schema::check(&conn, MIGRATIONS.len())?;
            integrity::check_all(&mut conn, &keys.mac)?;
        }
        Ok(SqliteStore { conn: Mutex::new(conn), keys })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| Error::Internal { what: "connection lock poisoned", source: None })
    }

    fn keys(&self) -> Result<&Keys> {
        self.keys.as_ref().ok_or(Error::ReadOnly)
    }

    /// Creates epoch 1 if there is none (first start); idempotent.
    ///
    /// # Errors
    /// Storage and audit errors.
    pub fn initialise(&self, audit: &Action, now: u64) -> Result<()> {
        let keys = self.keys()?;
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: Option<i64> = tx.query_row("SELECT epoch FROM epochs LIMIT 1", [], |r| r.get(0)).optional()?;
        if exists.is_none() {
            integrity::insert_row(&tx, &keys.mac, &EPOCHS, &[Value::Integer(1), Value::Integer(to_i64(now))])?;
            let audit = Action { detail: format!("{} {}", audit.detail, integrity::MARKER), ..audit.clone() };
            append_audit(&tx, keys, &audit, now)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn epoch_in(conn: &Connection, key: &MacKey) -> Result<Epoch> {
        conn.query_row(&EPOCHS.select("ORDER BY epoch DESC LIMIT 1"), [], |r| {
            key.read(&EPOCHS, r, |r| Ok(Epoch { number: to_u64(r.get(0)?), started_at: to_u64(r.get(1)?) }))
        })
        .optional()?
        .transpose()?
        .ok_or_else(|| Error::DatabaseUnusable("no epoch: the database was not initialised".into()))
    }

    fn rotate_in(tx: &Transaction<'_>, key: &MacKey, now: u64) -> Result<Epoch> {
        let current = Self::epoch_in(tx, key)?;
        let next = Epoch { number: current.number + 1, started_at: now };
        let row = [Value::Integer(to_i64(next.number)), Value::Integer(to_i64(now))];
        integrity::insert_row(tx, key, &EPOCHS, &row)?;
        Ok(next)
    }

    fn device_in(conn: &Connection, key: &MacKey, id: &str) -> Result<Option<DeviceRecord>> {
        conn.query_row(&DEVICES.select("WHERE id = ?1"), params![id], |r| {
            Ok(key.read(&DEVICES, r, row_to_device)?.and_then(|d| d))
        })
        .optional()?
        .transpose()
    }

    /// Marks enrollment token `hash` (for `device_id`, expiring at `expires_at`) used at `now`.
    fn use_token(
        tx: &Transaction<'_>,
        key: &MacKey,
        hash: &[u8],
        device_id: &str,
        expires_at: i64,
        now: u64,
    ) -> Result<()> {
        let row = [
            Value::Blob(hash.to_vec()),
            Value::Text(device_id.to_owned()),
            Value::Integer(expires_at),
            Value::Integer(to_i64(now)),
        ];
        integrity::update_row(tx, key, &ENROLLMENT_TOKENS, &row)
    }
}

/// `device`'s row, as [`DEVICES`] lists the columns.
fn device_row(device: &DeviceRecord) -> Result<Vec<Value>> {
    let publish = serde_json::to_string(&device.publish).map_err(|e| Error::Storage { source: Box::new(e) })?;
    let time = |t: Option<u64>| t.map_or(Value::Null, |t| Value::Integer(to_i64(t)));
    Ok(vec![
        Value::Text(device.id.clone()),
        Value::Text(device.attributes.clone()),
        Value::Text(publish),
        Value::Text(device.status.as_str().to_owned()),
        device.device_key.map_or(Value::Null, |k| Value::Blob(k.to_vec())),
        Value::Integer(to_i64(device.created_at)),
        time(device.enrolled_at),
        time(device.revoked_at),
    ])
}

/// Appends the audit entry for `action` in `tx`, and records it as the newest in `integrity`.
fn append_audit(tx: &Transaction<'_>, keys: &Keys, action: &Action, now: u64) -> Result<()> {
    let last: Option<(i64, Vec<u8>)> = tx
        .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev) = match last {
        None => (1, [0u8; 32]),
        Some((seq, hash)) => {
            let prev: [u8; 32] =
                hash.try_into().map_err(|_| Error::AuditEntry("stored hash is not 32 bytes".into()))?;
            (to_u64(seq) + 1, prev)
        }
    };
    let entry = audit::next_entry(seq, now, action, &prev, &keys.signer);
    let inserted = tx.execute(
        "INSERT INTO audit (seq, at, actor, action, subject, detail, hash, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            to_i64(entry.seq),
            to_i64(entry.at),
            entry.actor,
            entry.action,
            entry.subject,
            entry.detail,
            &entry.hash[..],
            &entry.signature[..]
        ],
    )
    .map_err(|e| Error::AuditWrite { source: Box::new(e) })?;
    if inserted != 1 {
        return Err(Error::AuditWrite { source: "the audit entry was not stored".into() });
    }
    integrity::advance_audit(tx, &keys.mac, entry.seq, &prev, &entry.hash)
}

type DeviceRow = Result<DeviceRecord>;

fn row_to_device(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRow> {
    let publish: String = r.get(2)?;
    let status: String = r.get(3)?;
    let key: Option<Vec<u8>> = r.get(4)?;
    Ok((|| {
        let publish: Vec<String> = serde_json::from_str(&publish).map_err(|e| Error::StoredValue {
            message: "stored publish rights are not JSON".into(),
            source: Some(Box::new(e)),
        })?;
        let status = DeviceStatus::parse(&status).ok_or_else(|| Error::stored("unknown device status"))?;
        let device_key = match key {
            None => None,
            Some(bytes) => Some(<[u8; 32]>::try_from(bytes).map_err(|_| Error::stored("device key is not 32 bytes"))?),
        };
        Ok(DeviceRecord {
            id: r.get(0)?,
            attributes: r.get(1)?,
            publish,
            status,
            device_key,
            created_at: to_u64(r.get(5)?),
            enrolled_at: r.get::<_, Option<i64>>(6)?.map(to_u64),
            revoked_at: r.get::<_, Option<i64>>(7)?.map(to_u64),
        })
    })())
}

impl Store for SqliteStore {
    fn epoch(&self) -> Result<Epoch> {
        let key = &self.keys()?.mac;
        Self::epoch_in(&*self.lock()?, key)
    }

    fn add_device(&self, device: &DeviceRecord, token: TokenHash, audit: &Action, now: u64) -> Result<()> {
        let keys = self.keys()?;
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if Self::device_in(&tx, &keys.mac, &device.id)?.is_some() {
            return Err(Error::Conflict(format!("device {} already exists", device.id)));
        }
        let pending = DeviceRecord {
            status: DeviceStatus::Pending,
            device_key: None,
            enrolled_at: None,
            revoked_at: None,
            ..device.clone()
        };
        integrity::insert_row(&tx, &keys.mac, &DEVICES, &device_row(&pending)?)?;
        let row = [
            Value::Blob(token.hash.to_vec()),
            Value::Text(device.id.clone()),
            Value::Integer(to_i64(token.expires_at)),
            Value::Null,
        ];
        integrity::insert_row(&tx, &keys.mac, &ENROLLMENT_TOKENS, &row)?;
        append_audit(&tx, keys, audit, now)?;
        tx.commit()?;
        Ok(())
    }

    fn device(&self, id: &str) -> Result<Option<DeviceRecord>> {
        let key = &self.keys()?.mac;
        Self::device_in(&*self.lock()?, key, id)
    }

    fn devices(&self) -> Result<Vec<DeviceRecord>> {
        let key = &self.keys()?.mac;
        let conn = self.lock()?;
        let mut statement = conn.prepare(&DEVICES.select("ORDER BY id"))?;
        let rows = statement.query_map([], |r| Ok(key.read(&DEVICES, r, row_to_device)?.and_then(|d| d)))?;
        rows.map(|row| row.map_err(Error::from).and_then(|d| d)).collect()
    }

    fn enroll(
        &self,
        token_hash: &[u8; 32],
        device_key: &[u8; 32],
        audit: &dyn Fn(&DeviceRecord, bool) -> Action,
        now: u64,
    ) -> Result<Enrollment> {
        let keys = self.keys()?;
        let key = &keys.mac;
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let token: Option<(String, i64, Option<i64>)> = tx
            .query_row(&ENROLLMENT_TOKENS.select("WHERE token_hash = ?1"), params![&token_hash[..]], |r| {
                key.read(&ENROLLMENT_TOKENS, r, |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?)))
            })
            .optional()?
            .transpose()?;
        let Some((device_id, expires_at, used_at)) = token else {
            return Err(Error::TokenInvalid);
        };
        let device = Self::device_in(&tx, key, &device_id)?.ok_or(Error::TokenInvalid)?;
        if used_at.is_some() {
            // Redeemed before. With the key it was redeemed with this is a client whose answer was lost (a
            // crash, a timeout): it gets the same outcome again, while the token lives and a few times only
            // (each is a credential, a signed audit entry and an fsync). Anyone else gets nothing.
            if to_u64(expires_at) <= now || device.device_key != Some(*device_key) {
                return Err(Error::TokenInvalid);
            }
            if device.status == DeviceStatus::Revoked {
                return Err(Error::Revoked);
            }
            let action = audit(&device, true);
            let retries: i64 = tx.query_row(
                "SELECT count(*) FROM audit WHERE subject = ?1 AND action = ?2",
                params![action.subject, action.action],
                |r| r.get(0),
            )?;
            if to_u64(retries) >= MAX_ENROLL_RETRIES {
                return Err(Error::TokenInvalid);
            }
            let epoch = Self::epoch_in(&tx, key)?;
            append_audit(&tx, keys, &action, now)?;
            tx.commit()?;
            return Ok(Enrollment { device, epoch, retry: true });
        }
        if to_u64(expires_at) <= now || device.status != DeviceStatus::Pending {
            return Err(Error::TokenInvalid);
        }
        Self::use_token(&tx, key, &token_hash[..], &device_id, expires_at, now)?;
        let enrolled = DeviceRecord {
            status: DeviceStatus::Enrolled,
            device_key: Some(*device_key),
            enrolled_at: Some(now),
            ..device
        };
        integrity::update_row(&tx, key, &DEVICES, &device_row(&enrolled)?)?;
        let epoch = Self::epoch_in(&tx, key)?;
        append_audit(&tx, keys, &audit(&enrolled, false), now)?;
        tx.commit()?;
        Ok(Enrollment { device: enrolled, epoch, retry: false })
    }

    fn revoke(&self, id: &str, advance_epoch: bool, audit: &Action, now: u64) -> Result<(DeviceRecord, Epoch)> {
        let keys = self.keys()?;
        let key = &keys.mac;
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let device = Self::device_in(&tx, key, id)?.ok_or(Error::NotFound("device"))?;
        if device.status == DeviceStatus::Revoked {
            return Err(Error::Conflict(format!("device {id} is already revoked")));
        }
        let revoked = DeviceRecord { status: DeviceStatus::Revoked, revoked_at: Some(now), ..device };
        integrity::update_row(&tx, key, &DEVICES, &device_row(&revoked)?)?;
        // An unused enrollment token dies with the device.
        let unused: Vec<(Vec<u8>, i64)> = tx
            .prepare(&ENROLLMENT_TOKENS.select("WHERE device_id = ?1 AND used_at IS NULL"))?
            .query_map(params![id], |r| key.read(&ENROLLMENT_TOKENS, r, |r| Ok((r.get(0)?, r.get(2)?))))?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .collect::<Result<_>>()?;
        for (hash, expires_at) in &unused {
            Self::use_token(&tx, key, hash, id, *expires_at, now)?;
        }
        let epoch = if advance_epoch { Self::rotate_in(&tx, key, now)? } else { Self::epoch_in(&tx, key)? };
        append_audit(&tx, keys, audit, now)?;
        tx.commit()?;
        Ok((revoked, epoch))
    }

    fn rotate(&self, audit: &Action, now: u64) -> Result<Epoch> {
        let keys = self.keys()?;
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let epoch = Self::rotate_in(&tx, &keys.mac, now)?;
        append_audit(&tx, keys, audit, now)?;
        tx.commit()?;
        Ok(epoch)
    }

    fn begin_key_issue(
        &self,
        device_id: &str,
        device_key: &[u8; 32],
        nonce: &[u8; 16],
        audit: &dyn Fn(&DeviceRecord, Epoch) -> Action,
        now: u64,
        forget_before: u64,
    ) -> Result<(DeviceRecord, Epoch)> {
        let keys = self.keys()?;
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let unauthorized = Error::Unauthorized("unknown device or bad signature");
        let device = Self::device_in(&tx, &keys.mac, device_id)?.ok_or(unauthorized)?;
        if device.device_key != Some(*device_key) {
            return Err(Error::Unauthorized("unknown device or bad signature"));
        }
        if device.status == DeviceStatus::Revoked {
            return Err(Error::Revoked);
        }
        let epoch = Self::epoch_in(&tx, &keys.mac)?;
        tx.execute("DELETE FROM key_request_nonces WHERE seen_at < ?1", params![to_i64(forget_before)])?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO key_request_nonces (device_id, nonce, seen_at) VALUES (?1, ?2, ?3)",
            params![device_id, &nonce[..], to_i64(now)],
        )?;
        if inserted == 0 {
            return Err(Error::Replay);
        }
        append_audit(&tx, keys, &audit(&device, epoch), now)?;
        tx.commit()?;
        Ok((device, epoch))
    }

    fn add_admin_token(&self, hash: &[u8; 32], label: &str, audit: &Action, now: u64) -> Result<u64> {
        let keys = self.keys()?;
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id: i64 = tx.query_row("SELECT coalesce(max(id), 0) + 1 FROM admin_tokens", [], |r| r.get(0))?;
        let row = [
            Value::Integer(id),
            Value::Blob(hash.to_vec()),
            Value::Text(label.to_owned()),
            Value::Integer(to_i64(now)),
            Value::Null,
        ];
        integrity::insert_row(&tx, &keys.mac, &ADMIN_TOKENS, &row)?;
        let audit = Action { subject: format!("admin-token:{id}"), ..audit.clone() };
        append_audit(&tx, keys, &audit, now)?;
        tx.commit()?;
        Ok(to_u64(id))
    }

    fn admin_token(&self, hash: &[u8; 32]) -> Result<Option<u64>> {
        let key = &self.keys()?.mac;
        let conn = self.lock()?;
        // The row is read whatever its `revoked_at`, so that a revocation edited away fails its MAC.
        let found: Option<(i64, Option<i64>)> = conn
            .query_row(&ADMIN_TOKENS.select("WHERE token_hash = ?1"), params![&hash[..]], |r| {
                key.read(&ADMIN_TOKENS, r, |r| Ok((r.get(0)?, r.get(4)?)))
            })
            .optional()?
            .transpose()?;
        Ok(found.and_then(|(id, revoked_at)| revoked_at.is_none().then_some(to_u64(id))))
    }

    fn append_audit(&self, audit: &Action, now: u64) -> Result<()> {
        let keys = self.keys()?;
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        append_audit(&tx, keys, audit, now)?;
        tx.commit()?;
        Ok(())
    }

    fn audit_entries(&self, limit: u32) -> Result<Vec<Entry>> {
        let conn = self.lock()?;
        let mut statement = conn.prepare(
            "SELECT seq, at, actor, action, subject, detail, hash, signature FROM
               (SELECT * FROM audit ORDER BY seq DESC LIMIT ?1) ORDER BY seq",
        )?;
        let rows = statement.query_map(params![i64::from(limit)], row_to_entry)?;
        rows.map(|row| row.map_err(Error::from).and_then(|e| e)).collect()
    }

    fn audit_verify(&self, key: &VerifyingKey) -> Result<Verification> {
        let conn = self.lock()?;
        let mut statement =
            conn.prepare("SELECT seq, at, actor, action, subject, detail, hash, signature FROM audit ORDER BY seq")?;
        let mut rows = statement.query_map([], row_to_entry)?;
        let mut verifier = Verifier::new(key);
        for row in rows.by_ref() {
            let entry = match row.map_err(Error::from).and_then(|e| e) {
                Ok(entry) => entry,
                Err(error) => return Ok(Verification { entries: verifier.count(), problem: Some(error.to_string()) }),
            };
            if let Err(problem) = verifier.check(&entry) {
                return Ok(Verification { entries: verifier.count(), problem: Some(problem) });
            }
        }
        // Every authority's log starts with `authority.init`: an empty one was emptied (and hides nothing less).
        let empty = (verifier.count() == 0).then(|| "the audit log is empty: it was emptied".to_owned());
        Ok(Verification { entries: verifier.count(), problem: empty })
    }
}

pub(crate) fn row_to_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Entry>> {
    let hash: Vec<u8> = r.get(6)?;
    let signature: Vec<u8> = r.get(7)?;
    let (seq, at, actor, action, subject, detail) = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
    Ok((|| {
        Ok(Entry {
            seq: to_u64(seq),
            at: to_u64(at),
            actor,
            action,
            subject,
            detail,
            hash: hash.try_into().map_err(|_| Error::AuditEntry(format!("entry {seq}: hash is not 32 bytes")))?,
            signature: signature
                .try_into()
                .map_err(|_| Error::AuditEntry(format!("entry {seq}: signature is not 64 bytes")))?,
        })
    })())
}
