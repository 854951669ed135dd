//! Known-answer envelopes in `docs/vectors/wire/envelope-*.txt` (format in `docs/wire.md` §8) and the seed corpus
//! of the `envelope_decode` fuzz target.
//!
//! The session key comes from a real FAME encapsulation with a seeded RNG (`common::envelope::fame`), the
//! publisher key from a fixed seed; AEAD and Ed25519 are deterministic, so the normal run re-derives every file
//! and requires it byte for byte, then checks each file's `expect:` line from the file alone. Regenerate after
//! a deliberate format change with
//!
//! ```sh
//! SMQTT_WRITE_VECTORS=1 cargo test --release -p smqtt-wire --test envelope_vectors
//! SMQTT_WRITE_FUZZ_CORPUS=1 cargo test --release -p smqtt-wire --test envelope_vectors fuzz_corpus
//! ```

mod common;

use std::path::Path;

use common::envelope::{fame, key_id, publisher, resign, session_key, RawEnvelope, FAME_SEED, POLICY, TOPIC};
use common::{credential, device, hex, ok, parse, unhex, vectors_dir, writing, Vector, DEVICE_SEED};
use smqtt_wire::{
    key_id_for, seal_envelope, seal_envelope_unsigned, EnvelopeParts, Error, ParsedEnvelope, SessionKey, SigningKey,
    VerifyingKey,
};

const PLAINTEXT: &[u8] = b"{\"celsius\": 21.5}";
const OTHER_TOPIC: &str = "plant/berlin/hall-4/temperature";

fn case(
    name: &'static str,
    comment: &'static str,
    topic: &str,
    publisher: &VerifyingKey,
    expect: &str,
    bytes: Vec<u8>,
) -> Vector {
    let fields = vec![
        ("publisher key", hex(&publisher.to_bytes())),
        ("topic", topic.to_owned()),
        ("data key", hex(fame().data_key.expose_secret())),
        ("key id", hex(&session_key().key_id())),
        ("expect", expect.to_owned()),
    ];
    Vector { name, comment, fields, payload: Some(bytes) }
}

fn good(
    name: &'static str,
    comment: &'static str,
    sequence: u64,
    capsule: bool,
    credential_too: bool,
    plaintext: &[u8],
) -> Vector {
    let id = publisher();
    let cred = credential();
    let parts = EnvelopeParts {
        publisher: &id,
        sequence,
        timestamp_ms: 1_700_000_100_000 + sequence,
        capsule: capsule.then_some(fame().capsule.as_slice()),
        credential: credential_too.then_some(cred.as_slice()),
        retained: false,
    };
    let bytes = ok(seal_envelope(TOPIC, &parts, &session_key(), plaintext, &device()));
    assert_eq!(bytes, RawEnvelope::new(capsule, credential_too, sequence, plaintext).build(), "{name}");
    let mut v = case(name, comment, TOPIC, &device().verifying_key(), "ok", bytes);
    v.fields.extend([
        ("publisher", id.to_string()),
        ("sequence", sequence.to_string()),
        ("timestamp ms", parts.timestamp_ms.to_string()),
        ("plaintext", hex(plaintext)),
    ]);
    v
}

/// An unsigned envelope (§6.5) of the fixture session; `session` marks a receiver that accepts session-key
/// authentication for this publisher and key id (`authentication: session`).
fn unsigned(
    name: &'static str,
    comment: &'static str,
    expect: &str,
    session: bool,
    bytes: Vec<u8>,
    sequence: u64,
) -> Vector {
    let mut v = case(name, comment, TOPIC, &device().verifying_key(), expect, bytes);
    if session {
        v.fields.push(("authentication", "session".to_owned()));
    }
    if expect == "ok" {
        v.fields.extend([
            ("publisher", publisher().to_string()),
            ("sequence", sequence.to_string()),
            ("timestamp ms", (1_700_000_100_000 + sequence).to_string()),
            ("plaintext", hex(PLAINTEXT)),
        ]);
    }
    v
}

