//! A real authority on loopback (shared by the tests of this binary), enrolled devices, smqtt-broker instances
//! on free ports, and raw MQTT clients (rumqttc v3.1.1 and v5) for attacks and for looking at the wire.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use smqtt_authority::{init, AppState, Authority, Config, UnsealWith};
use smqtt_authority_api::{Client, NewDevice};
use smqtt_broker::{BrokerConfig, RunningBroker};
use smqtt_client::{DeviceStore, Identity};
use smqtt_wire::ConnectToken;

pub const WAIT: Duration = Duration::from_secs(10);

pub struct World {
    pub dir: tempfile::TempDir,
    pub authority_url: String,
    pub admin: Client,
    _runtime: tokio::runtime::Runtime,
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The authority every test of the binary shares (devices get distinct ids per test).
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(World::new)
}

impl World {
    fn new() -> World {
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
        World { dir, authority_url: url.clone(), admin: Client::new(&url).with_admin_token(&token), _runtime: runtime }
    }

    /// The authority's `authority.pub` (base64, as the authority writes it).
    pub fn authority_pub(&self) -> PathBuf {
        self.dir.path().join("authority").join("authority.pub")
    }

    /// Registers `id` and enrolls it into its own device store.
    pub fn device(&self, id: &str, attributes: &str, publish: &[&str]) -> (PathBuf, Identity) {
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
        (dir, identity)
    }
}

/// Enrolls devices off the async workers (the authority client blocks).
pub async fn devices(specs: Vec<(&'static str, &'static str, Vec<&'static str>)>) -> Vec<(PathBuf, Identity)> {
    tokio::task::spawn_blocking(move || specs.into_iter().map(|(id, a, p)| world().device(id, a, &p)).collect())
        .await
        .expect("enroll")
}

/// Starts smqtt-broker with v4 and v5 listeners and metrics on free ports and `gate` as its inline gate
/// configuration (the authority's key is prepended unless `gate` has an `[authority]` table).
pub fn broker(gate: &str, dir: &Path) -> RunningBroker {
    let gate = if gate.contains("[gate.authority]") || gate.contains("enforcement = false") {
        gate.to_owned()
    } else {
        format!("[gate.authority]\nverifying_key = {:?}\n{gate}", world().authority_pub())
    };
    let text = format!(
        "[v4]\nlisten = \"127.0.0.1:0\"\n[v5]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
         [limits]\nmax_segment_count = 2\n[gate]\n{gate}"
    );
    let config = BrokerConfig::from_toml_str(&text, dir).unwrap_or_else(|e| panic!("{e}\n{text}"));
    smqtt_broker::start(config).unwrap_or_else(|e| panic!("{e}"))
}

pub fn token(identity: &Identity, client_id: &str) -> String {
    ConnectToken::create(identity.signing_key(), identity.credential(), client_id, now()).expect("token")
}

/// What a raw v3.1.1 client saw.
#[derive(Debug)]
pub enum Seen4 {
    ConnAck(rumqttc::ConnectReturnCode),
    Publish(rumqttc::Publish),
    SubAck(rumqttc::SubAck),
    PubAck(u16),
    Refused(rumqttc::ConnectReturnCode),
    Closed(String),
}

/// A raw MQTT 3.1.1 client (no SMQTT); `login` = (username, password). It does not reconnect after an error.
pub async fn raw4(
    addr: SocketAddr,
    id: &str,
    login: Option<(&str, &str)>,
    will: Option<rumqttc::LastWill>,
) -> (rumqttc::AsyncClient, tokio::sync::mpsc::Receiver<Seen4>) {
    let mut options = options4(addr, id, login);
    if let Some(will) = will {
        options.set_last_will(will);
    }
    raw4_with(options)
}

/// The options [`raw4`] uses, to adjust before [`raw4_with`].
pub fn options4(addr: SocketAddr, id: &str, login: Option<(&str, &str)>) -> rumqttc::MqttOptions {
    let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", addr.port());
    options.set_max_packet_size(1 << 20, 1 << 20);
    options.set_keep_alive(Duration::from_secs(30));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    options
}

/// A raw MQTT 3.1.1 client with `options` (call from inside the tokio runtime).
pub fn raw4_with(options: rumqttc::MqttOptions) -> (rumqttc::AsyncClient, tokio::sync::mpsc::Receiver<Seen4>) {
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let seen = match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => Seen4::ConnAck(a.code),
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => Seen4::Publish(p),
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(s))) => Seen4::SubAck(s),
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(a))) => Seen4::PubAck(a.pkid),
                Ok(_) => continue,
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                    let _ = tx.send(Seen4::Refused(code)).await;
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Seen4::Closed(e.to_string())).await;
                    return;
                }
            };
            if tx.send(seen).await.is_err() {
                return;
            }
        }
    });
    (client, rx)
}

