//! Mosquitto 2 as a process, as deployed: plain (anonymous clients allowed), with `libsmqtt_mosquitto.so`
//! loaded (anonymous clients in their own `anon:` client-id space, metrics optional), with a TLS listener beside
//! the plain one, with persistence; on a free loopback port, its log in a file, killed on drop (SIGTERM and a
//! restart on the same port when a test asks). Mosquitto's own clients, `mosquitto_pub` and `mosquitto_sub`,
//! against it.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::ports::{free_port, loopback};
use crate::process::{target_dir, Proc};
use crate::wait::{wait_until, WAIT};

/// Mosquitto's binary: Debian's `/usr/sbin/mosquitto` (or another usual place, or on `PATH`), if installed.
pub fn mosquitto_binary() -> Option<PathBuf> {
    let usual = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto"].map(PathBuf::from);
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|dir| dir.join("mosquitto")).collect::<Vec<_>>())
        .unwrap_or_default();
    usual.into_iter().chain(on_path).find(|p| p.is_file())
}

/// `true` when mosquitto and its clients are installed (on `PATH`); otherwise says loudly that the test is
/// skipped.
pub fn have_mosquitto() -> bool {
    let found = ["mosquitto", "mosquitto_pub", "mosquitto_sub"]
        .iter()
        .all(|tool| Command::new(tool).arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok());
    if !found {
        eprintln!("SKIPPED: mosquitto, mosquitto_pub or mosquitto_sub not installed (apt-get install mosquitto mosquitto-clients)");
    }
    found
}

/// The plugin: `$SMQTT_MOSQUITTO_PLUGIN`, or the `.so` cargo built beside this test (the plugin crate's own
/// tests compile the library with all its crate types, cdylib included) or in the target directory, or a fresh
/// `cargo build --release -p smqtt-mosquitto --lib`.
pub fn plugin_path() -> PathBuf {
    const SO: &str = "libsmqtt_mosquitto.so";
    if let Some(path) = std::env::var_os("SMQTT_MOSQUITTO_PLUGIN") {
        return PathBuf::from(path);
    }
    let profile = target_dir();
    for candidate in [profile.join("deps").join(SO), profile.join(SO)] {
        if candidate.exists() {
            return candidate;
        }
    }
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "-p", "smqtt-mosquitto", "--lib"])
        .status()
        .expect("cargo build");
    assert!(status.success(), "building the plugin failed");
    let built = profile.join(SO);
    assert!(built.exists(), "no {}", built.display());
    built
}

/// The `mosquitto.conf` for the plugin at `plugin` with gate configuration `gate_toml` on `port` (and the
/// plugin's metrics on `metrics`).
pub fn plugin_conf(port: u16, plugin: &Path, gate_toml: &Path, metrics: Option<SocketAddr>) -> String {
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
        let _ = writeln!(conf, "plugin_opt_metrics_listen {addr}");
    }
    conf
}

/// The plugin and its gate configuration.
#[derive(Debug, Clone)]
enum Gate {
    /// Written to `mosquitto-gate.toml` in the broker's directory.
    Text(String),
    /// An existing file.
    File(PathBuf),
}

/// The TLS listener's settings.
#[derive(Debug, Clone)]
struct Tls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    require_certificate: bool,
}

/// What to start; [`MosquittoConfig::start`].
#[derive(Debug, Clone, Default)]
pub struct MosquittoConfig {
    plugin: Option<(PathBuf, Gate)>,
    metrics: bool,
    tls: Option<Tls>,
    persistence: bool,
    verbose: bool,
    log_all: bool,
    log_subscriptions: bool,
    no_log: bool,
    extra: String,
}

impl MosquittoConfig {
    /// Plain Mosquitto: anonymous clients allowed, no persistence, the default log types to its log file.
    pub fn plain() -> MosquittoConfig {
        MosquittoConfig::default()
    }

    /// With the plugin ([`plugin_path`]) and the gate configuration `gate_toml` (the text of its file).
    pub fn with_plugin(gate_toml: &str) -> MosquittoConfig {
        MosquittoConfig { plugin: Some((plugin_path(), Gate::Text(gate_toml.to_owned()))), ..Default::default() }
    }

    /// With the plugin at `plugin` and the gate configuration in the file `gate_file`.
    pub fn with_plugin_file(plugin: &Path, gate_file: &Path) -> MosquittoConfig {
        MosquittoConfig { plugin: Some((plugin.to_owned(), Gate::File(gate_file.to_owned()))), ..Default::default() }
    }

    /// The plugin's `GET /metrics` on a free port ([`Mosquitto::metrics`]).
    pub fn metrics(mut self) -> MosquittoConfig {
        self.metrics = true;
        self
    }

    /// A TLS listener ([`Mosquitto::tls`]) beside the plain one, presenting `cert`; `require_certificate`:
    /// clients need a certificate issued by `ca`.
    pub fn tls(mut self, ca: &Path, cert: &Path, key: &Path, require_certificate: bool) -> MosquittoConfig {
        self.tls = Some(Tls { ca: ca.to_owned(), cert: cert.to_owned(), key: key.to_owned(), require_certificate });
        self
    }

