//! Authority statements (`docs/wire.md` §10): known-answer files in `docs/vectors/wire/` re-derived byte for byte
//! and checked from the file alone, an independent encoder written from the spec, and properties against a plain
//! oracle. Regenerate after a deliberate format change with
//! `SMQTT_WRITE_VECTORS=1 cargo test --release -p smqtt-wire --test statement`.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{authority, device, hex, ok, parse, unhex, vectors_dir as dir, writing, Vector};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use smqtt_wire::{
    enrollment_token, enrollment_token_authority, DeviceId, EpochBody, EpochStatement, Error, KeyDelivery, KeyRequest,
    SigningKey, VerifyingKey, EPOCH_DOMAIN, KEY_DELIVERY_DOMAIN,
};

fn body() -> EpochBody {
    EpochBody { epoch: 5, started_at: 1_700_000_000, issued_at: 1_700_000_100, params_id: [0xab; 32] }
}

/// The body written field by field from §10.2, not by the library.
fn spec_body(b: &EpochBody) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [b.epoch, b.started_at, b.issued_at] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&b.params_id);
    out
}

fn spec_statement(b: &EpochBody, key: &SigningKey) -> String {
    let mut raw = spec_body(b);
    raw.extend_from_slice(&key.sign(EPOCH_DOMAIN, &spec_body(b)));
    format!("smqtt-epoch1.{}", URL_SAFE_NO_PAD.encode(raw))
}

fn statement_case(name: &'static str, comment: &'static str, by: &VerifyingKey, expect: &str, text: String) -> Vector {
    Vector {
        name,
        comment,
        fields: vec![("authority", hex(&by.to_bytes())), ("expect", expect.to_owned())],
        payload: Some(text.into_bytes()),
    }
}

fn flip_last_base64(text: &str) -> String {
    let mut raw = ok(URL_SAFE_NO_PAD.decode(&text["smqtt-epoch1.".len()..]));
    let n = raw.len() - 1;
    raw[n] ^= 1;
    format!("smqtt-epoch1.{}", URL_SAFE_NO_PAD.encode(raw))
}

fn request() -> KeyRequest {
    KeyRequest {
        device_id: ok(DeviceId::new("sensor-7")),
        timestamp: 1_700_000_200,
        nonce: [3; 16],
        reply_key: [9; 32],
    }
}

fn vectors() -> Vec<Vector> {
    let a = authority().verifying_key();
    let good = body().sign(&authority());
    let other = SigningKey::from_bytes(&[0x33; 32]).verifying_key();
    let mut ok_case =
        statement_case("epoch-statement-ok", "a valid epoch statement with these fields", &a, "ok", good.clone());
    let b = body();
    ok_case.fields.extend([
        ("authority seed", hex(&common::AUTHORITY_SEED)),
        ("epoch", b.epoch.to_string()),
        ("started at", b.started_at.to_string()),
        ("issued at", b.issued_at.to_string()),
        ("params id", hex(&b.params_id)),
    ]);
    let mut flipped_epoch = ok(URL_SAFE_NO_PAD.decode(&good["smqtt-epoch1.".len()..]));
    flipped_epoch[7] ^= 1;
    let mut v = vec![
        ok_case,
        statement_case(
            "epoch-statement-wrong-authority",
            "the same statement checked against another key",
            &other,
            "bad signature",
            good.clone(),
        ),
        statement_case(
            "epoch-statement-flipped-signature",
            "last signature byte flipped",
            &a,
            "bad signature",
            flip_last_base64(&good),
        ),
        statement_case(
            "epoch-statement-flipped-epoch",
            "lowest epoch byte flipped (epoch 4: a follower would go backwards)",
            &a,
            "bad signature",
            format!("smqtt-epoch1.{}", URL_SAFE_NO_PAD.encode(flipped_epoch)),
        ),
        statement_case(
            "epoch-statement-truncated",
            "last base64 character removed",
            &a,
            "malformed: wrong length",
            good[..good.len() - 4].to_owned(),
        ),
        statement_case(
            "epoch-statement-wrong-prefix",
            "version 2 prefix",
            &a,
            "malformed: unknown prefix",
            good.replace("smqtt-epoch1.", "smqtt-epoch2."),
        ),
        statement_case(
            "epoch-statement-unsigned-number",
            "a bare epoch number, as old epoch files held",
            &a,
            "malformed: unknown prefix",
            "5\n".to_owned(),
        ),
    ];
    let sealed = b"sealed key bytes (stand-in)".to_vec();
    let credential = b"credential bytes (stand-in)".to_vec();
    let delivery = KeyDelivery::new(&request(), 5, &[0xab; 32], &sealed, &credential);
    v.push(Vector {
        name: "key-delivery-signature",
        comment: "the authority's signature over a key delivery (section 10.3), fixture authority key",
        fields: vec![
            ("authority", hex(&a.to_bytes())),
            ("request signing bytes", hex(&request().signing_bytes())),
            ("epoch", "5".to_owned()),
            ("params id", hex(&[0xab; 32])),
            ("sealed", hex(&sealed)),
            ("credential", hex(&credential)),
            ("signing bytes", hex(&delivery.signing_bytes())),
            ("signature", hex(&delivery.sign(&authority()))),
        ],
        payload: None,
    });
    v
}

