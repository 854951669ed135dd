//! State at rest that cannot be edited into privilege: with the authority stopped, rows of its SQLite file are
//! edited directly; reopening it with the secrets refuses the database and names the table and row. The
//! honest path — stop, reopen, serve — keeps working.

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};
use smqtt_authority::{init, seal, unseal, Authority, Config, Error, UnsealWith, SEALED_FILE};
use smqtt_authority_api::{EnrollRequest, KeyRequestBody, NewDevice};
use smqtt_wire::{enrollment_signing_bytes, DeviceId, KeyRequest, ReplySecret, SigningKey, ENROLL_DOMAIN};

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// An authority's data directory while the authority is stopped.
struct Stopped {
    _dir: tempfile::TempDir,
    config: Config,
    keys: Vec<(String, SigningKey)>,
}

impl Stopped {
    fn open(&self) -> Result<Authority, Error> {
        Authority::open(self.config.clone())
    }

    fn db(&self) -> Connection {
        Connection::open(self.config.data_dir.join("authority.db")).expect("db")
    }

    fn key(&self, id: &str) -> &SigningKey {
        &self.keys.iter().find(|(d, _)| d == id).expect("device").1
    }

    /// Seals the secrets again as an authority from before the seal recorded the row MACs did (version 1).
    fn seal_as_before_the_marker(&self) {
        let path = self.config.data_dir.join(SEALED_FILE);
        let with = UnsealWith::KeyFile(self.config.unseal.key_file.clone().expect("key file"));
        let mut secrets = unseal(&std::fs::read(&path).expect("sealed"), &with).expect("unseal");
        secrets.state_macs = false;
        std::fs::write(&path, seal(&secrets, &with, &mut rand_core::OsRng).expect("seal")).expect("write");
        assert_eq!(self.sealed_version(), 1);
    }

    fn sealed_version(&self) -> u8 {
        std::fs::read(self.config.data_dir.join(SEALED_FILE)).expect("sealed")[4]
    }

    fn user_version(&self) -> i64 {
        self.db().pragma_query_value(None, "user_version", |r| r.get(0)).expect("version")
    }

    /// Reopening is refused, naming `table` and `row`, in one line.
    fn refused(&self, table: &str, row: &str) -> String {
        let Err(error) = self.open() else { panic!("the edited database ({table} row {row}) was served") };
        let text = error.to_string();
        match &error {
            Error::Integrity { table: t, row: r, .. } => assert_eq!((*t, r.as_str()), (table, row), "{text}"),
            other => panic!("refused for another reason: {other}"),
        }
        assert!(text.contains(&format!("table {table} row {row}")) && !text.contains('\n'), "{text}");
        text
    }
}

fn enroll(authority: &Authority, id: &str, attributes: &str, publish: &[&str]) -> SigningKey {
    let created = authority
        .add_device(
            "admin:test",
            &NewDevice {
                device_id: id.into(),
                attributes: attributes.into(),
                publish: publish.iter().map(|p| p.to_string()).collect(),
                token_ttl_secs: None,
            },
            now(),
        )
        .expect("add");
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let public = key.verifying_key();
    let signature = key.sign(ENROLL_DOMAIN, &enrollment_signing_bytes(&created.enrollment_token, &public));
    authority
        .enroll(
            &EnrollRequest {
                token: created.enrollment_token,
                device_key: B64.encode(public.to_bytes()),
                signature: B64.encode(signature),
            },
            now(),
        )
        .expect("enroll");
    key
}

