//! SMQTT enforcement inside an existing Mosquitto 2 broker: `libsmqtt_mosquitto.so`, a plugin for the
//! Mosquitto 2.0 "v5" plugin interface (Debian bookworm's mosquitto 2.0.11 and later 2.0.x).
//!
//! The broker never decrypts: the same broker-independent gate as the embedded broker (`smqtt-gate`)
//! decides, with the authority's public verifying key only.
//!
//! ```text
//! # mosquitto.conf
//! listener 1883
//! allow_anonymous false
//! # anonymous clients without a client id get anon:<uuid>, inside their client-id space
//! auto_id_prefix anon:
//! plugin /usr/local/lib/libsmqtt_mosquitto.so
//! plugin_opt_config /etc/smqtt/broker.toml
//! # optional: Prometheus text at http://127.0.0.1:9184/metrics
//! plugin_opt_metrics_listen 127.0.0.1:9184
//! ```
//!
//! `broker.toml` is the gate's configuration (authority key, protected topics, legacy clients and their
//! sealing policies, anonymous access, limits): see `smqtt-gate`. Build with
//! `cargo build --release -p smqtt-mosquitto`; the plugin is `target/release/libsmqtt_mosquitto.so`.
//!
//! # What each Mosquitto event does
//! - `MOSQ_EVT_BASIC_AUTH`: the CONNECT's client id, username (device id) and password (`smqtt1.…` token)
//!   go to `Gate::authenticate`; refused → CONNACK "not authorised". The session is kept per connection
//!   until `MOSQ_EVT_DISCONNECT`. The client id is the one Mosquitto keys the session by, so the gate's
//!   client-id spaces (a device `<device_id>[/<suffix>]`, a legacy client `legacy:<username>[/<suffix>]`, an
//!   anonymous one `anon:<…>`) stop a client taking over, resuming or kicking another identity's session:
//!   Mosquitto only looks for the existing session after BASIC_AUTH has accepted.
//! - `MOSQ_EVT_ACL_CHECK`: SUBSCRIBE → `Gate::check_subscribe`; WRITE (a client's publish, or a will
//!   when it fires) → the full `Gate::check_publish` / `Gate::check_will`; READ denied on `deny_subscribe` topics (defense in depth), else allowed, as UNSUBSCRIBE.
//! - `MOSQ_EVT_MESSAGE`: applies the WRITE verdict, replacing the payload by the broker-sealed envelope
//!   for legacy publishers. A refused publish is dropped with `MOSQ_ERR_ACL_DENIED`: the connection stays
//!   up; MQTT 5 publishers at QoS 1/2 get reason 0x87 (not authorised), v3.1.1 ones a plain acknowledgement.
//!
//! See [`plugin`] for the details.
//!
//! # Deployment notes
//! - Mosquitto drops root privileges (to user `mosquitto`, or `user` from its configuration) **before** it
//!   loads plugins: `broker.toml`, the authority key and the broker's device store (for sealing) must be
//!   readable by that user.
//! - Every callback runs on Mosquitto's single main thread. The checks are cheap (envelope structure, one
//!   Ed25519 verification, session-key sealing in microseconds), except a legacy client's first password
//!   check (Argon2, tens of milliseconds; the gate caches a verified password).
//! - Leave `check_retain_source` at its default (`false`): with it, Mosquitto re-checks stored retained
//!   messages with a stack-allocated fake client, which this plugin would treat as a will.
//! - Bridges are not supported: Mosquitto skips ACL checks for bridge connections, and the plugin refuses
//!   their messages in MOSQ_EVT_MESSAGE (no session).
//! - With `per_listener_settings true` each listener's `plugin` line is its own instance with its own
//!   state (the crate has no global state); this is not tested here.
//! - Client ids: set `auto_id_prefix anon:` (Mosquitto names a client that sent an empty id
//!   `<auto_id_prefix><uuid>` before the plugin sees it; the default `auto-` is refused). Leave
//!   `use_username_as_clientid` off (legacy clients' ids would become their bare usernames, refused), and do not
//!   use `use_identity_as_username` / `use_subject_as_username`: with them Mosquitto skips BASIC_AUTH, so the
//!   gate never sees those CONNECTs (nor their client ids).
//!
//! # What the 2.0 plugin API does not allow
//! - **Wills at CONNECT.** `mosquitto_broker.h` 2.0.x has no accessor for a client's will (only
//!   `mosquitto_client_{address,clean_session,id,keepalive,certificate,protocol,protocol_version,
//!   sub_count,username}`), and `struct mosquitto` is private. A will is checked when it fires (an ACL
//!   WRITE check in `context__send_will`): a bad will is dropped then, silently, instead of refusing the
//!   CONNECT. A legacy client's plaintext will is sealed and published by the broker itself
//!   (`mosquitto_broker_publish_copy`), the original refused.
//! - **Wills of clients still connected at broker shutdown.** At shutdown Mosquitto fires the wills of
//!   live connections without a MOSQ_EVT_DISCONNECT first (`src/mosquitto.c`, after the main loop), so
//!   that WRITE check looks like an ordinary publish. A will the gate refuses is still dropped, but a legacy
//!   client's will that the gate would seal cannot be rewritten there (no MESSAGE event follows): it is
//!   queued as the client sent it. The main loop has ended by then, so it is delivered to no one, but with
//!   `persistence true` it can be saved for offline persistent sessions. (A takeover by a new connection
//!   with the same client id, the other will-before-disconnect path, is recognised and handled.)
//! - **Reason codes.** MESSAGE and ACL refusals both give MQTT 5 publishers `0x87` (not authorised);
//!   Mosquitto 2.0 ignores `reason_code`, so `0x99` (payload format invalid) is not possible. A refused
//!   BASIC_AUTH is always CONNACK 5 / `0x87`: a client id outside its space (`client_id_not_owned`, 0x85 on the
//!   embedded broker) shows only in the log and the metrics.
//!
//! # Safety
//! All `unsafe` code is in one private module (`ffi`: the ABI mirror, the three exported entry points,
//! the callback trampolines); the rest of the crate denies `unsafe_code`. No panic crosses into the
//! broker: every callback runs under `catch_unwind` and a panic becomes a refusal.

