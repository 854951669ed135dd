//! Hostile peers against the embedded broker over real sockets (project issue 13): a password guesser at
//! another loopback address, a device flooding the session table, subscriptions around `deny_subscribe`,
//! retained envelopes without the signed mark.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use rumqttc::QoS;
use smqtt_client::{Sealer, SessionPolicy};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A raw v3.1.1 CONNECT from the local address `from` (all of 127.0.0.0/8 is loopback on Linux); the
/// CONNACK's return code and the open socket.
async fn connect_from(from: IpAddr, to: SocketAddr, packet: &[u8]) -> (tokio::net::TcpStream, Option<u8>) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind");
    let mut stream = socket.connect(to).await.expect("connect");
    stream.write_all(packet).await.expect("write");
    let mut ack = [0u8; 4];
    let code = tokio::time::timeout(WAIT, stream.read_exact(&mut ack)).await.ok().and_then(|r| r.ok()).map(|_| ack[3]);
    (stream, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_guesser_at_another_address_does_not_lock_the_honest_client_out() {
    let dir = tempfile::tempdir().expect("dir");
    let gate = format!(
        "[[gate.legacy]]\nusername = \"meter-1\"\npassword_hash = \"{}\"\npublish = [\"legacy/meters/#\"]\n",
        password_hash("meter-pw")
    );
    let b = tokio::task::block_in_place(|| broker(&gate, dir.path()));
    let v4 = b.v4.expect("v4");
    let (attacker, honest): (IpAddr, IpAddr) = ([127, 0, 0, 2].into(), [127, 0, 0, 1].into());
    let guess = login_packet("legacy:meter-1", Some(("meter-1", "guess")), None);
    let right = login_packet("legacy:meter-1/h", Some(("meter-1", "meter-pw")), None);
    let (mut wrong, mut throttled, mut honest_ok) = (0u32, 0u32, 0u32);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        for _ in 0..20 {
            match connect_from(attacker, v4, &guess).await.1 {
                Some(4) => wrong += 1,
                Some(5) => throttled += 1,
                other => panic!("the guess got {other:?}"),
            }
        }
        // The first honest CONNECT follows the guesses and is hashed; every one gets in.
        let (_socket, code) = connect_from(honest, v4, &right).await;
        assert_eq!(code, Some(0), "the honest client was refused after {wrong} + {throttled} guesses");
        honest_ok += 1;
    }
    assert!(honest_ok >= 3 && throttled > 20 && wrong <= 2, "{honest_ok} {wrong} {throttled}");
    // The password that verified is accepted even from the attacker's address.
    let (_socket, code) =
        connect_from(attacker, v4, &login_packet("legacy:meter-1/a", Some(("meter-1", "meter-pw")), None)).await;
    assert_eq!(code, Some(0));
    let text = b.metrics_text();
    assert_eq!(
        metric_or_zero(&text, r#"smqtt_gate_refused_total{check="connect",reason="throttled"}"#),
        u64::from(throttled)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_flooding_client_ids_cannot_crowd_out_another_device() {
    let mut enrolled = devices(vec![("h1-flood", "role:sensor", vec![]), ("h1-honest", "role:sensor", vec![])]).await;
    let (_, honest) = enrolled.pop().expect("honest");
    let (_, flooder) = enrolled.pop().expect("flooder");
    let dir = tempfile::tempdir().expect("dir");
    let b = broker(
        "[gate.limits]\nmax_sessions = 6\nmax_sessions_per_identity = 4\n[gate.topics]\nopen = [\"test/#\"]\n",
        dir.path(),
    );
    let v4 = b.v4.expect("v4");
    let local: IpAddr = [127, 0, 0, 1].into();
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..12 {
        let id = format!("h1-flood/{i}");
        let packet = login_packet(&id, Some(("h1-flood", &token(&flooder, &id))), None);
        match connect_from(local, v4, &packet).await {
            (socket, Some(0)) => held.push(socket),
            (_, Some(5)) => refused += 1,
            (_, other) => panic!("{other:?}"),
        }
    }
    assert_eq!((held.len(), refused), (4, 8), "the per-identity bound");
    // The other device connects (the table has room: the flooder could not fill it) and keeps publishing.
    let (sub, mut sub_rx) =
        raw4(v4, "h1-honest/sub", Some(("h1-honest", &token(&honest, "h1-honest/sub"))), None).await;
    assert!(matches!(next(&mut sub_rx, "connack").await, Seen4::ConnAck(rumqttc::ConnectReturnCode::Success)));
    sub.subscribe("test/honest", QoS::AtLeastOnce).await.expect("sub");
    assert!(matches!(next(&mut sub_rx, "suback").await, Seen4::SubAck(_)));
    let (publisher, mut pub_rx) = raw4(v4, "h1-honest", Some(("h1-honest", &token(&honest, "h1-honest"))), None).await;
    assert!(matches!(next(&mut pub_rx, "connack").await, Seen4::ConnAck(rumqttc::ConnectReturnCode::Success)));
    // The table (6) is now full of connected sessions: a newcomer is refused, nobody is evicted.
    let third = login_packet("h1-honest/3", Some(("h1-honest", &token(&honest, "h1-honest/3"))), None);
    assert_eq!(connect_from(local, v4, &third).await.1, Some(5), "the table is full");
    // A closed connection frees its place (its entry is evicted first) once the broker has seen it close.
    drop(held.pop());
    let started = std::time::Instant::now();
    let _third = loop {
        match connect_from(local, v4, &third).await {
            (socket, Some(0)) => break socket,
            (_, code) => assert!(started.elapsed() < WAIT, "the closed connection's place was not freed: {code:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    publisher.publish("test/honest", QoS::AtLeastOnce, false, b"still here".to_vec()).await.expect("publish");
    loop {
        if let Seen4::Publish(p) = next(&mut sub_rx, "the honest message").await {
            assert_eq!(&p.payload[..], b"still here");
            break;
        }
    }
    assert!(
        metric_or_zero(&b.metrics_text(), r#"smqtt_gate_refused_total{check="connect",reason="too_many_sessions"}"#)
            >= 9
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wider_wildcards_do_not_get_around_deny_subscribe() {
    let dir = tempfile::tempdir().expect("dir");
    let b = broker("enforcement = false\n[gate.topics]\ndeny_subscribe = [\"test/nosubscribe\"]\n", dir.path());
    let v4 = b.v4.expect("v4");
    let (client, mut rx) = raw4(v4, "h2-sub", None, None).await;
    assert!(matches!(next(&mut rx, "connack").await, Seen4::ConnAck(rumqttc::ConnectReturnCode::Success)));
    for (filter, allowed) in
        [("test/#", false), ("#", false), ("+/nosubscribe", false), ("test/+", false), ("other/#", true)]
    {
        client.subscribe(filter, QoS::AtLeastOnce).await.expect("sub");
        let Seen4::SubAck(ack) = next(&mut rx, "suback").await else { panic!("no suback") };
        let ok = !matches!(ack.return_codes[..], [rumqttc::SubscribeReasonCode::Failure]);
        assert_eq!(ok, allowed, "{filter}: {:?}", ack.return_codes);
    }
    client.publish("test/nosubscribe", QoS::AtLeastOnce, false, b"secret".to_vec()).await.expect("publish");
    client.publish("other/x", QoS::AtLeastOnce, false, b"fine".to_vec()).await.expect("publish");
    loop {
        match next(&mut rx, "the other/x message").await {
            Seen4::Publish(p) => {
                assert_eq!(p.topic, "other/x", "only the honest subscription delivers");
                break;
            }
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_envelope_without_the_signed_mark_is_not_retained() {
    let mut enrolled = devices(vec![("h3-pub", "role:sensor", vec!["plant/#"])]).await;
    let (store, identity) = enrolled.pop().expect("publisher");
    let dir = tempfile::tempdir().expect("dir");
    let b = tokio::task::block_in_place(|| broker("[gate.topics]\nprotected = [\"plant/#\"]\n", dir.path()));
    let v5 = b.v5.expect("v5");
    let loaded = smqtt_client::DeviceStore::at(&store).load().expect("load").into_parts();
    let mut sealer = Sealer::new(
        loaded.device_id,
        loaded.signing_key,
        loaded.credential,
        std::sync::Arc::new(loaded.public_key),
        loaded.epoch,
        SessionPolicy::default(),
    );
    let policy = smqtt_abe::Policy::parse("role:operator").expect("policy");
    let live = sealer
        .seal("plant/a", &policy, b"live", false, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng)
        .expect("seal");
    let retained = sealer
        .seal("plant/b", &policy, b"kept", true, smqtt_wire::UnixTime::now(), &mut rand_core::OsRng)
        .expect("seal");
    let (client, mut rx) = raw5(v5, "h3-pub", Some(("h3-pub", &token(&identity, "h3-pub")))).await;
    assert!(matches!(next(&mut rx, "connack").await, Seen5::ConnAck(_)));
    client.publish("plant/a", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, true, live).await.expect("publish");
    let Seen5::PubAck(ack) = next(&mut rx, "puback").await else { panic!("no puback") };
    assert_eq!(ack.reason, rumqttc::v5::mqttbytes::v5::PubAckReason::PayloadFormatInvalid);
    client.publish("plant/b", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, true, retained.clone()).await.expect("publish");
    let Seen5::PubAck(ack) = next(&mut rx, "puback").await else { panic!("no puback") };
    assert_eq!(ack.reason, rumqttc::v5::mqttbytes::v5::PubAckReason::Success);
    // Only the marked envelope was retained: a new subscription finds plant/b and nothing else.
    client.subscribe("plant/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce).await.expect("sub");
    let mut retained_topics = Vec::new();
    while let Ok(Some(seen)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        if let Seen5::Publish(p) = seen {
            retained_topics.push(String::from_utf8_lossy(&p.topic).into_owned());
        }
    }
    assert_eq!(retained_topics, ["plant/b"]);
    let text = b.metrics_text();
    assert_eq!(metric_or_zero(&text, r#"smqtt_gate_refused_total{check="publish",reason="retain_not_sealed"}"#), 1);
}
