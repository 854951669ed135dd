//! The real `smqtt-authority` binary: CLI, serve over a real socket, kill -9 and restart, tampering.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smqtt_authority_api::{Client, NewDevice};
use smqtt_wire::{DeviceId, SigningKey};

const BIN: &str = env!("CARGO_BIN_EXE_smqtt-authority");

struct Setup {
    dir: tempfile::TempDir,
    data: PathBuf,
    key: PathBuf,
    config: PathBuf,
    /// What `init` printed.
    init_out: String,
}

fn setup(extra_config: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("unseal.key");
    let out = run(&["init", "--data", s(&data), "--key-file", s(&key)], &[]);
    assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
    let config = dir.path().join("authority.toml");
    std::fs::write(
        &config,
        format!("data_dir = \"data\"\nlisten = \"127.0.0.1:0\"\n[unseal]\nkey_file = \"unseal.key\"\n[limits]\nrate_per_sec = 0\n{extra_config}"),
    )
    .expect("config");
    Setup { dir, data, key, config, init_out: String::from_utf8_lossy(&out.stdout).into_owned() }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("SMQTT_ADMIN_TOKEN").env_remove("SMQTT_AUTHORITY_PASSPHRASE");
    for (k, v) in env {
        command.env(k, v);
    }
    command.stdin(Stdio::null()).output().expect("run smqtt-authority")
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(config: &Path, env: &[(&str, &str)]) -> Result<Server, String> {
    let mut command = Command::new(BIN);
    command.args(["serve", "--config", s(config)]).env("RUST_LOG", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    match line.trim().strip_prefix("listening on ") {
        Some(url) => Ok(Server { url: url.to_owned(), child }),
        None => {
            let output = child.wait_with_output().expect("wait");
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}

fn admin_token(setup: &Setup) -> String {
    let out = run(&["admin-token", "create", "--data", s(&setup.data), "--key-file", s(&setup.key)], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

fn stderr_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(text.trim_end().lines().count(), 1, "expected one line on stderr: {text:?}");
    text
}

#[test]
fn cli_administers_a_running_authority() {
    let setup = setup("[epochs]\nstatement_file = \"epoch.statement\"\n");
    // init refuses to overwrite.
    let again = run(&["init", "--data", s(&setup.data), "--key-file", s(&setup.key)], &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr_line(&again).contains("already exists"));
    // Secrets at rest are private.
    use std::os::unix::fs::PermissionsExt as _;
    for name in ["authority.sealed", "authority.db"] {
        let mode = std::fs::metadata(setup.data.join(name)).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "{name} mode {mode:o}");
    }
    let token = admin_token(&setup);
    let server = serve(&setup.config, &[]).expect("serve");
    let env = [("SMQTT_ADMIN_TOKEN", token.as_str()), ("SMQTT_AUTHORITY_URL", server.url.as_str())];

    let out = run(
        &["device", "add", "sensor-1", "--attrs", "role:sensor, site:berlin", "--publish", "plant/berlin/#", "--json"],
        &env,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: smqtt_authority_api::DeviceCreated = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(created.device.publish, vec!["plant/berlin/#"]);

    // A device enrolls and fetches its key over the same socket.
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let client = Client::new(&server.url);
    client.enroll(&created.enrollment_token, &key).expect("enroll");
    let params = client.params().expect("params");
    let id = DeviceId::new("sensor-1").expect("id");
    client.request_key(&params, &id, &key, &mut rand_core::OsRng).expect("key");

    let out = run(&["device", "list"], &env);
    assert!(String::from_utf8_lossy(&out.stdout).contains("sensor-1  enrolled"));

    // `init` and `device add` print the authority key fingerprint, to be compared out of band.
    let vk = smqtt_authority::read_verifying_key(&setup.data).expect("authority.pub");
    assert!(setup.init_out.contains(&format!("authority key {}", vk.fingerprint())), "{}", setup.init_out);
    let out = run(&["device", "add", "sensor-2", "--attrs", "role:sensor"], &env);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("authority key {} (pinned in the token)", vk.fingerprint())), "{text}");

    // `epoch statement`: printed, or written atomically, once verified (against the API's key or `--data`'s).
    let out = run(&["epoch", "statement"], &env);
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let verified = smqtt_wire::EpochStatement::parse(&printed).and_then(|s| s.verify(&vk)).expect("verifies");
    assert_eq!(verified.epoch(), 1);
    let file = setup.dir.path().join("out").join("epoch.statement");
    std::fs::create_dir(file.parent().expect("parent")).expect("mkdir");
    let out = run(&["epoch", "statement", "-o", s(&file), "--data", s(&setup.data)], &env);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&vk.fingerprint()), "{out:?}");
    let written = std::fs::read_to_string(&file).expect("written");
    assert_eq!(smqtt_wire::EpochStatement::parse(&written).and_then(|s| s.verify(&vk)).expect("ok").epoch(), 1);
    // Against another authority's key: refused, nothing written.
    let other = self::setup("");
    let out = run(&["epoch", "statement", "-o", s(&file), "--data", s(&other.data)], &env);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr_line(&out).contains("does not verify"));
    assert_eq!(std::fs::read_to_string(&file).expect("unchanged"), written);
    // `serve` keeps `[epochs] statement_file` (here: epoch.statement next to the configuration).
    let followed = setup.dir.path().join("epoch.statement");
    let shown = || {
        let text = std::fs::read_to_string(&followed).expect("statement file");
        smqtt_wire::EpochStatement::parse(&text).and_then(|s| s.verify(&vk)).expect("verifies").epoch()
    };
    assert_eq!(shown(), 1);
    let out = run(&["epoch", "rotate", "--reason", "test"], &env);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("epoch 2 (epoch:2)"), "{out:?}");
    assert_eq!(shown(), 2);
    let out = run(&["device", "revoke", "sensor-1"], &env);
    assert!(String::from_utf8_lossy(&out.stdout).contains("epoch advanced to 3"), "{out:?}");
    assert_eq!(shown(), 3);
    let out = run(&["audit", "verify"], &env);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("audit chain ok"), "{out:?}");

    // Refusals: exit 1, one line.
    let out = run(&["device", "add", "bad id", "--attrs", "a"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_line(&out).contains("invalid_request"));
    let wrong = [("SMQTT_ADMIN_TOKEN", "smqtt-admin-wrong"), ("SMQTT_AUTHORITY_URL", server.url.as_str())];
    let out = run(&["device", "list"], &wrong);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_line(&out).contains("unauthorized"));
    // Bad input and an unreachable authority: exit 2, one line.
    let out = run(&["device", "list"], &[("SMQTT_AUTHORITY_URL", server.url.as_str())]);
    assert_eq!(out.status.code(), Some(2));
    stderr_line(&out);
    let out = run(&["device", "list", "--url", "http://127.0.0.1:1"], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("cannot reach"));
}

