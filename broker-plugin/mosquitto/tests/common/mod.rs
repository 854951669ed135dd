//! Test harness: an in-process authority with enrolled devices (after client-sdk/tests/common), a real
//! `mosquitto` process with the plugin loaded, and a few raw MQTT 3.1.1 packets for what clients won't send.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smqtt_authority::{init, AppState, Authority, Config, UnsealWith};
use smqtt_authority_api::{Client, NewDevice};
use smqtt_client::{DeviceStore, Identity};

pub const WAIT: Duration = Duration::from_secs(10);

/// `true` when mosquitto and its clients are installed; otherwise says loudly that the test is skipped.
pub fn have_mosquitto() -> bool {
    let found = ["mosquitto", "mosquitto_pub", "mosquitto_sub"]
        .iter()
        .all(|tool| Command::new(tool).arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok());
    if !found {
        eprintln!("SKIPPED: mosquitto, mosquitto_pub or mosquitto_sub not installed (apt-get install mosquitto mosquitto-clients)");
    }
    found
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// The plugin: `$SMQTT_MOSQUITTO_PLUGIN`, or the `.so` cargo built beside this test's rlib dependency
/// (`cargo test` compiles the library with all its crate types, cdylib included), or a fresh
/// `cargo build --release -p smqtt-mosquitto --lib`.
pub fn plugin_path() -> PathBuf {
    if let Some(path) = std::env::var_os("SMQTT_MOSQUITTO_PLUGIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable");
    let deps = exe.parent().expect("deps dir");
    let candidate = deps.join("libsmqtt_mosquitto.so");
    if candidate.exists() {
        return candidate;
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "smqtt-mosquitto", "--lib"])
        .status()
        .expect("cargo build");
    assert!(status.success(), "building the plugin failed");
    let built = deps.parent().expect("profile dir").join("libsmqtt_mosquitto.so");
    assert!(built.exists(), "no {}", built.display());
    built
}

/// An authority on loopback (in-process) and the devices enrolled with it.
pub struct World {
    pub dir: tempfile::TempDir,
    pub authority_url: String,
    pub admin: Client,
    _runtime: tokio::runtime::Runtime,
}

impl World {
    pub fn new() -> World {
        World::with_config(|_, _| {})
    }

    /// An authority that keeps the signed statement of its current epoch in [`statement_file`](Self::statement_file)
    /// (`[epochs] statement_file`: written when it starts serving and after every epoch change).
    pub fn with_statement_file() -> World {
        World::with_config(|dir, config| config.epochs.statement_file = Some(dir.join("epoch.statement")))
    }

    /// The authority's `[epochs] statement_file` under [`with_statement_file`](Self::with_statement_file).
    pub fn statement_file(&self) -> PathBuf {
        self.dir.path().join("epoch.statement")
    }

    /// An authority whose configuration `adjust` changes first (given the world's directory).
    pub fn with_config(adjust: impl FnOnce(&Path, &mut Config)) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("authority");
        let key = dir.path().join("unseal.key");
        std::fs::write(&key, [3u8; 32]).expect("key");
        init(&data, &UnsealWith::KeyFile(key.clone()), &mut rand_core::OsRng, now()).expect("init");
        let mut config = Config::new(data);
        config.unseal.key_file = Some(key);
        config.limits.rate_per_sec = 0;
        adjust(dir.path(), &mut config);
        let authority = Arc::new(Authority::open(config).expect("open"));
        let token = authority.create_admin_token("test", &mut rand_core::OsRng, now()).expect("token");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        runtime.spawn(smqtt_authority::serve(AppState::new(authority), listener, std::future::pending()));
        World { dir, authority_url: url.clone(), admin: Client::new(&url).with_admin_token(&token), _runtime: runtime }
    }

    pub fn store_dir(&self, id: &str) -> PathBuf {
        self.dir.path().join(format!("store-{id}"))
    }

    /// Registers `id` with `attributes` and publish rights, and enrolls it into its own device store.
    pub fn device(&self, id: &str, attributes: &str, publish: &[&str]) -> Identity {
        let created = self
            .admin
            .add_device(&NewDevice {
                device_id: id.into(),
                attributes: attributes.into(),
                publish: publish.iter().map(|s| (*s).to_owned()).collect(),
                token_ttl_secs: None,
            })
            .expect("add device");
        DeviceStore::enroll(&self.store_dir(id), &self.authority_url, &created.enrollment_token).expect("enroll")
    }

    /// The device's identity again (an `Identity` is consumed by `SmqttClient::connect`).
    pub fn identity(&self, id: &str) -> Identity {
        DeviceStore::at(&self.store_dir(id)).load().expect("load identity")
    }
}

/// A fresh CONNECT token (the MQTT password) for `identity` connecting as `client_id`.
pub fn token(identity: &Identity, client_id: &str) -> String {
    smqtt_wire::ConnectToken::create(identity.signing_key(), identity.credential(), client_id, now()).expect("token")
}

