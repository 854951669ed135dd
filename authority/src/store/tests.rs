//! The one-time upgrade of a database from before row MACs.

use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::{params, Connection};
use smqtt_wire::SigningKey;

use super::{integrity, schema::MIGRATIONS, DeviceStatus, Provenance, SqliteStore, Store};
use crate::audit::{self, Action};
use crate::Error;

/// A database as the authority wrote it before MACs (schema version 1), with an audit chain signed by `key`.
fn version_1(path: &std::path::Path, key: &SigningKey) {
    let db = Connection::open(path).expect("db");
    db.execute_batch(MIGRATIONS[0]).expect("schema 1");
    db.pragma_update(None, "user_version", 1).expect("version");
    db.execute_batch(
        "INSERT INTO epochs (epoch, started_at) VALUES (1, 100), (2, 200);
         INSERT INTO devices (id, attributes, publish, status, device_key, created_at, enrolled_at)
            VALUES ('old-1', 'role:sensor, level = 2', '[\"a/#\"]', 'enrolled', zeroblob(32), 110, 120);
         INSERT INTO enrollment_tokens (token_hash, device_id, expires_at, used_at)
            VALUES (zeroblob(32), 'old-1', 1000, 120);
         INSERT INTO admin_tokens (token_hash, label, created_at) VALUES (x'01', 'admin', 105);",
    )
    .expect("rows");
    let mut prev = [0u8; 32];
    let actions = [
        Action::new("cli", "authority.init", "").detail("verifying_key=…"),
        Action::new("cli", "admin-token.create", "admin-token:1"),
        Action::new("admin:1", "device.add", "old-1"),
        Action::new("device:old-1", "device.enroll", "old-1"),
        Action::new("admin:1", "epoch.rotate", "").detail("reason=manual"),
    ];
    for (index, action) in actions.iter().enumerate() {
        let entry = audit::next_entry(index as u64 + 1, 100 + index as u64, action, &prev, key);
        db.execute(
            "INSERT INTO audit (seq, at, actor, action, subject, detail, hash, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                entry.seq as i64,
                entry.at as i64,
                entry.actor,
                entry.action,
                entry.subject,
                entry.detail,
                &entry.hash[..],
                &entry.signature[..]
            ],
        )
        .expect("audit");
        prev = entry.hash;
    }
}

#[test]
fn a_database_from_before_macs_gets_them_once_and_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("authority.db");
    let key = Arc::new(SigningKey::from_bytes(&[3; 32]));
    version_1(&path, &key);
    let store = SqliteStore::open(&path, Some(key.clone()), Provenance::Unrecorded).expect("upgrade");
    assert_eq!(store.epoch().expect("epoch").number, 2);
    let device = store.device("old-1").expect("read").expect("device");
    assert_eq!((device.status, device.attributes.as_str()), (DeviceStatus::Enrolled, "role:sensor, level = 2"));
    let entries = store.audit_entries(100).expect("audit");
    let upgrade: Vec<_> = entries.iter().filter(|e| e.action == integrity::UPGRADE_ACTION).collect();
    assert_eq!(upgrade.len(), 1);
    assert_eq!(
        upgrade[0].detail, "state_macs=v1 added to devices=1 epochs=2 enrollment_tokens=1 admin_tokens=1",
        "the upgrade says what it vouched for"
    );
    assert!(store.audit_verify(&key.verifying_key()).expect("verify").problem.is_none());
    drop(store);

    // Once: reopening adds nothing, and from now on an edit is refused.
    let store = SqliteStore::open(&path, Some(key.clone()), Provenance::Unrecorded).expect("reopen");
    assert_eq!(store.audit_entries(100).expect("audit").len(), entries.len());
    drop(store);
    let db = Connection::open(&path).expect("db");
    db.execute("UPDATE devices SET attributes = 'role:admin' WHERE id = 'old-1'", []).expect("edit");
    assert!(matches!(
        SqliteStore::open(&path, Some(key), Provenance::Unrecorded),
        Err(Error::Integrity { table: "devices", ref row, .. }) if row == "old-1"
    ));
}

