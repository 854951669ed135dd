//! Session keys, no I/O: a [`Sealer`] encapsulates one data key per (policy, epoch, rotation period) and seals
//! every message under it; an [`Opener`] checks, decapsulates once per session and caches the key.
//!
//! Nonces: the AEAD nonce is the session's sequence number, which only grows. Every session key is fresh from
//! a FAME encapsulation, made when the session starts — so a restarted publisher starts new sessions with new
//! keys, and no (key, nonce) pair is ever used twice, retained messages included.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::{CryptoRng, RngCore};
use smqtt_abe::{Capsule, Error as AbeError, Policy, PublicKey, UserKey};
use smqtt_wire::{
    seal_envelope, seal_envelope_unsigned, DeviceId, EnvelopeParts, ParsedEnvelope, ReplayWindow, SessionKey,
    SigningKey, TopicFilter, UnverifiedCredential, VerifiedCredential, VerifyingKey,
};

use crate::admission::{OpenerLimits, SessionBudgets, Staleness};
use crate::error::{Error, MessageError};

/// When a publisher starts a new session and how often it repeats the capsule for late joiners.
#[derive(Clone, Debug)]
pub struct SessionPolicy {
    /// Messages under one data key before a new one.
    pub max_messages: u64,
    /// Age of a data key before a new one.
    pub max_age: Duration,
    /// The capsule (and credential) ride along every this many messages…
    pub capsule_every: u64,
    /// …or when this much time has passed since they last did. Retained messages always carry them.
    pub capsule_interval: Duration,
    /// Sign every envelope (the default). With `false`, only the envelopes that carry the capsule and
    /// credential are signed and the others are authenticated by the session key alone (`docs/wire.md` §6.5):
    /// ≈ 70 µs less work per message and 64 bytes less, but any subscriber able to decrypt could forge them
    /// where the broker does not bind publishers to their connections. Subscribers accept such envelopes only
    /// on the topics they list with [`Opener::accept_unsigned`]. Retained messages are always signed.
    pub sign_every_message: bool,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            max_messages: 1_000_000,
            max_age: Duration::from_secs(3600),
            capsule_every: 256,
            capsule_interval: Duration::from_secs(10),
            sign_every_message: true,
        }
    }
}

struct Session {
    key: SessionKey,
    capsule: Vec<u8>,
    next_sequence: u64,
    started: Instant,
    since_capsule: u64,
    capsule_sent_at: Option<Instant>,
}

/// The publishing side.
pub struct Sealer {
    device: DeviceId,
    signing_key: SigningKey,
    credential: Vec<u8>,
    public_key: Arc<PublicKey>,
    epoch: u64,
    policy: SessionPolicy,
    /// By the caller's policy (the epoch is the sealer's, and changing it clears them).
    sessions: HashMap<Policy, Session>,
    /// The same for retained publications: their own sessions, so that live traffic under the same policy
    /// never pushes a retained envelope's sequence number out of a late subscriber's replay window (§6.4).
    retained_sessions: HashMap<Policy, Session>,
}

impl core::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealer").field("device", &self.device).field("epoch", &self.epoch).finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The policy actually encrypted under: the caller's policy and the current epoch attribute.
pub fn policy_for_epoch(policy: &Policy, epoch: u64) -> Result<Policy, Error> {
    Policy::parse(&format!("({policy}) and epoch:{epoch}")).map_err(|e| Error::Policy(e.to_string()))
}

impl Sealer {
    /// A sealer for `device`, signing with `signing_key`, carrying `credential`, encrypting for `epoch`.
    pub fn new(
        device: DeviceId,
        signing_key: SigningKey,
        credential: Vec<u8>,
        public_key: Arc<PublicKey>,
        epoch: u64,
        policy: SessionPolicy,
    ) -> Sealer {
        Sealer {
            device,
            signing_key,
            credential,
            public_key,
            epoch,
            policy,
            sessions: HashMap::new(),
            retained_sessions: HashMap::new(),
        }
    }

    /// Switches to a new epoch (and credential): every later message starts a new session.
    pub fn set_epoch(&mut self, epoch: u64, credential: Vec<u8>) {
        if epoch != self.epoch {
            self.sessions.clear();
            self.retained_sessions.clear();
        }
        self.epoch = epoch;
        self.credential = credential;
    }

