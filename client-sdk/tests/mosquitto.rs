//! The SDK through Debian's Mosquitto 2 (a separate process, as deployed), with mosquitto_pub/sub beside it.

mod common;

use std::process::{Command, Stdio};

use common::{subscribed, WAIT};
use smqtt_abe::Policy;
use smqtt_client::{MessageError, QoS, SmqttClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_mosquitto_with_mosquitto_clients_beside() {
    let broker = common::start_mosquitto();
    let addr = broker.addr;
    let (world, (_, sensor), (_, operator), (_, intern)) = tokio::task::spawn_blocking(move || {
        let w = common::World::new(addr);
        let a = w.device("sensor-m", "role:sensor, site:berlin", &["plant/berlin/#"]);
        let b = w.device("op-m", "role:operator, site:berlin", &[]);
        let c = w.device("intern-m", "role:intern, site:berlin", &[]);
        (w, a, b, c)
    })
    .await
    .expect("devices");
    let config = common::World::config_for(addr);
    let (publisher, _) = SmqttClient::connect(sensor, &config).expect("connect");
    let (op, mut op_rx) = SmqttClient::connect(operator, &config).expect("connect");
    let (int, mut int_rx) = SmqttClient::connect(intern, &config).expect("connect");
    subscribed(&op, "plant/#", QoS::AtLeastOnce).await;
    subscribed(&int, "plant/berlin/+/temp", QoS::AtLeastOnce).await;
    // A plain mosquitto_sub on the same topics: it must see only ciphertext.
    let spy = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string(), "-t", "plant/#", "-C", "1", "-W", "10"])
        .args(["-i", "smqtt-spy"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    tokio::task::block_in_place(|| broker.wait_subscribed("smqtt-spy", "plant/#"));

    let policy = Policy::parse("site:berlin and role:operator").expect("policy");
    publisher
        .publish("plant/berlin/line1/temp", &policy, QoS::AtLeastOnce, true, b"secret 23.5 C")
        .await
        .expect("publish");
    let message = op_rx.next_timeout(WAIT).await.expect("delivery").expect("operator reads");
    assert_eq!(message.payload(), b"secret 23.5 C");
    assert!(matches!(int_rx.next_timeout(WAIT).await.expect("delivery"), Err(MessageError::NotAuthorised { .. })));
    let spied = tokio::task::spawn_blocking(move || spy.wait_with_output()).await.expect("join").expect("spy");
    assert!(!spied.stdout.is_empty(), "mosquitto_sub saw nothing");
    assert!(!spied.stdout.windows(6).any(|w| w == b"secret"), "plaintext visible at the broker");

    // Plaintext from mosquitto_pub on the protected topic: reported as malformed, the stream goes on.
    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &addr.port().to_string(),
            "-t",
            "plant/berlin/line1/temp",
            "-q",
            "1",
            "-m",
            "plain 1",
        ])
        .status()
        .expect("mosquitto_pub");
    assert!(status.success());
    match op_rx.next_timeout(WAIT).await.expect("delivery") {
        Err(MessageError::Malformed { topic, .. }) => assert_eq!(topic, "plant/berlin/line1/temp"),
        other => panic!("plaintext accepted: {other:?}"),
    }

    // A late joiner gets the retained message, which carries its capsule.
    let (_, late) = tokio::task::block_in_place(|| world.device("op-late", "role:operator, site:berlin", &[]));
    let (late_client, mut late_rx) = SmqttClient::connect(late, &config).expect("connect");
    late_client.subscribe("plant/berlin/#", QoS::AtLeastOnce).await.expect("sub");
    let retained = late_rx.next_timeout(WAIT).await.expect("delivery").expect("retained opens");
    assert_eq!(retained.payload(), b"secret 23.5 C");
    assert!(retained.retain());
    common::finish(world).await;
}