#[test]
fn statement_vectors_are_reproduced_byte_for_byte() {
    let dir = dir();
    if writing("SMQTT_WRITE_VECTORS") {
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

fn outcome(text: &str, key: &VerifyingKey) -> String {
    match EpochStatement::parse(text).and_then(|s| s.verify(key)) {
        Ok(_) => "ok".to_owned(),
        Err(Error::Malformed { reason, .. }) => format!("malformed: {reason}"),
        Err(Error::BadSignature) => "bad signature".to_owned(),
        Err(other) => other.to_string(),
    }
}

#[test]
fn statement_files_produce_their_expected_outcome() {
    let mut seen = 0;
    for entry in ok(std::fs::read_dir(dir())) {
        let path = ok(entry).path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !name.starts_with("epoch-statement-") {
            continue;
        }
        let (fields, bytes) = parse(&ok(std::fs::read_to_string(&path)));
        let key = ok(VerifyingKey::from_bytes(&ok(
            <[u8; 32]>::try_from(unhex(&fields["authority"])).map_err(|_| "32 bytes")
        )));
        let text = ok(String::from_utf8(bytes));
        assert_eq!(outcome(&text, &key), fields["expect"], "{name}");
        if fields["expect"] == "ok" {
            let verified = ok(ok(EpochStatement::parse(&text)).verify(&key));
            assert_eq!(verified.epoch().to_string(), fields["epoch"]);
            assert_eq!(hex(verified.params_id()), fields["params id"]);
        }
        seen += 1;
    }
    assert!(seen >= 7, "only {seen} statement files");
}

#[test]
fn key_delivery_file_checks_out_from_the_spec() {
    let (fields, _) = parse(&ok(std::fs::read_to_string(dir().join("key-delivery-signature.txt"))));
    let mut spec = Sha256::digest(unhex(&fields["request signing bytes"])).to_vec();
    spec.extend_from_slice(&ok(fields["epoch"].parse::<u64>()).to_be_bytes());
    spec.extend_from_slice(&unhex(&fields["params id"]));
    spec.extend_from_slice(&Sha256::digest(unhex(&fields["sealed"])));
    spec.extend_from_slice(&Sha256::digest(unhex(&fields["credential"])));
    assert_eq!(hex(&spec), fields["signing bytes"]);
    let signature: [u8; 64] = ok(unhex(&fields["signature"]).try_into().map_err(|_| "64 bytes"));
    assert_eq!(authority().verifying_key().verify(KEY_DELIVERY_DOMAIN, &spec, &signature), Ok(()));
    // Any other sealed key, credential, epoch or request does not carry the signature.
    let sealed = unhex(&fields["sealed"]);
    let credential = unhex(&fields["credential"]);
    let a = authority().verifying_key();
    for (req, epoch, sealed, credential) in [
        (KeyRequest { nonce: [4; 16], ..request() }, 5, sealed.clone(), credential.clone()),
        (request(), 6, sealed.clone(), credential.clone()),
        (request(), 5, b"another sealed key".to_vec(), credential.clone()),
        (request(), 5, sealed.clone(), b"another credential".to_vec()),
    ] {
        let delivery = KeyDelivery::new(&req, epoch, &[0xab; 32], &sealed, &credential);
        assert_eq!(delivery.verify(&a, &signature), Err(Error::BadSignature));
    }
    // A device key cannot sign deliveries for the authority.
    let forged = KeyDelivery::new(&request(), 5, &[0xab; 32], &sealed, &credential).sign(&device());
    assert_eq!(
        KeyDelivery::new(&request(), 5, &[0xab; 32], &sealed, &credential).verify(&a, &forged),
        Err(Error::BadSignature)
    );
}

proptest! {
    /// The library's encoding equals the spec's, and verification accepts exactly the authority's statement.
    #[test]
    fn statements_match_the_spec_oracle(epoch: u64, started: u64, issued: u64, params in any::<[u8; 32]>()) {
        let b = EpochBody { epoch, started_at: started, issued_at: issued, params_id: params };
        prop_assert_eq!(b.signing_bytes().to_vec(), spec_body(&b));
        let text = b.sign(&authority());
        prop_assert_eq!(&text, &spec_statement(&b, &authority()));
        prop_assert_eq!(text.len(), 173);
        let verified = EpochStatement::parse(&text).and_then(|s| s.verify(&authority().verifying_key()));
        prop_assert_eq!(verified.map(|v| *v.body()), Ok(b));
    }

    /// Arbitrary text never panics and never verifies.
    #[test]
    fn arbitrary_text_is_refused(text in ".{0,300}") {
        let verified = EpochStatement::parse(&text).and_then(|s| s.verify(&authority().verifying_key()));
        prop_assert!(verified.is_err());
        let _ = enrollment_token_authority(&text);
    }

    /// A token pins exactly the key it was made with.
    #[test]
    fn tokens_pin_their_key(secret in any::<[u8; 32]>(), seed in any::<[u8; 32]>()) {
        let key = SigningKey::from_bytes(&seed).verifying_key();
        prop_assert_eq!(enrollment_token_authority(&enrollment_token(&secret, &key)), Ok(key));
    }
}
