//! Replay detection for envelopes (`docs/wire.md` §6.4): a sliding window of sequence numbers per
//! (publisher, key id), as IPsec's anti-replay window (RFC 4303 §3.4.3, with RFC 6479's ring of bits).
//!
//! For each session the window remembers the highest sequence number accepted, `top`, and which of the
//! [`REPLAY_WINDOW`] numbers `top - 1023 ..= top` were seen. A number above `top` is new and slides the window;
//! one inside it is new if its bit is clear; one below it is refused, since it can no longer be told apart from a
//! replay. The number of sessions is bounded: beyond the capacity the least recently used session is forgotten.

use core::fmt::{self, Debug, Formatter};
use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};
use crate::ids::DeviceId;

/// Sequence numbers a session's window spans: `top - 1023 ..= top`.
pub const REPLAY_WINDOW: u64 = 1024;

const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// One session's window: bit `s mod 1024` of `bits` says whether `s` was seen, for `s` in the window.
#[derive(Clone)]
struct Window {
    top: u64,
    bits: [u64; WORDS],
    /// When the session was last used (a [`ReplayWindow::clock`] value): its key in `recency`.
    used: u64,
}

impl Window {
    fn new(sequence: u64, used: u64) -> Window {
        let mut window = Window { top: sequence, bits: [0; WORDS], used };
        window.set(sequence);
        window
    }

    fn slot(sequence: u64) -> (usize, u64) {
        let index = sequence % REPLAY_WINDOW;
        // index < 1024, so index / 64 < 16 fits every usize.
        (usize::try_from(index / 64).unwrap_or(0), 1u64 << (index % 64))
    }

    fn set(&mut self, sequence: u64) {
        let (word, bit) = Window::slot(sequence);
        self.bits[word] |= bit;
    }

    fn clear(&mut self, sequence: u64) {
        let (word, bit) = Window::slot(sequence);
        self.bits[word] &= !bit;
    }

    fn seen(&self, sequence: u64) -> bool {
        let (word, bit) = Window::slot(sequence);
        self.bits[word] & bit != 0
    }

    fn check_and_record(&mut self, sequence: u64) -> Result<()> {
        if sequence > self.top {
            if sequence - self.top >= REPLAY_WINDOW {
                self.bits = [0; WORDS];
            } else {
                // The slots of top + 1 ..= sequence held numbers that have now slid out of the window.
                for s in self.top + 1..=sequence {
                    self.clear(s);
                }
            }
            self.top = sequence;
            self.set(sequence);
            return Ok(());
        }
        if self.top - sequence >= REPLAY_WINDOW || self.seen(sequence) {
            return Err(Error::Replay);
        }
        self.set(sequence);
        Ok(())
    }
}

/// Sliding-window replay detection per (publisher, key id), bounded in the number of sessions it tracks.
///
/// Record a sequence number only for an envelope whose signature verified and whose ciphertext opened:
/// otherwise anyone could burn a publisher's sequence numbers. Forgetting a session (eviction) forgets its
/// window, so an evicted session's old envelopes would be accepted again; receivers that need more than the
/// window SHOULD also bound the age of [`ParsedEnvelope::timestamp_ms`](crate::ParsedEnvelope::timestamp_ms).
pub struct ReplayWindow {
    capacity: usize,
    sessions: HashMap<DeviceId, HashMap<[u8; 16], Window>>,
    /// Sessions by last use, oldest first: `used` → (publisher, key id).
    recency: BTreeMap<u64, (DeviceId, [u8; 16])>,
    /// Counts checks; every check gets a fresh value.
    clock: u64,
}

impl ReplayWindow {
    /// An empty detector that tracks at most `max_sessions` sessions (at least one, whatever the argument).
    pub fn new(max_sessions: usize) -> ReplayWindow {
        ReplayWindow { capacity: max_sessions.max(1), sessions: HashMap::new(), recency: BTreeMap::new(), clock: 0 }
    }

    /// Checks that `sequence` is new for the session (`publisher`, `key_id`) and records it. A session not
    /// tracked yet starts with `sequence` as its highest number, evicting the least recently used session if
    /// the detector is full. Every call, accepted or not, makes the session the most recently used.
    ///
    /// # Errors
    /// [`Error::Replay`] if `sequence` was accepted before for this session, or is [`REPLAY_WINDOW`] or more
    /// below the highest sequence number accepted for it.
    pub fn check_and_record(&mut self, publisher: &DeviceId, key_id: [u8; 16], sequence: u64) -> Result<()> {
        let now = self.clock;
        self.clock += 1;
        if let Some(window) = self.sessions.get_mut(publisher).and_then(|s| s.get_mut(&key_id)) {
            if let Some(entry) = self.recency.remove(&window.used) {
                self.recency.insert(now, entry);
            }
            window.used = now;
            return window.check_and_record(sequence);
        }
        while self.recency.len() >= self.capacity {
            self.evict_oldest();
        }
        self.sessions.entry(publisher.clone()).or_default().insert(key_id, Window::new(sequence, now));
        self.recency.insert(now, (publisher.clone(), key_id));
        Ok(())
    }

    fn evict_oldest(&mut self) {
        let Some((_, (publisher, key_id))) = self.recency.pop_first() else { return };
        if let Some(sessions) = self.sessions.get_mut(&publisher) {
            sessions.remove(&key_id);
            if sessions.is_empty() {
                self.sessions.remove(&publisher);
            }
        }
    }

    /// Sessions tracked now (at most [`capacity`](Self::capacity)).
    pub fn len(&self) -> usize {
        self.recency.len()
    }

    /// Whether no session is tracked.
    pub fn is_empty(&self) -> bool {
        self.recency.is_empty()
    }

    /// The most sessions tracked at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl Debug for ReplayWindow {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayWindow").field("sessions", &self.len()).field("capacity", &self.capacity).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ring and a plain set of accepted numbers agree on a walk with jumps of every size.
    #[test]
    fn the_ring_matches_a_naive_model() {
        let mut window = Window::new(5000, 0);
        let mut accepted = std::collections::BTreeSet::from([5000u64]);
        let mut top = 5000u64;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let sequence = match x % 4 {
                0 => top + x % 3,
                1 => top.saturating_sub(x % 1100),
                2 => top + (x >> 8) % 2000,
                _ => top.saturating_sub((x >> 8) % 64),
            };
            let fresh = sequence > top || (top - sequence < REPLAY_WINDOW && !accepted.contains(&sequence));
            assert_eq!(window.check_and_record(sequence).is_ok(), fresh, "sequence {sequence}, top {top}");
            if fresh {
                accepted.insert(sequence);
                top = top.max(sequence);
            }
        }
    }

    #[test]
    fn extremes() {
        let mut window = Window::new(u64::MAX, 0);
        assert_eq!(window.check_and_record(u64::MAX), Err(Error::Replay));
        assert_eq!(window.check_and_record(u64::MAX - 1023), Ok(()));
        assert_eq!(window.check_and_record(u64::MAX - 1024), Err(Error::Replay));
        let mut window = Window::new(0, 0);
        assert_eq!(window.check_and_record(0), Err(Error::Replay));
        assert_eq!(window.check_and_record(u64::MAX), Ok(()));
        assert_eq!(window.check_and_record(0), Err(Error::Replay));
    }
}
