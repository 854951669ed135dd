//! Counters: accepted and refused decisions by check and reason, in Prometheus text exposition format
//! (rendered by `smqtt-metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

use smqtt_metrics::{Exposition, Kind};

use crate::refusal::RefusalReason;

/// Which decision a counter belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    Connect,
    Subscribe,
    Publish,
    Will,
}

const CHECKS: [(Check, &str); 4] =
    [(Check::Connect, "connect"), (Check::Subscribe, "subscribe"), (Check::Publish, "publish"), (Check::Will, "will")];
const REASONS: usize = RefusalReason::ALL.len();

fn reason_index(reason: RefusalReason) -> usize {
    RefusalReason::ALL.iter().position(|r| *r == reason).unwrap_or(0)
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    accepted: [AtomicU64; 4],
    sealed: AtomicU64,
    unenforced: AtomicU64,
    refused: [[AtomicU64; REASONS]; 4],
}

impl Metrics {
    pub(crate) fn accept(&self, check: Check) {
        self.accepted[check as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sealed(&self) {
        self.sealed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn unenforced(&self) {
        self.unenforced.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refuse(&self, check: Check, reason: RefusalReason) {
        self.refused[check as usize][reason_index(reason)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self, check: Check, reason: RefusalReason) -> u64 {
        self.refused[check as usize][reason_index(reason)].load(Ordering::Relaxed)
    }

    pub(crate) fn accepted(&self, check: Check) -> u64 {
        self.accepted[check as usize].load(Ordering::Relaxed)
    }

    /// `statement_at`: when the authority signed the newest statement of the epoch in force that the gate
    /// verified (0: none), so that an operator can alert when the feed stops (a held-back rotation).
    pub(crate) fn text(&self, enforcing: bool, epoch: u64, statement_at: u64) -> String {
        let mut out = Exposition::new();
        let mut accepted = out.family(
            "smqtt_gate_accepted_total",
            "Decisions that let a CONNECT, SUBSCRIBE, PUBLISH or will through.",
            Kind::Counter,
        );
        for (check, name) in CHECKS {
            accepted.sample(&[("check", name)], self.accepted(check));
        }
        let mut refused =
            out.family("smqtt_gate_refused_total", "Refused decisions by check and reason.", Kind::Counter);
        for (check, name) in CHECKS {
            for reason in RefusalReason::ALL {
                refused.sample(&[("check", name), ("reason", reason.as_str())], self.refused(check, reason));
            }
        }
        out.counter(
            "smqtt_gate_sealed_total",
            "Plaintext publishes sealed by the broker for legacy clients.",
            self.sealed.load(Ordering::Relaxed),
        )
        .counter(
            "smqtt_gate_unenforced_total",
            "Publishes let through unchecked (enforcement off or open topic).",
            self.unenforced.load(Ordering::Relaxed),
        )
        .gauge("smqtt_gate_enforcing", "Whether enforcement is on (1) or off for the whole gate (0).", enforcing)
        .gauge("smqtt_gate_min_epoch", "Oldest credential epoch accepted.", epoch)
        .gauge(
            "smqtt_gate_epoch_statement_issued_at",
            "When the authority signed the newest verified statement of the epoch in force (unix seconds; 0: \
             none). Alert when it stops moving: the feed is cut or held back.",
            statement_at,
        );
        out.finish()
    }
}