#[test]
fn passphrase_sealing_and_wrong_passphrase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let pass = [("TEST_AUTHORITY_PASS", "correct horse battery staple")];
    let out = run(&["init", "--data", s(&data), "--passphrase-env", "TEST_AUTHORITY_PASS"], &pass);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sealed = std::fs::read(data.join("authority.sealed")).expect("sealed");
    assert!(!sealed.windows(10).any(|w| w == b"correct ho"), "passphrase stored");
    let config = dir.path().join("authority.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\nlisten = \"127.0.0.1:0\"\n[unseal]\npassphrase_env = \"TEST_AUTHORITY_PASS\"\n",
    )
    .expect("config");
    let server = serve(&config, &pass).expect("serves with the right passphrase");
    assert!(Client::new(&server.url).params().is_ok());
    drop(server);
    let err = serve(&config, &[("TEST_AUTHORITY_PASS", "wrong")]).err().expect("wrong passphrase refused");
    assert!(err.contains("cannot unseal"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let err = serve(&config, &[]).err().expect("no passphrase refused");
    assert!(err.contains("TEST_AUTHORITY_PASS"), "{err}");
}

#[test]
fn tampering_with_the_sealed_file_is_detected() {
    let setup = setup("");
    let path = setup.data.join("authority.sealed");
    let original = std::fs::read(&path).expect("sealed");
    for position in [5, 10, 20, 40, 70, original.len() / 2, original.len() - 1] {
        let mut bytes = original.clone();
        bytes[position] ^= 0x01;
        std::fs::write(&path, &bytes).expect("write");
        let err = serve(&setup.config, &[]).err().unwrap_or_else(|| panic!("byte {position} flipped: served anyway"));
        assert!(err.contains("cannot unseal") || err.contains("needs"), "byte {position}: {err}");
    }
    std::fs::write(&path, &original).expect("restore");
    assert!(serve(&setup.config, &[]).is_ok());
}

#[test]
fn tampering_with_the_audit_log_is_detected() {
    let setup = setup("");
    let _token = admin_token(&setup);
    let _ = admin_token(&setup);
    let _ = admin_token(&setup);
    let verify = || run(&["audit", "verify", "--data", s(&setup.data)], &[]);
    let out = verify();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 entries"), "{out:?}");
    let db = rusqlite::Connection::open(setup.data.join("authority.db")).expect("db");
    db.execute("UPDATE audit SET detail = 'label=evil' WHERE seq = 2", []).expect("edit");
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_line(&out).contains("entry 2 was modified"), "{out:?}");
    // Restoring the original text makes the chain verify again: the check points at exactly what changed.
    db.execute("UPDATE audit SET detail = 'label=admin' WHERE seq = 2", []).expect("restore");
    assert!(verify().status.success());
    db.execute("DELETE FROM audit WHERE seq = 3", []).expect("delete");
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_line(&out).contains("entry 3 missing"), "{out:?}");
}

