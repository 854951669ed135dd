//! Command-line syntax and dispatch. Admin subcommands talk to a running authority over HTTP; `init`,
//! `admin-token create` and `audit verify --data` work on the data directory directly.

mod admin;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use smqtt_authority::{Authority, Config, UnsealWith};

/// A failed command: its message and exit code.
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) code: u8,
}

impl Failure {
    pub(crate) fn input(message: impl std::fmt::Display) -> Failure {
        Failure { message: message.to_string(), code: 2 }
    }

    pub(crate) fn refused(message: impl std::fmt::Display) -> Failure {
        Failure { message: message.to_string(), code: 1 }
    }
}

impl From<smqtt_authority::Error> for Failure {
    fn from(error: smqtt_authority::Error) -> Failure {
        Failure::input(error)
    }
}

/// The SMQTT key authority.
#[derive(Debug, Parser)]
#[command(name = "smqtt-authority", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the FAME master key pair and the signing key, sealed, and the database, in a new data directory.
    Init {
        /// The data directory (created 0700 if missing; existing authority files are never overwritten).
        #[arg(long)]
        data: PathBuf,
        #[command(flatten)]
        unseal: UnsealArgs,
    },
    /// Unseal and serve the HTTP API.
    Serve {
        /// The configuration file (see the crate docs for every key).
        #[arg(long)]
        config: PathBuf,
    },
    /// Admin tokens (created offline: needs the data directory and the unseal secret).
    #[command(subcommand, name = "admin-token")]
    AdminToken(AdminTokenCommand),
    /// Devices, over HTTP.
    #[command(subcommand)]
    Device(admin::DeviceCommand),
    /// Epochs, over HTTP.
    #[command(subcommand)]
    Epoch(admin::EpochCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(admin::AuditCommand),
}

#[derive(Debug, Subcommand)]
enum AdminTokenCommand {
    /// Create an admin token and print it (only its hash is stored).
    Create {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// A label for the audit log.
        #[arg(long, default_value = "admin")]
        label: String,
        #[command(flatten)]
        unseal: UnsealArgs,
    },
}

/// Where the unseal secret comes from; never the command line itself.
#[derive(Debug, Args)]
pub(crate) struct UnsealArgs {
    /// Read the passphrase from the first line of this file.
    #[arg(long, conflicts_with_all = ["passphrase_env", "key_file"])]
    passphrase_file: Option<PathBuf>,
    /// Read the passphrase from this environment variable [default: SMQTT_AUTHORITY_PASSPHRASE].
    #[arg(long, conflicts_with = "key_file")]
    passphrase_env: Option<String>,
    /// Seal under a key file of 32+ random bytes instead (created 0600 by `init` if missing).
    #[arg(long)]
    key_file: Option<PathBuf>,
}

impl UnsealArgs {
    fn resolve(&self, create_key_file: bool) -> Result<UnsealWith, Failure> {
        if let Some(path) = &self.key_file {
            if create_key_file && !path.exists() {
                let mut key = zeroize::Zeroizing::new([0u8; 32]);
                rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, key.as_mut())
                    .map_err(|_| Failure::input("the random number generator failed"))?;
                write_private(path, key.as_ref())?;
            }
            return Ok(UnsealWith::KeyFile(path.clone()));
        }
        if let Some(path) = &self.passphrase_file {
            return Ok(UnsealWith::from_passphrase_file(path)?);
        }
        let name = self.passphrase_env.as_deref().unwrap_or(smqtt_authority::DEFAULT_PASSPHRASE_ENV);
        Ok(UnsealWith::from_env(name)?)
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| Failure::input(format!("{}: {e}", path.display())))
}

pub(crate) fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Init { data, unseal } => {
            let with = unseal.resolve(true)?;
            let vk = smqtt_authority::init(&data, &with, &mut rand_core::OsRng, smqtt_wire::UnixTime::now().as_secs())?;
            println!("initialised {} (authority key {})", data.display(), vk.fingerprint());
            println!("next: smqtt-authority admin-token create --data {} …", data.display());
            Ok(())
        }
        Command::Serve { config } => serve(&config),
        Command::AdminToken(AdminTokenCommand::Create { data, label, unseal }) => {
            let authority = Authority::open_with(Config::new(data), &unseal.resolve(false)?)?;
            let token =
                authority.create_admin_token(&label, &mut rand_core::OsRng, smqtt_wire::UnixTime::now().as_secs())?;
            println!("{token}");
            Ok(())
        }
        Command::Device(command) => admin::device(command),
        Command::Epoch(command) => admin::epoch(command),
        Command::Audit(command) => admin::audit(command),
    }
}

fn serve(config_path: &std::path::Path) -> Result<(), Failure> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .try_init();
    let config = Config::load(config_path)?;
    let listen = config.listen;
    // Opening checks the whole database against its MACs; the statement file is written before anything is
    // announced, so that a broker following it never sees a listening authority without one.
    let authority = Arc::new(Authority::open(config)?);
    authority.write_statement_file()?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::input(format!("cannot start runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Failure::input(format!("cannot listen on {listen}: {e}")))?;
        let local = listener.local_addr().map_err(|e| Failure::input(e.to_string()))?;
        let tls = authority.config().tls.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(address = %local, scheme, "smqtt-authority listening");
        let state = smqtt_authority::AppState::new(authority);
        match tls {
            None => {
                // The line tests and scripts wait for.
                println!("listening on {scheme}://{local}");
                smqtt_authority::serve(state, listener, shutdown_signal()).await.map_err(Failure::from)
            }
            Some(tls) => {
                let listener = listener.into_std().map_err(|e| Failure::input(e.to_string()))?;
                // Check the PEM files before announcing the address.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let check = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key).await;
                if let Err(e) = check {
                    return Err(Failure::input(format!("TLS certificate or key unusable: {e}")));
                }
                println!("listening on {scheme}://{local}");
                smqtt_authority::serve_tls(state, listener, &tls, shutdown_signal()).await.map_err(Failure::from)
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}
