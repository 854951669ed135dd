//! `GET /metrics`: the gate's counters plus the broker's own (served by `smqtt-metrics`' responder).

use std::sync::atomic::Ordering;

use smqtt_gate::Gate;
use smqtt_metrics::Exposition;

use crate::guard::GuardMetrics;

/// The exposition: the gate's counters, the guard's counters and `smqtt_broker_up`.
pub(crate) fn text(gate: &Gate, guards: &GuardMetrics) -> String {
    let mut out = gate.metrics_text();
    out.push_str(&broker_text(guards));
    out
}

/// The broker's own families.
fn broker_text(guards: &GuardMetrics) -> String {
    let mut out = Exposition::new();
    out.counter(
        "smqtt_broker_protocol_errors_total",
        "Connections closed for protocol violations seen by the guard.",
        guards.protocol_errors.load(Ordering::Relaxed),
    )
    .counter("smqtt_broker_dropped_total", "Refused QoS 0 publishes dropped.", guards.dropped.load(Ordering::Relaxed))
    .counter(
        "smqtt_broker_quarantined_total",
        "Refused QoS 1/2 publishes acknowledged and discarded.",
        guards.quarantined.load(Ordering::Relaxed),
    )
    .counter(
        "smqtt_broker_publish_decided_inline_total",
        "PUBLISH decisions made on rumqttd's listener thread because the front door could not make them.",
        guards.decided_inline.load(Ordering::Relaxed),
    )
    .gauge("smqtt_broker_up", "The broker is running.", 1u8);
    out.finish()
}
