//! Child processes and the things the tests do with them: find the binaries, start the authority, brokers and
//! CLI clients on free loopback ports, enroll devices through `smqtt enroll`, wait with bounds, and print the
//! tail of every process's stderr when a test fails.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use smqtt_client::{ClientConfig, DeviceStore, Identity};

/// Upper bound of every wait for something that should happen promptly (a process ready, a message delivered).
pub const WAIT: Duration = Duration::from_secs(15);

/// Runs one test's body: one test at a time (they share two cores with whatever else runs, and time things),
/// on a runtime of its own with two workers (the body itself runs on the test thread and may block on child
/// processes; clients' event loops run on the workers).
pub fn run_test<F: std::future::Future<Output = ()>>(body: F) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    runtime.block_on(body);
}

/// `target/<profile>/`, from this test executable's path (`target/<profile>/deps/system-…`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    let deps = exe.parent().expect("test executable has a directory");
    deps.parent().expect("target/<profile>/deps has a parent").to_path_buf()
}

/// A workspace binary (or library) in the target directory, or `None`.
pub fn artifact(name: &str) -> Option<PathBuf> {
    let path = target_dir().join(name);
    path.is_file().then_some(path)
}

/// A workspace binary that must exist: panics naming it and how to build it otherwise.
pub fn binary(name: &str) -> PathBuf {
    artifact(name).unwrap_or_else(|| {
        panic!(
            "{name} not found in {}: build the workspace's binaries first (`cargo test --workspace --release` does; \
             with `-p smqtt-e2e` alone run `cargo build --release --workspace` before)",
            target_dir().display()
        )
    })
}

/// Debian's Mosquitto, if installed.
pub fn mosquitto_binary() -> Option<PathBuf> {
    ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free loopback port").port()
}

pub fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Polls `check` every 20 ms until it yields a value or `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_listening(addr: SocketAddr, what: &str, process: &mut Proc) {
    wait_for(&format!("{what} listening on {addr}"), WAIT, || {
        if let Some(status) = process.exited() {
            panic!("{what} exited ({status}) before listening:\n{}", process.tail(40));
        }
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
    });
}

/// A child process that is killed when dropped; its stderr (and, unless piped, stdout) goes to a log file whose
/// tail is printed when the test fails.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Starts `command` with stdout piped (see [`Proc::stdout_lines`]) or logged, stderr logged.
    pub fn spawn(name: &str, mut command: Command, logs: &Path, pipe_stdout: bool) -> Proc {
        let log = unique_log(logs, name);
        let file = std::fs::File::create(&log).expect("create log file");
        let out: Stdio = if pipe_stdout { Stdio::piped() } else { file.try_clone().expect("clone log").into() };
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Proc { name: name.to_owned(), child: Some(child), log }
    }

    /// Lines of the piped stdout, read by a thread of their own.
    pub fn stdout_lines(&mut self) -> Lines {
        let stdout = self.child.as_mut().and_then(|c| c.stdout.take()).expect("stdout was piped and not taken yet");
        Lines::from_reader(stdout, &self.name)
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (bounded) for the exit; SIGKILL if it does not come.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The last `lines` lines of the log.
    pub fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!("---- {} ({}) ----\n{}", self.name, self.log.display(), all[start..].join("\n"))
    }

    /// Whether the log contains `needle` (e.g. a broker's "Client x disconnected").
    pub fn log_contains(&self, needle: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|t| t.contains(needle))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.tail(30));
        }
    }
}

fn unique_log(dir: &Path, name: &str) -> PathBuf {
    (0..)
        .map(|i| dir.join(if i == 0 { format!("{name}.log") } else { format!("{name}.{i}.log") }))
        .find(|p| !p.exists())
        .expect("a free log name")
}

/// Lines from a child's stdout, with bounded waits, remembered for the failure report.
#[derive(Debug)]
pub struct Lines {
    name: String,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn from_reader(reader: impl std::io::Read + Send + 'static, name: &str) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines { name: name.to_owned(), rx, seen: Vec::new() }
    }

    /// The next line within `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Option<String> {
        let line = self.rx.recv_timeout(timeout).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Every line that arrives within `quiet` of the previous one.
    pub fn drain(&mut self, quiet: Duration) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(line) = self.next(quiet) {
            out.push(line);
        }
        out
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.seen.is_empty() {
            let start = self.seen.len().saturating_sub(20);
            eprintln!("---- {} stdout ----\n{}", self.name, self.seen[start..].join("\n"));
        }
    }
}

