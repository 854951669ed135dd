//! Secrets at rest: round trips, wrong secrets, and every modified byte detected.

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use smqtt_authority::{seal, unseal, Error, Secrets, UnsealWith};
use zeroize::Zeroizing;

fn secrets(seed: u64) -> Secrets {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (public_key, master_key) = smqtt_abe::setup(&mut rng).expect("setup");
    Secrets { public_key, master_key, signing_key: smqtt_wire::SigningKey::generate(&mut rng), state_macs: true }
}

fn same(a: &Secrets, b: &Secrets) -> bool {
    a.public_key.to_bytes() == b.public_key.to_bytes()
        && *a.master_key.to_bytes() == *b.master_key.to_bytes()
        && a.signing_key.verifying_key() == b.signing_key.verifying_key()
        && a.state_macs == b.state_macs
}

#[test]
fn key_file_round_trip_and_every_flipped_byte_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("k");
    std::fs::write(&key, [9u8; 32]).expect("key");
    let with = UnsealWith::KeyFile(key.clone());
    let original = secrets(1);
    let sealed = seal(&original, &with, &mut ChaCha20Rng::seed_from_u64(2)).expect("seal");
    assert!(same(&unseal(&sealed, &with).expect("unseal"), &original));
    // No secret appears in the clear.
    let msk = original.master_key.to_bytes();
    assert!(!sealed.windows(32).any(|w| w == &msk[msk.len() - 32..]));
    for i in 0..sealed.len() {
        let mut bytes = sealed.clone();
        bytes[i] ^= 0x80;
        assert!(unseal(&bytes, &with).is_err(), "byte {i} flipped and still unsealed");
    }
    for len in [0, 1, 10, 57, 58, sealed.len() - 1] {
        assert!(matches!(unseal(&sealed[..len], &with), Err(Error::Unseal)), "truncated to {len}");
    }
    let mut longer = sealed.clone();
    longer.push(0);
    assert!(unseal(&longer, &with).is_err());
    // Another key file does not open it.
    let other = dir.path().join("other");
    std::fs::write(&other, [8u8; 32]).expect("key");
    assert!(matches!(unseal(&sealed, &UnsealWith::KeyFile(other)), Err(Error::Unseal)));
    // A passphrase is the wrong kind of secret for this file.
    let pass = UnsealWith::Passphrase(Zeroizing::new("x".into()));
    assert!(matches!(unseal(&sealed, &pass), Err(Error::Config { .. })));
    // A too-short key file is refused when sealing.
    let short = dir.path().join("short");
    std::fs::write(&short, [1u8; 8]).expect("key");
    assert!(matches!(seal(&original, &UnsealWith::KeyFile(short), &mut rand_core::OsRng), Err(Error::Config { .. })));
}

#[test]
fn passphrase_round_trip_and_wrong_passphrase() {
    let with = UnsealWith::Passphrase(Zeroizing::new("correct horse battery staple".into()));
    let original = secrets(3);
    let sealed = seal(&original, &with, &mut rand_core::OsRng).expect("seal");
    assert!(same(&unseal(&sealed, &with).expect("unseal"), &original));
    let wrong = UnsealWith::Passphrase(Zeroizing::new("correct horse battery stapler".into()));
    assert!(matches!(unseal(&sealed, &wrong), Err(Error::Unseal)));
    // Argon2 costs live in the authenticated header: lowering them does not help an attacker.
    let mut cheaper = sealed.clone();
    cheaper[6..10].copy_from_slice(&8u32.to_be_bytes());
    assert!(matches!(unseal(&cheaper, &with), Err(Error::Unseal)));
    // Absurd costs are refused before any work.
    let mut absurd = sealed.clone();
    absurd[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(unseal(&absurd, &with), Err(Error::Unseal)));
    // Debug output of the secret holder never shows the passphrase.
    assert!(!format!("{with:?}").contains("horse"));
    assert!(!format!("{original:?}").contains(&format!("{:?}", &*original.signing_key.to_bytes())));
}

/// The flag that the database has row MACs is inside the seal: version 2 carries it, version 1 (the format from
/// before it) does not, and the version byte is authenticated, so nobody without the secret turns one into the
/// other.
#[test]
fn the_state_macs_flag_is_sealed_and_version_1_is_read_without_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("k");
    std::fs::write(&key, [9u8; 32]).expect("key");
    let with = UnsealWith::KeyFile(key);
    let mut original = secrets(4);
    let flagged = seal(&original, &with, &mut rand_core::OsRng).expect("seal");
    assert_eq!(flagged[4], 2);
    assert!(unseal(&flagged, &with).expect("unseal").state_macs);
    original.state_macs = false;
    let older = seal(&original, &with, &mut rand_core::OsRng).expect("seal");
    assert_eq!((older[4], older.len() + 1), (1, flagged.len()));
    assert!(same(&unseal(&older, &with).expect("unseal"), &original));
    for (bytes, version) in [(&flagged, 1), (&older, 2)] {
        let mut relabelled = bytes.clone();
        relabelled[4] = version;
        assert!(matches!(unseal(&relabelled, &with), Err(Error::Unseal)), "relabelled as version {version}");
    }
}
