//! MQTT clients for tests: plain rumqttc clients (no SMQTT) that report what they see — for attacks and for
//! looking at what a broker carries — and helpers around the SDK's `SmqttClient` that wait on acknowledgements
//! instead of sleeping.

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5 as mqtt5;
use tokio::sync::mpsc::Receiver;

use crate::wait::WAIT;

/// The SDK's settings for a broker on `127.0.0.1:<port>`.
pub fn client_config(port: u16) -> smqtt_client::ClientConfig {
    smqtt_client::ClientConfig::new("127.0.0.1", port)
}

/// Subscribes `client` to `filter` and waits for the broker's SUBACK: the subscription is in place.
pub async fn subscribed(client: &smqtt_client::SmqttClient, filter: &str, qos: smqtt_client::QoS) {
    let ack = client.subscribe_acknowledged(filter, qos).await.unwrap_or_else(|e| panic!("subscribe {filter}: {e}"));
    ack.wait(WAIT).await.unwrap_or_else(|e| panic!("no SUBACK for {filter} within {WAIT:?}: {e}"));
}

/// A plain MQTT 3.1.1 client that forwards the PUBLISHes it receives, and keeps reconnecting after errors.
pub async fn raw_client(broker: SocketAddr, id: &str) -> (rumqttc::AsyncClient, Receiver<rumqttc::Publish>) {
    let (client, publishes, _subacks) = raw_client_acked(broker, id);
    (client, publishes)
}

/// [`raw_client`], subscribed to `filter` at `qos` once this returns (its SUBACK arrived).
pub async fn raw_subscriber(
    broker: SocketAddr,
    id: &str,
    filter: &str,
    qos: rumqttc::QoS,
) -> (rumqttc::AsyncClient, Receiver<rumqttc::Publish>) {
    let (client, publishes, mut subacks) = raw_client_acked(broker, id);
    client.subscribe(filter, qos).await.unwrap_or_else(|e| panic!("{id}: subscribe {filter}: {e}"));
    tokio::time::timeout(WAIT, subacks.recv())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("{id}: no SUBACK for {filter} within {WAIT:?}"));
    (client, publishes)
}

fn raw_client_acked(broker: SocketAddr, id: &str) -> (rumqttc::AsyncClient, Receiver<rumqttc::Publish>, Receiver<()>) {
    let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", broker.port());
    options.set_max_packet_size(1 << 20, 1 << 20);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let (ack_tx, ack_rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    if tx.send(p).await.is_err() {
                        return;
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    let _ = ack_tx.try_send(());
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    (client, rx, ack_rx)
}

/// What a raw v3.1.1 client saw.
#[derive(Debug)]
pub enum Seen4 {
    /// A CONNACK accepting the connection (or with another code that did not close it).
    ConnAck(rumqttc::ConnectReturnCode),
    /// A PUBLISH.
    Publish(rumqttc::Publish),
    /// A SUBACK.
    SubAck(rumqttc::SubAck),
    /// A PUBACK for this packet id.
    PubAck(u16),
    /// The CONNECT was refused with this code; the client stopped.
    Refused(rumqttc::ConnectReturnCode),
    /// The connection ended with this error; the client stopped.
    Closed(String),
}

/// A raw MQTT 3.1.1 client (no SMQTT); `login` = (username, password). It does not reconnect after an error.
pub async fn raw4(
    addr: SocketAddr,
    id: &str,
    login: Option<(&str, &str)>,
    will: Option<rumqttc::LastWill>,
) -> (rumqttc::AsyncClient, Receiver<Seen4>) {
    let mut options = options4(addr, id, login);
    if let Some(will) = will {
        options.set_last_will(will);
    }
    raw4_with(options)
}

/// The options [`raw4`] uses (packets up to 1 MiB, keep-alive 30 s), to adjust before [`raw4_with`].
pub fn options4(addr: SocketAddr, id: &str, login: Option<(&str, &str)>) -> rumqttc::MqttOptions {
    let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", addr.port());
    options.set_max_packet_size(1 << 20, 1 << 20);
    options.set_keep_alive(Duration::from_secs(30));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    options
}

/// A raw MQTT 3.1.1 client with `options` (call from inside the tokio runtime).
pub fn raw4_with(options: rumqttc::MqttOptions) -> (rumqttc::AsyncClient, Receiver<Seen4>) {
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let seen = match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => Seen4::ConnAck(a.code),
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => Seen4::Publish(p),
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(s))) => Seen4::SubAck(s),
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(a))) => Seen4::PubAck(a.pkid),
                Ok(_) => continue,
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                    let _ = tx.send(Seen4::Refused(code)).await;
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Seen4::Closed(e.to_string())).await;
                    return;
                }
            };
            if tx.send(seen).await.is_err() {
                return;
            }
        }
    });
    (client, rx)
}

