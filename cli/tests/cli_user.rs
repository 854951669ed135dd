//! `smqtt pub` / `smqtt sub` as a user scripts them: exit codes that mean what they say, acknowledgements,
//! streamed lines, byte-exact output, a ready line, refused CONNECTs reported (and a stale credential renewed).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use smqtt_testkit::TestAuthority;

const BIN: &str = env!("CARGO_BIN_EXE_smqtt");
const WAIT: Duration = Duration::from_secs(15);

fn smqtt(store: &Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).arg("--store").arg(store).stdin(Stdio::null()).output().expect("run smqtt")
}

/// A device enrolled into its own store; the store's directory.
fn store_of(world: &TestAuthority, id: &str, attributes: &str, publish: &[&str]) -> PathBuf {
    world.device(id, attributes, publish);
    world.dir.path().join(format!("store-{id}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One line on stderr, `smqtt: …`, and this exit code.
fn fails_with(out: &Output, code: i32, needle: &str) {
    let text = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {text}");
    assert_eq!(text.lines().count(), 1, "one line: {text:?}");
    assert!(text.starts_with("smqtt: ") && text.contains(needle), "{needle:?} not in {text:?}");
}

/// A listener that accepts and reads but never answers; `connack`: it answers the CONNECT and nothing else.
fn mute_broker(connack: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                if connack && stream.read(&mut buf).is_ok_and(|n| n > 0) {
                    let _ = stream.write_all(&[0x20, 0x02, 0x00, 0x00]);
                }
                while stream.read(&mut buf).is_ok_and(|n| n > 0) {}
            });
        }
    });
    port
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[test]
fn unreachable_silent_and_unacknowledging_brokers_never_exit_0() {
    let world = TestAuthority::new();
    let store = store_of(&world, "cli-lonely", "role:sensor", &["t/#"]);
    let publish = |port: u16, qos: &str| {
        let port = port.to_string();
        smqtt(&store, &["pub", "-p", &port, "-t", "t/a", "--policy", "role:x", "-m", "m", "-q", qos, "--timeout", "1"])
    };
    let closed = closed_port();
    for qos in ["0", "1"] {
        fails_with(&publish(closed, qos), 2, "127.0.0.1");
    }
    let started = Instant::now();
    let out = smqtt(&store, &["sub", "-p", &closed.to_string(), "-t", "t/#", "--timeout", "1"]);
    fails_with(&out, 2, "127.0.0.1");
    assert!(started.elapsed() < WAIT, "sub gave up in {:?}", started.elapsed());

    // Accepts the TCP connection, never a CONNACK: no answer is a failure too.
    fails_with(&publish(mute_broker(false), "1"), 2, "no answer");
    // CONNACK, then never a PUBACK: QoS 1 is not acknowledged (exit 3); QoS 0 promises nothing more than sent.
    let no_puback = mute_broker(true);
    fails_with(&publish(no_puback, "1"), 3, "not acknowledged");
    let out = publish(no_puback, "0");
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Lines of a child's pipe, as they arrive.
fn lines_of<R: std::io::Read + Send + 'static>(pipe: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

struct Sub {
    child: Child,
    stdout: mpsc::Receiver<Vec<u8>>,
    stderr: mpsc::Receiver<Vec<u8>>,
}

impl Sub {
    /// `smqtt sub … ` started, returned once it said it is subscribed.
    fn start(store: &Path, port: u16, id: &str, extra: &[&str]) -> Sub {
        let mut child = Command::new(BIN)
            .args(["sub", "-p", &port.to_string(), "-i", id, "-t", "t/#", "-q", "1"])
            .args(extra)
            .arg("--store")
            .arg(store)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sub");
        let stdout = lines_of::<ChildStdout>(child.stdout.take().expect("stdout"));
        let stderr = lines_of::<ChildStderr>(child.stderr.take().expect("stderr"));
        let ready = stderr.recv_timeout(WAIT).expect("a ready line");
        assert_eq!(String::from_utf8_lossy(&ready), "smqtt: subscribed to t/#");
        Sub { child, stdout, stderr }
    }

    fn next(&self) -> Vec<u8> {
        self.stdout.recv_timeout(WAIT).expect("a line, flushed as it arrived")
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn output_is_byte_exact_streamed_and_escaped() {
    let broker = smqtt_testkit::rumqttd::start_rumqttd();
    let world = TestAuthority::new();
    let pub_store = store_of(&world, "cli-writer", "role:sensor", &["t/#"]);
    let sub_store = store_of(&world, "cli-reader", "role:operator", &[]);
    let port = broker.port();
    let json = Sub::start(&sub_store, port, "cli-reader-json", &["--json"]);
    let verbose = Sub::start(&sub_store, port, "cli-reader-v", &["-v"]);

    // A binary file (not UTF-8): the exact bytes in payload_base64, no text.
    let file = world.dir.path().join("blob.bin");
    let blob: Vec<u8> = (0..5100u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert!(std::str::from_utf8(&blob).is_err());
    std::fs::write(&file, &blob).expect("blob");
    let file = file.to_str().expect("path");
    let out = smqtt(
        &pub_store,
        &["pub", "-p", &port.to_string(), "-t", "t/blob", "--policy", "role:operator", "-f", file, "-q", "1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let line = String::from_utf8(json.next()).expect("JSON is UTF-8");
    let field = line.split("\"payload_base64\":\"").nth(1).and_then(|rest| rest.split('"').next()).expect("base64");
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(field).expect("base64"), blob);
    assert!(line.contains("\"payload\":null"), "{line}");
    let shown = verbose.next();
    let escaped = shown.strip_prefix(b"t/blob [cli-writer] ").expect("topic and publisher first");
    assert!(!escaped.iter().any(u8::is_ascii_control), "control bytes are escaped");
    assert_eq!(unescaped(escaped), blob, "-v escapes reversibly");

    // A payload that tries to forge a second line and colour the terminal: escaped under -v.
    let forged = "21.0 C\nt/x [cli-boss] 99.9 C\u{1b}[2K";
    let out =
        smqtt(&pub_store, &["pub", "-p", &port.to_string(), "-t", "t/x", "--policy", "role:operator", "-m", forged]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(verbose.next(), b"t/x [cli-writer] 21.0 C\\nt/x [cli-boss] 99.9 C\\x1b[2K");
    assert!(String::from_utf8(json.next()).expect("utf-8").contains("\"payload\":\"21.0 C\\u000at/x"));

    // `pub -l` publishes each line as it is read: the first arrives while stdin is still open.
    let mut lines = Command::new(BIN)
        .args(["pub", "-p", &port.to_string(), "-t", "t/l", "--policy", "role:operator", "-l", "-q", "1", "--store"])
        .arg(&pub_store)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pub -l");
    let mut stdin = lines.stdin.take().expect("stdin");
    for text in ["first", "second"] {
        stdin.write_all(format!("{text}\n").as_bytes()).expect("line");
        stdin.flush().expect("flush");
        assert_eq!(verbose.next(), format!("t/l [cli-writer] {text}").as_bytes());
        let _ = json.next();
    }
    drop(stdin);
    let out = lines.wait_with_output().expect("pub -l ends");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(verbose.stderr.try_recv().is_err(), "nothing refused, no connection trouble");
}

/// The inverse of `-v`'s escaping (`\\`, `\n`, `\r`, `\t`, `\xNN`).
fn unescaped(text: &[u8]) -> Vec<u8> {
    let (mut out, mut i) = (Vec::new(), 0);
    while i < text.len() {
        if text[i] != b'\\' {
            out.push(text[i]);
            i += 1;
            continue;
        }
        match text[i + 1] {
            b'x' => {
                let hex = std::str::from_utf8(&text[i + 2..i + 4]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 4;
            }
            other => {
                out.push(match other {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    _ => other,
                });
                i += 2;
            }
        }
    }
    out
}

/// smqtt-broker with the gate, following the authority's epoch every second; `t/#` protected.
fn gated_broker(world: &TestAuthority, dir: &Path) -> smqtt_broker::RunningBroker {
    let gate = format!(
        "[v4]\nlisten = \"127.0.0.1:0\"\n[gate.authority]\nverifying_key = {:?}\nurl = {:?}\nepoch_poll_secs = 1\n\
         [gate.topics]\nprotected = [\"t/#\"]\n",
        world.dir.path().join("authority/authority.pub"),
        world.authority_url
    );
    let config = smqtt_broker::BrokerConfig::from_toml_str(&gate, dir).unwrap_or_else(|e| panic!("{e}"));
    smqtt_broker::start(config).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn refused_connects_are_reported_and_a_stale_credential_is_renewed() {
    let world = TestAuthority::new();
    let stale = store_of(&world, "cli-stale", "role:sensor", &["t/#"]);
    let gone = store_of(&world, "cli-gone", "role:operator", &[]);
    let dir = tempfile::tempdir().expect("dir");
    let broker = gated_broker(&world, dir.path());
    let port = broker.v4.expect("v4").port().to_string();

    // The administrator revokes one device: the epoch moves on, the broker follows within its poll interval.
    world.admin.revoke_device("cli-gone").expect("revoke");
    std::thread::sleep(Duration::from_millis(2500));

    // A credential of the past epoch: refused at CONNECT, renewed at the authority, then acknowledged.
    let out = smqtt(&stale, &["pub", "-p", &port, "-t", "t/a", "--policy", "role:operator", "-m", "m", "-q", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("smqtt: renewed the credential (epoch 1 -> 2)"), "{}", stderr(&out));
    // The revoked device: refused, renewal refused, exit 1 with both reasons on one line (not a silent retry).
    let started = Instant::now();
    let out = smqtt(&gone, &["sub", "-p", &port, "-t", "t/#", "--timeout", "5"]);
    fails_with(&out, 1, "refused the connection");
    assert!(stderr(&out).contains("renewing failed"), "{}", stderr(&out));
    assert!(started.elapsed() < WAIT, "took {:?}", started.elapsed());
}

/// A loopback TCP relay to `target` whose connections can be cut (the broker seems to drop its clients).
struct Relay {
    port: u16,
    live: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    fn to(target: std::net::SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let live = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let tracked = live.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(target) else { continue };
                let pipes = [(client.try_clone(), server.try_clone()), (server.try_clone(), client.try_clone())];
                for (from, to) in pipes {
                    if let (Ok(mut from), Ok(mut to)) = (from, to) {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        });
                    }
                }
                tracked.lock().expect("relay").extend([client, server]);
            }
        });
        Relay { port, live }
    }

    fn cut(&self) {
        for stream in self.live.lock().expect("relay").drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn a_running_sub_reports_the_lost_connection_and_ends_when_its_reconnect_is_refused() {
    let world = TestAuthority::new();
    let victim = store_of(&world, "cli-victim", "role:operator", &[]);
    let dir = tempfile::tempdir().expect("dir");
    let broker = gated_broker(&world, dir.path());
    let relay = Relay::to(broker.v4.expect("v4"));
    let mut sub = Sub::start(&victim, relay.port, "cli-victim", &[]);

    // Revoked while connected; then the connection drops and every reconnect is refused.
    world.admin.revoke_device("cli-victim").expect("revoke");
    std::thread::sleep(Duration::from_millis(2500));
    relay.cut();
    let lost = sub.stderr.recv_timeout(WAIT).expect("a line about the lost connection");
    assert!(String::from_utf8_lossy(&lost).ends_with("; reconnecting"), "{}", String::from_utf8_lossy(&lost));
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = sub.child.try_wait().expect("wait") {
            break exit;
        }
        assert!(started.elapsed() < WAIT, "a revoked sub kept retrying");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(1));
    let last = sub.stderr.recv_timeout(WAIT).expect("the reason");
    let last = String::from_utf8_lossy(&last);
    assert!(last.contains("refused the connection") && last.contains("renewing failed"), "{last}");
}
