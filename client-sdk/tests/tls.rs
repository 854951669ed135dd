//! TLS from the SDK and the `smqtt` CLI to the broker, over real TLS with CAs made by the test: smqtt-broker and
//! Mosquitto with TLS listeners, an impostor broker with another CA's certificate, wrong server names, mutual TLS.

mod common;
mod tls_support;

use std::path::Path;

use std::time::{Duration, Instant};

use rumqttc::QoS;
use smqtt_abe::Policy;
use smqtt_client::{ClientConfig, DeviceStore, Error, Identity, MqttVersion, SmqttClient, TlsConfig};
use tls_support::Ca;

const WAIT: Duration = Duration::from_secs(10);
/// A refused handshake is reported well before the 10 s anyone waits.
const QUICK: Duration = Duration::from_secs(5);

/// An authority and devices enrolled into their stores: (id, attributes, publish rights).
async fn world(specs: Vec<(&'static str, &'static str, Vec<&'static str>)>) -> (common::World, Vec<DeviceStore>) {
    tokio::task::spawn_blocking(move || {
        let world = common::World::new("127.0.0.1:1".parse().expect("addr"));
        let stores = specs.iter().map(|(id, attributes, publish)| world.device(id, attributes, publish).0).collect();
        (world, stores)
    })
    .await
    .expect("world")
}

fn identity(store: &DeviceStore) -> Identity {
    store.load().expect("load")
}

fn over_tls(host: &str, port: u16, tls: TlsConfig, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new(host, port);
    config.tls = Some(tls);
    config.client_id = Some(client_id.to_owned());
    config
}

fn trusting(ca: &Ca) -> TlsConfig {
    TlsConfig::ca_pem(ca.pem().as_bytes()).expect("CA")
}

fn operators() -> Policy {
    Policy::parse("role:operator").expect("policy")
}

/// Connects `publisher` and `subscriber` and has a message go from one to the other.
async fn round_trip(publisher: (Identity, &ClientConfig), subscriber: (Identity, &ClientConfig), text: &str) {
    let (sub, mut delivered) = SmqttClient::connect(subscriber.0, subscriber.1).expect("connect");
    let (publ, _) = SmqttClient::connect(publisher.0, publisher.1).expect("connect");
    sub.wait_connected(WAIT).await.expect("subscriber connects over TLS");
    publ.wait_connected(WAIT).await.expect("publisher connects over TLS");
    sub.subscribe("plant/#", smqtt_client::QoS::AtLeastOnce).await.expect("subscribe");
    tokio::time::sleep(Duration::from_millis(300)).await;
    publ.publish("plant/berlin/line1/temp", &operators(), smqtt_client::QoS::AtLeastOnce, false, text.as_bytes())
        .await
        .expect("publish");
    let message = delivered.next_timeout(WAIT).await.expect("delivery").expect("opens");
    assert_eq!(message.payload(), text.as_bytes());
    publ.disconnect().await;
    sub.disconnect().await;
}

/// `client` must fail its TLS handshake quickly, with a reason containing `expected`.
async fn refused(client: &SmqttClient, expected: &str) {
    let started = Instant::now();
    match client.wait_connected(WAIT).await {
        Err(Error::Tls { message: reason, .. }) => assert!(reason.contains(expected), "{reason}"),
        other => panic!("connected although it must not: {other:?}"),
    }
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
}

/// A raw subscriber on `#` (the attacker's or a spy's, on a plain listener); subscribed when this returns.
async fn spy(
    addr: std::net::SocketAddr,
    id: &str,
) -> (rumqttc::AsyncClient, tokio::sync::mpsc::Receiver<rumqttc::Publish>) {
    let (client, rx) = common::raw_client(addr, id).await;
    client.subscribe("#", QoS::AtLeastOnce).await.expect("spy subscribes");
    tokio::time::sleep(Duration::from_millis(400)).await;
    (client, rx)
}

/// Everything `rx` receives within `window`.
async fn collect(rx: &mut tokio::sync::mpsc::Receiver<rumqttc::Publish>, window: Duration) -> Vec<rumqttc::Publish> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(publish)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        seen.push(publish);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_through_smqtt_broker_over_tls_v311_and_v5() {
    let (world, stores) =
        world(vec![("tb-sensor", "role:sensor", vec!["plant/#"]), ("tb-op", "role:operator", vec![])]).await;
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("ca", dir.path());
    let server = ca.server("broker", &["localhost", "127.0.0.1"]);
    let broker = tls_support::smqtt_broker(&world.dir.path().join("authority/authority.pub"), dir.path(), &server);
    for (port, protocol) in
        [(broker.v4.expect("v4").port(), MqttVersion::V311), (broker.v5.expect("v5").port(), MqttVersion::V5)]
    {
        let mut publisher = over_tls("127.0.0.1", port, trusting(&ca), "tb-sensor");
        let mut subscriber = over_tls("localhost", port, trusting(&ca), "tb-op");
        publisher.protocol = protocol;
        subscriber.protocol = protocol;
        let text = format!("over TLS with {protocol:?}");
        round_trip((identity(&stores[0]), &publisher), (identity(&stores[1]), &subscriber), &text).await;
    }
    // The gate still checks the CONNECT: over TLS, a wrong password is refused at once, as a refusal.
    let mut config = over_tls("127.0.0.1", broker.v4.expect("v4").port(), trusting(&ca), "tb-op");
    config.password = Some("not a token".into());
    let (client, _) = SmqttClient::connect(identity(&stores[1]), &config).expect("connect");
    match client.wait_connected(WAIT).await {
        Err(Error::ConnectRefused { permanent: true, .. }) => {}
        other => panic!("{other:?}"),
    }
    common::finish(world).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_through_mosquitto_over_tls_by_name_and_by_override() {
    let (world, stores) =
        world(vec![("tm-sensor", "role:sensor", vec!["plant/#"]), ("tm-op", "role:operator", vec![])]).await;
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("ca", dir.path());
    let broker = tls_support::mosquitto(&ca, &ca.server("mosquitto", &["localhost"]), false);
    let (_spy, mut spied) = spy(broker.plain, "tm-spy").await;
    let port = broker.tls.port();
    // By name; and by address with the certificate's name given (it names no address).
    let publisher = over_tls("localhost", port, trusting(&ca), "tm-sensor");
    let subscriber = over_tls("127.0.0.1", port, trusting(&ca).with_server_name("localhost").expect("name"), "tm-op");
    round_trip((identity(&stores[0]), &publisher), (identity(&stores[1]), &subscriber), "secret 23.5 C").await;
    let seen = collect(&mut spied, Duration::from_millis(500)).await;
    assert_eq!(seen.len(), 1, "{}", broker.log());
    assert!(!seen[0].payload.windows(6).any(|w| w == b"secret"), "plaintext at the broker");
    common::finish(world).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_broker_is_refused_and_gets_nothing() {
    let (world, stores) =
        world(vec![("ti-sensor", "role:sensor", vec!["plant/#"]), ("ti-op", "role:operator", vec![])]).await;
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("ca", dir.path());
    let rogue = Ca::new("rogue", dir.path());
    // The impostor on loopback has a certificate for the right names, from another CA.
    let (tls, plain) = tls_support::impostor(&rogue.server("impostor", &["localhost", "127.0.0.1"]));
    let (attacker, mut spied) = spy(plain, "ti-attacker").await;
    let config = over_tls("127.0.0.1", tls.port(), trusting(&ca), "ti-sensor");
    let (publisher, _) = SmqttClient::connect(identity(&stores[0]), &config).expect("connect");
    let config = over_tls("localhost", tls.port(), trusting(&ca), "ti-op");
    let (subscriber, mut delivered) = SmqttClient::connect(identity(&stores[1]), &config).expect("connect");
    subscriber.subscribe("plant/#", smqtt_client::QoS::AtLeastOnce).await.expect("queued");
    refused(&publisher, "invalid peer certificate").await;
    refused(&subscriber, "invalid peer certificate").await;
    publisher
        .publish("plant/berlin/line1/temp", &operators(), smqtt_client::QoS::AtLeastOnce, false, b"secret")
        .await
        .expect("queued");
    // What the attacker injects reaches its own spy (the impostor works), never the SDK subscriber.
    attacker.publish("plant/berlin/line1/temp", QoS::AtLeastOnce, true, b"injected".to_vec()).await.expect("inject");
    let seen = collect(&mut spied, Duration::from_millis(1500)).await;
    let seen: Vec<String> =
        seen.iter().map(|p| String::from_utf8_lossy(&p.payload).chars().take(16).collect()).collect();
    assert_eq!(seen, ["injected"], "the impostor got more than the attacker's own message");
    assert!(delivered.try_next().is_none(), "the SDK subscriber took a message from the impostor");
    // The right CA given as a file: refused the same way.
    let from_file = over_tls("127.0.0.1", tls.port(), TlsConfig::ca_file(&ca.file).expect("ca"), "ti-file");
    let (client, _) = SmqttClient::connect(identity(&stores[0]), &from_file).expect("connect");
    refused(&client, "invalid peer certificate").await;
    common::finish(world).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_server_names_are_refused() {
    let (world, stores) = world(vec![("tn-sensor", "role:sensor", vec!["plant/#"])]).await;
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("ca", dir.path());
    let broker = tls_support::mosquitto(&ca, &ca.server("mosquitto", &["localhost"]), false);
    let (_spy, mut spied) = spy(broker.plain, "tn-spy").await;
    let port = broker.tls.port();
    let mut clients = Vec::new();
    for (i, (host, name)) in
        [("127.0.0.1", None), ("localhost", Some("broker.example")), ("127.0.0.1", Some("127.0.0.1"))]
            .into_iter()
            .enumerate()
    {
        let mut tls = trusting(&ca);
        if let Some(name) = name {
            tls = tls.with_server_name(name).expect("name");
        }
        let (client, _) = SmqttClient::connect(identity(&stores[0]), &over_tls(host, port, tls, &format!("tn-{i}")))
            .expect("connect");
        refused(&client, "not valid for name").await;
        client
            .publish("plant/berlin/line1/temp", &operators(), smqtt_client::QoS::AtLeastOnce, false, b"misdirected")
            .await
            .expect("queued");
        clients.push(client);
    }
    // The right name through the same broker: the spy sees exactly that one message.
    let tls = trusting(&ca).with_server_name("localhost").expect("name");
    let (client, _) =
        SmqttClient::connect(identity(&stores[0]), &over_tls("127.0.0.1", port, tls, "tn-ok")).expect("connect");
    client.wait_connected(WAIT).await.expect("the right name connects");
    client
        .publish("plant/berlin/line1/temp", &operators(), smqtt_client::QoS::AtLeastOnce, false, b"rightly sent")
        .await
        .expect("publish");
    assert_eq!(collect(&mut spied, Duration::from_millis(1500)).await.len(), 1, "{}", broker.log());
    common::finish(world).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_mosquitto_requiring_client_certificates() {
    let (world, stores) =
        world(vec![("tc-sensor", "role:sensor", vec!["plant/#"]), ("tc-op", "role:operator", vec![])]).await;
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("ca", dir.path());
    let rogue = Ca::new("rogue", dir.path());
    let broker = tls_support::mosquitto(&ca, &ca.server("mosquitto", &["localhost"]), true);
    let (_spy, mut spied) = spy(broker.plain, "tc-spy").await;
    let port = broker.tls.port();
    // Without a client certificate, and with one from another CA: refused, nothing published.
    let foreign = rogue.client("foreign", "tc-sensor");
    for (i, (tls, alert)) in [
        (trusting(&ca), "CertificateRequired"),
        (
            trusting(&ca).with_client_cert_pem(foreign.cert_pem.as_bytes(), foreign.key_pem.as_bytes()).expect("cert"),
            "UnknownCA",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let (client, _) =
            SmqttClient::connect(identity(&stores[0]), &over_tls("localhost", port, tls, &format!("tc-{i}")))
                .expect("connect");
        refused(&client, alert).await;
        client
            .publish("plant/berlin/line1/temp", &operators(), smqtt_client::QoS::AtLeastOnce, false, b"no cert")
            .await
            .expect("queued");
    }
    assert!(collect(&mut spied, Duration::from_millis(1000)).await.is_empty(), "{}", broker.log());
    // With certificates from the CA (files and PEM): accepted both ways.
    let sensor = ca.client("sensor", "tc-sensor");
    let op = ca.client("op", "tc-op");
    let publisher = over_tls(
        "localhost",
        port,
        trusting(&ca).with_client_cert_files(&sensor.cert, &sensor.key).expect("cert"),
        "tc-sensor",
    );
    let subscriber = over_tls(
        "localhost",
        port,
        trusting(&ca).with_client_cert_pem(op.cert_pem.as_bytes(), op.key_pem.as_bytes()).expect("cert"),
        "tc-op",
    );
    round_trip((identity(&stores[0]), &publisher), (identity(&stores[1]), &subscriber), "mutual").await;
    common::finish(world).await;
}

#[test]
fn bad_pem_is_refused_and_debug_output_holds_no_secrets() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("ca", dir.path());
    let client = ca.client("client", "device");
    let other = ca.client("other", "device");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let tls_error = |result: Result<TlsConfig, Error>| match result {
        Err(Error::Tls { message: reason, .. }) => reason,
        other => panic!("{other:?}"),
    };
    assert!(tls_error(TlsConfig::ca_file(&garbage)).contains("no PEM certificate"));
    assert!(tls_error(TlsConfig::ca_file(Path::new("/nonexistent/ca.pem"))).contains("/nonexistent/ca.pem"));
    assert!(tls_error(TlsConfig::ca_pem(b"")).contains("no PEM certificate"));
    // The cause is kept, not flattened into the message: the I/O error itself, as `source()`.
    let missing = TlsConfig::ca_file(Path::new("/nonexistent/ca.pem")).expect_err("a missing CA file");
    let cause = std::error::Error::source(&missing).and_then(|c| c.downcast_ref::<std::io::Error>());
    assert_eq!(cause.map(std::io::Error::kind), Some(std::io::ErrorKind::NotFound), "{missing:?}");
    // A key that is not the certificate's, a certificate file as key, a bad name.
    let tls = trusting(&ca);
    tls_error(tls.clone().with_client_cert_pem(client.cert_pem.as_bytes(), other.key_pem.as_bytes()));
    tls_error(tls.clone().with_client_cert_files(&client.cert, &client.cert));
    tls_error(tls.clone().with_server_name("not a name"));
    let mut config = ClientConfig::new("localhost", 8883);
    config.password = Some("hunter2-password".into());
    config.tls = Some(tls.with_client_cert_pem(client.cert_pem.as_bytes(), client.key_pem.as_bytes()).expect("cert"));
    let shown = format!("{config:?}");
    let key_body: String = client.key_pem.lines().nth(1).expect("key line").to_owned();
    assert!(!shown.contains("hunter2") && !shown.contains(&key_body) && !shown.contains("PRIVATE"), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");
}