fn unsigned_vectors() -> Vec<Vector> {
    let id = publisher();
    let parts = EnvelopeParts {
        publisher: &id,
        sequence: 10,
        timestamp_ms: 1_700_000_100_010,
        capsule: None,
        credential: None,
        retained: false,
    };
    let bytes = ok(seal_envelope_unsigned(TOPIC, &parts, &session_key(), PLAINTEXT));
    let raw = |capsule: bool, f: &dyn Fn(&mut RawEnvelope)| {
        let mut raw = RawEnvelope::new(capsule, false, 10, PLAINTEXT);
        raw.flags |= 0x04;
        f(&mut raw);
        raw.unsigned(TOPIC, fame().data_key.expose_secret())
    };
    assert_eq!(bytes, raw(false, &|_| ()), "unsigned encoding");
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let signed_too = [&bytes[..], &[0u8; 64][..]].concat();
    vec![
        unsigned(
            "envelope-ok-unsigned",
            "no signature, receiver accepts session authentication",
            "ok",
            true,
            bytes.clone(),
            10,
        ),
        unsigned(
            "envelope-unsigned-not-accepted",
            "envelope-ok-unsigned at a receiver that requires signatures",
            "envelope is not signed",
            false,
            bytes,
            10,
        ),
        unsigned(
            "envelope-unsigned-flipped-tag",
            "envelope-ok-unsigned, last tag bit flipped",
            "decryption failed",
            true,
            flipped,
            10,
        ),
        unsigned(
            "envelope-unsigned-with-capsule",
            "unsigned flag with a capsule (capsules travel only signed)",
            "malformed: unsigned envelope with a capsule, credential or retained mark",
            true,
            raw(true, &|_| ()),
            10,
        ),
        unsigned(
            "envelope-unsigned-with-signature",
            "envelope-ok-unsigned followed by 64 bytes",
            "malformed: trailing bytes",
            true,
            signed_too,
            10,
        ),
    ]
}

fn vectors() -> Vec<Vector> {
    let mut all = signed_vectors();
    all.extend(unsigned_vectors());
    all.extend(retained_vectors());
    all.extend(common::batch_vectors::vectors());
    all
}

/// The retained mark (flags bit 3, §6.4) is under the signature and the AEAD.
fn retained_vectors() -> Vec<Vector> {
    let vk = device().verifying_key();
    let id = publisher();
    let cred = credential();
    let parts = EnvelopeParts {
        publisher: &id,
        sequence: 11,
        timestamp_ms: 1_700_000_100_011,
        capsule: Some(fame().capsule.as_slice()),
        credential: Some(cred.as_slice()),
        retained: true,
    };
    let bytes = ok(seal_envelope(TOPIC, &parts, &session_key(), PLAINTEXT, &device()));
    let mut raw = RawEnvelope::new(true, true, 11, PLAINTEXT);
    raw.flags |= 0x08;
    assert_eq!(bytes, raw.build(), "retained encoding");
    let mut ok_case = case("envelope-ok-retained", "sealed for retained publication", TOPIC, &vk, "ok", bytes.clone());
    ok_case.fields.extend([
        ("publisher", id.to_string()),
        ("sequence", "11".to_owned()),
        ("timestamp ms", parts.timestamp_ms.to_string()),
        ("plaintext", hex(PLAINTEXT)),
        ("retained", "true".to_owned()),
    ]);
    let mut stripped = bytes;
    stripped[6] &= !0x08;
    let mut live = RawEnvelope::new(true, true, 7, PLAINTEXT).build();
    live[6] |= 0x08;
    let mut unsigned = RawEnvelope::new(false, false, 10, PLAINTEXT);
    unsigned.flags |= 0x04 | 0x08;
    vec![
        ok_case,
        case(
            "envelope-retained-mark-stripped",
            "envelope-ok-retained with flags bit 3 cleared: a retained message passed off as live",
            TOPIC,
            &vk,
            "bad signature",
            stripped,
        ),
        case(
            "envelope-retained-mark-added",
            "envelope-ok (live) with flags bit 3 set and signed again: only the AEAD refuses it",
            TOPIC,
            &vk,
            "decryption failed",
            resign(&live, TOPIC),
        ),
        case(
            "envelope-unsigned-retained",
            "unsigned flag with the retained mark (retained envelopes travel only signed)",
            TOPIC,
            &vk,
            "malformed: unsigned envelope with a capsule, credential or retained mark",
            unsigned.unsigned(TOPIC, fame().data_key.expose_secret()),
        ),
    ]
}

