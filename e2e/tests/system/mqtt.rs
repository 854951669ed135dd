//! In-process MQTT helpers: reading an SDK client's deliveries with bounds, skipping probes, and making sure
//! subscriptions are in place before the data flows.

use std::time::{Duration, Instant};

use smqtt_client::{Delivery, Identity, Messages};

/// The policy of the scenario's temperature readings.
pub const TEMP_POLICY: &str = "site:berlin and (role:operator or role:admin)";

/// Probes go here: their only purpose is to show that a subscription is active.
pub const PROBE_TOPIC: &str = "plant/berlin/probe";

/// Whether a delivery is about `topic` or a topic below it (for refusals: their text names it).
pub fn is_about(delivery: &Delivery, topic: &str) -> bool {
    match delivery {
        Ok(message) => message.topic().starts_with(topic),
        Err(error) => error.to_string().contains(topic),
    }
}

/// The next delivery that is not a probe, within `timeout`; panics naming `who` otherwise.
pub async fn next_data(rx: &mut Messages, who: &str, timeout: Duration) -> Delivery {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let delivery = rx.next_timeout(left).await.unwrap_or_else(|| panic!("{who}: no delivery within {timeout:?}"));
        if !is_about(&delivery, PROBE_TOPIC) {
            return delivery;
        }
    }
}

/// Whether a broker accepts a CONNECT from `identity` (username = device id, password = a fresh CONNECT token).
pub async fn broker_accepts(port: u16, identity: &Identity, client_id: &str) -> bool {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let token = smqtt_wire::ConnectToken::create(identity.signing_key(), identity.credential(), client_id, now)
        .expect("CONNECT token");
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
                Err(rumqttc::ConnectionError::ConnectionRefused(_)) => return false,
                // Some brokers close the socket instead of answering.
                Err(_) => return false,
            }
        }
    })
    .await
    .expect("an answer to CONNECT within 10 s");
    let _ = client.disconnect().await;
    answer
}
