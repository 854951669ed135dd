//! The schema: the migrations that make it, what every connection to it is allowed to run, and the check, at
//! every open, that the database holds exactly the objects the migrations make — its tables and indexes as
//! the authority defined them, and no trigger, view or anything else.
//!
//! A trigger would run inside the authority's own writes (undoing a revocation as it is written, or dropping
//! audit entries), a view could stand in for a table. So triggers and views are disabled on the connection
//! (`SQLITE_DBCONFIG_ENABLE_TRIGGER`, `SQLITE_DBCONFIG_ENABLE_VIEW`), the schema is not trusted to call
//! functions with side effects (`SQLITE_DBCONFIG_TRUSTED_SCHEMA` off), `writable_schema` and the like are
//! refused (`SQLITE_DBCONFIG_DEFENSIVE`), and a schema with an object the authority did not make, or with one
//! of its objects defined differently, is refused with the object named. Rows are MACed from the values the
//! authority means to write and read back before the transaction commits (`integrity::insert_row`).

use std::collections::BTreeMap;

use rusqlite::config::DbConfig;
use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::integrity::row_name;
use crate::error::{Error, Result};

/// Schema versions, applied in order; `PRAGMA user_version` records how many ran.
pub(super) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE epochs (
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
     );",
    // Row MACs and the per-table set hashes (`integrity`). Applied in one transaction with the MACs of the rows
    // already there (see `integrity::protect_existing`).
    "ALTER TABLE epochs ADD COLUMN mac BLOB;
     ALTER TABLE devices ADD COLUMN mac BLOB;
     ALTER TABLE enrollment_tokens ADD COLUMN mac BLOB;
     ALTER TABLE admin_tokens ADD COLUMN mac BLOB;
     CREATE TABLE integrity (
        tbl TEXT PRIMARY KEY,
        rows INTEGER NOT NULL,
        digest BLOB NOT NULL,
        mac BLOB NOT NULL
     );",
];
/// The migration that adds the MACs.
pub(super) const MAC_MIGRATION: usize = 1;

/// The table refusals of the schema name.
pub(super) const SCHEMA: &str = "sqlite_schema";

/// Turns off, on `conn`, what a database file could use to run its own code inside the authority's statements.
///
/// # Errors
/// [`Error::DatabaseUnusable`] if SQLite does not take a setting.
pub(super) fn harden(conn: &Connection) -> Result<()> {
    let settings = [
        (DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false),
        (DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW, false),
        (DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false),
        (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
    ];
    for (setting, value) in settings {
        if conn.set_db_config(setting, value)? != value {
            return Err(Error::DatabaseUnusable(format!("SQLite did not take {setting:?} = {value}")));
        }
    }
    Ok(())
}

/// `(type, name)` → `(table, definition)` of every object in `conn`'s main schema; runs of whitespace in the
/// definitions are one space.
type Objects = BTreeMap<(String, String), (String, Option<String>)>;

/// The [`Objects`] of `conn`.
fn objects(conn: &Connection) -> Result<Objects> {
    let mut statement = conn.prepare("SELECT type, name, tbl_name, sql FROM main.sqlite_schema")?;
    let rows = statement.query_map([], |r| {
        let sql: Option<String> = r.get(3)?;
        let sql = sql.map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
        Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, sql)))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Refuses `conn`'s schema unless it holds exactly the objects the first `version` migrations make, each as
/// they define it (compared with the same migrations run on an empty database in memory).
///
/// # Errors
/// [`Error::Integrity`] naming the first object that is not the authority's, differs from it or is missing.
pub(super) fn check(conn: &Connection, version: usize) -> Result<()> {
    let reference = Connection::open_in_memory()?;
    for sql in MIGRATIONS.iter().take(version) {
        reference.execute_batch(sql)?;
    }
    let (expected, found) = (objects(&reference)?, objects(conn)?);
    let refuse = |(kind, name): &(String, String), problem: &'static str| Error::Integrity {
        table: SCHEMA,
        row: format!("{} {}", row_name(ValueRef::Text(kind.as_bytes())), row_name(ValueRef::Text(name.as_bytes()))),
        problem,
    };
    for (object, definition) in &found {
        match expected.get(object) {
            None => {
                return Err(refuse(
                    object,
                    "is not one of the authority's objects (no trigger, view or other object may be added)",
                ))
            }
            Some(theirs) if theirs != definition => {
                return Err(refuse(object, "has another definition than the authority gave it"))
            }
            Some(_) => {}
        }
    }
    match expected.keys().find(|object| !found.contains_key(*object)) {
        Some(object) => Err(refuse(object, "is missing")),
        None => Ok(()),
    }
}
