//! Legacy clients (username + Argon2 password hash) and broker-side sealing of their plaintext.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use sha2::{Digest, Sha256};
use smqtt_session::{IdentityStore, Sealer, SessionPolicy, UnixTime};
use smqtt_wire::TopicFilter;
use subtle::ConstantTimeEq;

use crate::config::{covered, filters, LegacyFile, SealRule};
use crate::link::AuthorityLink;
use crate::refusal::{GateError, Refusal, RefusalReason};
use crate::throttle::{Source, Throttle};

/// Longest password hashed (longer ones are refused unhashed).
const MAX_PASSWORD: usize = 1024;
/// How often the broker's device store is checked for a renewed credential.
const STORE_RECHECK: Duration = Duration::from_secs(5);
/// After a renewal attempt of the sealing identity, the next one waits at least this long.
const RENEW_RETRY: Duration = Duration::from_secs(1);

pub(crate) struct LegacyClient {
    pub(crate) username: String,
    hash: String,
    pub(crate) publish: Vec<TopicFilter>,
}

pub(crate) struct Legacy {
    clients: HashMap<String, Arc<LegacyClient>>,
    /// SHA-256 of the password that verified last, per configured username (so reconnects skip Argon2, and are
    /// never throttled). At most one per configured client.
    verified: Mutex<HashMap<String, [u8; 32]>>,
    /// Backoffs of failed passwords by source address (bounded, see `throttle.rs`).
    throttle: Throttle,
}

impl Legacy {
    pub(crate) fn new(files: &[LegacyFile]) -> Result<Legacy, GateError> {
        let mut clients = HashMap::new();
        for file in files {
            PasswordHash::new(&file.password_hash).map_err(|e| {
                GateError::Config(format!("legacy client {:?}: password_hash is not a PHC string: {e}", file.username))
            })?;
            if file.username.is_empty() {
                return Err(GateError::Config("legacy client with an empty username".into()));
            }
            // Its client ids are `legacy:<username>[/<suffix>]`: a '/' in a username would make them ambiguous.
            if file.username.contains('/') {
                return Err(GateError::Config(format!(
                    "legacy client {:?}: a username may not contain '/'",
                    file.username
                )));
            }
            let client = LegacyClient {
                username: file.username.clone(),
                hash: file.password_hash.clone(),
                publish: filters(&file.publish, &format!("legacy client {:?} publish", file.username))?,
            };
            if clients.insert(file.username.clone(), Arc::new(client)).is_some() {
                return Err(GateError::Config(format!("legacy client {:?} configured twice", file.username)));
            }
        }
        Ok(Legacy { clients, verified: Mutex::new(HashMap::new()), throttle: Throttle::new() })
    }

    /// Whether no legacy client is configured (then no password is ever checked).
    pub(crate) fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    pub(crate) fn get(&self, username: &str) -> Option<&Arc<LegacyClient>> {
        self.clients.get(username)
    }

    /// Checks `password` for the configured legacy client `client`, attempted from `peer` (`None`: the broker
    /// did not say; all such attempts share one source). The password that verified last is accepted at once
    /// from anywhere; otherwise a source throttled for this username (or in all) is refused unhashed
    /// (`throttled`), and every other attempt is hashed.
    pub(crate) fn verify(
        &self,
        client: &LegacyClient,
        password: Option<&[u8]>,
        peer: Option<IpAddr>,
    ) -> Result<(), Refusal> {
        let user = &client.username;
        let refuse = |m: &str| Refusal::new(RefusalReason::BadPassword, format!("legacy client {user:?}: {m}"));
        let Some(password) = password else { return Err(refuse("no password")) };
        if password.len() > MAX_PASSWORD {
            return Err(refuse("password too long"));
        }
        let digest: [u8; 32] = Sha256::digest(password).into();
        let cached = self.verified.lock().unwrap_or_else(PoisonError::into_inner).get(user).copied();
        if cached.is_some_and(|v| bool::from(v.ct_eq(&digest))) {
            return Ok(());
        }
        let source = Source::of(peer);
        if let Some(wait) = self.throttle.blocked(source, user, Instant::now()) {
            tracing::info!(username = %user, ?peer, wait_secs = wait.as_secs_f32(), "legacy login throttled");
            return Err(Refusal::new(
                RefusalReason::Throttled,
                format!("legacy client {user:?}: too many failed passwords from this address, retry in {wait:.1?}"),
            ));
        }
        let ok = PasswordHash::new(&client.hash)
            .map(|hash| Argon2::default().verify_password(password, &hash).is_ok())
            .unwrap_or(false);
        if ok {
            self.verified.lock().unwrap_or_else(PoisonError::into_inner).insert(user.clone(), digest);
            self.throttle.succeeded(source, user);
            Ok(())
        } else {
            self.throttle.failed(source, user, Instant::now());
            tracing::info!(username = %user, ?peer, "legacy login: wrong password");
            Err(refuse("wrong password"))
        }
    }
}

struct SealState {
    sealer: Sealer,
    /// The epoch of the sealer's credential and key.
    epoch: u64,
    credential_mtime: Option<SystemTime>,
    checked: Instant,
}

