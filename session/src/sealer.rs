//! The publishing side: one data key per (policy, epoch, rotation period), every message sealed under it.
//!
//! Nonces: the AEAD nonce is the session's sequence number, which only grows. Every session key is fresh from
//! a FAME encapsulation, made when the session starts — so a restarted publisher starts new sessions with new
//! keys, and no (key, nonce) pair is ever used twice, retained messages included.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand_core::{CryptoRng, RngCore};
use smqtt_abe::{Policy, PublicKey};
use smqtt_wire::{
    seal_envelope, seal_envelope_batch, seal_envelope_unsigned, BatchItem, DeviceId, EnvelopeParts, SessionKey,
    SigningKey, UnixTime, MAX_PAYLOAD,
};

use crate::error::{Error, SealFailure};

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
    /// on the topics they list with [`Opener::accept_unsigned`](crate::Opener::accept_unsigned). Retained
    /// messages are always signed.
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
    started: UnixTime,
    since_capsule: u64,
    capsule_sent_at: Option<UnixTime>,
}

/// The publishing side: seals payloads into envelopes under session keys it encapsulates as needed.
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

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The policy actually encrypted under: the caller's policy and the current epoch attribute.
///
/// # Errors
/// [`Error::Policy`] if the composed policy is not a valid one.
pub fn policy_for_epoch(policy: &Policy, epoch: u64) -> Result<Policy, Error> {
    Policy::parse(&format!("({policy}) and epoch:{epoch}")).map_err(Error::Policy)
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

    /// The epoch it seals for.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether messages can be sealed under `policy` (with the epoch added): at once for a policy with a
    /// session already, else by composing it as a new session would.
    ///
    /// # Errors
    /// [`Error::Policy`].
    pub fn check_policy(&self, policy: &Policy) -> Result<(), Error> {
        if self.sessions.contains_key(policy) || self.retained_sessions.contains_key(policy) {
            return Ok(());
        }
        policy_for_epoch(policy, self.epoch).map(drop)
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

    /// Seals `payload` for `topic` under `policy` (plus the epoch) at `now`: the MQTT payload to publish.
    /// `now` stamps the envelope and decides when sessions rotate and capsules ride along.
    ///
    /// # Errors
    /// [`Error::Policy`] for a policy that cannot be encrypted under; [`Error::Seal`] for a payload over the
    /// envelope's bound or a failing RNG.
    pub fn seal<R: RngCore + CryptoRng>(
        &mut self,
        topic: &str,
        policy: &Policy,
        payload: &[u8],
        retain: bool,
        now: UnixTime,
        rng: &mut R,
    ) -> Result<Vec<u8>, Error> {
        // What could refuse the envelope is checked before the session advances: a refused message never uses
        // up a sequence number or a capsule's turn.
        check(topic, payload)?;
        let next = self.next(policy, retain, now, rng)?;
        let parts = self.parts(&next, now);
        let sealed = if next.signed {
            seal_envelope(topic, &parts, &next.key, payload, &self.signing_key)
        } else {
            seal_envelope_unsigned(topic, &parts, &next.key, payload)
        };
        sealed.map_err(|e| Error::Seal(SealFailure::Envelope(e)))
    }

    /// Seals `messages` in their order, signing those that are signed with **one** batch signature
    /// (`docs/wire.md` §6.6): every envelope still verifies on its own, and a subscriber that checked one of the
    /// batch checks the others by hashing. One message is sealed exactly as [`seal`](Self::seal) seals it; at
    /// most [`MAX_BATCH`](smqtt_wire::MAX_BATCH) messages at a time. Sequence numbers are taken in order, also
    /// for messages sealed before a failure (they are never reused).
    ///
    /// # Errors
    /// As [`seal`](Self::seal), for the first message that cannot be sealed (then none is returned).
    pub fn seal_batch<R: RngCore + CryptoRng>(
        &mut self,
        messages: &[Outgoing<'_>],
        now: UnixTime,
        rng: &mut R,
    ) -> Result<Vec<Vec<u8>>, Error> {
        if messages.len() > smqtt_wire::MAX_BATCH {
            let limit = smqtt_wire::MAX_BATCH;
            let error = smqtt_wire::Error::LimitExceeded { what: "envelopes in a batch", limit };
            return Err(Error::Seal(SealFailure::Envelope(error)));
        }
        for message in messages {
            check(message.topic, message.payload)?;
        }
        let mut prepared = Vec::with_capacity(messages.len());
        for message in messages {
            prepared.push(self.next(message.policy, message.retain, now, rng)?);
        }
        let fail = |e| Error::Seal(SealFailure::Envelope(e));
        let mut sealed: Vec<Option<Vec<u8>>> = vec![None; messages.len()];
        let mut batch = Vec::new();
        let mut batched = Vec::new();
        for (at, (message, next)) in messages.iter().zip(&prepared).enumerate() {
            let parts = self.parts(next, now);
            if next.signed {
                batch.push(BatchItem { topic: message.topic, parts, key: &next.key, plaintext: message.payload });
                batched.push(at);
            } else {
                sealed[at] =
                    Some(seal_envelope_unsigned(message.topic, &parts, &next.key, message.payload).map_err(fail)?);
            }
        }
        for (at, envelope) in batched.into_iter().zip(seal_envelope_batch(&batch, &self.signing_key).map_err(fail)?) {
            sealed[at] = Some(envelope);
        }
        Ok(sealed.into_iter().flatten().collect())
    }

    /// The next envelope's session, sequence number and extras under `policy` (a new session when due), with the
    /// session's bookkeeping advanced.
    fn next<R: RngCore + CryptoRng>(
        &mut self,
        policy: &Policy,
        retain: bool,
        now: UnixTime,
        rng: &mut R,
    ) -> Result<Next, Error> {
        // Sessions are found by the caller's policy; the composed policy (with the epoch) is built, and
        // encapsulated under, only when a session starts — not on every message.
        let sessions = if retain { &mut self.retained_sessions } else { &mut self.sessions };
        let (max_messages, max_age) = (self.policy.max_messages, millis(self.policy.max_age));
        let usable = sessions
            .get(policy)
            .is_some_and(|s| s.next_sequence < max_messages && now.millis_since(s.started) < max_age);
        let session = match sessions.get_mut(policy) {
            Some(session) if usable => session,
            _ => {
                let full = policy_for_epoch(policy, self.epoch)?;
                let (data_key, capsule) = self.public_key.encapsulate(&full, rng).map_err(Error::Policy)?;
                let capsule = capsule.to_bytes();
                let key = SessionKey::new(&data_key, &capsule);
                let session =
                    Session { key, capsule, next_sequence: 0, started: now, since_capsule: 0, capsule_sent_at: None };
                sessions.entry(policy.clone()).insert_entry(session).into_mut()
            }
        };
        let interval = millis(self.policy.capsule_interval);
        let with_capsule = retain
            || session.capsule_sent_at.is_none_or(|at| now.millis_since(at) >= interval)
            || session.since_capsule + 1 >= self.policy.capsule_every;
        let next = Next {
            key: session.key.clone(),
            capsule: with_capsule.then(|| session.capsule.clone()),
            sequence: session.next_sequence,
            retain,
            signed: with_capsule || self.policy.sign_every_message,
        };
        session.next_sequence += 1;
        if with_capsule {
            session.since_capsule = 0;
            session.capsule_sent_at = Some(now);
        } else {
            session.since_capsule += 1;
        }
        Ok(next)
    }

    fn parts<'a>(&'a self, next: &'a Next, now: UnixTime) -> EnvelopeParts<'a> {
        EnvelopeParts {
            publisher: &self.device,
            sequence: next.sequence,
            timestamp_ms: now.as_millis(),
            capsule: next.capsule.as_deref(),
            credential: next.capsule.is_some().then_some(self.credential.as_slice()),
            retained: next.retain,
        }
    }
}

/// Refuses what [`seal_envelope`] would refuse of a message: its topic, its size.
fn check(topic: &str, payload: &[u8]) -> Result<(), Error> {
    let fail = |e| Error::Seal(SealFailure::Envelope(e));
    smqtt_wire::validate_topic(topic).map_err(fail)?;
    if payload.len() > MAX_PAYLOAD {
        return Err(fail(smqtt_wire::Error::LimitExceeded { what: "envelope payload bytes", limit: MAX_PAYLOAD }));
    }
    Ok(())
}

/// One message for [`Sealer::seal_batch`].
#[derive(Clone, Copy, Debug)]
pub struct Outgoing<'a> {
    /// The topic it is published on.
    pub topic: &'a str,
    /// The policy it is encrypted under (the epoch is added).
    pub policy: &'a Policy,
    /// The message.
    pub payload: &'a [u8],
    /// Sealed for retained publication (§6.4).
    pub retain: bool,
}

/// What the next envelope is sealed with.
struct Next {
    key: SessionKey,
    capsule: Option<Vec<u8>>,
    sequence: u64,
    retain: bool,
    signed: bool,
}
