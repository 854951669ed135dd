//! Prometheus text: fetching it (`GET /metrics`, as served by smqtt-broker and the Mosquitto plugin) and
//! reading values out of it, and waiting for a value.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};

use crate::wait::{wait_for, WAIT};

/// `GET /metrics` at `addr` over a plain TCP socket: the whole answer, headers included.
pub fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to the metrics at {addr}: {e}"));
    stream.set_read_timeout(Some(WAIT)).expect("set a read timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap_or_else(|e| panic!("send GET /metrics to {addr}: {e}"));
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap_or_else(|e| panic!("read the metrics from {addr}: {e}"));
    text
}

/// The value of the line that starts with `name` (labels included, e.g.
/// `smqtt_gate_refused_total{check="connect",reason="throttled"}`), if there is one.
pub fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

/// [`metric`], 0 when the line is absent (counters that have not been exported yet).
pub fn metric_or_zero(text: &str, name: &str) -> u64 {
    metric(text, name).unwrap_or(0)
}

/// The sum of every line that starts with `prefix` (e.g. all reasons of one check).
pub fn sum(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// `smqtt_gate_refused_total{check="<check>",reason="<reason>"}`, 0 when absent.
pub fn refused(text: &str, check: &str, reason: &str) -> u64 {
    metric_or_zero(text, &format!("smqtt_gate_refused_total{{check=\"{check}\",reason=\"{reason}\"}}"))
}

/// `smqtt_gate_accepted_total{check="<check>"}`, 0 when absent.
pub fn accepted(text: &str, check: &str) -> u64 {
    metric_or_zero(text, &format!("smqtt_gate_accepted_total{{check=\"{check}\"}}"))
}

/// Polls `text()` until the value of `name` satisfies `wanted` (absent counts as 0); returns that value. For
/// counters that show an event happened (a subscription accepted, a will refused).
pub fn wait_metric(
    what: &str,
    mut text: impl FnMut() -> String,
    name: &str,
    mut wanted: impl FnMut(u64) -> bool,
) -> u64 {
    wait_for(what, WAIT, || Some(metric_or_zero(&text(), name)).filter(|v| wanted(*v)))
}