/// A populated authority, stopped: `sensor-1` (level 2, publishes on `plant/a/#`), `gone` (revoked), a pending
/// `later` with an unused token, two admin tokens, three epochs.
fn stopped() -> Stopped {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key_file: PathBuf = dir.path().join("unseal.key");
    std::fs::write(&key_file, [0x5a; 32]).expect("key file");
    init(&data, &UnsealWith::KeyFile(key_file.clone()), &mut rand_core::OsRng, now()).expect("init");
    let mut config = Config::new(data);
    config.unseal.key_file = Some(key_file);
    let authority = Authority::open(config.clone()).expect("open");
    authority.create_admin_token("first", &mut rand_core::OsRng, now()).expect("admin token");
    authority.create_admin_token("second", &mut rand_core::OsRng, now()).expect("admin token");
    let sensor = enroll(&authority, "sensor-1", "role:sensor, level = 2", &["plant/a/#"]);
    let gone = enroll(&authority, "gone", "role:sensor, level = 2", &[]);
    authority.rotate("admin:test", Some("test"), now()).expect("rotate");
    authority.revoke("admin:test", "gone", now()).expect("revoke");
    authority
        .add_device(
            "admin:test",
            &NewDevice {
                device_id: "later".into(),
                attributes: "role:sensor".into(),
                publish: vec![],
                token_ttl_secs: Some(60),
            },
            now(),
        )
        .expect("add");
    drop(authority);
    Stopped { _dir: dir, config, keys: vec![("sensor-1".into(), sensor), ("gone".into(), gone)] }
}

fn key_request(id: &str, key: &SigningKey) -> KeyRequestBody {
    let reply = ReplySecret::generate(&mut rand_core::OsRng);
    let mut nonce = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let id = DeviceId::new(id).expect("id");
    let request = KeyRequest { device_id: id.clone(), timestamp: now(), nonce, reply_key: reply.public() };
    KeyRequestBody {
        device_id: id.as_str().into(),
        timestamp: request.timestamp,
        nonce: B64.encode(nonce),
        reply_key: B64.encode(request.reply_key),
        signature: B64.encode(request.sign(key)),
    }
}

#[test]
fn honest_restarts_keep_serving() {
    let stopped = stopped();
    for _ in 0..3 {
        let authority = stopped.open().expect("an untouched database opens");
        let issued = authority.issue_key(&key_request("sensor-1", stopped.key("sensor-1")), now()).expect("key");
        assert_eq!(issued.epoch.epoch, 3);
        assert!(matches!(authority.issue_key(&key_request("gone", stopped.key("gone")), now()), Err(Error::Revoked)));
        assert_eq!(authority.devices().expect("devices").len(), 3);
        assert!(authority.audit_verify().expect("verify").problem.is_none());
    }
}

#[test]
fn raising_a_device_level_at_rest_is_refused_with_the_row_named() {
    let stopped = stopped();
    let db = stopped.db();
    db.execute(
        "UPDATE devices SET attributes = replace(attributes, 'level = 2', 'level = 9') WHERE id = 'sensor-1'",
        [],
    )
    .expect("edit");
    let message = stopped.refused("devices", "sensor-1");
    assert!(message.contains("does not match its MAC"), "{message}");
    // Putting the byte back is all it takes: the check points at exactly what changed.
    db.execute(
        "UPDATE devices SET attributes = replace(attributes, 'level = 9', 'level = 2') WHERE id = 'sensor-1'",
        [],
    )
    .expect("restore");
    stopped.open().expect("restored");
}

#[test]
fn widening_publish_rights_at_rest_is_refused() {
    let stopped = stopped();
    stopped.db().execute("UPDATE devices SET publish = '[\"#\"]' WHERE id = 'sensor-1'", []).expect("edit");
    stopped.refused("devices", "sensor-1");
}

#[test]
fn unrevoking_a_device_at_rest_is_refused() {
    let stopped = stopped();
    stopped
        .db()
        .execute("UPDATE devices SET status = 'enrolled', revoked_at = NULL WHERE id = 'gone'", [])
        .expect("edit");
    stopped.refused("devices", "gone");
}

#[test]
fn swapping_a_device_key_at_rest_is_refused() {
    let stopped = stopped();
    let attacker = SigningKey::generate(&mut rand_core::OsRng);
    stopped
        .db()
        .execute(
            "UPDATE devices SET device_key = ?1 WHERE id = 'sensor-1'",
            params![&attacker.verifying_key().to_bytes()[..]],
        )
        .expect("edit");
    stopped.refused("devices", "sensor-1");
}

