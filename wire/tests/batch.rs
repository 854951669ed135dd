//! Batch signatures (`docs/wire.md` §6.6) as an attacker meets them: every envelope of a batch verifies on its
//! own, in any order, with or without the others; a tampered, re-indexed, truncated, resized or spliced one is
//! refused, with or without a cache of verified roots; and the library's bytes are exactly what an independent
//! encoder writes from the spec (its own RFC 9162 tree over SHA-256).

mod common;

use common::envelope::{fame, publisher, session_key, topic_prefix, RawEnvelope, TOPIC};
use common::{device, ok};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use smqtt_wire::{
    seal_envelope, seal_envelope_batch, BatchItem, BatchRoots, EnvelopeParts, Error, ParsedEnvelope, SigningKey,
    VerifyingKey, ENVELOPE_BATCH_DOMAIN, MAX_BATCH,
};

const OTHER_TOPIC: &str = "plant/berlin/hall-4/temperature";

fn plaintext(i: usize) -> Vec<u8> {
    format!("{{\"celsius\": {i}.5}}").into_bytes()
}

/// `n` envelopes of the fixture session, sequence numbers 100…, on TOPIC (odd ones on OTHER_TOPIC), the first
/// with capsule and credential.
fn batch(n: usize) -> Vec<Vec<u8>> {
    batch_from(n, 100)
}

/// [`batch`] with sequence numbers from `first`.
fn batch_from(n: usize, first: u64) -> Vec<Vec<u8>> {
    let id = publisher();
    let credential = common::credential();
    let key = session_key();
    let texts: Vec<Vec<u8>> = (0..n).map(plaintext).collect();
    let items: Vec<BatchItem<'_>> = (0..n)
        .map(|i| BatchItem {
            topic: topic(i),
            parts: EnvelopeParts {
                publisher: &id,
                sequence: first + i as u64,
                timestamp_ms: 1_700_000_200_000 + i as u64,
                capsule: (i == 0).then_some(fame().capsule.as_slice()),
                credential: (i == 0).then_some(credential.as_slice()),
                retained: false,
            },
            key: &key,
            plaintext: &texts[i],
        })
        .collect();
    ok(seal_envelope_batch(&items, &device()))
}

fn topic(i: usize) -> &'static str {
    if i % 2 == 0 {
        TOPIC
    } else {
        OTHER_TOPIC
    }
}

/// The independent encoder: RFC 9162's tree by its recursive definition, the trailer by the table of §6.6.
mod independent {
    use super::*;

    pub(crate) fn leaf(topic: &str, body: &[u8]) -> [u8; 32] {
        Sha256::new().chain_update([0]).chain_update(topic_prefix(topic)).chain_update(body).finalize().into()
    }

    fn node(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
        Sha256::new().chain_update([1]).chain_update(l).chain_update(r).finalize().into()
    }

    pub(crate) fn mth(d: &[[u8; 32]]) -> [u8; 32] {
        if d.len() == 1 {
            return d[0];
        }
        let k = split(d.len());
        node(&mth(&d[..k]), &mth(&d[k..]))
    }

    pub(crate) fn path(m: usize, d: &[[u8; 32]]) -> Vec<[u8; 32]> {
        if d.len() == 1 {
            return Vec::new();
        }
        let k = split(d.len());
        let (mut p, other) =
            if m < k { (path(m, &d[..k]), mth(&d[k..])) } else { (path(m - k, &d[k..]), mth(&d[..k])) };
        p.push(other);
        p
    }

    /// The largest power of two below `n`.
    pub(crate) fn split(n: usize) -> usize {
        let mut k = 1;
        while 2 * k < n {
            k *= 2;
        }
        k
    }

    /// Bodies (header ‖ ciphertext, flag bit 4 set) and their topics → whole envelopes.
    pub(crate) fn seal(bodies: &[(Vec<u8>, &str)], signer: &SigningKey) -> Vec<Vec<u8>> {
        let leaves: Vec<[u8; 32]> = bodies.iter().map(|(b, t)| leaf(t, b)).collect();
        let root = mth(&leaves);
        let n = bodies.len() as u16;
        let signature = signer.sign(ENVELOPE_BATCH_DOMAIN, &[&n.to_be_bytes()[..], &root].concat());
        bodies
            .iter()
            .enumerate()
            .map(|(i, (body, _))| {
                let mut out = body.clone();
                out.extend_from_slice(&n.to_be_bytes());
                out.extend_from_slice(&(i as u16).to_be_bytes());
                for hash in path(i, &leaves) {
                    out.extend_from_slice(&hash);
                }
                out.extend_from_slice(&signature);
                out
            })
            .collect()
    }
}