#[test]
fn a_database_from_before_macs_whose_audit_chain_is_broken_is_not_blessed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("authority.db");
    let key = Arc::new(SigningKey::from_bytes(&[3; 32]));
    version_1(&path, &key);
    let db = Connection::open(&path).expect("db");
    db.execute("UPDATE audit SET detail = 'reason=nothing to see' WHERE seq = 5", []).expect("edit");
    assert!(matches!(
        SqliteStore::open(&path, Some(key.clone()), Provenance::Unrecorded),
        Err(Error::Integrity { table: "audit", ref row, .. }) if row == "5"
    ));
    // Nothing was changed by the refused upgrade; signed by another key, the chain is refused too.
    let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0)).expect("version");
    assert_eq!(version, 1);
    db.execute("UPDATE audit SET detail = 'reason=manual' WHERE seq = 5", []).expect("restore");
    let other = Arc::new(SigningKey::from_bytes(&[4; 32]));
    assert!(matches!(
        SqliteStore::open(&path, Some(other), Provenance::Unrecorded),
        Err(Error::Integrity { table: "audit", .. })
    ));
    SqliteStore::open(&path, Some(key), Provenance::Unrecorded).expect("the genuine chain upgrades");
}

#[test]
fn a_store_without_secrets_changes_and_vouches_for_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("authority.db");
    let key = Arc::new(SigningKey::from_bytes(&[3; 32]));
    version_1(&path, &key);
    let store = SqliteStore::open(&path, None, Provenance::HadMacs).expect("read-only");
    assert!(matches!(store.device("old-1"), Err(Error::ReadOnly)));
    assert!(matches!(store.append_audit(&Action::new("x", "y", "z"), 1), Err(Error::ReadOnly)));
    assert!(store.audit_verify(&key.verifying_key()).expect("verify").problem.is_none());
    drop(store);
    // Offline verification did not migrate the database: the upgrade is still the authority's to make.
    let db = Connection::open(&path).expect("db");
    let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0)).expect("version");
    assert_eq!(version, 1);
}

#[test]
fn an_upgrade_over_rows_with_an_empty_audit_log_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("authority.db");
    let key = Arc::new(SigningKey::from_bytes(&[3; 32]));
    version_1(&path, &key);
    let db = Connection::open(&path).expect("db");
    db.execute("DELETE FROM audit", []).expect("empty the log");
    assert!(matches!(
        SqliteStore::open(&path, Some(key), Provenance::Unrecorded),
        Err(Error::Integrity { table: "audit", ref row, .. }) if row == "*"
    ));
    let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0)).expect("version");
    assert_eq!(version, 1);
}

#[test]
fn an_upgrade_is_audited_even_over_an_empty_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("authority.db");
    let db = Connection::open(&path).expect("db");
    db.execute_batch(MIGRATIONS[0]).expect("schema 1");
    db.pragma_update(None, "user_version", 1).expect("version");
    let key = Arc::new(SigningKey::from_bytes(&[3; 32]));
    let store = SqliteStore::open(&path, Some(key), Provenance::Unrecorded).expect("upgrade");
    let entries = store.audit_entries(10).expect("audit");
    assert_eq!(entries.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), [integrity::UPGRADE_ACTION]);
}

#[test]
fn a_database_the_seal_says_had_macs_is_never_upgraded_nor_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("authority.db");
    let key = Arc::new(SigningKey::from_bytes(&[3; 32]));
    version_1(&path, &key);
    assert!(matches!(
        SqliteStore::open(&path, Some(key.clone()), Provenance::HadMacs),
        Err(Error::Integrity { table: "integrity", ref row, .. }) if row == "*"
    ));
    let db = Connection::open(&path).expect("db");
    let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0)).expect("version");
    assert_eq!(version, 1);
    // `init` does not upgrade one either.
    assert!(SqliteStore::open(&path, Some(key.clone()), Provenance::New).is_err());
    let missing = dir.path().join("missing.db");
    assert!(SqliteStore::open(&missing, Some(key), Provenance::HadMacs).is_err());
    assert!(!missing.exists(), "a missing database is not made afresh");
}

/// Where something (here a trigger on a connection that allows them) changes a row as it is written, the row read
/// back is not the one meant: refused, and the transaction with it.
#[test]
fn a_row_changed_as_it_is_written_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("authority.db");
    let key = Arc::new(SigningKey::from_bytes(&[3; 32]));
    let store = SqliteStore::open(&path, Some(key.clone()), Provenance::New).expect("new");
    store.initialise(&Action::new("cli", "authority.init", ""), 1).expect("init");
    drop(store);
    let db = Connection::open(&path).expect("db");
    db.execute_batch(
        "CREATE TRIGGER later AFTER INSERT ON epochs BEGIN UPDATE epochs SET started_at = 0 WHERE epoch = NEW.epoch; END;",
    )
    .expect("plant");
    let mac = integrity::MacKey::derive(&key);
    let row = [Value::Integer(2), Value::Integer(50)];
    assert!(matches!(
        integrity::insert_row(&db, &mac, &integrity::EPOCHS, &row),
        Err(Error::Integrity { table: "epochs", ref row, .. }) if row == "2"
    ));
}
