//! Envelope fixtures: a deterministic FAME session key, and an independent encoder that writes envelopes field by
//! field from `docs/wire.md` §6 with its own HKDF, AEAD and signature (so tests can check the library's bytes and
//! sign encodings the library refuses to produce).

use std::sync::OnceLock;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use smqtt_abe::{AttributeSet, DataKey, Policy, PublicKey, UserKey};
use smqtt_wire::{DeviceId, SessionKey, SigningKey, ENVELOPE_DOMAIN};

use super::ok;

/// The topic of the fixtures (one the fixture credential may publish to).
pub const TOPIC: &str = "plant/berlin/hall-3/temperature";
/// The publisher of the fixtures: the fixture credential's device.
pub const PUBLISHER: &str = "sensor-7";
/// The policy of the fixture capsule.
pub const POLICY: &str = "role:sensor and site:berlin";
/// The seed of the RNG that makes the fixture FAME parameters and capsule.
pub const FAME_SEED: u64 = 0x5eed_0001;

/// A FAME setup, a user key satisfying [`POLICY`], and one encapsulation: all from a seeded RNG.
pub struct Fame {
    pub pk: PublicKey,
    pub user: UserKey,
    pub data_key: DataKey,
    pub capsule: Vec<u8>,
    /// A second encapsulation under the same parameters (another session).
    pub other_data_key: DataKey,
    pub other_capsule: Vec<u8>,
}

pub fn fame() -> &'static Fame {
    static FAME: OnceLock<Fame> = OnceLock::new();
    FAME.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(FAME_SEED);
        let (pk, msk) = ok(smqtt_abe::setup(&mut rng));
        let policy = ok(Policy::parse(POLICY));
        let (data_key, capsule) = ok(pk.encapsulate(&policy, &mut rng));
        let (other_data_key, other_capsule) = ok(pk.encapsulate(&policy, &mut rng));
        let user = ok(msk.keygen(&pk, &ok(AttributeSet::parse("role:sensor, site:berlin, level = 3")), &mut rng));
        Fame {
            pk,
            user,
            data_key,
            capsule: capsule.to_bytes(),
            other_data_key,
            other_capsule: other_capsule.to_bytes(),
        }
    })
}

pub fn session_key() -> SessionKey {
    SessionKey::new(&fame().data_key, &fame().capsule)
}

pub fn publisher() -> DeviceId {
    ok(DeviceId::new(PUBLISHER))
}

/// `SHA-256("smqtt/envelope/v1/key-id" ‖ capsule)[..16]`, computed here.
pub fn key_id(capsule: &[u8]) -> [u8; 16] {
    let digest = Sha256::digest([&b"smqtt/envelope/v1/key-id"[..], capsule].concat());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// Raw fields of an envelope, written without any validation.
#[derive(Clone, Debug)]
pub struct RawEnvelope {
    pub version: u8,
    pub kind: u8,
    pub flags: u8,
    pub publisher: Vec<u8>,
    pub key_id: [u8; 16],
    pub sequence: u64,
    pub timestamp_ms: u64,
    pub capsule: Option<Vec<u8>>,
    pub credential: Option<Vec<u8>>,
    pub plaintext: Vec<u8>,
    /// Replaces the computed ciphertext length field when set.
    pub ciphertext_len: Option<u32>,
}

impl RawEnvelope {
    /// An envelope of the fixture publisher under the fixture session, with or without capsule and credential.
    pub fn new(with_capsule: bool, with_credential: bool, sequence: u64, plaintext: &[u8]) -> RawEnvelope {
        RawEnvelope {
            version: 1,
            kind: 2,
            flags: u8::from(with_capsule) | u8::from(with_credential) << 1,
            publisher: PUBLISHER.as_bytes().to_vec(),
            key_id: key_id(&fame().capsule),
            sequence,
            timestamp_ms: 1_700_000_100_000 + sequence,
            capsule: with_capsule.then(|| fame().capsule.clone()),
            credential: with_credential.then(super::credential),
            plaintext: plaintext.to_vec(),
            ciphertext_len: None,
        }
    }

    /// Every byte before the ciphertext, its length field included.
    pub fn header(&self) -> Vec<u8> {
        let mut out = b"SMQW".to_vec();
        out.extend_from_slice(&[self.version, self.kind, self.flags, self.publisher.len() as u8]);
        out.extend_from_slice(&self.publisher);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        if let Some(capsule) = &self.capsule {
            out.extend_from_slice(&(capsule.len() as u32).to_be_bytes());
            out.extend_from_slice(capsule);
        }
        if let Some(credential) = &self.credential {
            out.extend_from_slice(&(credential.len() as u16).to_be_bytes());
            out.extend_from_slice(credential);
        }
        let len = self.ciphertext_len.unwrap_or((self.plaintext.len() + 16) as u32);
        out.extend_from_slice(&len.to_be_bytes());
        out
    }

    /// The header and the ciphertext made with `data_key` and `aad_topic`.
    pub fn unsigned(&self, aad_topic: &str, data_key: &[u8; 32]) -> Vec<u8> {
        let hk = Hkdf::<Sha256>::new(Some(&self.key_id), data_key);
        let mut key = [0u8; 32];
        ok(hk.expand(b"smqtt/envelope/v1/aead", &mut key).map_err(|e| e.to_string()));
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&self.sequence.to_be_bytes());
        let mut out = self.header();
        let aad = [topic_prefix(aad_topic), out.clone()].concat();
        let aead = ok(ChaCha20Poly1305::new_from_slice(&key).map_err(|e| e.to_string()));
        let ct =
            ok(aead.encrypt(&nonce.into(), Payload { msg: &self.plaintext, aad: &aad }).map_err(|e| e.to_string()));
        out.extend_from_slice(&ct);
        out
    }

    /// The whole envelope: sealed for `aad_topic`, signed by `signer` for `signed_topic`.
    pub fn sealed(&self, aad_topic: &str, signed_topic: &str, data_key: &[u8; 32], signer: &SigningKey) -> Vec<u8> {
        let mut out = self.unsigned(aad_topic, data_key);
        out.extend_from_slice(&sign(signer, signed_topic, &out));
        out
    }

    /// Sealed and signed for [`TOPIC`] with the fixture data key and device key.
    pub fn build(&self) -> Vec<u8> {
        self.sealed(TOPIC, TOPIC, fame().data_key.expose_secret(), &super::device())
    }
}

pub fn topic_prefix(topic: &str) -> Vec<u8> {
    [&(topic.len() as u16).to_be_bytes()[..], topic.as_bytes()].concat()
}

/// The envelope signature over `u16(len(topic)) ‖ topic ‖ signed`.
pub fn sign(signer: &SigningKey, topic: &str, signed: &[u8]) -> [u8; 64] {
    signer.sign(ENVELOPE_DOMAIN, &[topic_prefix(topic), signed.to_vec()].concat())
}

/// `bytes` with its last 64 bytes replaced by a fresh fixture-device signature for `topic`.
pub fn resign(bytes: &[u8], topic: &str) -> Vec<u8> {
    let mut out = bytes[..bytes.len() - 64].to_vec();
    let signature = sign(&super::device(), topic, &out);
    out.extend_from_slice(&signature);
    out
}
