//! CONNECT tokens: the valid case, every binding (client id, username, time, authority, device key), tampering
//! anywhere in the text, bounds, and arbitrary input.

mod common;

use common::{authority, body, credential, device, ok, NOW};
use proptest::prelude::*;
use smqtt_wire::limits::MAX_CONNECT_TOKEN_LEN;
use smqtt_wire::{ConnectToken, DeviceId, Error, SigningKey, CONNECT_DOMAIN};

const CLIENT: &str = "sensor-7-main";
const USER: &str = "sensor-7";
const SKEW: u64 = 120;

fn token_at(time: u64) -> String {
    ok(ConnectToken::create(&device(), &credential(), CLIENT, time))
}

fn check(token: &str, client: &str, user: &str, now: u64) -> Result<smqtt_wire::VerifiedCredential, Error> {
    ConnectToken::verify(token, client, user, &authority().verifying_key(), now, SKEW)
}

#[test]
fn valid_token_verifies_within_the_skew() {
    let token = token_at(NOW);
    assert!(token.is_ascii());
    assert!(token.starts_with("smqtt1."));
    let verified = ok(check(&token, CLIENT, USER, NOW));
    assert_eq!(verified.body(), &body());
    assert_eq!(verified.to_bytes(), &credential()[..]);
    // (NOW is 100 s into the credential's window.)
    for now in [NOW - 100, NOW + SKEW, NOW + 1] {
        assert!(check(&token, CLIENT, USER, now).is_ok(), "{now}");
    }
}

#[test]
fn the_layout_is_as_documented() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = token_at(NOW);
    let fields: Vec<&str> = token.split('.').collect();
    assert_eq!(fields.len(), 3);
    assert_eq!(fields[0], "smqtt1");
    assert_eq!(ok(b64.decode(fields[1])), credential());
    let proof = ok(b64.decode(fields[2]));
    assert_eq!(proof.len(), 72);
    assert_eq!(proof[..8], NOW.to_be_bytes());
    // The signature is the device's over the documented bytes, recomputed here independently.
    use sha2::Digest as _;
    let mut message = Vec::new();
    message.extend_from_slice(&(CLIENT.len() as u16).to_be_bytes());
    message.extend_from_slice(CLIENT.as_bytes());
    message.push(USER.len() as u8);
    message.extend_from_slice(USER.as_bytes());
    message.extend_from_slice(&NOW.to_be_bytes());
    message.extend_from_slice(&sha2::Sha256::digest(credential()));
    assert_eq!(ok(ConnectToken::signing_bytes(CLIENT, USER, NOW, &credential())), message);
    let signature: [u8; 64] = ok(proof[8..].try_into());
    assert_eq!(device().verifying_key().verify(CONNECT_DOMAIN, &message, &signature), Ok(()));
}

#[test]
fn wrong_client_id_or_username_is_refused() {
    let token = token_at(NOW);
    assert_eq!(check(&token, "sensor-7-other", USER, NOW).err(), Some(Error::BadSignature));
    assert_eq!(check(&token, "", USER, NOW).err(), Some(Error::BadSignature));
    assert_eq!(check(&token, CLIENT, "sensor-8", NOW).err(), Some(Error::WrongDevice));
    assert_eq!(check(&token, CLIENT, "", NOW).err(), Some(Error::WrongDevice));
}

#[test]
fn stale_and_future_tokens_are_refused() {
    let token = token_at(NOW);
    assert_eq!(check(&token, CLIENT, USER, NOW + SKEW + 1).err(), Some(Error::StaleToken));
    assert_eq!(check(&token, CLIENT, USER, NOW - SKEW - 1).err(), Some(Error::StaleToken));
    // A token minted far in the future (inside the credential's window) is refused now.
    assert_eq!(check(&token_at(NOW + 3600), CLIENT, USER, NOW).err(), Some(Error::StaleToken));
    // Skew 0: only the exact second.
    let strict = |now| ConnectToken::verify(&token, CLIENT, USER, &authority().verifying_key(), now, 0);
    assert!(strict(NOW).is_ok());
    assert_eq!(strict(NOW + 1).err(), Some(Error::StaleToken));
    // Extreme clocks do not overflow.
    assert_eq!(check(&token_at(u64::MAX), CLIENT, USER, 0).err(), Some(Error::StaleToken));
}

#[test]
fn credential_checks_apply() {
    // A fresh token over an expired or not-yet-valid credential.
    let late = body().not_after + 10;
    assert_eq!(check(&token_at(late), CLIENT, USER, late).err(), Some(Error::Expired));
    let early = body().not_before - 10;
    assert_eq!(check(&token_at(early), CLIENT, USER, early).err(), Some(Error::NotYetValid));
    // Another authority's key does not vouch for it; a credential signed by another authority is refused.
    let foreign = SigningKey::from_bytes(&[0x99; 32]);
    let token = token_at(NOW);
    assert_eq!(
        ConnectToken::verify(&token, CLIENT, USER, &foreign.verifying_key(), NOW, SKEW).err(),
        Some(Error::BadSignature)
    );
    let forged = ok(body().sign(&foreign));
    let token = ok(ConnectToken::create(&device(), &forged, CLIENT, NOW));
    assert_eq!(check(&token, CLIENT, USER, NOW).err(), Some(Error::BadSignature));
}

