//! Following the authority's epoch: only signed statements (`docs/wire.md` §10.2), never backwards.
//!
//! Two sources, either or both (`[authority]` in the gate configuration):
//! - `epoch_file`: a file holding a statement (`smqtt-epoch1.…`), written by the authority (`[epochs]
//!   statement_file`, or `smqtt-authority epoch statement -o FILE`). Re-read at most once a second.
//! - `url`: the authority itself, polled every `epoch_poll_secs` through the host's [`AuthorityLink`] (`GET
//!   /v1/epoch` in `smqtt-broker`); a newer statement is also written to `epoch_file` when one is configured, so a
//!   restarted broker starts from it. Without a link (the Mosquitto plugin) `url` is refused at start.
//!
//! A statement that does not verify under the authority key, or that names an older epoch than one already
//! accepted, changes nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use smqtt_wire::{EpochStatement, VerifiedEpoch, VerifyingKey};

use crate::config::{io_error, read_small};
use crate::link::AuthorityLink;
use crate::refusal::GateError;

/// How often the epoch file is re-read, at most.
const FILE_RECHECK: Duration = Duration::from_secs(1);

/// The epoch the gate enforces, learnt from signed statements.
pub(crate) struct EpochFollower {
    authority: VerifyingKey,
    /// The FAME parameter set statements must name, where the gate knows it (its sealing identity's).
    params_id: Option<[u8; 32]>,
    floor: u64,
    file: Option<PathBuf>,
    /// The authority's URL and the host's way there (both or neither).
    url: Option<(String, Arc<dyn AuthorityLink>)>,
    current: AtomicU64,
    newest: Mutex<Option<VerifiedEpoch>>,
    /// When the follower was made, and milliseconds after it of the last file check (lock-free: every publish
    /// asks).
    started: Instant,
    file_checked_ms: AtomicU64,
    /// The newest `issued_at` of a verified statement of the epoch in force (a liveness signal of the feed).
    issued_at: AtomicU64,
    /// Called with the new epoch after every advance, from whichever thread learnt it.
    listeners: Mutex<Vec<Listener>>,
}

type Listener = Box<dyn Fn(u64) + Send + Sync>;

impl core::fmt::Debug for EpochFollower {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EpochFollower")
            .field("current", &self.current())
            .field("file", &self.file)
            .field("url", &self.url.as_ref().map(|(url, _)| url))
            .finish_non_exhaustive()
    }
}

fn read_statement(path: &Path, authority: &VerifyingKey) -> Result<VerifiedEpoch, GateError> {
    let bytes = read_small(path)?;
    let text = core::str::from_utf8(&bytes).map_err(|_| io_error(path, "not UTF-8"))?;
    let statement = EpochStatement::parse(text).map_err(|e| {
        io_error(
            path,
            format!(
                "{e}: the epoch file must hold a statement signed by the authority (smqtt-authority epoch \
                 statement -o FILE, or [epochs] statement_file), not a bare number"
            ),
        )
    })?;
    statement.verify(authority).map_err(|_| io_error(path, "epoch statement not signed by the authority key"))
}

impl EpochFollower {
    /// A follower starting at `floor` (the configured `min_epoch`) or the statement in `file`, if higher.
    ///
    /// # Errors
    /// [`GateError::Io`] for an `epoch_file` that exists but holds no statement signed by `authority` (or, without
    /// a `url`, does not exist).
    pub(crate) fn new(
        authority: VerifyingKey,
        params_id: Option<[u8; 32]>,
        floor: u64,
        file: Option<PathBuf>,
        url: Option<(String, Arc<dyn AuthorityLink>)>,
    ) -> Result<EpochFollower, GateError> {
        let follower = EpochFollower {
            authority,
            params_id,
            floor,
            file,
            url,
            current: AtomicU64::new(floor),
            newest: Mutex::new(None),
            started: Instant::now(),
            file_checked_ms: AtomicU64::new(0),
            listeners: Mutex::new(Vec::new()),
            issued_at: AtomicU64::new(0),
        };
        if let Some(path) = &follower.file {
            if path.exists() || follower.url.is_none() {
                let verified = read_statement(path, &follower.authority)?;
                if !follower.names_our_params(&verified) {
                    return Err(io_error(
                        path,
                        "epoch statement names other FAME parameters than the broker's identity",
                    ));
                }
                follower.accept(verified);
            }
        }
        Ok(follower)
    }

