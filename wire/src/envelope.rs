//! The SMQTT envelope: the payload of an MQTT PUBLISH (`docs/wire.md` §6).
//!
//! A publisher encapsulates a [`DataKey`] under an ABE policy once per session, and seals every message of the
//! session under it: ChaCha20-Poly1305 with a key derived from the data key, the nonce taken from the message's
//! sequence number, and the topic bound as associated data. The publisher's device key signs the whole envelope
//! and the topic. The capsule (so that subscribers can recover the data key) and the publisher's credential (so
//! that they can check the device key) ride along on some messages, as the publisher chooses.
//!
//! ```text
//! key_id = SHA-256("smqtt/envelope/v1/key-id" ‖ capsule)[..16]
//! key    = HKDF-SHA-256(ikm = data key, salt = key_id, info = "smqtt/envelope/v1/aead", length = 32)
//! nonce  = 0x00000000 ‖ u64(sequence)
//! aad    = u16(len(topic)) ‖ topic ‖ every envelope byte before the ciphertext (its length field included)
//! sig    = Sign(device key, "smqtt/envelope/v1", u16(len(topic)) ‖ topic ‖ every envelope byte before it)
//! ```
//!
//! [`ParsedEnvelope::parse`] checks structure only (and that an included capsule hashes to the key id), so a
//! broker plugin can check the signature without touching ABE; [`VerifiedEnvelope::open`](crate::VerifiedEnvelope::open)
//! decrypts, and only a verified (or deliberately accepted unsigned) envelope has it.

use core::fmt::{self, Debug, Formatter};

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use smqtt_abe::DataKey;
use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::batch::{path_len, MAX_BATCH};
use crate::encoding::{
    envelope_overhead, header, Reader, KEY_ID_LEN, KIND_ENVELOPE, MAGIC, SIGNATURE_LEN, TAG_LEN, VERSION,
};
use crate::error::{malformed, Error, Result};
use crate::ids::DeviceId;
use crate::limits::{MAX_CAPSULE_LEN, MAX_CREDENTIAL_LEN, MAX_DEVICE_ID_LEN, MAX_ENVELOPE_LEN, MAX_PAYLOAD};
use crate::sign::SigningKey;
use crate::topic::validate_topic;

/// The signature domain of envelopes.
pub const ENVELOPE_DOMAIN: &[u8] = b"smqtt/envelope/v1";
/// The prefix hashed with a capsule to give its key id.
pub const ENVELOPE_KEY_ID_LABEL: &[u8] = b"smqtt/envelope/v1/key-id";
/// The HKDF `info` of an envelope's AEAD key.
pub const ENVELOPE_AEAD_LABEL: &[u8] = b"smqtt/envelope/v1/aead";

