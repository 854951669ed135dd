//! The embedded default store: one SQLite file in WAL mode, versioned migrations, a transaction around every
//! change together with its audit entry.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use smqtt_wire::{SigningKey, VerifyingKey};

use super::{DeviceRecord, DeviceStatus, Epoch, Store, TokenHash};
use crate::audit::{self, Action, Entry, Verification, Verifier};
use crate::error::{Error, Result};

/// Schema versions, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &["CREATE TABLE epochs (
        epoch INTEGER PRIMARY KEY,
        started_at INTEGER NOT NULL
     );
     CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        attributes TEXT NOT NULL,
        publish TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'enrolled', 'revoked')),
        device_key BLOB,
        created_at INTEGER NOT NULL,
        enrolled_at INTEGER,
        revoked_at INTEGER
     );
     CREATE TABLE enrollment_tokens (
        token_hash BLOB PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices(id),
        expires_at INTEGER NOT NULL,
        used_at INTEGER
     );
     CREATE TABLE admin_tokens (
        id INTEGER PRIMARY KEY,
        token_hash BLOB NOT NULL UNIQUE,
        label TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
     );
     CREATE TABLE key_request_nonces (
        device_id TEXT NOT NULL,
        nonce BLOB NOT NULL,
        seen_at INTEGER NOT NULL,
        PRIMARY KEY (device_id, nonce)
     ) WITHOUT ROWID;
     CREATE INDEX key_request_nonces_seen ON key_request_nonces (seen_at);
     CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL,
        hash BLOB NOT NULL,
        signature BLOB NOT NULL
     );"];

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
    signer: Option<Arc<SigningKey>>,
}