fn signed_vectors() -> Vec<Vector> {
    let vk = device().verifying_key();
    let full = good("envelope-ok", "capsule and credential included", 7, true, true, PLAINTEXT);
    let bare = good(
        "envelope-ok-bare",
        "neither capsule nor credential (a later message of the session)",
        8,
        false,
        false,
        PLAINTEXT,
    );
    let empty = good("envelope-ok-empty", "capsule only, empty plaintext", 9, true, false, b"");
    let full_bytes = full.payload.clone().unwrap_or_default();
    let bare_bytes = bare.payload.clone().unwrap_or_default();
    let flip = |bytes: &[u8], at: usize| {
        let mut out = bytes.to_vec();
        out[at] ^= 1;
        out
    };
    let raw = |f: &dyn Fn(&mut RawEnvelope)| {
        let mut raw = RawEnvelope::new(true, true, 7, PLAINTEXT);
        f(&mut raw);
        raw.build()
    };
    let n = bare_bytes.len();
    let seq_at = 6 + 1 + 1 + 8 + 16 + 7;
    let mut ok_case = full;
    ok_case.fields.extend([
        ("publisher seed", hex(&DEVICE_SEED)),
        ("fame rng", format!("ChaCha20Rng::seed_from_u64({FAME_SEED:#x}): setup, then encapsulate under {POLICY}")),
    ]);
    vec![
        ok_case,
        bare,
        empty,
        case(
            "envelope-wrong-topic",
            "envelope-ok received on another topic",
            OTHER_TOPIC,
            &vk,
            "bad signature",
            full_bytes.clone(),
        ),
        case(
            "envelope-wrong-publisher-key",
            "envelope-ok-bare checked with the key of seed 0x33 x 32",
            TOPIC,
            &SigningKey::from_bytes(&[0x33; 32]).verifying_key(),
            "bad signature",
            bare_bytes.clone(),
        ),
        case(
            "envelope-flipped-tag",
            "envelope-ok-bare, last tag byte flipped",
            TOPIC,
            &vk,
            "bad signature",
            flip(&bare_bytes, n - 65),
        ),
        case(
            "envelope-flipped-signature",
            "envelope-ok-bare, last byte flipped",
            TOPIC,
            &vk,
            "bad signature",
            flip(&bare_bytes, n - 1),
        ),
        case(
            "envelope-flipped-sequence",
            "envelope-ok-bare, lowest sequence byte flipped",
            TOPIC,
            &vk,
            "bad signature",
            flip(&bare_bytes, seq_at),
        ),
        case(
            "envelope-resigned-tag",
            "envelope-ok-bare, last tag byte flipped and signed again: only the AEAD refuses it",
            TOPIC,
            &vk,
            "decryption failed",
            resign(&flip(&bare_bytes, n - 65), TOPIC),
        ),
        case(
            "envelope-resigned-other-topic",
            "sealed (AAD) for plant/berlin/hall-3/temperature, signed for the topic below",
            OTHER_TOPIC,
            &vk,
            "decryption failed",
            RawEnvelope::new(true, true, 7, PLAINTEXT).sealed(
                TOPIC,
                OTHER_TOPIC,
                fame().data_key.expose_secret(),
                &device(),
            ),
        ),
        case(
            "envelope-unknown-key",
            "signed, no capsule, the key id of another session",
            TOPIC,
            &vk,
            "unknown key",
            RawEnvelope { key_id: key_id(&fame().other_capsule), ..RawEnvelope::new(false, false, 8, PLAINTEXT) }
                .build(),
        ),
        case(
            "envelope-capsule-mismatch",
            "signed, one capsule byte flipped: it no longer hashes to the key id",
            TOPIC,
            &vk,
            "malformed: capsule does not match the key id",
            raw(&|r| {
                if let Some(c) = r.capsule.as_mut() {
                    c[200] ^= 1
                }
            }),
        ),
        case(
            "envelope-reserved-flag",
            "signed, flag bit 7 set",
            TOPIC,
            &vk,
            "malformed: reserved flag bits set",
            raw(&|r| r.flags |= 0x80),
        ),
        case(
            "envelope-wrong-kind",
            "signed, kind byte 1 (credential)",
            TOPIC,
            &vk,
            "malformed: wrong kind",
            raw(&|r| r.kind = 1),
        ),
        case(
            "envelope-wrong-version",
            "signed, version byte 2",
            TOPIC,
            &vk,
            "malformed: unsupported version",
            raw(&|r| r.version = 2),
        ),
        case(
            "envelope-empty-credential",
            "signed, credential flag set with a zero length",
            TOPIC,
            &vk,
            "malformed: credential length out of range",
            raw(&|r| r.credential = Some(Vec::new())),
        ),
        case(
            "envelope-short-ciphertext",
            "signed, ciphertext length 15 (shorter than the tag)",
            TOPIC,
            &vk,
            "malformed: ciphertext length out of range",
            raw(&|r| r.ciphertext_len = Some(15)),
        ),
        case(
            "envelope-bad-publisher",
            "signed, publisher id \"sensor 7\"",
            TOPIC,
            &vk,
            "malformed: invalid publisher",
            raw(&|r| r.publisher = b"sensor 7".to_vec()),
        ),
        case(
            "envelope-truncated",
            "envelope-ok, last byte removed",
            TOPIC,
            &vk,
            "malformed: truncated",
            full_bytes[..full_bytes.len() - 1].to_vec(),
        ),
        case(
            "envelope-trailing",
            "envelope-ok, one byte appended",
            TOPIC,
            &vk,
            "malformed: trailing bytes",
            [&full_bytes[..], &[0]].concat(),
        ),
    ]
}