    /// Seals `payload` for `topic` under `policy` (plus the epoch): the MQTT payload to publish.
    ///
    /// # Errors
    /// [`Error::Policy`] for a policy that cannot be encrypted, [`Error::TooLarge`], [`Error::Crypto`].
    pub fn seal<R: RngCore + CryptoRng>(
        &mut self,
        topic: &str,
        policy: &Policy,
        payload: &[u8],
        retain: bool,
        rng: &mut R,
    ) -> Result<Vec<u8>, Error> {
        // Sessions are found by the caller's policy; the composed policy (with the epoch) is built, and
        // encapsulated under, only when a session starts — not on every message.
        let sessions = if retain { &mut self.retained_sessions } else { &mut self.sessions };
        let usable = sessions
            .get(policy)
            .is_some_and(|s| s.next_sequence < self.policy.max_messages && s.started.elapsed() < self.policy.max_age);
        if !usable {
            let full = policy_for_epoch(policy, self.epoch)?;
            let (data_key, capsule) =
                self.public_key.encapsulate(&full, rng).map_err(|e| Error::Policy(e.to_string()))?;
            let capsule = capsule.to_bytes();
            let key = SessionKey::new(&data_key, &capsule);
            let session = Session {
                key,
                capsule,
                next_sequence: 0,
                started: Instant::now(),
                since_capsule: 0,
                capsule_sent_at: None,
            };
            sessions.insert(policy.clone(), session);
        }
        let Some(session) = sessions.get_mut(policy) else { return Err(Error::Crypto("session vanished".into())) };
        let with_capsule = retain
            || session.capsule_sent_at.is_none_or(|at| at.elapsed() >= self.policy.capsule_interval)
            || session.since_capsule + 1 >= self.policy.capsule_every;
        let parts = EnvelopeParts {
            publisher: &self.device,
            sequence: session.next_sequence,
            timestamp_ms: now_ms(),
            capsule: with_capsule.then_some(session.capsule.as_slice()),
            credential: with_capsule.then_some(self.credential.as_slice()),
            retained: retain,
        };
        let sealed = if with_capsule || self.policy.sign_every_message {
            seal_envelope(topic, &parts, &session.key, payload, &self.signing_key)
        } else {
            seal_envelope_unsigned(topic, &parts, &session.key, payload)
        };
        let sealed = sealed.map_err(|e| Error::Crypto(e.to_string()))?;
        session.next_sequence += 1;
        if with_capsule {
            session.since_capsule = 0;
            session.capsule_sent_at = Some(Instant::now());
        } else {
            session.since_capsule += 1;
        }
        Ok(sealed)
    }
}

/// A message that passed every check.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic it arrived on.
    pub topic: String,
    /// The decrypted payload.
    pub payload: Vec<u8>,
    /// The publisher, as its authority credential names it.
    pub publisher: String,
    /// The publisher's attributes, from its credential.
    pub publisher_attributes: String,
    /// The policy the payload was encrypted under.
    pub policy: String,
    /// The QoS it was delivered with.
    pub qos: u8,
    /// Whether the broker delivered it as a retained message.
    pub retain: bool,
}

