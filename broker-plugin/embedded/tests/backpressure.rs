//! Nothing acknowledged is lost: a publisher flooding individually signed QoS 1 envelopes (each one an Ed25519
//! verification in the gate) through smqtt-broker reaches 1 and 4 subscribers complete. Before the front door
//! decided PUBLISH frames itself (`precheck.rs`), the checks ran on rumqttd's single listener thread, the
//! subscribers' links fell behind the router's bounded log and rumqttd skipped what it had evicted: thousands
//! of acknowledged messages per run. The broker here has a small log (2 × 256 KiB per filter) so that falling
//! behind shows quickly. The flood also carries tampered envelopes: they are refused, the rest still arrive.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use smqtt_abe::Policy;
use smqtt_testkit::credentials::{Device, Fixture};
use smqtt_testkit::embedded::SmqttBroker;
use smqtt_testkit::metrics::{metric_or_zero, scrape};
use smqtt_wire::{ParsedEnvelope, UnixTime};

const MESSAGES: usize = 3000;
/// Every this many envelopes one is tampered with (a flipped ciphertext byte: its signature fails).
const TAMPER_EVERY: usize = 500;
/// Given up after this long without a new delivery.
const IDLE: Duration = Duration::from_secs(5);

type Seen = Arc<Mutex<HashSet<u64>>>;

async fn client(addr: SocketAddr, id: &str, device: &Device) -> (AsyncClient, Seen) {
    let mut options = MqttOptions::new(id, "127.0.0.1", addr.port());
    options.set_credentials(device.id.clone(), device.token(id));
    options.set_max_packet_size(1 << 20, 1 << 20);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(envelope) = ParsedEnvelope::parse(&p.payload) {
                        sink.lock().expect("seen").insert(envelope.sequence());
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    (client, seen)
}

async fn flood(subscribers: usize) {
    let fixture = Fixture::new();
    let publisher = fixture.device("flood-pub", &["plant/#"]);
    let readers: Vec<Device> = (0..subscribers).map(|i| fixture.device(&format!("flood-sub-{i}"), &[])).collect();
    let gate = format!(
        "[gate.authority]\nverifying_key = {:?}\n[gate.topics]\nprotected = [\"plant/#\"]\n",
        fixture.path().join("authority.pub")
    );
    let broker = tokio::task::block_in_place(|| {
        SmqttBroker::new()
            .v4_only()
            .metrics()
            .limits("max_segment_size = 262144\nmax_segment_count = 2\n")
            .gate(&gate)
            .start(fixture.path())
    });
    let (addr, metrics) = (broker.v4.expect("v4"), broker.metrics.expect("metrics"));

    let topic = "plant/flood";
    let mut sealer = publisher.sealer(&fixture, 1);
    let policy = Policy::parse("role:sensor").expect("policy");
    let envelopes: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|i| {
            let mut sealed =
                sealer.seal(topic, &policy, &[0x5a; 256], false, UnixTime::now(), &mut rand_core::OsRng).expect("seal");
            if i % TAMPER_EVERY == TAMPER_EVERY - 1 {
                let last = sealed.len() - 80;
                sealed[last] ^= 1;
            }
            sealed
        })
        .collect();
    let sequences: Vec<u64> = envelopes.iter().map(|e| ParsedEnvelope::parse(e).expect("parse").sequence()).collect();
    let honest: HashSet<u64> =
        sequences.iter().enumerate().filter(|(i, _)| i % TAMPER_EVERY != TAMPER_EVERY - 1).map(|(_, s)| *s).collect();

    let mut subs = Vec::new();
    for (i, reader) in readers.iter().enumerate() {
        let (c, seen) = client(addr, &format!("{}/{i}", reader.id), reader).await;
        c.subscribe(topic, QoS::AtLeastOnce).await.expect("subscribe");
        subs.push((c, seen));
    }
    // Every subscription is in place once the broker has accepted them all.
    tokio::task::block_in_place(|| {
        smqtt_testkit::metrics::wait_metric(
            "the subscriptions",
            || scrape(metrics),
            "smqtt_gate_accepted_total{check=\"subscribe\"}",
            |n| n >= subscribers as u64,
        )
    });
    let (publisher_client, _) = client(addr, "flood-pub/p", &publisher).await;
    for envelope in envelopes {
        publisher_client.publish(topic, QoS::AtLeastOnce, false, envelope).await.expect("publish");
    }

    let (mut last, mut last_total) = (Instant::now(), 0);
    loop {
        let total: usize = subs.iter().map(|(_, s)| s.lock().expect("seen").len()).sum();
        if total >= honest.len() * subscribers || last.elapsed() > IDLE {
            break;
        }
        if total != last_total {
            (last, last_total) = (Instant::now(), total);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (i, (_, seen)) in subs.iter().enumerate() {
        let seen = seen.lock().expect("seen");
        let missing = honest.difference(&seen).count();
        let forged = seen.difference(&honest).count();
        assert_eq!((missing, forged), (0, 0), "subscriber {i} of {subscribers}: missing, tampered delivered");
    }
    let text = tokio::task::block_in_place(|| scrape(metrics));
    let tampered = (MESSAGES / TAMPER_EVERY) as u64;
    assert_eq!(metric_or_zero(&text, "smqtt_broker_quarantined_total"), tampered, "{text}");
    assert_eq!(
        metric_or_zero(&text, "smqtt_broker_publish_decided_inline_total"),
        0,
        "every PUBLISH was decided by the front door, not on rumqttd's thread"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_qos1_flood_reaches_one_subscriber_complete() {
    flood(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_qos1_flood_reaches_four_subscribers_complete() {
    flood(4).await;
}
