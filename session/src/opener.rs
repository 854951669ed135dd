//! The subscribing side, as a chain of small typed steps:
//!
//! ```text
//! bytes ─parse→ ParsedEnvelope ─admit→ (retain mark, age) ─authenticate→ Authenticated (signature or accepted
//!       unsigned, credential, rights) ─session_key→ CachedKey (cached, or decapsulated within budget)
//!       ─open→ plaintext ─replay window→ Message
//! ```
//!
//! Each step takes what the one before produced, so a later check cannot run on something an earlier one did
//! not pass: the plaintext exists only for a [`VerifiedEnvelope`], a [`Message`] only after the replay window.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use smqtt_abe::{Capsule, Error as AbeError, PublicKey, UserKey};
use smqtt_wire::{
    BatchRoots, DeviceId, ParsedEnvelope, ReplayWindow, SessionKey, TopicFilter, UnixTime, UnverifiedCredential,
    VerifiedCredential, VerifiedEnvelope, VerifyingKey,
};

use crate::error::MessageError;
use crate::limits::{OpenerLimits, SessionBudgets, Staleness};
use crate::message::{Message, QoS};

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

/// An envelope whose origin is settled (signature verified, or unsigned and accepted for its topic), with the
/// credential of its publisher, which may publish on the topic.
struct Authenticated<'a, 't> {
    envelope: VerifiedEnvelope<'a, 't>,
    publisher: Arc<KnownPublisher>,
}

/// Publishers remembered per session key (one in practice: a session belongs to its publisher).
const MAX_SIGNERS_PER_KEY: usize = 8;
/// Most session keys cached; the oldest is forgotten first.
const MAX_CACHED_KEYS: usize = 1024;
/// Most publisher credentials cached.
const MAX_CACHED_CREDENTIALS: usize = 4096;
/// Verified batch roots remembered (a few per publisher that batches: a batch is one burst).
const MAX_CACHED_ROOTS: usize = 256;

/// The subscribing side: checks, decapsulates once per session, caches the key, opens.
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
    /// Batch roots whose signature verified (§6.6): the rest of such a batch costs hashing, not Ed25519.
    roots: BatchRoots,
}

impl core::fmt::Debug for Opener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Opener").field("min_epoch", &self.min_epoch).field("cached_keys", &self.keys.len()).finish()
    }
}

/// The refusal constructors every step shares.
struct Refuse<'s> {
    topic: &'s str,
    publisher: &'s str,
}