/// What a receiver gets from `bytes` on `topic`: the plaintext, or the first refusal.
fn receive(bytes: &[u8], topic: &str, key: &VerifyingKey, roots: Option<&mut BatchRoots>) -> Result<Vec<u8>, Error> {
    let parsed = ParsedEnvelope::parse(bytes)?;
    let verified = match roots {
        Some(roots) => parsed.verify_signature_cached(topic, key, roots)?,
        None => parsed.verify_signature(topic, key)?,
    };
    Ok(verified.open(&session_key())?.to_vec())
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 1;
    out
}

#[test]
fn the_library_writes_what_the_spec_says() {
    for n in [2, 3, 5, 8, 13] {
        let sealed = batch(n);
        let credential = common::credential();
        let bodies: Vec<(Vec<u8>, &str)> = (0..n)
            .map(|i| {
                let mut raw = RawEnvelope::new(i == 0, i == 0, 100 + i as u64, &plaintext(i));
                raw.timestamp_ms = 1_700_000_200_000 + i as u64;
                raw.credential = (i == 0).then(|| credential.clone());
                raw.flags |= 0x10;
                (raw.unsigned(topic(i), fame().data_key.expose_secret()), topic(i))
            })
            .collect();
        assert_eq!(sealed, independent::seal(&bodies, &device()), "batch of {n}");
        // Size and index after the ciphertext, then ⌈log2⌉-ish hashes, then the signature.
        let last = &sealed[n - 1];
        let trailer = 4 + 32 * independent::path(n - 1, &vec![[0; 32]; n]).len() + 64;
        assert_eq!(last.len(), bodies[n - 1].0.len() + trailer);
    }
}

#[test]
fn one_item_is_an_ordinary_envelope_and_too_many_are_refused() {
    let id = publisher();
    let key = session_key();
    let parts = EnvelopeParts {
        publisher: &id,
        sequence: 5,
        timestamp_ms: 5,
        capsule: None,
        credential: None,
        retained: false,
    };
    let item = BatchItem { topic: TOPIC, parts, key: &key, plaintext: b"x" };
    let single = ok(seal_envelope(TOPIC, &parts, &key, b"x", &device()));
    assert_eq!(ok(seal_envelope_batch(&[item], &device())), vec![single]);
    assert_eq!(ok(seal_envelope_batch(&[], &device())), Vec::<Vec<u8>>::new());
    let too_many = vec![item; MAX_BATCH + 1];
    assert!(matches!(seal_envelope_batch(&too_many, &device()), Err(Error::LimitExceeded { .. })));
    assert_eq!(ok(seal_envelope_batch(&vec![item; MAX_BATCH], &device())).len(), MAX_BATCH);
}

#[test]
fn each_envelope_verifies_alone_in_any_order_and_one_signature_check_serves_the_batch() {
    let sealed = batch(7);
    let vk = device().verifying_key();
    // Alone, without a cache: each one on its own (late joiners, lost neighbours).
    for (i, bytes) in sealed.iter().enumerate() {
        assert_eq!(ok(receive(bytes, topic(i), &vk, None)), plaintext(i));
        assert_eq!(ParsedEnvelope::parse(bytes).map(|p| p.batch_position()), Ok(Some((7, i))));
    }
    // Backwards, every other one, with a cache: one root remembered for all of them.
    let mut roots = BatchRoots::new(8);
    for i in (0..7).rev().step_by(2) {
        assert_eq!(ok(receive(&sealed[i], topic(i), &vk, Some(&mut roots))), plaintext(i));
    }
    assert_eq!(roots.len(), 1);
}

