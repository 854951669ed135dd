//! The crate's bounds. Every decoder checks them before allocating; every encoder refuses to exceed them.

/// Bytes of a [`DeviceId`](crate::DeviceId).
pub const MAX_DEVICE_ID_LEN: usize = 64;
/// Bytes of a topic name or a [`TopicFilter`](crate::TopicFilter). MQTT allows 65 535; nothing in SMQTT needs
/// more than this, and the bound keeps credentials small.
pub const MAX_TOPIC_LEN: usize = 1024;
/// Publish filters in one credential.
pub const MAX_PUBLISH_FILTERS: usize = 64;
/// Bytes of an encoded, signed credential.
pub const MAX_CREDENTIAL_LEN: usize = 16 * 1024;
/// Bytes of a CONNECT token (`docs/wire.md` §9): room for a credential of about 6 KiB. Checked before decoding.
pub const MAX_CONNECT_TOKEN_LEN: usize = 8 * 1024;
/// Bytes of a key delivery's plaintext (a sealed delivery is 48 bytes longer).
pub const MAX_DELIVERY_PLAINTEXT: usize = 1024 * 1024;
/// Bytes of a key delivery's context.
pub const MAX_DELIVERY_CONTEXT: usize = 64 * 1024;
/// Bytes of an envelope's plaintext: the MQTT message a publisher seals (the ciphertext is 16 bytes longer).
pub const MAX_PAYLOAD: usize = 256 * 1024;
/// Bytes of the ABE capsule an envelope may carry (a capsule at `smqtt-abe`'s 256-row bound is ≈ 53 KiB).
pub const MAX_CAPSULE_LEN: usize = 256 * 1024;
/// Bytes of a whole envelope: every field at its bound (a longest publisher id, a capsule, a credential, a
/// payload and a batch signature's audit path at their bounds). Decoders refuse longer input before reading it.
pub const MAX_ENVELOPE_LEN: usize = crate::encoding::envelope_overhead(MAX_DEVICE_ID_LEN)
    + 4
    + MAX_CAPSULE_LEN
    + 2
    + MAX_CREDENTIAL_LEN
    + MAX_PAYLOAD
    + crate::batch::MAX_BATCH_TRAILER_LEN;
