//! Known-answer files in `docs/vectors/wire/` (format in `docs/wire.md` §8) and the seed corpus of
//! `wire/fuzz/`.
//!
//! Everything is derived from fixed keys (Ed25519 is deterministic, and the key delivery's ephemeral secret is
//! fixed too), so the normal run re-derives every file and requires it byte for byte, then runs each file's
//! `expect:` line through the public API. Regenerate after a deliberate format change with
//!
//! ```sh
//! SMQTT_WRITE_VECTORS=1 cargo test --release -p smqtt-wire --test vectors
//! SMQTT_WRITE_FUZZ_CORPUS=1 cargo test --release -p smqtt-wire --test vectors fuzz_corpus
//! ```

mod common;

use std::path::Path;

use common::{
    authority, body, device, ed25519_torsion, hex, ok, parse, unhex, vectors_dir as dir, writing, Raw, Vector, NOW,
};
use smqtt_wire::{seal_to, DeviceId, Error, KeyRequest, ReplySecret, SigningKey, UnverifiedCredential, VerifyingKey};

fn credential_case(name: &'static str, comment: &'static str, now: u64, expect: &str, bytes: Vec<u8>) -> Vector {
    credential_case_by(name, comment, &authority().verifying_key(), now, expect, bytes)
}

fn credential_case_by(
    name: &'static str,
    comment: &'static str,
    authority: &VerifyingKey,
    now: u64,
    expect: &str,
    bytes: Vec<u8>,
) -> Vector {
    let fields =
        vec![("authority", hex(&authority.to_bytes())), ("now", now.to_string()), ("expect", expect.to_owned())];
    Vector { name, comment, fields, payload: Some(bytes) }
}

/// RFC 7748 §6.1's key pair: Alice's is the device's reply secret, Bob's the authority's ephemeral secret.
const REPLY_SECRET: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const REPLY_PUBLIC: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
const EPHEMERAL_SECRET: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
const EPHEMERAL_PUBLIC: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";

fn key32(hex: &str) -> [u8; 32] {
    unhex(hex).try_into().unwrap_or_else(|_| panic!("32 bytes"))
}

/// An "RNG" that hands out the given bytes: makes `seal_to`'s ephemeral secret a known answer.
struct Fixed(Vec<u8>);