impl Refuse<'_> {
    fn untrusted(&self, reason: impl Into<String>) -> MessageError {
        MessageError::UntrustedPublisher {
            topic: self.topic.to_owned(),
            publisher: self.publisher.to_owned(),
            reason: reason.into(),
        }
    }
    fn unknown_key(&self) -> MessageError {
        MessageError::UnknownKey { topic: self.topic.to_owned(), publisher: self.publisher.to_owned() }
    }
    fn tampered(&self) -> MessageError {
        MessageError::Tampered { topic: self.topic.to_owned(), publisher: self.publisher.to_owned() }
    }
    fn unsigned(&self) -> MessageError {
        MessageError::Unsigned { topic: self.topic.to_owned(), publisher: self.publisher.to_owned() }
    }
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
            roots: BatchRoots::new(MAX_CACHED_ROOTS),
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

    /// Whether [`Opener::open`] would take microseconds for this payload: an unsigned envelope without capsule or
    /// credential under a cached session key (an AEAD call and the replay window). Everything else may need a
    /// signature check, a credential check or a decapsulation. Parses the header only; decides nothing.
    pub fn opens_quickly(&self, payload: &[u8]) -> bool {
        ParsedEnvelope::parse(payload).is_ok_and(|e| {
            !e.is_signed() && e.capsule().is_none() && e.credential().is_none() && self.keys.contains_key(&e.key_id())
        })
    }

    /// Checks and decrypts one delivered payload at `now` (the subscriber's clock).
    ///
    /// # Errors
    /// A [`MessageError`] naming why the message was not accepted.
    pub fn open(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        now: UnixTime,
    ) -> Result<Message, MessageError> {
        let envelope = ParsedEnvelope::parse(payload)
            .map_err(|e| MessageError::Malformed { topic: topic.to_owned(), reason: e.to_string() })?;
        self.admit(topic, &envelope, retain, now)?;
        let authenticated = self.authenticate(topic, &envelope, retain, now)?;
        let (plaintext, policy) = self.decrypt(&authenticated, now)?;
        let envelope = &authenticated.envelope;
        let publisher = envelope.publisher().as_str();
        // At most once per (publisher, session, sequence), retained or not (§6.4): a retained message the
        // broker delivers again at the next subscription was shown already.
        if self.replay.check_and_record(envelope.publisher(), envelope.key_id(), envelope.sequence()).is_err() {
            return Err(MessageError::Replay { topic: topic.to_owned(), publisher: publisher.to_owned() });
        }
        // A signed, opened, fresh envelope introduces its publisher's session (the newest introducers are kept).
        if envelope.is_signed() {
            if let Some(cached) = self.keys.get_mut(&envelope.key_id()) {
                if !cached.signed_by.contains(envelope.publisher()) {
                    if cached.signed_by.len() >= MAX_SIGNERS_PER_KEY {
                        cached.signed_by.remove(0);
                    }
                    cached.signed_by.push(envelope.publisher().clone());
                }
            }
        }
        Ok(Message {
            topic: topic.to_owned(),
            payload: plaintext,
            publisher: publisher.to_owned(),
            publisher_attributes: authenticated.publisher.attributes.clone(),
            policy,
            qos,
            retain,
        })
    }

    /// The cheap refusals first (§6.4): the retain flag is nobody's word but the mark under the signature is,
    /// and nothing sealed too long ago (or in the future) is shown, whoever replays it. Refusing an envelope on
    /// a header field before its signature is checked costs its publisher nothing it could not have lost to a
    /// dropped packet.
    fn admit(
        &self,
        topic: &str,
        envelope: &ParsedEnvelope<'_>,
        retain: bool,
        now: UnixTime,
    ) -> Result<(), MessageError> {
        let publisher = envelope.publisher().as_str().to_owned();
        if retain && !envelope.is_sealed_retained() {
            return Err(MessageError::NotSealedRetained { topic: topic.to_owned(), publisher });
        }
        self.limits.check_age(envelope.timestamp_ms(), now).map_err(|staleness| {
            let reason = match staleness {
                Staleness::TooOld(secs) => format!("sealed {secs} s ago, beyond the maximum message age"),
                Staleness::FromTheFuture(secs) => format!("sealed {secs} s in the future"),
            };
            MessageError::Stale { topic: topic.to_owned(), publisher, reason }
        })
    }

    /// Settles who sent it: the publisher's credential (carried, or cached from an earlier envelope), then its
    /// signature under that credential's device key — or, unsigned, the topic's and the session's acceptance —
    /// then its right to publish on the topic.
    fn authenticate<'a, 't>(
        &mut self,
        topic: &'t str,
        envelope: &ParsedEnvelope<'a>,
        retain: bool,
        now: UnixTime,
    ) -> Result<Authenticated<'a, 't>, MessageError> {
        let publisher = envelope.publisher().as_str();
        let refuse = Refuse { topic, publisher };
        let known = self.credential(&refuse, envelope, now)?;
        let verified = if envelope.is_signed() {
            envelope
                .verify_signature_cached(topic, &known.credential.body().device_key, &mut self.roots)
                .map_err(|_| MessageError::BadSignature { topic: topic.to_owned(), publisher: publisher.to_owned() })?
        } else {
            // Honest publishers sign every retained message (it carries the capsule); a retained unsigned one
            // could only be an old envelope replayed by the broker, outside the replay window's reach.
            let accepted = !retain && self.accept_unsigned.iter().any(|f| f.matches(topic));
            let introduced = self.keys.get(&envelope.key_id()).map(|k| k.signed_by.contains(envelope.publisher()));
            match introduced {
                Some(true) if accepted => envelope.accept_unsigned(topic).map_err(|_| refuse.unsigned())?,
                None if accepted => return Err(refuse.unknown_key()),
                _ => return Err(refuse.unsigned()),
            }
        };
        if !known.credential.may_publish(topic) {
            return Err(MessageError::TopicNotPermitted { topic: topic.to_owned(), publisher: publisher.to_owned() });
        }
        // Signed by the credential's device: remember the newest credential for envelopes that omit it.
        if envelope.credential().is_some()
            && (self.credentials.len() < MAX_CACHED_CREDENTIALS || self.credentials.contains_key(publisher))
        {
            self.credentials.insert(publisher.to_owned(), Arc::clone(&known));
        }
        Ok(Authenticated { envelope: verified, publisher: known })
    }

    /// The publisher's credential for this envelope, verified (now or when the same bytes came before), of the
    /// current epoch and not expired.
    fn credential(
        &self,
        refuse: &Refuse<'_>,
        envelope: &ParsedEnvelope<'_>,
        now: UnixTime,
    ) -> Result<Arc<KnownPublisher>, MessageError> {
        let cached = self.credentials.get(refuse.publisher);
        let known = match envelope.credential() {
            // The credential this publisher's envelopes carried before, verified then: epoch and expiry are
            // checked below on every message, the authority key never changes.
            Some(bytes) if cached.is_some_and(|c| c.encoded == bytes) => {
                cached.map(Arc::clone).ok_or_else(|| refuse.untrusted("credential vanished"))?
            }
            Some(bytes) => {
                let verified = UnverifiedCredential::from_bytes(bytes)
                    .and_then(|c| c.verify(&self.authority, now.as_secs()))
                    .map_err(|e| refuse.untrusted(e.to_string()))?;
                if verified.body().device_id != *envelope.publisher() {
                    return Err(refuse.untrusted("credential names another device"));
                }
                KnownPublisher::new(verified, bytes)
            }
            None => match cached {
                Some(cached) => Arc::clone(cached),
                // A late joiner: the credential rides with the session's next capsule.
                None if !self.keys.contains_key(&envelope.key_id()) => return Err(refuse.unknown_key()),
                None => return Err(refuse.untrusted("no credential seen yet")),
            },
        };
        let body = known.credential.body();
        if body.epoch < self.min_epoch {
            return Err(refuse.untrusted(format!("credential of past epoch {}", body.epoch)));
        }
        if body.not_after <= now.as_secs() {
            return Err(refuse.untrusted("credential expired"));
        }
        Ok(known)
    }

    /// The plaintext and the session's policy: the session key from the cache, or from the envelope's capsule
    /// (policy checked before a point is decoded, decapsulated within the publisher's budget), then the AEAD.
    fn decrypt(
        &mut self,
        authenticated: &Authenticated<'_, '_>,
        now: UnixTime,
    ) -> Result<(Vec<u8>, String), MessageError> {
        let envelope = &authenticated.envelope;
        let (topic, key_id) = (envelope.topic(), envelope.key_id());
        let refuse = Refuse { topic, publisher: envelope.publisher().as_str() };
        if let Some(policy) = self.denied.get(&key_id) {
            return Err(MessageError::NotAuthorised { topic: topic.to_owned(), policy: policy.clone() });
        }
        if !self.keys.contains_key(&key_id) {
            let cached = self.decapsulate(&refuse, envelope, now)?;
            self.remember(key_id, cached);
        }
        let cached = self.keys.get(&key_id).ok_or_else(|| refuse.unknown_key())?;
        let plaintext = envelope.open(&cached.key).map_err(|_| refuse.tampered())?;
        Ok((plaintext.to_vec(), cached.policy.clone()))
    }

    /// A new session's key from the envelope's capsule.
    fn decapsulate(
        &mut self,
        refuse: &Refuse<'_>,
        envelope: &VerifiedEnvelope<'_, '_>,
        now: UnixTime,
    ) -> Result<CachedKey, MessageError> {
        let Some(capsule_bytes) = envelope.capsule() else { return Err(refuse.unknown_key()) };
        // Decided from the policy alone before a single point is decoded: a key that cannot satisfy it costs
        // nothing more, whatever the capsule's size.
        let policy = Capsule::peek_policy(capsule_bytes).map_err(|_| refuse.tampered())?;
        if !self.user_key.satisfies(&policy) {
            return Err(self.deny(refuse.topic, envelope.key_id(), policy.to_string()));
        }
        // The expensive part (point validation of every row, then pairings), within the publisher's budget of
        // new sessions; its origin was settled before, so the budget is its own.
        if !self.budgets.admit(envelope.publisher(), now) {
            return Err(MessageError::SessionFlood {
                topic: refuse.topic.to_owned(),
                publisher: refuse.publisher.to_owned(),
            });
        }
        let capsule = Capsule::from_bytes(capsule_bytes).map_err(|_| refuse.tampered())?;
        let policy = capsule.policy().to_string();
        let data_key = match self.user_key.decapsulate(&self.public_key, &capsule) {
            Ok(key) => key,
            Err(AbeError::PolicyNotSatisfied) => return Err(self.deny(refuse.topic, envelope.key_id(), policy)),
            Err(_) => return Err(refuse.tampered()),
        };
        Ok(CachedKey { key: SessionKey::new(&data_key, capsule_bytes), policy, signed_by: Vec::new() })
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