/// Runs a CLI to completion (bounded) and returns its output.
pub fn run(what: &str, mut command: Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output { status, stdout: out_thread.join().unwrap_or_default(), stderr: err_thread.join().unwrap_or_default() }
}

/// Like [`run`], and asserts success.
pub fn run_ok(what: &str, command: Command) -> String {
    let out = run(what, command);
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How the authority's secrets are sealed at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealing {
    /// Argon2id from a passphrase file.
    Passphrase,
    /// A 32-byte key file.
    KeyFile,
}

/// The authority's statement file, relative to `authority.toml` (the test directory).
const STATEMENT_FILE: &str = "epoch.statement";

/// `extra_config` for [`Authority::start`]: `serve` keeps the signed statement of the current epoch in
/// [`Authority::statement_file`] (written before it listens, and after every epoch change), for brokers to follow.
pub const STATEMENT_CONFIG: &str = "[epochs]\nstatement_file = \"epoch.statement\"\n";

/// The `smqtt-authority` process, its data directory and an admin token.
#[derive(Debug)]
pub struct Authority {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub url: String,
    pub admin_token_file: PathBuf,
    config: PathBuf,
    logs: PathBuf,
    pub proc: Option<Proc>,
}

impl Authority {
    /// `init`, `admin-token create`, `authority.toml` (fixed free port, no rate limit) and `serve`.
    pub fn start(dir: &Path, sealing: Sealing, extra_config: &str) -> Authority {
        let bin = binary("smqtt-authority");
        let data = dir.join("authority-data");
        let (unseal_args, unseal_toml) = match sealing {
            Sealing::Passphrase => {
                let file = dir.join("authority.passphrase");
                std::fs::write(&file, "correct horse battery staple, e2e\n").expect("passphrase file");
                (
                    vec!["--passphrase-file".to_owned(), s(&file).to_owned()],
                    "passphrase_file = \"authority.passphrase\"",
                )
            }
            Sealing::KeyFile => {
                let file = dir.join("authority.key");
                (vec!["--key-file".to_owned(), s(&file).to_owned()], "key_file = \"authority.key\"")
            }
        };
        let mut init = authority_command(&bin);
        init.args(["init", "--data", s(&data)]).args(&unseal_args);
        run_ok("smqtt-authority init", init);
        let mut token = authority_command(&bin);
        token.args(["admin-token", "create", "--data", s(&data), "--label", "e2e"]).args(&unseal_args);
        let token = run_ok("smqtt-authority admin-token create", token);
        let admin_token_file = dir.join("admin.token");
        std::fs::write(&admin_token_file, token.trim()).expect("admin token file");
        let port = free_port();
        let config = dir.join("authority.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"authority-data\"\nlisten = \"127.0.0.1:{port}\"\n[unseal]\n{unseal_toml}\n\
                 [limits]\nrate_per_sec = 0\n{extra_config}"
            ),
        )
        .expect("authority.toml");
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).expect("logs dir");
        let mut authority = Authority {
            dir: dir.to_path_buf(),
            data,
            url: format!("http://127.0.0.1:{port}"),
            admin_token_file,
            config,
            logs,
            proc: None,
        };
        authority.serve();
        authority
    }

    /// Starts `serve` (again) on the same data directory and port; waits for its "listening on" line.
    pub fn serve(&mut self) {
        let mut command = authority_command(&binary("smqtt-authority"));
        command.args(["serve", "--config", s(&self.config)]).env("RUST_LOG", "warn");
        let mut proc = Proc::spawn("smqtt-authority", command, &self.logs, true);
        let mut lines = proc.stdout_lines();
        let line = lines.next(WAIT).unwrap_or_else(|| panic!("smqtt-authority did not start:\n{}", proc.tail(40)));
        assert_eq!(line.trim(), format!("listening on {}", self.url), "{}", proc.tail(40));
        // Keep draining stdout so the process never blocks on a full pipe.
        std::thread::spawn(move || while lines.next(Duration::from_secs(3600)).is_some() {});
        self.proc = Some(proc);
    }

    /// `kill -9` the running authority.
    pub fn kill9(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill9();
        }
    }

    /// The authority's verifying key (base64, as the gate reads it).
    pub fn verifying_key(&self) -> PathBuf {
        self.data.join("authority.pub")
    }

    /// `smqtt-authority <args>` with the URL and admin token of this authority.
    pub fn admin(&self, args: &[&str]) -> Command {
        let mut command = authority_command(&binary("smqtt-authority"));
        command
            .args(args)
            .env("SMQTT_AUTHORITY_URL", &self.url)
            .env("SMQTT_ADMIN_TOKEN", token(&self.admin_token_file));
        command
    }

    /// `smqtt-authority device add … --json` (the CLI): the one-time enrollment token.
    pub fn add_device(&self, id: &str, attrs: &str, publish: &[&str]) -> String {
        let mut args = vec!["device", "add", id, "--attrs", attrs, "--json"];
        let joined = publish.join(",");
        if !publish.is_empty() {
            args.extend(["--publish", &joined]);
        }
        let out = run_ok("smqtt-authority device add", self.admin(&args));
        let json: serde_json::Value = serde_json::from_str(&out).expect("device add --json output");
        json["enrollment_token"].as_str().expect("enrollment_token in the answer").to_owned()
    }

    /// Registers many devices at once over the API (the admin client the CLI uses): their tokens.
    pub fn add_devices_api(&self, devices: &[(String, String, Vec<String>)]) -> Vec<String> {
        let client = smqtt_authority_api::Client::new(&self.url).with_admin_token(&token(&self.admin_token_file));
        devices
            .iter()
            .map(|(id, attrs, publish)| {
                client
                    .add_device(&smqtt_authority_api::NewDevice {
                        device_id: id.clone(),
                        attributes: attrs.clone(),
                        publish: publish.clone(),
                        token_ttl_secs: None,
                    })
                    .unwrap_or_else(|e| panic!("add device {id}: {e}"))
                    .enrollment_token
            })
            .collect()
    }

    /// Where `serve` keeps the signed statement of the current epoch when started with [`STATEMENT_CONFIG`].
    pub fn statement_file(&self) -> PathBuf {
        self.dir.join(STATEMENT_FILE)
    }

    /// The current epoch, from `smqtt-authority epoch show --json`.
    pub fn epoch(&self) -> u64 {
        let out = run_ok("smqtt-authority epoch show", self.admin(&["epoch", "show", "--json"]));
        let json: serde_json::Value = serde_json::from_str(&out).expect("epoch show --json output");
        json["epoch"].as_u64().expect("epoch number")
    }

    /// `smqtt-authority audit verify --data DIR` (offline, no secret): the number of entries.
    pub fn audit_verify_offline(&self) -> String {
        let mut command = authority_command(&binary("smqtt-authority"));
        command.args(["audit", "verify", "--data", s(&self.data)]);
        run_ok("smqtt-authority audit verify --data", command)
    }

    pub fn logs(&self) -> &Path {
        &self.logs
    }
}