impl rand_core::RngCore for Fixed {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        assert!(dest.len() <= self.0.len(), "fixed RNG exhausted");
        dest.copy_from_slice(&self.0[..dest.len()]);
        self.0.drain(..dest.len());
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for Fixed {}

fn request() -> KeyRequest {
    KeyRequest {
        device_id: ok(DeviceId::new("sensor-7")),
        timestamp: 1_700_000_200,
        nonce: *b"0123456789abcdef",
        reply_key: key32(REPLY_PUBLIC),
    }
}

fn vectors() -> Vec<Vector> {
    let good = common::credential();
    let b = body();
    let signed = |f: &dyn Fn(&mut Raw)| {
        let mut raw = Raw::from_body(&b);
        f(&mut raw);
        raw.signed_by(&authority())
    };
    let mutate = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = good.clone();
        f(&mut bytes);
        bytes
    };
    let other = SigningKey::from_bytes(&[0x33; 32]).verifying_key();
    let epoch_at = good.len() - 64 - 24;
    let mut ok_case = credential_case("credential-ok", "a valid credential with these fields", NOW, "ok", good.clone());
    ok_case.fields.extend([
        ("authority seed", hex(&common::AUTHORITY_SEED)),
        ("device seed", hex(&common::DEVICE_SEED)),
        ("device id", b.device_id.to_string()),
        ("device key", hex(&b.device_key.to_bytes())),
        ("attributes", b.attributes.to_string()),
        ("publish", b.publish.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(" ")),
        ("epoch", b.epoch.to_string()),
        ("not before", b.not_before.to_string()),
        ("not after", b.not_after.to_string()),
    ]);
    let mut v = vec![
        ok_case,
        credential_case(
            "credential-expired",
            "the same credential at now = not_after",
            b.not_after,
            "expired",
            good.clone(),
        ),
        credential_case(
            "credential-not-yet-valid",
            "the same credential at now = not_before - 1",
            b.not_before - 1,
            "not yet valid",
            good.clone(),
        ),
        credential_case_by(
            "credential-wrong-authority",
            "the same credential checked against another authority key",
            &other,
            NOW,
            "bad signature",
            good.clone(),
        ),
        credential_case(
            "credential-flipped-signature",
            "last byte of the signature flipped",
            NOW,
            "bad signature",
            mutate(&|x| {
                let n = x.len() - 1;
                x[n] ^= 1
            }),
        ),
        credential_case(
            "credential-flipped-epoch",
            "lowest byte of the epoch flipped (structure still valid)",
            NOW,
            "bad signature",
            mutate(&|x| x[epoch_at + 7] ^= 1),
        ),
        credential_case(
            "credential-truncated",
            "the signature's last byte removed",
            NOW,
            "malformed: truncated",
            good[..good.len() - 1].to_vec(),
        ),
        credential_case(
            "credential-trailing",
            "one byte appended",
            NOW,
            "malformed: trailing bytes",
            mutate(&|x| x.push(0)),
        ),
        credential_case(
            "credential-wrong-version",
            "version byte 2",
            NOW,
            "malformed: unsupported version",
            mutate(&|x| x[4] = 2),
        ),
        credential_case("credential-wrong-kind", "kind byte 2", NOW, "malformed: wrong kind", mutate(&|x| x[5] = 2)),
        credential_case(
            "credential-low-order-device-key",
            "signed, device key = a point of order 8",
            NOW,
            "malformed: invalid device key",
            signed(&|r| r.device_key = ed25519_torsion()[1]),
        ),
        credential_case(
            "credential-attributes-not-canonical",
            "signed, attribute text in non-canonical order",
            NOW,
            "invalid attributes",
            signed(&|r| r.attributes = b"site:berlin, role:sensor, level = 3".to_vec()),
        ),
        credential_case(
            "credential-empty-window",
            "signed, not_after = not_before",
            NOW,
            "malformed: empty validity window",
            signed(&|r| r.not_after = r.not_before),
        ),
        credential_case(
            "credential-bad-filter",
            "signed, publish filter sport/tennis#",
            NOW,
            "malformed: invalid topic filter",
            signed(&|r| r.publish = vec![b"sport/tennis#".to_vec()]),
        ),
    ];

    let req = request();
    v.push(Vector {
        name: "key-request",
        comment: "a key request: device key from seed 0x22 x 32, signature over the signing bytes in domain smqtt/key-request/v1",
        fields: vec![
            ("device key", hex(&device().verifying_key().to_bytes())),
            ("signing bytes", hex(&req.signing_bytes())),
            ("signature", hex(&req.sign(&device()))),
        ],
        payload: None,
    });
    let plaintext = b"SMQA user key (stand-in)";
    let context = req.signing_bytes();
    let sealed = ok(seal_to(&req.reply_key, &context, plaintext, &mut Fixed(unhex(EPHEMERAL_SECRET))));
    v.push(Vector {
        name: "key-delivery",
        comment: "seal_to(reply public, context, plaintext) with the given ephemeral secret (RFC 7748 section 6.1 keys); payload = sealed",
        fields: vec![
            ("reply secret", REPLY_SECRET.to_owned()),
            ("reply public", REPLY_PUBLIC.to_owned()),
            ("ephemeral secret", EPHEMERAL_SECRET.to_owned()),
            ("context", hex(&context)),
            ("plaintext", hex(plaintext)),
        ],
        payload: Some(sealed),
    });
    v
}

