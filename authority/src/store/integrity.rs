//! State at rest that cannot be edited into privilege.
//!
//! Every row that decides what a device or an administrator may hold or do — `devices`, `epochs`,
//! `enrollment_tokens`, `admin_tokens` — carries `mac = HMAC-SHA-256(K, encoding of all its other columns)`,
//! primary key included. `K = HKDF-SHA-256(salt = "smqtt/authority/state-mac/v1", ikm = the authority's
//! signing key, info = "row-mac")`: only an authority that unsealed its secrets can make or check one.
//!
//! The encoding is `"smqtt/authority/row/v1" ‖ lp(table) ‖ u32be(column count)` followed by each column as
//! SQLite stores it: `0` (NULL), `1 ‖ i64be` (integer), `2 ‖ f64be` (real), `3 ‖ lp(bytes)` (text),
//! `4 ‖ lp(bytes)` (blob), `lp` a u32be length prefix. The type is part of it, so `'2'` is not `2`.
//!
//! A per-row MAC cannot show a row deleted, or replaced by an older copy of itself with its older (valid)
//! MAC. So the table `integrity` keeps, per protected table, the number of rows and the XOR of their MACs
//! (a keyed set hash, updated with every change in the change's transaction), and for `audit` the sequence
//! number and hash of the newest entry; each of its rows has a MAC too. [`check_all`] (run whenever the
//! store is opened with the secrets) recomputes all of it: an edited, inserted, deleted or rolled-back row,
//! and a truncated audit log, are refused with the table and (where it can be known) the row named.
//!
//! A MAC is computed from the values the authority means to write, never from a read-back, and the row is read
//! back and checked before the transaction commits ([`insert_row`], [`update_row`]); nothing in the database
//! may run inside those writes (no triggers or views: `super::schema`).
//!
//! That the database has MACs at all is kept outside it, in the sealed secrets (`crate::sealed`): a database
//! without them is upgraded — once, always audited, only over an audit chain that verifies and is not empty
//! when there are rows — only where the seal does not yet record it ([`protect_existing`]); where it does, a
//! database without MACs is refused ([`macs_missing`]).
//!
//! Not detected: replacing the whole database with an older copy of itself (every MAC and set hash in it is
//! genuine). Compare the audit entry count with an earlier `audit verify` for that. Offline `audit verify`
//! (no secrets) checks the audit chain's hashes and signatures but cannot check MACs.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row, ToSql};
use sha2::Sha256;
use smqtt_wire::{SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::audit::{self, Verifier};
use crate::error::{Error, Result};

const ROW_DOMAIN: &[u8] = b"smqtt/authority/row/v1";
const KEY_SALT: &[u8] = b"smqtt/authority/state-mac/v1";
/// The audit action of the one-time upgrade of a database from before MACs.
pub(crate) const UPGRADE_ACTION: &str = "store.integrity";
/// In the detail of `authority.init` and of the upgrade entry: the database has MACs from here on.
pub(crate) const MARKER: &str = "state_macs=v1";

/// A protected table: its name and its columns (the primary key first), without `mac`.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) name: &'static str,
    pub(crate) columns: &'static [&'static str],
}

impl Table {
    /// `SELECT <columns>, mac FROM <table> <tail>`: the shape [`MacKey::check`] expects.
    pub(crate) fn select(&self, tail: &str) -> String {
        format!("SELECT {}, mac FROM {} {tail}", self.columns.join(", "), self.name)
    }

    fn key_column(&self) -> &'static str {
        self.columns[0]
    }
}

pub(crate) const DEVICES: Table = Table {
    name: "devices",
    columns: &["id", "attributes", "publish", "status", "device_key", "created_at", "enrolled_at", "revoked_at"],
};
pub(crate) const EPOCHS: Table = Table { name: "epochs", columns: &["epoch", "started_at"] };
pub(crate) const ENROLLMENT_TOKENS: Table =
    Table { name: "enrollment_tokens", columns: &["token_hash", "device_id", "expires_at", "used_at"] };
pub(crate) const ADMIN_TOKENS: Table =
    Table { name: "admin_tokens", columns: &["id", "token_hash", "label", "created_at", "revoked_at"] };