fn token(file: &Path) -> String {
    std::fs::read_to_string(file).expect("admin token file").trim().to_owned()
}

fn authority_command(bin: &Path) -> Command {
    let mut command = Command::new(bin);
    command.env_remove("SMQTT_ADMIN_TOKEN").env_remove("SMQTT_AUTHORITY_PASSPHRASE").env_remove("SMQTT_AUTHORITY_URL");
    command
}

/// `smqtt <args>` with a clean environment.
pub fn smqtt(args: &[&str]) -> Command {
    let mut command = Command::new(binary("smqtt"));
    command.args(args).env_remove("SMQTT_STORE").env("RUST_LOG", "warn");
    command
}

/// A device enrolled with `smqtt enroll` into its own store.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    pub store: PathBuf,
}

impl Device {
    pub fn store(&self) -> DeviceStore {
        DeviceStore::at(&self.store)
    }

    pub fn identity(&self) -> Identity {
        self.store().load().unwrap_or_else(|e| panic!("load the store of {}: {e}", self.id))
    }

    pub fn store_arg(&self) -> &str {
        s(&self.store)
    }
}

/// Registers `id` with the admin CLI and enrolls it with `smqtt enroll`.
pub fn enroll(authority: &Authority, id: &str, attrs: &str, publish: &[&str]) -> Device {
    let token = authority.add_device(id, attrs, publish);
    let store = authority.dir.join("stores").join(id);
    let out = run_ok(
        "smqtt enroll",
        smqtt(&["enroll", "--authority", &authority.url, "--token", &token, "--store", s(&store)]),
    );
    assert!(out.starts_with(&format!("enrolled {id} (epoch ")), "smqtt enroll said {out:?}");
    Device { id: id.to_owned(), store }
}

