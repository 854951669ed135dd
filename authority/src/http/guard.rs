//! Per-client rate limiting (the [`RateLimiter`](super::RateLimiter) of each remote address) and request
//! metrics, as middleware.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use smqtt_metrics::{Exposition, Kind};

use super::error::ApiError;
use super::AppState;

/// Middleware: 429 with a JSON error once a client (IPv4 address, IPv6 /64) exhausts its bucket.
pub(super) async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(addr)| addr.ip());
    if !state.limiter.allow(client) {
        return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; slow down")
            .into_response();
    }
    next.run(request).await
}

/// Request counters by route and status, rendered in the Prometheus text format.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<HashMap<(String, String, u16), u64>>,
    latency_micros: Mutex<HashMap<String, (u64, u64)>>,
    keys_issued: AtomicU64,
}

impl Metrics {
    /// Counts one issued key.
    pub fn key_issued(&self) {
        self.keys_issued.fetch_add(1, Ordering::Relaxed);
    }

    fn record(&self, route: &str, method: &str, status: u16, micros: u64) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry((route.to_owned(), method.to_owned(), status)).or_insert(0) += 1;
        }
        if let Ok(mut latency) = self.latency_micros.lock() {
            let slot = latency.entry(route.to_owned()).or_insert((0, 0));
            slot.0 += micros;
            slot.1 += 1;
        }
    }

    /// The Prometheus exposition, with `epoch` as a gauge.
    pub fn render(&self, epoch: Option<u64>) -> String {
        let mut out = Exposition::new();
        let mut requests =
            out.family("smqtt_authority_requests_total", "HTTP requests by route, method and status.", Kind::Counter);
        if let Ok(rows) = self.requests.lock() {
            let mut rows: Vec<_> = rows.iter().collect();
            rows.sort();
            for ((route, method, status), count) in rows {
                requests.sample(&[("route", route), ("method", method), ("status", &status.to_string())], *count);
            }
        }
        let mut seconds =
            out.family("smqtt_authority_request_seconds", "Time spent answering, by route.", Kind::Summary);
        if let Ok(rows) = self.latency_micros.lock() {
            let mut rows: Vec<_> = rows.iter().collect();
            rows.sort();
            for (route, (sum, count)) in rows {
                seconds.summary(&[("route", route)], *sum as f64 / 1e6, *count);
            }
        }
        out.counter(
            "smqtt_authority_keys_issued_total",
            "Attribute keys issued.",
            self.keys_issued.load(Ordering::Relaxed),
        );
        if let Some(epoch) = epoch {
            out.gauge("smqtt_authority_epoch", "The current epoch.", epoch);
        }
        out.finish()
    }
}

/// Middleware: counts every answer by matched route (unmatched paths count as `other`, so that scanning random
/// paths cannot grow the table).
pub(super) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("other", MatchedPath::as_str).to_owned();
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    state.metrics.record(&route, &method, response.status().as_u16(), micros);
    response
}
