//! The plugin's logic, in safe Rust: which event asks the gate what, the per-connection sessions, and how a
//! verdict turns into what Mosquitto 2.0.11 can do.
//!
//! - **BASIC_AUTH** authenticates the CONNECT and stores the session under the `struct mosquitto *` address.
//!   The client id is `mosquitto_client_id`: the id Mosquitto keys sessions by (and takes over with, in
//!   `connect__on_authorised`, only after this check), already replaced by `<auto_id_prefix><uuid>` for an
//!   empty one or by the username with `use_username_as_clientid`; so the gate's client-id spaces apply to the
//!   session actually resumed, not to what the packet said.
//! - **ACL_CHECK** `SUBSCRIBE` asks `check_subscribe`; `READ` and `UNSUBSCRIBE` are allowed (delivery is
//!   already decided at publish time, and the plugin's answer is final once it is registered); `WRITE` runs
//!   the full publish check (rights, envelope, size, or broker-side sealing) **once** per message and
//!   remembers the verdict for the MESSAGE event that follows.
//! - **MESSAGE** (right after the WRITE check in `handle__publish`, for the same message store) applies it:
//!   keep, or replace the payload by the sealed envelope. MESSAGE is the only event that can rewrite a
//!   payload.
//! - **Wills** never reach MESSAGE: they pass only a WRITE check when they fire (`context__send_will`). A
//!   WRITE check for a client without a live session (after MOSQ_EVT_DISCONNECT, a delayed will) or for a
//!   connection being taken over by a new one with the same client id (its will fires before its
//!   disconnect event) is therefore a will, and goes to `check_will`; a will that must be sealed is
//!   published sealed by the broker itself (`mosquitto_broker_publish_copy`) and the plaintext refused.
//! - **DISCONNECT** drops the session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use smqtt_metrics::Exposition;

/// Upper bound on stored sessions (one per connected client): beyond it, CONNECTs are refused.
pub const MAX_SESSIONS: usize = 1 << 20;
/// Refusals logged per second at most (a flooding client must not flood the log); the rest are counted.
const LOG_BURST_PER_SEC: u32 = 20;

/// Log severity (mapped to `MOSQ_LOG_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// `MOSQ_LOG_DEBUG`.
    Debug,
    /// `MOSQ_LOG_INFO`.
    Info,
    /// `MOSQ_LOG_NOTICE`.
    Notice,
    /// `MOSQ_LOG_WARNING`.
    Warning,
    /// `MOSQ_LOG_ERR`.
    Error,
}

/// Where log lines go (the broker's log in the plugin, anything in tests).
pub type Logger = fn(Level, &str);

/// A gate's answer to a publish or a will.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Store and deliver as is.
    Accept,
    /// Store and deliver these bytes instead (broker-side sealing).
    Replace(Vec<u8>),
    /// Drop; the text says why (for the log).
    Refuse(String),
}

/// What the plugin needs from a gate; implemented by [`smqtt_gate::Gate`], and by fakes in unit tests.
pub trait Enforcer: Send + Sync + 'static {
    /// What an authenticated connection carries.
    type Session: Clone + Send;
    /// CONNECT: `Err` carries the reason for the log.
    ///
    /// # Errors
    /// The refusal, as text.
    fn authenticate(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Self::Session, String>;
    /// The connection of `session` ended (its session may still decide a will).
    fn disconnected(&self, session: &Self::Session) {
        let _ = session;
    }
    /// Whether delivering a message on `topic` to a subscriber is denied (checked per delivery).
    fn read_denied(&self, topic: &str) -> bool {
        let _ = topic;
        false
    }
    /// SUBSCRIBE.
    ///
    /// # Errors
    /// The refusal, as text.
    fn check_subscribe(&self, session: &Self::Session, filter: &str) -> Result<(), String>;
    /// PUBLISH from an authenticated connection.
    fn check_publish(&self, session: &Self::Session, topic: &str, qos: u8, retain: bool, payload: &[u8]) -> Verdict;
    /// A will, about to be published on behalf of `client_id`, whose session is no longer at hand.
    fn check_will(
        &self,
        client_id: &str,
        username: Option<&str>,
        topic: &str,
        qos: u8,
        retain: bool,
        payload: &[u8],
    ) -> Verdict;
    /// A will of the connection with `session` (one being taken over), about to be published.
    fn check_will_for(&self, session: &Self::Session, topic: &str, qos: u8, retain: bool, payload: &[u8]) -> Verdict;
    /// Prometheus text of the gate's counters.
    fn metrics_text(&self) -> String;
}