const WHAT: &str = "envelope";
/// Flag bit: a capsule follows the timestamp.
const FLAG_CAPSULE: u8 = 0x01;
/// Flag bit: a credential follows the capsule (or the timestamp).
const FLAG_CREDENTIAL: u8 = 0x02;
/// Flag bit: no signature follows the ciphertext (session-key authentication only, §6.5).
const FLAG_UNSIGNED: u8 = 0x04;
/// Flag bit: sealed for retained publication (the MQTT retain flag is not authenticated; this bit is, §6.4).
const FLAG_RETAINED: u8 = 0x08;
/// Flag bit: the signature is a batch signature over a Merkle root, with this envelope's audit path (§6.6).
pub(crate) const FLAG_BATCH: u8 = 0x10;
/// The key id of the session whose capsule encodes to `capsule_bytes`: the first 16 bytes of
/// `SHA-256("smqtt/envelope/v1/key-id" ‖ capsule_bytes)`.
pub fn key_id_for(capsule_bytes: &[u8]) -> [u8; 16] {
    let digest = Sha256::new().chain_update(ENVELOPE_KEY_ID_LABEL).chain_update(capsule_bytes).finalize();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

/// A session key: the AEAD key derived from a [`DataKey`], with the key id of the capsule that carries it.
///
/// Zeroized on drop, printed as `SessionKey { key_id: <hex>, key: <redacted> }`, compared in constant time.
/// The derived key is never exported.
#[derive(Clone)]
pub struct SessionKey {
    key_id: [u8; KEY_ID_LEN],
    key: Zeroizing<[u8; 32]>,
}

impl SessionKey {
    /// The session key of `data_key`, which `capsule_bytes` (the encoding of the capsule `smqtt-abe` returned
    /// with it, or received with it) carries.
    pub fn new(data_key: &DataKey, capsule_bytes: &[u8]) -> SessionKey {
        SessionKey::derive(data_key.expose_secret(), key_id_for(capsule_bytes))
    }

    /// A session key from raw data key bytes and a key id, for test vectors and fuzzing only (feature `hazmat`):
    /// a real session key always comes from a FAME encapsulation ([`SessionKey::new`]).
    #[cfg(feature = "hazmat")]
    pub fn from_raw_for_tests(data_key: &[u8; 32], key_id: [u8; 16]) -> SessionKey {
        SessionKey::derive(data_key, key_id)
    }

    fn derive(data_key: &[u8; 32], key_id: [u8; KEY_ID_LEN]) -> SessionKey {
        let hk = Hkdf::<Sha256>::new(Some(&key_id), data_key);
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA-256's 8160-byte output bound, the only failure of `expand`.
        if hk.expand(ENVELOPE_AEAD_LABEL, key.as_mut()).is_err() {
            unreachable!("HKDF-SHA-256 output of 32 bytes");
        }
        SessionKey { key_id, key }
    }

    /// The key id envelopes sealed under this key carry.
    pub fn key_id(&self) -> [u8; 16] {
        self.key_id
    }

    pub(crate) fn cipher(&self) -> Result<ChaCha20Poly1305> {
        ChaCha20Poly1305::new_from_slice(self.key.as_ref()).map_err(|_| Error::DecryptionFailed)
    }
}

impl Debug for SessionKey {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey {{ key_id: {}, key: <redacted> }}", hex::encode(self.key_id))
    }
}

impl ConstantTimeEq for SessionKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.key_id.ct_eq(&other.key_id) & self.key.as_ref().ct_eq(other.key.as_ref())
    }
}

impl PartialEq for SessionKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for SessionKey {}

/// What a publisher seals besides the plaintext.
#[derive(Clone, Copy, Debug)]
pub struct EnvelopeParts<'a> {
    /// The publishing device (its key signs the envelope).
    pub publisher: &'a DeviceId,
    /// The message's number in its session. It is the AEAD nonce: the publisher MUST NOT use one sequence
    /// number twice under one session key, whatever the topic.
    pub sequence: u64,
    /// When the message was sealed, unix milliseconds.
    pub timestamp_ms: u64,
    /// The encoded `smqtt_abe::Capsule` of the session, to let subscribers recover the key; it must hash to the
    /// session key's key id. 1 to [`MAX_CAPSULE_LEN`] bytes.
    pub capsule: Option<&'a [u8]>,
    /// The publisher's credential (opaque here), 1 to [`MAX_CREDENTIAL_LEN`] bytes.
    pub credential: Option<&'a [u8]>,
    /// Sealed to be published with the MQTT retain flag: the mark is under the AEAD and the signature, so a
    /// live message cannot be passed off as retained (which receivers exempt from nothing, §6.4). Only signed
    /// envelopes may carry it.
    pub retained: bool,
}