/// Registers many devices over the API and enrolls them with `smqtt enroll`, `parallel` processes at a time.
pub fn enroll_many(authority: &Authority, devices: &[(String, String, Vec<String>)], parallel: usize) -> Vec<Device> {
    let tokens = authority.add_devices_api(devices);
    let stores = authority.dir.join("stores");
    let mut out = Vec::new();
    for (chunk, tokens) in devices.chunks(parallel).zip(tokens.chunks(parallel)) {
        let children: Vec<(Device, Child)> = chunk
            .iter()
            .zip(tokens)
            .map(|((id, _, _), token)| {
                let store = stores.join(id);
                let child = smqtt(&["enroll", "--authority", &authority.url, "--token", token, "--store", s(&store)])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start smqtt enroll");
                (Device { id: id.clone(), store }, child)
            })
            .collect();
        for (device, child) in children {
            let result = child.wait_with_output().expect("wait for smqtt enroll");
            assert!(
                result.status.success(),
                "smqtt enroll {} failed: {}",
                device.id,
                String::from_utf8_lossy(&result.stderr)
            );
            out.push(device);
        }
    }
    out
}

/// `smqtt pub` of one message; asserts exit 0.
pub fn publish_cli(device: &Device, port: u16, topic: &str, policy: &str, message: &str) {
    run_ok(
        "smqtt pub",
        smqtt(&[
            "pub",
            "--store",
            device.store_arg(),
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "--policy",
            policy,
            "-m",
            message,
            "-q",
            "1",
        ]),
    );
}

/// A running `smqtt sub --json` process and its output lines.
#[derive(Debug)]
pub struct CliSubscriber {
    pub proc: Proc,
    pub lines: Lines,
}

impl CliSubscriber {
    pub fn start(device: &Device, port: u16, filter: &str, logs: &Path) -> CliSubscriber {
        let command =
            smqtt(&["sub", "--store", device.store_arg(), "-p", &port.to_string(), "-t", filter, "-q", "1", "--json"]);
        let mut proc = Proc::spawn(&format!("smqtt-sub-{}", device.id), command, logs, true);
        let lines = proc.stdout_lines();
        CliSubscriber { proc, lines }
    }

    /// The next JSON line within `timeout`.
    pub fn next_json(&mut self, timeout: Duration) -> Option<serde_json::Value> {
        let line = self.lines.next(timeout)?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", self.proc.name)))
    }

    /// The next JSON line that is not about `skip_topic` (probes), within `timeout`.
    pub fn next_skipping(&mut self, skip_topic: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let value = self
                .next_json(left)
                .unwrap_or_else(|| panic!("{}: nothing but probes within {timeout:?}", self.proc.name));
            if !mentions_topic(&value, skip_topic) {
                return value;
            }
        }
    }
}