const PROTECTED: [&Table; 4] = [&DEVICES, &EPOCHS, &ENROLLMENT_TOKENS, &ADMIN_TOKENS];
const INTEGRITY: &str = "integrity";
const AUDIT: &str = "audit";

/// The row-MAC key, derived from the signing key.
pub(crate) struct MacKey(Zeroizing<[u8; 32]>);

impl core::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MacKey(<redacted>)")
    }
}

fn put_bytes(mac: &mut Hmac<Sha256>, tag: u8, bytes: &[u8]) {
    mac.update(&[tag]);
    mac.update(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    mac.update(bytes);
}

fn put_value(mac: &mut Hmac<Sha256>, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => mac.update(&[0]),
        ValueRef::Integer(i) => {
            mac.update(&[1]);
            mac.update(&i.to_be_bytes());
        }
        ValueRef::Real(r) => {
            mac.update(&[2]);
            mac.update(&r.to_bits().to_be_bytes());
        }
        ValueRef::Text(t) => put_bytes(mac, 3, t),
        ValueRef::Blob(b) => put_bytes(mac, 4, b),
    }
}

/// A short printable name for a row, from its primary key (never more than one line).
pub(super) fn row_name(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Text(t) => {
            String::from_utf8_lossy(t).chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect()
        }
        ValueRef::Blob(b) => {
            let hex: String = b.iter().take(8).map(|x| format!("{x:02x}")).collect();
            format!("{hex}…")
        }
    }
}

fn integrity(table: &'static str, row: impl Into<String>, problem: &'static str) -> Error {
    Error::Integrity { table, row: row.into(), problem }
}

fn xor(into: &mut [u8; 32], other: &[u8; 32]) {
    into.iter_mut().zip(other).for_each(|(a, b)| *a ^= b);
}

impl MacKey {
    /// `HKDF-SHA-256(salt = KEY_SALT, ikm = signing key, info = "row-mac")`.
    pub(crate) fn derive(signing_key: &SigningKey) -> MacKey {
        let ikm = signing_key.to_bytes();
        let mut okm = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(KEY_SALT), ikm.as_ref())
            .expand(b"row-mac", okm.as_mut())
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        MacKey(okm)
    }

    fn start(&self, table: &str, columns: usize) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_ref()).expect("HMAC takes keys of any length");
        mac.update(ROW_DOMAIN);
        put_bytes(&mut mac, 3, table.as_bytes());
        mac.update(&u32::try_from(columns).unwrap_or(u32::MAX).to_be_bytes());
        mac
    }

    fn row_hmac(&self, table: &Table, row: &Row<'_>) -> rusqlite::Result<Hmac<Sha256>> {
        let mut mac = self.start(table.name, table.columns.len());
        for index in 0..table.columns.len() {
            put_value(&mut mac, row.get_ref(index)?);
        }
        Ok(mac)
    }

    fn values_hmac(&self, table: &Table, values: &[Value]) -> Hmac<Sha256> {
        let mut mac = self.start(table.name, table.columns.len());
        values.iter().for_each(|value| put_value(&mut mac, value.into()));
        mac
    }

    /// Checks a row selected with [`Table::select`]; returns its MAC.
    pub(crate) fn check(&self, table: &Table, row: &Row<'_>) -> rusqlite::Result<Result<[u8; 32]>> {
        let stored: Option<Vec<u8>> = row.get(table.columns.len())?;
        let name = || row.get_ref(0).map(row_name);
        let Some(stored) = stored else {
            return Ok(Err(integrity(table.name, name()?, "has no MAC")));
        };
        if self.row_hmac(table, row)?.verify_slice(&stored).is_err() {
            return Ok(Err(integrity(table.name, name()?, "does not match its MAC")));
        }
        Ok(stored.try_into().map_err(|_| integrity(table.name, "?", "MAC is not 32 bytes")))
    }

    /// `read(row)` of a row selected with [`Table::select`], once its MAC checked.
    pub(crate) fn read<T>(
        &self,
        table: &Table,
        row: &Row<'_>,
        read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Result<T>> {
        Ok(match self.check(table, row)? {
            Ok(_) => Ok(read(row)?),
            Err(error) => Err(error),
        })
    }

    fn head_mac(&self, table: &str, rows: i64, digest: &[u8; 32]) -> Hmac<Sha256> {
        let mut mac = self.start(INTEGRITY, 3);
        for value in [ValueRef::Text(table.as_bytes()), ValueRef::Integer(rows), ValueRef::Blob(digest)] {
            put_value(&mut mac, value);
        }
        mac
    }
}

