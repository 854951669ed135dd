//! The whole flow over HTTP on a real socket: register → enroll → key → decrypt; revoke → new epoch.

mod common;

use smqtt_abe::hazmat::forced_decapsulate;
use smqtt_abe::{seal, Error as AbeError, Policy};
use smqtt_authority_api::{ClientError, NewDevice};

#[test]
fn enroll_issue_decrypt_revoke_rotate() {
    let t = common::start(|_| {});
    let params = t.anonymous().params().expect("params");
    assert_eq!(params.epoch.epoch, 1);
    assert_eq!(params.epoch.attribute, "epoch:1");

    let (alice_id, alice_key) =
        t.enrolled_device("alice", "role:operator, site:berlin, level = 5", &["plant/berlin/#"]);
    let (bob_id, bob_key) = t.enrolled_device("bob", "role:intern, site:paris", &[]);
    let alice = t.anonymous().request_key(&params, &alice_id, &alice_key, &mut rand_core::OsRng).expect("alice key");
    let bob = t.anonymous().request_key(&params, &bob_id, &bob_key, &mut rand_core::OsRng).expect("bob key");

    // The credential says what the authority decided, and is signed by it.
    let body = alice.credential.body();
    assert_eq!(body.device_id.as_str(), "alice");
    assert_eq!(body.device_key, alice_key.verifying_key());
    assert_eq!(body.epoch, 1);
    assert!(alice.credential.may_publish("plant/berlin/line1/temp"));
    assert!(!alice.credential.may_publish("plant/paris/line1/temp"));
    assert_eq!(alice.user_key.attributes().to_string(), "epoch:1, role:operator, site:berlin, level = 5");

    // The key decrypts what its attributes satisfy and nothing else.
    let policy =
        Policy::parse("site:berlin and (role:operator or role:admin) and level >= 3 and epoch:1").expect("policy");
    let sealed = seal::seal(&params.public_key, &policy, b"23.5 C", &mut rand_core::OsRng).expect("seal");
    assert_eq!(&*seal::open(&params.public_key, &alice.user_key, &sealed).expect("alice opens"), b"23.5 C");
    assert_eq!(seal::open(&params.public_key, &bob.user_key, &sealed), Err(AbeError::PolicyNotSatisfied));

    // Revocation: bob is refused further keys, the epoch advances.
    let revoked = t.admin().revoke_device("bob").expect("revoke");
    assert!(revoked.epoch_advanced);
    assert_eq!(revoked.epoch.epoch, 2);
    assert_eq!(revoked.device.status, "revoked");
    match t.anonymous().request_key(&params, &bob_id, &bob_key, &mut rand_core::OsRng) {
        Err(ClientError::Http { status: 403, code, .. }) => assert_eq!(code, "device_revoked"),
        other => panic!("revoked device got {other:?}"),
    }

    // Data for the new epoch: alice renews and reads it; bob's old key fails — in the pairing equation itself.
    let params2 = t.anonymous().params().expect("params");
    assert_eq!(params2.epoch.epoch, 2);
    let alice2 = t.anonymous().request_key(&params2, &alice_id, &alice_key, &mut rand_core::OsRng).expect("renew");
    assert_eq!(alice2.credential.body().epoch, 2);
    let policy2 = Policy::parse("(role:intern or role:operator) and epoch:2").expect("policy");
    let (data_key, capsule) = params2.public_key.encapsulate(&policy2, &mut rand_core::OsRng).expect("encapsulate");
    assert_eq!(alice2.user_key.decapsulate(&params2.public_key, &capsule).expect("alice decaps"), data_key);
    assert_eq!(bob.user_key.decapsulate(&params2.public_key, &capsule), Err(AbeError::PolicyNotSatisfied));
    let (_, forced) = forced_decapsulate(&params2.public_key, &capsule, &bob.user_key, &[]);
    assert_eq!(forced, Err(AbeError::DecryptionFailed), "bob's epoch-1 key must fail the pairing equation");
    // Alice's old epoch-1 key also fails on epoch-2 data: keys are per epoch.
    let (_, forced) = forced_decapsulate(&params2.public_key, &capsule, &alice.user_key, &[]);
    assert_eq!(forced, Err(AbeError::DecryptionFailed));
    // ...while data from before the rotation stays readable to bob's old key (revocation is forward-only).
    let old = seal::seal(
        &params.public_key,
        &Policy::parse("role:intern and epoch:1").expect("p"),
        b"old",
        &mut rand_core::OsRng,
    )
    .expect("seal");
    assert_eq!(&*seal::open(&params.public_key, &bob.user_key, &old).expect("old data"), b"old");

    // Every step is in the audit log, and the chain verifies.
    let log = t.admin().audit(100).expect("audit");
    let actions: Vec<&str> = log.entries.iter().map(|e| e.action.as_str()).collect();
    for expected in
        ["authority.init", "admin-token.create", "device.add", "device.enroll", "key.issue", "device.revoke"]
    {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    let verification = t.admin().audit_verify().expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert_eq!(verification.entries as usize, log.entries.len());
}

#[test]
fn manual_and_periodic_rotation_and_deferred_revocation() {
    let t = common::start(|c| {
        c.epochs.revocation = smqtt_authority::Revocation::NextRotation;
        c.epochs.rotation_interval_secs = 2;
    });
    let start = t.anonymous().epoch().expect("epoch").epoch;
    assert!(t.anonymous().epoch().expect("epoch").next_rotation_at.is_some());
    t.enrolled_device("carol", "role:operator", &[]);
    let revoked = t.admin().revoke_device("carol").expect("revoke");
    assert!(!revoked.epoch_advanced, "revocation deferred to the next rotation");
    // Revoking twice is a conflict, not a second epoch.
    assert!(matches!(t.admin().revoke_device("carol"), Err(ClientError::Http { status: 409, .. })));
    let manual = t.admin().rotate_epoch(Some("test".into())).expect("rotate");
    assert!(manual.epoch > start);
    // The scheduler advances the epoch by itself within a few seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    loop {
        let now = t.anonymous().epoch().expect("epoch").epoch;
        if now > manual.epoch {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "periodic rotation did not happen");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let log = t.admin().audit(100).expect("audit");
    assert!(log.entries.iter().any(|e| e.actor == "scheduler" && e.action == "epoch.rotate"));
}

#[test]
fn devices_are_validated_listed_and_shown() {
    let t = common::start(|_| {});
    let admin = t.admin();
    let bad = |device_id: &str, attributes: &str, publish: &[&str]| {
        admin.add_device(&NewDevice {
            device_id: device_id.into(),
            attributes: attributes.into(),
            publish: publish.iter().map(|s| s.to_string()).collect(),
            token_ttl_secs: None,
        })
    };
    for (id, attrs, publish) in [
        ("has space", "role:a", &[][..]),
        ("ok", "role:a,", &[][..]),
        ("ok", "epoch:7", &[][..]),
        ("ok", "epoch = 7", &[][..]),
        ("ok", "role:a", &["a/#/b"][..]),
        ("ok", "role:a", &["sport+"][..]),
    ] {
        match bad(id, attrs, publish) {
            Err(ClientError::Http { status: 400, code, .. }) => assert_eq!(code, "invalid_request"),
            other => panic!("{id:?} {attrs:?} {publish:?} accepted: {other:?}"),
        }
    }
    t.enrolled_device("dev-1", "site:berlin,role:sensor", &["a/+/c", "b/#"]);
    assert!(matches!(bad("dev-1", "role:a", &[]), Err(ClientError::Http { status: 409, .. })));
    let shown = admin.show_device("dev-1").expect("show");
    assert_eq!(shown.attributes, "role:sensor, site:berlin");
    assert_eq!(shown.publish, vec!["a/+/c", "b/#"]);
    assert_eq!(shown.status, "enrolled");
    assert!(shown.device_key.is_some());
    assert!(matches!(admin.show_device("nobody"), Err(ClientError::Http { status: 404, .. })));
    assert_eq!(admin.list_devices().expect("list").devices.len(), 1);
}

/// `[epochs] statement_file`: written at start, and after every epoch change — manual rotation, a revocation
/// that advances the epoch, the periodic scheduler — atomically, mode 0644, signed by the authority.
#[test]
fn the_statement_file_follows_every_epoch_change() {
    use std::os::unix::fs::PermissionsExt as _;
    let t = common::start(|c| c.epochs.statement_file = Some(c.data_dir.with_file_name("epoch.statement")));
    let path = t.dir.path().join("epoch.statement");
    let vk = t.authority.verifying_key();
    let params = t.anonymous().params().expect("params");
    let read = || -> Option<smqtt_wire::VerifiedEpoch> {
        let text = std::fs::read_to_string(&path).ok()?;
        assert!(text.ends_with('\n') && text.trim().lines().count() == 1, "{text:?}");
        Some(smqtt_wire::EpochStatement::parse(&text).and_then(|s| s.verify(&vk)).expect("verifies"))
    };
    let wait_for = |epoch: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if read().map(|s| s.epoch()) == Some(epoch) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the statement file never showed epoch {epoch}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    wait_for(1);
    let first = read().expect("statement");
    assert_eq!(first.params_id(), params.public_key.id().as_bytes());
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "mode {mode:o}");
    // Written before the API answers.
    assert_eq!(t.admin().rotate_epoch(Some("test".into())).expect("rotate").epoch, 2);
    assert_eq!(read().expect("statement").epoch(), 2);
    t.enrolled_device("dora", "role:sensor", &[]);
    assert_eq!(t.admin().revoke_device("dora").expect("revoke").epoch.epoch, 3);
    assert_eq!(read().expect("statement").epoch(), 3);
    // No temporary files left behind.
    let names: Vec<_> =
        std::fs::read_dir(t.dir.path()).expect("dir").filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert!(names.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")), "{names:?}");

    // The periodic scheduler.
    let t = common::start(|c| {
        c.epochs.statement_file = Some(c.data_dir.with_file_name("epoch.statement"));
        c.epochs.rotation_interval_secs = 1;
    });
    let path = t.dir.path().join("epoch.statement");
    let vk = t.authority.verifying_key();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let shown = smqtt_wire::EpochStatement::parse(&text).and_then(|s| s.verify(&vk)).map(|s| s.epoch());
        if shown.is_ok_and(|e| e >= 2) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the scheduler's rotation never reached the statement file");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Every answer that names an epoch carries its statement, signed by the authority, naming the parameter set.
#[test]
fn epoch_answers_carry_the_signed_statement() {
    let t = common::start(|_| {});
    let vk = t.authority.verifying_key();
    let params = t.anonymous().params().expect("params");
    let check = |info: &smqtt_authority_api::EpochInfo| {
        let verified = smqtt_wire::EpochStatement::parse(&info.statement).and_then(|s| s.verify(&vk)).expect("signed");
        assert_eq!((verified.epoch(), verified.body().started_at), (info.epoch, info.started_at));
        assert_eq!(verified.params_id(), params.public_key.id().as_bytes());
    };
    check(&t.anonymous().epoch().expect("epoch"));
    check(&params.epoch);
    check(&t.admin().rotate_epoch(None).expect("rotate"));
    let (id, key) = t.enrolled_device("eve", "role:sensor", &[]);
    let params = t.anonymous().params().expect("params");
    let keys = t.anonymous().request_key(&params, &id, &key, &mut rand_core::OsRng).expect("key");
    check(&keys.epoch);
    check(&t.admin().revoke_device("eve").expect("revoke").epoch);
}
