//! In-process MQTT helpers: reading an SDK client's deliveries with bounds, skipping probes, and making sure
//! subscriptions are in place before the data flows.

use std::time::{Duration, Instant};

use smqtt_client::{Delivery, Messages};

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
pub use smqtt_testkit::clients::broker_accepts;