/// What a raw v5 client saw.
#[derive(Debug)]
pub enum Seen5 {
    /// A CONNACK.
    ConnAck(mqtt5::ConnectReturnCode),
    /// A PUBLISH.
    Publish(mqtt5::Publish),
    /// A SUBACK.
    SubAck(mqtt5::SubAck),
    /// A PUBACK.
    PubAck(mqtt5::PubAck),
    /// The assigned client identifier of the CONNACK just seen (only when the CONNACK carries one).
    Assigned(String),
    /// The CONNECT was refused with this code; the client stopped.
    Refused(mqtt5::ConnectReturnCode),
    /// The connection ended with this error; the client stopped.
    Closed(String),
}

/// A raw MQTT 5 client; `login` = (username, password). It does not reconnect after an error.
pub async fn raw5(
    addr: SocketAddr,
    id: &str,
    login: Option<(&str, &str)>,
) -> (rumqttc::v5::AsyncClient, Receiver<Seen5>) {
    use rumqttc::v5::{ConnectionError, Event};
    let mut options = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", addr.port());
    options.set_max_packet_size(Some(1 << 20));
    options.set_keep_alive(Duration::from_secs(30));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 64);
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let seen = match eventloop.poll().await {
                Ok(Event::Incoming(mqtt5::Packet::ConnAck(a))) => {
                    let assigned = a.properties.and_then(|p| p.assigned_client_identifier);
                    if tx.send(Seen5::ConnAck(a.code)).await.is_err() {
                        return;
                    }
                    match assigned {
                        Some(id) => Seen5::Assigned(id),
                        None => continue,
                    }
                }
                Ok(Event::Incoming(mqtt5::Packet::Publish(p))) => Seen5::Publish(p),
                Ok(Event::Incoming(mqtt5::Packet::SubAck(s))) => Seen5::SubAck(s),
                Ok(Event::Incoming(mqtt5::Packet::PubAck(a))) => Seen5::PubAck(a),
                Ok(_) => continue,
                Err(ConnectionError::ConnectionRefused(code)) => {
                    let _ = tx.send(Seen5::Refused(code)).await;
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Seen5::Closed(e.to_string())).await;
                    return;
                }
            };
            if tx.send(seen).await.is_err() {
                return;
            }
        }
    });
    (client, rx)
}

/// Whether a broker accepts a CONNECT from `identity` (username = device id, password = a fresh CONNECT token)
/// as `client_id`: one raw v3.1.1 connection, answered within 10 s (a broker that closes the socket instead of
/// answering refuses).
pub async fn broker_accepts(port: u16, identity: &smqtt_client::Identity, client_id: &str) -> bool {
    let token = crate::credentials::token(identity, client_id);
    let mut options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_credentials(identity.device_id().as_str(), token);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 8);
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                    return ack.code == rumqttc::ConnectReturnCode::Success
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .expect("an answer to CONNECT within 10 s");
    let _ = client.disconnect().await;
    answer
}
