//! The [`Gate`]: configuration in, decisions out.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use smqtt_wire::{validate_topic, ConnectToken, Error as WireError, TopicFilter, VerifiedCredential, VerifyingKey};

mod load;

use crate::client_ids::{anonymous_owns, device_owns, legacy_owns, ANONYMOUS_PREFIX, LEGACY_PREFIX};
use crate::config::config_error;
use crate::envelope_check::check_envelope;
use crate::epoch::EpochFollower;
use crate::filters::{filter_within, filters_overlap, unshared};
use crate::legacy::{Legacy, Sealing};
use crate::metrics::{Check, Metrics};
use crate::refusal::{GateError, PublishDecision, Refusal, RefusalReason};
use crate::registry::Registry;
use crate::renewed::Renewals;
use crate::session::{ClientSession, Role};

/// Longest client id or username looked at (MQTT's own bound).
const MAX_ID: usize = 65_535;

/// The enforcement core. `Send + Sync`; every method takes `&self` and is cheap (one or two Ed25519
/// verifications at most), except the first login of a legacy client (Argon2) and the first sealed message of a
/// session (one FAME encapsulation).
pub struct Gate {
    enforcement: bool,
    authority: Option<VerifyingKey>,
    min_epoch: u64,
    /// The authority's signed epoch, followed forward only (absent without an authority key).
    epochs: Option<Arc<EpochFollower>>,
    skew: u64,
    deny_devices: HashSet<String>,
    max_payload: usize,
    anonymous: bool,
    anonymous_subscribe: Vec<TopicFilter>,
    protected: Vec<TopicFilter>,
    /// Protected filters where unsigned envelopes from their own publisher's connection pass.
    unsigned: Vec<TopicFilter>,
    /// Whether signed envelopes on protected topics must verify here (else subscribers alone check them).
    verify_signatures: bool,
    open: Vec<TopicFilter>,
    deny_subscribe: Vec<TopicFilter>,
    legacy: Legacy,
    sealing: Option<Arc<Sealing>>,
    sessions: Registry,
    /// Credentials connected devices renewed in place since their CONNECT.
    renewals: Renewals,
    metrics: Metrics,
}

impl core::fmt::Debug for Gate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Gate")
            .field("enforcement", &self.enforcement)
            .field("authority", &self.authority.map(|k| k.fingerprint()))
            .field("min_epoch", &self.current_epoch())
            .field("protected", &self.protected)
            .finish_non_exhaustive()
    }
}

fn refuse(reason: RefusalReason, message: impl Into<String>) -> Refusal {
    Refusal::new(reason, message)
}

fn token_refusal(error: &WireError) -> Refusal {
    let reason = match error {
        WireError::StaleToken => RefusalReason::StaleToken,
        WireError::Expired | WireError::NotYetValid => RefusalReason::Expired,
        _ => RefusalReason::BadCredential,
    };
    refuse(reason, error.to_string())
}

impl Gate {
    /// Whether legacy clients are configured: only their passwords are throttled per source address, so only
    /// then does a broker need to tell the gate each client's address.
    pub fn checks_passwords(&self) -> bool {
        !self.legacy.is_empty()
    }

    /// Whether enforcement is on for the whole gate.
    pub fn enforcing(&self) -> bool {
        self.enforcement
    }

    /// The largest payload accepted, in bytes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The oldest credential epoch accepted now: the configured `min_epoch`, or the newest signed epoch statement
    /// the gate has accepted (from `epoch_file` or the authority's `url`), if higher.
    pub fn current_epoch(&self) -> u64 {
        self.epochs.as_ref().map_or(self.min_epoch, |e| e.current())
    }

    /// Offers an epoch statement (`smqtt-epoch1.…`, e.g. pushed by an operator's tool): taken if it verifies
    /// under the authority key and is newer than the epoch in force; returns whether the epoch advanced.
    ///
    /// # Errors
    /// [`GateError::Config`] for a gate that follows no epochs, or text that is not a statement signed by the
    /// authority key.
    pub fn offer_epoch_statement(&self, text: &str) -> Result<bool, GateError> {
        let follower = self.epochs.as_ref().ok_or_else(|| config_error("no [authority] epoch_file or url"))?;
        follower.offer(text)
    }

