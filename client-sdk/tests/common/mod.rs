//! A real authority and a real rumqttd broker on loopback, in-process, and enrolled devices.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use smqtt_authority::{init, AppState, Authority, Config, UnsealWith};
use smqtt_authority_api::{Client, NewDevice};
use smqtt_client::{DeviceStore, Identity};

pub struct World {
    pub dir: tempfile::TempDir,
    pub authority_url: String,
    pub admin: Client,
    pub broker: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Starts rumqttd with one MQTT 3.1.1 listener on a free loopback port.
pub fn start_rumqttd() -> SocketAddr {
    start_rumqttd_with(false)
}

/// Starts rumqttd with one MQTT 5 listener on a free loopback port.
pub fn start_rumqttd_v5() -> SocketAddr {
    start_rumqttd_with(true)
}

fn start_rumqttd_with(v5: bool) -> SocketAddr {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 5000,
        max_payload_size: 1 << 20,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "v4-test".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let router = rumqttd::RouterConfig {
        max_connections: 1000,
        max_outgoing_packet_count: 200,
        max_segment_size: 1 << 20,
        max_segment_count: 10,
        custom_segment: None,
        initialized_filters: None,
        ..Default::default()
    };
    let listeners = Some(HashMap::from([("1".to_owned(), server)]));
    let config = if v5 {
        rumqttd::Config { id: 0, router, v5: listeners, ..Default::default() }
    } else {
        rumqttd::Config { id: 0, router, v4: listeners, ..Default::default() }
    };
    std::thread::spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        let _ = broker.start();
    });
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return addr;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("rumqttd did not start on {addr}");
}

impl World {
    pub fn new(broker: SocketAddr) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("authority");
        let key: PathBuf = dir.path().join("unseal.key");
        std::fs::write(&key, [3u8; 32]).expect("key");
        init(&data, &UnsealWith::KeyFile(key.clone()), &mut rand_core::OsRng, now()).expect("init");
        let mut config = Config::new(data);
        config.unseal.key_file = Some(key);
        config.limits.rate_per_sec = 0;
        let authority = Arc::new(Authority::open(config).expect("open"));
        let token = authority.create_admin_token("test", &mut rand_core::OsRng, now()).expect("token");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        runtime.spawn(smqtt_authority::serve(AppState::new(authority), listener, std::future::pending()));
        World {
            dir,
            authority_url: url.clone(),
            admin: Client::new(&url).with_admin_token(&token),
            broker,
            _runtime: runtime,
        }
    }

    /// Registers `id` and enrolls it into its own device store.
    pub fn device(&self, id: &str, attributes: &str, publish: &[&str]) -> (DeviceStore, Identity) {
        let created = self
            .admin
            .add_device(&NewDevice {
                device_id: id.into(),
                attributes: attributes.into(),
                publish: publish.iter().map(|s| s.to_string()).collect(),
                token_ttl_secs: None,
            })
            .expect("add device");
        let dir = self.dir.path().join(format!("store-{id}"));
        let identity = DeviceStore::enroll(&dir, &self.authority_url, &created.enrollment_token).expect("enroll");
        (DeviceStore::at(&dir), identity)
    }

    pub fn config_for(broker: SocketAddr) -> smqtt_client::ClientConfig {
        smqtt_client::ClientConfig::new("127.0.0.1", broker.port())
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// A plain MQTT client (no SMQTT), for attacks and for looking at what the broker carries.
pub async fn raw_client(
    broker: SocketAddr,
    id: &str,
) -> (rumqttc::AsyncClient, tokio::sync::mpsc::Receiver<rumqttc::Publish>) {
    let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", broker.port());
    options.set_max_packet_size(1 << 20, 1 << 20);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    if tx.send(p).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    (client, rx)
}

/// Drops the world (its runtime) off the async workers, where dropping a runtime is allowed.
pub async fn finish(world: World) {
    let _ = tokio::task::spawn_blocking(move || drop(world)).await;
}

pub struct Mosquitto {
    child: std::process::Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_mosquitto() -> Mosquitto {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"),
    )
    .expect("conf");
    let mut child = std::process::Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mosquitto (apt-get install mosquitto; .ci/run does)");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Mosquitto { child, addr, _dir: dir };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("mosquitto did not start on {addr}");
}