/// With the authority stopped, a device row of its database is edited (`level = 2` → `level = 9`): `serve`, and
/// every command that opens the database with the secrets, refuses it in one line naming the row. Put back,
/// it serves again.
#[test]
fn a_device_row_edited_at_rest_is_refused_by_serve() {
    let setup = setup("");
    let token = admin_token(&setup);
    let server = serve(&setup.config, &[]).expect("serve");
    let env = [("SMQTT_ADMIN_TOKEN", token.as_str()), ("SMQTT_AUTHORITY_URL", server.url.as_str())];
    let out = run(&["device", "add", "sensor-7", "--attrs", "role:sensor, level = 2"], &env);
    assert!(out.status.success(), "{out:?}");
    drop(server);

    let db = rusqlite::Connection::open(setup.data.join("authority.db")).expect("db");
    let edit = |from: &str, to: &str| {
        let sql =
            format!("UPDATE devices SET attributes = replace(attributes, '{from}', '{to}') WHERE id = 'sensor-7'");
        assert_eq!(db.execute(&sql, []).expect("edit"), 1);
    };
    edit("level = 2", "level = 9");
    let err = serve(&setup.config, &[]).err().expect("the edited database is refused");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("database integrity: table devices row sensor-7: does not match its MAC"), "{err}");
    let out = run(&["admin-token", "create", "--data", s(&setup.data), "--key-file", s(&setup.key)], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("table devices row sensor-7"));
    // Offline verification has no secrets: it checks the audit chain, and says that it cannot check the rows.
    let out = run(&["audit", "verify", "--data", s(&setup.data)], &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("MACs need the secrets"), "{out:?}");
    edit("level = 9", "level = 2");
    let server = serve(&setup.config, &[]).expect("the genuine database serves");
    let admin = Client::new(&server.url).with_admin_token(&token);
    assert_eq!(admin.show_device("sensor-7").expect("show").attributes, "role:sensor, level = 2");
}

