//! The plugin's `plugin_opt_*` options (Mosquitto strips the prefix before handing them over).

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the plugin refused to load (Mosquitto then exits with an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// `plugin_opt_config` is missing.
    #[error("plugin_opt_config (the path of the gate's broker.toml) is required")]
    MissingConfig,
    /// An option this plugin does not know (a typo must not silently disable something).
    #[error("unknown option plugin_opt_{0} (known: config, metrics_listen)")]
    UnknownOption(String),
    /// An option given twice.
    #[error("plugin_opt_{0} given twice")]
    DuplicateOption(String),
    /// `plugin_opt_metrics_listen` is not `address:port`.
    #[error("plugin_opt_metrics_listen {value:?} is not an address:port")]
    BadMetricsAddress {
        /// The value given.
        value: String,
    },
    /// The gate refused its configuration.
    #[error("gate configuration {path}: {message}")]
    Gate {
        /// The file.
        path: String,
        /// The gate's error.
        message: String,
    },
    /// The metrics listener could not start.
    #[error("metrics listener on {addr}: {source}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The parsed options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `plugin_opt_config`: the gate's TOML file.
    pub config: PathBuf,
    /// `plugin_opt_metrics_listen`: where to serve Prometheus text (`GET /metrics`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

impl Options {
    /// Parses the `(key, value)` pairs Mosquitto passes to `mosquitto_plugin_init`.
    ///
    /// # Errors
    /// [`StartError::MissingConfig`], [`StartError::UnknownOption`], [`StartError::DuplicateOption`],
    /// [`StartError::BadMetricsAddress`].
    pub fn parse(pairs: &[(String, String)]) -> Result<Options, StartError> {
        let mut config = None;
        let mut metrics_listen = None;
        for (key, value) in pairs {
            match key.as_str() {
                "config" => {
                    if config.replace(PathBuf::from(value)).is_some() {
                        return Err(StartError::DuplicateOption(key.clone()));
                    }
                }
                "metrics_listen" => {
                    let addr = value
                        .trim()
                        .parse::<SocketAddr>()
                        .map_err(|_| StartError::BadMetricsAddress { value: value.clone() })?;
                    if metrics_listen.replace(addr).is_some() {
                        return Err(StartError::DuplicateOption(key.clone()));
                    }
                }
                _ => return Err(StartError::UnknownOption(key.clone())),
            }
        }
        Ok(Options { config: config.ok_or(StartError::MissingConfig)?, metrics_listen })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn options() {
        let parsed = Options::parse(&pairs(&[("config", "/etc/smqtt/broker.toml")])).expect("parse");
        assert_eq!(parsed.config, PathBuf::from("/etc/smqtt/broker.toml"));
        assert_eq!(parsed.metrics_listen, None);
        let parsed =
            Options::parse(&pairs(&[("metrics_listen", "127.0.0.1:9184"), ("config", "b.toml")])).expect("parse");
        assert_eq!(parsed.metrics_listen, Some("127.0.0.1:9184".parse().expect("addr")));
        assert!(matches!(Options::parse(&[]), Err(StartError::MissingConfig)));
        assert!(matches!(
            Options::parse(&pairs(&[("config", "a"), ("confg", "b")])),
            Err(StartError::UnknownOption(k)) if k == "confg"
        ));
        assert!(matches!(
            Options::parse(&pairs(&[("config", "a"), ("config", "b")])),
            Err(StartError::DuplicateOption(_))
        ));
        assert!(matches!(
            Options::parse(&pairs(&[("config", "a"), ("metrics_listen", "localhost")])),
            Err(StartError::BadMetricsAddress { .. })
        ));
    }
}