/// A mosquitto process with the plugin loaded; killed on drop.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    pub metrics: SocketAddr,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if std::env::var_os("SMQTT_TEST_SHOW_LOG").is_some() {
            eprintln!("---- mosquitto log ----\n{}", self.log_text());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `mosquitto.conf` for the plugin with gate configuration `gate_toml`.
pub fn mosquitto_conf(port: u16, plugin: &Path, gate_toml: &Path, metrics: Option<SocketAddr>) -> String {
    // `user root`: the plugin is loaded after mosquitto drops root privileges (to user `mosquitto`), and the
    // temporary directories here are private; for a non-root run the line has no effect. `auto_id_prefix anon:`:
    // anonymous clients that send no client id are named inside their space (the README's configuration).
    let mut conf = format!(
        "user root\nlistener {port} 127.0.0.1\nallow_anonymous false\nauto_id_prefix anon:\npersistence false\nlog_dest stderr\n\
         plugin {}\nplugin_opt_config {}\n",
        plugin.display(),
        gate_toml.display()
    );
    if let Some(addr) = metrics {
        conf.push_str(&format!("plugin_opt_metrics_listen {addr}\n"));
    }
    conf
}

impl Mosquitto {
    /// Starts mosquitto on a free port with the gate configuration `gate_toml`.
    pub fn start(gate_toml: &str) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml_path = dir.path().join("broker.toml");
        std::fs::write(&toml_path, gate_toml).expect("broker.toml");
        let port = free_port();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, mosquitto_conf(port, &plugin_path(), &toml_path, Some(metrics))).expect("conf");
        let log = dir.path().join("mosquitto.log");
        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("mosquitto");
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("mosquitto exited ({status}):\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Mosquitto { child, port, metrics, log, _dir: dir };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("mosquitto did not listen on {port}:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `mosquitto_pub` against this broker with `args` (which include -t and -m/-f).
    pub fn publish(&self, args: &[&str]) -> Output {
        run(Command::new("mosquitto_pub").args(["-h", "127.0.0.1", "-p", &self.port.to_string()]).args(args))
    }

    /// Starts `mosquitto_sub` (anonymous unless `args` say otherwise); read its output with `wait_with_output`.
    pub fn subscribe(&self, args: &[&str]) -> Child {
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub")
    }
}

/// `GET /metrics` from the plugin's responder at `addr`.
pub fn http_get(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("metrics connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("write");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    text
}

/// Runs `mosquitto_sub` (anonymous) to completion; stdout and stderr together.
pub fn mosquitto_sub_once(port: &str, args: &[&str]) -> String {
    let output = run(Command::new("mosquitto_sub").args(["-h", "127.0.0.1", "-p", port, "-W", "10"]).args(args));
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("run mosquitto client")
}

/// A gauge or counter value from Prometheus text (`name` includes any labels).
pub fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

// ---- raw MQTT 3.1.1 ----

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return;
        }
    }
}

fn field(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&u16::try_from(bytes.len()).expect("short field").to_be_bytes());
    out.extend_from_slice(bytes);
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    remaining_length(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// A will: topic, payload, QoS, retain.
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: u8,
    pub retain: bool,
}

/// CONNECT (MQTT 3.1.1, clean session, keep-alive 60 s).
pub fn connect_packet(
    client_id: &str,
    username: Option<&str>,
    password: Option<&[u8]>,
    will: Option<&Will<'_>>,
) -> Vec<u8> {
    let mut flags = 0x02u8;
    if let Some(will) = will {
        flags |= 0x04 | (will.qos << 3) | if will.retain { 0x20 } else { 0 };
    }
    if username.is_some() {
        flags |= 0x80;
    }
    if password.is_some() {
        flags |= 0x40;
    }
    let mut body = Vec::new();
    field(b"MQTT", &mut body);
    body.extend_from_slice(&[4, flags, 0, 60]);
    field(client_id.as_bytes(), &mut body);
    if let Some(will) = will {
        field(will.topic.as_bytes(), &mut body);
        field(will.payload, &mut body);
    }
    if let Some(username) = username {
        field(username.as_bytes(), &mut body);
    }
    if let Some(password) = password {
        field(password, &mut body);
    }
    packet(0x10, &body)
}

/// PUBLISH at QoS 0.
pub fn publish_packet(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    field(topic.as_bytes(), &mut body);
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

/// Connects a raw client and returns the socket and the CONNACK return code.
pub fn raw_connect(addr: SocketAddr, connect: &[u8]) -> (TcpStream, u8) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream.write_all(connect).expect("send CONNECT");
    let mut connack = [0u8; 4];
    match stream.read_exact(&mut connack) {
        Ok(()) => {
            assert_eq!(connack[..2], [0x20, 2], "not a CONNACK");
            (stream, connack[3])
        }
        // Mosquitto may close before the CONNACK for malformed CONNECTs.
        Err(_) => (stream, 0xff),
    }
}