/// Whether a `smqtt sub --json` line is about `topic` or below (an accepted message's `topic`, or a refusal's
/// text).
pub fn mentions_topic(value: &serde_json::Value, topic: &str) -> bool {
    value["topic"].as_str().is_some_and(|t| t.starts_with(topic))
        || value["message"].as_str().is_some_and(|m| m.contains(topic))
}

/// The `smqtt-broker` process (rumqttd with the gate).
#[derive(Debug)]
pub struct SmqttBroker {
    pub proc: Proc,
    pub port: u16,
    pub config: PathBuf,
    logs: PathBuf,
}

impl SmqttBroker {
    /// Writes `gate.toml` (`gate`) and `broker.toml` (an MQTT 3.1.1 listener on a free port, that gate) and
    /// starts `smqtt-broker --config broker.toml`; `None` if the binary is not built.
    pub fn start(dir: &Path, gate: &str) -> Option<SmqttBroker> {
        let bin = artifact("smqtt-broker")?;
        let port = free_port();
        let config = dir.join("broker.toml");
        std::fs::write(dir.join("gate.toml"), gate).expect("gate.toml");
        std::fs::write(&config, broker_toml(port)).expect("broker.toml");
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).expect("logs dir");
        let mut command = Command::new(&bin);
        command.arg("--config").arg(&config).env("RUST_LOG", "warn");
        let mut proc = Proc::spawn("smqtt-broker", command, &logs, false);
        wait_listening(SocketAddr::from(([127, 0, 0, 1], port)), "smqtt-broker", &mut proc);
        Some(SmqttBroker { proc, port, config, logs })
    }

    /// SIGTERM and start again with the same configuration (same port).
    pub fn restart(&mut self) {
        let _ = self.proc.terminate(Duration::from_secs(10));
        let mut command = Command::new(binary("smqtt-broker"));
        command.arg("--config").arg(&self.config).env("RUST_LOG", "warn");
        self.proc = Proc::spawn("smqtt-broker", command, &self.logs, false);
        wait_listening(SocketAddr::from(([127, 0, 0, 1], self.port)), "smqtt-broker", &mut self.proc);
    }
}

/// The embedded broker's configuration (see the smqtt-broker crate): an MQTT 3.1.1 listener on `port`, and the
/// gate's own file, in the same format the Mosquitto plugin reads.
fn broker_toml(port: u16) -> String {
    format!("gate_config = \"gate.toml\"\n\n[v4]\nlisten = \"127.0.0.1:{port}\"\n")
}

/// The gate configuration all tests use: the authority's key, `plant/#` protected, optionally an epoch file.
///
/// The epoch file must hold an authority-signed statement (`smqtt-epoch1.…`, docs/wire.md §10), never a bare
/// number: point it at the authority's `[epochs] statement_file` ([`STATEMENT_CONFIG`],
/// [`Authority::statement_file`]), which `serve` keeps current, as an operator with broker and authority on one
/// host does.
pub fn gate_toml(authority: &Authority, epoch_file: Option<&Path>) -> String {
    let mut text = format!("[authority]\nverifying_key = \"{}\"\n", s(&authority.verifying_key()));
    if let Some(file) = epoch_file {
        text.push_str(&format!("epoch_file = \"{}\"\n", s(file)));
    }
    text.push_str("[topics]\nprotected = [\"plant/#\", \"load/#\"]\n");
    text
}

/// The epoch named by the statement in `file`, if it holds one signed by `authority` (a device's pinned key).
pub fn statement_epoch(file: &Path, authority: &smqtt_wire::VerifyingKey) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    smqtt_wire::EpochStatement::parse(text.trim()).ok()?.verify(authority).ok().map(|v| v.epoch())
}

/// [`gate_toml`] for a broker that follows the authority itself, as one on another host does: it polls the
/// authority's signed epoch statement every second (`[authority] url`) and caches the newest in `cache`.
pub fn gate_toml_polling(authority: &Authority, cache: &Path) -> String {
    gate_toml(authority, Some(cache)).replacen(
        "[topics]",
        &format!("url = \"{}\"\nepoch_poll_secs = 1\n[topics]", authority.url),
        1,
    )
}

