//! The TOML configuration and its resolution into checked settings (keys read, filters and policies parsed,
//! password hashes validated, the broker identity loaded).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use smqtt_abe::Policy;
use smqtt_wire::{TopicFilter, VerifyingKey};

use crate::filters::filter_within;
use crate::refusal::GateError;

/// The file format. Every table and key is optional except `[authority] verifying_key` (and even that may be
/// left out when `enforcement = false`); unknown keys are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    #[serde(default = "yes")]
    pub(crate) enforcement: bool,
    #[serde(default)]
    pub(crate) authority: AuthorityFile,
    #[serde(default)]
    pub(crate) limits: LimitsFile,
    #[serde(default)]
    pub(crate) anonymous: AnonymousFile,
    #[serde(default)]
    pub(crate) topics: TopicsFile,
    #[serde(default)]
    pub(crate) sealing: Option<SealingFile>,
    #[serde(default)]
    pub(crate) legacy: Vec<LegacyFile>,
}

fn default_epoch_poll() -> u64 {
    10
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthorityFile {
    pub(crate) verifying_key: Option<PathBuf>,
    #[serde(default)]
    pub(crate) min_epoch: u64,
    pub(crate) epoch_file: Option<PathBuf>,
    pub(crate) url: Option<String>,
    #[serde(default = "default_epoch_poll")]
    pub(crate) epoch_poll_secs: u64,
    #[serde(default = "default_skew")]
    pub(crate) clock_skew_secs: u64,
    #[serde(default)]
    pub(crate) deny_devices: Vec<String>,
}

impl Default for AuthorityFile {
    fn default() -> Self {
        AuthorityFile {
            verifying_key: None,
            min_epoch: 0,
            epoch_file: None,
            url: None,
            epoch_poll_secs: default_epoch_poll(),
            clock_skew_secs: default_skew(),
            deny_devices: Vec::new(),
        }
    }
}

fn default_skew() -> u64 {
    120
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsFile {
    #[serde(default = "default_max_payload")]
    pub(crate) max_payload: usize,
    #[serde(default = "default_max_sessions")]
    pub(crate) max_sessions: usize,
    #[serde(default = "default_max_per_identity")]
    pub(crate) max_sessions_per_identity: usize,
}

impl Default for LimitsFile {
    fn default() -> Self {
        LimitsFile {
            max_payload: default_max_payload(),
            max_sessions: default_max_sessions(),
            max_sessions_per_identity: default_max_per_identity(),
        }
    }
}

fn default_max_per_identity() -> usize {
    crate::registry::DEFAULT_MAX_PER_IDENTITY
}

/// The default payload bound: an envelope of a 256 KiB plaintext with capsule and credential fits easily.
pub const DEFAULT_MAX_PAYLOAD: usize = 256 * 1024 + 64 * 1024;

fn default_max_payload() -> usize {
    DEFAULT_MAX_PAYLOAD
}

fn default_max_sessions() -> usize {
    100_000
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnonymousFile {
    #[serde(default)]
    pub(crate) allow: bool,
    #[serde(default)]
    pub(crate) subscribe: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicsFile {
    #[serde(default)]
    pub(crate) protected: Vec<String>,
    #[serde(default)]
    pub(crate) open: Vec<String>,
    #[serde(default)]
    pub(crate) deny_subscribe: Vec<String>,
    /// Protected topics on which unsigned envelopes (wire.md §6.5) are accepted from their publisher's own
    /// connection.
    #[serde(default)]
    pub(crate) unsigned: Vec<String>,
    /// Verify every signed envelope's signature on protected topics (default). With `false` the gate binds
    /// envelopes to their publisher's connection only and leaves the signature to the subscribers.
    #[serde(default = "yes")]
    pub(crate) verify_signatures: bool,
}

impl Default for TopicsFile {
    fn default() -> Self {
        TopicsFile {
            protected: Vec::new(),
            open: Vec::new(),
            deny_subscribe: Vec::new(),
            unsigned: Vec::new(),
            verify_signatures: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SealingFile {
    pub(crate) store: PathBuf,
    #[serde(default)]
    pub(crate) topics: Vec<SealTopicFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SealTopicFile {
    pub(crate) filter: String,
    pub(crate) policy: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LegacyFile {
    pub(crate) username: String,
    pub(crate) password_hash: String,
    #[serde(default)]
    pub(crate) publish: Vec<String>,
}

impl core::fmt::Debug for LegacyFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LegacyFile").field("username", &self.username).finish_non_exhaustive()
    }
}

pub(crate) fn config_error(message: impl Into<String>) -> GateError {
    GateError::Config(message.into())
}

pub(crate) fn io_error(path: &Path, error: impl core::fmt::Display) -> GateError {
    GateError::Io { path: path.display().to_string(), message: error.to_string() }
}

/// Largest file the gate reads (keys, epoch file, configuration).
pub(crate) const MAX_FILE: u64 = 1024 * 1024;

pub(crate) fn read_small(path: &Path) -> Result<Vec<u8>, GateError> {
    let metadata = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    if metadata.len() > MAX_FILE {
        return Err(io_error(path, "file too large"));
    }
    std::fs::read(path).map_err(|e| io_error(path, e))
}

/// Parses an `authority.pub`: 32 raw bytes (a device store's copy), or one line of base64 (the authority's data
/// directory) or 64 hex digits.
pub(crate) fn parse_verifying_key(bytes: &[u8], path: &Path) -> Result<VerifyingKey, GateError> {
    use base64::Engine as _;
    let raw: Option<[u8; 32]> = if bytes.len() == 32 {
        bytes.try_into().ok()
    } else {
        let text = core::str::from_utf8(bytes).map_err(|_| io_error(path, "not a verifying key"))?.trim();
        let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()).collect::<Option<Vec<u8>>>()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
                .ok()
        };
        decoded.and_then(|d| <[u8; 32]>::try_from(d.as_slice()).ok())
    };
    let raw = raw.ok_or_else(|| io_error(path, "not a 32-byte verifying key (raw, base64 or hex)"))?;
    VerifyingKey::from_bytes(&raw).map_err(|e| io_error(path, e))
}

pub(crate) fn filters(list: &[String], what: &str) -> Result<Vec<TopicFilter>, GateError> {
    list.iter().map(|f| TopicFilter::new(f).map_err(|e| config_error(format!("{what}: {f:?}: {e}")))).collect()
}

/// A sealing rule: plaintext from legacy clients on `filter` is sealed under `policy`.
#[derive(Debug, Clone)]
pub(crate) struct SealRule {
    pub(crate) filter: TopicFilter,
    pub(crate) policy: Policy,
}

pub(crate) fn seal_rules(file: &SealingFile) -> Result<Vec<SealRule>, GateError> {
    file.topics
        .iter()
        .map(|t| {
            let filter =
                TopicFilter::new(&t.filter).map_err(|e| config_error(format!("sealing filter {:?}: {e}", t.filter)))?;
            let policy =
                Policy::parse(&t.policy).map_err(|e| config_error(format!("sealing policy {:?}: {e}", t.policy)))?;
            Ok(SealRule { filter, policy })
        })
        .collect()
}

/// Whether the credential's filters cover `filter` entirely.
pub(crate) fn covered(filter: &TopicFilter, rights: &[TopicFilter]) -> bool {
    rights.iter().any(|r| filter_within(filter.as_str(), r.as_str()))
}