impl core::fmt::Debug for Message {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Message")
            .field("topic", &self.topic)
            .field("payload_len", &self.payload.len())
            .field("publisher", &self.publisher)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A publisher's verified credential, with its attributes printed once (every delivered message names them)
/// and its encoding (the same bytes riding along again are not verified again).
struct KnownPublisher {
    credential: VerifiedCredential,
    attributes: String,
    encoded: Vec<u8>,
}

impl KnownPublisher {
    fn new(credential: VerifiedCredential, encoded: &[u8]) -> Arc<KnownPublisher> {
        let attributes = credential.body().attributes.to_string();
        Arc::new(KnownPublisher { credential, attributes, encoded: encoded.to_vec() })
    }
}

struct CachedKey {
    key: SessionKey,
    policy: String,
    /// Publishers whose signed envelopes under this key were accepted: the only ones whose unsigned envelopes
    /// under it may be (wire.md §6.5). Bounded by [`MAX_SIGNERS_PER_KEY`].
    signed_by: Vec<DeviceId>,
}

/// Publishers remembered per session key (one in practice: a session belongs to its publisher).
const MAX_SIGNERS_PER_KEY: usize = 8;

/// Most session keys cached; the oldest is forgotten first.
const MAX_CACHED_KEYS: usize = 1024;
/// Most publisher credentials cached.
const MAX_CACHED_CREDENTIALS: usize = 4096;

/// The subscribing side.
pub struct Opener {
    public_key: Arc<PublicKey>,
    user_key: UserKey,
    authority: VerifyingKey,
    min_epoch: u64,
    keys: HashMap<[u8; 16], CachedKey>,
    key_order: VecDeque<[u8; 16]>,
    credentials: HashMap<String, Arc<KnownPublisher>>,
    /// Sessions whose policy this key does not satisfy (decided once from the capsule, which is public).
    denied: HashMap<[u8; 16], String>,
    replay: ReplayWindow,
    /// Topics on which unsigned envelopes are accepted (§6.5); none by default.
    accept_unsigned: Vec<TopicFilter>,
    limits: OpenerLimits,
    /// New sessions each publisher may still start now.
    budgets: SessionBudgets,
}

impl core::fmt::Debug for Opener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Opener").field("min_epoch", &self.min_epoch).field("cached_keys", &self.keys.len()).finish()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Opener {
    /// An opener with this device's attribute key, trusting credentials signed by `authority` of epoch
    /// `min_epoch` or later.
    pub fn new(public_key: Arc<PublicKey>, user_key: UserKey, authority: VerifyingKey, min_epoch: u64) -> Opener {
        Opener {
            public_key,
            user_key,
            authority,
            min_epoch,
            keys: HashMap::new(),
            key_order: VecDeque::new(),
            credentials: HashMap::new(),
            denied: HashMap::new(),
            replay: ReplayWindow::new(MAX_CACHED_KEYS),
            accept_unsigned: Vec::new(),
            budgets: SessionBudgets::new(&OpenerLimits::default()),
            limits: OpenerLimits::default(),
        }
    }

    /// Replaces the limits on message age and on new sessions per publisher ([`OpenerLimits`]; budgets start
    /// afresh).
    pub fn set_limits(&mut self, limits: OpenerLimits) {
        self.budgets = SessionBudgets::new(&limits);
        self.limits = limits;
    }

    /// The topics on which to accept unsigned envelopes (`docs/wire.md` §6.5; none by default): only from a
    /// publisher whose signed envelope introduced the same session in the current epoch, never retained, and
    /// only as group-authenticated — any other holder of the session key could have sealed them, unless the
    /// broker binds envelopes to their publisher's connection on exactly these topics (as `smqtt-gate` does on
    /// the protected topics listed in `[topics] unsigned`). List no more than the broker does.
    pub fn accept_unsigned(&mut self, filters: Vec<TopicFilter>) {
        self.accept_unsigned = filters;
    }

    /// Installs a renewed attribute key (new epoch); cached session keys stay, credentials of older epochs are
    /// refused from now on.
    pub fn set_key(&mut self, user_key: UserKey, min_epoch: u64) {
        self.user_key = user_key;
        self.min_epoch = min_epoch;
        self.denied.clear();
        // Sessions must be introduced again (by a signed envelope) before their unsigned envelopes count: a
        // device revoked at this rotation may still hold an old session key.
        for cached in self.keys.values_mut() {
            cached.signed_by.clear();
        }
        self.credentials.retain(|_, c| c.credential.body().epoch >= min_epoch);
    }

