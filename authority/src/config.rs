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
//! rate_tracked_clients = 10000             # rate-limit table bound; past it new clients share one bucket
//! header_timeout_secs = 5                  # a complete request head within this, also between requests
//! idle_timeout_secs = 15                   # no byte either way and no request running: closed
//! tls_handshake_timeout_secs = 5
//! max_connections = 1024                   # open connections in all; past it, accepting pauses
//! max_connections_per_ip = 64              # per IPv4 address / IPv6 /64; past it, closed at once
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
    /// Most clients (IPv4 addresses, IPv6 /64s) the rate limiter tracks; while that many have buckets that
    /// are not full, new clients share one overflow bucket (nobody's bucket is ever reset early).
    #[serde(default = "default_tracked_clients")]
    pub rate_tracked_clients: usize,
    /// Seconds a connection has to send a complete request head: from accept (after the TLS handshake)
    /// and again from the end of each response, so this is also how long an idle keep-alive connection stays.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Seconds a connection may move no byte in either direction while no request is being handled (e.g. a
    /// client that stops reading its response) before it is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Seconds a TLS handshake may take.
    #[serde(default = "default_handshake_timeout")]
    pub tls_handshake_timeout_secs: u64,
    /// Most connections open at once; at the limit the listener stops accepting (new connections wait in
    /// the kernel's backlog) until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most connections open at once from one IPv4 address or IPv6 /64; further ones are closed on accept.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
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
fn default_tracked_clients() -> usize {
    10_000
}
fn default_header_timeout() -> u64 {
    5
}
fn default_idle_timeout() -> u64 {
    15
}
fn default_handshake_timeout() -> u64 {
    5
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_connections_per_ip() -> usize {
    64
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: default_body_bytes(),
            request_timeout_secs: default_timeout(),
            clock_skew_secs: default_skew(),
            rate_per_sec: default_rate(),
            rate_burst: default_burst(),
            rate_tracked_clients: default_tracked_clients(),
            header_timeout_secs: default_header_timeout(),
            idle_timeout_secs: default_idle_timeout(),
            tls_handshake_timeout_secs: default_handshake_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_ip: default_max_connections_per_ip(),
        }
    }
}

impl Limits {
    fn check(&self) -> Result<()> {
        const MAX_TIMEOUT_SECS: u64 = 86_400;
        const MAX_COUNT: usize = 1_000_000;
        if self.body_bytes < 1024 || self.request_timeout_secs == 0 {
            return Err(Error::config("limits.body_bytes must be >= 1024 and request_timeout_secs > 0"));
        }
        let timeouts = [self.header_timeout_secs, self.idle_timeout_secs, self.tls_handshake_timeout_secs];
        let counts = [self.rate_tracked_clients, self.max_connections, self.max_connections_per_ip];
        if timeouts.contains(&0) || counts.contains(&0) {
            return Err(Error::config(
                "limits: header_timeout_secs, idle_timeout_secs, tls_handshake_timeout_secs, rate_tracked_clients, \
                 max_connections and max_connections_per_ip must be > 0",
            ));
        }
        // Upper bounds: a timeout meant as "never" would overflow the clock arithmetic, a count beyond these
        // would not be a bound.
        if timeouts.iter().chain([&self.request_timeout_secs]).any(|&t| t > MAX_TIMEOUT_SECS)
            || counts.iter().any(|&c| c > MAX_COUNT)
        {
            return Err(Error::config(format!(
                "limits: timeouts must be at most {MAX_TIMEOUT_SECS} s and rate_tracked_clients, max_connections \
                 and max_connections_per_ip at most {MAX_COUNT}"
            )));
        }
        Ok(())
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
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        // The message is the parser's one line; the error itself (with the spot it points at) is the source.
        let mut config: Config =
            toml::from_str(&text).map_err(|e| Error::config_from(format!("{}: {}", path.display(), e.message()), e))?;
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
        config.limits.check()?;
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
            _ => Err(Error::config("[unseal] takes exactly one of passphrase_env, passphrase_file, key_file")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_configuration_that_does_not_load_keeps_the_parsers_and_the_file_systems_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("authority.toml");
        std::fs::write(&path, "data_dir = \"d\"\nlisten = 7\n").expect("write");
        let error = Config::load(&path).expect_err("not a configuration");
        let parsed = error.source().and_then(|s| s.downcast_ref::<toml::de::Error>()).expect("the TOML error");
        // The message is the parser's one line, as it always was.
        assert_eq!(error.to_string(), format!("{}: {}", path.display(), parsed.message()));
        assert!(matches!(error, Error::Config { .. }));

        let missing = Config::load(&dir.path().join("missing.toml")).expect_err("no such file");
        let kind = missing.source().and_then(|s| s.downcast_ref::<std::io::Error>()).map(std::io::Error::kind);
        assert_eq!(kind, Some(std::io::ErrorKind::NotFound), "{missing}");
    }
}
