//! Throttling legacy password guesses by source address, so that an attacker guessing a username's password
//! slows itself down without locking that username out for honest clients elsewhere.
//!
//! Two tables of exponential backoffs, both keyed by the *source* (an IPv4 address, an IPv6 /64 prefix, or
//! "unknown" when the broker did not say):
//!
//! * per (source, username): after the `n`-th failure in a row, attempts for that username from that source are
//!   refused without hashing for `min(2^(n-1) s, 60 s)`;
//! * per source: the first [`SOURCE_FREE_FAILURES`] failures (any usernames: a NAT with a few misconfigured
//!   devices) cost nothing extra; after that the whole source waits `min(2^(n-1-free) s, 60 s)`.
//!
//! A success from a source clears its (source, username) entry. Entries are forgotten [`RESET_AFTER`] after
//! their last failure. Each table holds at most [`MAX_ENTRIES`]; when full, forgotten entries go first, then the
//! one whose backoff ends soonest (the attacker it belonged to starts over: attacks from more than
//! [`MAX_ENTRIES`] sources at once are throttled less, never the honest more).
//!
//! Argon2 work stays bounded per source: at most [`SOURCE_FREE_FAILURES`] hashes at once, then one per backoff
//! (≤ 1 per [`MAX_BACKOFF`] once it has saturated). Hashing for a source is never refused because of another
//! source, so an honest client at another address always gets its password checked.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Longest backoff: a throttled source may still try once a minute (an honest client that mistyped recovers).
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Failures per source (any usernames) before the source itself is throttled.
pub(crate) const SOURCE_FREE_FAILURES: u32 = 10;
/// A failure record older than this (since its last failure) is forgotten: the count starts over.
pub(crate) const RESET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Entries per table (each ≈ 100 bytes: ≈ 1 MB per table when full).
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// Where an attempt comes from. IPv6 clients usually hold a whole /64, so that is one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    V4([u8; 4]),
    V6([u8; 8]),
    Unknown,
}

impl Source {
    pub(crate) fn of(peer: Option<IpAddr>) -> Source {
        match peer.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => Source::V4(v4.octets()),
            Some(IpAddr::V6(v6)) => {
                let o = v6.octets();
                Source::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
            }
            None => Source::Unknown,
        }
    }
}

#[derive(Clone, Copy)]
struct Backoff {
    failures: u32,
    last: Instant,
    until: Instant,
}

fn backoff(excess: u32) -> Duration {
    // 2^(excess-1) s, capped; `excess` ≥ 1.
    let shift = excess.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << shift).min(MAX_BACKOFF)
}

struct Table<K> {
    map: HashMap<K, Backoff>,
    /// Failures that do not yet delay the key.
    free: u32,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(free: u32) -> Table<K> {
        Table { map: HashMap::new(), free }
    }

    fn blocked(&mut self, key: &K, now: Instant) -> Option<Duration> {
        let entry = self.map.get(key)?;
        if now.saturating_duration_since(entry.last) >= RESET_AFTER {
            self.map.remove(key);
            return None;
        }
        (now < entry.until).then(|| entry.until - now)
    }