    /// Fetches the authority's epoch statement now (blocking; the poller does this every `epoch_poll_secs`).
    ///
    /// # Errors
    /// [`GateError::Config`] for a gate without `url`, an unreachable authority or an unverifiable statement.
    pub fn poll_epoch(&self) -> Result<bool, GateError> {
        let follower = self.epochs.as_ref().ok_or_else(|| config_error("no [authority] url"))?;
        follower.poll_once()
    }

    fn refresh_epoch(&self) {
        if let Some(follower) = &self.epochs {
            follower.refresh();
        }
    }

    /// Decides a CONNECT. `password` is a CONNECT token for devices, a password for legacy clients, absent for
    /// anonymous ones. The accepted session is also remembered (bounded) for [`check_will`](Self::check_will).
    ///
    /// `client_id` is the id the broker keys the session by (after any id it assigned itself). It must lie in
    /// the client's own space (see the crate docs): a device `<device_id>` or `<device_id>/<suffix>`, a legacy
    /// client `legacy:<username>[/<suffix>]`, an anonymous client `anon:<…>`; so nobody can take over, resume
    /// or disconnect another identity's session. It is checked after the credential, so a client learns
    /// nothing from it before authenticating.
    ///
    /// The session is counted as connected until [`disconnected`](Self::disconnected) (or
    /// [`forget`](Self::forget)): while the session table is full of connected sessions, or the identity holds
    /// `[limits] max_sessions_per_identity` connected client ids, a new one is refused (`too_many_sessions`)
    /// and no connected session is ever evicted.
    ///
    /// # Errors
    /// A [`Refusal`]: `not_authenticated`, `bad_credential`, `stale_token`, `expired`, `revoked_epoch`,
    /// `device_denied`, `bad_password`, `throttled`, `client_id_not_owned`, `too_many_sessions`.
    pub fn authenticate(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<ClientSession, Refusal> {
        self.authenticate_from(client_id, username, password, None)
    }

    /// [`authenticate`](Self::authenticate) for a CONNECT from `peer`, the client's address (`None`: not
    /// known). Failed legacy passwords are throttled per source address (IPv4 address, IPv6 /64) and per
    /// (source, username) with exponential backoff (1 s doubling to 60 s; a source's first 10 failures over all
    /// usernames are free), so a guesser slows down itself, not the username: the right password from another
    /// address is always checked, and the password that verified last is accepted from anywhere without
    /// hashing. All attempts with `peer = None` share one source.
    ///
    /// # Errors
    /// As [`authenticate`](Self::authenticate).
    pub fn authenticate_from(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
        peer: Option<IpAddr>,
    ) -> Result<ClientSession, Refusal> {
        let result = self
            .authenticate_inner(client_id, username, password, peer)
            .and_then(|s| self.sessions.admit(&s).map(|()| s));
        match &result {
            Ok(_) => self.metrics.accept(Check::Connect),
            Err(refusal) => self.metrics.refuse(Check::Connect, refusal.reason),
        }
        result
    }

    fn authenticate_inner(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
        peer: Option<IpAddr>,
    ) -> Result<ClientSession, Refusal> {
        if client_id.len() > MAX_ID || username.is_some_and(|u| u.len() > MAX_ID) {
            return Err(refuse(RefusalReason::NotAuthenticated, "client id or username too long"));
        }
        let session = |role| Ok(ClientSession::new(client_id, username, role));
        let unchecked = |refusal: Refusal| if self.enforcement { Err(refusal) } else { session(Role::Unchecked) };
        self.refresh_epoch();

        // With enforcement off, client ids are not checked (and roles stay what they were).
        let foreign = |space: String| {
            Err(refuse(RefusalReason::ClientIdNotOwned, format!("client id {client_id:?} is not in {space}")))
        };
        let refused = |owns: bool| self.enforcement && !owns;

        if let Some(token) = password.filter(|p| p.starts_with(b"smqtt1.")) {
            return match self.verify_token(client_id, username, token) {
                Ok(credential) => {
                    let device = credential.body().device_id.as_str();
                    if refused(device_owns(device, client_id)) {
                        return foreign(format!("{device}'s space ({device} or {device}/…)"));
                    }
                    session(Role::Device(credential))
                }
                Err(refusal) => unchecked(refusal),
            };
        }
        if let Some(client) = username.and_then(|u| self.legacy.get(u)) {
            return match self.legacy.verify(client, password, peer) {
                Ok(()) if refused(legacy_owns(&client.username, client_id)) => {
                    let user = &client.username;
                    foreign(format!("{user:?}'s space ({LEGACY_PREFIX}{user} or {LEGACY_PREFIX}{user}/…)"))
                }
                Ok(()) => session(Role::Legacy { username: client.username.clone(), publish: client.publish.clone() }),
                Err(refusal) => unchecked(refusal),
            };
        }
        if username.is_none() && password.is_none() && self.anonymous {
            if refused(anonymous_owns(client_id)) {
                return foreign(format!("the anonymous space ({ANONYMOUS_PREFIX}…)"));
            }
            return session(Role::Anonymous);
        }
        let what =
            if username.is_none() && password.is_none() { "no credentials" } else { "unknown user or not a token" };
        unchecked(refuse(RefusalReason::NotAuthenticated, what))
    }

    fn verify_token(
        &self,
        client_id: &str,
        username: Option<&str>,
        token: &[u8],
    ) -> Result<VerifiedCredential, Refusal> {
        let Some(authority) = &self.authority else {
            return Err(refuse(RefusalReason::NotAuthenticated, "no authority key configured"));
        };
        let Some(username) = username else {
            return Err(refuse(RefusalReason::BadCredential, "a CONNECT token needs username = device id"));
        };
        let token =
            core::str::from_utf8(token).map_err(|_| refuse(RefusalReason::BadCredential, "token is not text"))?;
        let credential = ConnectToken::verify(
            token,
            client_id,
            username,
            authority,
            smqtt_wire::UnixTime::now().as_secs(),
            self.skew,
        )
        .map_err(|e| token_refusal(&e))?;
        self.credential_current(&credential)?;
        Ok(credential)
    }

    /// Epoch, denial and expiry of an already verified credential (checked at CONNECT and on every publish).
    fn credential_current(&self, credential: &VerifiedCredential) -> Result<(), Refusal> {
        let body = credential.body();
        if self.deny_devices.contains(body.device_id.as_str()) {
            return Err(refuse(RefusalReason::DeviceDenied, format!("device {} is denied", body.device_id)));
        }
        let epoch = self.current_epoch();
        if body.epoch < epoch {
            return Err(refuse(
                RefusalReason::RevokedEpoch,
                format!("credential of epoch {} (minimum {epoch})", body.epoch),
            ));
        }
        if smqtt_wire::UnixTime::now().as_secs() >= body.not_after {
            return Err(refuse(RefusalReason::Expired, "credential expired"));
        }
        Ok(())
    }

    /// The session last accepted for `client_id` (kept, bounded, after it disconnects, so its will can be
    /// checked).
    pub fn session(&self, client_id: &str) -> Option<ClientSession> {
        self.sessions.get(client_id)
    }

    /// The connection of `session` ended. Its entry stays for a will, but no longer counts against the limits
    /// and may be evicted when the table is full. A no-op if a newer connection has taken the client id over.
    /// Brokers must call this for every session [`authenticate`](Self::authenticate) returned.
    pub fn disconnected(&self, session: &ClientSession) {
        self.sessions.disconnected(session);
    }

    /// Forgets the session of `client_id` (after its will, if any, was decided).
    pub fn forget(&self, client_id: &str) {
        self.sessions.forget(client_id);
    }

    /// Sessions remembered and, of them, connected ones.
    pub fn session_counts(&self) -> (usize, usize) {
        self.sessions.counts()
    }

    /// Whether delivering a message on `topic` is denied to every subscriber (`deny_subscribe`): for brokers
    /// that check each delivery (Mosquitto's `MOSQ_ACL_READ`), as defense in depth behind
    /// [`check_subscribe`](Self::check_subscribe).
    pub fn read_denied(&self, topic: &str) -> bool {
        self.deny_subscribe.iter().any(|d| d.matches(topic))
    }

    /// Decides a SUBSCRIBE filter (`$share/<group>/` is looked through).
    ///
    /// # Errors
    /// A [`Refusal`]: `bad_topic`, `subscribe_denied`.
    pub fn check_subscribe(&self, client: &ClientSession, filter: &str) -> Result<(), Refusal> {
        let result = self.subscribe_inner(client, filter);
        match &result {
            Ok(()) => self.metrics.accept(Check::Subscribe),
            Err(refusal) => self.metrics.refuse(Check::Subscribe, refusal.reason),
        }
        result
    }

    fn subscribe_inner(&self, client: &ClientSession, filter: &str) -> Result<(), Refusal> {
        let bad = || refuse(RefusalReason::BadTopic, "not a valid topic filter");
        let inner = unshared(filter).ok_or_else(bad)?;
        TopicFilter::new(inner).map_err(|_| bad())?;
        // Refused if some topic matches both: `test/#` or `+/nosubscribe` would deliver `test/nosubscribe`.
        if self.deny_subscribe.iter().any(|d| filters_overlap(inner, d.as_str())) {
            return Err(refuse(RefusalReason::SubscribeDenied, format!("subscribing to {inner:?} is denied")));
        }
        if let (true, Role::Device(connected)) = (self.enforcement, client.role()) {
            // A revoked (or expired) device reads nothing new: its subscriptions end with its epoch.
            self.refresh_epoch();
            let renewed = self.renewals.known(connected, self.current_epoch(), smqtt_wire::UnixTime::now().as_secs());
            self.credential_current(renewed.as_ref().unwrap_or(connected))?;
        }
        if self.enforcement && matches!(client.role(), Role::Anonymous) {
            let allowed = self.anonymous_subscribe.iter().chain(&self.open).any(|a| filter_within(inner, a.as_str()));
            if !allowed {
                return Err(refuse(
                    RefusalReason::SubscribeDenied,
                    format!("anonymous clients may not subscribe to {inner:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Decides a PUBLISH by `client`: [`PublishDecision::Accept`], [`PublishDecision::Replace`] with the
    /// broker-sealed envelope (a legacy client on a sealed topic), or [`PublishDecision::Refuse`]
    /// (`bad_topic`, `oversize`, `anonymous_read_only`, `topic_not_permitted`, `expired`, `revoked_epoch`,
    /// `device_denied`, `not_an_envelope`, `foreign_signer`, `bad_signature`, `seal_failed`). `qos` is not
    /// used for the decision; it is part of the contract so adapters pass what they have.
    pub fn check_publish(
        &self,
        client: &ClientSession,
        topic: &str,
        qos: u8,
        retain: bool,
        payload: &[u8],
    ) -> PublishDecision {
        let _ = qos;
        self.decide(Check::Publish, client, topic, retain, payload)
    }

    /// Decides the will of the session last accepted for `client_id`, whose username must be `username`: the
    /// rules of [`check_publish`](Self::check_publish). A client id without a remembered session is refused
    /// (`not_authenticated`). For adapters that only know the client at the time the will fires (Mosquitto).
    pub fn check_will(
        &self,
        client_id: &str,
        username: Option<&str>,
        topic: &str,
        qos: u8,
        retain: bool,
        payload: &[u8],
    ) -> PublishDecision {
        match self.session(client_id).filter(|s| s.username() == username) {
            Some(session) => self.check_will_for(&session, topic, qos, retain, payload),
            None => {
                self.metrics.refuse(Check::Will, RefusalReason::NotAuthenticated);
                PublishDecision::Refuse(refuse(RefusalReason::NotAuthenticated, "no session for this client"))
            }
        }
    }

    /// Decides the will of `client` (for adapters that see the will in the CONNECT, like the embedded broker).
    pub fn check_will_for(
        &self,
        client: &ClientSession,
        topic: &str,
        qos: u8,
        retain: bool,
        payload: &[u8],
    ) -> PublishDecision {
        let _ = qos;
        self.decide(Check::Will, client, topic, retain, payload)
    }

    fn decide(
        &self,
        check: Check,
        client: &ClientSession,
        topic: &str,
        retain: bool,
        payload: &[u8],
    ) -> PublishDecision {
        // The epoch moves under open connections too (the file is re-read at most once a second).
        self.refresh_epoch();
        match self.decide_inner(client, topic, retain, payload) {
            Ok(Some(sealed)) => {
                self.metrics.accept(check);
                self.metrics.sealed();
                PublishDecision::Replace(sealed)
            }
            Ok(None) => {
                self.metrics.accept(check);
                PublishDecision::Accept
            }
            Err(refusal) => {
                self.metrics.refuse(check, refusal.reason);
                PublishDecision::Refuse(refusal)
            }
        }
    }

    /// `Ok(None)`: accept as is; `Ok(Some(bytes))`: forward `bytes` instead.
    fn decide_inner(
        &self,
        client: &ClientSession,
        topic: &str,
        retain: bool,
        payload: &[u8],
    ) -> Result<Option<Vec<u8>>, Refusal> {
        validate_topic(topic).map_err(|e| refuse(RefusalReason::BadTopic, e.to_string()))?;
        if payload.len() > self.max_payload {
            return Err(refuse(
                RefusalReason::Oversize,
                format!("{} bytes, limit {}", payload.len(), self.max_payload),
            ));
        }
        let seal_rule = self.sealing.as_ref().and_then(|s| s.rule(topic).map(|r| (s, r)));
        let enforced = seal_rule.is_some() || self.protected.iter().any(|f| f.matches(topic));
        if !self.enforcement || (!enforced && self.open.iter().any(|f| f.matches(topic))) {
            self.metrics.unenforced();
            return Ok(None);
        }
        // Clearing a retained message carries no data: the right to publish is enough.
        let clearing = retain && payload.is_empty();
        match client.role() {
            Role::Unchecked => Ok(None),
            Role::Anonymous => Err(refuse(RefusalReason::AnonymousReadOnly, "anonymous clients may not publish")),
            Role::Legacy { username, publish } => {
                if !publish.iter().any(|f| f.matches(topic)) {
                    return Err(refuse(
                        RefusalReason::TopicNotPermitted,
                        format!("legacy client {username:?} may not publish to {topic:?}"),
                    ));
                }
                match seal_rule {
                    _ if clearing => Ok(None),
                    Some((sealing, rule)) => sealing.seal(rule, topic, payload, retain, self.current_epoch()).map(Some),
                    None if enforced => {
                        Err(refuse(RefusalReason::NotAnEnvelope, "legacy clients cannot publish on protected topics"))
                    }
                    None => Ok(None),
                }
            }
            Role::Device(connected) => {
                let renewed = self.renewals.effective(
                    connected,
                    self.current_epoch(),
                    payload,
                    self.authority.as_ref(),
                    smqtt_wire::UnixTime::now().as_secs(),
                );
                let credential = renewed.as_ref().unwrap_or(connected);
                self.credential_current(credential)?;
                if !credential.may_publish(topic) {
                    return Err(refuse(
                        RefusalReason::TopicNotPermitted,
                        format!("{} may not publish to {topic:?}", credential.body().device_id),
                    ));
                }
                if enforced && !clearing {
                    // Honest publishers sign retained envelopes (they carry the capsule); an unsigned retained one
                    // would be redelivered to every subscriber outside the replay window's reach.
                    let unsigned_ok = !retain && self.unsigned.iter().any(|f| f.matches(topic));
                    let verify = self.verify_signatures;
                    client.with_roots(|roots| {
                        check_envelope(credential, topic, payload, retain, unsigned_ok, verify, roots)
                    })?;
                }
                Ok(None)
            }
        }
    }

    /// The counters in Prometheus text exposition format.
    pub fn metrics_text(&self) -> String {
        let statement_at = self.epochs.as_ref().map_or(0, |e| e.statement_issued_at());
        self.metrics.text(self.enforcement, self.current_epoch(), statement_at)
    }
}