#[test]
fn a_revoked_device_row_put_back_from_an_older_copy_is_refused() {
    let stopped = stopped();
    // A copy of a device row from before its revocation: the row and its (then valid) MAC.
    let authority = stopped.open().expect("open");
    enroll(&authority, "turncoat", "role:sensor, level = 2", &[]);
    drop(authority);
    let db = stopped.db();
    type Row = (String, Option<i64>, Vec<u8>);
    let copy: Row = db
        .query_row("SELECT status, revoked_at, mac FROM devices WHERE id = 'turncoat'", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("copy");
    let authority = stopped.open().expect("open");
    authority.revoke("admin:test", "turncoat", now()).expect("revoke");
    drop(authority);
    db.execute(
        "UPDATE devices SET status = ?1, revoked_at = ?2, mac = ?3 WHERE id = 'turncoat'",
        params![copy.0, copy.1, copy.2],
    )
    .expect("roll the row back");
    let message = stopped.refused("devices", "*");
    assert!(message.contains("older copy"), "{message}");
}

#[test]
fn inserting_an_admin_token_row_is_refused() {
    let stopped = stopped();
    let db = stopped.db();
    let hash: [u8; 32] = Sha256::digest(b"smqtt-admin-attacker").into();
    // With the MAC of a genuine row copied over: MACs cover the primary key, so it fits no other row.
    let genuine: Vec<u8> = db.query_row("SELECT mac FROM admin_tokens WHERE id = 1", [], |r| r.get(0)).expect("mac");
    db.execute(
        "INSERT INTO admin_tokens (id, token_hash, label, created_at, mac) VALUES (7, ?1, 'attacker', 0, ?2)",
        params![&hash[..], genuine],
    )
    .expect("insert");
    stopped.refused("admin_tokens", "7");
    // Without one.
    db.execute("UPDATE admin_tokens SET mac = NULL WHERE id = 7", []).expect("edit");
    let message = stopped.refused("admin_tokens", "7");
    assert!(message.contains("has no MAC"), "{message}");
    // And an admin token row deleted is noticed as well (the set of rows is authenticated, not only each row).
    db.execute("DELETE FROM admin_tokens WHERE id = 7", []).expect("delete");
    stopped.open().expect("back to the genuine rows");
    db.execute("DELETE FROM admin_tokens WHERE id = 2", []).expect("delete");
    stopped.refused("admin_tokens", "*");
}

#[test]
fn deleting_the_newest_epoch_row_to_roll_the_epoch_back_is_refused() {
    let stopped = stopped();
    stopped.db().execute("DELETE FROM epochs WHERE epoch = (SELECT max(epoch) FROM epochs)", []).expect("delete");
    let message = stopped.refused("epochs", "3");
    assert!(message.contains("rolled back"), "{message}");
}

#[test]
fn reviving_or_rebinding_an_enrollment_token_at_rest_is_refused() {
    let stopped = stopped();
    let db = stopped.db();
    let (hash, device): (Vec<u8>, String) = db
        .query_row("SELECT token_hash, device_id FROM enrollment_tokens WHERE device_id = 'gone'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("token");
    assert_eq!(device, "gone");
    let row: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>() + "…";
    db.execute("UPDATE enrollment_tokens SET used_at = NULL WHERE token_hash = ?1", params![hash]).expect("revive");
    stopped.refused("enrollment_tokens", &row);
    db.execute("UPDATE enrollment_tokens SET used_at = 1 WHERE token_hash = ?1", params![hash]).expect("edit");
    stopped.refused("enrollment_tokens", &row);
    // The pending device's token: longer-lived, or bound to another device.
    let stopped = self::stopped();
    let db = stopped.db();
    db.execute("UPDATE enrollment_tokens SET expires_at = expires_at + 86400 WHERE device_id = 'later'", [])
        .expect("extend");
    assert!(matches!(stopped.open(), Err(Error::Integrity { table: "enrollment_tokens", .. })));
    db.execute("UPDATE enrollment_tokens SET expires_at = expires_at - 86400 WHERE device_id = 'later'", [])
        .expect("restore");
    stopped.open().expect("restored");
    db.execute("UPDATE enrollment_tokens SET device_id = 'sensor-1' WHERE device_id = 'later'", []).expect("rebind");
    assert!(matches!(stopped.open(), Err(Error::Integrity { table: "enrollment_tokens", .. })));
}

#[test]
fn truncating_the_audit_log_is_refused() {
    let stopped = stopped();
    let newest: i64 = stopped.db().query_row("SELECT max(seq) FROM audit", [], |r| r.get(0)).expect("seq");
    stopped.db().execute("DELETE FROM audit WHERE seq = ?1", params![newest]).expect("truncate");
    let message = stopped.refused("audit", &newest.to_string());
    assert!(message.contains("truncated"), "{message}");
}

#[test]
fn stripping_the_macs_to_have_edits_blessed_is_refused() {
    let stopped = stopped();
    let db = stopped.db();
    // Back to the schema from before MACs, with an edit, hoping for the one-time upgrade to MAC it.
    db.execute_batch(
        "UPDATE devices SET attributes = replace(attributes, 'level = 2', 'level = 9');
         DROP TABLE integrity;
         ALTER TABLE devices DROP COLUMN mac;
         ALTER TABLE epochs DROP COLUMN mac;
         ALTER TABLE enrollment_tokens DROP COLUMN mac;
         ALTER TABLE admin_tokens DROP COLUMN mac;
         PRAGMA user_version = 1;",
    )
    .expect("strip");
    let message = stopped.refused("integrity", "*");
    assert!(message.contains("had MACs"), "{message}");
    // Under a seal that does not record the MACs yet, the log's signed `authority.init` entry still does.
    stopped.seal_as_before_the_marker();
    let message = stopped.refused("integrity", "*");
    assert!(message.contains("was removed from a database that had MACs"), "{message}");
}

#[test]
fn a_row_edited_under_a_running_authority_fails_closed_when_read() {
    let stopped = stopped();
    let authority = stopped.open().expect("open");
    let token = authority.create_admin_token("ops", &mut rand_core::OsRng, now()).expect("token");
    assert!(authority.check_admin(&token).is_ok());
    let db = stopped.db();
    db.execute("UPDATE devices SET status = 'enrolled', revoked_at = NULL WHERE id = 'gone'", []).expect("edit");
    match authority.issue_key(&key_request("gone", stopped.key("gone")), now()) {
        Err(Error::Integrity { table: "devices", row, .. }) => assert_eq!(row, "gone"),
        other => panic!("served from an edited row: {other:?}"),
    }
    assert!(matches!(authority.devices(), Err(Error::Integrity { table: "devices", .. })));
    // An admin token row changed (here its label) is refused, not honoured.
    db.execute("UPDATE admin_tokens SET label = 'root' WHERE label = 'ops'", []).expect("edit");
    assert!(matches!(authority.check_admin(&token), Err(Error::Integrity { table: "admin_tokens", .. })));
    db.execute("UPDATE epochs SET started_at = started_at + 1 WHERE epoch = 3", []).expect("edit");
    assert!(matches!(authority.epoch(), Err(Error::Integrity { table: "epochs", .. })));
    // The sensor's own row is untouched; its key request still gets as far as the edited epoch.
    assert!(matches!(
        authority.issue_key(&key_request("sensor-1", stopped.key("sensor-1")), now()),
        Err(Error::Integrity { table: "epochs", .. })
    ));
}

/// With the authority stopped: the audit log emptied, `integrity` and the `mac` columns dropped, an admin token
/// row inserted and the schema version set back to before MACs — for the one-time upgrade to MAC every row, the
/// inserted one included.
fn strip_the_macs_and_plant_an_admin_token(db: &Connection) {
    let evil: [u8; 32] = Sha256::digest(b"smqtt-admin-evil").into();
    db.execute_batch(
        "DELETE FROM audit;
         DROP TABLE integrity;
         ALTER TABLE devices DROP COLUMN mac;
         ALTER TABLE epochs DROP COLUMN mac;
         ALTER TABLE enrollment_tokens DROP COLUMN mac;
         ALTER TABLE admin_tokens DROP COLUMN mac;",
    )
    .expect("strip");
    db.execute("INSERT INTO admin_tokens (token_hash, label, created_at) VALUES (?1, 'evil', 0)", params![&evil[..]])
        .expect("insert");
    db.pragma_update(None, "user_version", 1).expect("version");
}

/// R1. The sealed secrets say this database has had MACs: it is refused, and left as it is.
#[test]
fn blessing_an_admin_token_row_through_the_pre_mac_upgrade_is_refused() {
    let stopped = stopped();
    strip_the_macs_and_plant_an_admin_token(&stopped.db());
    if let Ok(authority) = stopped.open() {
        assert!(authority.check_admin("smqtt-admin-evil").is_err(), "the inserted admin token works");
        panic!("the stripped database was served");
    }
    let message = stopped.refused("integrity", "*");
    assert!(message.contains("sealed secrets"), "{message}");
    assert_eq!(stopped.user_version(), 1, "the refused database was not migrated");
    // Offline verification, which cannot check MACs, does not call an emptied audit log fine either.
    let offline = smqtt_authority::store::verify_offline(&stopped.config.data_dir).expect("verify");
    assert!(offline.problem.as_deref().is_some_and(|p| p.contains("empty")), "{offline:?}");
}

/// R1 where the seal does not record the MACs yet (sealed before it did): an audit log emptied over rows is
/// refused all the same — every authority's log starts with its `authority.init` entry.
#[test]
fn blessing_an_admin_token_row_under_a_seal_from_before_the_marker_is_refused() {
    let stopped = stopped();
    stopped.seal_as_before_the_marker();
    strip_the_macs_and_plant_an_admin_token(&stopped.db());
    let message = stopped.refused("audit", "*");
    assert!(message.contains("empty"), "{message}");
    assert_eq!((stopped.user_version(), stopped.sealed_version()), (1, 1), "nothing was changed");
}

/// The honest path from such a seal: the first start records the MACs in the seal, and from then on R1 meets
/// the seal.
#[test]
fn a_seal_from_before_the_marker_records_it_at_the_next_start() {
    let stopped = stopped();
    stopped.seal_as_before_the_marker();
    let authority = stopped.open().expect("an untouched database opens");
    assert!(authority.audit_verify().expect("verify").problem.is_none());
    drop(authority);
    assert_eq!(stopped.sealed_version(), 2);
    stopped.open().expect("and opens again");
    strip_the_macs_and_plant_an_admin_token(&stopped.db());
    let message = stopped.refused("integrity", "*");
    assert!(message.contains("sealed secrets"), "{message}");
}

/// R2. A trigger planted with the authority stopped puts `victim-1` back to enrolled whenever it is revoked.
const KEEP_VICTIM: &str = "CREATE TRIGGER keep AFTER UPDATE OF status ON devices
     WHEN NEW.status = 'revoked' AND NEW.id = 'victim-1'
     BEGIN UPDATE devices SET status = 'enrolled', revoked_at = NULL WHERE id = NEW.id; END;";

#[test]
fn a_trigger_planted_to_undo_a_revocation_is_refused_and_never_fires() {
    let stopped = stopped();
    stopped.db().execute_batch(KEEP_VICTIM).expect("plant");
    if let Ok(authority) = stopped.open() {
        let victim = enroll(&authority, "victim-1", "role:sensor, level = 2", &[]);
        let _ = authority.revoke("admin:test", "victim-1", now());
        assert_eq!(authority.device("victim-1").expect("show").status, "revoked", "the trigger undid the revocation");
        let issued = authority.issue_key(&key_request("victim-1", &victim), now());
        assert!(matches!(issued, Err(Error::Revoked)), "the revoked device renewed: {:?}", issued.map(|k| k.epoch));
        panic!("a database with a planted trigger was served");
    }
    let message = stopped.refused("sqlite_schema", "trigger keep");
    assert!(message.contains("not one of the authority's"), "{message}");

    // Planted under a running authority, after its start checked the schema: the trigger never fires.
    stopped.db().execute_batch("DROP TRIGGER keep;").expect("drop");
    let authority = stopped.open().expect("open without it");
    stopped.db().execute_batch(KEEP_VICTIM).expect("plant while running");
    let victim = enroll(&authority, "victim-1", "role:sensor, level = 2", &[]);
    authority.revoke("admin:test", "victim-1", now()).expect("revoke");
    assert_eq!(authority.device("victim-1").expect("show").status, "revoked");
    assert!(matches!(authority.issue_key(&key_request("victim-1", &victim), now()), Err(Error::Revoked)));
    drop(authority);
    stopped.refused("sqlite_schema", "trigger keep");
}

/// R2. A trigger planted with the authority stopped drops every audit entry, silently.
#[test]
fn a_trigger_planted_to_drop_audit_entries_is_refused_and_never_fires() {
    const QUIET: &str = "CREATE TRIGGER quiet BEFORE INSERT ON audit BEGIN SELECT RAISE(IGNORE); END;";
    let stopped = stopped();
    stopped.db().execute_batch(QUIET).expect("plant");
    if let Ok(authority) = stopped.open() {
        let before = authority.audit_verify().expect("verify").entries;
        let _ = authority.rotate("admin:test", Some("unaudited?"), now());
        assert_eq!(authority.audit_verify().expect("verify").entries, before + 1, "the audit entry was dropped");
        panic!("a database with a planted trigger was served");
    }
    stopped.refused("sqlite_schema", "trigger quiet");

    stopped.db().execute_batch("DROP TRIGGER quiet;").expect("drop");
    let authority = stopped.open().expect("open without it");
    let before = authority.audit_verify().expect("verify").entries;
    stopped.db().execute_batch(QUIET).expect("plant while running");
    authority.rotate("admin:test", Some("audited"), now()).expect("rotate");
    assert_eq!(authority.audit_verify().expect("verify").entries, before + 1);
    drop(authority);
    stopped.db().execute_batch("DROP TRIGGER quiet;").expect("drop");
    assert!(stopped.open().expect("reopen").audit_verify().expect("verify").problem.is_none());
}

/// R2. Views, indexes, tables the authority did not make, and a table definition changed, are refused, named.
#[test]
fn schema_objects_planted_or_changed_at_rest_are_refused_with_the_object_named() {
    let stopped = stopped();
    let db = stopped.db();
    let planted = [
        ("CREATE VIEW everyone AS SELECT id, 'enrolled' AS status FROM devices", "DROP VIEW everyone", "view everyone"),
        ("CREATE INDEX by_status ON devices (status)", "DROP INDEX by_status", "index by_status"),
        ("CREATE TABLE notes (x)", "DROP TABLE notes", "table notes"),
    ];
    for (plant, remove, object) in planted {
        db.execute_batch(plant).expect("plant");
        let message = stopped.refused("sqlite_schema", object);
        assert!(message.contains("not one of the authority's"), "{message}");
        let offline = smqtt_authority::store::verify_offline(&stopped.config.data_dir);
        assert!(matches!(offline, Err(Error::Integrity { table: "sqlite_schema", .. })), "{offline:?}");
        db.execute_batch(remove).expect("remove");
    }
    stopped.open().expect("the authority's schema again");
    // The status CHECK constraint edited out of the devices table's definition.
    db.execute_batch(
        "PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (status IN (''pending'', ''enrolled'', ''revoked''))', '')
           WHERE type = 'table' AND name = 'devices';
         PRAGMA writable_schema = OFF;",
    )
    .expect("edit the schema");
    let message = stopped.refused("sqlite_schema", "table devices");
    assert!(message.contains("definition"), "{message}");
}
