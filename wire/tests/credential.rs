//! Credentials: round trips, tampering, truncation, validity windows, attribute canonicality, key validation,
//! bounds, and arbitrary input.

mod common;

use common::{authority, body, credential, device, ed25519_torsion, ok, Raw, NOW};
use proptest::collection::vec;
use proptest::prelude::*;
use smqtt_abe::AttributeSet;
use smqtt_wire::limits::{MAX_CREDENTIAL_LEN, MAX_PUBLISH_FILTERS};
use smqtt_wire::{
    Credential, CredentialBody, DeviceId, Error, SigningKey, TopicFilter, UnverifiedCredential, VerifyingKey,
};

fn decode_verify(bytes: &[u8], now: u64) -> Result<smqtt_wire::VerifiedCredential, Error> {
    UnverifiedCredential::from_bytes(bytes)?.verify(&authority().verifying_key(), now)
}

fn malformed_reason(r: Result<impl std::fmt::Debug, Error>) -> &'static str {
    match r {
        Err(Error::Malformed { reason, .. }) => reason,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn round_trip() {
    let bytes = credential();
    let unverified = ok(UnverifiedCredential::from_bytes(&bytes));
    assert_eq!(unverified.device_id().as_str(), "sensor-7");
    let verified = ok(unverified.verify(&authority().verifying_key(), NOW));
    assert_eq!(verified.body(), &body());
    assert_eq!(verified.to_bytes(), &bytes[..]);
    assert_eq!(verified.clone().into_body(), body());
    // Signing the verified body again reproduces the bytes (Ed25519 is deterministic).
    assert_eq!(ok(verified.body().clone().sign(&authority())), bytes);
    assert_eq!(ok(Credential::verify(&bytes, &authority().verifying_key(), NOW)).body(), &body());
}

#[test]
fn may_publish_uses_every_filter() {
    let verified = ok(decode_verify(&credential(), NOW));
    assert!(verified.may_publish("plant/berlin/hall-3/temperature"));
    assert!(verified.may_publish("devices/sensor-7"));
    assert!(verified.may_publish("devices/sensor-7/status/battery"));
    assert!(!verified.may_publish("plant/berlin/hall-3/pressure"));
    assert!(!verified.may_publish("devices/sensor-8"));
    assert!(!verified.may_publish("plant/berlin/+/temperature"), "a filter is not a topic");
    assert!(!verified.may_publish(""));
}

#[test]
fn every_single_byte_flip_fails() {
    let bytes = credential();
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut damaged = bytes.clone();
            damaged[i] ^= mask;
            match decode_verify(&damaged, NOW) {
                Err(Error::BadSignature | Error::Malformed { .. }) => {}
                other => panic!("byte {i} ^ {mask:#04x}: {other:?}"),
            }
        }
    }
}

#[test]
fn every_truncation_is_malformed() {
    let bytes = credential();
    for len in 0..bytes.len() {
        assert_eq!(malformed_reason(UnverifiedCredential::from_bytes(&bytes[..len])), "truncated", "length {len}");
    }
}

#[test]
fn a_trailing_byte_is_rejected() {
    let mut bytes = credential();
    bytes.push(0);
    assert_eq!(malformed_reason(UnverifiedCredential::from_bytes(&bytes)), "trailing bytes");
}

#[test]
fn header_bytes_are_checked() {
    let bytes = credential();
    let with = |i: usize, v: u8| {
        let mut b = bytes.clone();
        b[i] = v;
        UnverifiedCredential::from_bytes(&b)
    };
    assert_eq!(malformed_reason(with(0, b'X')), "bad magic");
    assert_eq!(malformed_reason(with(4, 2)), "unsupported version");
    assert_eq!(malformed_reason(with(4, 0)), "unsupported version");
    assert_eq!(malformed_reason(with(5, 2)), "wrong kind");
}

