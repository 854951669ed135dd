//! Per-client rate limiting: a [`governor`] keyed limiter (GCRA token buckets) over a bounded table.
//!
//! What holds under an address flood:
//!
//! * **Keys.** An IPv4 client is its address; an IPv6 client is its /64 prefix (one host is normally given a
//!   whole /64, so rotating addresses inside it does not buy fresh buckets). IPv4-mapped IPv6 addresses count
//!   as the IPv4 address. The same key bounds connections per client (see `conn.rs`).
//! * **Bounded table.** At most `max_tracked` keys are held. Buckets that have refilled completely carry no
//!   information (a fresh bucket is a full one), so dropping them is lossless: that is what governor's
//!   `retain_recent` does, every 10 s ([`SWEEP_EVERY`]) and, while the table is full, at most every
//!   second ([`FULL_SWEEP_EVERY`]).
//! * **No reset.** A key that is still in the table is never dropped before its bucket is full again, so a
//!   client over its limit stays over it whatever else happens. When the table is full even after a sweep, new
//!   keys are not added: all of them share one overflow bucket (same quota) until room frees up. A flood
//!   therefore throttles only the flood (and clients first seen during it), never the clients already known.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use governor::clock::DefaultClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::StateStore;
use governor::Quota;

/// Sweep of fully refilled buckets at least this often (when requests arrive).
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// While the table is full, a sweep at most this often (each one walks the whole table).
pub(crate) const FULL_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Whom a limit applies to: an IPv4 address, or the /64 prefix of an IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum ClientKey {
    /// An IPv4 address (or an IPv4-mapped IPv6 one).
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
}

impl ClientKey {
    /// The key of `ip`.
    pub(super) fn of(ip: IpAddr) -> ClientKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) => ClientKey::V6((v6.to_bits() >> 64) as u64),
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    states: HashMap<ClientKey, Nanos>,
    overflow: Option<Nanos>,
}

/// governor's state store, bounded: keys past `max` share the overflow bucket.
#[derive(Debug)]
struct BoundedStore {
    max: usize,
    table: Mutex<Table>,
}

impl BoundedStore {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table is consistent after every statement, so a panic elsewhere leaves nothing half-done.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StateStore for BoundedStore {
    type Key = ClientKey;

    fn measure_and_replace<T, F, E>(&self, key: &ClientKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut table = self.lock();
        if let Some(state) = table.states.get_mut(key) {
            let (result, next) = f(Some(*state))?;
            *state = next;
            return Ok(result);
        }
        if table.states.len() < self.max {
            let (result, next) = f(None)?;
            table.states.insert(*key, next);
            return Ok(result);
        }
        let (result, next) = f(table.overflow)?;
        table.overflow = Some(next);
        Ok(result)
    }
}

impl ShrinkableKeyedStateStore<ClientKey> for BoundedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        let mut table = self.lock();
        table.states.retain(|_, state| *state > drop_below);
        if table.overflow.is_some_and(|state| state <= drop_below) {
            table.overflow = None;
        }
    }

    fn shrink_to_fit(&self) {
        self.lock().states.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.lock().states.len()
    }

    fn is_empty(&self) -> bool {
        self.lock().states.is_empty()
    }
}

type Keyed = governor::RateLimiter<ClientKey, BoundedStore, DefaultClock, NoOpMiddleware>;

/// Token buckets per client (IPv4 address or IPv6 /64), at most a bounded number of them; see the module
/// documentation for what holds under an address flood.
#[derive(Debug)]
pub struct RateLimiter {
    keyed: Option<Keyed>,
    max_tracked: usize,
    last_sweep: Mutex<Instant>,
}

/// Keys tracked by [`RateLimiter::new`].
pub(crate) const DEFAULT_TRACKED_CLIENTS: usize = 10_000;

impl RateLimiter {
    /// `rate` requests per second sustained, `burst` at once, for at most 10 000 clients;
    /// a rate of 0 allows everything.
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter::with_capacity(rate, burst, DEFAULT_TRACKED_CLIENTS)
    }

    /// Like [`RateLimiter::new`], tracking at most `max_tracked` clients (at least 1) before new ones share the
    /// overflow bucket.
    pub fn with_capacity(rate: u32, burst: u32, max_tracked: usize) -> RateLimiter {
        let max_tracked = max_tracked.max(1);
        let keyed = NonZeroU32::new(rate).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            let store = BoundedStore { max: max_tracked, table: Mutex::new(Table::default()) };
            governor::RateLimiter::new(Quota::per_second(rate).allow_burst(burst), store, DefaultClock::default())
        });
        RateLimiter { keyed, max_tracked, last_sweep: Mutex::new(Instant::now()) }
    }

    /// Takes one token for `client`; false when it has none left.
    pub fn allow(&self, client: IpAddr) -> bool {
        let Some(keyed) = &self.keyed else { return true };
        self.sweep_if_due(keyed);
        keyed.check_key(&ClientKey::of(client)).is_ok()
    }

    /// Clients (keys) currently tracked, at most the capacity.
    pub fn tracked(&self) -> usize {
        self.keyed.as_ref().map_or(0, Keyed::len)
    }

    fn sweep_if_due(&self, keyed: &Keyed) {
        let mut last = match self.last_sweep.try_lock() {
            Ok(last) => last,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            // Another request is sweeping.
            Err(TryLockError::WouldBlock) => return,
        };
        let every = if keyed.len() >= self.max_tracked { FULL_SWEEP_EVERY } else { SWEEP_EVERY };
        if last.elapsed() < every {
            return;
        }
        *last = Instant::now();
        let before = keyed.len();
        keyed.retain_recent();
        let after = keyed.len();
        if after < before / 2 {
            keyed.shrink_to_fit();
        }
        if after >= self.max_tracked {
            tracing::warn!(tracked = after, "rate limiter table full: new clients share the overflow bucket");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ipv6_by_64_and_maps_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("address");
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().expect("address");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("address");
        assert_eq!(ClientKey::of(a), ClientKey::of(b));
        assert_ne!(ClientKey::of(a), ClientKey::of(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("address");
        assert_eq!(ClientKey::of(mapped), ClientKey::of("192.0.2.7".parse().expect("address")));
    }

    #[test]
    fn full_table_sends_new_keys_to_the_overflow_bucket() {
        let limiter = RateLimiter::with_capacity(1, 2, 3);
        for i in 0..3u8 {
            assert!(limiter.allow(IpAddr::from([10, 0, 0, i])));
        }
        assert_eq!(limiter.tracked(), 3);
        // Two unknown keys share the overflow bucket of burst 2; the third is refused.
        assert!(limiter.allow(IpAddr::from([10, 0, 1, 1])));
        assert!(limiter.allow(IpAddr::from([10, 0, 1, 2])));
        assert!(!limiter.allow(IpAddr::from([10, 0, 1, 3])));
        assert_eq!(limiter.tracked(), 3);
        // Known keys keep their own buckets.
        assert!(limiter.allow(IpAddr::from([10, 0, 0, 0])));
        assert!(!limiter.allow(IpAddr::from([10, 0, 0, 0])));
    }
}