#[test]
fn vectors_are_reproduced_byte_for_byte() {
    let dir = dir();
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

fn outcome(r: Result<smqtt_wire::VerifiedCredential, Error>) -> String {
    match r {
        Ok(_) => "ok".to_owned(),
        Err(Error::Malformed { reason, .. }) => format!("malformed: {reason}"),
        Err(Error::BadSignature) => "bad signature".to_owned(),
        Err(Error::InvalidAttributes(_)) => "invalid attributes".to_owned(),
        Err(Error::Expired) => "expired".to_owned(),
        Err(Error::NotYetValid) => "not yet valid".to_owned(),
        Err(other) => format!("{other}"),
    }
}

/// Runs every credential file through the decoder as a second implementation would: from the file alone.
#[test]
fn credential_files_produce_their_expected_outcome() {
    let mut seen = 0;
    for entry in ok(std::fs::read_dir(dir())) {
        let path = ok(entry).path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !name.starts_with("credential-") {
            continue;
        }
        let (fields, bytes) = parse(&ok(std::fs::read_to_string(&path)));
        let authority = ok(VerifyingKey::from_bytes(&key32(&fields["authority"])));
        let now: u64 = ok(fields["now"].parse());
        let got = outcome(UnverifiedCredential::from_bytes(&bytes).and_then(|u| u.verify(&authority, now)));
        assert_eq!(got, fields["expect"], "{name}");
        seen += 1;
    }
    assert!(seen >= 14, "only {seen} credential files");
}

#[test]
fn key_request_and_delivery_files_check_out() {
    let (fields, _) = parse(&ok(std::fs::read_to_string(dir().join("key-request.txt"))));
    let device = ok(VerifyingKey::from_bytes(&key32(&fields["device key"])));
    let signature: [u8; 64] = unhex(&fields["signature"]).try_into().unwrap_or_else(|_| panic!("64 bytes"));
    assert_eq!(device.verify(smqtt_wire::KEY_REQUEST_DOMAIN, &unhex(&fields["signing bytes"]), &signature), Ok(()));
    assert_eq!(request().verify(&device, &signature), Ok(()));

    let (fields, sealed) = parse(&ok(std::fs::read_to_string(dir().join("key-delivery.txt"))));
    let secret = ReplySecret::from_bytes(&key32(&fields["reply secret"]));
    assert_eq!(hex(&secret.public()), fields["reply public"]);
    assert_eq!(hex(&sealed[..32]), EPHEMERAL_PUBLIC, "the ephemeral public key of RFC 7748 section 6.1");
    let opened = ok(secret.open(&unhex(&fields["context"]), &sealed));
    assert_eq!(hex(&opened), fields["plaintext"]);
}

// The fuzzer's seed corpus.

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    for v in vectors().into_iter().filter(|v| v.name.starts_with("credential-")) {
        let bytes = v.payload.unwrap_or_default();
        if !seeds.iter().any(|(_, b)| *b == bytes) {
            seeds.push((v.name.trim_start_matches("credential-").to_owned(), bytes));
        }
    }
    let mut empty = body();
    empty.attributes = ok(smqtt_abe::AttributeSet::parse(""));
    empty.publish.clear();
    seeds.push(("empty-attributes-no-filters".to_owned(), ok(empty.sign(&authority()))));
    let mut wide = body();
    wide.publish = (0..64).map(|i| ok(smqtt_wire::TopicFilter::new(&format!("t/{i}/+/#")))).collect();
    seeds.push(("64-filters".to_owned(), ok(wide.sign(&authority()))));
    seeds.push(("header-only".to_owned(), b"SMQW\x01\x01".to_vec()));
    seeds.push(("empty".to_owned(), Vec::new()));
    seeds
}

/// Builds the seed corpus of `wire/fuzz` and checks the committed copy against it; with
/// `SMQTT_WRITE_FUZZ_CORPUS=1` (re)writes it.
#[test]
fn fuzz_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/credential_decode");
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
}
