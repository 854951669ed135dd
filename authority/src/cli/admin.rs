//! Admin subcommands over HTTP: `device`, `epoch`, `audit`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;
use smqtt_authority_api::{Client, ClientError, Device, NewDevice};

use super::Failure;

/// How to reach the authority and authenticate.
#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// The authority's base URL.
    #[arg(long, env = "SMQTT_AUTHORITY_URL", default_value = "http://127.0.0.1:8740")]
    url: String,
    /// File holding the admin token [or the environment variable SMQTT_ADMIN_TOKEN].
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Print the API's JSON answer instead of text.
    #[arg(long)]
    json: bool,
}

impl Connection {
    fn client(&self) -> Result<Client, Failure> {
        let token = match &self.admin_token_file {
            Some(path) => zeroize::Zeroizing::new(
                std::fs::read_to_string(path).map_err(|e| Failure::input(format!("{}: {e}", path.display())))?,
            ),
            None => zeroize::Zeroizing::new(
                std::env::var("SMQTT_ADMIN_TOKEN")
                    .map_err(|_| Failure::input("no admin token: use --admin-token-file or set SMQTT_ADMIN_TOKEN"))?,
            ),
        };
        Ok(Client::new(&self.url).with_admin_token(token.trim()))
    }

    fn print<T: Serialize>(&self, value: &T, text: impl FnOnce(&T) -> String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
        } else {
            println!("{}", text(value));
        }
    }
}

