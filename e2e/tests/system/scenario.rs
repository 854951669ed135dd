//! The scenario across processes: authority (SQLite, passphrase-sealed), `smqtt-broker` with
//! enforcement, a temperature publisher under `site:berlin and (role:operator or role:admin)`, three subscribers
//! with different attributes, then a revocation through `smqtt-authority device revoke`.

use std::time::{Duration, Instant};

use smqtt_client::{MessageError, QoS, SmqttClient};

use crate::harness::{
    client_config, enroll, gate_toml, publish_cli, run, run_ok, run_test, smqtt, statement_epoch, wait_for, Authority,
    CliSubscriber, Sealing, SmqttBroker, TestDir, STATEMENT_CONFIG, WAIT,
};
use crate::mqtt::{broker_accepts, next_data, PROBE_TOPIC, TEMP_POLICY};

const TEMP_TOPIC: &str = "plant/berlin/line1/temp";

#[test]
fn scenario_three_subscribers_then_revocation_advances_the_epoch() {
    run_test(scenario_three_subscribers_then_revocation_advances_the_epoch_body());
}

async fn scenario_three_subscribers_then_revocation_advances_the_epoch_body() {
    let started = Instant::now();
    let dir = TestDir::new("scenario");
    let root = dir.path();
    // The authority keeps a signed statement of the current epoch in a file (`[epochs] statement_file`); the
    // broker follows that file (`[authority] epoch_file`): credentials of older epochs are refused at CONNECT.
    let authority = Authority::start(root, Sealing::Passphrase, STATEMENT_CONFIG);
    let epoch0 = authority.epoch();
    let epoch_file = authority.statement_file();
    let broker = SmqttBroker::start(root, &gate_toml(&authority, Some(&epoch_file)))
        .expect("smqtt-broker not built in target/release (cargo build --release --workspace)");
    let port = broker.port;
    let logs = authority.logs().to_path_buf();

    // Devices: registered with the admin CLI, enrolled with `smqtt enroll`.
    let sensor = enroll(&authority, "temp-1", "role:sensor, site:berlin", &["plant/berlin/#"]);
    let operator = enroll(&authority, "op-berlin", "role:operator, site:berlin", &[]);
    let authority_key = *operator.identity().authority_key();
    assert_eq!(statement_epoch(&epoch_file, &authority_key), Some(epoch0), "the statement the broker started from");
    let admin = enroll(&authority, "admin-berlin", "role:admin, site:berlin", &[]);
    let paris = enroll(&authority, "op-paris", "role:operator, site:paris", &[]);

    // op-berlin reads in this process (and renews in place); the other two are `smqtt sub` processes.
    let (op_client, mut op_rx) = SmqttClient::connect(operator.identity(), &client_config(port)).expect("connect");
    op_client.subscribe("plant/#", QoS::AtLeastOnce).await.expect("subscribe");
    let mut admin_sub = CliSubscriber::start(&admin, port, "plant/#", &logs);
    let mut paris_sub = CliSubscriber::start(&paris, port, "plant/berlin/+/temp", &logs);
    // Probes (each `smqtt pub` is a fresh session, capsule included) until all three are subscribed. The
    // Paris subscriber's filter does not match the probe topic: it gets its own probe on a temp topic.
    let mut ready = [false; 3];
    for attempt in 0..20 {
        publish_cli(&sensor, port, PROBE_TOPIC, "site:berlin", &format!("probe {attempt}"));
        if !ready[2] {
            publish_cli(&sensor, port, "plant/berlin/probe/temp", "site:berlin", "probe");
        }
        let deadline = Instant::now() + Duration::from_millis(1500);
        while !ready.iter().all(|r| *r) && Instant::now() < deadline {
            if !ready[0] {
                ready[0] = op_rx.next_timeout(Duration::from_millis(50)).await.is_some();
            }
            if !ready[1] {
                ready[1] = admin_sub.next_json(Duration::from_millis(50)).is_some();
            }
            if !ready[2] {
                ready[2] = paris_sub.next_json(Duration::from_millis(50)).is_some();
            }
        }
        if ready.iter().all(|r| *r) {
            break;
        }
    }
    assert_eq!(ready, [true; 3], "subscribers (op-berlin, admin-berlin, op-paris) not all subscribed");
    drain_probes(&mut op_rx, &mut admin_sub, &mut paris_sub).await;

    // 1. One reading: the two Berlin operators/admins read it, Paris is not authorised.
    publish_cli(&sensor, port, TEMP_TOPIC, TEMP_POLICY, "21.5 C");
    let message = next_data(&mut op_rx, "op-berlin", WAIT).await.expect("op-berlin reads");
    assert_eq!(message.payload(), b"21.5 C");
    assert_eq!(message.topic(), TEMP_TOPIC);
    assert_eq!(message.publisher(), "temp-1");
    assert!(message.policy().contains(&format!("epoch:{epoch0}")), "{}", message.policy());
    let read = admin_sub.next_skipping(PROBE_TOPIC, WAIT);
    assert_eq!(read["payload"], "21.5 C", "admin-berlin: {read}");
    assert_eq!(read["publisher"], "temp-1");
    let refused = paris_sub.next_skipping(PROBE_TOPIC, WAIT);
    assert_eq!(refused["error"], "not_authorised", "op-paris: {refused}");

    // 2. Revoke admin-berlin with the admin CLI: the epoch advances.
    let out = run_ok("device revoke", authority.admin(&["device", "revoke", "admin-berlin", "--json"]));
    let revoked: serde_json::Value = serde_json::from_str(&out).expect("revoke --json");
    assert_eq!(revoked["epoch_advanced"], true, "{revoked}");
    let epoch1 = revoked["epoch"]["epoch"].as_u64().expect("epoch");
    assert_eq!(epoch1, epoch0 + 1);
    assert_eq!(authority.epoch(), epoch1);
    let shown = run_ok("device show", authority.admin(&["device", "show", "admin-berlin", "--json"]));
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("show --json");
    assert_eq!(shown["status"], "revoked", "{shown}");
    // Nobody writes the broker's epoch file by hand: `serve` rewrote it with the new epoch's statement, signed
    // by the key the devices pinned at enrollment (the broker re-reads it at most once a second).
    wait_for("the authority's statement file to name the new epoch", WAIT, || {
        (statement_epoch(&epoch_file, &authority_key) == Some(epoch1)).then_some(())
    });
    let statement_written = Instant::now();

    // The revoked device gets no new key (exit 1: refused by the authority); the others renew.
    let refused_renewal = run("smqtt renew (revoked)", smqtt(&["renew", "--store", admin.store_arg()]));
    assert_eq!(refused_renewal.status.code(), Some(1), "{refused_renewal:?}");
    assert!(
        String::from_utf8_lossy(&refused_renewal.stderr).contains("revoked"),
        "{}",
        String::from_utf8_lossy(&refused_renewal.stderr)
    );
    let renewed = run_ok("smqtt renew", smqtt(&["renew", "--store", sensor.store_arg()]));
    assert_eq!(renewed.trim(), format!("renewed temp-1 (epoch {epoch1})"));
    assert_eq!(op_client.renew(&operator.store()).await.expect("op-berlin renews in place"), epoch1);
    assert_eq!(op_client.epoch(), epoch1);
    run_ok("smqtt renew", smqtt(&["renew", "--store", paris.store_arg()]));
    // The Paris subscriber is a CLI process: renewal means a restart with the renewed store.
    drop(paris_sub);
    let mut paris_sub = CliSubscriber::start(&paris, port, "plant/berlin/+/temp", &logs);
    let deadline = Instant::now() + WAIT;
    loop {
        publish_cli(&sensor, port, "plant/berlin/probe/temp", "site:berlin", "probe");
        if paris_sub.next_json(Duration::from_millis(1500)).is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "op-paris did not resubscribe");
    }
    drain_probes(&mut op_rx, &mut admin_sub, &mut paris_sub).await;

    // At the broker: the revoked device's credential (old epoch) no longer gets in; a renewed one does. The
    // gate re-reads its epoch file at most once a second (when a client connects, publishes or subscribes): a
    // CONNECT a second after the rewrite sees the new epoch whatever came before.
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(statement_written.elapsed())).await;
    assert!(!broker_accepts(port, &admin.identity(), "admin-berlin/again").await, "revoked credential accepted");
    assert!(broker_accepts(port, &operator.identity(), "op-berlin/again").await, "renewed credential refused");

    // 3. New data, for the new epoch: op-berlin continues, the revoked admin cannot read it, Paris still not.
    publish_cli(&sensor, port, TEMP_TOPIC, TEMP_POLICY, "22.0 C");
    let message = next_data(&mut op_rx, "op-berlin", WAIT).await.expect("op-berlin reads after renewing");
    assert_eq!(message.payload(), b"22.0 C");
    assert!(message.policy().contains(&format!("epoch:{epoch1}")), "{}", message.policy());
    let refused = admin_sub.next_skipping(PROBE_TOPIC, WAIT);
    assert_eq!(refused["error"], "not_authorised", "revoked admin-berlin: {refused}");
    assert!(refused["message"].as_str().is_some_and(|m| m.contains(&format!("epoch:{epoch1}"))), "{refused}");
    let refused = paris_sub.next_skipping(PROBE_TOPIC, WAIT);
    assert_eq!(refused["error"], "not_authorised", "op-paris: {refused}");
    assert!(refused["message"].as_str().is_some_and(|m| m.contains(&format!("epoch:{epoch1}"))), "{refused}");
    // Nothing else arrived for op-berlin (no duplicates, no refusals).
    let extra = op_rx.next_timeout(Duration::from_millis(300)).await;
    assert!(extra.as_ref().is_none_or(|d| crate::mqtt::is_about(d, PROBE_TOPIC)), "unexpected: {extra:?}");
    assert!(!matches!(extra, Some(Err(MessageError::Replay { .. }))));

    authority.audit_verify_offline();
    op_client.disconnect().await;
    eprintln!("scenario: {:.1} s", started.elapsed().as_secs_f64());
}

/// Reads away the probes still under way (anything about the probe topics) for up to 300 ms of quiet.
async fn drain_probes(op_rx: &mut smqtt_client::Messages, admin: &mut CliSubscriber, paris: &mut CliSubscriber) {
    while let Some(d) = op_rx.next_timeout(Duration::from_millis(300)).await {
        assert!(crate::mqtt::is_about(&d, "plant/berlin/probe"), "op-berlin got more than probes: {d:?}");
    }
    for sub in [admin, paris] {
        for line in sub.lines.drain(Duration::from_millis(300)) {
            assert!(line.contains("plant/berlin/probe"), "{} got more than probes: {line}", sub.proc.name);
        }
    }
}