/// The client an event is about, as the broker reports it.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The `struct mosquitto *` address: unique among live connections.
    pub key: usize,
    /// `mosquitto_client_id`.
    pub id: Option<&'a str>,
    /// `mosquitto_client_username`.
    pub username: Option<&'a str>,
    /// `mosquitto_client_address`, parsed (the gate throttles password guesses per source address).
    pub address: Option<std::net::IpAddr>,
}

/// The `access` of an ACL check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclAccess {
    /// Delivery to a subscriber.
    Read,
    /// A client's publish (or its will).
    Write,
    /// SUBSCRIBE.
    Subscribe,
    /// UNSUBSCRIBE.
    Unsubscribe,
}

/// The answer to an ACL check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclAction {
    /// `MOSQ_ERR_SUCCESS`.
    Allow,
    /// `MOSQ_ERR_ACL_DENIED`.
    Deny,
    /// A will to seal: publish these bytes from the broker, deny the original.
    DenyAndPublish(Vec<u8>),
}

/// The answer to a MESSAGE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageAction {
    /// Unchanged.
    Keep,
    /// Payload replaced by these bytes.
    Replace(Vec<u8>),
    /// `MOSQ_ERR_ACL_DENIED`: dropped, the connection kept (v5 QoS 1/2 publishers see 0x87).
    Deny,
}

struct Entry<S> {
    client_id: String,
    session: S,
    /// A newer connection with the same client id has authenticated: this one is being taken over.
    superseded: bool,
}

/// The verdict of the last WRITE check, for the MESSAGE event of the same message.
struct Admitted {
    client: usize,
    payload_addr: usize,
    payload_len: usize,
    topic: String,
    replacement: Option<Vec<u8>>,
}

struct State<S> {
    sessions: HashMap<usize, Entry<S>>,
    by_id: HashMap<String, usize>,
    admitted: Option<Admitted>,
    log_window: (Instant, u32),
    log_suppressed: u64,
}

/// Counters kept by the plugin itself (the gate keeps its own per-reason counters).
#[derive(Debug, Default)]
pub struct Counters {
    /// CONNECTs accepted.
    pub connects_accepted: AtomicU64,
    /// CONNECTs refused.
    pub connects_refused: AtomicU64,
    /// SUBSCRIBE filters refused.
    pub subscribes_refused: AtomicU64,
    /// Publishes accepted unchanged.
    pub publishes_accepted: AtomicU64,
    /// Publishes sealed by the broker.
    pub publishes_sealed: AtomicU64,
    /// Publishes refused.
    pub publishes_refused: AtomicU64,
    /// Wills accepted, sealed or refused (all three counted here).
    pub wills_checked: AtomicU64,
    /// Wills refused.
    pub wills_refused: AtomicU64,
    /// Panics caught at the FFI boundary.
    pub panics: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The plugin state: a gate, the live sessions and the counters.
pub struct Plugin<E: Enforcer> {
    enforcer: std::sync::Arc<E>,
    state: Mutex<State<E::Session>>,
    counters: Counters,
    logger: Logger,
}

impl<E: Enforcer> core::fmt::Debug for Plugin<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Plugin").field("counters", &self.counters).finish_non_exhaustive()
    }
}

impl<E: Enforcer> Plugin<E> {
    /// A plugin deciding with `enforcer`, logging to `logger`.
    pub fn new(enforcer: std::sync::Arc<E>, logger: Logger) -> Plugin<E> {
        Plugin {
            enforcer,
            state: Mutex::new(State {
                sessions: HashMap::new(),
                by_id: HashMap::new(),
                admitted: None,
                log_window: (Instant::now(), 0),
                log_suppressed: 0,
            }),
            counters: Counters::default(),
            logger,
        }
    }

    /// The gate.
    pub fn enforcer(&self) -> &std::sync::Arc<E> {
        &self.enforcer
    }

    /// The plugin's own counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Live sessions.
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Writes a log line.
    pub fn log(&self, level: Level, message: &str) {
        (self.logger)(level, message);
    }

    /// Counts a panic caught at the boundary.
    pub fn note_panic(&self) {
        bump(&self.counters.panics);
        self.log(Level::Error, "internal error (panic caught; the event was refused)");
    }

    fn lock(&self) -> MutexGuard<'_, State<E::Session>> {
        // A panic while holding the lock leaves consistent data (maps are updated in single calls).
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Logs a refusal, at most [`LOG_BURST_PER_SEC`] per second.
    fn refused(&self, state: &mut State<E::Session>, message: impl FnOnce() -> String) {
        let now = Instant::now();
        if now.duration_since(state.log_window.0).as_secs() >= 1 {
            if state.log_suppressed > 0 {
                let n = state.log_suppressed;
                self.log(Level::Notice, &format!("{n} further refusals not logged"));
            }
            state.log_window = (now, 0);
            state.log_suppressed = 0;
        }
        if state.log_window.1 < LOG_BURST_PER_SEC {
            state.log_window.1 += 1;
            self.log(Level::Notice, &message());
        } else {
            state.log_suppressed += 1;
        }
    }