/// The broker's own device identity and the sealing rules.
pub(crate) struct Sealing {
    rules: Vec<SealRule>,
    store: PathBuf,
    state: Mutex<SealState>,
    /// A renewal of the identity at the authority is under way (one at a time).
    renewing: Arc<AtomicBool>,
    /// The FAME parameter set of the identity (pinned in its store at enrollment).
    params_id: [u8; 32],
    /// The host's way to the authority; without one the store is renewed beside the broker (`smqtt follow`).
    link: Option<Arc<dyn AuthorityLink>>,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load_sealer(store: &Path, rules: &[SealRule]) -> Result<(Sealer, u64), GateError> {
    let identity = IdentityStore::at(store).load(UnixTime::now()).map_err(|e| GateError::Identity(e.to_string()))?;
    let rights = &identity.verified().body().publish;
    for rule in rules {
        if !covered(&rule.filter, rights) {
            return Err(GateError::Identity(format!(
                "the broker's credential ({}) does not allow publishing on the sealed topics {}: enroll it with \
                 --publish covering them, or subscribers will refuse its envelopes",
                identity.device_id(),
                rule.filter.as_str()
            )));
        }
    }
    let identity = identity.into_parts();
    let epoch = identity.epoch;
    let sealer = Sealer::new(
        identity.device_id,
        identity.signing_key,
        identity.credential,
        Arc::new(identity.public_key),
        epoch,
        SessionPolicy::default(),
    );
    Ok((sealer, epoch))
}

impl Sealing {
    pub(crate) fn new(
        store: PathBuf,
        rules: Vec<SealRule>,
        link: Option<Arc<dyn AuthorityLink>>,
    ) -> Result<Sealing, GateError> {
        let (sealer, epoch) = load_sealer(&store, &rules)?;
        let public_key = IdentityStore::at(&store).public_key().map_err(|e| GateError::Identity(e.to_string()))?;
        let params_id = *public_key.id().as_bytes();
        let state =
            SealState { sealer, epoch, credential_mtime: mtime(&store.join("credential")), checked: Instant::now() };
        let renewing = Arc::new(AtomicBool::new(false));
        Ok(Sealing { rules, store, state: Mutex::new(state), renewing, params_id, link })
    }

    /// The FAME parameter set the broker's identity belongs to.
    pub(crate) fn params_id(&self) -> [u8; 32] {
        self.params_id
    }

    /// The rule for `topic`, if it is a sealed topic.
    pub(crate) fn rule(&self, topic: &str) -> Option<&SealRule> {
        self.rules.iter().find(|r| r.filter.matches(topic))
    }

    /// Reloads the identity if its store holds a renewed credential.
    fn reload(&self, state: &mut SealState) {
        state.checked = Instant::now();
        let now = mtime(&self.store.join("credential"));
        if now != state.credential_mtime {
            // A renewed identity; keep the old one if the new one is broken.
            if let Ok((sealer, epoch)) = load_sealer(&self.store, &self.rules) {
                state.sealer = sealer;
                state.epoch = epoch;
                state.credential_mtime = now;
            }
        }
    }

    /// Called whenever the gate learns the epoch in force: an identity of an older epoch renews itself at the
    /// authority through the host's link (on a thread of its own, one renewal at a time; the link checks the
    /// answers against the authority key the store pinned at enrollment). Without a link the gate waits for
    /// the store to be renewed beside it and reloads it then.
    pub(crate) fn follow(&self, epoch: u64) {
        let behind = match self.state.lock() {
            Ok(mut state) if state.epoch < epoch => {
                self.reload(&mut state);
                state.epoch < epoch
            }
            _ => false,
        };
        let Some(link) = &self.link else { return };
        if !behind || self.renewing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (store, renewing, link) = (self.store.clone(), Arc::clone(&self.renewing), Arc::clone(link));
        let spawned = std::thread::Builder::new().name("smqtt-seal-renew".into()).spawn(move || {
            if let Err(error) = link.renew_identity(&store) {
                tracing::warn!(store = %store.display(), %error, "renewing the broker's sealing identity failed");
            }
            // Failures are retried at the next epoch check (a renewal refused by the authority stays refused).
            std::thread::sleep(RENEW_RETRY);
            renewing.store(false, Ordering::Release);
        });
        if spawned.is_err() {
            self.renewing.store(false, Ordering::Release);
        }
    }

    /// Seals `payload` for `topic` under the rule's policy, with the broker's identity (reloaded when its
    /// store holds a renewed credential). Never seals for an epoch older than `epoch`, the one in force: until
    /// the identity has renewed, such publishes are refused (`seal_failed`).
    pub(crate) fn seal(
        &self,
        rule: &SealRule,
        topic: &str,
        payload: &[u8],
        retain: bool,
        epoch: u64,
    ) -> Result<Vec<u8>, Refusal> {
        let failed = |m: String| Refusal::new(RefusalReason::SealFailed, m);
        let mut state = self.state.lock().map_err(|_| failed("sealer state poisoned".into()))?;
        if state.checked.elapsed() >= STORE_RECHECK || state.epoch < epoch {
            self.reload(&mut state);
        }
        if state.epoch < epoch {
            drop(state);
            self.follow(epoch);
            return Err(failed(format!(
                "the broker's sealing identity is of an epoch older than {epoch}: renewing it, not sealing for a \
                 past epoch"
            )));
        }
        state
            .sealer
            .seal(topic, &rule.policy, payload, retain, UnixTime::now(), &mut rand_core::OsRng)
            .map_err(|e| failed(e.to_string()))
    }
}