/// What `integrity` says about one table: its row count and set hash, or for `audit` the newest entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    rows: i64,
    digest: [u8; 32],
}

fn head(conn: &Connection, key: &MacKey, table: &'static str) -> Result<Head> {
    let row: Option<(i64, Vec<u8>, Vec<u8>)> = conn
        .query_row("SELECT rows, digest, mac FROM integrity WHERE tbl = ?1", params![table], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((rows, digest, mac)) = row else {
        return Err(integrity(INTEGRITY, table, "is missing"));
    };
    let digest: [u8; 32] = digest.try_into().map_err(|_| integrity(INTEGRITY, table, "digest is not 32 bytes"))?;
    key.head_mac(table, rows, &digest)
        .verify_slice(&mac)
        .map_err(|_| integrity(INTEGRITY, table, "does not match its MAC"))?;
    Ok(Head { rows, digest })
}

fn set_head(conn: &Connection, key: &MacKey, table: &str, head: Head) -> Result<()> {
    let mac = key.head_mac(table, head.rows, &head.digest).finalize().into_bytes();
    conn.execute(
        "INSERT OR REPLACE INTO integrity (tbl, rows, digest, mac) VALUES (?1, ?2, ?3, ?4)",
        params![table, head.rows, &head.digest[..], &mac[..]],
    )?;
    Ok(())
}

/// The checked MAC of `table`'s row `key_value`, before it is changed; `None` if there is no such row.
pub(crate) fn verified_mac(
    conn: &Connection,
    key: &MacKey,
    table: &Table,
    key_value: &dyn ToSql,
) -> Result<Option<[u8; 32]>> {
    conn.query_row(&table.select(&format!("WHERE {} = ?1", table.key_column())), [key_value], |r| key.check(table, r))
        .optional()?
        .transpose()
}

/// Inserts `values` (every column of `table`, the primary key first, typed as SQLite is to store them) as a new
/// row, with their MAC, and folds it into the table's set hash.
///
/// # Errors
/// [`Error::Integrity`] if the row stored is not the one meant; storage errors (a taken key among them).
pub(crate) fn insert_row(conn: &Connection, key: &MacKey, table: &Table, values: &[Value]) -> Result<()> {
    put_row(conn, key, table, values, Put::Insert)
}

/// Replaces `table`'s row with `values[0]` as its key by `values` (every column), once the MAC of the row there
/// checked; folds the change into the table's set hash.
///
/// # Errors
/// [`Error::Integrity`] if the row there does not match its MAC or the row stored is not the one meant.
pub(crate) fn update_row(conn: &Connection, key: &MacKey, table: &Table, values: &[Value]) -> Result<()> {
    let pk = values.first().ok_or_else(|| integrity(table.name, "?", "written without its key"))?;
    let before =
        verified_mac(conn, key, table, pk)?.ok_or_else(|| integrity(table.name, row_name(pk.into()), "is missing"))?;
    put_row(conn, key, table, values, Put::Replace(before))
}

/// How [`put_row`] writes.
enum Put {
    Insert,
    /// In place of the row with this (checked) MAC.
    Replace([u8; 32]),
    /// MACs the row as it is (the upgrade): a new member of the set.
    Bless,
}

/// The MAC is computed from `values`, never read back; the row is read back after the write and must be exactly
/// `values` (a trigger, say, changing it as it is written is refused, and the transaction with it).
fn put_row(conn: &Connection, key: &MacKey, table: &Table, values: &[Value], put: Put) -> Result<()> {
    let columns = table.columns;
    let Some(pk) = values.first().filter(|_| values.len() == columns.len()) else {
        return Err(integrity(table.name, "?", "written with the wrong number of columns"));
    };
    let mac: [u8; 32] = key.values_hmac(table, values).finalize().into_bytes().into();
    let sql = match put {
        Put::Insert => {
            let places: Vec<String> = (1..=columns.len() + 1).map(|i| format!("?{i}")).collect();
            format!("INSERT INTO {} ({}, mac) VALUES ({})", table.name, columns.join(", "), places.join(", "))
        }
        Put::Replace(_) | Put::Bless => {
            let sets: Vec<String> =
                columns.iter().enumerate().skip(1).map(|(i, c)| format!("{c} = ?{}", i + 1)).collect();
            let mac_at = columns.len() + 1;
            format!("UPDATE {} SET {}, mac = ?{mac_at} WHERE {} = ?1", table.name, sets.join(", "), columns[0])
        }
    };
    let mut bound: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
    let mac_bytes = &mac[..];
    bound.push(&mac_bytes);
    let changed = conn.execute(&sql, bound.as_slice())?;
    let stored = match verified_mac(conn, key, table, pk) {
        Err(Error::Integrity { .. }) => None,
        other => other?,
    };
    if changed != 1 || stored != Some(mac) {
        return Err(integrity(table.name, row_name(pk.into()), "was not stored as the authority wrote it"));
    }
    let mut head = head(conn, key, table.name)?;
    match put {
        Put::Insert | Put::Bless => head.rows += 1,
        Put::Replace(old) => xor(&mut head.digest, &old),
    }
    xor(&mut head.digest, &mac);
    set_head(conn, key, table.name, head)
}

/// Refuses a database without MACs whose sealed secrets say it has them.
pub(crate) fn macs_missing() -> Error {
    integrity(INTEGRITY, "*", "is missing, but the sealed secrets say this database had MACs (stripped, or replaced)")
}

/// Records audit entry `seq` (hash `hash`, after `prev`) as the newest, refusing if the stored newest entry is
/// not the one the new entry follows.
pub(crate) fn advance_audit(conn: &Connection, key: &MacKey, seq: u64, prev: &[u8; 32], hash: &[u8; 32]) -> Result<()> {
    let before = head(conn, key, AUDIT)?;
    let seq = i64::try_from(seq).map_err(|_| integrity(AUDIT, seq.to_string(), "sequence number out of range"))?;
    if before.rows != seq - 1 || before.digest != *prev {
        return Err(integrity(AUDIT, (seq - 1).to_string(), "is not the newest entry the authority wrote"));
    }
    set_head(conn, key, AUDIT, Head { rows: seq, digest: *hash })
}

/// Recomputes every row MAC, set hash and the audit chain (hashes only: signatures are `audit verify`'s)
/// against `integrity`. Run in one read transaction, so it sees one state.
///
/// # Errors
/// [`Error::Integrity`] naming the first table and row found wrong; storage errors.
pub(crate) fn check_all(conn: &mut Connection, key: &MacKey) -> Result<()> {
    let tx = conn.transaction()?;
    for table in PROTECTED {
        let head = head(&tx, key, table.name)?;
        let mut statement = tx.prepare(&table.select(&format!("ORDER BY {}", table.key_column())))?;
        let mut rows = statement.query([])?;
        let (mut count, mut digest) = (0i64, [0u8; 32]);
        while let Some(row) = rows.next()? {
            let mac = key.check(table, row)??;
            xor(&mut digest, &mac);
            count += 1;
            // Epochs are numbered 1, 2, … without gaps: a missing one is named.
            if table.name == EPOCHS.name && row.get::<_, i64>(0)? != count {
                return Err(integrity(EPOCHS.name, count.to_string(), "is missing (deleted outside the authority)"));
            }
        }
        if table.name == EPOCHS.name && count < head.rows {
            return Err(integrity(EPOCHS.name, (count + 1).to_string(), "is missing: the epoch was rolled back"));
        }
        if count < head.rows {
            return Err(integrity(table.name, "*", "rows were deleted"));
        }
        if count > head.rows {
            return Err(integrity(table.name, "*", "rows were added"));
        }
        if digest != head.digest {
            return Err(integrity(table.name, "*", "a row was replaced by an older copy of itself"));
        }
    }
    check_audit_chain(&tx, key)?;
    Ok(())
}

fn check_audit_chain(conn: &Connection, key: &MacKey) -> Result<()> {
    let head = head(conn, key, AUDIT)?;
    let mut statement = conn.prepare("SELECT seq, at, actor, action, subject, detail, hash FROM audit ORDER BY seq")?;
    let mut rows = statement.query([])?;
    let (mut last, mut prev) = (0i64, [0u8; 32]);
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        if seq != last + 1 {
            return Err(integrity(AUDIT, (last + 1).to_string(), "is missing (deleted outside the authority)"));
        }
        let at: i64 = r.get(1)?;
        let (actor, action, subject, detail): (String, String, String, String) =
            (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
        let stored: Vec<u8> = r.get(6)?;
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        let hash = audit::chain_hash(u(seq), u(at), &actor, &action, &subject, &detail, &prev);
        if stored[..] != hash[..] {
            return Err(integrity(AUDIT, seq.to_string(), "was modified (hash mismatch)"));
        }
        (last, prev) = (seq, hash);
    }
    if last < head.rows {
        return Err(integrity(AUDIT, (last + 1).to_string(), "is missing: the newest entries were truncated"));
    }
    if last > head.rows || prev != head.digest {
        return Err(integrity(AUDIT, last.to_string(), "was not written by the authority"));
    }
    Ok(())
}

/// How many rows [`protect_existing`] gave MACs to.
#[derive(Debug)]
pub(crate) struct Upgrade {
    pub(crate) rows: Vec<(&'static str, i64)>,
    pub(crate) audit_entries: u64,
}

/// The one-time upgrade of a database from before MACs (also how a new database starts: with nothing in
/// it). Refuses a database whose audit chain does not verify, whose audit log shows it had MACs before
/// (someone removed them to have edited rows blessed), or that has rows but an empty audit log (every
/// authority's log starts with `authority.init`: an emptied one hides the marker). The caller audits it.
pub(crate) fn protect_existing(conn: &Connection, key: &MacKey, verifying_key: &VerifyingKey) -> Result<Upgrade> {
    let mut verifier = Verifier::new(verifying_key);
    {
        let mut statement =
            conn.prepare("SELECT seq, at, actor, action, subject, detail, hash, signature FROM audit ORDER BY seq")?;
        let mut rows = statement.query([])?;
        while let Some(r) = rows.next()? {
            let entry = super::sqlite::row_to_entry(r)??;
            if verifier.check(&entry).is_err() {
                return Err(integrity(AUDIT, entry.seq.to_string(), "does not verify: not adding MACs over it"));
            }
            // Only entries whose details the authority writes itself (not an administrator's text).
            let marked = entry.action == "authority.init" && entry.detail.ends_with(MARKER);
            if entry.action == UPGRADE_ACTION || marked {
                return Err(integrity(INTEGRITY, "*", "was removed from a database that had MACs"));
            }
        }
    }
    let mut upgrade = Upgrade { rows: Vec::new(), audit_entries: verifier.count() };
    for table in PROTECTED {
        set_head(conn, key, table.name, Head { rows: 0, digest: [0; 32] })?;
        let existing: Vec<Vec<Value>> = conn
            .prepare(&format!("SELECT {} FROM {}", table.columns.join(", "), table.name))?
            .query_map([], |r| (0..table.columns.len()).map(|i| r.get::<_, Value>(i)).collect())?
            .collect::<rusqlite::Result<_>>()?;
        if !existing.is_empty() && upgrade.audit_entries == 0 {
            return Err(integrity(AUDIT, "*", "is empty but the database has rows: not adding MACs to them"));
        }
        for values in &existing {
            put_row(conn, key, table, values, Put::Bless)?;
        }
        upgrade.rows.push((table.name, i64::try_from(existing.len()).unwrap_or(i64::MAX)));
    }
    let last: Option<(i64, Vec<u8>)> = conn
        .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let audit_head = match last {
        None => Head { rows: 0, digest: [0; 32] },
        Some((seq, hash)) => Head {
            rows: seq,
            digest: hash.try_into().map_err(|_| integrity(AUDIT, seq.to_string(), "hash is not 32 bytes"))?,
        },
    };
    set_head(conn, key, AUDIT, audit_head)?;
    Ok(upgrade)
}
