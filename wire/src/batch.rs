//! Batch signatures (`docs/wire.md` §6.6): one Ed25519 signature over the Merkle root of a batch of envelopes,
//! each envelope carrying the root's signature and its own audit path, so that every one stays verifiable on
//! its own (lost or late ones do not matter) while a receiver that has verified one root checks the others of
//! the batch with hashing alone.
//!
//! The tree is RFC 9162's (§2.1): leaves `SHA-256(0x00 ‖ leaf input)`, nodes `SHA-256(0x01 ‖ left ‖ right)`, the
//! left subtree of `n` leaves holding the largest power of two below `n`. An envelope's leaf input is exactly
//! what a single signature would sign: `u16(len(topic)) ‖ topic ‖` the envelope up to and including its
//! ciphertext. The signature covers `u16(n) ‖ root` in [`ENVELOPE_BATCH_DOMAIN`].

use sha2::{Digest, Sha256};

use crate::envelope::{seal_body, seal_envelope, EnvelopeParts, SessionKey, FLAG_BATCH};
use crate::error::{Error, Result};
use crate::sign::SigningKey;

/// The signature domain of batch roots.
pub const ENVELOPE_BATCH_DOMAIN: &[u8] = b"smqtt/envelope/v1/batch";
/// Most envelopes under one batch signature: audit paths stay within 8 hashes (256 bytes).
pub const MAX_BATCH: usize = 256;

/// Most bytes a batch signature adds to an envelope besides the signature: size, index, 8 path hashes.
pub(crate) const MAX_BATCH_TRAILER_LEN: usize = 4 + 32 * 8;

/// A SHA-256 digest: a leaf, a node or a root.
pub(crate) type Hash = [u8; 32];

/// `SHA-256(0x00 ‖ parts…)`: the leaf of the envelope whose signed bytes are `parts`.
pub(crate) fn leaf_hash(parts: &[&[u8]]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new().chain_update([0x01]).chain_update(left).chain_update(right).finalize().into()
}

/// The largest power of two strictly below `n` (for `n ≥ 2`).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The number of hashes in the audit path of leaf `index` of a tree of `n` leaves (`index < n`).
pub(crate) fn path_len(mut index: usize, mut n: usize) -> usize {
    let mut len = 0;
    while n > 1 {
        let k = split(n);
        if index < k {
            n = k;
        } else {
            index -= k;
            n -= k;
        }
        len += 1;
    }
    len
}

/// The root of the tree of `leaves` and the audit path of every leaf (bottom-up), for a publisher sealing a
/// batch. `leaves` is not empty.
pub(crate) fn tree(leaves: &[Hash]) -> (Hash, Vec<Vec<Hash>>) {
    let mut paths = vec![Vec::new(); leaves.len()];
    let root = subtree(leaves, 0, &mut paths);
    (root, paths)
}

/// The root of `leaves` (the leaves `offset…` of the whole tree), appending each leaf's sibling hashes.
fn subtree(leaves: &[Hash], offset: usize, paths: &mut [Vec<Hash>]) -> Hash {
    if let [leaf] = leaves {
        return *leaf;
    }
    let k = split(leaves.len());
    let left = subtree(&leaves[..k], offset, paths);
    let right = subtree(&leaves[k..], offset + k, paths);
    for path in &mut paths[offset..offset + k] {
        path.push(right);
    }
    for path in &mut paths[offset + k..offset + leaves.len()] {
        path.push(left);
    }
    node_hash(&left, &right)
}

