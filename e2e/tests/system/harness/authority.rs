//! The `smqtt-authority` process: `init`, an admin token, `authority.toml` on a fixed free port, `serve`
//! (again, after a `kill -9`), and the admin CLI against it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use smqtt_testkit::free_port;

use super::{binary, run_ok, s, Proc, WAIT};

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
