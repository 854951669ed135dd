//! 100 concurrent clients against `smqtt-broker` for a bounded time: 90 publishers (one topic each, QoS 1)
//! and 10 subscribers on wildcards, every one authorised. Every subscriber must get every message of every
//! publisher exactly once and in order, and open each one: 0 lost, 0 refused.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smqtt_abe::Policy;
use smqtt_client::{QoS, SessionPolicy, SmqttClient};

use crate::harness::{client_config, enroll_many, gate_toml, run_test, Authority, Sealing, SmqttBroker, TestDir};
use crate::mqtt::TEMP_POLICY;

const PUBLISHERS: usize = 90;
const SUBSCRIBERS: usize = 10;
/// Messages per publisher, one every `INTERVAL`: about three seconds of traffic.
const MESSAGES: u64 = 30;
const INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct Tally {
    probes: u64,
    /// Per publisher: the next sequence number expected.
    next: BTreeMap<String, u64>,
    accepted: u64,
    problems: Vec<String>,
}

#[test]
fn hundred_concurrent_clients_qos1_none_lost_none_refused() {
    run_test(hundred_concurrent_clients_qos1_none_lost_none_refused_body());
}

async fn hundred_concurrent_clients_qos1_none_lost_none_refused_body() {
    let started = Instant::now();
    let dir = TestDir::new("load");
    let root = dir.path();
    let authority = Authority::start(root, Sealing::KeyFile, "");
    let broker = SmqttBroker::start(root, &gate_toml(&authority, None))
        .expect("smqtt-broker not built in target/release (cargo build --release --workspace)");
    let port = broker.port;

    // 90 publishers, 10 subscribers and one prober: registered over the API, enrolled with `smqtt enroll`.
    let mut plan: Vec<(String, String, Vec<String>)> = (0..PUBLISHERS)
        .map(|i| {
            let rights = vec![format!("load/lp-{i:02}/#"), format!("warm/lp-{i:02}")];
            (format!("lp-{i:02}"), "role:sensor, site:berlin".to_owned(), rights)
        })
        .collect();
    plan.extend((0..SUBSCRIBERS).map(|i| (format!("ls-{i}"), "role:operator, site:berlin".to_owned(), vec![])));
    plan.push(("lprobe".to_owned(), "role:sensor, site:berlin".to_owned(), vec!["load/probe/#".to_owned()]));
    let enroll_started = Instant::now();
    let devices = enroll_many(&authority, &plan, 6);
    let enroll_time = enroll_started.elapsed();
    let (publishers, rest) = devices.split_at(PUBLISHERS);
    let (subscribers, prober) = rest.split_at(SUBSCRIBERS);

    let clients_started = Instant::now();
    // Subscribers: half on `load/#`, half on `load/+/seq`; each tallies in a task of its own.
    let mut tallies = Vec::new();
    let mut subscriber_clients = Vec::new();
    for (i, device) in subscribers.iter().enumerate() {
        let (client, mut rx) = SmqttClient::connect(device.identity(), &client_config(port)).expect("connect");
        client.subscribe(if i % 2 == 0 { "load/#" } else { "load/+/seq" }, QoS::AtLeastOnce).await.expect("subscribe");
        let tally = Arc::new(Mutex::new(Tally::default()));
        let shared = tally.clone();
        tokio::spawn(async move {
            while let Some(delivery) = rx.next().await {
                let mut t = shared.lock().expect("tally");
                match delivery {
                    Ok(m) if m.topic() == "load/probe/seq" => t.probes += 1,
                    Ok(m) => {
                        let text = String::from_utf8_lossy(m.payload()).into_owned();
                        let (publisher, seq) = text.split_once(' ').expect("payload: publisher seq");
                        let seq: u64 = seq.parse().expect("sequence number");
                        let expected = t.next.get(publisher).copied().unwrap_or(0);
                        if seq == expected && m.publisher() == publisher && m.topic() == format!("load/{publisher}/seq")
                        {
                            t.next.insert(publisher.to_owned(), seq + 1);
                            t.accepted += 1;
                        } else {
                            t.problems.push(format!("{} #{seq} on {}: expected #{expected}", m.publisher(), m.topic()));
                        }
                    }
                    Err(e) if e.to_string().contains("load/probe/seq") && t.accepted == 0 => t.probes += 1,
                    Err(e) => t.problems.push(format!("refused: {e}")),
                }
            }
        });
        tallies.push(tally);
        subscriber_clients.push(client);
    }
    // Probe (the capsule in every probe) until all ten subscriptions are active.
    let mut probe_config = client_config(port);
    probe_config.sessions = SessionPolicy { capsule_every: 1, ..SessionPolicy::default() };
    let (probe, _) = SmqttClient::connect(prober[0].identity(), &probe_config).expect("connect");
    let probe_policy = Policy::parse("site:berlin").expect("policy");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tallies.iter().any(|t| t.lock().expect("tally").probes == 0) {
        assert!(Instant::now() < deadline, "not every subscriber got a probe");
        probe.publish("load/probe/seq", &probe_policy, QoS::AtLeastOnce, false, b"probe").await.expect("probe");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 90 publishers at once, each its own topic, QoS 1, one message every 100 ms.
    let policy = Policy::parse(TEMP_POLICY).expect("policy");
    let mut publisher_clients = Vec::new();
    for device in publishers {
        let (client, _) = SmqttClient::connect(device.identity(), &client_config(port)).expect("connect");
        publisher_clients.push((device.id.clone(), client));
    }
    let clients_time = clients_started.elapsed();
    // Warm-up, outside the measured window: a client's first encapsulation builds its public key's fixed-base
    // tables (~0.1 s of CPU per client, on the tokio worker that publishes). One message each, under another
    // policy (so the measured session still starts with its capsule), on a topic nobody subscribes to.
    let warm_policy = Policy::parse("site:berlin and role:sensor").expect("policy");
    let warm_started = Instant::now();
    let warm: Vec<_> = publisher_clients
        .iter()
        .map(|(id, client)| {
            let (id, client, policy) = (id.clone(), client.clone(), warm_policy.clone());
            tokio::spawn(async move {
                client.publish(&format!("warm/{id}"), &policy, QoS::AtMostOnce, false, b"warm-up").await
            })
        })
        .collect();
    for task in warm {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("warm-up within 60 s")
            .expect("warm-up task")
            .expect("warm-up publish");
    }
    let warm_time = warm_started.elapsed();

    let traffic_started = Instant::now();
    let tasks: Vec<_> = publisher_clients
        .iter()
        .map(|(id, client)| {
            let (id, client, policy) = (id.clone(), client.clone(), policy.clone());
            tokio::spawn(async move {
                let topic = format!("load/{id}/seq");
                let mut tick = tokio::time::interval(INTERVAL);
                for seq in 0..MESSAGES {
                    tick.tick().await;
                    client
                        .publish(&topic, &policy, QoS::AtLeastOnce, false, format!("{id} {seq}").as_bytes())
                        .await
                        .unwrap_or_else(|e| panic!("{id} publish {seq}: {e}"));
                }
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(30), task).await.expect("publishers finish").expect("publisher task");
    }
    let publish_time = traffic_started.elapsed();
    let per_subscriber = PUBLISHERS as u64 * MESSAGES;
    let deadline = Instant::now() + Duration::from_secs(30);
    while tallies.iter().any(|t| t.lock().expect("tally").accepted < per_subscriber) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered_time = traffic_started.elapsed();
    // A moment for anything extra (duplicates) to show up: a deliberate window, nothing more must arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, tally) in tallies.iter().enumerate() {
        let t = tally.lock().expect("tally");
        assert!(
            t.problems.is_empty(),
            "ls-{i}: {} problems, first: {:?}",
            t.problems.len(),
            &t.problems[..t.problems.len().min(5)]
        );
        let short: Vec<String> =
            t.next.iter().filter(|(_, n)| **n != MESSAGES).map(|(p, n)| format!("{p}: {n}")).collect();
        assert_eq!(t.next.len(), PUBLISHERS, "ls-{i} heard from {} of {PUBLISHERS} publishers", t.next.len());
        assert!(short.is_empty(), "ls-{i} lost QoS 1 messages (publisher: received): {short:?}");
        assert_eq!(t.accepted, per_subscriber, "ls-{i}");
    }
    for (_, client) in &publisher_clients {
        client.disconnect().await;
    }
    for client in &subscriber_clients {
        client.disconnect().await;
    }
    eprintln!(
        "load: {} clients, {} messages published, {} delivered and opened, 0 lost, 0 refused; enrollment of {} \
         devices {:.1} s, clients up {:.1} s, warm-up {:.1} s, publishing {:.1} s, all delivered after {:.1} s, \
         total {:.1} s",
        PUBLISHERS + SUBSCRIBERS + 1,
        per_subscriber,
        per_subscriber * SUBSCRIBERS as u64,
        plan.len(),
        enroll_time.as_secs_f64(),
        clients_time.as_secs_f64(),
        warm_time.as_secs_f64(),
        publish_time.as_secs_f64(),
        delivered_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
