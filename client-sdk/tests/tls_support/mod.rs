//! For the TLS tests: certificate authorities made here (rcgen), smqtt-broker with TLS listeners in-process,
//! Mosquitto with a TLS listener (and a plain one for spies) as a process, and an impostor rumqttd.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};

/// A certificate authority of the test; its certificate is `<dir>/<name>.pem`.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    pub file: PathBuf,
    dir: PathBuf,
}

/// A certificate and key issued by a [`Ca`], as PEM files.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str, dir: &Path) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let file = dir.join(format!("{name}.pem"));
        std::fs::write(&file, cert.pem()).expect("write CA");
        Ca { cert, key, file, dir: dir.to_owned() }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    fn issue(&self, file: &str, common_name: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Issued {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign");
        let issued = Issued {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        std::fs::write(&issued.cert, &issued.cert_pem).expect("write cert");
        std::fs::write(&issued.key, &issued.key_pem).expect("write key");
        issued
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, file: &str, names: &[&str]) -> Issued {
        self.issue(file, names.first().copied().unwrap_or(file), names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate (no names).
    pub fn client(&self, file: &str, common_name: &str) -> Issued {
        self.issue(file, common_name, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn wait_listening(addr: SocketAddr) -> bool {
    (0..250).any(|_| {
        let up = std::net::TcpStream::connect(addr).is_ok();
        if !up {
            std::thread::sleep(Duration::from_millis(20));
        }
        up
    })
}

/// smqtt-broker (the gate trusting `authority_pub`, `plant/#` protected) with TLS on its v3.1.1 and v5
/// listeners, from the `server` certificate.
pub fn smqtt_broker(authority_pub: &Path, dir: &Path, server: &Issued) -> smqtt_broker::RunningBroker {
    let tls = format!("tls = {{ certpath = {:?}, keypath = {:?} }}", server.cert, server.key);
    let text = format!(
        "[v4]\nlisten = \"127.0.0.1:0\"\n{tls}\n[v5]\nlisten = \"127.0.0.1:0\"\n{tls}\n\
         [gate.authority]\nverifying_key = {authority_pub:?}\n[gate.topics]\nprotected = [\"plant/#\"]\n"
    );
    let config = smqtt_broker::BrokerConfig::from_toml_str(&text, dir).unwrap_or_else(|e| panic!("{e}\n{text}"));
    smqtt_broker::start(config).unwrap_or_else(|e| panic!("{e}"))
}

/// A Mosquitto process: a TLS listener (`tls`) and a plain one on loopback (`plain`, for spies and attackers).
pub struct Mosquitto {
    child: std::process::Child,
    pub tls: SocketAddr,
    pub plain: SocketAddr,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mosquitto {
    /// Its log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Mosquitto with `server` on its TLS listener; `require_certificate`: clients need a certificate from `ca`.
pub fn mosquitto(ca: &Ca, server: &Issued, require_certificate: bool) -> Mosquitto {
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, tls) = (free_port(), free_port());
    let conf = dir.path().join("mosquitto.conf");
    // `user root`: as root, Mosquitto would otherwise switch to user mosquitto, who cannot read the temp dirs.
    std::fs::write(
        &conf,
        format!(
            "user root\nper_listener_settings false\nallow_anonymous true\npersistence false\n\
             listener {plain} 127.0.0.1\nlistener {tls} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
             require_certificate {require_certificate}\n",
            ca.file.display(),
            server.cert.display(),
            server.key.display()
        ),
    )
    .expect("conf");
    let log = dir.path().join("mosquitto.log");
    let mut child = std::process::Command::new("mosquitto")
        .arg("-v")
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("mosquitto (apt-get install mosquitto; .ci/run does)");
    let addr = |port: u16| -> SocketAddr { format!("127.0.0.1:{port}").parse().expect("addr") };
    if wait_listening(addr(plain)) && wait_listening(addr(tls)) {
        return Mosquitto { child, tls: addr(tls), plain: addr(plain), log, _dir: dir };
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("mosquitto did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
}

/// An impostor broker: rumqttd (accepting anyone) with a TLS listener presenting `server` and a plain listener
/// where the attacker sits. Returns (tls, plain).
pub fn impostor(server: &Issued) -> (SocketAddr, SocketAddr) {
    let tls: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let plain: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let listener = |name: &str, listen: SocketAddr, tls: Option<rumqttd::TlsConfig>| rumqttd::ServerSettings {
        name: name.into(),
        listen,
        tls,
        next_connection_delay_ms: 1,
        connections: rumqttd::ConnectionSettings {
            connection_timeout_ms: 5000,
            max_payload_size: 1 << 20,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let certificate = rumqttd::TlsConfig::Rustls {
        capath: None,
        certpath: server.cert.display().to_string(),
        keypath: server.key.display().to_string(),
    };
    let router = rumqttd::RouterConfig {
        max_connections: 100,
        max_outgoing_packet_count: 200,
        max_segment_size: 1 << 20,
        max_segment_count: 10,
        custom_segment: None,
        initialized_filters: None,
        ..Default::default()
    };
    let listeners = HashMap::from([
        ("tls".to_owned(), listener("impostor-tls", tls, Some(certificate))),
        ("plain".to_owned(), listener("impostor-plain", plain, None)),
    ]);
    let config = rumqttd::Config { id: 0, router, v4: Some(listeners), ..Default::default() };
    std::thread::spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        let _ = broker.start();
    });
    assert!(wait_listening(tls) && wait_listening(plain), "impostor rumqttd did not start");
    (tls, plain)
}
