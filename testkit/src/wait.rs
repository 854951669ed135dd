//! Bounded waits for something observable — a condition, a value, the next event on a channel, a metric — in
//! place of fixed sleeps. Each one polls (every 20 ms) until its deadline and then panics naming what it waited
//! for. A fixed sleep stays right only where a test asserts that something does *not* happen within a window;
//! [`quiet`] is that window for a channel.

use std::future::Future;
use std::time::{Duration, Instant};

/// Upper bound of every wait for something that should happen promptly (a broker ready, a message delivered).
pub const WAIT: Duration = Duration::from_secs(10);

/// How often the waits poll.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it yields a value; panics after `timeout` naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// Polls `done` until it holds; panics after `timeout` naming `what`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    wait_for(what, timeout, || done().then_some(()));
}

/// [`wait_until`] from async code: sleeps on the runtime between checks (`done` itself may block briefly, e.g.
/// to scrape metrics over a socket).
pub async fn eventually(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] with an async check (e.g. "does the broker accept this CONNECT now?").
pub async fn eventually_async<F: Future<Output = bool>>(what: &str, timeout: Duration, mut done: impl FnMut() -> F) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// The next item on `rx` within [`WAIT`]; panics naming `what` otherwise (or when the channel closed).
pub async fn next<T>(rx: &mut tokio::sync::mpsc::Receiver<T>, what: &str) -> T {
    tokio::time::timeout(WAIT, rx.recv()).await.ok().flatten().unwrap_or_else(|| panic!("no {what} within {WAIT:?}"))
}

/// Nothing arrives on `rx` within `window`: a deliberate wait, for asserting that something does not happen.
pub async fn quiet<T: std::fmt::Debug>(rx: &mut tokio::sync::mpsc::Receiver<T>, window: Duration) {
    if let Ok(Some(seen)) = tokio::time::timeout(window, rx.recv()).await {
        panic!("expected nothing within {window:?}, got {seen:?}");
    }
}

/// Runs blocking work (the authority's blocking client, raw sockets, child processes) from async code, on a
/// thread where blocking is allowed.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| panic!("blocking task failed: {e}"))
}