pub mod config;
mod ffi;
pub mod plugin;

use std::sync::Arc;

pub use config::{Options, StartError};
pub use plugin::{Enforcer, Level, Logger, Plugin, Verdict};

use smqtt_gate as gate;

impl Enforcer for gate::Gate {
    type Session = gate::ClientSession;

    fn authenticate(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
        peer: Option<std::net::IpAddr>,
    ) -> Result<gate::ClientSession, String> {
        gate::Gate::authenticate_from(self, client_id, username, password, peer).map_err(|r| refusal_text(&r))
    }

    fn disconnected(&self, session: &gate::ClientSession) {
        gate::Gate::disconnected(self, session);
    }

    fn read_denied(&self, topic: &str) -> bool {
        gate::Gate::read_denied(self, topic)
    }

    fn check_subscribe(&self, session: &gate::ClientSession, filter: &str) -> Result<(), String> {
        gate::Gate::check_subscribe(self, session, filter).map_err(|r| refusal_text(&r))
    }

    fn check_publish(
        &self,
        session: &gate::ClientSession,
        topic: &str,
        qos: u8,
        retain: bool,
        payload: &[u8],
    ) -> Verdict {
        verdict(gate::Gate::check_publish(self, session, topic, qos, retain, payload))
    }

    fn check_will(
        &self,
        client_id: &str,
        username: Option<&str>,
        topic: &str,
        qos: u8,
        retain: bool,
        payload: &[u8],
    ) -> Verdict {
        verdict(gate::Gate::check_will(self, client_id, username, topic, qos, retain, payload))
    }

    fn check_will_for(
        &self,
        session: &gate::ClientSession,
        topic: &str,
        qos: u8,
        retain: bool,
        payload: &[u8],
    ) -> Verdict {
        verdict(gate::Gate::check_will_for(self, session, topic, qos, retain, payload))
    }

    fn metrics_text(&self) -> String {
        gate::Gate::metrics_text(self)
    }
}

fn refusal_text(refusal: &gate::Refusal) -> String {
    format!("{}: {}", refusal.reason.as_str(), refusal.message)
}

fn verdict(decision: gate::PublishDecision) -> Verdict {
    match decision {
        gate::PublishDecision::Accept => Verdict::Accept,
        gate::PublishDecision::Replace(bytes) => Verdict::Replace(bytes),
        gate::PublishDecision::Refuse(refusal) => Verdict::Refuse(refusal_text(&refusal)),
    }
}

/// The loaded plugin: the state the callbacks share, and the optional metrics responder.
#[cfg_attr(test, allow(dead_code))] // its users, the entry points, are compiled out of unit tests
pub(crate) struct Active {
    plugin: Arc<Plugin<gate::Gate>>,
    metrics: Option<smqtt_metrics::MetricsServer>,
}

impl core::ops::Deref for Active {
    type Target = Plugin<gate::Gate>;

    fn deref(&self) -> &Plugin<gate::Gate> {
        &self.plugin
    }
}

#[cfg_attr(test, allow(dead_code))]
impl Active {
    /// Parses the options, loads the gate's configuration, starts the metrics responder if asked to.
    pub(crate) fn start(pairs: &[(String, String)], logger: Logger) -> Result<Active, StartError> {
        let options = Options::parse(pairs)?;
        let gate = gate::Gate::from_toml_file(&options.config)
            .map_err(|e| StartError::Gate { path: options.config.display().to_string(), message: e.to_string() })?;
        let plugin = Arc::new(Plugin::new(Arc::new(gate), logger));
        let metrics = match options.metrics_listen {
            None => None,
            Some(addr) => {
                let shared = plugin.clone();
                let render = move || format!("{}{}", shared.enforcer().metrics_text(), shared.counters_text());
                let server = smqtt_metrics::MetricsServer::start(addr, render)
                    .map_err(|source| StartError::Metrics { addr, source })?;
                plugin.log(Level::Info, &format!("metrics on http://{}/metrics", server.addr()));
                Some(server)
            }
        };
        plugin.log(Level::Info, &format!("loaded, gate configuration {}", options.config.display()));
        Ok(Active { plugin, metrics })
    }

    /// Stops the metrics responder and logs the counters (always, so they survive without a scraper).
    pub(crate) fn stop(self) {
        if let Some(server) = self.metrics {
            server.stop();
        }
        let c = self.plugin.counters();
        let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
        self.plugin.log(
            Level::Info,
            &format!(
                "unloading: connects accepted {} refused {}; subscribes refused {}; publishes accepted {} sealed {} \
                 refused {}; wills checked {} refused {}; panics caught {}",
                load(&c.connects_accepted),
                load(&c.connects_refused),
                load(&c.subscribes_refused),
                load(&c.publishes_accepted),
                load(&c.publishes_sealed),
                load(&c.publishes_refused),
                load(&c.wills_checked),
                load(&c.wills_refused),
                load(&c.panics),
            ),
        );
    }
}