#[test]
fn someone_elses_credential_is_useless() {
    // Mallory holds sensor-7's (public) credential but not its device key.
    let mallory = SigningKey::from_bytes(&[0x33; 32]);
    let token = ok(ConnectToken::create(&mallory, &credential(), CLIENT, NOW));
    assert_eq!(check(&token, CLIENT, USER, NOW).err(), Some(Error::BadSignature));
    // Her own credential names her, not sensor-7.
    let mut hers = body();
    hers.device_id = ok(DeviceId::new("mallory"));
    hers.device_key = mallory.verifying_key();
    let token = ok(ConnectToken::create(&mallory, &ok(hers.sign(&authority())), CLIENT, NOW));
    assert_eq!(check(&token, CLIENT, USER, NOW).err(), Some(Error::WrongDevice));
    assert!(check(&token, CLIENT, "mallory", NOW).is_ok());
}

#[test]
fn every_character_change_is_refused() {
    let token = token_at(NOW);
    let bytes = token.as_bytes();
    for i in 0..bytes.len() {
        for replacement in [b'A', b'_', b'.', b'=', b' ', b'z'] {
            if bytes[i] == replacement {
                continue;
            }
            let mut damaged = bytes.to_vec();
            damaged[i] = replacement;
            let damaged = String::from_utf8(damaged).unwrap_or_else(|e| panic!("{e}"));
            assert!(check(&damaged, CLIENT, USER, NOW).is_err(), "accepted a change at {i} to {replacement}");
        }
    }
    // Truncations and extensions.
    for end in 0..token.len() {
        assert!(check(&token[..end], CLIENT, USER, NOW).is_err(), "accepted a truncation to {end}");
    }
    for suffix in ["A", ".", "=", ".x"] {
        assert!(check(&format!("{token}{suffix}"), CLIENT, USER, NOW).is_err(), "accepted suffix {suffix}");
    }
}

#[test]
fn garbage_and_oversize_are_typed_errors() {
    for garbage in ["", ".", "..", "smqtt1", "smqtt1..", "smqtt1.AAAA.AAAA", "smqtt2.a.b", "hunter2", "smqtt1.é.é"] {
        assert!(matches!(check(garbage, CLIENT, USER, NOW), Err(Error::Malformed { .. })), "{garbage:?}");
    }
    let huge = format!("smqtt1.{}.x", "A".repeat(MAX_CONNECT_TOKEN_LEN));
    assert_eq!(
        check(&huge, CLIENT, USER, NOW).err(),
        Some(Error::LimitExceeded { what: "connect token bytes", limit: MAX_CONNECT_TOKEN_LEN })
    );
    // Creation refuses what is not a credential and client ids beyond the u16 length prefix.
    assert!(matches!(ConnectToken::create(&device(), b"nope", CLIENT, NOW), Err(Error::Malformed { .. })));
    assert!(matches!(
        ConnectToken::create(&device(), &credential(), &"c".repeat(70_000), NOW),
        Err(Error::LimitExceeded { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}", client in ".{0,40}", user in ".{0,40}", now in any::<u64>()) {
        let _ = check(&text, &client, &user, now);
        let _ = check(&format!("smqtt1.{text}"), &client, &user, now);
    }

    #[test]
    fn mutated_tokens_never_verify(index in any::<prop::sample::Index>(), byte in 0x21u8..0x7f) {
        let token = token_at(NOW);
        let mut damaged = token.clone().into_bytes();
        let i = index.index(damaged.len());
        prop_assume!(damaged[i] != byte);
        damaged[i] = byte;
        let damaged = String::from_utf8(damaged).unwrap_or_else(|e| panic!("{e}"));
        prop_assert!(check(&damaged, CLIENT, USER, NOW).is_err());
    }
}

/// The seed corpus of `wire/fuzz`'s `connect_token` target (first byte: client id length, then client id and
/// token), checked to be current; `SMQTT_WRITE_FUZZ_CORPUS=1` (re)writes it.
#[test]
fn fuzz_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/connect_token");
    let seed = |client: &str, token: &str| {
        let mut bytes = vec![client.len() as u8];
        bytes.extend_from_slice(client.as_bytes());
        bytes.extend_from_slice(token.as_bytes());
        bytes
    };
    let seeds = [
        ("ok", seed(CLIENT, &token_at(NOW))),
        ("stale", seed(CLIENT, &token_at(NOW - 3600))),
        ("other-client", seed("x", &token_at(NOW))),
        ("empty", Vec::new()),
    ];
    if common::writing("SMQTT_WRITE_FUZZ_CORPUS") {
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