/// Encrypts `plaintext` for `topic` under `key` and signs the result with the publisher's `signer`: returns the
/// MQTT payload.
///
/// # Errors
/// [`Error::InvalidTopic`] for a topic that may not be published to; [`Error::LimitExceeded`] for a plaintext
/// beyond [`MAX_PAYLOAD`], a capsule beyond [`MAX_CAPSULE_LEN`] or a credential beyond [`MAX_CREDENTIAL_LEN`];
/// [`Error::Malformed`] for an empty capsule or credential, or a capsule that does not hash to `key`'s key id.
///
/// ```
/// use smqtt_abe::{setup, AttributeSet, Policy};
/// use smqtt_wire::{seal_envelope, DeviceId, EnvelopeParts, ParsedEnvelope, ReplayWindow, SessionKey, SigningKey};
///
/// let mut rng = rand_core::OsRng;
/// let (pk, msk) = setup(&mut rng)?;
/// let (data_key, capsule) = pk.encapsulate(&Policy::parse("role:operator")?, &mut rng)?;
/// let capsule = capsule.to_bytes();
/// let device = SigningKey::generate(&mut rng);
/// let publisher = DeviceId::new("sensor-7")?;
///
/// // The publisher seals; the first message of a session carries the capsule.
/// let key = SessionKey::new(&data_key, &capsule);
/// let parts = EnvelopeParts { publisher: &publisher, sequence: 0, timestamp_ms: 1_700_000_000_000, capsule: Some(&capsule), credential: None, retained: false };
/// let payload = seal_envelope("plant/hall-3/temperature", &parts, &key, b"21.5", &device)?;
///
/// // A subscriber checks the signature, recovers the key from the capsule, opens, and checks for replays.
/// let envelope = ParsedEnvelope::parse(&payload)?;
/// let verified = envelope.verify_signature("plant/hall-3/temperature", &device.verifying_key())?;
/// let user_key = msk.keygen(&pk, &AttributeSet::parse("role:operator")?, &mut rng)?;
/// let received = smqtt_abe::Capsule::from_bytes(envelope.capsule().unwrap_or_default())?;
/// let key = SessionKey::new(&user_key.decapsulate(&pk, &received)?, envelope.capsule().unwrap_or_default());
/// assert_eq!(verified.open(&key)?.as_slice(), b"21.5");
/// let mut replay = ReplayWindow::new(1024);
/// replay.check_and_record(envelope.publisher(), envelope.key_id(), envelope.sequence())?;
/// assert!(replay.check_and_record(envelope.publisher(), envelope.key_id(), envelope.sequence()).is_err());
/// // The same envelope on another topic fails.
/// assert!(envelope.verify_signature("plant/hall-4/temperature", &device.verifying_key()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn seal_envelope(
    topic: &str,
    parts: &EnvelopeParts<'_>,
    key: &SessionKey,
    plaintext: &[u8],
    signer: &SigningKey,
) -> Result<Vec<u8>> {
    seal(topic, parts, key, plaintext, Some(signer))
}

/// [`seal_envelope`] without the signature: an envelope authenticated by the session key alone (`docs/wire.md`
/// §6.5), 64 bytes shorter and without the ≈ 20 µs of signing and ≈ 50 µs of verifying per message.
///
/// The AEAD proves only that the envelope was sealed by *a holder of the session key* — the publisher or any
/// subscriber whose attributes satisfy the policy. Receivers accept one only for a (publisher, key id) that a
/// **signed** envelope of the same publisher introduced (the capsule always travels signed), and a broker that
/// enforces SMQTT accepts one only from the connection authenticated as its publisher. Use it where that group
/// authentication is enough and the signature's cost is not.
///
/// # Errors
/// As [`seal_envelope`], and [`Error::Malformed`] if `parts` carries a capsule or a credential: those travel
/// only in signed envelopes.
pub fn seal_envelope_unsigned(
    topic: &str,
    parts: &EnvelopeParts<'_>,
    key: &SessionKey,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    if parts.capsule.is_some() || parts.credential.is_some() {
        return Err(malformed(WHAT, "an unsigned envelope cannot carry a capsule or a credential"));
    }
    if parts.retained {
        return Err(malformed(WHAT, "an unsigned envelope cannot be sealed as retained"));
    }
    seal(topic, parts, key, plaintext, None)
}

fn seal(
    topic: &str,
    parts: &EnvelopeParts<'_>,
    key: &SessionKey,
    plaintext: &[u8],
    signer: Option<&SigningKey>,
) -> Result<Vec<u8>> {
    let flags = if signer.is_none() { FLAG_UNSIGNED } else { 0 };
    let (mut buf, prefix_len) = seal_body(topic, parts, key, plaintext, flags)?;
    let signature = signer.map(|signer| signer.sign(ENVELOPE_DOMAIN, &buf));
    buf.drain(..prefix_len);
    if let Some(signature) = signature {
        buf.extend_from_slice(&signature);
    }
    Ok(buf)
}

