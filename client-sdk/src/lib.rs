//! The SMQTT client SDK: end-to-end confidential, signed, replay-safe MQTT over any broker.
//!
//! A publisher seals each payload under a CP-ABE policy (plus the authority's current epoch) into an SMQTT
//! envelope that rides in an ordinary PUBLISH payload; every subscriber whose attribute key satisfies the policy
//! opens it. One FAME encapsulation per (policy, epoch, rotation period): every message after that costs an AEAD
//! call and an Ed25519 signature. Subscribers check the publisher's authority-signed credential (epoch, validity,
//! publish rights for the topic), the signature over topic and envelope, and a per-session replay window, and
//! get each refusal as a typed [`MessageError`] while the stream goes on.
//!
//! ```no_run
//! use smqtt_client::{ClientConfig, DeviceStore, QoS, SmqttClient};
//! # async fn run() -> Result<(), smqtt_client::Error> {
//! let identity = DeviceStore::at("device-store".as_ref()).load()?;
//! let (client, mut messages) = SmqttClient::connect(identity, &ClientConfig::new("127.0.0.1", 1883))?;
//! client.subscribe("plant/berlin/#", QoS::AtLeastOnce).await?;
//! let policy = smqtt_abe::Policy::parse("site:berlin and (role:operator or role:admin)").expect("policy");
//! client.publish("plant/berlin/line1/temp", &policy, QoS::AtLeastOnce, false, b"23.5 C").await?;
//! while let Some(delivery) = messages.next().await {
//!     match delivery {
//!         Ok(message) => println!("{} from {}: {:?}", message.topic(), message.publisher(), message.payload()),
//!         Err(refused) => eprintln!("{refused}"),
//!     }
//! }
//! # Ok(()) }
//! ```

mod client;
mod delivery;
mod error;
mod store;

pub use client::{
    Acknowledgement, ClientConfig, Connection, ConnectionWatch, Messages, MqttVersion, SmqttClient, TlsConfig,
    MAX_PACKET_BYTES, MAX_PAYLOAD_BYTES,
};
pub use delivery::Delivery;
pub use error::{Cause, Error};
pub use smqtt_session::{
    policy_for_epoch, Identity, IdentityParts, Message, MessageError, Opener, OpenerLimits, QoS, Sealer, SessionPolicy,
    UnixTime,
};
pub use store::{DeviceStore, EnrollOptions, Followed};
