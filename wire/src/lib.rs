//! The wire formats SMQTT's key authority, client SDK and broker plugin share. No I/O, no async.
//!
//! * **Identities and topics.** [`DeviceId`] (a name safe as MQTT username, file name and URL segment),
//!   [`TopicFilter`] with MQTT 3.1.1 §4.7 matching, [`validate_topic`] for publish topics.
//! * **Signatures.** Ed25519 [`SigningKey`] / [`VerifyingKey`] with a domain label in every signature and strict
//!   verification; small-order and non-canonical keys are refused on decoding.
//! * **Credentials.** The authority signs a [`CredentialBody`] (device, device key, ABE attributes, publish
//!   filters, epoch, validity window). Decoding gives an [`UnverifiedCredential`] that exposes nothing but the
//!   device id until [`UnverifiedCredential::verify`] returns a [`VerifiedCredential`].
//! * **Key requests and delivery.** A device signs a [`KeyRequest`] carrying the public half of a
//!   [`ReplySecret`]; the authority answers with [`seal_to`] (X25519 + HKDF-SHA-256 + ChaCha20-Poly1305).
//!   Enrollment proofs sign [`enrollment_signing_bytes`].
//! * **CONNECT tokens.** [`ConnectToken`]: the MQTT password a device presents to a broker (its credential and
//!   a fresh signature over client id, username and time), checked offline with the authority's key.
//! * **Authority statements.** [`EpochBody`] / [`EpochStatement`]: the signed epoch (and FAME parameter set)
//!   devices and brokers follow; [`KeyDelivery`] binds a sealed key and credential to the request they answer;
//!   [`enrollment_token`] pins the authority key in the enrollment token.
//! * **Envelopes.** The MQTT PUBLISH payload: [`seal_envelope`] encrypts a message under a [`SessionKey`] (from
//!   an ABE [`DataKey`](smqtt_abe::DataKey)) with the topic bound as associated data, and signs it with the
//!   publisher's device key. [`ParsedEnvelope::parse`] checks structure only, so a broker plugin can
//!   [`verify_signature`](ParsedEnvelope::verify_signature) without ABE; subscribers [`open`](VerifiedEnvelope::open)
//!   only what verified (a [`VerifiedEnvelope`]) and feed sequence numbers to a [`ReplayWindow`].
//!
//! Formats are specified in `docs/wire.md`, with known-answer vectors in `docs/vectors/wire/`.
//!
//! ```
//! use smqtt_abe::AttributeSet;
//! use smqtt_wire::{
//!     seal_to, CredentialBody, DeviceId, Error, KeyRequest, ReplySecret, SigningKey, TopicFilter,
//!     UnverifiedCredential,
//! };
//!
//! let mut rng = rand_core::OsRng;
//! let authority = SigningKey::generate(&mut rng);
//! let device = SigningKey::generate(&mut rng);
//!
//! // The authority issues a credential…
//! let credential = CredentialBody {
//!     device_id: DeviceId::new("sensor-7")?,
//!     device_key: device.verifying_key(),
//!     attributes: AttributeSet::parse("role:sensor, site:berlin")
//!         .map_err(|e| Error::InvalidAttributes(e.to_string()))?,
//!     publish: vec![TopicFilter::new("plant/berlin/+/temperature")?],
//!     epoch: 1,
//!     not_before: 1_700_000_000,
//!     not_after: 1_700_086_400,
//! }
//! .sign(&authority)?;
//!
//! // …which the broker plugin checks before letting the device publish.
//! let unverified = UnverifiedCredential::from_bytes(&credential)?;
//! assert_eq!(unverified.device_id().as_str(), "sensor-7");
//! let verified = unverified.verify(&authority.verifying_key(), 1_700_000_100)?;
//! assert!(verified.may_publish("plant/berlin/hall-3/temperature"));
//! assert!(!verified.may_publish("plant/paris/hall-3/temperature"));
//! assert_eq!(
//!     UnverifiedCredential::from_bytes(&credential)?.verify(&authority.verifying_key(), 1_700_086_400).err(),
//!     Some(Error::Expired)
//! );
//!
//! // The device asks for its attribute key; the authority checks the request and seals the key to it.
//! let reply = ReplySecret::generate(&mut rng);
//! let request = KeyRequest {
//!     device_id: DeviceId::new("sensor-7")?,
//!     timestamp: 1_700_000_200,
//!     nonce: [7; 16],
//!     reply_key: reply.public(),
//! };
//! let signature = request.sign(&device);
//! request.verify(&verified.body().device_key, &signature)?;
//! let context = request.signing_bytes();
//! let sealed = seal_to(&request.reply_key, &context, b"<the ABE user key>", &mut rng)?;
//! assert_eq!(reply.open(&context, &sealed)?.as_slice(), b"<the ABE user key>");
//! # Ok::<(), Error>(())
//! ```
//!
//! # Security notes
//!
//! * **Verified vs unverified in the types** (rustls' approach): no credential field but the device id can be
//!   read before the authority's signature and the validity window are checked; the attribute parser only ever
//!   sees signed text.
//! * **Domain separation.** Every signature covers `u64be(len(domain)) ‖ domain ‖ message` with a domain per
//!   purpose ([`CREDENTIAL_DOMAIN`], [`KEY_REQUEST_DOMAIN`], [`ENROLL_DOMAIN`], [`ENVELOPE_DOMAIN`], [`CONNECT_DOMAIN`], [`EPOCH_DOMAIN`], [`KEY_DELIVERY_DOMAIN`]), so no
//!   signature transfers between purposes.
//! * **Strict Ed25519.** `verify_strict` (canonical `S` and `R`, no small-order `R` or key); [`VerifyingKey`]s
//!   are canonical and not of small order.
//! * **Key delivery** refuses low-order X25519 keys on both sides (the shared secret would be all zero), uses
//!   each derived key for a single message (hence the fixed nonce), and binds the caller's context as AAD and
//!   HKDF info.
//! * **Secrets** ([`SigningKey`], [`ReplySecret`], [`SessionKey`], delivered and opened plaintexts, derived keys) zeroize on drop, print
//!   redacted and compare in constant time. Stack copies made by the dalek crates during an operation cannot
//!   be zeroized. Ed25519 signing and X25519 are constant time in the dalek implementations.
//! * **Envelopes** take their AEAD nonce from the sequence number, so a publisher MUST NOT reuse a sequence
//!   number under one session key (the client SDK starts every session with a fresh FAME encapsulation). The
//!   topic is not inside the envelope (MQTT carries it): the signature and, independently, the AEAD's
//!   associated data bind it, so an envelope moved to another topic fails both.
//! * **Randomness** is supplied by the caller (`rand_core` 0.6 `RngCore + CryptoRng`).
//! * **Bounds.** Every decoder checks lengths against [`limits`] before reading; nothing panics on untrusted
//!   input (property-tested and fuzzed: `wire/fuzz/`).
#![warn(missing_docs)]