#[test]
fn wrong_authority_key_is_a_bad_signature() {
    let other = SigningKey::from_bytes(&[0x33; 32]).verifying_key();
    let unverified = ok(UnverifiedCredential::from_bytes(&credential()));
    assert_eq!(unverified.verify(&other, NOW).err(), Some(Error::BadSignature));
    // Signed by the device instead of the authority.
    let forged = Raw::from_body(&body()).signed_by(&device());
    assert_eq!(decode_verify(&forged, NOW).err(), Some(Error::BadSignature));
    // A signature over the same bytes in another domain does not transfer.
    let raw = Raw::from_body(&body());
    let mut cross = raw.unsigned();
    let signature = authority().sign(smqtt_wire::KEY_REQUEST_DOMAIN, &cross);
    cross.extend_from_slice(&signature);
    assert_eq!(decode_verify(&cross, NOW).err(), Some(Error::BadSignature));
}

#[test]
fn validity_window_bounds() {
    let b = body();
    let at = |now| decode_verify(&credential(), now).map(|_| ()).err();
    assert_eq!(at(b.not_before - 1), Some(Error::NotYetValid));
    assert_eq!(at(0), Some(Error::NotYetValid));
    assert_eq!(at(b.not_before), None);
    assert_eq!(at(b.not_after - 1), None);
    assert_eq!(at(b.not_after), Some(Error::Expired));
    assert_eq!(at(u64::MAX), Some(Error::Expired));
}

#[test]
fn the_signature_is_checked_before_the_window() {
    let other = SigningKey::from_bytes(&[0x44; 32]);
    let expired = Raw::from_body(&body()).signed_by(&other);
    assert_eq!(decode_verify(&expired, u64::MAX).err(), Some(Error::BadSignature));
}

#[test]
fn an_empty_window_is_refused_on_both_sides() {
    let mut b = body();
    b.not_after = b.not_before;
    assert!(matches!(b.clone().sign(&authority()), Err(Error::Malformed { .. })));
    let signed = Raw::from_body(&b).signed_by(&authority());
    assert_eq!(malformed_reason(UnverifiedCredential::from_bytes(&signed)), "empty validity window");
    let mut raw = Raw::from_body(&body());
    raw.not_after = raw.not_before - 1;
    assert_eq!(
        malformed_reason(UnverifiedCredential::from_bytes(&raw.signed_by(&authority()))),
        "empty validity window"
    );
}

#[test]
fn non_canonical_attribute_text_is_rejected_even_when_signed() {
    for text in [
        "site:berlin, role:sensor, level = 3", // order
        "role:sensor,site:berlin,level=3",     // spacing
        "role:sensor, site:berlin, level = 03",
        "role:sensor, site:berlin, level = 3 ",
        "\"role:sensor\", site:berlin, level = 3", // needless quotes
        "ROLE:sensor, site:berlin, level = 3, ",   // trailing comma: does not parse
        "((",
    ] {
        let mut raw = Raw::from_body(&body());
        raw.attributes = text.as_bytes().to_vec();
        let signed = raw.signed_by(&authority());
        let unverified = ok(UnverifiedCredential::from_bytes(&signed));
        assert!(
            matches!(unverified.verify(&authority().verifying_key(), NOW), Err(Error::InvalidAttributes(_))),
            "{text:?}"
        );
    }
    // The canonical text itself is fine when written by the independent encoder.
    assert!(decode_verify(&Raw::from_body(&body()).signed_by(&authority()), NOW).is_ok());
}

#[test]
fn attribute_text_must_be_utf8() {
    let mut raw = Raw::from_body(&body());
    raw.attributes = vec![b'a', 0xff];
    assert_eq!(
        malformed_reason(UnverifiedCredential::from_bytes(&raw.signed_by(&authority()))),
        "attribute text is not UTF-8"
    );
}

#[test]
fn the_empty_attribute_set_round_trips() {
    let mut b = body();
    b.attributes = ok(AttributeSet::parse(""));
    b.publish.clear();
    let verified = ok(decode_verify(&ok(b.clone().sign(&authority())), NOW));
    assert_eq!(verified.body(), &b);
    assert!(!verified.may_publish("plant/berlin/x/temperature"));
}