impl core::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SqliteStore").field("signer", &self.signer.is_some()).finish_non_exhaustive()
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it. `signer` signs audit entries; without
    /// it the store is read-only for audited changes (used by offline `audit verify`).
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub fn open(path: &Path, signer: Option<Arc<SigningKey>>) -> Result<SqliteStore> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL: readers never block the writer; FULL: a transaction that returned is on disk, even on power loss.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let applied = usize::try_from(version).unwrap_or(usize::MAX);
        if applied > MIGRATIONS.len() {
            return Err(Error::Storage(format!("database schema version {version} is newer than this program")));
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
            tx.commit()?;
        }
        Ok(SqliteStore { conn: Mutex::new(conn), signer })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| Error::Storage("connection lock poisoned".into()))
    }

    /// Creates epoch 1 if there is none (first start); idempotent.
    ///
    /// # Errors
    /// Storage and audit errors.
    pub fn initialise(&self, audit: &Action, now: u64) -> Result<()> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: Option<i64> = tx.query_row("SELECT epoch FROM epochs LIMIT 1", [], |r| r.get(0)).optional()?;
        if exists.is_none() {
            tx.execute("INSERT INTO epochs (epoch, started_at) VALUES (1, ?1)", params![to_i64(now)])?;
            self.audit_in(&tx, audit, now)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn audit_in(&self, tx: &Transaction<'_>, action: &Action, now: u64) -> Result<()> {
        let signer =
            self.signer.as_ref().ok_or_else(|| Error::Audit("no signing key: store opened read-only".into()))?;
        let last: Option<(i64, Vec<u8>)> = tx
            .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (seq, prev) = match last {
            None => (1, [0u8; 32]),
            Some((seq, hash)) => {
                let prev: [u8; 32] = hash.try_into().map_err(|_| Error::Audit("stored hash is not 32 bytes".into()))?;
                (to_u64(seq) + 1, prev)
            }
        };
        let entry = audit::next_entry(seq, now, action, &prev, signer);
        tx.execute(
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
        .map_err(|e| Error::Audit(e.to_string()))?;
        Ok(())
    }

    fn epoch_in(conn: &Connection) -> Result<Epoch> {
        conn.query_row("SELECT epoch, started_at FROM epochs ORDER BY epoch DESC LIMIT 1", [], |r| {
            Ok(Epoch { number: to_u64(r.get(0)?), started_at: to_u64(r.get(1)?) })
        })
        .optional()?
        .ok_or_else(|| Error::Storage("no epoch: the database was not initialised".into()))
    }

    fn rotate_in(tx: &Transaction<'_>, now: u64) -> Result<Epoch> {
        let current = Self::epoch_in(tx)?;
        let next = Epoch { number: current.number + 1, started_at: now };
        tx.execute(
            "INSERT INTO epochs (epoch, started_at) VALUES (?1, ?2)",
            params![to_i64(next.number), to_i64(now)],
        )?;
        Ok(next)
    }

    fn device_in(conn: &Connection, id: &str) -> Result<Option<DeviceRecord>> {
        conn.query_row(
            "SELECT id, attributes, publish, status, device_key, created_at, enrolled_at, revoked_at FROM devices WHERE id = ?1",
            params![id],
            row_to_device,
        )
        .optional()?
        .transpose()
    }
}

type DeviceRow = Result<DeviceRecord>;

fn row_to_device(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRow> {
    let publish: String = r.get(2)?;
    let status: String = r.get(3)?;
    let key: Option<Vec<u8>> = r.get(4)?;
    Ok((|| {
        let publish: Vec<String> =
            serde_json::from_str(&publish).map_err(|_| Error::Storage("stored publish rights are not JSON".into()))?;
        let status = DeviceStatus::parse(&status).ok_or_else(|| Error::Storage("unknown device status".into()))?;
        let device_key = match key {
            None => None,
            Some(bytes) => {
                Some(<[u8; 32]>::try_from(bytes).map_err(|_| Error::Storage("device key is not 32 bytes".into()))?)
            }
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
        Self::epoch_in(&*self.lock()?)
    }

    fn add_device(&self, device: &DeviceRecord, token: TokenHash, audit: &Action, now: u64) -> Result<()> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if Self::device_in(&tx, &device.id)?.is_some() {
            return Err(Error::Conflict(format!("device {} already exists", device.id)));
        }
        let publish = serde_json::to_string(&device.publish).map_err(|e| Error::Storage(e.to_string()))?;
        tx.execute(
            "INSERT INTO devices (id, attributes, publish, status, created_at) VALUES (?1, ?2, ?3, 'pending', ?4)",
            params![device.id, device.attributes, publish, to_i64(device.created_at)],
        )?;
        tx.execute(
            "INSERT INTO enrollment_tokens (token_hash, device_id, expires_at) VALUES (?1, ?2, ?3)",
            params![&token.hash[..], device.id, to_i64(token.expires_at)],
        )?;
        self.audit_in(&tx, audit, now)?;
        tx.commit()?;
        Ok(())
    }

    fn device(&self, id: &str) -> Result<Option<DeviceRecord>> {
        Self::device_in(&*self.lock()?, id)
    }

    fn devices(&self) -> Result<Vec<DeviceRecord>> {
        let conn = self.lock()?;
        let mut statement = conn.prepare(
            "SELECT id, attributes, publish, status, device_key, created_at, enrolled_at, revoked_at FROM devices ORDER BY id",
        )?;
        let rows = statement.query_map([], row_to_device)?;
        rows.map(|row| row.map_err(Error::from).and_then(|d| d)).collect()
    }

    fn enroll(
        &self,
        token_hash: &[u8; 32],
        device_key: &[u8; 32],
        audit: &dyn Fn(&DeviceRecord) -> Action,
        now: u64,
    ) -> Result<DeviceRecord> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let token: Option<(String, i64, Option<i64>)> = tx
            .query_row(
                "SELECT device_id, expires_at, used_at FROM enrollment_tokens WHERE token_hash = ?1",
                params![&token_hash[..]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((device_id, expires_at, None)) = token else {
            return Err(Error::TokenInvalid);
        };
        if to_u64(expires_at) <= now {
            return Err(Error::TokenInvalid);
        }
        let device = Self::device_in(&tx, &device_id)?.ok_or(Error::TokenInvalid)?;
        if device.status != DeviceStatus::Pending {
            return Err(Error::TokenInvalid);
        }
        tx.execute(
            "UPDATE enrollment_tokens SET used_at = ?1 WHERE token_hash = ?2",
            params![to_i64(now), &token_hash[..]],
        )?;
        tx.execute(
            "UPDATE devices SET status = 'enrolled', device_key = ?1, enrolled_at = ?2 WHERE id = ?3",
            params![&device_key[..], to_i64(now), device_id],
        )?;
        let enrolled = Self::device_in(&tx, &device_id)?.ok_or(Error::NotFound("device"))?;
        self.audit_in(&tx, &audit(&enrolled), now)?;
        tx.commit()?;
        Ok(enrolled)
    }

    fn revoke(&self, id: &str, advance_epoch: bool, audit: &Action, now: u64) -> Result<(DeviceRecord, Epoch)> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let device = Self::device_in(&tx, id)?.ok_or(Error::NotFound("device"))?;
        if device.status == DeviceStatus::Revoked {
            return Err(Error::Conflict(format!("device {id} is already revoked")));
        }
        tx.execute("UPDATE devices SET status = 'revoked', revoked_at = ?1 WHERE id = ?2", params![to_i64(now), id])?;
        // An unused enrollment token dies with the device.
        tx.execute(
            "UPDATE enrollment_tokens SET used_at = ?1 WHERE device_id = ?2 AND used_at IS NULL",
            params![to_i64(now), id],
        )?;
        let epoch = if advance_epoch { Self::rotate_in(&tx, now)? } else { Self::epoch_in(&tx)? };
        self.audit_in(&tx, audit, now)?;
        let revoked = Self::device_in(&tx, id)?.ok_or(Error::NotFound("device"))?;
        tx.commit()?;
        Ok((revoked, epoch))
    }

    fn rotate(&self, audit: &Action, now: u64) -> Result<Epoch> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let epoch = Self::rotate_in(&tx, now)?;
        self.audit_in(&tx, audit, now)?;
        tx.commit()?;
        Ok(epoch)
    }

    fn record_key_request(
        &self,
        device_id: &str,
        nonce: &[u8; 16],
        audit: &Action,
        now: u64,
        forget_before: u64,
    ) -> Result<()> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM key_request_nonces WHERE seen_at < ?1", params![to_i64(forget_before)])?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO key_request_nonces (device_id, nonce, seen_at) VALUES (?1, ?2, ?3)",
            params![device_id, &nonce[..], to_i64(now)],
        )?;
        if inserted == 0 {
            return Err(Error::Replay);
        }
        self.audit_in(&tx, audit, now)?;
        tx.commit()?;
        Ok(())
    }

    fn add_admin_token(&self, hash: &[u8; 32], label: &str, audit: &Action, now: u64) -> Result<u64> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO admin_tokens (token_hash, label, created_at) VALUES (?1, ?2, ?3)",
            params![&hash[..], label, to_i64(now)],
        )?;
        let id = to_u64(tx.last_insert_rowid());
        let audit = Action { subject: format!("admin-token:{id}"), ..audit.clone() };
        self.audit_in(&tx, &audit, now)?;
        tx.commit()?;
        Ok(id)
    }

    fn admin_token(&self, hash: &[u8; 32]) -> Result<Option<u64>> {
        let conn = self.lock()?;
        let id: Option<i64> = conn
            .query_row(
                "SELECT id FROM admin_tokens WHERE token_hash = ?1 AND revoked_at IS NULL",
                params![&hash[..]],
                |r| r.get(0),
            )
            .optional()?;
        Ok(id.map(to_u64))
    }

    fn append_audit(&self, audit: &Action, now: u64) -> Result<()> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        self.audit_in(&tx, audit, now)?;
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
        Ok(Verification { entries: verifier.count(), problem: None })
    }
}

fn row_to_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Entry>> {
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
            hash: hash.try_into().map_err(|_| Error::Audit(format!("entry {seq}: hash is not 32 bytes")))?,
            signature: signature
                .try_into()
                .map_err(|_| Error::Audit(format!("entry {seq}: signature is not 64 bytes")))?,
        })
    })())
}
