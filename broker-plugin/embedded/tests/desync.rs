//! An attack on the front door's decisions (`precheck.rs`), found by an adversarial review: over MQTT 5, a PUBLISH
//! without its property length is taken off the stream by rumqttd's decoder and then reported as "incomplete",
//! which rumqttd treats as "read more": the frame vanished without the guard taking the decision the front door
//! had queued for it. Every later PUBLISH of the connection then got the decision of the one before it, so a
//! device could follow a validly signed envelope with a forged one of the same topic and length and have the
//! forged one accepted. Now a complete frame that does not decode closes the connection, and a decision must
//! match its frame's first byte and length as well as its topic.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use smqtt_abe::Policy;
use smqtt_testkit::credentials::{Device, Fixture};
use smqtt_testkit::embedded::SmqttBroker;
use smqtt_testkit::packets::{field, packet};
use smqtt_testkit::wait::{eventually, WAIT};
use smqtt_wire::UnixTime;

const TOPIC: &str = "plant/x";

fn connect5(client_id: &str, device: &Device) -> Vec<u8> {
    let mut body = Vec::new();
    field(b"MQTT", &mut body);
    // Level 5; flags: user name, password, clean start; keep-alive 30 s; no properties.
    body.extend([5, 0xc2, 0, 30, 0]);
    field(client_id.as_bytes(), &mut body);
    field(device.id.as_bytes(), &mut body);
    field(device.token(client_id).as_bytes(), &mut body);
    packet(0x10, &body)
}

/// A v5 PUBLISH of `payload` on [`TOPIC`]; `properties`: whether it carries its (empty) property length.
fn publish5(first: u8, pkid: Option<u16>, properties: bool, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    field(TOPIC.as_bytes(), &mut body);
    if let Some(pkid) = pkid {
        body.extend(pkid.to_be_bytes());
    }
    if properties {
        body.push(0);
    }
    body.extend(payload);
    packet(first, &body)
}

type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

async fn subscriber(port: u16, device: &Device) -> Seen {
    let id = format!("{}/s", device.id);
    let mut options = MqttOptions::new(&id, "127.0.0.1", port);
    options.set_credentials(device.id.clone(), device.token(&id));
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    tokio::spawn(async move {
        let _client = client.clone();
        client.subscribe(TOPIC, QoS::AtLeastOnce).await.expect("subscribe");
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => sink.lock().expect("seen").push(p.payload.to_vec()),
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanishing_v5_publish_does_not_shift_decisions_onto_a_forged_one() {
    let fixture = Fixture::new();
    let publisher = fixture.device("desync-pub", &["plant/#"]);
    let reader = fixture.device("desync-sub", &[]);
    let gate = format!(
        "[gate.authority]\nverifying_key = {:?}\n[gate.topics]\nprotected = [\"plant/#\"]\n",
        fixture.path().join("authority.pub")
    );
    let broker = tokio::task::block_in_place(|| SmqttBroker::new().gate(&gate).start(fixture.path()));
    let (v4, v5) = (broker.v4.expect("v4"), broker.v5.expect("v5"));
    let seen = subscriber(v4.port(), &reader).await;

    let mut sealer = publisher.sealer(&fixture, 1);
    let policy = Policy::parse("role:sensor").expect("policy");
    let mut seal =
        || sealer.seal(TOPIC, &policy, &[0x5a; 64], false, UnixTime::now(), &mut rand_core::OsRng).expect("seal");
    // The subscription is in place once a probe arrives.
    let (probe_client, mut probe_loop) = {
        let id = format!("{}/probe", publisher.id);
        let mut options = MqttOptions::new(&id, "127.0.0.1", v4.port());
        options.set_credentials(publisher.id.clone(), publisher.token(&id));
        options.set_max_packet_size(1 << 20, 1 << 20);
        AsyncClient::new(options, 100)
    };
    tokio::spawn(async move { while probe_loop.poll().await.is_ok() {} });
    let probe = seal();
    eventually("the probe arrives", WAIT, || {
        let _ = probe_client.try_publish(TOPIC, QoS::AtLeastOnce, false, probe.clone());
        !seen.lock().expect("seen").is_empty()
    })
    .await;

    let (valid, mut forged) = (seal(), seal());
    let last = forged.len() - 10;
    forged[last] ^= 1;
    let attack = [
        connect5(&format!("{}/attack", publisher.id), &publisher),
        publish5(0x30, None, false, b""),
        publish5(0x30, None, true, &valid),
        publish5(0x32, Some(2), true, &forged),
        vec![0xc0, 0],
    ]
    .concat();
    let closed = tokio::task::block_in_place(|| {
        let mut stream = TcpStream::connect(v5).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        stream.write_all(&attack).expect("send");
        // CONNACK first, then the broker closes the connection (before any PUBACK or PINGRESP).
        let mut replies = Vec::new();
        let _ = stream.read_to_end(&mut replies);
        replies.first() == Some(&0x20) && !replies.windows(2).any(|w| w == [0xd0, 0])
    });
    assert!(closed, "the malformed PUBLISH closes the connection");

    // The honest path: the same device publishes a fresh envelope on a new connection.
    let honest = seal();
    probe_client.publish(TOPIC, QoS::AtLeastOnce, false, honest.clone()).await.expect("publish");
    eventually("the honest envelope arrives", WAIT, || seen.lock().expect("seen").contains(&honest)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!seen.lock().expect("seen").contains(&forged), "the forged envelope was delivered");
}