#[test]
fn low_order_device_keys_are_rejected() {
    let torsion = ed25519_torsion();
    assert_eq!(torsion.len(), 8);
    for point in torsion {
        assert!(matches!(VerifyingKey::from_bytes(&point), Err(Error::Malformed { .. })), "{point:?}");
        let mut raw = Raw::from_body(&body());
        raw.device_key = point;
        let signed = raw.signed_by(&authority());
        assert_eq!(malformed_reason(UnverifiedCredential::from_bytes(&signed)), "invalid device key");
    }
}

/// The little-endian encoding of 2^255 − 19 + v, a non-canonical encoding of y = v.
fn non_canonical_y(v: u8) -> [u8; 32] {
    let mut bytes = [0xff; 32];
    bytes[31] = 0x7f;
    bytes[0] = 0xed + v; // v ≤ 18 keeps this below 2^255
    bytes
}

#[test]
fn non_canonical_device_keys_are_rejected() {
    let mut accepted_canonical = 0;
    for v in 0u8..=18 {
        let mut canonical = [0u8; 32];
        canonical[0] = v;
        for sign in [0u8, 0x80] {
            let mut c = canonical;
            c[31] |= sign;
            let mut n = non_canonical_y(v);
            n[31] |= sign;
            if VerifyingKey::from_bytes(&c).is_ok() {
                accepted_canonical += 1;
            }
            assert!(VerifyingKey::from_bytes(&n).is_err(), "y = p + {v}, sign {sign:#x}");
        }
    }
    // Some of the small y values are valid points of large order: the check above is not vacuous.
    assert!(accepted_canonical > 0);
    // x = 0 with the sign bit set (−0) is not canonical either (and y = ±1 is small order).
    let mut minus_zero = [0u8; 32];
    minus_zero[0] = 1;
    minus_zero[31] = 0x80;
    assert!(VerifyingKey::from_bytes(&minus_zero).is_err());
}

#[test]
fn device_ids_and_filters_are_validated_by_the_decoder() {
    type Change<'a> = &'a dyn Fn(&mut Raw);
    let cases: [(Change, &str); 7] = [
        (&|r| r.device_id = b"sensor 7".to_vec(), "invalid device id"),
        (&|r| r.device_id = b"..".to_vec(), "invalid device id"),
        (&|r| r.device_id = vec![], "device id length out of range"),
        (&|r| r.device_id = vec![b'a'; 65], "device id length out of range"),
        (&|r| r.publish = vec![b"sport/tennis#".to_vec()], "invalid topic filter"),
        (&|r| r.publish = vec![vec![]], "topic filter length out of range"),
        (&|r| r.publish = vec![vec![b'a'; 1025]], "topic filter length out of range"),
    ];
    for (change, reason) in cases {
        let mut raw = Raw::from_body(&body());
        change(&mut raw);
        assert_eq!(malformed_reason(UnverifiedCredential::from_bytes(&raw.signed_by(&authority()))), reason, "{raw:?}");
    }
    let mut raw = Raw::from_body(&body());
    raw.publish = vec![vec![0xc3]];
    assert_eq!(
        malformed_reason(UnverifiedCredential::from_bytes(&raw.signed_by(&authority()))),
        "topic filter is not UTF-8"
    );
}

#[test]
fn publish_filter_count_is_bounded() {
    let filter = ok(TopicFilter::new("a"));
    let mut b = body();
    b.publish = vec![filter.clone(); MAX_PUBLISH_FILTERS];
    let verified = ok(decode_verify(&ok(b.clone().sign(&authority())), NOW));
    assert_eq!(verified.body().publish.len(), MAX_PUBLISH_FILTERS);
    b.publish.push(filter);
    assert_eq!(b.clone().sign(&authority()), Err(Error::LimitExceeded { what: "publish filters", limit: 64 }));
    let raw = Raw::from_body(&b);
    assert_eq!(
        malformed_reason(UnverifiedCredential::from_bytes(&raw.signed_by(&authority()))),
        "too many publish filters"
    );
}