    fn failed(&mut self, key: K, now: Instant) {
        if !self.map.contains_key(&key) && self.map.len() >= MAX_ENTRIES {
            self.map.retain(|_, e| now.saturating_duration_since(e.last) < RESET_AFTER);
            if self.map.len() >= MAX_ENTRIES {
                let soonest = self.map.iter().min_by_key(|(_, e)| e.until).map(|(k, _)| k.clone());
                if let Some(soonest) = soonest {
                    self.map.remove(&soonest);
                }
            }
        }
        let entry = self.map.entry(key).or_insert(Backoff { failures: 0, last: now, until: now });
        if now.saturating_duration_since(entry.last) >= RESET_AFTER {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        entry.until = match entry.failures.checked_sub(self.free) {
            Some(excess) if excess > 0 => now + backoff(excess),
            _ => now,
        };
    }
}

struct Tables {
    by_source: Table<Source>,
    by_pair: Table<(Source, String)>,
}

/// The two backoff tables (see the module docs).
pub(crate) struct Throttle {
    tables: Mutex<Tables>,
}

impl Throttle {
    pub(crate) fn new() -> Throttle {
        Throttle { tables: Mutex::new(Tables { by_source: Table::new(SOURCE_FREE_FAILURES), by_pair: Table::new(0) }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long `source` must still wait before a password for `username` is hashed (`None`: hash now).
    pub(crate) fn blocked(&self, source: Source, username: &str, now: Instant) -> Option<Duration> {
        let mut tables = self.lock();
        let pair = tables.by_pair.blocked(&(source, username.to_owned()), now);
        let whole = tables.by_source.blocked(&source, now);
        pair.max(whole)
    }

    /// Records a wrong password for `username` from `source`.
    pub(crate) fn failed(&self, source: Source, username: &str, now: Instant) {
        let mut tables = self.lock();
        tables.by_pair.failed((source, username.to_owned()), now);
        tables.by_source.failed(source, now);
    }

    /// Records a right password: the (source, username) backoff ends (the source's record stays).
    pub(crate) fn succeeded(&self, source: Source, username: &str) {
        self.lock().by_pair.map.remove(&(source, username.to_owned()));
    }

    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        let tables = self.lock();
        (tables.by_source.map.len(), tables.by_pair.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(Source::of("127.0.0.2".parse().ok()), Source::V4([127, 0, 0, 2]));
        assert_eq!(Source::of("::ffff:10.0.0.1".parse().ok()), Source::V4([10, 0, 0, 1]));
        let a = Source::of("2001:db8::1".parse().ok());
        assert_eq!(a, Source::of("2001:db8::ffff:2".parse().ok()), "one /64");
        assert_ne!(a, Source::of("2001:db8:0:1::1".parse().ok()));
        assert_eq!(Source::of(None), Source::Unknown);
    }

    #[test]
    fn backs_off_exponentially_per_pair_and_source() {
        let t = Throttle::new();
        let now = Instant::now();
        let (bad, good) = (Source::V4([10, 0, 0, 2]), Source::V4([10, 0, 0, 1]));
        assert_eq!(t.blocked(bad, "m", now), None);
        t.failed(bad, "m", now);
        assert_eq!(t.blocked(bad, "m", now), Some(Duration::from_secs(1)));
        assert_eq!(t.blocked(good, "m", now), None, "another source is not affected");
        assert_eq!(t.blocked(bad, "other", now), None, "nor another username, below the source's allowance");
        let later = now + Duration::from_secs(1);
        assert_eq!(t.blocked(bad, "m", later), None);
        t.failed(bad, "m", later);
        assert_eq!(t.blocked(bad, "m", later), Some(Duration::from_secs(2)));
        for i in 0..20 {
            t.failed(bad, &format!("u{i}"), later);
        }
        assert_eq!(t.blocked(bad, "fresh", later), Some(MAX_BACKOFF), "the source itself is throttled");
        assert_eq!(t.blocked(good, "fresh", later), None);
        t.succeeded(bad, "m");
        assert!(t.blocked(bad, "m", later).is_some(), "the source's backoff stays");
        assert_eq!(t.blocked(bad, "m", later + RESET_AFTER), None, "forgotten after a while");
    }

    #[test]
    fn tables_are_bounded() {
        let t = Throttle::new();
        let now = Instant::now();
        for i in 0..(MAX_ENTRIES as u32 + 500) {
            t.failed(Source::V4(i.to_be_bytes()), "m", now);
        }
        let (sources, pairs) = t.sizes();
        assert!(sources <= MAX_ENTRIES && pairs <= MAX_ENTRIES, "{sources} {pairs}");
    }
}