    fn credential(&mut self, topic: &str, envelope: &ParsedEnvelope<'_>) -> Result<Arc<KnownPublisher>, MessageError> {
        let publisher = envelope.publisher().as_str();
        let untrusted = |reason: String| MessageError::UntrustedPublisher {
            topic: topic.to_owned(),
            publisher: publisher.to_owned(),
            reason,
        };
        let cached = self.credentials.get(publisher);
        let verified = match envelope.credential() {
            // The credential this publisher's envelopes carried before, verified then: epoch and expiry are
            // checked below on every message, the authority key never changes.
            Some(bytes) if cached.is_some_and(|c| c.encoded == bytes) => {
                cached.map(Arc::clone).ok_or_else(|| untrusted("credential vanished".into()))?
            }
            Some(bytes) => {
                let verified = UnverifiedCredential::from_bytes(bytes)
                    .and_then(|c| c.verify(&self.authority, unix_now()))
                    .map_err(|e| untrusted(e.to_string()))?;
                if verified.body().device_id != *envelope.publisher() {
                    return Err(untrusted("credential names another device".into()));
                }
                KnownPublisher::new(verified, bytes)
            }
            None => match cached {
                Some(cached) => Arc::clone(cached),
                // A late joiner: the credential rides with the session's next capsule.
                None if !self.keys.contains_key(&envelope.key_id()) => {
                    return Err(MessageError::UnknownKey { topic: topic.to_owned(), publisher: publisher.to_owned() })
                }
                None => return Err(untrusted("no credential seen yet".into())),
            },
        };
        let body = verified.credential.body();
        if body.epoch < self.min_epoch {
            return Err(untrusted(format!("credential of past epoch {}", body.epoch)));
        }
        if body.not_after <= unix_now() {
            return Err(untrusted("credential expired".into()));
        }
        Ok(verified)
    }

    /// Whether [`Opener::open`] would take microseconds for this payload: an unsigned envelope without capsule or
    /// credential under a cached session key (an AEAD call and the replay window). Everything else may need a
    /// signature check, a credential check or a decapsulation. Parses the header only; decides nothing.
    pub fn opens_quickly(&self, payload: &[u8]) -> bool {
        ParsedEnvelope::parse(payload).is_ok_and(|e| {
            !e.is_signed() && e.capsule().is_none() && e.credential().is_none() && self.keys.contains_key(&e.key_id())
        })
    }

