//! `GET /metrics`: the gate's counters plus the broker's own, over a minimal HTTP/1.1 responder (one thread,
//! one request per connection, bounded reads with a timeout).

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use smqtt_gate::Gate;

use crate::guard::GuardMetrics;
use crate::Error;

/// The exposition: the gate's counters, `smqtt_broker_up` and the guard's counters.
pub(crate) fn text(gate: &Gate, guards: &GuardMetrics) -> String {
    let mut out = gate.metrics_text();
    let counters = [
        (
            "smqtt_broker_protocol_errors_total",
            "Connections closed for protocol violations seen by the guard.",
            &guards.protocol_errors,
        ),
        ("smqtt_broker_dropped_total", "Refused QoS 0 publishes dropped.", &guards.dropped),
        (
            "smqtt_broker_quarantined_total",
            "Refused QoS 1/2 publishes acknowledged and discarded.",
            &guards.quarantined,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Ordering::Relaxed));
    }
    out.push_str("# HELP smqtt_broker_up The broker is running.\n# TYPE smqtt_broker_up gauge\nsmqtt_broker_up 1\n");
    out
}

fn answer(mut stream: TcpStream, gate: &Gate, guards: &GuardMetrics) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut request = [0u8; 2048];
    let mut filled = 0;
    while filled < request.len() {
        let n = stream.read(&mut request[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
        if request[..filled].windows(4).any(|w| w == b"\r\n\r\n") || request[..filled].contains(&b'\n') {
            break;
        }
    }
    let line = request[..filled].split(|b| *b == b'\n').next().unwrap_or_default();
    let (status, body) = if line.starts_with(b"GET /metrics ") || line.starts_with(b"GET /metrics\r") {
        ("200 OK", text(gate, guards))
    } else if line.starts_with(b"GET /healthz ") {
        ("200 OK", "ok\n".to_owned())
    } else {
        ("404 Not Found", "not found\n".to_owned())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

/// Binds `addr` and answers on a thread of its own; returns the bound address.
pub(crate) fn serve(addr: SocketAddr, gate: Arc<Gate>, guards: Arc<GuardMetrics>) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind(addr).map_err(|e| Error::Bind { addr, message: e.to_string() })?;
    let bound = listener.local_addr().map_err(|e| Error::Bind { addr, message: e.to_string() })?;
    std::thread::Builder::new()
        .name("smqtt-metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = answer(stream, &gate, &guards) {
                    tracing::debug!(error = %e, "metrics request failed");
                }
            }
        })
        .map_err(|e| Error::Thread(e.to_string()))?;
    Ok(bound)
}
