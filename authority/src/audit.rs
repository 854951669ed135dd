//! The hash-chained, signed audit log.
//!
//! Entry `n` stores `hash_n = SHA-256("smqtt/audit/v1" ‖ n ‖ at ‖ lp(actor) ‖ lp(action) ‖ lp(subject) ‖
//! lp(detail) ‖ hash_{n-1})` (`hash_0` = 32 zero bytes, integers u64 big-endian, `lp` = u32 length prefix) and an
//! Ed25519 signature of the authority key over `hash_n`. Editing an entry breaks its hash; deleting or inserting
//! one breaks the sequence or the link; recomputing the chain after an edit needs the sealed signing key. What
//! the chain cannot show on its own is truncation of the newest entries: compare the count with an earlier
//! `audit verify` (or a copy shipped elsewhere) to detect that.

use sha2::{Digest, Sha256};
use smqtt_wire::{SigningKey, VerifyingKey};

/// Signature domain of audit entries.
const AUDIT_DOMAIN: &[u8] = b"smqtt/audit/v1";

/// One action to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    /// Who: `admin:<token id>`, `device:<id>`, `cli`, `scheduler`.
    pub actor: String,
    /// What, e.g. `device.add`.
    pub action: &'static str,
    /// On what.
    pub subject: String,
    /// Details; never secrets.
    pub detail: String,
}

impl Action {
    /// An action by `actor` on `subject`.
    pub fn new(actor: impl Into<String>, action: &'static str, subject: impl Into<String>) -> Action {
        Action { actor: actor.into(), action, subject: subject.into(), detail: String::new() }
    }

    /// The same with `detail`.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Action {
        self.detail = detail.into();
        self
    }
}

/// A stored entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Position, from 1.
    pub seq: u64,
    /// Unix seconds.
    pub at: u64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub subject: String,
    /// Details.
    pub detail: String,
    /// The chain hash.
    pub hash: [u8; 32],
    /// The authority's signature over `hash`.
    pub signature: [u8; 64],
}

fn put(hasher: &mut Sha256, field: &str) {
    hasher.update((field.len() as u32).to_be_bytes());
    hasher.update(field.as_bytes());
}

/// The chain hash of an entry with these contents after `prev`.
pub(crate) fn chain_hash(
    seq: u64,
    at: u64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
    prev: &[u8; 32],
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(AUDIT_DOMAIN);
    hasher.update(seq.to_be_bytes());
    hasher.update(at.to_be_bytes());
    for field in [actor, action, subject, detail] {
        put(&mut hasher, field);
    }
    hasher.update(prev);
    hasher.finalize().into()
}

/// Builds the next entry after (`seq - 1`, `prev`), signed with `key`.
pub(crate) fn next_entry(seq: u64, at: u64, action: &Action, prev: &[u8; 32], key: &SigningKey) -> Entry {
    let hash = chain_hash(seq, at, &action.actor, action.action, &action.subject, &action.detail, prev);
    Entry {
        seq,
        at,
        actor: action.actor.clone(),
        action: action.action.to_owned(),
        subject: action.subject.clone(),
        detail: action.detail.clone(),
        hash,
        signature: key.sign(AUDIT_DOMAIN, &hash),
    }
}

/// Result of checking a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// Entries checked.
    pub entries: u64,
    /// The first problem, if any.
    pub problem: Option<String>,
}

/// Incremental verifier: feed entries in `seq` order.
#[derive(Debug)]
pub struct Verifier<'a> {
    key: &'a VerifyingKey,
    prev: [u8; 32],
    expected_seq: u64,
}

impl<'a> Verifier<'a> {
    /// A verifier for a chain signed by `key`.
    pub fn new(key: &'a VerifyingKey) -> Verifier<'a> {
        Verifier { key, prev: [0; 32], expected_seq: 1 }
    }

    /// Checks the next entry.
    ///
    /// # Errors
    /// A description of the first problem found.
    pub fn check(&mut self, entry: &Entry) -> Result<(), String> {
        if entry.seq != self.expected_seq {
            return Err(format!("entry {} missing (found {} next)", self.expected_seq, entry.seq));
        }
        let hash =
            chain_hash(entry.seq, entry.at, &entry.actor, &entry.action, &entry.subject, &entry.detail, &self.prev);
        if hash != entry.hash {
            return Err(format!("entry {} was modified (hash mismatch)", entry.seq));
        }
        if self.key.verify(AUDIT_DOMAIN, &entry.hash, &entry.signature).is_err() {
            return Err(format!("entry {} is not signed by the authority", entry.seq));
        }
        self.prev = hash;
        self.expected_seq += 1;
        Ok(())
    }

    /// Entries accepted so far.
    pub fn count(&self) -> u64 {
        self.expected_seq - 1
    }
}
