//! The SMQTT protocol engine, without I/O: what a publisher and a subscriber do with bytes.
//!
//! * [`Sealer`] — one FAME encapsulation per (policy, epoch, rotation period), then every message an AEAD call
//!   and a signature ([`SessionPolicy`] says when sessions rotate and capsules ride along).
//! * [`Opener`] — a chain of typed steps: parse → admit (retain mark, age) → authenticate (credential,
//!   signature or accepted unsigned, rights: a [`VerifiedEnvelope`](smqtt_wire::VerifiedEnvelope)) → session
//!   key (cached, or decapsulated within the publisher's budget) → open → replay window → [`Message`]. Every
//!   refusal is a typed [`MessageError`].
//! * [`Identity`] — the pieces of a device identity, checked to belong together; with the `store` feature,
//!   [`IdentityStore`] loads and saves them in a directory (file I/O only).
//!
//! No sockets, no runtime, no clock: time ([`UnixTime`]) and randomness are inputs, so the SDK, the broker's
//! gate and the bindings run the same code, and tests drive it at any time they like.
//!
//! ```
//! use std::sync::Arc;
//! use smqtt_abe::{setup, AttributeSet, Policy};
//! use smqtt_session::{MessageError, Opener, QoS, Sealer, SessionPolicy};
//! use smqtt_wire::{CredentialBody, DeviceId, SigningKey, TopicFilter, UnixTime};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = rand_core::OsRng;
//! let now = UnixTime::from_secs(1_800_000_000);
//! // The authority's side, for the example: FAME parameters, a signing key, a credential, an attribute key.
//! let (public_key, master_key) = setup(&mut rng)?;
//! let public_key = Arc::new(public_key);
//! let authority = SigningKey::generate(&mut rng);
//! let device_key = SigningKey::generate(&mut rng);
//! let credential = CredentialBody {
//!     device_id: DeviceId::new("sensor-7")?,
//!     device_key: device_key.verifying_key(),
//!     attributes: AttributeSet::parse("role:sensor")?,
//!     publish: vec![TopicFilter::new("plant/#")?],
//!     epoch: 1,
//!     not_before: now.as_secs() - 60,
//!     not_after: now.as_secs() + 3600,
//! }
//! .sign(&authority)?;
//! let reader = master_key.keygen(&public_key, &AttributeSet::parse("role:operator, epoch:1")?, &mut rng)?;
//!
//! let mut sealer =
//!     Sealer::new(DeviceId::new("sensor-7")?, device_key, credential, Arc::clone(&public_key), 1, SessionPolicy::default());
//! let mut opener = Opener::new(public_key, reader, authority.verifying_key(), 1);
//! let policy = Policy::parse("role:operator")?;
//! let sealed = sealer.seal("plant/hall-3/temp", &policy, b"21.5", false, now, &mut rng)?;
//! let message = opener.open("plant/hall-3/temp", &sealed, QoS::AtLeastOnce, false, now)?;
//! assert_eq!((message.payload(), message.publisher()), (&b"21.5"[..], "sensor-7"));
//! // The same envelope again is a replay; moved to another topic it fails its signature.
//! assert!(matches!(opener.open("plant/hall-3/temp", &sealed, QoS::AtLeastOnce, false, now), Err(MessageError::Replay { .. })));
//! assert!(matches!(opener.open("plant/hall-4/temp", &sealed, QoS::AtLeastOnce, false, now), Err(MessageError::BadSignature { .. })));
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod error;
mod identity;
mod limits;
mod message;
mod opener;
mod sealer;
#[cfg(feature = "store")]
mod store;

pub use error::{Error, MessageError, SealFailure};
pub use identity::{Identity, IdentityParts, IdentityPieces};
pub use limits::OpenerLimits;
pub use message::{InvalidQoS, Message, QoS};
pub use opener::Opener;
pub use sealer::{policy_for_epoch, Outgoing, Sealer, SessionPolicy};
pub use smqtt_wire::UnixTime;
#[cfg(feature = "store")]
pub use store::{write_atomic, IdentityStore, StoreFile};