/// kill -9 in the middle of a burst of enrollments and key requests: after a restart every request that was
/// answered with success is in the database, the audit chain verifies, and every enrollment whose client saw
/// a failure — committed or not before the kill — succeeds when retried with the same token and key.
#[test]
fn kill_during_a_burst_loses_no_acknowledged_request() {
    let setup = setup("");
    let token = admin_token(&setup);
    let server = serve(&setup.config, &[]).expect("serve");
    let admin = Client::new(&server.url).with_admin_token(&token);
    let mut pending = Vec::new();
    for i in 0..400 {
        let created = admin
            .add_device(&NewDevice {
                device_id: format!("burst-{i}"),
                attributes: format!("role:sensor, n = {i}"),
                publish: vec![],
                token_ttl_secs: None,
            })
            .expect("add");
        pending.push((format!("burst-{i}"), created.enrollment_token));
    }
    let params = Arc::new(Client::new(&server.url).params().expect("params"));
    let pending = Arc::new(Mutex::new(pending));
    let enrolled = Arc::new(Mutex::new(Vec::<String>::new()));
    let keys = Arc::new(Mutex::new(std::collections::HashMap::<String, usize>::new()));
    let failed = Arc::new(Mutex::new(Vec::<(String, String, SigningKey)>::new()));
    let url = server.url.clone();
    // Workers 0–3 enroll and fetch keys; 4 and 5 only enroll, so that enrollments are in flight at the kill.
    let workers: Vec<_> = (0..6)
        .map(|worker| {
            let (pending, enrolled, keys, params, url, failed) =
                (pending.clone(), enrolled.clone(), keys.clone(), params.clone(), url.clone(), failed.clone());
            std::thread::spawn(move || {
                let client = Client::new(&url);
                loop {
                    let Some((id, token)) = pending.lock().expect("lock").pop() else { return };
                    let key = SigningKey::generate(&mut rand_core::OsRng);
                    if client.enroll(&token, &key).is_err() {
                        failed.lock().expect("lock").push((id, token, key));
                        return; // the server is gone
                    }
                    enrolled.lock().expect("lock").push(id.clone());
                    let device = DeviceId::new(&id).expect("id");
                    for _ in 0..if worker < 4 { 2 } else { 0 } {
                        if client.request_key(&params, &device, &key, &mut rand_core::OsRng).is_err() {
                            return;
                        }
                        *keys.lock().expect("lock").entry(id.clone()).or_default() += 1;
                    }
                }
            })
        })
        .collect();
    // Let the burst run, then kill the authority without warning.
    let started = Instant::now();
    while enrolled.lock().expect("lock").len() < 40 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut server = server;
    server.child.kill().expect("kill -9");
    let _ = server.child.wait();
    for worker in workers {
        let _ = worker.join();
    }
    let enrolled = enrolled.lock().expect("lock").clone();
    let keys = keys.lock().expect("lock").clone();
    assert!(enrolled.len() >= 40, "burst too small to mean anything: {}", enrolled.len());
    assert!(enrolled.len() < 400, "the kill came after the burst ended");

    // Restart: every acknowledged enrollment and key issuance is there.
    let out = run(&["audit", "verify", "--data", s(&setup.data)], &[]);
    assert!(out.status.success(), "audit after kill: {out:?}");
    let server = serve(&setup.config, &[]).expect("restart");
    let admin = Client::new(&server.url).with_admin_token(&token);
    for id in &enrolled {
        assert_eq!(admin.show_device(id).expect("device").status, "enrolled", "{id} lost");
    }
    let log = admin.audit(10_000).expect("audit");
    for (id, count) in &keys {
        let logged = log.entries.iter().filter(|e| e.action == "key.issue" && &e.subject == id).count();
        assert!(logged >= *count, "{id}: {count} keys acknowledged, {logged} audited");
    }
    // The enrollments in flight at the kill: the client saw a failure, the authority may have committed. The same
    // token and key succeed either way (a retry, or the first enrollment); another key still gets nothing.
    let failed = failed.lock().expect("lock");
    assert!(!failed.is_empty(), "no enrollment was in flight at the kill");
    let client = Client::new(&server.url);
    for (id, token, key) in failed.iter() {
        let credential = client.enroll(token, key).unwrap_or_else(|e| panic!("{id}: retry refused: {e}"));
        assert_eq!(credential.body().device_id.as_str(), id);
        let thief = SigningKey::generate(&mut rand_core::OsRng);
        assert!(matches!(
            client.enroll(token, &thief),
            Err(smqtt_authority_api::ClientError::Http { status: 401, .. })
        ));
    }
    let log = admin.audit(10_000).expect("audit");
    let retried = log.entries.iter().filter(|e| e.action == "device.enroll.retry").count();
    eprintln!("{} enrollments failed at the kill; {retried} of them had been committed (retries)", failed.len());
    assert!(admin.audit_verify().expect("verify").ok);
    let db = rusqlite::Connection::open(setup.data.join("authority.db")).expect("db");
    let integrity: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity");
    assert_eq!(integrity, "ok");
    drop(setup.dir);
}

#[test]
fn serves_https_from_pem_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("cert");
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).expect("cert");
    std::fs::write(dir.path().join("key.pem"), key_pair.serialize_pem()).expect("key");
    let setup = setup(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        s(&dir.path().join("cert.pem")),
        s(&dir.path().join("key.pem"))
    ));
    let server = serve(&setup.config, &[]).expect("serve https");
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    let client = Client::with_ca_pem(&server.url, cert.pem().as_bytes()).expect("client");
    assert_eq!(client.params().expect("params over TLS").epoch.epoch, 1);
    // Without the CA the certificate is refused; plain HTTP to the TLS port gets nowhere.
    // The transport's own error is kept as the cause.
    match Client::new(&server.url).params() {
        Err(error @ smqtt_authority_api::ClientError::Transport { .. }) => {
            let cause = std::error::Error::source(&error).expect("a cause");
            assert!(cause.is::<ureq::Transport>(), "{cause:?}");
            assert_eq!(error.to_string(), format!("cannot reach the authority: {cause}"));
        }
        other => panic!("expected a transport failure, got {other:?}"),
    }
    let plain = server.url.replacen("https://", "http://", 1);
    assert!(Client::new(&plain).params().is_err());

    // Unusable PEM files: a one-line error, exit 2, nothing served.
    std::fs::write(dir.path().join("key.pem"), "not a key").expect("key");
    let err = serve(&setup.config, &[]).err().expect("bad key refused");
    assert!(err.contains("TLS certificate or key unusable"), "{err}");
}