    /// MOSQ_EVT_BASIC_AUTH: `true` accepts the CONNECT.
    pub fn basic_auth(&self, client: &Client<'_>, password: Option<&[u8]>) -> bool {
        let mut state = self.lock();
        let Some(id) = client.id else {
            bump(&self.counters.connects_refused);
            self.refused(&mut state, || "CONNECT refused: no client id".into());
            return false;
        };
        if state.sessions.len() >= MAX_SESSIONS && !state.sessions.contains_key(&client.key) {
            bump(&self.counters.connects_refused);
            self.refused(&mut state, || format!("CONNECT from {id:?} refused: {MAX_SESSIONS} sessions"));
            return false;
        }
        match self.enforcer.authenticate(id, client.username, password, client.address) {
            Ok(session) => {
                bump(&self.counters.connects_accepted);
                if let Some(old) = state.by_id.insert(id.to_owned(), client.key) {
                    if old != client.key {
                        if let Some(entry) = state.sessions.get_mut(&old) {
                            entry.superseded = true;
                        }
                    }
                }
                state.sessions.insert(client.key, Entry { client_id: id.to_owned(), session, superseded: false });
                true
            }
            Err(reason) => {
                bump(&self.counters.connects_refused);
                // Mosquitto's default `auto_id_prefix` ("auto-") is outside the anonymous client-id space.
                let hint = if id.starts_with("auto-") && client.username.is_none() {
                    " (an id Mosquitto assigned: set `auto_id_prefix anon:` for anonymous clients without one)"
                } else {
                    ""
                };
                self.refused(&mut state, || format!("CONNECT from {id:?} refused: {reason}{hint}"));
                false
            }
        }
    }

    /// MOSQ_EVT_ACL_CHECK. `payload_addr` identifies the message for the MESSAGE event that follows.
    #[allow(clippy::too_many_arguments)]
    pub fn acl_check(
        &self,
        client: &Client<'_>,
        access: AclAccess,
        topic: &str,
        payload_addr: usize,
        payload: &[u8],
        qos: u8,
        retain: bool,
    ) -> AclAction {
        let mut state = self.lock();
        match access {
            // Defense in depth behind the SUBSCRIBE check: a denied topic is never delivered.
            AclAccess::Read if self.enforcer.read_denied(topic) => AclAction::Deny,
            AclAccess::Read | AclAccess::Unsubscribe => AclAction::Allow,
            AclAccess::Subscribe => {
                let verdict = match state.sessions.get(&client.key) {
                    Some(entry) if !entry.superseded => self.enforcer.check_subscribe(&entry.session, topic),
                    _ => Err("no session".into()),
                };
                match verdict {
                    Ok(()) => AclAction::Allow,
                    Err(reason) => {
                        bump(&self.counters.subscribes_refused);
                        let who = client.id.unwrap_or("?");
                        self.refused(&mut state, || format!("SUBSCRIBE {topic:?} from {who:?} refused: {reason}"));
                        AclAction::Deny
                    }
                }
            }
            AclAccess::Write => {
                state.admitted = None;
                let Some(entry) = state.sessions.get(&client.key) else {
                    return self.will(&mut state, client, None, topic, payload, qos, retain);
                };
                if entry.superseded {
                    let session = entry.session.clone();
                    return self.will(&mut state, client, Some(&session), topic, payload, qos, retain);
                }
                let verdict = self.enforcer.check_publish(&entry.session, topic, qos, retain, payload);
                let replacement = match verdict {
                    Verdict::Accept => None,
                    Verdict::Replace(bytes) => Some(bytes),
                    Verdict::Refuse(reason) => {
                        bump(&self.counters.publishes_refused);
                        let who = entry.client_id.clone();
                        self.refused(&mut state, || format!("PUBLISH {topic:?} from {who:?} refused: {reason}"));
                        return AclAction::Deny;
                    }
                };
                state.admitted = Some(Admitted {
                    client: client.key,
                    payload_addr,
                    payload_len: payload.len(),
                    topic: topic.to_owned(),
                    replacement,
                });
                AclAction::Allow
            }
        }
    }

