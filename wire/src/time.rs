//! Wall-clock time as the protocol uses it: milliseconds since the Unix epoch.
//!
//! The formats and the protocol engine never read a clock themselves: callers pass a [`UnixTime`] in (from
//! [`UnixTime::now`] in applications, any value in tests and vectors).

/// A moment as milliseconds since 1970-01-01T00:00:00Z (envelope timestamps are these; credentials and
/// statements count whole seconds, [`UnixTime::as_secs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixTime {
    millis: u64,
}

impl UnixTime {
    /// The system clock now (the Unix epoch itself for a clock set before 1970).
    pub fn now() -> UnixTime {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        UnixTime { millis: u64::try_from(since.as_millis()).unwrap_or(u64::MAX) }
    }

    /// `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: u64) -> UnixTime {
        UnixTime { millis }
    }

    /// `secs` seconds after the Unix epoch.
    pub const fn from_secs(secs: u64) -> UnixTime {
        UnixTime { millis: secs.saturating_mul(1000) }
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// Whole seconds since the Unix epoch.
    pub const fn as_secs(self) -> u64 {
        self.millis / 1000
    }

    /// Milliseconds from `earlier` to `self`; zero if `earlier` is later (a clock set back).
    pub const fn millis_since(self, earlier: UnixTime) -> u64 {
        self.millis.saturating_sub(earlier.millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_saturate_and_never_go_negative() {
        let t = UnixTime::from_secs(1_800_000_000);
        assert_eq!((t.as_millis(), t.as_secs()), (1_800_000_000_000, 1_800_000_000));
        assert_eq!(UnixTime::from_secs(u64::MAX).as_millis(), u64::MAX);
        assert_eq!(t.millis_since(UnixTime::from_millis(t.as_millis() + 5)), 0);
        assert_eq!(UnixTime::from_millis(1500).millis_since(UnixTime::from_millis(500)), 1000);
        assert!(UnixTime::now() > t.min(UnixTime::from_secs(1_700_000_000)));
    }
}