#[test]
fn vectors_are_reproduced_byte_for_byte() {
    let dir = vectors_dir();
    if writing("SMQTT_WRITE_VECTORS") {
        ok(std::fs::create_dir_all(&dir));
        for v in vectors() {
            ok(std::fs::write(dir.join(format!("{}.txt", v.name)), v.render()));
        }
    }
    for v in vectors() {
        let path = dir.join(format!("{}.txt", v.name));
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(committed, v.render(), "{} differs from what the code produces", path.display());
    }
}

fn outcome(r: Result<(), Error>) -> String {
    match r {
        Ok(()) => "ok".to_owned(),
        Err(Error::Malformed { reason, .. }) => format!("malformed: {reason}"),
        Err(Error::BadSignature) => "bad signature".to_owned(),
        Err(Error::DecryptionFailed) => "decryption failed".to_owned(),
        Err(Error::UnknownKey) => "unknown key".to_owned(),
        Err(other) => format!("{other}"),
    }
}

/// Runs every envelope file through parse, verify_signature and open as a second implementation would: from the
/// file alone (the data key and key id stand in for the FAME decapsulation).
#[test]
fn envelope_files_produce_their_expected_outcome() {
    let mut seen = 0;
    for entry in ok(std::fs::read_dir(vectors_dir())) {
        let path = ok(entry).path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !name.starts_with("envelope-") {
            continue;
        }
        let (fields, bytes) = parse(&ok(std::fs::read_to_string(&path)));
        let publisher: [u8; 32] = unhex(&fields["publisher key"]).try_into().unwrap_or_else(|_| panic!("32 bytes"));
        let publisher = ok(VerifyingKey::from_bytes(&publisher));
        let data_key: [u8; 32] = unhex(&fields["data key"]).try_into().unwrap_or_else(|_| panic!("32 bytes"));
        let key_id: [u8; 16] = unhex(&fields["key id"]).try_into().unwrap_or_else(|_| panic!("16 bytes"));
        let key = SessionKey::from_raw_for_tests(&data_key, key_id);
        let topic = &fields["topic"];
        let session = fields.get("authentication").map(String::as_str) == Some("session");
        let got = outcome(ParsedEnvelope::parse(&bytes).and_then(|envelope| {
            let verified = if envelope.is_signed() || !session {
                envelope.verify_signature(topic, &publisher)?
            } else {
                envelope.accept_unsigned(topic)?
            };
            let plaintext = verified.open(&key)?;
            assert_eq!(Some(&hex(&plaintext)), fields.get("plaintext"), "{name} opened");
            assert_eq!(Some(&envelope.sequence().to_string()), fields.get("sequence"), "{name}");
            assert_eq!(Some(&envelope.timestamp_ms().to_string()), fields.get("timestamp ms"), "{name}");
            assert_eq!(Some(&envelope.publisher().to_string()), fields.get("publisher"), "{name}");
            let retained = fields.get("retained").map(String::as_str) == Some("true");
            assert_eq!(envelope.is_sealed_retained(), retained, "{name} retained mark");
            if let Some(capsule) = envelope.capsule() {
                assert_eq!(key_id_for(capsule), key_id, "{name}");
            }
            Ok(())
        }));
        assert_eq!(got, fields["expect"], "{name}");
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} envelope files");
}

