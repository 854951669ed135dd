//! The SDK tests' world, from `smqtt-testkit`: a real authority and a real broker (rumqttd in-process, or a
//! Mosquitto process) on loopback, and enrolled devices.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::net::SocketAddr;

use smqtt_client::{DeviceStore, Identity};
use smqtt_testkit::TestAuthority;

pub use smqtt_testkit::clients::{raw_client, raw_subscriber, subscribed};
pub use smqtt_testkit::mosquitto::Mosquitto;
pub use smqtt_testkit::now;
pub use smqtt_testkit::rumqttd::{start_rumqttd, start_rumqttd_v5};
pub use smqtt_testkit::wait::WAIT;

/// A test authority and the broker its devices talk to.
#[derive(Debug)]
pub struct World {
    /// The authority's URL.
    pub authority_url: String,
    /// The broker.
    pub broker: SocketAddr,
    authority: TestAuthority,
}

impl std::ops::Deref for World {
    type Target = TestAuthority;

    fn deref(&self) -> &TestAuthority {
        &self.authority
    }
}

impl World {
    /// A fresh authority (blocking: call off the async workers) for devices of `broker`.
    pub fn new(broker: SocketAddr) -> World {
        let authority = TestAuthority::new();
        World { authority_url: authority.authority_url.clone(), broker, authority }
    }

    /// Registers `id` and enrolls it into its own device store.
    pub fn device(&self, id: &str, attributes: &str, publish: &[&str]) -> (DeviceStore, Identity) {
        let enrolled = self.authority.device(id, attributes, publish);
        (enrolled.store(), enrolled.identity)
    }

    pub fn config_for(broker: SocketAddr) -> smqtt_client::ClientConfig {
        smqtt_testkit::clients::client_config(broker.port())
    }
}

/// Drops the world off the async workers (it stops the authority's server thread and waits for it).
pub async fn finish(world: World) {
    let _ = tokio::task::spawn_blocking(move || drop(world)).await;
}

/// Plain Mosquitto (anonymous clients allowed), logging subscriptions (`Mosquitto::wait_subscribed`).
pub fn start_mosquitto() -> Mosquitto {
    smqtt_testkit::mosquitto::MosquittoConfig::plain().log_subscriptions().start()
}