/// What a raw v5 client saw.
#[derive(Debug)]
pub enum Seen5 {
    ConnAck(rumqttc::v5::mqttbytes::v5::ConnectReturnCode),
    Publish(rumqttc::v5::mqttbytes::v5::Publish),
    SubAck(rumqttc::v5::mqttbytes::v5::SubAck),
    PubAck(rumqttc::v5::mqttbytes::v5::PubAck),
    /// The assigned client identifier of the CONNACK just seen (only when the CONNACK carries one).
    Assigned(String),
    Refused(rumqttc::v5::mqttbytes::v5::ConnectReturnCode),
    Closed(String),
}

/// A raw MQTT 5 client; `login` = (username, password). It does not reconnect after an error.
pub async fn raw5(
    addr: SocketAddr,
    id: &str,
    login: Option<(&str, &str)>,
) -> (rumqttc::v5::AsyncClient, tokio::sync::mpsc::Receiver<Seen5>) {
    use rumqttc::v5::{mqttbytes::v5::Packet, ConnectionError, Event};
    let mut options = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", addr.port());
    options.set_max_packet_size(Some(1 << 20));
    options.set_keep_alive(Duration::from_secs(30));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 64);
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let seen = match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(a))) => {
                    let assigned = a.properties.and_then(|p| p.assigned_client_identifier);
                    if tx.send(Seen5::ConnAck(a.code)).await.is_err() {
                        return;
                    }
                    match assigned {
                        Some(id) => Seen5::Assigned(id),
                        None => continue,
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => Seen5::Publish(p),
                Ok(Event::Incoming(Packet::SubAck(s))) => Seen5::SubAck(s),
                Ok(Event::Incoming(Packet::PubAck(a))) => Seen5::PubAck(a),
                Ok(_) => continue,
                Err(ConnectionError::ConnectionRefused(code)) => {
                    let _ = tx.send(Seen5::Refused(code)).await;
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Seen5::Closed(e.to_string())).await;
                    return;
                }
            };
            if tx.send(seen).await.is_err() {
                return;
            }
        }
    });
    (client, rx)
}

/// The next event within [`WAIT`], or a panic naming `what`.
pub async fn next<T>(rx: &mut tokio::sync::mpsc::Receiver<T>, what: &str) -> T {
    tokio::time::timeout(WAIT, rx.recv()).await.ok().flatten().unwrap_or_else(|| panic!("no {what} within {WAIT:?}"))
}

/// Nothing arrives within `wait`.
pub async fn quiet<T: std::fmt::Debug>(rx: &mut tokio::sync::mpsc::Receiver<T>, wait: Duration) {
    if let Ok(Some(seen)) = tokio::time::timeout(wait, rx.recv()).await {
        panic!("expected nothing, got {seen:?}");
    }
}

/// `GET /metrics` over a plain TCP socket.
pub fn scrape(addr: SocketAddr) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).expect("metrics");
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    text
}

/// The value of the metric line starting with `name` (labels included).
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn put_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// An MQTT 3.1.1 CONNECT, encoded by hand (keep-alive 60, clean session); `will` = (topic, payload, qos).
pub fn connect_packet(client_id: &str, login: Option<(&str, &str)>, will: Option<(&str, &[u8], u8)>) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4];
    let mut flags = 0x02u8;
    if let Some((_, _, qos)) = will {
        flags |= 0x04 | (qos << 3);
    }
    if login.is_some() {
        flags |= 0xC0;
    }
    body.push(flags);
    body.extend_from_slice(&60u16.to_be_bytes());
    put_str(&mut body, client_id.as_bytes());
    if let Some((topic, payload, _)) = will {
        put_str(&mut body, topic.as_bytes());
        put_str(&mut body, payload);
    }
    if let Some((user, password)) = login {
        put_str(&mut body, user.as_bytes());
        put_str(&mut body, password.as_bytes());
    }
    let mut packet = vec![0x10];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(&body);
    packet
}

/// Connects over a raw socket, sends `packet`, and returns the socket with the CONNACK's return code.
pub fn raw_connect(addr: SocketAddr, packet: &[u8]) -> (std::net::TcpStream, Option<u8>) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    stream.write_all(packet).expect("write");
    let mut ack = [0u8; 4];
    let code = stream.read_exact(&mut ack).ok().map(|()| ack[3]);
    (stream, code)
}