mod batch;
mod connect;
mod credential;
mod delivery;
mod encoding;
mod envelope;
mod error;
mod ids;
pub mod limits;
mod replay;
mod request;
mod sign;
mod statement;
mod time;
mod topic;
mod verified;

pub use batch::{seal_envelope_batch, BatchItem, BatchRoots, ENVELOPE_BATCH_DOMAIN, MAX_BATCH};
pub use connect::{ConnectToken, CONNECT_DOMAIN, CONNECT_TOKEN_PREFIX};
pub use credential::{Credential, CredentialBody, UnverifiedCredential, VerifiedCredential, CREDENTIAL_DOMAIN};
pub use delivery::{seal_to, ReplySecret, DELIVERY_OVERHEAD, KEY_DELIVERY_LABEL};
pub use encoding::{envelope_overhead, KIND_CREDENTIAL, KIND_ENVELOPE, MAGIC, VERSION};
pub use envelope::{
    claimed_publisher, key_id_for, seal_envelope, seal_envelope_unsigned, EnvelopeParts, ParsedEnvelope, SessionKey,
    ENVELOPE_AEAD_LABEL, ENVELOPE_DOMAIN, ENVELOPE_KEY_ID_LABEL,
};
pub use error::{Error, Result};
pub use ids::DeviceId;
pub use limits::MAX_PAYLOAD;
pub use replay::{ReplayWindow, REPLAY_WINDOW};
pub use request::{enrollment_signing_bytes, KeyRequest, ENROLL_DOMAIN, KEY_REQUEST_DOMAIN};
pub use sign::{SigningKey, VerifyingKey};
pub use statement::{
    enrollment_token, enrollment_token_authority, EpochBody, EpochStatement, KeyDelivery, VerifiedEpoch,
    ENROLL_TOKEN_PREFIX, EPOCH_DOMAIN, EPOCH_STATEMENT_PREFIX, KEY_DELIVERY_DOMAIN,
};
pub use time::UnixTime;
pub use topic::{validate_topic, TopicFilter};
pub use verified::VerifiedEnvelope;