/// The envelope up to and including its ciphertext, after `u16(len(topic)) ‖ topic` (the signed bytes), and the
/// length of that prefix. `flags` adds [`FLAG_UNSIGNED`] or [`FLAG_BATCH`] to what `parts` implies.
pub(crate) fn seal_body(
    topic: &str,
    parts: &EnvelopeParts<'_>,
    key: &SessionKey,
    plaintext: &[u8],
    mut flags: u8,
) -> Result<(Vec<u8>, usize)> {
    validate_topic(topic)?;
    if plaintext.len() > MAX_PAYLOAD {
        return Err(Error::LimitExceeded { what: "envelope payload bytes", limit: MAX_PAYLOAD });
    }
    if parts.retained {
        flags |= FLAG_RETAINED;
    }
    if let Some(capsule) = parts.capsule {
        if capsule.len() > MAX_CAPSULE_LEN {
            return Err(Error::LimitExceeded { what: "capsule bytes", limit: MAX_CAPSULE_LEN });
        }
        if capsule.is_empty() {
            return Err(malformed(WHAT, "empty capsule"));
        }
        if key_id_for(capsule) != key.key_id {
            return Err(malformed(WHAT, "capsule does not match the key id"));
        }
        flags |= FLAG_CAPSULE;
    }
    if let Some(credential) = parts.credential {
        if credential.len() > MAX_CREDENTIAL_LEN {
            return Err(Error::LimitExceeded { what: "credential bytes", limit: MAX_CREDENTIAL_LEN });
        }
        if credential.is_empty() {
            return Err(malformed(WHAT, "empty credential"));
        }
        flags |= FLAG_CREDENTIAL;
    }

    // The buffer starts with the topic prefix: it is then the AAD, and after the ciphertext the signed message.
    let prefix_len = 2 + topic.len();
    let mut buf = Vec::with_capacity(
        prefix_len
            + envelope_overhead(parts.publisher.as_str().len())
            + parts.capsule.map_or(0, |c| 4 + c.len())
            + parts.credential.map_or(0, |c| 2 + c.len())
            + plaintext.len(),
    );
    put_topic_prefix(&mut buf, topic);
    buf.extend_from_slice(&header(KIND_ENVELOPE));
    buf.push(flags);
    let id = parts.publisher.as_str().as_bytes();
    // DeviceId guarantees 1..=64 bytes.
    buf.push(u8::try_from(id.len()).map_err(|_| Error::InvalidDeviceId("longer than 64 bytes"))?);
    buf.extend_from_slice(id);
    buf.extend_from_slice(&key.key_id);
    buf.extend_from_slice(&parts.sequence.to_be_bytes());
    buf.extend_from_slice(&parts.timestamp_ms.to_be_bytes());
    if let Some(capsule) = parts.capsule {
        // At most MAX_CAPSULE_LEN (256 KiB), checked above.
        buf.extend_from_slice(&u32::try_from(capsule.len()).unwrap_or(u32::MAX).to_be_bytes());
        buf.extend_from_slice(capsule);
    }
    if let Some(credential) = parts.credential {
        // At most MAX_CREDENTIAL_LEN (16 KiB), checked above.
        buf.extend_from_slice(&u16::try_from(credential.len()).unwrap_or(u16::MAX).to_be_bytes());
        buf.extend_from_slice(credential);
    }
    // At most MAX_PAYLOAD + 16 bytes, checked above.
    buf.extend_from_slice(&u32::try_from(plaintext.len() + TAG_LEN).unwrap_or(u32::MAX).to_be_bytes());

    // Encrypted in place after the AAD: no second buffer, no copy.
    let aad_len = buf.len();
    buf.extend_from_slice(plaintext);
    let (aad, body) = buf.split_at_mut(aad_len);
    let tag = key
        .cipher()?
        .encrypt_inout_detached(&nonce(parts.sequence), aad, body.into())
        .map_err(|_| Error::LimitExceeded { what: "envelope payload bytes", limit: MAX_PAYLOAD })?;
    buf.extend_from_slice(&tag);
    Ok((buf, prefix_len))
}

