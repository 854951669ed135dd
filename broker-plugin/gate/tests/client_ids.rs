//! Client-id spaces, from the attacker's side: with a valid credential of its own (or none), nobody may connect
//! with a client id outside its own space, since the broker would hand it that id's session (the live
//! connection is kicked; with `clean_session = false` its subscriptions and queued messages are resumed).

use smqtt_gate::{Gate, RefusalReason, Role};
use smqtt_testkit::credentials::{ok, password_hash, Fixture};

fn reason<T: std::fmt::Debug>(r: Result<T, smqtt_gate::Refusal>) -> RefusalReason {
    match r {
        Err(refusal) => refusal.reason,
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

fn counter(gate: &Gate, line: &str) -> u64 {
    gate.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(line).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no metric {line}"))
}

const REFUSED: &str = r#"smqtt_gate_refused_total{check="connect",reason="client_id_not_owned"}"#;

/// Anonymous clients allowed, one legacy client `meter-1` (password "meter-1 pw") and one `meter-2`.
fn gate(f: &Fixture) -> Gate {
    f.gate(&format!(
        "[anonymous]\nallow = true\nsubscribe = [\"public/#\"]\n\
         [[legacy]]\nusername = \"meter-1\"\npassword_hash = \"{}\"\npublish = [\"legacy/meter-1/#\"]\n\
         [[legacy]]\nusername = \"meter-2\"\npassword_hash = \"{}\"\npublish = [\"legacy/meter-2/#\"]\n",
        password_hash("meter-1 pw"),
        password_hash("meter-2 pw"),
    ))
}

#[test]
fn a_device_connects_with_its_own_id_and_its_own_suffixes() {
    let f = Fixture::new();
    let gate = gate(&f);
    let bob = f.device("bob", &["plant/#"]);
    for client_id in ["bob", "bob/phone", "bob/a/b", "bob/anon:x"] {
        let session = ok(gate.authenticate(client_id, Some("bob"), Some(bob.token(client_id).as_bytes())));
        assert_eq!((session.device_id(), session.client_id()), (Some("bob"), client_id));
    }
    assert_eq!(counter(&gate, REFUSED), 0);
}

#[test]
fn a_device_with_a_valid_token_cannot_take_another_devices_client_id() {
    let f = Fixture::new();
    let gate = gate(&f);
    let mallory = f.device("mallory", &["plant/#"]);
    // Tokens made for the foreign ids: the credential is valid, only the id is not mallory's.
    for client_id in ["bob", "bob/x", "mallory-2", "malloryx", "mallory/", "Mallory", "x/mallory", ""] {
        let token = mallory.token(client_id);
        assert_eq!(
            reason(gate.authenticate(client_id, Some("mallory"), Some(token.as_bytes()))),
            RefusalReason::ClientIdNotOwned,
            "{client_id:?}"
        );
    }
    assert_eq!(counter(&gate, REFUSED), 8);
}

#[test]
fn a_device_cannot_squat_the_anonymous_or_legacy_space() {
    let f = Fixture::new();
    let gate = gate(&f);
    let mallory = f.device("mallory", &["plant/#"]);
    for client_id in ["anon:watcher", "legacy:meter-1", "legacy:mallory"] {
        let token = mallory.token(client_id);
        assert_eq!(
            reason(gate.authenticate(client_id, Some("mallory"), Some(token.as_bytes()))),
            RefusalReason::ClientIdNotOwned,
            "{client_id:?}"
        );
    }
}

#[test]
fn an_anonymous_impostor_cannot_take_a_device_or_legacy_client_id() {
    let f = Fixture::new();
    let gate = gate(&f);
    for client_id in ["bob", "bob/x", "legacy:meter-1", "anon:", "anon", "auto-1234", ""] {
        assert_eq!(reason(gate.authenticate(client_id, None, None)), RefusalReason::ClientIdNotOwned, "{client_id:?}");
    }
    assert_eq!(counter(&gate, REFUSED), 7);
}

#[test]
fn an_honest_anonymous_client_uses_the_anon_space() {
    let f = Fixture::new();
    let gate = gate(&f);
    for client_id in ["anon:watcher", "anon:bob", "anon:a/b", &smqtt_gate::anonymous_client_id()] {
        assert!(matches!(ok(gate.authenticate(client_id, None, None)).role(), Role::Anonymous), "{client_id:?}");
    }
    assert_eq!(counter(&gate, r#"smqtt_gate_accepted_total{check="connect"}"#), 4);
}

#[test]
fn a_legacy_client_cannot_take_a_device_or_another_legacy_client_id() {
    let f = Fixture::new();
    let gate = gate(&f);
    let login = |client_id: &str| gate.authenticate(client_id, Some("meter-1"), Some(b"meter-1 pw"));
    for client_id in ["legacy:meter-1", "legacy:meter-1/b"] {
        assert!(matches!(ok(login(client_id)).role(), Role::Legacy { .. }), "{client_id:?}");
    }
    for client_id in ["meter-1", "bob", "bob/x", "legacy:meter-2", "legacy:meter-10", "legacy:meter-1/", "anon:x", ""] {
        assert_eq!(reason(login(client_id)), RefusalReason::ClientIdNotOwned, "{client_id:?}");
    }
    assert_eq!(counter(&gate, REFUSED), 8);
}

/// The id is checked after the credential: without one, an attacker learns nothing about which ids (or legacy
/// usernames) exist.
#[test]
fn a_bad_credential_with_a_foreign_id_is_refused_for_the_credential() {
    let f = Fixture::new();
    let gate = gate(&f);
    let mallory = f.device("mallory", &["plant/#"]);
    let token = mallory.token("mallory");
    assert_eq!(reason(gate.authenticate("bob", Some("mallory"), Some(token.as_bytes()))), RefusalReason::BadCredential);
    assert_eq!(reason(gate.authenticate("bob", Some("meter-1"), Some(b"guess"))), RefusalReason::BadPassword);
    assert_eq!(reason(gate.authenticate("bob", Some("nobody"), Some(b"guess"))), RefusalReason::NotAuthenticated);
    assert_eq!(counter(&gate, REFUSED), 0);
}

/// A refused impostor leaves the device's remembered session (what its will is checked against) alone.
#[test]
fn a_refused_impostor_does_not_replace_the_devices_remembered_session() {
    let f = Fixture::new();
    let gate = gate(&f);
    let bob = f.device("bob", &["plant/#"]);
    ok(gate.authenticate("bob", Some("bob"), Some(bob.token("bob").as_bytes())));
    assert_eq!(reason(gate.authenticate("bob", None, None)), RefusalReason::ClientIdNotOwned);
    assert_eq!(gate.session("bob").and_then(|s| s.device_id().map(str::to_owned)).as_deref(), Some("bob"));
}

#[test]
fn the_refusal_is_client_identifier_not_valid_on_the_wire() {
    let reason = RefusalReason::ClientIdNotOwned;
    assert_eq!((reason.as_str(), reason.mqtt5_code(), reason.mqtt311_connack_code()), ("client_id_not_owned", 0x85, 2));
    assert!(RefusalReason::ALL.contains(&reason));
}

/// `enforcement = false` accepts every client as before.
#[test]
fn with_enforcement_off_client_ids_are_not_checked() {
    let f = Fixture::new();
    let gate =
        f.gate("enforcement = false\n[authority]\nverifying_key = \"authority.pub\"\n[anonymous]\nallow = true\n");
    let mallory = f.device("mallory", &["plant/#"]);
    // Accepted as before, in the roles they had before.
    assert!(matches!(ok(gate.authenticate("bob", None, None)).role(), Role::Anonymous));
    let token = mallory.token("bob");
    assert_eq!(ok(gate.authenticate("bob", Some("mallory"), Some(token.as_bytes()))).device_id(), Some("mallory"));
    assert!(matches!(ok(gate.authenticate("bob", Some("u"), Some(b"smqtt1.bad"))).role(), Role::Unchecked));
    assert_eq!(counter(&gate, REFUSED), 0);
}

#[test]
fn a_legacy_username_with_a_slash_is_a_configuration_error() {
    let f = Fixture::new();
    let toml = format!("[[legacy]]\nusername = \"meter/1\"\npassword_hash = \"{}\"\n", password_hash("x"));
    let error = f.try_gate(&toml).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("may not contain '/'"), "{error}");
}