/// Mosquitto as a process, optionally with the SMQTT plugin and persistence.
#[derive(Debug)]
pub struct Mosquitto {
    pub proc: Proc,
    pub port: u16,
    pub with_plugin: bool,
    conf: PathBuf,
    bin: PathBuf,
    logs: PathBuf,
}

impl Mosquitto {
    /// `None` (after saying so on stderr) if Mosquitto is not installed.
    pub fn start(dir: &Path, gate: Option<&str>, persistence: bool) -> Option<Mosquitto> {
        let Some(bin) = mosquitto_binary() else {
            eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto; .ci/run does)");
            return None;
        };
        let port = free_port();
        let mut conf = format!("listener {port} 127.0.0.1\nlog_dest stderr\nlog_type all\n");
        // Run as root, Mosquitto drops to the `mosquitto` user, which cannot read this test's private files.
        if is_root(dir) {
            conf.push_str("user root\n");
        }
        let with_plugin = match gate {
            Some(gate) => {
                let plugin = artifact("libsmqtt_mosquitto.so").unwrap_or_else(|| binary("libsmqtt_mosquitto.so"));
                let gate_file = dir.join("mosquitto-gate.toml");
                std::fs::write(&gate_file, gate).expect("gate config");
                // Clients without an id get one in the anonymous space (the gate refuses any id outside an
                // identity's own space).
                conf.push_str(&format!(
                    "allow_anonymous false\nauto_id_prefix anon:\nplugin {}\nplugin_opt_config {}\n",
                    s(&plugin),
                    s(&gate_file)
                ));
                true
            }
            None => {
                conf.push_str("allow_anonymous true\n");
                false
            }
        };
        if persistence {
            let db = dir.join("mosquitto-db");
            std::fs::create_dir_all(&db).expect("persistence dir");
            conf.push_str(&format!(
                "persistence true\npersistence_location {}/\nautosave_interval 3600\nmax_queued_messages 10000\n",
                s(&db)
            ));
        } else {
            conf.push_str("persistence false\n");
        }
        let conf_path = dir.join("mosquitto.conf");
        std::fs::write(&conf_path, conf).expect("mosquitto.conf");
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).expect("logs dir");
        let mut m = Mosquitto {
            proc: Proc::spawn("mosquitto", mosquitto_command(&bin, &conf_path), &logs, false),
            port,
            with_plugin,
            conf: conf_path,
            bin,
            logs,
        };
        wait_listening(SocketAddr::from(([127, 0, 0, 1], port)), "mosquitto", &mut m.proc);
        Some(m)
    }

    /// SIGTERM (Mosquitto saves its persistence database on the way out), wait, start again (same port).
    pub fn restart(&mut self) {
        let status = self.proc.terminate(Duration::from_secs(10));
        assert!(status.is_some(), "mosquitto did not exit within 10 s of SIGTERM:\n{}", self.proc.tail(30));
        self.proc = Proc::spawn("mosquitto", mosquitto_command(&self.bin, &self.conf), &self.logs, false);
        wait_listening(SocketAddr::from(([127, 0, 0, 1], self.port)), "mosquitto", &mut self.proc);
    }
}

fn mosquitto_command(bin: &Path, conf: &Path) -> Command {
    let mut command = Command::new(bin);
    command.arg("-c").arg(conf);
    command
}

fn is_root(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(dir).is_ok_and(|m| m.uid() == 0)
}

/// Client settings for a broker on loopback.
pub fn client_config(port: u16) -> ClientConfig {
    ClientConfig::new("127.0.0.1", port)
}

/// A fresh temporary directory for one test (kept on failure: its path is printed).
#[derive(Debug)]
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let dir = tempfile::Builder::new().prefix(&format!("smqtt-e2e-{name}-")).tempdir().expect("tempdir");
        TestDir { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().map(tempfile::TempDir::path).expect("directory present")
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                eprintln!("test directory kept for inspection: {}", dir.keep().display());
            }
        }
    }
}