/// Appends `u16(len(topic)) ‖ topic` for a topic [`validate_topic`] accepted (at most 1024 bytes).
pub(crate) fn put_topic_prefix(out: &mut Vec<u8>, topic: &str) {
    out.extend_from_slice(&u16::try_from(topic.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
}

/// `0x00000000 ‖ u64(sequence)`: distinct for every sequence number, so never repeated under one key.
pub(crate) fn nonce(sequence: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&sequence.to_be_bytes());
    Nonce::from(nonce)
}

/// The publisher an envelope names, read from the first bytes of its header and nothing else: for sorting
/// deliveries into per-publisher queues before the work of [`ParsedEnvelope::parse`] (which hashes an included
/// capsule) or any check. Unverified — anybody can name anybody — and `None` for what does not start like an
/// envelope with a valid device id.
pub fn claimed_publisher(bytes: &[u8]) -> Option<&str> {
    // Called for every delivery: compared in place, no header buffer allocated.
    let rest = bytes.strip_prefix(MAGIC)?;
    let (&[version, kind, _flags, len], rest) = rest.split_first_chunk::<4>()?;
    if version != VERSION || kind != KIND_ENVELOPE {
        return None;
    }
    let id = core::str::from_utf8(rest.get(..usize::from(len))?).ok()?;
    DeviceId::new(id).ok().map(|_| id)
}

/// A decoded envelope: its header fields, borrowing the input. Structure only, nothing to decrypt with: the
/// ciphertext opens only on a [`VerifiedEnvelope`](crate::VerifiedEnvelope), which
/// [`verify_signature`](Self::verify_signature) gives for a signed envelope and
/// [`accept_unsigned`](Self::accept_unsigned) for an unsigned one the caller has decided to accept.
#[derive(Clone)]
pub struct ParsedEnvelope<'a> {
    pub(crate) bytes: &'a [u8],
    publisher: DeviceId,
    pub(crate) key_id: [u8; KEY_ID_LEN],
    pub(crate) sequence: u64,
    timestamp_ms: u64,
    capsule: Option<&'a [u8]>,
    credential: Option<&'a [u8]>,
    /// Offset of the ciphertext (just after its length field).
    pub(crate) ciphertext_at: usize,
    pub(crate) ciphertext_len: usize,
    pub(crate) signed: bool,
    retained: bool,
    /// A batch signature's size, position and audit path (bit 4, §6.6).
    pub(crate) batch: Option<BatchTrailer>,
}

/// Where a batch-signed envelope keeps what its signature needs besides itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchTrailer {
    /// Envelopes in the batch, 2 to [`MAX_BATCH`].
    pub(crate) size: u16,
    /// This envelope's leaf, below `size`.
    pub(crate) index: u16,
    /// Offset of the audit path (`path_len(index, size)` hashes of 32 bytes).
    pub(crate) path_at: usize,
}

impl<'a> ParsedEnvelope<'a> {
    /// Decodes the structure of an envelope: header, flags (no reserved bit set), every length against its
    /// bound and the remaining input, the publisher id, and the exact total length (trailing bytes are refused).
    /// An included capsule must hash to the key id ([`key_id_for`]); that is the only hashing done, and nothing
    /// is verified or decrypted. Neither the capsule nor the credential is decoded.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for input beyond [`MAX_ENVELOPE_LEN`]; [`Error::Malformed`] for anything else.
    pub fn parse(bytes: &'a [u8]) -> Result<ParsedEnvelope<'a>> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(Error::LimitExceeded { what: "envelope bytes", limit: MAX_ENVELOPE_LEN });
        }
        let mut r = Reader::open(bytes, KIND_ENVELOPE, WHAT)?;
        let flags = r.u8()?;
        if flags & !(FLAG_CAPSULE | FLAG_CREDENTIAL | FLAG_UNSIGNED | FLAG_RETAINED | FLAG_BATCH) != 0 {
            return Err(malformed(WHAT, "reserved flag bits set"));
        }
        let signed = flags & FLAG_UNSIGNED == 0;
        if !signed && flags & (FLAG_CAPSULE | FLAG_CREDENTIAL | FLAG_RETAINED) != 0 {
            return Err(malformed(WHAT, "unsigned envelope with a capsule, credential or retained mark"));
        }
        if !signed && flags & FLAG_BATCH != 0 {
            return Err(malformed(WHAT, "unsigned envelope with a batch signature"));
        }
        let retained = flags & FLAG_RETAINED != 0;