    /// `persistence true` in `mosquitto-db/` of the broker's directory (saved on SIGTERM, see
    /// [`Mosquitto::restart`]), up to 10000 queued messages per client.
    pub fn persistence(mut self) -> MosquittoConfig {
        self.persistence = true;
        self
    }

    /// `mosquitto -v`: every log type, whatever the configuration says.
    pub fn verbose(mut self) -> MosquittoConfig {
        self.verbose = true;
        self
    }

    /// `log_type all`.
    pub fn log_all(mut self) -> MosquittoConfig {
        self.log_all = true;
        self
    }

    /// The default log types plus `subscribe` (a line per subscription added: [`Mosquitto::wait_subscribed`]).
    pub fn log_subscriptions(mut self) -> MosquittoConfig {
        self.log_subscriptions = true;
        self
    }

    /// `log_dest none` (a benchmark's broker).
    pub fn no_log(mut self) -> MosquittoConfig {
        self.no_log = true;
        self
    }

    /// A configuration line of the test's own (e.g. `max_queued_messages 1000000`).
    pub fn line(mut self, line: &str) -> MosquittoConfig {
        self.extra.push_str(line);
        self.extra.push('\n');
        self
    }

    /// The `mosquitto.conf` text for these ports, the gate file (with the plugin) and the database directory.
    fn text(&self, ports: &Ports, gate_file: Option<&Path>, db: &Path) -> String {
        let mut conf = String::new();
        if running_as_root() {
            // As root, Mosquitto would drop to user `mosquitto`, who cannot read the tests' private files.
            conf.push_str("user root\n");
        }
        if self.tls.is_some() {
            conf.push_str("per_listener_settings false\n");
        }
        let _ = writeln!(conf, "listener {} 127.0.0.1", ports.plain);
        if let (Some(tls), Some(port)) = (&self.tls, ports.tls) {
            let _ = write!(
                conf,
                "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
                tls.ca.display(),
                tls.cert.display(),
                tls.key.display(),
                tls.require_certificate
            );
        }
        match (&self.plugin, gate_file) {
            (Some((plugin, _)), Some(gate)) => {
                // Clients without an id get one in the anonymous space (the gate refuses any id outside an
                // identity's own space).
                let _ = write!(
                    conf,
                    "allow_anonymous false\nauto_id_prefix anon:\nplugin {}\nplugin_opt_config {}\n",
                    plugin.display(),
                    gate.display()
                );
                if let Some(metrics) = ports.metrics {
                    let _ = writeln!(conf, "plugin_opt_metrics_listen {metrics}");
                }
            }
            _ => conf.push_str("allow_anonymous true\n"),
        }
        if self.persistence {
            let _ = write!(
                conf,
                "persistence true\npersistence_location {}/\nautosave_interval 3600\nmax_queued_messages 10000\n",
                db.display()
            );
        } else {
            conf.push_str("persistence false\n");
        }
        conf.push_str(if self.no_log { "log_dest none\n" } else { "log_dest stderr\n" });
        if self.log_all {
            conf.push_str("log_type all\n");
        } else if self.log_subscriptions {
            conf.push_str(
                "log_type error\nlog_type warning\nlog_type notice\nlog_type information\nlog_type subscribe\n",
            );
        }
        conf.push_str(&self.extra);
        conf
    }

    /// Starts Mosquitto in a temporary directory of its own; panics (with its log) if it does not listen.
    pub fn start(self) -> Mosquitto {
        self.try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`start`](Self::start) with the configuration, gate file and logs in `dir` (e.g. a test directory that
    /// is kept when the test fails).
    pub fn start_in(self, dir: &Path) -> Mosquitto {
        self.launch(dir.to_owned(), None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`start`](Self::start), or why not (not installed, exited, did not listen).
    pub fn try_start(self) -> Result<Mosquitto, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory for mosquitto: {e}"))?;
        let path = dir.path().to_owned();
        self.launch(path, Some(dir))
    }

    fn launch(self, dir: PathBuf, owned: Option<tempfile::TempDir>) -> Result<Mosquitto, String> {
        let bin = mosquitto_binary().ok_or("mosquitto is not installed (apt-get install mosquitto; .ci/run does)")?;
        let ports = Ports {
            plain: free_port(),
            tls: self.tls.as_ref().map(|_| free_port()),
            metrics: (self.metrics && self.plugin.is_some()).then(|| loopback(free_port())),
        };
        let gate_file = match &self.plugin {
            Some((_, Gate::File(file))) => Some(file.clone()),
            Some((_, Gate::Text(text))) => {
                let file = dir.join("mosquitto-gate.toml");
                std::fs::write(&file, text).map_err(|e| format!("write {}: {e}", file.display()))?;
                Some(file)
            }
            None => None,
        };
        let db = dir.join("mosquitto-db");
        if self.persistence {
            std::fs::create_dir_all(&db).map_err(|e| format!("create {}: {e}", db.display()))?;
        }
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, self.text(&ports, gate_file.as_deref(), &db))
            .map_err(|e| format!("write {}: {e}", conf.display()))?;
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| format!("create {}: {e}", logs.display()))?;
        let mut broker = Mosquitto {
            proc: Proc::spawn("mosquitto", command(&bin, &conf, self.verbose), &logs, false),
            port: ports.plain,
            addr: loopback(ports.plain),
            tls: ports.tls.map(loopback),
            metrics: ports.metrics,
            bin,
            conf,
            verbose: self.verbose,
            logs,
            _dir: owned,
        };
        broker.wait_listening()?;
        Ok(broker)
    }
}