    /// Checks and decrypts one delivered payload.
    ///
    /// # Errors
    /// A [`MessageError`] naming why the message was not accepted.
    pub fn open(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> Result<Message, MessageError> {
        let envelope = ParsedEnvelope::parse(payload)
            .map_err(|e| MessageError::Malformed { topic: topic.to_owned(), reason: e.to_string() })?;
        let publisher = envelope.publisher().as_str().to_owned();
        // The cheap refusals first (§6.4): the retain flag is nobody's word but the mark under the signature
        // is, and nothing sealed too long ago (or in the future) is shown, whoever replays it. Refusing an
        // envelope on a header field before its signature is checked costs its publisher nothing it could
        // not have lost to a dropped packet.
        if retain && !envelope.is_sealed_retained() {
            return Err(MessageError::NotSealedRetained { topic: topic.to_owned(), publisher });
        }
        if let Err(staleness) = self.limits.check_age(envelope.timestamp_ms(), now_ms()) {
            let reason = match staleness {
                Staleness::TooOld(secs) => format!("sealed {secs} s ago, beyond the maximum message age"),
                Staleness::FromTheFuture(secs) => format!("sealed {secs} s in the future"),
            };
            return Err(MessageError::Stale { topic: topic.to_owned(), publisher, reason });
        }
        let known = self.credential(topic, &envelope)?;
        let credential = &known.credential;
        let key_id = envelope.key_id();
        if envelope.is_signed() {
            envelope
                .verify_signature(topic, &credential.body().device_key)
                .map_err(|_| MessageError::BadSignature { topic: topic.to_owned(), publisher: publisher.clone() })?;
        } else {
            // Honest publishers sign every retained message (it carries the capsule); a retained unsigned one
            // could only be an old envelope replayed by the broker, outside the replay window's reach.
            let accepted = !retain && self.accept_unsigned.iter().any(|f| f.matches(topic));
            let introduced = self.keys.get(&key_id).map(|k| k.signed_by.contains(envelope.publisher()));
            match introduced {
                Some(true) if accepted => {}
                None if accepted => return Err(MessageError::UnknownKey { topic: topic.to_owned(), publisher }),
                _ => return Err(MessageError::Unsigned { topic: topic.to_owned(), publisher }),
            }
        }
        if !credential.may_publish(topic) {
            return Err(MessageError::TopicNotPermitted { topic: topic.to_owned(), publisher });
        }
        // Signed by the credential's device: remember the newest credential for envelopes that omit it.
        if envelope.credential().is_some()
            && (self.credentials.len() < MAX_CACHED_CREDENTIALS || self.credentials.contains_key(&publisher))
        {
            self.credentials.insert(publisher.clone(), Arc::clone(&known));
        }
        if let Some(policy) = self.denied.get(&key_id) {
            return Err(MessageError::NotAuthorised { topic: topic.to_owned(), policy: policy.clone() });
        }
        if !self.keys.contains_key(&key_id) {
            let Some(capsule_bytes) = envelope.capsule() else {
                return Err(MessageError::UnknownKey { topic: topic.to_owned(), publisher });
            };
            let tampered = || MessageError::Tampered { topic: topic.to_owned(), publisher: publisher.clone() };
            // Decided from the policy alone before a single point is decoded: a key that cannot satisfy it
            // costs nothing more, whatever the capsule's size.
            let policy = Capsule::peek_policy(capsule_bytes).map_err(|_| tampered())?;
            if !self.user_key.satisfies(&policy) {
                return Err(self.deny(topic, key_id, policy.to_string()));
            }
            // The expensive part (point validation of every row, then pairings), within the publisher's
            // budget of new sessions; its signature was verified above, so the budget is its own.
            if !self.budgets.admit(envelope.publisher()) {
                return Err(MessageError::SessionFlood { topic: topic.to_owned(), publisher });
            }
            let capsule = Capsule::from_bytes(capsule_bytes).map_err(|_| tampered())?;
            let policy = capsule.policy().to_string();
            let data_key = match self.user_key.decapsulate(&self.public_key, &capsule) {
                Ok(key) => key,
                Err(AbeError::PolicyNotSatisfied) => return Err(self.deny(topic, key_id, policy)),
                Err(_) => return Err(tampered()),
            };
            let key = SessionKey::new(&data_key, capsule_bytes);
            self.remember(key_id, CachedKey { key, policy, signed_by: Vec::new() });
        }
        let Some(cached) = self.keys.get_mut(&key_id) else {
            return Err(MessageError::UnknownKey { topic: topic.to_owned(), publisher });
        };
        let plaintext = envelope
            .open(topic, &cached.key)
            .map_err(|_| MessageError::Tampered { topic: topic.to_owned(), publisher: publisher.clone() })?;
        // At most once per (publisher, session, sequence), retained or not (§6.4): a retained message the
        // broker delivers again at the next subscription was shown already.
        let policy = cached.policy.clone();
        if self.replay.check_and_record(envelope.publisher(), key_id, envelope.sequence()).is_err() {
            return Err(MessageError::Replay { topic: topic.to_owned(), publisher: publisher.clone() });
        }
        // A signed, opened, fresh envelope introduces its publisher's session (the newest introducers are kept).
        if envelope.is_signed() && !cached.signed_by.contains(envelope.publisher()) {
            if cached.signed_by.len() >= MAX_SIGNERS_PER_KEY {
                cached.signed_by.remove(0);
            }
            cached.signed_by.push(envelope.publisher().clone());
        }
        Ok(Message {
            topic: topic.to_owned(),
            payload: plaintext.to_vec(),
            publisher,
            publisher_attributes: known.attributes.clone(),
            policy,
            qos,
            retain,
        })
    }

    /// Remembers that this key cannot open session `key_id` (the policy is public) and says so.
    fn deny(&mut self, topic: &str, key_id: [u8; 16], policy: String) -> MessageError {
        if self.denied.len() >= MAX_CACHED_KEYS {
            self.denied.clear();
        }
        self.denied.insert(key_id, policy.clone());
        MessageError::NotAuthorised { topic: topic.to_owned(), policy }
    }

    fn remember(&mut self, key_id: [u8; 16], key: CachedKey) {
        if self.keys.len() >= MAX_CACHED_KEYS {
            if let Some(oldest) = self.key_order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
        self.keys.insert(key_id, key);
        self.key_order.push_back(key_id);
    }
}