        let id_len = usize::from(r.u8()?);
        if id_len == 0 || id_len > MAX_DEVICE_ID_LEN {
            return Err(malformed(WHAT, "publisher length out of range"));
        }
        let publisher = core::str::from_utf8(r.take(id_len)?)
            .ok()
            .and_then(|id| DeviceId::new(id).ok())
            .ok_or(malformed(WHAT, "invalid publisher"))?;
        let key_id = r.array()?;
        let sequence = r.u64()?;
        let timestamp_ms = r.u64()?;

        let capsule = if flags & FLAG_CAPSULE != 0 {
            let len = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
            if len == 0 || len > MAX_CAPSULE_LEN {
                return Err(malformed(WHAT, "capsule length out of range"));
            }
            let capsule = r.take(len)?;
            if key_id_for(capsule) != key_id {
                return Err(malformed(WHAT, "capsule does not match the key id"));
            }
            Some(capsule)
        } else {
            None
        };
        let credential = if flags & FLAG_CREDENTIAL != 0 {
            let len = usize::from(r.u16()?);
            if len == 0 || len > MAX_CREDENTIAL_LEN {
                return Err(malformed(WHAT, "credential length out of range"));
            }
            Some(r.take(len)?)
        } else {
            None
        };

        let ciphertext_len = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
        if !(TAG_LEN..=MAX_PAYLOAD + TAG_LEN).contains(&ciphertext_len) {
            return Err(malformed(WHAT, "ciphertext length out of range"));
        }
        let ciphertext_at = r.position();
        r.take(ciphertext_len)?;
        let batch = if flags & FLAG_BATCH != 0 {
            let (size, index) = (r.u16()?, r.u16()?);
            if !(2..=MAX_BATCH).contains(&usize::from(size)) || index >= size {
                return Err(malformed(WHAT, "batch size or index out of range"));
            }
            let path_at = r.position();
            r.take(32 * path_len(usize::from(index), usize::from(size)))?;
            Some(BatchTrailer { size, index, path_at })
        } else {
            None
        };
        if signed {
            r.take(SIGNATURE_LEN)?;
        }
        r.finish()?;