/// The ports of one broker.
#[derive(Debug)]
struct Ports {
    plain: u16,
    tls: Option<u16>,
    metrics: Option<SocketAddr>,
}

fn command(bin: &Path, conf: &Path, verbose: bool) -> Command {
    let mut command = Command::new(bin);
    if verbose {
        command.arg("-v");
    }
    command.arg("-c").arg(conf);
    command
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A running Mosquitto; killed on drop (`SMQTT_TEST_SHOW_LOG=1` prints its log then; a failing test prints the
/// tail).
#[derive(Debug)]
pub struct Mosquitto {
    /// The process.
    pub proc: Proc,
    /// The plain listener's port.
    pub port: u16,
    /// The plain listener.
    pub addr: SocketAddr,
    /// The TLS listener, if configured.
    pub tls: Option<SocketAddr>,
    /// The plugin's metrics, if configured.
    pub metrics: Option<SocketAddr>,
    bin: PathBuf,
    conf: PathBuf,
    verbose: bool,
    logs: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Mosquitto {
    /// Plain Mosquitto ([`MosquittoConfig::plain`]).
    pub fn plain() -> Mosquitto {
        MosquittoConfig::plain().start()
    }

    /// Mosquitto with the plugin, `gate_toml` and metrics ([`MosquittoConfig::with_plugin`]).
    pub fn with_plugin(gate_toml: &str) -> Mosquitto {
        MosquittoConfig::with_plugin(gate_toml).metrics().start()
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        let wanted: Vec<SocketAddr> = std::iter::once(self.addr).chain(self.tls).collect();
        loop {
            if let Some(status) = self.proc.exited() {
                return Err(format!("mosquitto exited ({status}) before listening:\n{}", self.log_text()));
            }
            if wanted.iter().all(|addr| TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.proc.kill9();
                return Err(format!("mosquitto did not listen on {wanted:?}:\n{}", self.log_text()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The plugin's metrics address; panics if the broker was started without them.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics.expect("mosquitto was started with the plugin's metrics")
    }

    /// `GET /metrics` from the plugin.
    pub fn metrics_text(&self) -> String {
        crate::metrics::scrape(self.metrics_addr())
    }

    /// Its whole log so far.
    pub fn log_text(&self) -> String {
        self.proc.log_text()
    }

    /// Whether its log contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        self.proc.log_contains(needle)
    }

    /// Waits until Mosquitto logged a subscription of `client_id` to `filter` (started with
    /// [`log_subscriptions`](MosquittoConfig::log_subscriptions) or [`log_all`](MosquittoConfig::log_all)): the
    /// subscription is in place.
    pub fn wait_subscribed(&self, client_id: &str, filter: &str) {
        let wanted = |line: &str| {
            let mut words = line.split(' ').skip(1);
            words.next() == Some(client_id) && words.nth(1) == Some(filter)
        };
        wait_until(&format!("mosquitto: {client_id} subscribed to {filter}"), WAIT, || {
            self.log_text().lines().any(wanted)
        });
    }

    /// SIGTERM (Mosquitto saves its persistence database on the way out), wait, start again on the same port.
    pub fn restart(&mut self) {
        let status = self.proc.terminate(Duration::from_secs(10));
        assert!(status.is_some(), "mosquitto did not exit within 10 s of SIGTERM:\n{}", self.proc.tail(30));
        self.proc = Proc::spawn("mosquitto", command(&self.bin, &self.conf, self.verbose), &self.logs, false);
        self.wait_listening().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs `mosquitto_pub` against the plain listener with `args` (which include -t and -m/-f).
    pub fn publish(&self, args: &[&str]) -> Output {
        run_client(Command::new("mosquitto_pub").args(["-h", "127.0.0.1", "-p", &self.port.to_string()]).args(args))
    }

    /// Starts `mosquitto_sub` against the plain listener (anonymous unless `args` say otherwise); read its
    /// output with `wait_with_output`.
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

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if std::env::var_os("SMQTT_TEST_SHOW_LOG").is_some() {
            eprintln!("---- mosquitto log ----\n{}", self.log_text());
        }
        self.proc.kill9();
    }
}

/// Runs `mosquitto_sub` (anonymous, at most 10 s) against `port` to completion; stdout and stderr together.
pub fn mosquitto_sub_once(port: &str, args: &[&str]) -> String {
    let output = run_client(Command::new("mosquitto_sub").args(["-h", "127.0.0.1", "-p", port, "-W", "10"]).args(args));
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn run_client(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("run a mosquitto client")
}