/// The root that `leaf` at `index` of a tree of `n` leaves and its audit `path` lead to (RFC 9162 §2.1.3.2);
/// `None` if the path's length does not fit `index` and `n`.
pub(crate) fn root_from_path(leaf: Hash, index: usize, n: usize, path: &[Hash]) -> Option<Hash> {
    if index >= n || path.len() != path_len(index, n) {
        return None;
    }
    let (mut fn_, mut sn) = (index, n - 1);
    let mut r = leaf;
    for p in path {
        if sn == 0 {
            return None;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    (sn == 0).then_some(r)
}

/// What the batch signature signs: `u16(n) ‖ root`.
pub(crate) fn signed_root(n: usize, root: &Hash) -> [u8; 34] {
    let mut message = [0u8; 34];
    // n ≤ MAX_BATCH, checked by every caller.
    message[..2].copy_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
    message[2..].copy_from_slice(root);
    message
}

/// One envelope of a batch: everything [`seal_envelope`] takes but the signer.
#[derive(Clone, Copy, Debug)]
pub struct BatchItem<'a> {
    /// The topic it is published on (bound by the AEAD and the leaf).
    pub topic: &'a str,
    /// Its header fields.
    pub parts: EnvelopeParts<'a>,
    /// The session key it is sealed under (items may belong to different sessions).
    pub key: &'a SessionKey,
    /// The message.
    pub plaintext: &'a [u8],
}

/// Seals `items` under one signature of `signer` over the Merkle root of their leaves (§6.6): each envelope
/// carries the batch size, its index, its audit path and the signature, and verifies on its own. A single
/// item is sealed as by [`seal_envelope`] (no batch fields, the same bytes); none gives none.
///
/// # Errors
/// [`Error::LimitExceeded`] for more than [`MAX_BATCH`] items; as [`seal_envelope`] for any item.
///
/// ```
/// use smqtt_wire::{seal_envelope_batch, BatchItem, BatchRoots, DeviceId, EnvelopeParts, ParsedEnvelope, SigningKey};
/// # use smqtt_wire::SessionKey;
/// # let key = SessionKey::from_raw_for_tests(&[7; 32], [1; 16]);
/// let signer = SigningKey::from_bytes(&[1; 32]);
/// let publisher = DeviceId::new("sensor-7")?;
/// let parts = |sequence| EnvelopeParts { publisher: &publisher, sequence, timestamp_ms: 0, capsule: None, credential: None, retained: false };
/// let items: Vec<BatchItem> =
///     (0..3).map(|i| BatchItem { topic: "plant/t", parts: parts(i), key: &key, plaintext: b"23.5" }).collect();
/// let sealed = seal_envelope_batch(&items, &signer)?;
/// let mut roots = BatchRoots::new(16);
/// for envelope in &sealed {
///     let parsed = ParsedEnvelope::parse(envelope)?;
///     let verified = parsed.verify_signature_cached("plant/t", &signer.verifying_key(), &mut roots)?;
///     assert_eq!(verified.open(&key)?.as_slice(), b"23.5");
/// }
/// assert_eq!(roots.len(), 1); // one Ed25519 verification for the three
/// # Ok::<(), smqtt_wire::Error>(())
/// ```
pub fn seal_envelope_batch(items: &[BatchItem<'_>], signer: &SigningKey) -> Result<Vec<Vec<u8>>> {
    match items {
        [] => return Ok(Vec::new()),
        [item] => return seal_envelope(item.topic, &item.parts, item.key, item.plaintext, signer).map(|e| vec![e]),
        _ if items.len() > MAX_BATCH => {
            return Err(Error::LimitExceeded { what: "envelopes in a batch", limit: MAX_BATCH })
        }
        _ => {}
    }
    let mut bodies = Vec::with_capacity(items.len());
    let mut leaves = Vec::with_capacity(items.len());
    for item in items {
        let (body, prefix_len) = seal_body(item.topic, &item.parts, item.key, item.plaintext, FLAG_BATCH)?;
        leaves.push(leaf_hash(&[&body]));
        bodies.push((body, prefix_len));
    }
    let (root, paths) = tree(&leaves);
    let signature = signer.sign(ENVELOPE_BATCH_DOMAIN, &signed_root(items.len(), &root));
    let size = u16::try_from(items.len()).unwrap_or(u16::MAX).to_be_bytes();
    let sealed = bodies
        .into_iter()
        .zip(paths)
        .enumerate()
        .map(|(index, ((mut body, prefix_len), path))| {
            body.drain(..prefix_len);
            body.reserve(4 + 32 * path.len() + 64);
            body.extend_from_slice(&size);
            // index < items.len() ≤ MAX_BATCH.
            body.extend_from_slice(&u16::try_from(index).unwrap_or(u16::MAX).to_be_bytes());
            for hash in &path {
                body.extend_from_slice(hash);
            }
            body.extend_from_slice(&signature);
            body
        })
        .collect();
    Ok(sealed)
}

/// Roots whose batch signature verified, per publisher key: a receiver that checked one envelope of a batch
/// checks the others by hashing their path to the same root (and comparing their signature bytes with the one
/// that verified, so a verified envelope's bytes cannot be varied). Bounded; the least recently used root goes
/// first.
#[derive(Clone, Debug)]
pub struct BatchRoots {
    capacity: usize,
    /// Most recently used last.
    roots: Vec<Root>,
}

/// A verified batch: publisher key, size, root and the signature that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Root {
    pub(crate) publisher: [u8; 32],
    pub(crate) size: u16,
    pub(crate) root: Hash,
    pub(crate) signature: [u8; 64],
}

impl BatchRoots {
    /// Remembers at most `capacity` roots (a few per publisher that batches is plenty: a batch is one burst).
    pub fn new(capacity: usize) -> BatchRoots {
        BatchRoots { capacity: capacity.max(1), roots: Vec::new() }
    }

    /// How many roots are remembered.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Whether exactly this root verified before (publisher, size, root and signature); marks it used.
    pub(crate) fn contains(&mut self, root: &Root) -> bool {
        let found = self.roots.iter().rposition(|known| known == root);
        if let Some(at) = found {
            let entry = self.roots.remove(at);
            self.roots.push(entry);
        }
        found.is_some()
    }

    /// Remembers a verified root, forgetting the least recently used beyond the capacity.
    pub(crate) fn insert(&mut self, root: Root) {
        if self.contains(&root) {
            return;
        }
        if self.roots.len() >= self.capacity {
            self.roots.remove(0);
        }
        self.roots.push(root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 9162's definition, recursively: the oracle.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves {
            [leaf] => *leaf,
            _ => {
                let k = split(leaves.len());
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// RFC 9162's PATH(m, D[n]), recursively, bottom-up.
    fn oracle_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        if leaves.len() == 1 {
            return Vec::new();
        }
        let k = split(leaves.len());
        if m < k {
            let mut path = oracle_path(m, &leaves[..k]);
            path.push(mth(&leaves[k..]));
            path
        } else {
            let mut path = oracle_path(m - k, &leaves[k..]);
            path.push(mth(&leaves[..k]));
            path
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&[&(i as u64).to_be_bytes()])).collect()
    }

    #[test]
    fn a_single_leaf_is_its_own_root_and_paths_have_the_expected_lengths() {
        let one = leaves(1);
        assert_eq!(tree(&one), (one[0], vec![Vec::new()]));
        assert_eq!(root_from_path(one[0], 0, 1, &[]), Some(one[0]));
        assert_eq!(
            (path_len(0, 2), path_len(2, 3), path_len(0, 3), path_len(255, 256), path_len(4, 5)),
            (1, 1, 2, 8, 1)
        );
        assert!((0..MAX_BATCH).all(|i| path_len(i, MAX_BATCH) == 8));
    }

    #[test]
    fn wrong_index_size_or_path_length_leads_nowhere_or_elsewhere() {
        let leaves = leaves(7);
        let (root, paths) = tree(&leaves);
        assert_eq!(root_from_path(leaves[5], 5, 7, &paths[5]), Some(root));
        // Another position, another tree size, a path one hash short or long.
        assert_ne!(root_from_path(leaves[5], 4, 7, &paths[5]), Some(root));
        assert_ne!(root_from_path(leaves[5], 5, 6, &paths[5]), Some(root));
        assert_eq!(root_from_path(leaves[5], 5, 7, &paths[5][..1]), None);
        let mut long = paths[5].clone();
        long.push(root);
        assert_eq!(root_from_path(leaves[5], 5, 7, &long), None);
        assert_eq!(root_from_path(leaves[5], 7, 7, &paths[5]), None);
        // A sibling swapped for another leaf's: another root.
        let mut spliced = paths[5].clone();
        spliced[0] = leaves[0];
        assert_ne!(root_from_path(leaves[5], 5, 7, &spliced), Some(root));
    }

    #[test]
    fn the_cache_is_bounded_and_keyed_by_publisher_size_root_and_signature() {
        let root = |publisher: u8, size: u16, signature: u8| Root {
            publisher: [publisher; 32],
            size,
            root: [9; 32],
            signature: [signature; 64],
        };
        let mut roots = BatchRoots::new(2);
        roots.insert(root(1, 4, 0));
        roots.insert(root(2, 4, 0));
        assert!(roots.contains(&root(1, 4, 0)));
        assert!(!roots.contains(&root(1, 5, 0)) && !roots.contains(&root(3, 4, 0)) && !roots.contains(&root(1, 4, 1)));
        // 2 is now the least recently used: it goes.
        roots.insert(root(3, 4, 0));
        assert_eq!(roots.len(), 2);
        assert!(!roots.contains(&root(2, 4, 0)));
        assert!(roots.contains(&root(1, 4, 0)) && roots.contains(&root(3, 4, 0)));
    }

    proptest! {
        #[test]
        fn tree_and_paths_agree_with_the_rfc_definition(n in 1usize..=MAX_BATCH, pick in any::<proptest::sample::Index>()) {
            let leaves = leaves(n);
            let (root, paths) = tree(&leaves);
            prop_assert_eq!(root, mth(&leaves));
            let m = pick.index(n);
            prop_assert_eq!(&paths[m], &oracle_path(m, &leaves));
            prop_assert_eq!(paths[m].len(), path_len(m, n));
            prop_assert_eq!(root_from_path(leaves[m], m, n, &paths[m]), Some(root));
        }
    }
}
