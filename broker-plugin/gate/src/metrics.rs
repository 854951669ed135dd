//! Counters: accepted and refused decisions by check and reason, in Prometheus text exposition format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

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
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP smqtt_gate_accepted_total Decisions that let a CONNECT, SUBSCRIBE, PUBLISH or will through.\n",
        );
        out.push_str("# TYPE smqtt_gate_accepted_total counter\n");
        for (check, name) in CHECKS {
            let _ = writeln!(out, "smqtt_gate_accepted_total{{check=\"{name}\"}} {}", self.accepted(check));
        }
        out.push_str("# HELP smqtt_gate_refused_total Refused decisions by check and reason.\n");
        out.push_str("# TYPE smqtt_gate_refused_total counter\n");
        for (check, name) in CHECKS {
            for reason in RefusalReason::ALL {
                let _ = writeln!(
                    out,
                    "smqtt_gate_refused_total{{check=\"{name}\",reason=\"{}\"}} {}",
                    reason.as_str(),
                    self.refused(check, reason)
                );
            }
        }
        out.push_str("# HELP smqtt_gate_sealed_total Plaintext publishes sealed by the broker for legacy clients.\n");
        out.push_str("# TYPE smqtt_gate_sealed_total counter\n");
        let _ = writeln!(out, "smqtt_gate_sealed_total {}", self.sealed.load(Ordering::Relaxed));
        out.push_str(
            "# HELP smqtt_gate_unenforced_total Publishes let through unchecked (enforcement off or open topic).\n",
        );
        out.push_str("# TYPE smqtt_gate_unenforced_total counter\n");
        let _ = writeln!(out, "smqtt_gate_unenforced_total {}", self.unenforced.load(Ordering::Relaxed));
        out.push_str("# HELP smqtt_gate_enforcing Whether enforcement is on (1) or off for the whole gate (0).\n");
        out.push_str("# TYPE smqtt_gate_enforcing gauge\n");
        let _ = writeln!(out, "smqtt_gate_enforcing {}", u8::from(enforcing));
        out.push_str("# HELP smqtt_gate_min_epoch Oldest credential epoch accepted.\n");
        out.push_str("# TYPE smqtt_gate_min_epoch gauge\n");
        let _ = writeln!(out, "smqtt_gate_min_epoch {epoch}");
        out.push_str(
            "# HELP smqtt_gate_epoch_statement_issued_at When the authority signed the newest verified statement of \
             the epoch in force (unix seconds; 0: none). Alert when it stops moving: the feed is cut or held back.\n",
        );
        out.push_str("# TYPE smqtt_gate_epoch_statement_issued_at gauge\n");
        let _ = writeln!(out, "smqtt_gate_epoch_statement_issued_at {statement_at}");
        out
    }
}
