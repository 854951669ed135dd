//! What an [`Opener`](crate::Opener) decides before it spends work on a delivery: whether the envelope is fresh
//! enough to be shown at all, and whether its publisher may make this subscriber start one more session (a
//! FAME decapsulation, with point validation of every capsule row) right now.
//!
//! Both run on values a signature vouches for, or are refusals that cost nothing: the age is checked before the
//! signature (refusing a forged old timestamp is harmless), the session budget only after it (so nobody can
//! spend another publisher's budget by naming it). Time is the caller's ([`UnixTime`]); nothing here reads a
//! clock.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use smqtt_wire::{DeviceId, UnixTime};

/// The limits an opener applies to what it is delivered (`docs/wire.md` §6.4 for the age).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenerLimits {
    /// Envelopes sealed longer ago than this are refused as stale, retained ones included: a replay can show
    /// a restarted subscriber nothing older. A retained value must be published again within it to stay
    /// readable. Default: 24 hours.
    pub max_message_age: Duration,
    /// Envelopes sealed further than this in the future (by this subscriber's clock) are refused. Default:
    /// 5 minutes.
    pub max_clock_skew: Duration,
    /// New sessions (decapsulations) one publisher may start at once… Default: 16 (an epoch change starts one
    /// per policy the publisher uses).
    pub new_sessions_burst: u32,
    /// …and then one more every this long. Default: 2 s. Envelopes beyond the budget are refused as
    /// [`MessageError::SessionFlood`](crate::MessageError::SessionFlood) without decoding their capsule; an
    /// honest publisher's capsule comes again with its session's next capsule-carrying envelope.
    pub new_session_interval: Duration,
}

impl Default for OpenerLimits {
    fn default() -> Self {
        OpenerLimits {
            max_message_age: Duration::from_secs(24 * 3600),
            max_clock_skew: Duration::from_secs(300),
            new_sessions_burst: 16,
            new_session_interval: Duration::from_secs(2),
        }
    }
}

/// Why an envelope's timestamp is not acceptable.
#[derive(Debug)]
pub(crate) enum Staleness {
    /// Sealed this many seconds before the limit allows.
    TooOld(u64),
    /// Sealed this many seconds in the future.
    FromTheFuture(u64),
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl OpenerLimits {
    /// Checks `timestamp_ms` (the envelope's) against `now` (the subscriber's clock).
    pub(crate) fn check_age(&self, timestamp_ms: u64, now: UnixTime) -> Result<(), Staleness> {
        let now_ms = now.as_millis();
        if timestamp_ms > now_ms.saturating_add(millis(self.max_clock_skew)) {
            return Err(Staleness::FromTheFuture((timestamp_ms - now_ms) / 1000));
        }
        let age = now_ms.saturating_sub(timestamp_ms);
        if age > millis(self.max_message_age) {
            return Err(Staleness::TooOld(age / 1000));
        }
        Ok(())
    }
}

/// Publishers whose budgets are kept; past this the least recently charged one is forgotten (it gets a full
/// budget again should it come back — a publisher that keeps flooding is always the most recent, never it).
const MAX_BUDGETS: usize = 4096;

/// New-session budgets per publisher, bounded in number, least recently charged forgotten first. Each budget is
/// a token bucket kept as its theoretical arrival time (GCRA): `burst` sessions at once, then one per interval.
pub(crate) struct SessionBudgets {
    /// Milliseconds per new session (at least 1).
    interval_ms: u64,
    /// How far the arrival time may run ahead of now: `(burst − 1) · interval`.
    tolerance_ms: u64,
    /// Each publisher's theoretical arrival time (ms) and the stamp of its last charge.
    budgets: HashMap<DeviceId, (u64, u64)>,
    /// (stamp, publisher) by charge, oldest first; an entry whose stamp is no longer its publisher's is stale.
    order: VecDeque<(u64, DeviceId)>,
    stamps: u64,
}

impl SessionBudgets {
    pub(crate) fn new(limits: &OpenerLimits) -> SessionBudgets {
        let interval_ms = millis(limits.new_session_interval).max(1);
        let burst = u64::from(limits.new_sessions_burst.max(1));
        SessionBudgets {
            interval_ms,
            tolerance_ms: (burst - 1).saturating_mul(interval_ms),
            budgets: HashMap::new(),
            order: VecDeque::new(),
            stamps: 0,
        }
    }

