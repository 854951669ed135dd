//! Hostile peers against the gate itself (project issue 13): password guessing, session-table floods, retained
//! envelopes without the signed mark. Real Argon2 hashes, real credentials and envelopes.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use smqtt_gate::{Gate, PublishDecision, RefusalReason};
use smqtt_testkit::credentials::{ok, password_hash, policy, Fixture};
use smqtt_wire::ParsedEnvelope;

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

fn ip(text: &str) -> Option<IpAddr> {
    Some(ok(text.parse()))
}

fn legacy_gate(f: &Fixture) -> Gate {
    f.gate(&format!(
        "[[legacy]]\nusername = \"meter-1\"\npassword_hash = \"{}\"\npublish = [\"legacy/meter-1/#\"]\n\
         [[legacy]]\nusername = \"meter-2\"\npassword_hash = \"{}\"\n",
        password_hash("correct horse"),
        password_hash("battery staple"),
    ))
}

/// An attacker guessing meter-1's password in a tight loop from 127.0.0.2 neither locks meter-1 out at
/// 127.0.0.1 (every honest attempt, hashed or cached, gets in) nor gets more than a handful of hashes.
#[test]
fn a_password_guesser_throttles_itself_not_the_username() {
    let f = Fixture::new();
    let gate = legacy_gate(&f);
    let (attacker, honest) = (ip("127.0.0.2"), ip("127.0.0.1"));
    let mut hashed_failures = 0;
    let mut throttled = 0;
    let started = Instant::now();
    let mut honest_logins = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        for _ in 0..50 {
            match reason(gate.authenticate_from("legacy:meter-1", Some("meter-1"), Some(b"guess"), attacker)) {
                RefusalReason::BadPassword => hashed_failures += 1,
                RefusalReason::Throttled => throttled += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        // The first honest login comes after the attacker's failures and is hashed (nothing cached yet).
        ok(gate.authenticate_from("legacy:meter-1/a", Some("meter-1"), Some(b"correct horse"), honest));
        honest_logins += 1;
    }
    assert!(honest_logins >= 5, "{honest_logins}");
    // 1.5 s of backoff 1 s, 2 s, …: at most two hashed guesses.
    assert!(hashed_failures <= 2, "{hashed_failures} guesses were hashed");
    assert!(throttled > 100, "{throttled}");
    assert_eq!(counter(&gate, r#"smqtt_gate_refused_total{check="connect",reason="throttled"}"#), throttled);
    // The password that verified is accepted even from the attacker's address (no hashing, no throttle).
    ok(gate.authenticate_from("legacy:meter-1/b", Some("meter-1"), Some(b"correct horse"), attacker));
    // Another username from the throttled source: its first failures are free, then the source itself waits.
    for i in 0..12 {
        let r = reason(gate.authenticate_from(
            "legacy:meter-2",
            Some("meter-2"),
            Some(format!("g{i}").as_bytes()),
            attacker,
        ));
        assert!(matches!(r, RefusalReason::BadPassword | RefusalReason::Throttled), "{r:?}");
    }
    assert_eq!(
        reason(gate.authenticate_from("legacy:meter-2", Some("meter-2"), Some(b"battery staple"), attacker)),
        RefusalReason::Throttled
    );
    ok(gate.authenticate_from("legacy:meter-2", Some("meter-2"), Some(b"battery staple"), ip("10.1.2.3")));
    // IPv6 peers are one source per /64: another address in the same /64 is throttled with it.
    let _ = gate.authenticate_from("legacy:meter-2", Some("meter-2"), Some(b"nope"), ip("2001:db8::1"));
    let _ = gate.authenticate_from("legacy:meter-2", Some("meter-2"), Some(b"nope"), ip("2001:db8::1"));
    assert_eq!(
        reason(gate.authenticate_from("legacy:meter-2", Some("meter-2"), Some(b"other"), ip("2001:db8::2"))),
        RefusalReason::Throttled
    );
}

fn device_login(
    gate: &Gate,
    d: &smqtt_testkit::credentials::Device,
    client_id: &str,
) -> Result<smqtt_gate::ClientSession, smqtt_gate::Refusal> {
    gate.authenticate(client_id, Some(&d.id), Some(d.token(client_id).as_bytes()))
}

/// One device opening many client ids cannot fill the table or evict another device's live session.
#[test]
fn a_session_flood_evicts_no_live_session() {
    let f = Fixture::new();
    let gate =
        f.gate("[limits]\nmax_sessions = 24\nmax_sessions_per_identity = 8\n[topics]\nprotected = [\"plant/#\"]\n");
    let honest = f.device("honest", &["plant/honest/#"]);
    let session = ok(device_login(&gate, &honest, "honest"));
    let flooder = f.device("flooder", &["plant/flooder/#"]);
    let mut admitted = Vec::new();
    for i in 0..100 {
        match device_login(&gate, &flooder, &format!("flooder/{i}")) {
            Ok(s) => admitted.push(s),
            Err(r) => assert_eq!(r.reason, RefusalReason::TooManySessions),
        }
    }
    assert_eq!(admitted.len(), 8, "the per-identity bound");
    // A reconnect with a client id it holds is a takeover, not a new session.
    ok(device_login(&gate, &flooder, "flooder/0"));
    // Many identities together fill the table, but never evict a connected session: newcomers are refused.
    let others: Vec<_> = (0..3).map(|i| f.device(&format!("other{i}"), &["plant/#"])).collect();
    let mut refused = 0;
    for d in &others {
        for i in 0..8 {
            if let Err(r) = device_login(&gate, d, &format!("{}/{i}", d.id)) {
                assert_eq!(r.reason, RefusalReason::TooManySessions);
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 9, "24 entries: honest, 8 of flooder, 15 of the others");
    assert_eq!(gate.session_counts(), (24, 24));
    assert!(gate.session("honest").is_some(), "the honest session was not evicted");
    let sealed = ok(honest.sealer(&f, 1).seal(
        "plant/honest/t",
        &policy("role:operator"),
        b"21",
        false,
        smqtt_wire::UnixTime::now(),
        &mut rand_core::OsRng,
    ));
    assert_eq!(gate.check_publish(&session, "plant/honest/t", 1, false, &sealed), PublishDecision::Accept);
    assert_eq!(gate.check_will("honest", Some("honest"), "plant/honest/t", 1, false, &sealed), PublishDecision::Accept);
    // Disconnected sessions make room (oldest first) and no longer count against their identity; the first
    // flooder/0 was taken over, so its end leaves the newer connection's entry alone.
    for s in &admitted[..4] {
        gate.disconnected(s);
    }
    assert_eq!(gate.session_counts(), (24, 21));
    ok(device_login(&gate, &others[2], "other2/7"));
    assert!(gate.session("flooder/0").is_some(), "taken over: the newer connection is still live");
    assert!(gate.session("flooder/1").is_none(), "the oldest disconnected entry made room");
    assert_eq!(counter(&gate, r#"smqtt_gate_refused_total{check="connect",reason="too_many_sessions"}"#), 92 + 9);
}

/// A retained publish must carry an envelope sealed for retained publication; the broker's own sealing of a
/// legacy client's retained plaintext sets the mark.
#[test]
fn retained_envelopes_must_carry_the_signed_mark() {
    let f = Fixture::new();
    let store = f.store("broker", "role:broker", &["legacy/#"], 1);
    let gate = f.gate(&format!(
        "[topics]\nprotected = [\"plant/#\"]\n[sealing]\nstore = {store:?}\ntopics = [{{ filter = \"legacy/#\", policy = \"role:operator\" }}]\n\
         [[legacy]]\nusername = \"meter-1\"\npassword_hash = \"{}\"\npublish = [\"legacy/meter-1/#\"]\n",
        password_hash("pw")
    ));
    let d = f.device("sensor-1", &["plant/#"]);
    let session = ok(device_login(&gate, &d, "sensor-1"));
    let mut sealer = d.sealer(&f, 1);
    let live = ok(sealer.seal(
        "plant/t",
        &policy("role:operator"),
        b"1",
        false,
        smqtt_wire::UnixTime::now(),
        &mut rand_core::OsRng,
    ));
    let retained = ok(sealer.seal(
        "plant/t",
        &policy("role:operator"),
        b"1",
        true,
        smqtt_wire::UnixTime::now(),
        &mut rand_core::OsRng,
    ));
    match gate.check_publish(&session, "plant/t", 1, true, &live) {
        PublishDecision::Refuse(r) => assert_eq!(r.reason, RefusalReason::RetainNotSealed),
        other => panic!("{other:?}"),
    }
    assert_eq!(gate.check_publish(&session, "plant/t", 1, false, &live), PublishDecision::Accept);
    assert_eq!(gate.check_publish(&session, "plant/t", 1, true, &retained), PublishDecision::Accept);
    assert_eq!(gate.check_publish(&session, "plant/t", 1, true, b""), PublishDecision::Accept, "clearing");
    let meter = ok(gate.authenticate("legacy:meter-1", Some("meter-1"), Some(b"pw")));
    for retain in [false, true] {
        let PublishDecision::Replace(sealed) = gate.check_publish(&meter, "legacy/meter-1/kwh", 1, retain, b"7") else {
            panic!("not sealed")
        };
        assert_eq!(ok(ParsedEnvelope::parse(&sealed)).is_sealed_retained(), retain);
    }
    assert_eq!(counter(&gate, r#"smqtt_gate_refused_total{check="publish",reason="retain_not_sealed"}"#), 1);
}

/// Issue 13, item 5: the gate does no per-session (per key id) work. Each publish costs one structural parse
/// (with one SHA-256 over an included capsule, to check its key id) and one Ed25519 verification; capsules are
/// never decoded and no table is keyed by key id. Measured here with maximal (256-row) capsules, each of a
/// fresh session.
#[test]
fn maximal_capsules_of_fresh_sessions_cost_the_gate_no_pairing_work() {
    let f = Fixture::new();
    let gate = f.gate("[topics]\nprotected = [\"plant/#\"]\n");
    let d = f.device("flooder", &["plant/#"]);
    let session = ok(device_login(&gate, &d, "flooder"));
    // 255 rows, and the epoch attribute the sealer adds: MAX_POLICY_ROWS.
    let wide = (0..255).map(|i| format!("role:r{i}")).collect::<Vec<_>>().join(" or ");
    let wide = policy(&wide);
    let started = Instant::now();
    let envelopes: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            // A new sealer each time: a new session, a new capsule and key id.
            ok(d.sealer(&f, 1).seal(
                "plant/t",
                &wide,
                format!("{i}").as_bytes(),
                true,
                smqtt_wire::UnixTime::now(),
                &mut rand_core::OsRng,
            ))
        })
        .collect();
    let sealing = started.elapsed();
    let ids: std::collections::HashSet<_> = envelopes.iter().map(|e| ok(ParsedEnvelope::parse(e)).key_id()).collect();
    assert_eq!(ids.len(), envelopes.len(), "fresh key ids");
    assert!(envelopes[0].len() > 30_000, "a maximal capsule: {} bytes", envelopes[0].len());
    let started = Instant::now();
    for i in 0..300 {
        assert_eq!(
            gate.check_publish(&session, "plant/t", 1, true, &envelopes[i % envelopes.len()]),
            PublishDecision::Accept
        );
    }
    let checking = started.elapsed();
    eprintln!(
        "300 checks of {}-byte envelopes: {checking:?} ({:?} each); sealing one: {:?}",
        envelopes[0].len(),
        checking / 300,
        sealing / 6
    );
    assert!(checking < Duration::from_secs(1), "{checking:?}");
}
