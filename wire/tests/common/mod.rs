//! Fixtures shared by the integration tests: fixed keys, a sample credential, and an independent encoder that
//! writes credentials field by field from `docs/wire.md` (so tests can sign encodings the library refuses to
//! produce).
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

use smqtt_abe::AttributeSet;
use smqtt_wire::{CredentialBody, DeviceId, SigningKey, TopicFilter, CREDENTIAL_DOMAIN};

/// Seed of the fixture authority key (also used by `wire/fuzz`).
pub const AUTHORITY_SEED: [u8; 32] = [0x11; 32];
/// Seed of the fixture device key.
pub const DEVICE_SEED: [u8; 32] = [0x22; 32];
/// A time inside the fixture credential's validity window.
pub const NOW: u64 = 1_700_000_100;

pub fn authority() -> SigningKey {
    SigningKey::from_bytes(&AUTHORITY_SEED)
}

pub fn device() -> SigningKey {
    SigningKey::from_bytes(&DEVICE_SEED)
}

pub fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

pub fn body() -> CredentialBody {
    CredentialBody {
        device_id: ok(DeviceId::new("sensor-7")),
        device_key: device().verifying_key(),
        attributes: ok(AttributeSet::parse("role:sensor, site:berlin, level = 3")),
        publish: vec![ok(TopicFilter::new("plant/berlin/+/temperature")), ok(TopicFilter::new("devices/sensor-7/#"))],
        epoch: 4,
        not_before: 1_700_000_000,
        not_after: 1_700_086_400,
    }
}

pub fn credential() -> Vec<u8> {
    ok(body().sign(&authority()))
}

/// Raw fields of a credential, written without any validation.
#[derive(Clone, Debug)]
pub struct Raw {
    pub version: u8,
    pub kind: u8,
    pub device_id: Vec<u8>,
    pub device_key: [u8; 32],
    pub attributes: Vec<u8>,
    pub publish: Vec<Vec<u8>>,
    pub epoch: u64,
    pub not_before: u64,
    pub not_after: u64,
}

impl Raw {
    pub fn from_body(body: &CredentialBody) -> Raw {
        Raw {
            version: 1,
            kind: 1,
            device_id: body.device_id.as_str().as_bytes().to_vec(),
            device_key: body.device_key.to_bytes(),
            attributes: body.attributes.to_string().into_bytes(),
            publish: body.publish.iter().map(|f| f.as_str().as_bytes().to_vec()).collect(),
            epoch: body.epoch,
            not_before: body.not_before,
            not_after: body.not_after,
        }
    }

    pub fn unsigned(&self) -> Vec<u8> {
        let mut out = b"SMQW".to_vec();
        out.push(self.version);
        out.push(self.kind);
        out.push(self.device_id.len() as u8);
        out.extend_from_slice(&self.device_id);
        out.extend_from_slice(&self.device_key);
        out.extend_from_slice(&(self.attributes.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.attributes);
        out.push(self.publish.len() as u8);
        for filter in &self.publish {
            out.extend_from_slice(&(filter.len() as u16).to_be_bytes());
            out.extend_from_slice(filter);
        }
        for v in [self.epoch, self.not_before, self.not_after] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// The encoding, signed by `key` over exactly the preceding bytes.
    pub fn signed_by(&self, key: &SigningKey) -> Vec<u8> {
        let mut out = self.unsigned();
        let signature = key.sign(CREDENTIAL_DOMAIN, &out);
        out.extend_from_slice(&signature);
        out
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Vec<u8> {
    let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len() % 2 == 0, "odd number of hex digits");
    (0..s.len() / 2).map(|i| ok(u8::from_str_radix(&s[2 * i..2 * i + 2], 16))).collect()
}

/// The eight points of the Ed25519 torsion subgroup, compressed (computed, not copied from a list).
pub fn ed25519_torsion() -> Vec<[u8; 32]> {
    curve25519_dalek::constants::EIGHT_TORSION.iter().map(|p| p.compress().to_bytes()).collect()
}

/// `docs/vectors/wire/`.
pub fn vectors_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors/wire")
}

/// Whether the environment variable `var` is `1` (regenerate known answers).
pub fn writing(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| v == "1")
}

/// One known-answer file: comment, `key: value` lines, and an optional hex payload after a blank line.
pub struct Vector {
    pub name: &'static str,
    pub comment: &'static str,
    pub fields: Vec<(&'static str, String)>,
    pub payload: Option<Vec<u8>>,
}

impl Vector {
    pub fn render(&self) -> String {
        let mut out = format!("# {}\n", self.comment);
        for (k, v) in &self.fields {
            out.push_str(&format!("{k}: {v}\n"));
        }
        if let Some(p) = &self.payload {
            out.push('\n');
            for line in hex(p).as_bytes().chunks(128) {
                out.push_str(std::str::from_utf8(line).unwrap_or_else(|e| panic!("{e}")));
                out.push('\n');
            }
        }
        out
    }
}

/// Parses a file written by [`Vector::render`].
pub fn parse(text: &str) -> (BTreeMap<String, String>, Vec<u8>) {
    let (head, payload) = text.split_once("\n\n").unwrap_or((text, ""));
    let fields = head
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_once(": ").unwrap_or_else(|| panic!("bad line {l:?}")))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (fields, unhex(payload))
}

pub mod batch_vectors;
pub mod envelope;
