//! The sessions the gate has accepted, by client id: connected ones (never evicted) and disconnected ones kept
//! for their wills (Mosquitto decides a will after the connection is gone) until the space is needed.
//!
//! Bounds (network input creates every entry):
//!
//! * at most `[limits] max_sessions` entries in all (default 100 000). When full, the oldest *disconnected*
//!   entry makes room; with none, the new CONNECT is refused (`too_many_sessions`): a live session is never
//!   evicted, so a flood of client ids cannot push an honest connection out.
//! * at most `[limits] max_sessions_per_identity` connected client ids per device or legacy username (default
//!   16: a device's publisher, subscriber and a few tools), so one identity cannot fill the table. A reconnect
//!   with a client id the identity already holds replaces that session and always passes. Anonymous and
//!   unchecked clients have no identity to count by: only the total bound applies to them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use crate::refusal::{Refusal, RefusalReason};
use crate::session::{ClientSession, Role};

/// The default of `[limits] max_sessions_per_identity`.
pub(crate) const DEFAULT_MAX_PER_IDENTITY: usize = 16;

struct Entry {
    session: ClientSession,
    identity: Option<String>,
    live: bool,
    /// Distinguishes this entry's place in `disconnected` from stale ones of earlier entries.
    generation: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    live_by_identity: HashMap<String, usize>,
    /// Disconnected entries, oldest first: (client id, generation); stale pairs are skipped (and compacted).
    disconnected: VecDeque<(String, u64)>,
    next_generation: u64,
    /// Connected entries.
    live: usize,
}

impl Inner {
    /// A live entry stops being live.
    fn release(&mut self, identity: Option<&String>) {
        self.live = self.live.saturating_sub(1);
        if let Some(identity) = identity {
            if let Some(count) = self.live_by_identity.get_mut(identity) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.live_by_identity.remove(identity);
                }
            }
        }
    }

    /// Removes the oldest disconnected entry; `false` when there is none.
    fn evict_disconnected(&mut self) -> bool {
        while let Some((id, generation)) = self.disconnected.pop_front() {
            if self.map.get(&id).is_some_and(|e| !e.live && e.generation == generation) {
                self.map.remove(&id);
                return true;
            }
        }
        false
    }
}

/// Who a session counts against: the device or legacy username.
fn identity(session: &ClientSession) -> Option<String> {
    match session.role() {
        Role::Device(credential) => Some(format!("device:{}", credential.body().device_id)),
        Role::Legacy { username, .. } => Some(format!("legacy:{username}")),
        _ => None,
    }
}

pub(crate) struct Registry {
    inner: Mutex<Inner>,
    max_sessions: usize,
    max_per_identity: usize,
}

impl Registry {
    pub(crate) fn new(max_sessions: usize, max_per_identity: usize) -> Registry {
        Registry { inner: Mutex::new(Inner::default()), max_sessions, max_per_identity }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `session` as connected, or refuses it (`too_many_sessions`) without touching any live one.
    pub(crate) fn admit(&self, session: &ClientSession) -> Result<(), Refusal> {
        let mut inner = self.lock();
        let id = session.client_id();
        let who = identity(session);
        let previous = inner.map.get(id).map(|e| (e.live, e.identity.clone()));
        let takes_over = previous.as_ref().is_some_and(|(live, old)| *live && *old == who);
        if let (Some(who), false) = (&who, takes_over) {
            if inner.live_by_identity.get(who).copied().unwrap_or(0) >= self.max_per_identity {
                return Err(Refusal::new(
                    RefusalReason::TooManySessions,
                    format!("{who} already holds {} connected client ids", self.max_per_identity),
                ));
            }
        }
        if previous.is_none() && inner.map.len() >= self.max_sessions && !inner.evict_disconnected() {
            return Err(Refusal::new(
                RefusalReason::TooManySessions,
                format!("{} connected sessions, the limit", self.max_sessions),
            ));
        }
        if let Some((true, old)) = &previous {
            inner.release(old.as_ref());
        }
        inner.live += 1;
        if let Some(who) = &who {
            *inner.live_by_identity.entry(who.clone()).or_insert(0) += 1;
        }
        inner.next_generation += 1;
        let generation = inner.next_generation;
        inner.map.insert(id.to_owned(), Entry { session: session.clone(), identity: who, live: true, generation });
        Ok(())
    }

    /// `session`'s connection ended: its entry (if it is still this session's, not a newer connection's with
    /// the same client id) stays for its will but may be evicted from now on.
    pub(crate) fn disconnected(&self, session: &ClientSession) {
        let mut inner = self.lock();
        let Some(entry) = inner.map.get_mut(session.client_id()) else { return };
        if !entry.live || !entry.session.same(session) {
            return;
        }
        entry.live = false;
        let (identity, generation) = (entry.identity.clone(), entry.generation);
        inner.release(identity.as_ref());
        inner.disconnected.push_back((session.client_id().to_owned(), generation));
        if inner.disconnected.len() > 2 * self.max_sessions {
            let Inner { map, disconnected, .. } = &mut *inner;
            disconnected.retain(|(id, g)| map.get(id).is_some_and(|e| !e.live && e.generation == *g));
        }
    }

    pub(crate) fn get(&self, client_id: &str) -> Option<ClientSession> {
        self.lock().map.get(client_id).map(|e| e.session.clone())
    }

    pub(crate) fn forget(&self, client_id: &str) {
        let mut inner = self.lock();
        if let Some(entry) = inner.map.remove(client_id) {
            if entry.live {
                inner.release(entry.identity.as_ref());
            }
        }
    }

    /// (entries, connected entries).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.map.len(), inner.live)
    }
}
