//! The broker follows the authority: signed epoch statements polled from the authority itself, a sealing
//! identity that renews itself at a rotation and never seals for a past epoch, and connected devices that renew
//! in place. Its own test binary, because it rotates the shared test authority's epoch.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{broker, devices, metric_or_zero as metric, next, raw4, scrape, token, world, Seen4};
use rumqttc::{ConnectReturnCode as Code4, QoS};
use smqtt_client::{ClientConfig, DeviceStore, MessageError, SmqttClient};
use smqtt_wire::{EpochStatement, VerifyingKey};

fn password_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    let params = argon2::Params::new(1024, 1, 1, None).expect("params");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"smqtt-test-salt!").expect("salt");
    argon.hash_password(password.as_bytes(), &salt).expect("hash").to_string()
}

fn authority_key() -> VerifyingKey {
    use base64::Engine as _;
    let text = std::fs::read_to_string(world().authority_pub()).expect("authority.pub");
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).expect("base64");
    VerifyingKey::from_bytes(&bytes.try_into().expect("32 bytes")).expect("key")
}

/// Waits until `done` holds (checked every 100 ms, at most 15 s).
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..150 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 15 s: {what}");
}

fn store_epoch(store: &Path) -> u64 {
    DeviceStore::at(store).load().map_or(0, |identity| identity.epoch())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_reaches_the_broker_and_its_sealing_identity_by_itself() {
    let mut enrolled = devices(vec![
        ("e-broker", "role:broker", vec!["legacy/#"]),
        ("e-admin", "role:admin", vec!["plant/#"]),
        ("e-victim", "role:admin", vec![]),
    ])
    .await;
    let (victim_store, victim) = enrolled.pop().expect("victim");
    let (admin_store, admin) = enrolled.pop().expect("admin");
    let (broker_store, _) = enrolled.pop().expect("broker");
    let dir = tempfile::tempdir().expect("dir");
    let statement_file = dir.path().join("epoch.statement");
    let gate = format!(
        "[gate.authority]\nverifying_key = {:?}\nurl = {:?}\nepoch_poll_secs = 1\nepoch_file = {statement_file:?}\n\
         [gate.topics]\nprotected = [\"plant/#\", \"legacy/#\"]\n\
         [gate.sealing]\nstore = {broker_store:?}\ntopics = [{{ filter = \"legacy/#\", policy = \"role:admin\" }}]\n\
         [[gate.legacy]]\nusername = \"meter\"\npassword_hash = \"{}\"\npublish = [\"legacy/#\"]\n",
        world().authority_pub(),
        world().authority_url,
        password_hash("meter-pw")
    );
    let b = broker(&gate, dir.path());
    let (v4, metrics) = (b.v4.expect("v4"), b.metrics.expect("metrics"));
    let config = ClientConfig::new("127.0.0.1", v4.port());
    let (admin_client, mut admin_rx) = SmqttClient::connect(admin, &config).expect("admin");
    admin_client.subscribe("legacy/#", smqtt_client::QoS::AtLeastOnce).await.expect("sub");
    admin_client.subscribe("plant/#", smqtt_client::QoS::AtLeastOnce).await.expect("sub");
    let (victim_client, mut victim_rx) = SmqttClient::connect(victim, &config).expect("victim");
    victim_client.subscribe("legacy/#", smqtt_client::QoS::AtLeastOnce).await.expect("sub");
    let (meter, mut meter_rx) = raw4(v4, "legacy:meter", Some(("meter", "meter-pw")), None).await;
    assert!(matches!(next(&mut meter_rx, "connack").await, Seen4::ConnAck(Code4::Success)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    eventually("the broker wrote the authority's statement", || statement_file.exists()).await;

    // Epoch 1: both admins read the broker-sealed reading.
    let epoch1 = metric(&scrape(metrics), "smqtt_gate_min_epoch ");
    meter.publish("legacy/m/kwh", QoS::AtLeastOnce, false, b"before".to_vec()).await.expect("publish");
    for rx in [&mut admin_rx, &mut victim_rx] {
        let message = rx.next_timeout(common::WAIT).await.expect("a delivery").expect("readable");
        assert_eq!(message.payload(), b"before");
        assert_eq!(message.policy(), format!("role:admin and epoch:{epoch1}"));
    }

    // The administrator revokes the victim. Nobody touches the broker: it polls the signed epoch, writes the
    // statement to its file and renews its sealing identity.
    let admin_api = world().admin.clone();
    let revoked =
        tokio::task::spawn_blocking(move || admin_api.revoke_device("e-victim")).await.expect("task").expect("revoke");
    let epoch2 = revoked.epoch.epoch;
    assert!(epoch2 > epoch1);
    assert!(metric(&scrape(metrics), "smqtt_gate_epoch_statement_issued_at ") > 0, "the feed's liveness is exported");
    let gauge = format!("smqtt_gate_min_epoch {epoch2}");
    eventually("the gate enforces the new epoch", || scrape(metrics).lines().any(|l| l == gauge)).await;
    eventually("the sealing identity renewed itself", || store_epoch(&broker_store) == epoch2).await;
    let text = std::fs::read_to_string(&statement_file).expect("statement file");
    let cached = EpochStatement::parse(&text).and_then(|s| s.verify(&authority_key())).expect("signed statement");
    assert_eq!(cached.epoch(), epoch2);

    // The honest admin renews in place (no reconnect); the revoked one cannot.
    assert_eq!(admin_client.renew(&DeviceStore::at(&admin_store)).await.expect("renew"), epoch2);
    assert!(DeviceStore::at(&victim_store).renew().is_err());

    // Every reading after the rotation is sealed for the new epoch: the admin reads it, the revoked key fails.
    meter.publish("legacy/m/kwh", QoS::AtLeastOnce, false, b"after".to_vec()).await.expect("publish");
    let message = admin_rx.next_timeout(common::WAIT).await.expect("a delivery").expect("readable");
    assert_eq!(message.payload(), b"after");
    assert_eq!(message.policy(), format!("role:admin and epoch:{epoch2}"));
    match victim_rx.next_timeout(common::WAIT).await {
        Some(Err(MessageError::NotAuthorised { policy, .. })) => assert!(policy.ends_with(&format!("epoch:{epoch2}"))),
        other => panic!("the revoked subscriber got {other:?}"),
    }

    // The admin, still on its original connection, publishes with its renewed credential and is accepted; the
    // revoked device's credential is refused at CONNECT.
    let policy = smqtt_abe::Policy::parse("role:admin").expect("policy");
    admin_client
        .publish("plant/x", &policy, smqtt_client::QoS::AtLeastOnce, false, b"renewed publisher")
        .await
        .expect("publish");
    let message = admin_rx.next_timeout(common::WAIT).await.expect("its own publish").expect("readable");
    assert_eq!((message.payload(), message.topic()), (&b"renewed publisher"[..], "plant/x"));
    let victim = DeviceStore::at(&victim_store).load().expect("the victim's old identity");
    let (_again, mut again_rx) = raw4(v4, "e-victim", Some(("e-victim", &token(&victim, "e-victim"))), None).await;
    assert!(matches!(next(&mut again_rx, "connack").await, Seen4::Refused(_)));
    assert_eq!(metric(&scrape(metrics), r#"smqtt_gate_refused_total{check="publish",reason="revoked_epoch"} "#), 0);
}