#[test]
fn tampered_reindexed_resized_truncated_and_spliced_envelopes_are_refused() {
    let sealed = batch(5);
    // Another batch of the same publisher, session and size class: the same topics and plaintexts, later
    // sequence numbers.
    let other = batch_from(6, 200);
    let vk = device().verifying_key();
    let e = &sealed[3];
    let sig_at = e.len() - 64;
    let trailer_at = sig_at - 32 * independent::path(3, &[[0; 32]; 5]).len() - 4;
    let mut attacks: Vec<(&str, Vec<u8>, &str)> = vec![
        ("a ciphertext byte", flip(e, trailer_at - 1), "bad signature"),
        ("the sequence number", flip(e, 6 + 2 + 8 + 16 + 7), "bad signature"),
        ("a path byte", flip(e, trailer_at + 4), "bad signature"),
        ("the signature", flip(e, sig_at + 3), "bad signature"),
        (
            "the batch flag cleared",
            {
                let mut c = e.clone();
                c[6] &= !0x10;
                c
            },
            "malformed",
        ),
        ("the other topic", e.clone(), "bad signature"),
        ("the last path hash cut", [&e[..sig_at - 32], &e[sig_at..]].concat(), "malformed"),
        ("a path hash added", [&e[..sig_at], &[0; 32][..], &e[sig_at..]].concat(), "malformed"),
        ("truncated", e[..e.len() - 1].to_vec(), "malformed"),
    ];
    // Re-indexed and resized (with the path lengths those need kept, so only the signature can tell).
    let mut reindexed = e.clone();
    reindexed[trailer_at + 3] = 2; // index 3 → 2: both have 3 hashes in a tree of 5
    attacks.push(("re-indexed", reindexed, "bad signature"));
    let mut resized = e.clone();
    resized[trailer_at + 1] = 6; // size 5 → 6: index 3 has 3 hashes in a tree of 5 and of 6
    attacks.push(("resized", resized, "bad signature"));
    let mut size_one = e.clone();
    size_one[trailer_at + 1] = 1;
    attacks.push(("size 1", size_one, "malformed"));
    let mut index_out = e.clone();
    index_out[trailer_at + 3] = 5;
    attacks.push(("index = size", index_out, "malformed"));
    // Spliced: this body with another batch's trailer for the same index, and with a neighbour's trailer.
    let other_trailer = &other[3][other[3].len() - (e.len() - trailer_at)..];
    attacks.push(("another batch's trailer", [&e[..trailer_at], other_trailer].concat(), "bad signature"));
    let neighbour = &sealed[1];
    let neighbour_trailer = &neighbour[neighbour.len() - (e.len() - trailer_at)..];
    attacks.push(("a neighbour's trailer", [&e[..trailer_at], neighbour_trailer].concat(), "bad signature"));
    // Signed by somebody else.
    let impostor = SigningKey::from_bytes(&[0x66; 32]);

    for with_cache in [false, true] {
        let mut roots = BatchRoots::new(8);
        if with_cache {
            // The batch's root is verified and remembered first: the cache must not wave anything through.
            for (i, bytes) in sealed.iter().enumerate() {
                ok(receive(bytes, topic(i), &vk, Some(&mut roots)));
            }
        }
        for (what, bytes, expected) in &attacks {
            let topic = if *what == "the other topic" { TOPIC } else { OTHER_TOPIC };
            let result = receive(bytes, topic, &vk, with_cache.then_some(&mut roots));
            let outcome = match &result {
                Err(Error::BadSignature) => "bad signature",
                Err(Error::Malformed { .. } | Error::LimitExceeded { .. }) => "malformed",
                Ok(_) => "accepted",
                Err(_) => "other",
            };
            assert_eq!(outcome, *expected, "{what} (cache {with_cache}): {result:?}");
        }
        let under_impostor = receive(e, OTHER_TOPIC, &impostor.verifying_key(), with_cache.then_some(&mut roots));
        assert_eq!(under_impostor, Err(Error::BadSignature), "another publisher's key (cache {with_cache})");
        // And the honest envelope still passes.
        assert_eq!(ok(receive(e, OTHER_TOPIC, &vk, with_cache.then_some(&mut roots))), plaintext(3));
    }
}

#[test]
fn an_unsigned_envelope_cannot_claim_a_batch() {
    let mut raw = RawEnvelope::new(false, false, 1, b"x");
    raw.flags |= 0x04 | 0x10;
    let bytes = raw.unsigned(TOPIC, fame().data_key.expose_secret());
    let refused = ParsedEnvelope::parse(&bytes).map(|_| ());
    assert!(matches!(refused, Err(Error::Malformed { reason: "unsigned envelope with a batch signature", .. })));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any subset in any order verifies; any single flipped bit anywhere is refused, cache or not.
    #[test]
    fn subsets_in_any_order_verify_and_any_flipped_bit_is_refused(
        n in 2usize..24,
        order in proptest::collection::vec(any::<proptest::sample::Index>(), 1..12),
        victim in any::<proptest::sample::Index>(),
        bit in any::<proptest::sample::Index>(),
    ) {
        let sealed = batch(n);
        let vk = device().verifying_key();
        let mut roots = BatchRoots::new(4);
        for pick in &order {
            let i = pick.index(n);
            prop_assert_eq!(receive(&sealed[i], topic(i), &vk, Some(&mut roots)), Ok(plaintext(i)));
        }
        let i = victim.index(n);
        let at = bit.index(sealed[i].len() * 8);
        let mut tampered = sealed[i].clone();
        tampered[at / 8] ^= 1 << (at % 8);
        prop_assert!(receive(&tampered, topic(i), &vk, Some(&mut roots)).is_err(), "bit {at} of envelope {i}");
        prop_assert!(receive(&tampered, topic(i), &vk, None).is_err(), "bit {at} of envelope {i}, no cache");
    }
}