    /// A WRITE check that can only be a will: with the session of a connection being taken over, or for a
    /// client already disconnected (the gate then finds the session it remembers for the client id).
    #[allow(clippy::too_many_arguments)]
    fn will(
        &self,
        state: &mut State<E::Session>,
        client: &Client<'_>,
        session: Option<&E::Session>,
        topic: &str,
        payload: &[u8],
        qos: u8,
        retain: bool,
    ) -> AclAction {
        bump(&self.counters.wills_checked);
        let Some(id) = client.id else {
            bump(&self.counters.wills_refused);
            self.refused(state, || format!("will on {topic:?} refused: no client id"));
            return AclAction::Deny;
        };
        let verdict = match session {
            Some(session) => self.enforcer.check_will_for(session, topic, qos, retain, payload),
            None => self.enforcer.check_will(id, client.username, topic, qos, retain, payload),
        };
        match verdict {
            Verdict::Accept => AclAction::Allow,
            Verdict::Replace(sealed) => AclAction::DenyAndPublish(sealed),
            Verdict::Refuse(reason) => {
                bump(&self.counters.wills_refused);
                self.refused(state, || format!("will of {id:?} on {topic:?} refused: {reason}"));
                AclAction::Deny
            }
        }
    }

    /// MOSQ_EVT_MESSAGE: applies the verdict of the WRITE check of the same message.
    pub fn message(
        &self,
        client: &Client<'_>,
        topic: &str,
        payload_addr: usize,
        payload: &[u8],
        qos: u8,
        retain: bool,
    ) -> MessageAction {
        let mut state = self.lock();
        let admitted = state.admitted.take();
        if let Some(admitted) = admitted {
            if admitted.client == client.key
                && admitted.payload_addr == payload_addr
                && admitted.payload_len == payload.len()
                && admitted.topic == topic
            {
                return match admitted.replacement {
                    None => {
                        bump(&self.counters.publishes_accepted);
                        MessageAction::Keep
                    }
                    Some(bytes) => {
                        bump(&self.counters.publishes_sealed);
                        MessageAction::Replace(bytes)
                    }
                };
            }
        }
        // Not seen by our WRITE check (Mosquitto skips ACL checks for bridges, or another plugin changed the
        // message in between): decide now, never twice for the same message.
        let verdict = match state.sessions.get(&client.key) {
            Some(entry) if !entry.superseded => {
                self.enforcer.check_publish(&entry.session, topic, qos, retain, payload)
            }
            _ => Verdict::Refuse("no session".into()),
        };
        match verdict {
            Verdict::Accept => {
                bump(&self.counters.publishes_accepted);
                MessageAction::Keep
            }
            Verdict::Replace(bytes) => {
                bump(&self.counters.publishes_sealed);
                MessageAction::Replace(bytes)
            }
            Verdict::Refuse(reason) => {
                bump(&self.counters.publishes_refused);
                let who = client.id.unwrap_or("?").to_owned();
                self.refused(&mut state, || format!("PUBLISH {topic:?} from {who:?} refused: {reason}"));
                MessageAction::Deny
            }
        }
    }

    /// MOSQ_EVT_DISCONNECT: forgets the connection's session.
    pub fn disconnect(&self, key: usize) {
        let mut state = self.lock();
        if let Some(entry) = state.sessions.remove(&key) {
            if state.by_id.get(&entry.client_id) == Some(&key) {
                state.by_id.remove(&entry.client_id);
            }
            self.enforcer.disconnected(&entry.session);
        }
        if state.admitted.as_ref().is_some_and(|a| a.client == key) {
            state.admitted = None;
        }
    }

    /// The plugin's counters in Prometheus text format.
    pub fn counters_text(&self) -> String {
        let c = &self.counters;
        let rows: [(&str, &str, &AtomicU64); 9] = [
            ("smqtt_mosquitto_connects_accepted_total", "CONNECTs accepted", &c.connects_accepted),
            ("smqtt_mosquitto_connects_refused_total", "CONNECTs refused", &c.connects_refused),
            ("smqtt_mosquitto_subscribes_refused_total", "SUBSCRIBE filters refused", &c.subscribes_refused),
            ("smqtt_mosquitto_publishes_accepted_total", "publishes stored unchanged", &c.publishes_accepted),
            ("smqtt_mosquitto_publishes_sealed_total", "publishes sealed by the broker", &c.publishes_sealed),
            ("smqtt_mosquitto_publishes_refused_total", "publishes refused", &c.publishes_refused),
            ("smqtt_mosquitto_wills_checked_total", "wills checked when they fired", &c.wills_checked),
            ("smqtt_mosquitto_wills_refused_total", "wills refused", &c.wills_refused),
            ("smqtt_mosquitto_panics_total", "panics caught at the FFI boundary", &c.panics),
        ];
        let mut out = Exposition::new();
        for (name, help, value) in rows {
            out.counter(name, help, value.load(Ordering::Relaxed));
        }
        out.gauge("smqtt_mosquitto_sessions", "live sessions", self.session_count());
        out.finish()
    }
}

#[cfg(test)]
#[path = "plugin_tests.rs"]
mod tests;