#[test]
fn total_size_is_bounded() {
    let long = ok(TopicFilter::new(&"a".repeat(1024)));
    let mut b = body();
    b.publish = vec![long; 16]; // 16 × 1026 bytes > 16 KiB
    assert_eq!(b.sign(&authority()), Err(Error::LimitExceeded { what: "credential bytes", limit: MAX_CREDENTIAL_LEN }));
    let mut big = credential();
    big.resize(MAX_CREDENTIAL_LEN + 1, 0);
    assert!(matches!(UnverifiedCredential::from_bytes(&big), Err(Error::LimitExceeded { .. })));
    // Just below the bound: still accepted.
    let mut b = body();
    b.publish = vec![ok(TopicFilter::new(&"a".repeat(1024))); 15];
    let bytes = ok(b.sign(&authority()));
    assert!(bytes.len() <= MAX_CREDENTIAL_LEN && bytes.len() > 15 * 1024);
    assert!(decode_verify(&bytes, NOW).is_ok());
}

#[test]
fn unverified_credentials_print_only_the_device() {
    let unverified = ok(UnverifiedCredential::from_bytes(&credential()));
    let printed = format!("{unverified:?}");
    assert!(printed.contains("sensor-7") && !printed.contains("berlin"), "{printed}");
}

fn arb_body() -> impl Strategy<Value = CredentialBody> {
    let id = "[A-Za-z0-9._-]{1,64}".prop_filter("reserved", |s| s != "." && s != "..");
    // The `x` keeps names clear of the policy keywords (`and`, `or`, `of`).
    let attrs = vec("x[a-z]{0,7}(:[a-z0-9]{1,8})?", 0..6);
    let filters =
        vec(prop_oneof!["[a-z]{0,6}(/[a-z]{0,6}){0,3}", Just("#".to_owned()), Just("+/x/#".to_owned())], 0..5);
    (id, any::<[u8; 32]>(), attrs, any::<u32>(), filters, any::<u64>(), any::<u64>(), 1u64..u64::MAX).prop_map(
        |(id, seed, attrs, level, filters, epoch, a, span)| {
            let mut attrs: Vec<String> = attrs;
            attrs.sort();
            attrs.dedup(); // a repeated attribute is an error, not a set
            attrs.push(format!("level = {level}"));
            CredentialBody {
                device_id: ok(DeviceId::new(&id)),
                device_key: SigningKey::from_bytes(&seed).verifying_key(),
                attributes: ok(AttributeSet::parse(&attrs.join(", "))),
                publish: filters.iter().filter_map(|f| TopicFilter::new(f).ok()).collect(),
                epoch,
                not_before: a.min(u64::MAX - span),
                not_after: a.min(u64::MAX - span) + span,
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..4096)) {
        let _ = UnverifiedCredential::from_bytes(&bytes).map(|u| u.verify(&authority().verifying_key(), NOW));
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(body in vec(any::<u8>(), 0..2048)) {
        let mut bytes = b"SMQW\x01\x01".to_vec();
        bytes.extend_from_slice(&body);
        let _ = UnverifiedCredential::from_bytes(&bytes).map(|u| u.verify(&authority().verifying_key(), NOW));
    }

    #[test]
    fn arbitrary_bodies_round_trip(body in arb_body()) {
        let bytes = body.clone().sign(&authority()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&bytes, &Raw::from_body(&body).signed_by(&authority()), "library and spec encoders differ");
        let verified = UnverifiedCredential::from_bytes(&bytes)
            .and_then(|u| u.verify(&authority().verifying_key(), body.not_before))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(verified.body(), &body);
    }

    #[test]
    fn mutated_credentials_never_verify(index in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let mut bytes = credential();
        let i = index.index(bytes.len());
        bytes[i] ^= mask;
        let rejected = matches!(decode_verify(&bytes, NOW), Err(Error::BadSignature | Error::Malformed { .. }));
        prop_assert!(rejected, "byte {} ^ {:#04x} was not rejected", i, mask);
    }
}
