//! `smqtt pub` / `smqtt sub` over mqtts://: a private CA, the system's roots, client certificates, and one-line
//! refusals for every TLS mistake a user makes.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use smqtt_testkit::mosquitto::MosquittoConfig;
use smqtt_testkit::tls::Ca;
use smqtt_testkit::TestAuthority;

/// A refusal that is reported within this time, not after a timeout.
const QUICK: Duration = Duration::from_secs(5);
const BIN: &str = env!("CARGO_BIN_EXE_smqtt");

fn run(args: &[&str], store: &Path, env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).arg("--store").arg(store).env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("smqtt")
}

fn one_line_failure(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("smqtt: ") && stderr.contains(expected), "{stderr}");
}

#[test]
fn cli_pub_sub_over_mqtts_with_cafile_system_roots_and_client_certificates() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("ca", dir.path());
    let rogue = Ca::new("rogue", dir.path());
    let server = ca.server("mosquitto", &["localhost"]);
    let broker = MosquittoConfig::plain().tls(&ca.file, &server.cert, &server.key, true).verbose().start();
    let tls_port = broker.tls.expect("the TLS listener").port();
    let world = TestAuthority::new();
    world.device("tcli-pub", "role:sensor", &["t/#"]);
    world.device("tcli-sub", "role:operator", &[]);
    let (pub_store, sub_store) = (world.dir.path().join("store-tcli-pub"), world.dir.path().join("store-tcli-sub"));
    let pub_cert = ca.client("cli-pub", "tcli-pub");
    let sub_cert = ca.client("cli-sub", "tcli-sub");
    let url = format!("mqtts://localhost:{tls_port}");
    let s = |p: &Path| p.display().to_string();
    let (ca_file, sub_crt, sub_key) = (s(&ca.file), s(&sub_cert.cert), s(&sub_cert.key));
    let sub = Command::new(BIN)
        .args(["sub", "-L", &url, "--cafile", &ca_file, "--cert", &sub_crt, "--key", &sub_key])
        .args(["-t", "t/#", "-C", "2", "--json", "--store"])
        .arg(&sub_store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sub");
    std::thread::sleep(Duration::from_millis(1000));
    let (pub_crt, pub_key) = (s(&pub_cert.cert), s(&pub_cert.key));
    let tls_args = ["--cert", pub_crt.as_str(), "--key", pub_key.as_str()];
    let message = ["-t", "t/a", "--policy", "role:operator", "-q", "1", "-m"];
    // mqtts:// with --cafile; then -H/-p with the system's CAs (here: SSL_CERT_FILE) and the name given.
    let out = run(
        &[&["pub", "-L", &url, "--cafile", &ca_file][..], &tls_args, &message, &["via cafile"]].concat(),
        &pub_store,
        &[],
    );
    assert!(out.status.success(), "{out:?}\n{}", broker.log_text());
    let port = tls_port.to_string();
    let by_address = ["pub", "-H", "127.0.0.1", "-p", &port, "--tls-use-os-certs", "--tls-server-name", "localhost"];
    let out = run(
        &[&by_address[..], &tls_args, &message, &["via system roots"]].concat(),
        &pub_store,
        &[("SSL_CERT_FILE", &ca.file)],
    );
    assert!(out.status.success(), "{out:?}");
    let output = sub.wait_with_output().expect("sub");
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("\"payload\":\"via cafile\"") && lines[1].contains("\"payload\":\"via system roots\""));

    // Refusals: one line, exit 2, quickly. The impostor's CA, a wrong name, no client certificate, no system CA.
    let rogue_file = s(&rogue.file);
    let started = Instant::now();
    let out = run(
        &[&["pub", "-L", &url, "--cafile", &rogue_file][..], &tls_args, &message, &["x"]].concat(),
        &pub_store,
        &[],
    );
    one_line_failure(&out, "invalid peer certificate");
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    let wrong_name = ["pub", "-L", &url, "--cafile", &ca_file, "--tls-server-name", "broker.example"];
    one_line_failure(
        &run(&[&wrong_name[..], &tls_args, &message, &["x"]].concat(), &pub_store, &[]),
        "not valid for name",
    );
    let started = Instant::now();
    let out = run(&[&["pub", "-L", &url, "--cafile", &ca_file][..], &message, &["x"]].concat(), &pub_store, &[]);
    one_line_failure(&out, "CertificateRequired");
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").expect("write");
    let out = run(
        &[&["pub", "-L", &url][..], &tls_args, &message, &["x"]].concat(),
        &pub_store,
        &[("SSL_CERT_FILE", &empty)],
    );
    one_line_failure(&out, "no trusted CA certificates");
    // Unreadable and invalid PEM files, and URLs and options that do not fit together.
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n").expect("write");
    let garbage = s(&garbage);
    let cases: [(&[&str], &str); 7] = [
        (&["pub", "-L", &url, "--cafile", "/nonexistent/ca.pem"], "/nonexistent/ca.pem"),
        (&["pub", "-L", &url, "--cafile", &garbage], "invalid PEM"),
        (&["pub", "-L", &url, "--cafile", &ca_file, "--cert", &pub_crt, "--key", &pub_crt], "client key"),
        (&["pub", "-L", &url, "--cafile", &ca_file, "--cert", &garbage, "--key", &pub_key], "client certificate"),
        (&["pub", "-L", "mqtt://localhost", "--cafile", &ca_file], "need TLS"),
        (&["pub", "-p", &port, "--cert", &pub_crt, "--key", &pub_key], "need TLS"),
        (&["pub", "-L", "http://localhost:1883"], "--url http://localhost:1883"),
    ];
    for (args, expected) in cases {
        one_line_failure(&run(&[args, &message, &["x"]].concat(), &pub_store, &[]), expected);
    }
    drop(world);
}
