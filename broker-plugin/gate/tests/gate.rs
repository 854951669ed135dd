//! Every rule of the gate, with real credentials, tokens, envelopes and FAME sealing: the valid case accepted,
//! each invalid one refused with the right reason.

use proptest::prelude::*;
use smqtt_gate::{ClientSession, Gate, GateError, PublishDecision, RefusalReason, Role};
use smqtt_testkit::credentials::{ok, password_hash, policy, Device, Fixture};
use smqtt_testkit::now;
use smqtt_wire::{ConnectToken, ParsedEnvelope, SigningKey};

fn reason<T: std::fmt::Debug>(r: Result<T, smqtt_gate::Refusal>) -> RefusalReason {
    match r {
        Err(refusal) => refusal.reason,
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

fn refused(d: PublishDecision) -> RefusalReason {
    match d {
        PublishDecision::Refuse(r) => r.reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The gate re-reads its epoch file at most once a second: a deliberate sleep past that interval (time has to
/// pass, there is no event to wait on), after which its next decision sees the file as it is now.
fn past_the_recheck_interval() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

fn counter(gate: &Gate, line: &str) -> u64 {
    gate.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(line).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no metric {line}"))
}

#[test]
fn gate_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Gate>();
    check::<ClientSession>();
}

#[test]
fn connect_tokens_and_their_failures() {
    let f = Fixture::new();
    let gate = f.gate("");
    let d = f.device("sensor-1", &["plant/#"]);
    let auth =
        |client: &str, user: Option<&str>, pw: Option<&str>| gate.authenticate(client, user, pw.map(str::as_bytes));

    let session = ok(auth("sensor-1", Some("sensor-1"), Some(&d.token("sensor-1"))));
    assert_eq!(session.device_id(), Some("sensor-1"));
    assert_eq!(session.role().kind(), "device");
    // Another client id of its own (`<device_id>/<suffix>`) works, as long as the token was made for it; ids
    // outside its space do not, even with a token made for them (tests/client_ids.rs).
    assert!(auth("sensor-1/b", Some("sensor-1"), Some(&d.token("sensor-1/b"))).is_ok());
    assert_eq!(
        reason(auth("sensor-1-b", Some("sensor-1"), Some(&d.token("sensor-1-b")))),
        RefusalReason::ClientIdNotOwned
    );
    assert_eq!(reason(auth("", Some("sensor-1"), Some(&d.token("")))), RefusalReason::ClientIdNotOwned);

    assert_eq!(reason(auth("c", None, None)), RefusalReason::NotAuthenticated);
    assert_eq!(reason(auth("c", Some("sensor-1"), None)), RefusalReason::NotAuthenticated);
    assert_eq!(reason(auth("c", Some("sensor-1"), Some("hunter2"))), RefusalReason::NotAuthenticated);
    assert_eq!(reason(auth("sensor-1", Some("sensor-1"), Some("smqtt1.garbage"))), RefusalReason::BadCredential);
    assert_eq!(reason(auth("other", Some("sensor-1"), Some(&d.token("sensor-1")))), RefusalReason::BadCredential);
    assert_eq!(reason(auth("sensor-1", Some("sensor-2"), Some(&d.token("sensor-1")))), RefusalReason::BadCredential);
    assert_eq!(reason(auth("sensor-1", None, Some(&d.token("sensor-1")))), RefusalReason::BadCredential);
    assert_eq!(
        reason(gate.authenticate(
            "sensor-1",
            Some("sensor-1"),
            Some(&[b's', b'm', b'q', b't', b't', b'1', b'.', 0xff])
        )),
        RefusalReason::BadCredential
    );

    let stale = ok(ConnectToken::create(&d.key, &d.credential, "sensor-1", now() - 1000));
    assert_eq!(reason(auth("sensor-1", Some("sensor-1"), Some(&stale))), RefusalReason::StaleToken);
    let future = ok(ConnectToken::create(&d.key, &d.credential, "sensor-1", now() + 1000));
    assert_eq!(reason(auth("sensor-1", Some("sensor-1"), Some(&future))), RefusalReason::StaleToken);

    let expired = f.credential_with("sensor-1", &d.key, &["plant/#"], 1, (now() - 7200, now() - 3600));
    let token = ok(ConnectToken::create(&d.key, &expired, "sensor-1", now()));
    assert_eq!(reason(auth("sensor-1", Some("sensor-1"), Some(&token))), RefusalReason::Expired);

    // Signed by another authority; signed by the right authority but presented with another device's key.
    let foreign = Fixture::new();
    let alien = foreign.device("sensor-1", &["plant/#"]);
    assert_eq!(
        reason(auth("sensor-1", Some("sensor-1"), Some(&alien.token("sensor-1")))),
        RefusalReason::BadCredential
    );
    let thief = SigningKey::generate(&mut rand_core::OsRng);
    let stolen = ok(ConnectToken::create(&thief, &d.credential, "sensor-1", now()));
    assert_eq!(reason(auth("sensor-1", Some("sensor-1"), Some(&stolen))), RefusalReason::BadCredential);

    assert_eq!(counter(&gate, r#"smqtt_gate_accepted_total{check="connect"}"#), 2);
    assert_eq!(counter(&gate, r#"smqtt_gate_refused_total{check="connect",reason="bad_credential"}"#), 7);
    assert_eq!(counter(&gate, r#"smqtt_gate_refused_total{check="connect",reason="stale_token"}"#), 2);
    assert_eq!(counter(&gate, r#"smqtt_gate_refused_total{check="connect",reason="expired"}"#), 1);
    assert_eq!(counter(&gate, r#"smqtt_gate_refused_total{check="connect",reason="client_id_not_owned"}"#), 2);
}

#[test]
fn epochs_and_denied_devices() {
    let f = Fixture::new();
    let epoch_file = f.path().join("epoch");
    ok(std::fs::write(&epoch_file, f.epoch_statement(3)));
    let gate = f.gate("min_epoch = 2\nepoch_file = \"epoch\"\ndeny_devices = [\"banned\"]\n");
    assert_eq!(gate.current_epoch(), 3);
    let old = f.device_at("old", &["a/#"], 2);
    let current = f.device_at("current", &["a/#"], 3);
    let banned = f.device_at("banned", &["a/#"], 3);
    assert_eq!(
        reason(gate.authenticate("old", Some("old"), Some(old.token("old").as_bytes()))),
        RefusalReason::RevokedEpoch
    );
    let session = ok(gate.authenticate("current", Some("current"), Some(current.token("current").as_bytes())));
    assert_eq!(
        reason(gate.authenticate("banned", Some("banned"), Some(banned.token("banned").as_bytes()))),
        RefusalReason::DeviceDenied
    );

    // The authority rotates: the file says 4. Connected epoch-3 devices lose the right to publish too.
    ok(std::fs::write(&epoch_file, f.epoch_statement(4)));
    past_the_recheck_interval();
    assert_eq!(
        reason(gate.authenticate("current", Some("current"), Some(current.token("current").as_bytes()))),
        RefusalReason::RevokedEpoch
    );
    assert_eq!(gate.current_epoch(), 4);
    assert_eq!(refused(gate.check_publish(&session, "a/b", 0, false, b"x")), RefusalReason::RevokedEpoch);
    // An unreadable file keeps the last epoch.
    ok(std::fs::remove_file(&epoch_file));
    past_the_recheck_interval();
    let _ = gate.authenticate("x", None, None);
    assert_eq!(gate.current_epoch(), 4);
}

/// The epoch file moves while a device stays connected: its next publish and subscription are refused without any
/// new CONNECT (the file is re-read on publishes too), and a renewed credential is not needed for that.
#[test]
fn a_revoked_device_on_an_open_connection_is_refused_once_the_epoch_file_moves() {
    let f = Fixture::new();
    let epoch_file = f.path().join("epoch");
    ok(std::fs::write(&epoch_file, f.epoch_statement(3)));
    let gate = f.gate("epoch_file = \"epoch\"\n");
    let device = f.device_at("open-1", &["a/#"], 3);
    let session = ok(gate.authenticate("open-1", Some("open-1"), Some(device.token("open-1").as_bytes())));
    assert!(matches!(gate.check_subscribe(&session, "a/#"), Ok(())));
    ok(std::fs::write(&epoch_file, f.epoch_statement(4)));
    past_the_recheck_interval();
    assert_eq!(refused(gate.check_publish(&session, "a/b", 1, false, b"x")), RefusalReason::RevokedEpoch);
    assert_eq!(gate.current_epoch(), 4);
    assert!(gate.check_subscribe(&session, "a/c").is_err());
}

/// Whoever can write the broker's epoch file (or push statements) cannot roll revocation back or forward: only
/// statements signed by the authority count, and never an older one.
#[test]
fn an_unsigned_forged_or_older_epoch_statement_cannot_move_the_gate() {
    let f = Fixture::new();
    let epoch_file = f.path().join("epoch");
    ok(std::fs::write(&epoch_file, f.epoch_statement(4)));
    let gate = f.gate("epoch_file = \"epoch\"\n");
    assert_eq!(gate.current_epoch(), 4);
    let revoked = f.device_at("revoked", &["a/#"], 3);
    let impostor = SigningKey::generate(&mut rand_core::OsRng);
    let forged =
        smqtt_wire::EpochBody { epoch: 2, started_at: 1, issued_at: now(), params_id: [0; 32] }.sign(&impostor);
    for attack in ["3\n".to_owned(), f.epoch_statement(3), forged, "garbage".to_owned()] {
        ok(std::fs::write(&epoch_file, &attack));
        past_the_recheck_interval();
        assert_eq!(
            reason(gate.authenticate("revoked", Some("revoked"), Some(revoked.token("revoked").as_bytes()))),
            RefusalReason::RevokedEpoch,
            "{attack}"
        );
        assert_eq!(gate.current_epoch(), 4, "{attack}");
        assert!(gate.offer_epoch_statement(&attack).map_or(true, |advanced| !advanced));
    }
    // The honest path: the authority's next statement, from the file or pushed.
    assert_eq!(gate.offer_epoch_statement(&f.epoch_statement(5)).ok(), Some(true));
    assert_eq!(gate.current_epoch(), 5);
    // A gate whose epoch file holds a bare number refuses to start.
    ok(std::fs::write(&epoch_file, "5\n"));
    let error = f.try_gate("epoch_file = \"epoch\"\n").err();
    assert!(error.is_some_and(|e| e.to_string().contains("signed by the authority")), "a bare number was accepted");
}

/// Unsigned envelopes (wire.md §6.5) on protected topics: refused unless the topic is configured for them, and
/// then only from the connection authenticated as their publisher.
#[test]
fn unsigned_envelopes_only_where_configured_and_only_from_their_publisher() {
    let f = Fixture::new();
    let strict = f.gate("[topics]\nprotected = [\"plant/#\"]\n");
    let lenient = f.gate("[topics]\nprotected = [\"plant/#\"]\nunsigned = [\"plant/berlin/#\"]\n");
    let sensor = f.device("sensor-1", &["plant/#"]);
    let other = f.device("sensor-2", &["plant/#"]);
    let session_only = smqtt_session::SessionPolicy { sign_every_message: false, ..Default::default() };
    let mut mine = sensor.sealer_with(&f, 1, session_only.clone());
    let mut theirs = other.sealer_with(&f, 1, session_only);
    let p = policy("role:operator");
    let (berlin, paris) = ("plant/berlin/line1/temp", "plant/paris/line1/temp");
    // One session per policy: its first envelope carries the capsule (signed), the next ones not (unsigned).
    let seal = |s: &mut smqtt_session::Sealer, t: &str| {
        ok(s.seal(t, &p, b"23.5 C", false, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng))
    };
    let (signed, unsigned) = (seal(&mut mine, berlin), seal(&mut mine, berlin));
    let admin = policy("role:admin");
    let mut seal_admin =
        || ok(mine.seal(paris, &admin, b"23.5 C", false, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng));
    let (paris_signed, paris_unsigned) = (seal_admin(), seal_admin());
    let _ = seal(&mut theirs, berlin);
    let foreign_unsigned = seal(&mut theirs, berlin);
    assert!(ok(ParsedEnvelope::parse(&signed)).is_signed() && !ok(ParsedEnvelope::parse(&unsigned)).is_signed());

    for gate in [&strict, &lenient] {
        let me = ok(gate.authenticate("sensor-1", Some("sensor-1"), Some(sensor.token("sensor-1").as_bytes())));
        assert_eq!(gate.check_publish(&me, berlin, 1, false, &signed), PublishDecision::Accept);
        assert_eq!(gate.check_publish(&me, paris, 1, false, &paris_signed), PublishDecision::Accept);
        // Outside the unsigned filters (and everywhere on the strict gate): refused as unsigned.
        assert_eq!(refused(gate.check_publish(&me, paris, 1, false, &paris_unsigned)), RefusalReason::Unsigned);
        // Another device's unsigned envelope: refused for its publisher whatever the configuration.
        assert_eq!(refused(gate.check_publish(&me, berlin, 1, false, &foreign_unsigned)), RefusalReason::ForeignSigner);
    }
    let me = ok(strict.authenticate("sensor-1", Some("sensor-1"), Some(sensor.token("sensor-1").as_bytes())));
    assert_eq!(refused(strict.check_publish(&me, berlin, 1, false, &unsigned)), RefusalReason::Unsigned);
    let me = ok(lenient.authenticate("sensor-1", Some("sensor-1"), Some(sensor.token("sensor-1").as_bytes())));
    assert_eq!(lenient.check_publish(&me, berlin, 1, false, &unsigned), PublishDecision::Accept);
    // Never as a retained message (honest publishers sign those: they carry the capsule).
    assert_eq!(refused(lenient.check_publish(&me, berlin, 1, true, &unsigned)), RefusalReason::Unsigned);
    // An `unsigned` filter outside every protected one would bind nothing: a configuration error.
    let outside = f.try_gate("[topics]\nprotected = [\"plant/#\"]\nunsigned = [\"status/#\"]\n");
    assert!(matches!(outside, Err(GateError::Config(m)) if m.contains("not inside a protected filter")));
    assert_eq!(counter(&strict, "smqtt_gate_refused_total{check=\"publish\",reason=\"unsigned\"}"), 2);
}

#[test]
fn publish_rights_protected_topics_and_envelopes() {
    let f = Fixture::new();
    let gate = f.gate("[limits]\nmax_payload = 4096\n[topics]\nprotected = [\"plant/#\"]\nopen = [\"test/#\"]\n");
    let sensor = f.device("sensor-1", &["plant/berlin/#", "status/sensor-1"]);
    let other = f.device("sensor-2", &["plant/berlin/#"]);
    let me = ok(gate.authenticate("sensor-1", Some("sensor-1"), Some(sensor.token("sensor-1").as_bytes())));
    let p = policy("role:operator");
    let mut mine = sensor.sealer(&f, 1);
    let mut theirs = other.sealer(&f, 1);
    let topic = "plant/berlin/line1/temp";
    let envelope = ok(mine.seal(topic, &p, b"23.5 C", false, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng));
    let check = |t: &str, payload: &[u8]| gate.check_publish(&me, t, 1, false, payload);

    assert_eq!(check(topic, &envelope), PublishDecision::Accept);
    // Unprotected topic within rights: plaintext is fine. Outside rights: refused whatever the payload.
    assert_eq!(check("status/sensor-1", b"online"), PublishDecision::Accept);
    assert_eq!(refused(check("plant/paris/line1/temp", &envelope)), RefusalReason::TopicNotPermitted);
    assert_eq!(refused(check("status/sensor-2", b"x")), RefusalReason::TopicNotPermitted);
    assert_eq!(refused(check("plant/berlin/+", b"x")), RefusalReason::BadTopic);
    // Protected: plaintext, someone else's envelope, an envelope moved to another topic, a flipped byte.
    assert_eq!(refused(check(topic, b"23.5 C")), RefusalReason::NotAnEnvelope);
    let foreign = ok(theirs.seal(topic, &p, b"23.5 C", false, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng));
    assert_eq!(refused(check(topic, &foreign)), RefusalReason::ForeignSigner);
    assert_eq!(refused(check("plant/berlin/line2/temp", &envelope)), RefusalReason::BadSignature);
    let mut flipped = envelope.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(refused(check(topic, &flipped)), RefusalReason::BadSignature);
    // An envelope naming sensor-1 but signed by another key (an impostor's sealer with sensor-1's id).
    let impostor = Device {
        id: "sensor-1".into(),
        key: SigningKey::generate(&mut rand_core::OsRng),
        credential: sensor.credential.clone(),
    };
    let forged =
        ok(impostor.sealer(&f, 1).seal(topic, &p, b"x", false, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng));
    assert_eq!(refused(check(topic, &forged)), RefusalReason::BadSignature);
    // Size: over the configured limit, refused before parsing.
    assert_eq!(refused(check("status/sensor-1", &vec![0u8; 4097])), RefusalReason::Oversize);
    // Retained: checked like any publish; an empty retained publish (clearing) is allowed.
    assert_eq!(refused(gate.check_publish(&me, topic, 1, true, b"plain")), RefusalReason::NotAnEnvelope);
    let retained = ok(mine.seal(topic, &p, b"r", true, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng));
    assert_eq!(gate.check_publish(&me, topic, 1, true, &retained), PublishDecision::Accept);
    assert_eq!(gate.check_publish(&me, topic, 1, true, b""), PublishDecision::Accept);
    assert_eq!(refused(gate.check_publish(&me, topic, 1, false, b"")), RefusalReason::NotAnEnvelope);
    // Open topics: anyone connected, any payload.
    assert_eq!(check("test/x", b"anything"), PublishDecision::Accept);

    assert_eq!(counter(&gate, r#"smqtt_gate_refused_total{check="publish",reason="not_an_envelope"}"#), 3);
    assert_eq!(counter(&gate, r#"smqtt_gate_refused_total{check="publish",reason="bad_signature"}"#), 3);
}

#[test]
fn wills_follow_the_publish_rules() {
    let f = Fixture::new();
    let gate = f.gate("[topics]\nprotected = [\"plant/#\"]\n");
    let sensor = f.device("sensor-1", &["plant/#"]);
    let session = ok(gate.authenticate("sensor-1/a", Some("sensor-1"), Some(sensor.token("sensor-1/a").as_bytes())));
    let will = ok(sensor.sealer(&f, 1).seal(
        "plant/status",
        &policy("role:operator"),
        b"offline",
        true,
        smqtt_wire::UnixTime::now(),
        &mut rand_core::OsRng,
    ));
    assert_eq!(gate.check_will_for(&session, "plant/status", 1, true, &will), PublishDecision::Accept);
    assert_eq!(
        refused(gate.check_will_for(&session, "plant/status", 1, true, b"offline")),
        RefusalReason::NotAnEnvelope
    );
    assert_eq!(refused(gate.check_will_for(&session, "elsewhere", 0, false, b"x")), RefusalReason::TopicNotPermitted);
    // By client id (the Mosquitto plugin's way): the remembered session decides, the username must match.
    assert_eq!(
        gate.check_will("sensor-1/a", Some("sensor-1"), "plant/status", 1, true, &will),
        PublishDecision::Accept
    );
    assert_eq!(
        refused(gate.check_will("sensor-1/a", Some("sensor-2"), "plant/status", 1, true, &will)),
        RefusalReason::NotAuthenticated
    );
    assert_eq!(
        refused(gate.check_will("sensor-1/b", Some("sensor-1"), "plant/status", 1, true, &will)),
        RefusalReason::NotAuthenticated
    );
    gate.forget("sensor-1/a");
    assert!(gate.session("sensor-1/a").is_none());
    assert_eq!(counter(&gate, r#"smqtt_gate_accepted_total{check="will"}"#), 2);
}

#[test]
fn anonymous_read_only_subscriptions_and_denials() {
    let f = Fixture::new();
    let gate = f.gate(
        "[anonymous]\nallow = true\nsubscribe = [\"public/#\"]\n[topics]\nopen = [\"test/#\"]\ndeny_subscribe = [\"test/nosubscribe\", \"secret/#\"]\n",
    );
    let anon = ok(gate.authenticate("anon:viewer", None, None));
    assert!(matches!(anon.role(), Role::Anonymous));
    assert_eq!(reason(gate.authenticate("anon:viewer", Some("nobody"), None)), RefusalReason::NotAuthenticated);
    assert!(gate.check_subscribe(&anon, "public/weather/+").is_ok());
    assert!(gate.check_subscribe(&anon, "test/x/#").is_ok());
    assert_eq!(reason(gate.check_subscribe(&anon, "test/#")), RefusalReason::SubscribeDenied, "overlaps a denial");
    assert!(gate.check_subscribe(&anon, "$share/g/public/#").is_ok());
    assert_eq!(reason(gate.check_subscribe(&anon, "#")), RefusalReason::SubscribeDenied);
    assert_eq!(reason(gate.check_subscribe(&anon, "plant/#")), RefusalReason::SubscribeDenied);
    assert_eq!(refused(gate.check_publish(&anon, "public/weather", 0, false, b"x")), RefusalReason::AnonymousReadOnly);
    assert_eq!(gate.check_publish(&anon, "test/x", 0, false, b"x"), PublishDecision::Accept);
    // Denied filters: for everyone, including broader-than-nothing filters inside them.
    let d = f.device("sensor-1", &["a/#"]);
    let dev = ok(gate.authenticate("sensor-1", Some("sensor-1"), Some(d.token("sensor-1").as_bytes())));
    assert!(gate.check_subscribe(&dev, "plant/#").is_ok());
    // A wider filter that would also deliver a denied topic is denied too (it overlaps).
    assert_eq!(reason(gate.check_subscribe(&dev, "#")), RefusalReason::SubscribeDenied);
    assert_eq!(reason(gate.check_subscribe(&dev, "test/#")), RefusalReason::SubscribeDenied);
    assert!(gate.check_subscribe(&dev, "test/other/#").is_ok());
    assert_eq!(reason(gate.check_subscribe(&dev, "test/nosubscribe")), RefusalReason::SubscribeDenied);
    assert_eq!(reason(gate.check_subscribe(&dev, "secret/a/+")), RefusalReason::SubscribeDenied);
    assert_eq!(reason(gate.check_subscribe(&dev, "$share/g/secret/#")), RefusalReason::SubscribeDenied);
    assert_eq!(reason(gate.check_subscribe(&dev, "a/#/b")), RefusalReason::BadTopic);
    assert_eq!(reason(gate.check_subscribe(&dev, "$share/g")), RefusalReason::BadTopic);
    assert_eq!(RefusalReason::SubscribeDenied.mqtt5_code(), 0x87);
    assert_eq!(RefusalReason::BadTopic.mqtt5_suback_code(), 0x8F);
}

#[test]
fn enforcement_off_accepts_everything_but_denied_subscriptions() {
    let f = Fixture::new();
    let gate = f.gate("enforcement = false\n[authority]\nverifying_key = \"authority.pub\"\n[topics]\nprotected = [\"plant/#\"]\ndeny_subscribe = [\"test/nosubscribe\"]\n");
    let anyone = ok(gate.authenticate("paho", None, None));
    assert!(matches!(anyone.role(), Role::Unchecked));
    assert!(matches!(ok(gate.authenticate("x", Some("u"), Some(b"smqtt1.bad"))).role(), Role::Unchecked));
    assert_eq!(gate.check_publish(&anyone, "plant/x", 2, true, b"plain"), PublishDecision::Accept);
    assert_eq!(reason(gate.check_subscribe(&anyone, "test/nosubscribe")), RefusalReason::SubscribeDenied);
    assert_eq!(reason(gate.check_subscribe(&anyone, "#")), RefusalReason::SubscribeDenied);
    assert!(gate.check_subscribe(&anyone, "plant/#").is_ok());
    // Without an authority key as well.
    let bare = ok(Gate::from_toml_str("enforcement = false\n", f.path()));
    assert!(bare.authenticate("c", None, None).is_ok());
    assert!(gate.metrics_text().contains("smqtt_gate_enforcing 0"));
}

#[test]
fn legacy_clients_are_sealed_by_the_broker() {
    let f = Fixture::new();
    let store = f.store("broker", "role:broker", &["legacy/#"], 1);
    let toml = format!(
        "[topics]\nprotected = [\"plant/#\"]\n[sealing]\nstore = {store:?}\ntopics = [{{ filter = \"legacy/meters/#\", policy = \"role:operator\" }}]\n\
         [[legacy]]\nusername = \"meter-1\"\npassword_hash = \"{}\"\npublish = [\"legacy/meters/meter-1/#\", \"plant/#\", \"legacy/plain\"]\n",
        password_hash("correct horse")
    );
    let gate = f.gate(&toml);
    assert_eq!(
        reason(gate.authenticate("legacy:meter-1", Some("meter-1"), Some(b"wrong"))),
        RefusalReason::BadPassword
    );
    // Right after a failure the same source is throttled for that username (refused without hashing), for a
    // second; another address is not.
    assert_eq!(
        reason(gate.authenticate("legacy:meter-1", Some("meter-1"), Some(b"correct horse"))),
        RefusalReason::Throttled
    );
    let elsewhere = Some(std::net::IpAddr::from([192, 0, 2, 1]));
    ok(gate.authenticate_from("legacy:meter-1", Some("meter-1"), Some(b"correct horse"), elsewhere));
    let meter = ok(gate.authenticate("legacy:meter-1", Some("meter-1"), Some(b"correct horse")));
    assert!(matches!(meter.role(), Role::Legacy { .. }));
    assert_eq!(reason(gate.authenticate("legacy:meter-1", Some("meter-1"), None)), RefusalReason::BadPassword);

    let topic = "legacy/meters/meter-1/kwh";
    let sealed = match gate.check_publish(&meter, topic, 1, false, b"42.1 kWh") {
        PublishDecision::Replace(bytes) => bytes,
        other => panic!("expected sealing, got {other:?}"),
    };
    assert!(!sealed.windows(8).any(|w| w == b"42.1 kWh"), "the broker forwards ciphertext only");
    let envelope = ok(ParsedEnvelope::parse(&sealed));
    assert_eq!(envelope.publisher().as_str(), "broker");
    // An SDK subscriber with the policy's attributes opens it; one without does not.
    let mut operator = f.opener("role:operator", 1);
    let message = operator
        .open(topic, &sealed, smqtt_session::QoS::try_from(1).unwrap_or_default(), false, smqtt_wire::UnixTime::now())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(message.payload(), b"42.1 kWh");
    assert_eq!(message.publisher(), "broker");
    let mut intern = f.opener("role:intern", 1);
    assert_eq!(
        intern
            .open(
                topic,
                &sealed,
                smqtt_session::QoS::try_from(1).unwrap_or_default(),
                false,
                smqtt_wire::UnixTime::now()
            )
            .map_err(|e| e.kind())
            .err(),
        Some("not_authorised")
    );
    // The second message reuses the session: same key id, no FAME work.
    let PublishDecision::Replace(second) = gate.check_publish(&meter, topic, 0, false, b"42.2 kWh") else {
        panic!("sealed")
    };
    assert_eq!(ok(ParsedEnvelope::parse(&second)).key_id(), envelope.key_id());
    assert_eq!(
        ok(operator
            .open(
                topic,
                &second,
                smqtt_session::QoS::try_from(0).unwrap_or_default(),
                false,
                smqtt_wire::UnixTime::now()
            )
            .map_err(|e| e.to_string()))
        .payload(),
        b"42.2 kWh"
    );

    // Outside its rights; on a protected topic it cannot make envelopes; a plain topic stays plain.
    assert_eq!(
        refused(gate.check_publish(&meter, "legacy/meters/meter-2/kwh", 0, false, b"1")),
        RefusalReason::TopicNotPermitted
    );
    assert_eq!(refused(gate.check_publish(&meter, "plant/x", 0, false, b"1")), RefusalReason::NotAnEnvelope);
    assert_eq!(gate.check_publish(&meter, "legacy/plain", 0, false, b"1"), PublishDecision::Accept);
    assert_eq!(gate.check_publish(&meter, topic, 0, true, b""), PublishDecision::Accept, "clearing a retained message");
    assert!(matches!(gate.check_will_for(&meter, topic, 0, false, b"gone"), PublishDecision::Replace(_)));
    assert_eq!(counter(&gate, "smqtt_gate_sealed_total"), 3);

    // A device publishing plaintext on a sealed topic is not sealed: it must send its own envelopes.
    let d = f.device("sensor-1", &["legacy/#"]);
    let dev = ok(gate.authenticate("sensor-1", Some("sensor-1"), Some(d.token("sensor-1").as_bytes())));
    assert_eq!(refused(gate.check_publish(&dev, topic, 0, false, b"1")), RefusalReason::NotAnEnvelope);
}

#[test]
fn configuration_errors_are_typed() {
    let f = Fixture::new();
    let config = |t: &str| f.try_gate(t).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(config("bogus = 1\n").contains("unknown field"));
    assert!(config("[topics]\nprotected = [\"a/#/b\"]\n").contains("protected"));
    assert!(config("[[legacy]]\nusername = \"u\"\npassword_hash = \"plain\"\n").contains("PHC"));
    assert!(matches!(Gate::from_toml_str("", f.path()), Err(GateError::Config(_))), "no authority key while enforcing");
    let missing = Gate::from_toml_str("[authority]\nverifying_key = \"nope.pub\"\n", f.path());
    assert!(matches!(missing, Err(GateError::Io { .. })));
    ok(std::fs::write(f.path().join("bad.pub"), "not a key"));
    assert!(matches!(
        Gate::from_toml_str("[authority]\nverifying_key = \"bad.pub\"\n", f.path()),
        Err(GateError::Io { .. })
    ));
    // The broker's credential must allow publishing where it seals.
    let store = f.store("broker", "role:broker", &["elsewhere/#"], 1);
    let sealing =
        format!("[sealing]\nstore = {store:?}\ntopics = [{{ filter = \"legacy/#\", policy = \"role:operator\" }}]\n");
    assert!(matches!(f.try_gate(&sealing), Err(GateError::Identity(_))));
    // Loaded from a file, relative paths are relative to it; the raw 32-byte key of a device store works too.
    let file = f.path().join("gate.toml");
    ok(std::fs::write(&file, format!("[authority]\nverifying_key = {:?}\n", store.join("authority.pub"))));
    assert!(Gate::from_toml_file(&file).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// No input makes the gate panic.
    #[test]
    fn arbitrary_input_never_panics(
        client in ".{0,40}",
        user in proptest::option::of(".{0,40}"),
        password in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        topic in ".{0,60}",
        payload in proptest::collection::vec(any::<u8>(), 0..400),
        qos in any::<u8>(),
        retain in any::<bool>(),
    ) {
        let f = FIXTURE.with(|f| f.clone());
        let gate = &f.1;
        let _ = gate.authenticate(&client, user.as_deref(), password.as_deref());
        let mut token = b"smqtt1.".to_vec();
        token.extend_from_slice(&payload);
        let _ = gate.authenticate(&client, user.as_deref(), Some(&token));
        for session in [&f.2, &f.3] {
            let _ = gate.check_publish(session, &topic, qos, retain, &payload);
            let _ = gate.check_will_for(session, &topic, qos, retain, &payload);
            let _ = gate.check_subscribe(session, &topic);
        }
        let _ = gate.check_will(&client, user.as_deref(), &topic, qos, retain, &payload);
        let mut envelope = f.4.clone();
        let i = usize::from(qos) % envelope.len();
        envelope[i] ^= payload.first().copied().unwrap_or(1) | 1;
        prop_assert!(!gate.check_publish(&f.2, "plant/a", 0, false, &envelope).is_forwarded());
    }
}

type Shared = std::sync::Arc<(Fixture, Gate, ClientSession, ClientSession, Vec<u8>)>;

thread_local! {
    static FIXTURE: Shared = {
        let f = Fixture::new();
        let gate = f.gate("[anonymous]\nallow = true\nsubscribe = [\"public/#\"]\n[topics]\nprotected = [\"plant/#\"]\nopen = [\"test/#\"]\n");
        let d = f.device("sensor-1", &["plant/#"]);
        let device = ok(gate.authenticate("sensor-1", Some("sensor-1"), Some(d.token("sensor-1").as_bytes())));
        let anon = ok(gate.authenticate("anon:proptest", None, None));
        let envelope = ok(d.sealer(&f, 1).seal("plant/a", &policy("role:x"), b"v", false, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng));
        std::sync::Arc::new((f, gate, device, anon, envelope))
    };
}

/// `verify_signatures = false`: signed envelopes on protected topics pass on structure and "publisher = the
/// connected device" alone (a bad signature can only be the device's own, and subscribers verify it); another
/// device's envelope and plaintext are still refused, and the default still verifies.
#[test]
fn signatures_left_to_subscribers_still_bind_envelopes_to_the_connection() {
    let f = Fixture::new();
    let binding = f.gate("[topics]\nprotected = [\"plant/#\"]\nverify_signatures = false\n");
    let verifying = f.gate("[topics]\nprotected = [\"plant/#\"]\n");
    let sensor = f.device("sensor-1", &["plant/#"]);
    let other = f.device("sensor-2", &["plant/#"]);
    let p = policy("role:operator");
    let topic = "plant/berlin/line1/temp";
    let envelope =
        ok(sensor.sealer(&f, 1).seal(topic, &p, b"23.5 C", false, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng));
    let foreign =
        ok(other.sealer(&f, 1).seal(topic, &p, b"23.5 C", false, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng));
    let mut bad_signature = envelope.clone();
    let last = bad_signature.len() - 1;
    bad_signature[last] ^= 0x01;
    for (gate, verifies) in [(&binding, false), (&verifying, true)] {
        let me = ok(gate.authenticate("sensor-1", Some("sensor-1"), Some(sensor.token("sensor-1").as_bytes())));
        let check = |payload: &[u8]| gate.check_publish(&me, topic, 1, false, payload);
        assert_eq!(check(&envelope), PublishDecision::Accept);
        assert_eq!(refused(check(&foreign)), RefusalReason::ForeignSigner);
        assert_eq!(refused(check(b"23.5 C")), RefusalReason::NotAnEnvelope);
        if verifies {
            assert_eq!(refused(check(&bad_signature)), RefusalReason::BadSignature);
        } else {
            assert_eq!(check(&bad_signature), PublishDecision::Accept);
        }
    }
}
