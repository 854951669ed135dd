//! Prometheus metrics for SMQTT, std only (the Mosquitto plugin links this crate into its `.so`).
//!
//! * **[`Exposition`]**: the text exposition format 0.0.4. Counters and gauges without labels in one call
//!   ([`Exposition::counter`], [`Exposition::gauge`]); labelled families with [`Exposition::family`] and
//!   [`Family::sample`]; summaries as `_sum` / `_count` rows with [`Family::summary`]. `# HELP` and `# TYPE`
//!   are written once per family and a family's samples stay together, however the calls interleave; help texts
//!   and label values are escaped as the format asks.
//! * **[`MetricsServer`]**: the one `/metrics` responder of the brokers: a thread of its own, one request at a
//!   time, bounded request size and a deadline per connection, `GET /metrics` and `GET /healthz`, 404
//!   otherwise; stopped by [`MetricsServer::stop`] (or on drop).
//!
//! ```
//! use smqtt_metrics::{Exposition, Kind};
//!
//! let mut text = Exposition::new();
//! text.counter("smqtt_example_total", "Things counted.", 3u64);
//! text.family("smqtt_example_refused_total", "Refusals by reason.", Kind::Counter)
//!     .sample(&[("reason", "bad_credential")], 1u64)
//!     .sample(&[("reason", "throttled")], 0u64);
//! assert_eq!(
//!     text.finish(),
//!     concat!(
//!         "# HELP smqtt_example_total Things counted.\n",
//!         "# TYPE smqtt_example_total counter\n",
//!         "smqtt_example_total 3\n",
//!         "# HELP smqtt_example_refused_total Refusals by reason.\n",
//!         "# TYPE smqtt_example_refused_total counter\n",
//!         "smqtt_example_refused_total{reason=\"bad_credential\"} 1\n",
//!         "smqtt_example_refused_total{reason=\"throttled\"} 0\n",
//!     )
//! );
//! ```

mod server;
mod text;

pub use server::{MetricsServer, IO_DEADLINE, MAX_REQUEST};
pub use text::{Exposition, Family, Kind, Value, CONTENT_TYPE};