// The fuzzer's seed corpus.

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    for v in vectors() {
        let bytes = v.payload.unwrap_or_default();
        if !seeds.iter().any(|(_, b)| *b == bytes) {
            seeds.push((v.name.trim_start_matches("envelope-").to_owned(), bytes));
        }
    }
    let long = RawEnvelope { publisher: vec![b'p'; 64], ..RawEnvelope::new(false, true, u64::MAX, &[0xa5; 300]) };
    seeds.push(("long-publisher-max-sequence".to_owned(), long.build()));
    seeds.push(("header-only".to_owned(), b"SMQW\x01\x02".to_vec()));
    seeds.push(("empty".to_owned(), Vec::new()));
    seeds
}

/// Builds the seed corpus of `wire/fuzz` for `envelope_decode` and checks the committed copy against it; with
/// `SMQTT_WRITE_FUZZ_CORPUS=1` (re)writes it. Also checks that the fuzz target uses the fixture's keys and topic,
/// so that mutations of the valid seeds reach the signature check and the AEAD.
#[test]
fn fuzz_corpus() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let root = fuzz.join("corpus/envelope_decode");
    let seeds = corpus();
    if writing("SMQTT_WRITE_FUZZ_CORPUS") {
        if root.exists() {
            ok(std::fs::remove_dir_all(&root));
        }
        ok(std::fs::create_dir_all(&root));
        for (name, bytes) in &seeds {
            ok(std::fs::write(root.join(name), bytes));
        }
    }
    for (name, bytes) in &seeds {
        let committed = std::fs::read(root.join(name)).unwrap_or_else(|e| panic!("seed {name}: {e}"));
        assert_eq!(&committed, bytes, "seed {name} is stale");
    }
    let target = ok(std::fs::read_to_string(fuzz.join("fuzz_targets/envelope_decode.rs")));
    for needle in
        [hex(fame().data_key.expose_secret()), format!("{:#04x}; 32]", DEVICE_SEED[0]), format!("\"{TOPIC}\"")]
    {
        assert!(target.contains(&needle), "envelope_decode.rs does not mention {needle}");
    }
}
