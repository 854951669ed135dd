//! `authority.toml`: every setting has a default, unknown keys are an error.
//!
//! ```toml
//! data_dir = "/var/lib/smqtt-authority"   # from `smqtt-authority init`; relative paths are relative to this file
//! listen = "127.0.0.1:8740"
//!
//! [unseal]                                 # exactly one of these
//! passphrase_env = "SMQTT_AUTHORITY_PASSPHRASE"
//! # passphrase_file = "/run/secrets/authority-passphrase"
//! # key_file = "/run/secrets/authority.key"
//!
//! [epochs]
//! rotation_interval_secs = 86400           # 0: only on demand
//! revocation = "immediate"                 # or "next-rotation": revoked devices are refused at once either way
//! # statement_file = "epoch.statement"     # serve keeps the signed statement of the current epoch here
//!
//! [credentials]
//! lifetime_secs = 172800                   # credentials outlive their epoch by a margin; renewal is per epoch
//!
//! [enrollment]
//! token_ttl_secs = 86400
//!
//! [limits]
//! body_bytes = 65536
//! request_timeout_secs = 10
//! clock_skew_secs = 120                    # key requests: |now - timestamp| at most this
//! rate_per_sec = 50                        # per client address, token bucket
//! rate_burst = 100
//!
//! # [tls]                                  # serve HTTPS from PEM files
//! # cert = "cert.pem"
//! # key = "key.pem"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::sealed::UnsealWith;

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where `init` put the sealed secrets and the database.
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// How to unseal the secrets.
    #[serde(default)]
    pub unseal: UnsealConfig,
    /// Epoch rotation.
    #[serde(default)]
    pub epochs: EpochConfig,
    /// Credential lifetime.
    #[serde(default)]
    pub credentials: CredentialConfig,
    /// Enrollment tokens.
    #[serde(default)]
    pub enrollment: EnrollmentConfig,
    /// Request limits.
    #[serde(default)]
    pub limits: Limits,
    /// Optional TLS.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8740))
}

/// `[unseal]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsealConfig {
    /// Environment variable holding the passphrase.
    pub passphrase_env: Option<String>,
    /// File whose first line is the passphrase.
    pub passphrase_file: Option<PathBuf>,
    /// Key file.
    pub key_file: Option<PathBuf>,
}

/// What happens to the epoch when a device is revoked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Revocation {
    /// Advance the epoch with the revocation.
    #[default]
    Immediate,
    /// Leave it to the next periodic or manual rotation.
    NextRotation,
}

/// `[epochs]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochConfig {
    /// Seconds between automatic rotations; 0 turns them off.
    #[serde(default)]
    pub rotation_interval_secs: u64,
    /// See [`Revocation`].
    #[serde(default)]
    pub revocation: Revocation,
    /// Where `serve` keeps the signed statement of the current epoch (`smqtt-epoch1.…`, one line), for brokers
    /// to follow: written atomically (mode 0644) at start and after every epoch change.
    #[serde(default)]
    pub statement_file: Option<PathBuf>,
}

impl Default for EpochConfig {
    fn default() -> Self {
        EpochConfig { rotation_interval_secs: 0, revocation: Revocation::Immediate, statement_file: None }
    }
}

/// `[credentials]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// Validity of an issued credential.
    #[serde(default = "default_credential_lifetime")]
    pub lifetime_secs: u64,
}

fn default_credential_lifetime() -> u64 {
    2 * 86_400
}

impl Default for CredentialConfig {
    fn default() -> Self {
        CredentialConfig { lifetime_secs: default_credential_lifetime() }
    }
}

/// `[enrollment]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentConfig {
    /// Default lifetime of enrollment tokens.
    #[serde(default = "default_token_ttl")]
    pub token_ttl_secs: u64,
}

fn default_token_ttl() -> u64 {
    86_400
}

impl Default for EnrollmentConfig {
    fn default() -> Self {
        EnrollmentConfig { token_ttl_secs: default_token_ttl() }
    }
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body.
    #[serde(default = "default_body_bytes")]
    pub body_bytes: usize,
    /// Per-request time limit.
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
    /// Allowed clock difference for signed key requests.
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
    /// Sustained requests per second per client address; 0 turns rate limiting off.
    #[serde(default = "default_rate")]
    pub rate_per_sec: u32,
    /// Burst size per client address.
    #[serde(default = "default_burst")]
    pub rate_burst: u32,
}

fn default_body_bytes() -> usize {
    64 * 1024
}
fn default_timeout() -> u64 {
    10
}
fn default_skew() -> u64 {
    120
}
fn default_rate() -> u32 {
    50
}
fn default_burst() -> u32 {
    100
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: default_body_bytes(),
            request_timeout_secs: default_timeout(),
            clock_skew_secs: default_skew(),
            rate_per_sec: default_rate(),
            rate_burst: default_burst(),
        }
    }
}

/// `[tls]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl Config {
    /// A configuration with every default, for `data_dir`.
    pub fn new(data_dir: PathBuf) -> Config {
        Config {
            data_dir,
            listen: default_listen(),
            unseal: UnsealConfig::default(),
            epochs: EpochConfig::default(),
            credentials: CredentialConfig::default(),
            enrollment: EnrollmentConfig::default(),
            limits: Limits::default(),
            tls: None,
        }
    }

    /// Reads `path`; relative paths inside are taken relative to its folder.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Config`] with the TOML error's message.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, &e))?;
        let mut config: Config =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {}", path.display(), e.message())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let absolute = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        absolute(&mut config.data_dir);
        let relative =
            [&mut config.unseal.passphrase_file, &mut config.unseal.key_file, &mut config.epochs.statement_file];
        for p in relative.into_iter().flatten() {
            absolute(p);
        }
        if let Some(tls) = &mut config.tls {
            absolute(&mut tls.cert);
            absolute(&mut tls.key);
        }
        if config.limits.body_bytes < 1024 || config.limits.request_timeout_secs == 0 {
            return Err(Error::Config("limits.body_bytes must be >= 1024 and request_timeout_secs > 0".into()));
        }
        Ok(config)
    }

    /// The unseal source this configuration names.
    ///
    /// # Errors
    /// [`Error::Config`] unless exactly one source is given (none: `SMQTT_AUTHORITY_PASSPHRASE`).
    pub fn unseal_with(&self) -> Result<UnsealWith> {
        let u = &self.unseal;
        match (&u.passphrase_env, &u.passphrase_file, &u.key_file) {
            (None, None, None) => UnsealWith::from_env(crate::DEFAULT_PASSPHRASE_ENV),
            (Some(name), None, None) => UnsealWith::from_env(name),
            (None, Some(path), None) => UnsealWith::from_passphrase_file(path),
            (None, None, Some(path)) => Ok(UnsealWith::KeyFile(path.clone())),
            _ => Err(Error::Config("[unseal] takes exactly one of passphrase_env, passphrase_file, key_file".into())),
        }
    }
}