    /// Takes one new session from `publisher`'s budget at `now`; false when it has none left then.
    pub(crate) fn admit(&mut self, publisher: &DeviceId, now: UnixTime) -> bool {
        self.stamps += 1;
        let stamp = self.stamps;
        let now_ms = now.as_millis();
        if !self.budgets.contains_key(publisher) {
            while self.budgets.len() >= MAX_BUDGETS {
                let Some((at, oldest)) = self.order.pop_front() else { break };
                if self.budgets.get(&oldest).is_some_and(|(_, last)| *last == at) {
                    self.budgets.remove(&oldest);
                }
            }
        }
        let entry = self.budgets.entry(publisher.clone()).or_insert((now_ms, stamp));
        entry.1 = stamp;
        let arrival = entry.0.max(now_ms);
        let admitted = arrival - now_ms <= self.tolerance_ms;
        if admitted {
            entry.0 = arrival.saturating_add(self.interval_ms);
        }
        self.order.push_back((stamp, publisher.clone()));
        if self.order.len() > 4 * MAX_BUDGETS {
            let budgets = &self.budgets;
            self.order.retain(|(at, p)| budgets.get(p).is_some_and(|(_, last)| last == at));
        }
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> DeviceId {
        DeviceId::new(name).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn ages_are_bounded_both_ways() {
        let limits = OpenerLimits::default();
        let now = 1_800_000_000_000;
        let at = UnixTime::from_millis(now);
        assert!(limits.check_age(now, at).is_ok());
        assert!(limits.check_age(now - 24 * 3600 * 1000, at).is_ok());
        assert!(matches!(limits.check_age(now - 24 * 3600 * 1000 - 1, at), Err(Staleness::TooOld(_))));
        assert!(limits.check_age(now + 300_000, at).is_ok());
        assert!(matches!(limits.check_age(now + 300_001, at), Err(Staleness::FromTheFuture(_))));
        assert!(matches!(limits.check_age(0, at), Err(Staleness::TooOld(_))));
        assert!(matches!(limits.check_age(u64::MAX, at), Err(Staleness::FromTheFuture(_))));
    }

    #[test]
    fn budgets_are_per_publisher_and_refill() {
        let limits = OpenerLimits {
            new_sessions_burst: 3,
            new_session_interval: Duration::from_millis(200),
            ..OpenerLimits::default()
        };
        let mut budgets = SessionBudgets::new(&limits);
        let (flooder, other) = (id("flooder"), id("other"));
        let t0 = UnixTime::from_millis(1_000_000);
        assert!((0..3).all(|_| budgets.admit(&flooder, t0)));
        assert!(!budgets.admit(&flooder, t0), "the burst is spent");
        assert!(budgets.admit(&other, t0), "another publisher's budget is its own");
        assert!(!budgets.admit(&flooder, UnixTime::from_millis(1_000_199)), "not refilled before the interval");
        assert!(budgets.admit(&flooder, UnixTime::from_millis(1_000_200)), "one refilled after the interval");
        assert!(!budgets.admit(&flooder, UnixTime::from_millis(1_000_200)), "only one");
        // A long pause refills the whole burst, never more.
        let later = UnixTime::from_millis(2_000_000);
        assert!((0..3).all(|_| budgets.admit(&flooder, later)));
        assert!(!budgets.admit(&flooder, later));
        // A clock set back does not refill anything.
        assert!(!budgets.admit(&flooder, t0));
    }

    #[test]
    fn the_budget_table_is_bounded_and_a_flooder_keeps_its_empty_budget() {
        let limits = OpenerLimits {
            new_sessions_burst: 1,
            new_session_interval: Duration::from_secs(3600),
            ..OpenerLimits::default()
        };
        let mut budgets = SessionBudgets::new(&limits);
        let now = UnixTime::from_secs(1_800_000_000);
        let flooder = id("flooder");
        assert!(budgets.admit(&flooder, now));
        for i in 0..3 * MAX_BUDGETS {
            budgets.admit(&id(&format!("p{i}")), now);
            if i % 64 == 0 {
                assert!(!budgets.admit(&flooder, now), "reset by a flood of other publishers at {i}");
            }
            assert!(budgets.budgets.len() <= MAX_BUDGETS);
            assert!(budgets.order.len() <= 4 * MAX_BUDGETS + 1);
        }
    }
}
