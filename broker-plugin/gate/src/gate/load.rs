//! Building a [`Gate`] from its TOML configuration (a child of `gate.rs`: it fills the private fields).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use smqtt_wire::TopicFilter;

use super::Gate;
use crate::config::{config_error, filters, io_error, parse_verifying_key, read_small, seal_rules, FileConfig};
use crate::epoch::EpochFollower;
use crate::filters::filter_within;
use crate::legacy::{Legacy, Sealing};
use crate::link::AuthorityLink;
use crate::metrics::Metrics;
use crate::refusal::GateError;
use crate::registry::Registry;
use crate::renewed::Renewals;

impl Gate {
    /// Reads the configuration file at `path`; relative paths inside it are relative to its directory.
    ///
    /// # Errors
    /// [`GateError::Io`] for unreadable files, [`GateError::Config`] for invalid configuration,
    /// [`GateError::Identity`] for a broker device store that cannot be loaded or lacks the rights to publish on
    /// the sealed topics.
    pub fn from_toml_file(path: &Path) -> Result<Gate, GateError> {
        Gate::from_toml_file_linked(path, None)
    }

    /// As [`from_toml_file`](Self::from_toml_file), for a host that reaches the authority through `link`
    /// (`[authority] url`, renewals of the sealing identity).
    ///
    /// # Errors
    /// As [`from_toml_file`](Self::from_toml_file).
    pub fn from_toml_file_linked(path: &Path, link: Option<Arc<dyn AuthorityLink>>) -> Result<Gate, GateError> {
        let bytes = read_small(path)?;
        let text = String::from_utf8(bytes).map_err(|_| io_error(path, "not UTF-8"))?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Gate::from_toml_str_linked(&text, base, link)
    }

    /// Parses a configuration; relative paths inside it are relative to `base_dir`. The gate has no way to the
    /// authority: `[authority] url` is refused (follow it through `epoch_file`, see [`AuthorityLink`]).
    ///
    /// # Errors
    /// As [`from_toml_file`](Self::from_toml_file).
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<Gate, GateError> {
        Gate::from_toml_str_linked(text, base_dir, None)
    }

    /// As [`from_toml_str`](Self::from_toml_str), for a host that reaches the authority through `link`.
    ///
    /// # Errors
    /// As [`from_toml_file`](Self::from_toml_file).
    pub fn from_toml_str_linked(
        text: &str,
        base_dir: &Path,
        link: Option<Arc<dyn AuthorityLink>>,
    ) -> Result<Gate, GateError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| config_error(e.to_string()))?;
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base_dir.join(p) };

        let authority = match &file.authority.verifying_key {
            Some(path) => {
                let path = resolve(path);
                Some(parse_verifying_key(&read_small(&path)?, &path)?)
            }
            None if file.enforcement => {
                return Err(config_error("[authority] verifying_key is required while enforcement is on"))
            }
            None => None,
        };
        let sealing = match &file.sealing {
            Some(sealing) => Some(Arc::new(Sealing::new(resolve(&sealing.store), seal_rules(sealing)?, link.clone())?)),
            None => None,
        };
        let epoch_file = file.authority.epoch_file.as_deref().map(resolve);
        let url = match (file.authority.url.clone(), link) {
            (Some(url), Some(link)) => Some((url, link)),
            (Some(url), None) => {
                return Err(config_error(format!(
                    "[authority] url = {url:?}: this broker does not reach the authority itself; run `smqtt follow \
                     --store <the broker's store> --epoch-file <file>` beside it and set epoch_file to that file"
                )))
            }
            (None, _) => None,
        };
        let epochs = match authority {
            Some(key) if epoch_file.is_some() || file.authority.url.is_some() => {
                let follower = Arc::new(EpochFollower::new(
                    key,
                    sealing.as_ref().map(|s| s.params_id()),
                    file.authority.min_epoch,
                    epoch_file,
                    url,
                )?);
                if let Some(sealing) = &sealing {
                    // The sealing identity renews itself as soon as the gate learns of a newer epoch.
                    let weak = Arc::downgrade(sealing);
                    follower.on_advance(Box::new(move |epoch| {
                        if let Some(sealing) = weak.upgrade() {
                            sealing.follow(epoch);
                        }
                    }));
                }
                follower.spawn_poller(Duration::from_secs(file.authority.epoch_poll_secs.max(1)));
                Some(follower)
            }
            _ if epoch_file.is_some() || file.authority.url.is_some() => {
                return Err(config_error("[authority] epoch_file and url need verifying_key"))
            }
            _ => None,
        };
        let limits = &file.limits;
        if limits.max_payload == 0 || limits.max_sessions == 0 || limits.max_sessions_per_identity == 0 {
            return Err(config_error("[limits] values must be positive"));
        }
        Ok(Gate {
            enforcement: file.enforcement,
            authority,
            min_epoch: file.authority.min_epoch,
            epochs,
            skew: file.authority.clock_skew_secs,
            deny_devices: file.authority.deny_devices.iter().cloned().collect(),
            max_payload: file.limits.max_payload,
            anonymous: file.anonymous.allow,
            anonymous_subscribe: filters(&file.anonymous.subscribe, "[anonymous] subscribe")?,
            protected: filters(&file.topics.protected, "[topics] protected")?,
            unsigned: unsigned_filters(&file.topics.unsigned, &file.topics.protected)?,
            verify_signatures: file.topics.verify_signatures,
            open: filters(&file.topics.open, "[topics] open")?,
            deny_subscribe: filters(&file.topics.deny_subscribe, "[topics] deny_subscribe")?,
            legacy: Legacy::new(&file.legacy)?,
            sealing,
            sessions: Registry::new(file.limits.max_sessions, file.limits.max_sessions_per_identity),
            renewals: Renewals::new(file.limits.max_sessions),
            metrics: Metrics::default(),
        })
    }
}

/// `[topics] unsigned`: each filter must lie inside a protected one, where the gate binds envelopes to their
/// publisher's connection; elsewhere nothing would check who published an unsigned envelope.
fn unsigned_filters(unsigned: &[String], protected: &[String]) -> Result<Vec<TopicFilter>, GateError> {
    let parsed = filters(unsigned, "[topics] unsigned")?;
    for f in &parsed {
        if !protected.iter().any(|p| filter_within(f.as_str(), p)) {
            return Err(config_error(format!(
                "[topics] unsigned filter {:?} is not inside a protected filter",
                f.as_str()
            )));
        }
    }
    Ok(parsed)
}