    /// The oldest credential epoch accepted now.
    pub(crate) fn current(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }

    /// Calls `listener` with the epoch in force now and after every advance.
    pub(crate) fn on_advance(&self, listener: Listener) {
        listener(self.current());
        self.listeners.lock().unwrap_or_else(PoisonError::into_inner).push(listener);
    }

    /// When the authority signed the newest verified statement of the epoch in force (0: none yet).
    pub(crate) fn statement_issued_at(&self) -> u64 {
        self.issued_at.load(Ordering::Relaxed)
    }

    fn names_our_params(&self, verified: &VerifiedEpoch) -> bool {
        self.params_id.is_none_or(|ours| *verified.params_id() == ours)
    }

    /// Takes `verified` if it is newer than what is held (and names our parameters, where known); returns
    /// whether it was.
    fn accept(&self, verified: VerifiedEpoch) -> bool {
        if !self.names_our_params(&verified) {
            return false;
        }
        {
            let mut newest = self.newest.lock().unwrap_or_else(PoisonError::into_inner);
            if newest.is_some_and(|n| n.epoch() > verified.epoch()) {
                return false;
            }
            if newest.is_some_and(|n| n.epoch() == verified.epoch()) {
                // The same epoch, signed again: only the feed's liveness moves.
                self.issued_at.fetch_max(verified.body().issued_at, Ordering::Relaxed);
                return false;
            }
            self.issued_at.store(verified.body().issued_at, Ordering::Relaxed);
            *newest = Some(verified);
            self.current.fetch_max(self.floor.max(verified.epoch()), Ordering::Relaxed);
        }
        let epoch = self.current();
        for listener in self.listeners.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            listener(epoch);
        }
        true
    }

    /// Offers statement text from any source; returns whether the epoch advanced.
    ///
    /// # Errors
    /// [`GateError::Config`] for text that is not a statement signed by the authority key.
    pub(crate) fn offer(&self, text: &str) -> Result<bool, GateError> {
        let verified = EpochStatement::parse(text)
            .and_then(|s| s.verify(&self.authority))
            .map_err(|e| GateError::Config(format!("epoch statement refused: {e}")))?;
        if !self.names_our_params(&verified) {
            return Err(GateError::Config("epoch statement refused: it names other FAME parameters".into()));
        }
        let advanced = self.accept(verified);
        if advanced && self.url.is_some() {
            if let Some(path) = &self.file {
                // Best effort: the broker keeps enforcing the new epoch even where it cannot write its cache.
                let _ = smqtt_session::write_atomic(path, format!("{}\n", verified.to_text()).as_bytes(), 0o644);
            }
        }
        Ok(advanced)
    }

    /// Re-reads the epoch file if it is the source and a second has passed. An unreadable or unsigned file
    /// keeps the last value: revocation never goes backwards by accident or by an attacker's edit.
    pub(crate) fn refresh(&self) {
        if self.url.is_some() {
            return;
        }
        let Some(path) = &self.file else { return };
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.file_checked_ms.load(Ordering::Relaxed);
        let due = now_ms.saturating_sub(last) >= u64::try_from(FILE_RECHECK.as_millis()).unwrap_or(1000);
        // One thread per interval re-reads the file; the others go on with the epoch in force.
        if !due || self.file_checked_ms.compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            return;
        }
        if let Ok(verified) = read_statement(path, &self.authority) {
            self.accept(verified);
        }
    }

    /// Fetches the authority's current statement once through the link (blocking); returns whether the epoch
    /// advanced.
    ///
    /// # Errors
    /// [`GateError::Config`] for an unreachable authority or a statement that does not verify.
    pub(crate) fn poll_once(&self) -> Result<bool, GateError> {
        let Some((url, link)) = &self.url else { return Ok(false) };
        let statement = link.epoch_statement(url).map_err(|e| GateError::Config(format!("epoch from {url}: {e}")))?;
        self.offer(&statement)
    }

    /// Polls the authority every `every` (or, without a url, re-reads the epoch file every second) on a thread
    /// of its own until the follower is dropped, so that an advance is taken (and shown in the metrics) even
    /// while no client is checked.
    pub(crate) fn spawn_poller(self: &Arc<Self>, every: Duration) {
        let every = match (&self.url, &self.file) {
            (Some(_), _) => every,
            (None, Some(_)) => FILE_RECHECK,
            (None, None) => return,
        };
        let weak: Weak<EpochFollower> = Arc::downgrade(self);
        let spawned = std::thread::Builder::new().name("smqtt-epoch-poll".into()).spawn(move || loop {
            match weak.upgrade() {
                Some(follower) if follower.url.is_some() => {
                    let _ = follower.poll_once();
                }
                Some(follower) => follower.refresh(),
                None => return,
            }
            std::thread::sleep(every);
        });
        // Without a thread the gate still enforces the epoch it started with (and the file, if any).
        drop(spawned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smqtt_wire::{EpochBody, SigningKey};

    fn statement(key: &SigningKey, epoch: u64) -> String {
        EpochBody { epoch, started_at: 10 * epoch, issued_at: 10 * epoch + 1, params_id: [1; 32] }.sign(key)
    }

    #[test]
    fn follows_signed_statements_forward_only() {
        let authority = SigningKey::from_bytes(&[1; 32]);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("epoch");
        std::fs::write(&path, statement(&authority, 3)).unwrap_or_else(|e| panic!("{e}"));
        let follower = EpochFollower::new(authority.verifying_key(), None, 1, Some(path.clone()), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(follower.current(), 3);
        assert_eq!(follower.offer(&statement(&authority, 5)).ok(), Some(true));
        assert_eq!(follower.current(), 5);
        // Older, equal, foreign and unsigned statements change nothing.
        assert_eq!(follower.offer(&statement(&authority, 4)).ok(), Some(false));
        assert_eq!(follower.offer(&statement(&authority, 5)).ok(), Some(false));
        let impostor = SigningKey::from_bytes(&[2; 32]);
        assert!(follower.offer(&statement(&impostor, 9)).is_err());
        assert!(follower.offer("9").is_err());
        assert_eq!(follower.current(), 5);
        // The feed's liveness: the same epoch signed again later moves only the issued_at gauge.
        assert_eq!(follower.statement_issued_at(), 51);
        let again = EpochBody { epoch: 5, started_at: 50, issued_at: 99, params_id: [1; 32] }.sign(&authority);
        assert_eq!(follower.offer(&again).ok(), Some(false));
        assert_eq!((follower.current(), follower.statement_issued_at()), (5, 99));
    }

    #[test]
    fn statements_of_other_parameters_are_refused_where_the_gate_knows_its_own() {
        let authority = SigningKey::from_bytes(&[1; 32]);
        let follower = EpochFollower::new(authority.verifying_key(), Some([1; 32]), 1, None, None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(follower.offer(&statement(&authority, 2)).ok(), Some(true));
        let other = EpochBody { epoch: 3, started_at: 3, issued_at: 4, params_id: [2; 32] }.sign(&authority);
        assert!(follower.offer(&other).is_err());
        assert_eq!(follower.current(), 2);
    }

    #[test]
    fn a_bare_number_in_the_epoch_file_is_refused_at_start() {
        let authority = SigningKey::from_bytes(&[1; 32]);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("epoch");
        std::fs::write(&path, "7\n").unwrap_or_else(|e| panic!("{e}"));
        let error = EpochFollower::new(authority.verifying_key(), None, 1, Some(path), None).err();
        assert!(error.is_some_and(|e| e.to_string().contains("not a bare number")));
    }
}