fn failure(error: ClientError) -> Failure {
    match error {
        ClientError::Http { .. } => Failure::refused(error),
        _ => Failure::input(error),
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeviceCommand {
    /// Register a device; prints its one-time enrollment token.
    Add {
        /// The device id (1–64 of `A-Za-z0-9._-`).
        id: String,
        /// Its attributes, e.g. `role:operator, site:berlin, level = 5`.
        #[arg(long)]
        attrs: String,
        /// A topic filter it may publish on (repeat, or separate with commas).
        #[arg(long, value_delimiter = ',')]
        publish: Vec<String>,
        /// Enrollment token lifetime in seconds.
        #[arg(long)]
        token_ttl: Option<u64>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List devices.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one device.
    Show {
        /// The device id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Revoke a device (and advance the epoch unless the authority defers it).
    Revoke {
        /// The device id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
}

fn device_line(d: &Device) -> String {
    format!("{}  {}  [{}]  publish: {}", d.device_id, d.status, d.attributes, d.publish.join(","))
}

pub(crate) fn device(command: DeviceCommand) -> Result<(), Failure> {
    match command {
        DeviceCommand::Add { id, attrs, publish, token_ttl, conn } => {
            let request = NewDevice { device_id: id, attributes: attrs, publish, token_ttl_secs: token_ttl };
            let created = conn.client()?.add_device(&request).map_err(failure)?;
            // The authority key the token pins, for the operator to compare with `init`'s out of band.
            let pinned = smqtt_wire::enrollment_token_authority(&created.enrollment_token)
                .map(|k| k.fingerprint())
                .unwrap_or_else(|_| "none (the token pins no authority key)".into());
            conn.print(&created, |c| {
                format!(
                    "registered {}\nauthority key {pinned} (pinned in the token)\nenrollment token (shown once, expires at {}):\n{}",
                    c.device.device_id, c.token_expires_at, c.enrollment_token
                )
            });
        }
        DeviceCommand::List { conn } => {
            let list = conn.client()?.list_devices().map_err(failure)?;
            conn.print(&list, |l| l.devices.iter().map(device_line).collect::<Vec<_>>().join("\n"));
        }
        DeviceCommand::Show { id, conn } => {
            let device = conn.client()?.show_device(&id).map_err(failure)?;
            conn.print(&device, device_line);
        }
        DeviceCommand::Revoke { id, conn } => {
            let revoked = conn.client()?.revoke_device(&id).map_err(failure)?;
            conn.print(&revoked, |r| {
                let epoch = if r.epoch_advanced { "epoch advanced to" } else { "epoch stays" };
                format!("revoked {}; {epoch} {}", r.device.device_id, r.epoch.epoch)
            });
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub(crate) enum EpochCommand {
    /// Show the current epoch.
    Show {
        #[command(flatten)]
        conn: Connection,
    },
    /// Advance the epoch now.
    Rotate {
        /// Why, for the audit log.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Print the current epoch's signed statement (`smqtt-epoch1.…`), or write it atomically to a file, once it
    /// verifies against the authority key.
    Statement {
        /// Write it to this file (temporary file, fsync, rename; mode 0644) instead of printing it.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// Verify against `authority.pub` in this data directory [default: the key the API serves].
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
}

pub(crate) fn epoch(command: EpochCommand) -> Result<(), Failure> {
    let (info, conn) = match command {
        EpochCommand::Show { conn } => (Client::new(&conn.url).epoch().map_err(failure)?, conn),
        EpochCommand::Rotate { reason, conn } => (conn.client()?.rotate_epoch(reason).map_err(failure)?, conn),
        EpochCommand::Statement { output, data, conn } => return statement(output, data, &conn),
    };
    conn.print(&info, |e| format!("epoch {} ({}) since {}", e.epoch, e.attribute, e.started_at));
    Ok(())
}

fn statement(output: Option<PathBuf>, data: Option<PathBuf>, conn: &Connection) -> Result<(), Failure> {
    let client = Client::new(&conn.url);
    let key = match &data {
        Some(dir) => smqtt_authority::read_verifying_key(dir)?,
        None => client.params().map_err(failure)?.verifying_key,
    };
    let info = client.epoch().map_err(failure)?;
    let verified = smqtt_wire::EpochStatement::parse(&info.statement).and_then(|s| s.verify(&key)).map_err(|e| {
        Failure::refused(format!(
            "the epoch statement does not verify against authority key {}: {e}",
            key.fingerprint()
        ))
    })?;
    if verified.epoch() != info.epoch {
        return Err(Failure::refused(format!(
            "the statement is of epoch {}, the API says {}",
            verified.epoch(),
            info.epoch
        )));
    }
    let text = verified.to_text();
    match output {
        None => println!("{text}"),
        Some(path) => {
            smqtt_authority::write_statement(&path, &text)?;
            println!(
                "wrote the statement of epoch {} (authority key {}) to {}",
                verified.epoch(),
                key.fingerprint(),
                path.display()
            );
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Show the newest entries.
    Show {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        conn: Connection,
    },
    /// Check the hash chain and signatures: over HTTP, or offline with `--data` (reads the database and the
    /// verifying key `authority.pub` in that directory; needs no secret — and so cannot check the rows' MACs,
    /// which `serve` checks whenever it opens the database).
    Verify {
        /// Verify this data directory offline instead of asking the authority.
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
}

pub(crate) fn audit(command: AuditCommand) -> Result<(), Failure> {
    match command {
        AuditCommand::Show { limit, conn } => {
            let log = conn.client()?.audit(limit).map_err(failure)?;
            conn.print(&log, |l| {
                l.entries
                    .iter()
                    .map(|e| format!("{:>6} {} {} {} {} {}", e.seq, e.at, e.actor, e.action, e.subject, e.detail))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        AuditCommand::Verify { data: Some(dir), .. } => {
            let verification = smqtt_authority::store::verify_offline(&dir)?;
            match verification.problem {
                None => {
                    println!(
                        "audit chain ok: {} entries (offline: the rows' MACs need the secrets; `serve` checks them)",
                        verification.entries
                    );
                    Ok(())
                }
                Some(problem) => Err(Failure::refused(format!(
                    "audit chain broken after {} good entries: {problem}",
                    verification.entries
                ))),
            }
        }
        AuditCommand::Verify { data: None, conn } => {
            let verification = conn.client()?.audit_verify().map_err(failure)?;
            if verification.ok {
                conn.print(&verification, |v| format!("audit chain ok: {} entries", v.entries));
                Ok(())
            } else {
                Err(Failure::refused(format!(
                    "audit chain broken after {} good entries: {}",
                    verification.entries,
                    verification.problem.unwrap_or_default()
                )))
            }
        }
    }
}