        Ok(ParsedEnvelope {
            bytes,
            publisher,
            key_id,
            sequence,
            timestamp_ms,
            capsule,
            credential,
            ciphertext_at,
            ciphertext_len,
            signed,
            retained,
            batch,
        })
    }

    /// Whether the signature is a batch signature (§6.6), and then the batch's size and this envelope's index.
    pub fn batch_position(&self) -> Option<(usize, usize)> {
        self.batch.map(|b| (usize::from(b.size), usize::from(b.index)))
    }

    /// Whether the envelope carries a signature (else it is authenticated by its session key alone, §6.5).
    pub fn is_signed(&self) -> bool {
        self.signed
    }

    /// Whether the publisher sealed it for retained publication (flags bit 3, under the AEAD and the signature:
    /// trustworthy only once [`verify_signature`](Self::verify_signature) and [`VerifiedEnvelope::open`](crate::VerifiedEnvelope::open) passed). A
    /// delivery with the MQTT retain flag set is an honest retained message only if this is true (§6.4).
    pub fn is_sealed_retained(&self) -> bool {
        self.retained
    }

    /// The device that claims to have published the envelope (vouched for only by
    /// [`verify_signature`](Self::verify_signature) with that device's key).
    pub fn publisher(&self) -> &DeviceId {
        &self.publisher
    }

    /// The session key's id.
    pub fn key_id(&self) -> [u8; 16] {
        self.key_id
    }

    /// The message's sequence number in its session (for [`ReplayWindow`](crate::ReplayWindow)).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The publisher's clock when sealing, unix milliseconds.
    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    /// The capsule bytes, if included (an `smqtt_abe::Capsule` encoding, not yet decoded); they hash to
    /// [`key_id`](Self::key_id).
    pub fn capsule(&self) -> Option<&'a [u8]> {
        self.capsule
    }

    /// The credential bytes, if included (not yet decoded: see [`UnverifiedCredential`](crate::UnverifiedCredential)).
    pub fn credential(&self) -> Option<&'a [u8]> {
        self.credential
    }

    /// Bytes of ciphertext, tag included (the plaintext is 16 bytes shorter).
    pub fn ciphertext_len(&self) -> usize {
        self.ciphertext_len
    }

    /// The whole envelope, as parsed.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl Debug for ParsedEnvelope<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedEnvelope")
            .field("publisher", &self.publisher)
            .field("key_id", &hex::encode(self.key_id))
            .field("sequence", &self.sequence)
            .field("timestamp_ms", &self.timestamp_ms)
            .field("capsule_len", &self.capsule.map(<[u8]>::len))
            .field("credential_len", &self.credential.map(<[u8]>::len))
            .field("ciphertext_len", &self.ciphertext_len)
            .field("signed", &self.signed)
            .field("batch", &self.batch_position())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SessionKey {
        SessionKey::from_raw_for_tests(&[9; 32], key_id_for(b"capsule"))
    }

    #[test]
    fn the_encoding_has_the_documented_layout() {
        let publisher = DeviceId::new("dev-1").unwrap_or_else(|e| panic!("{e}"));
        let parts = EnvelopeParts {
            publisher: &publisher,
            sequence: 0x0102,
            timestamp_ms: 0x0304,
            capsule: Some(b"capsule"),
            credential: Some(b"cred"),
            retained: false,
        };
        let signer = SigningKey::from_bytes(&[1; 32]);
        let bytes = seal_envelope("a/b", &parts, &key(), b"hi", &signer).unwrap_or_else(|e| panic!("{e}"));
        let mut expected = b"SMQW\x01\x02\x03\x05dev-1".to_vec();
        expected.extend_from_slice(&key_id_for(b"capsule"));
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 3, 4]);
        expected.extend_from_slice(b"\x00\x00\x00\x07capsule\x00\x04cred\x00\x00\x00\x12");
        assert_eq!(&bytes[..expected.len()], &expected[..]);
        assert_eq!(bytes.len(), expected.len() + 2 + TAG_LEN + SIGNATURE_LEN);
        assert_eq!(bytes.len(), envelope_overhead(5) + 4 + 7 + 2 + 4 + 2);
        // The signature covers the topic prefix and every preceding byte.
        let mut signed = b"\x00\x03a/b".to_vec();
        signed.extend_from_slice(&bytes[..bytes.len() - 64]);
        let signature: [u8; 64] = bytes[bytes.len() - 64..].try_into().unwrap_or_else(|_| panic!("64 bytes"));
        assert_eq!(signer.verifying_key().verify(ENVELOPE_DOMAIN, &signed, &signature), Ok(()));
    }

    #[test]
    fn secrets_are_redacted_and_compared() {
        let k = key();
        assert_eq!(format!("{k:?}"), format!("SessionKey {{ key_id: {}, key: <redacted> }}", hex::encode(k.key_id)));
        assert_eq!(k.clone(), k);
        assert_ne!(SessionKey::from_raw_for_tests(&[8; 32], k.key_id), k);
        assert_ne!(SessionKey::from_raw_for_tests(&[9; 32], [0; 16]), k);
    }

    #[test]
    fn nonce_is_zero_padded_sequence() {
        let n = nonce(0x0102_0304_0506_0708);
        assert_eq!(n.as_slice(), &[0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
