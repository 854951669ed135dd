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
