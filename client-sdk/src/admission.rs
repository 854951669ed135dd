//! What an [`Opener`](crate::Opener) decides before it spends work on a delivery: whether the envelope is fresh
//! enough to be shown at all, and whether its publisher may make this subscriber start one more session (a
//! FAME decapsulation, with point validation of every capsule row) right now.
//!
//! Both run on values a signature vouches for, or are refusals that cost nothing: the age is checked before the
//! signature (refusing a forged old timestamp is harmless), the session budget only after it (so nobody can
//! spend another publisher's budget by naming it).

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use smqtt_wire::DeviceId;

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
pub(crate) enum Staleness {
    /// Sealed this many seconds before the limit allows.
    TooOld(u64),
    /// Sealed this many seconds in the future.
    FromTheFuture(u64),
}

impl OpenerLimits {
    /// Checks `timestamp_ms` (the envelope's) against `now_ms` (the subscriber's clock).
    pub(crate) fn check_age(&self, timestamp_ms: u64, now_ms: u64) -> Result<(), Staleness> {
        let max_age = u64::try_from(self.max_message_age.as_millis()).unwrap_or(u64::MAX);
        let skew = u64::try_from(self.max_clock_skew.as_millis()).unwrap_or(u64::MAX);
        if timestamp_ms > now_ms.saturating_add(skew) {
            return Err(Staleness::FromTheFuture((timestamp_ms - now_ms) / 1000));
        }
        let age = now_ms.saturating_sub(timestamp_ms);
        if age > max_age {
            return Err(Staleness::TooOld(age / 1000));
        }
        Ok(())
    }

    fn quota(&self) -> Quota {
        let burst = NonZeroU32::new(self.new_sessions_burst).unwrap_or(NonZeroU32::MIN);
        let period = self.new_session_interval.max(Duration::from_millis(1));
        Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)).allow_burst(burst)
    }
}

/// Publishers whose budgets are kept; past this the least recently charged one is forgotten (it gets a full
/// budget again should it come back — a publisher that keeps flooding is always the most recent, never it).
const MAX_BUDGETS: usize = 4096;

/// New-session budgets per publisher (token buckets, `governor`), bounded in number, least recently charged
/// forgotten first.
pub(crate) struct SessionBudgets {
    quota: Quota,
    /// Each publisher's budget and the stamp of its last charge.
    budgets: HashMap<DeviceId, (u64, DefaultDirectRateLimiter)>,
    /// (stamp, publisher) by charge, oldest first; an entry whose stamp is no longer its publisher's is stale.
    order: VecDeque<(u64, DeviceId)>,
    clock: u64,
}

impl SessionBudgets {
    pub(crate) fn new(limits: &OpenerLimits) -> SessionBudgets {
        SessionBudgets { quota: limits.quota(), budgets: HashMap::new(), order: VecDeque::new(), clock: 0 }
    }

    /// Takes one new session from `publisher`'s budget; false when it has none left now.
    pub(crate) fn admit(&mut self, publisher: &DeviceId) -> bool {
        self.clock += 1;
        let stamp = self.clock;
        match self.budgets.get_mut(publisher) {
            Some((last, _)) => *last = stamp,
            None => {
                while self.budgets.len() >= MAX_BUDGETS {
                    let Some((at, oldest)) = self.order.pop_front() else { break };
                    if self.budgets.get(&oldest).is_some_and(|(last, _)| *last == at) {
                        self.budgets.remove(&oldest);
                    }
                }
                self.budgets.insert(publisher.clone(), (stamp, RateLimiter::direct(self.quota)));
            }
        }
        self.order.push_back((stamp, publisher.clone()));
        if self.order.len() > 4 * MAX_BUDGETS {
            let budgets = &self.budgets;
            self.order.retain(|(at, p)| budgets.get(p).is_some_and(|(last, _)| last == at));
        }
        self.budgets.get(publisher).is_some_and(|(_, limiter)| limiter.check().is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_bounded_both_ways() {
        let limits = OpenerLimits::default();
        let now = 1_800_000_000_000;
        assert!(limits.check_age(now, now).is_ok());
        assert!(limits.check_age(now - 24 * 3600 * 1000, now).is_ok());
        assert!(matches!(limits.check_age(now - 24 * 3600 * 1000 - 1, now), Err(Staleness::TooOld(_))));
        assert!(limits.check_age(now + 300_000, now).is_ok());
        assert!(matches!(limits.check_age(now + 300_001, now), Err(Staleness::FromTheFuture(_))));
        assert!(matches!(limits.check_age(0, now), Err(Staleness::TooOld(_))));
        assert!(matches!(limits.check_age(u64::MAX, now), Err(Staleness::FromTheFuture(_))));
    }

    #[test]
    fn budgets_are_per_publisher_and_refill() {
        let limits = OpenerLimits {
            new_sessions_burst: 3,
            new_session_interval: Duration::from_millis(200),
            ..OpenerLimits::default()
        };
        let mut budgets = SessionBudgets::new(&limits);
        let (flooder, other) = (
            DeviceId::new("flooder").unwrap_or_else(|e| panic!("{e}")),
            DeviceId::new("other").unwrap_or_else(|e| panic!("{e}")),
        );
        assert!((0..3).all(|_| budgets.admit(&flooder)));
        assert!(!budgets.admit(&flooder), "the burst is spent");
        assert!(budgets.admit(&other), "another publisher's budget is its own");
        std::thread::sleep(Duration::from_millis(450));
        assert!(budgets.admit(&flooder), "refilled");
    }

    #[test]
    fn the_budget_table_is_bounded_and_a_flooder_keeps_its_empty_budget() {
        let limits = OpenerLimits {
            new_sessions_burst: 1,
            new_session_interval: Duration::from_secs(3600),
            ..OpenerLimits::default()
        };
        let mut budgets = SessionBudgets::new(&limits);
        let flooder = DeviceId::new("flooder").unwrap_or_else(|e| panic!("{e}"));
        assert!(budgets.admit(&flooder));
        for i in 0..3 * MAX_BUDGETS {
            let id = DeviceId::new(&format!("p{i}")).unwrap_or_else(|e| panic!("{e}"));
            budgets.admit(&id);
            if i % 64 == 0 {
                assert!(!budgets.admit(&flooder), "reset by a flood of other publishers at {i}");
            }
            assert!(budgets.budgets.len() <= MAX_BUDGETS);
            assert!(budgets.order.len() <= 4 * MAX_BUDGETS + 1);
        }
    }
}
