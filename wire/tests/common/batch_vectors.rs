//! Known-answer files of batch-signed envelopes (§6.6): a batch of three, and the ways an attacker bends one.
//! Written and checked by `envelope_vectors.rs` with the other envelope files.

use smqtt_wire::{seal_envelope_batch, BatchItem, EnvelopeParts};

use super::envelope::{fame, publisher, session_key, TOPIC};
use super::{credential, device, hex, ok, Vector};

const PLAINTEXTS: [&[u8]; 3] = [b"{\"celsius\": 21.5}", b"{\"celsius\": 21.6}", b"{\"celsius\": 21.7}"];
const FIRST_SEQUENCE: u64 = 20;

fn timestamp(i: usize) -> u64 {
    1_700_000_100_000 + FIRST_SEQUENCE + i as u64
}

/// The batch: sequence numbers 20, 21, 22 on the fixture topic; the first with capsule and credential.
fn sealed() -> Vec<Vec<u8>> {
    let id = publisher();
    let cred = credential();
    let key = session_key();
    let items: Vec<BatchItem<'_>> = (0..3)
        .map(|i| BatchItem {
            topic: TOPIC,
            parts: EnvelopeParts {
                publisher: &id,
                sequence: FIRST_SEQUENCE + i as u64,
                timestamp_ms: timestamp(i),
                capsule: (i == 0).then_some(fame().capsule.as_slice()),
                credential: (i == 0).then_some(cred.as_slice()),
                retained: false,
            },
            key: &key,
            plaintext: PLAINTEXTS[i],
        })
        .collect();
    ok(seal_envelope_batch(&items, &device()))
}

fn vector(name: &'static str, comment: &'static str, expect: &str, bytes: Vec<u8>, opened: Option<usize>) -> Vector {
    let mut fields = vec![
        ("publisher key", hex(&device().verifying_key().to_bytes())),
        ("topic", TOPIC.to_owned()),
        ("data key", hex(fame().data_key.expose_secret())),
        ("key id", hex(&session_key().key_id())),
        ("expect", expect.to_owned()),
    ];
    if let Some(i) = opened {
        fields.extend([
            ("publisher", publisher().to_string()),
            ("sequence", (FIRST_SEQUENCE + i as u64).to_string()),
            ("timestamp ms", timestamp(i).to_string()),
            ("plaintext", hex(PLAINTEXTS[i])),
        ]);
    }
    Vector { name, comment, fields, payload: Some(bytes) }
}

/// The batch's three envelopes, and its refusals.
pub fn vectors() -> Vec<Vector> {
    let batch = sealed();
    // Trailer of envelope 1 (index 1 of 3): u16 size, u16 index, 2 path hashes, signature.
    let trailer_len = 4 + 2 * 32 + 64;
    let body_end = batch[1].len() - trailer_len;
    let edit = |i: usize, f: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = batch[i].clone();
        f(&mut bytes);
        bytes
    };
    let spliced = [&batch[1][..body_end], &batch[0][batch[0].len() - trailer_len..]].concat();
    let mut unsigned = batch[2].clone();
    unsigned[6] |= 0x04;
    vec![
        vector(
            "envelope-ok-batch-0",
            "batch of 3 (§6.6), index 0, capsule and credential",
            "ok",
            batch[0].clone(),
            Some(0),
        ),
        vector("envelope-ok-batch-1", "batch of 3, index 1", "ok", batch[1].clone(), Some(1)),
        vector("envelope-ok-batch-2", "batch of 3, index 2 (a path of one hash)", "ok", batch[2].clone(), Some(2)),
        vector(
            "envelope-batch-flipped-path",
            "envelope-ok-batch-1, first path byte flipped",
            "bad signature",
            edit(1, &|b| b[body_end + 4] ^= 1),
            None,
        ),
        vector(
            "envelope-batch-reindexed",
            "envelope-ok-batch-1 claiming index 0",
            "bad signature",
            edit(1, &|b| b[body_end + 3] = 0),
            None,
        ),
        vector(
            "envelope-batch-spliced",
            "envelope-ok-batch-1's body with envelope-ok-batch-0's size, index, path and signature",
            "bad signature",
            spliced,
            None,
        ),
        vector(
            "envelope-batch-size-one",
            "envelope-ok-batch-1 claiming a batch of 1",
            "malformed: batch size or index out of range",
            edit(1, &|b| b[body_end + 1] = 1),
            None,
        ),
        vector(
            "envelope-batch-short-path",
            "envelope-ok-batch-1 with its last path hash removed",
            "malformed: truncated",
            edit(1, &|b| drop(b.drain(body_end + 4 + 32..body_end + 4 + 64))),
            None,
        ),
        vector(
            "envelope-batch-unsigned",
            "envelope-ok-batch-2 with the unsigned flag set as well",
            "malformed: unsigned envelope with a batch signature",
            unsigned,
            None,
        ),
    ]
}
