//! The gate's PUBLISH decisions, made by the front door before rumqttd's listener thread sees the packet.
//!
//! rumqttd runs all connections of a listener on one thread (a current-thread runtime). Deciding a PUBLISH
//! there (an Ed25519 verification, ≈ 36 µs; a broker-sealed legacy publish, an ABE encryption) stalls every other
//! connection of the listener: subscribers' links fall behind the router's bounded in-memory log, and rumqttd
//! then skips what it no longer holds, QoS 1 messages it had acknowledged included. So the front door, on a
//! runtime of its own with a worker per core, frames the client's bytes, decides each PUBLISH with the gate and
//! queues the decision on the connection's [`Lane`] before it forwards the packet; the guard on rumqttd's
//! thread takes the decision (checking it is for the same topic and payload length) instead of deciding
//! itself. The guard still decides what the front door could not (a v5 topic alias it could not resolve, a
//! packet it could not decode, a session it did not see in time): nothing passes undecided.
//!
//! Backpressure: a connection's front-door task decides one packet after the other and reads no more from
//! the client while it does, and its queued decisions hold at most [`MAX_PENDING_UNITS`] × [`BUDGET_UNIT`] bytes (then the task waits): a
//! publisher faster than the checks is slowed down through TCP, never dropped, and one publisher's checks
//! occupy one worker at a time, not the thread that moves every client's packets.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use rumqttd::protocol::{Packet, Protocol};
use smqtt_gate::{ClientSession, Gate, PublishDecision};
use tokio::sync::{Notify, Semaphore};

/// What decisions queued per connection may hold before the front door waits for the guard to take them, in
/// units of [`BUDGET_UNIT`] bytes (a decision costs at least one unit: at most this many decisions wait).
pub(crate) const MAX_PENDING_UNITS: usize = 1024;
/// Bytes per budget unit: a connection's queued decisions hold at most ≈ 1 MiB (topics, sealed payloads).
pub(crate) const BUDGET_UNIT: usize = 1024;
/// Largest topic alias accepted (as the guard).
const MAX_ALIAS: u16 = 4096;
/// Bytes of aliased topics kept per connection (as the guard).
const MAX_ALIAS_BYTES: usize = 1024 * 1024;

/// The lanes of the open front-door connections, by the id their header carries.
#[derive(Debug, Default)]
pub(crate) struct Lanes {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Lane>>>,
}

impl Lanes {
    /// A new lane, registered until the returned [`OpenLane`] is dropped.
    pub(crate) fn open(self: &Arc<Self>) -> OpenLane {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let lane = Arc::new(Lane::new());
        self.open.lock().unwrap_or_else(PoisonError::into_inner).insert(id, lane.clone());
        OpenLane { id, lane, lanes: self.clone() }
    }

    /// The lane of connection `id` (taken by its guard once: a second guard presenting the id gets nothing).
    pub(crate) fn claim(&self, id: u64) -> Option<Arc<Lane>> {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let lane = open.get(&id)?;
        (!lane.claimed.swap(true, Ordering::AcqRel)).then(|| lane.clone())
    }
}

/// A registered lane; unregistered on drop (the front-door connection ended).
#[derive(Debug)]
pub(crate) struct OpenLane {
    pub(crate) id: u64,
    pub(crate) lane: Arc<Lane>,
    lanes: Arc<Lanes>,
}

impl Drop for OpenLane {
    fn drop(&mut self) {
        self.lanes.open.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

/// What the guard made of the CONNECT.
#[derive(Debug, Clone)]
enum Login {
    Pending,
    Accepted(ClientSession),
    Refused,
}

/// What identifies a PUBLISH frame besides its topic: its first byte (type, QoS, retain, dup) and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameMeta {
    pub(crate) first: u8,
    pub(crate) len: usize,
}

/// A decision for the next PUBLISH of the connection (`None`: the guard decides).
#[derive(Debug)]
struct Verdict {
    topic: String,
    frame: FrameMeta,
    decision: Option<PublishDecision>,
}

impl Verdict {
    fn undecided(frame: FrameMeta) -> Verdict {
        Verdict { topic: String::new(), frame, decision: None }
    }

    /// What the verdict holds, in [`BUDGET_UNIT`]s, at most a quarter of [`MAX_PENDING_UNITS`].
    fn cost(&self) -> u32 {
        let held = self.topic.len()
            + match &self.decision {
                Some(PublishDecision::Replace(sealed)) => sealed.len(),
                Some(PublishDecision::Refuse(refusal)) => refusal.to_string().len(),
                _ => 0,
            };
        (1 + held / BUDGET_UNIT).min(MAX_PENDING_UNITS / 4) as u32
    }
}

/// One connection's channel from its front-door task to its guard.
#[derive(Debug)]
pub(crate) struct Lane {
    claimed: std::sync::atomic::AtomicBool,
    login: Mutex<Login>,
    login_changed: Notify,
    verdicts: Mutex<VecDeque<Verdict>>,
    room: Semaphore,
}

impl Lane {
    fn new() -> Lane {
        Lane {
            claimed: std::sync::atomic::AtomicBool::new(false),
            login: Mutex::new(Login::Pending),
            login_changed: Notify::new(),
            verdicts: Mutex::new(VecDeque::new()),
            room: Semaphore::new(MAX_PENDING_UNITS),
        }
    }

    /// The guard accepted the CONNECT as `session`.
    pub(crate) fn accepted(&self, session: &ClientSession) {
        *self.login.lock().unwrap_or_else(PoisonError::into_inner) = Login::Accepted(session.clone());
        self.login_changed.notify_waiters();
    }

    /// The guard refused the CONNECT.
    pub(crate) fn refused(&self) {
        *self.login.lock().unwrap_or_else(PoisonError::into_inner) = Login::Refused;
        self.login_changed.notify_waiters();
    }

    /// The guard's side: the decision for the PUBLISH it is reading (on `topic`, `payload_len` bytes), if the
    /// front door made one. `Err(())`: the front door's packet was another one (the two disagree on the stream).
    #[allow(clippy::result_unit_err)]
    pub(crate) fn take(&self, topic: &str, frame: FrameMeta) -> Result<Option<PublishDecision>, ()> {
        let Some(verdict) = self.verdicts.lock().unwrap_or_else(PoisonError::into_inner).pop_front() else {
            return Ok(None);
        };
        self.room.add_permits(verdict.cost() as usize);
        if verdict.frame != frame || (verdict.decision.is_some() && verdict.topic != topic) {
            return Err(());
        }
        Ok(verdict.decision)
    }

    async fn session(&self, wait: Duration) -> Option<ClientSession> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.login_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match &*self.login.lock().unwrap_or_else(PoisonError::into_inner) {
                Login::Accepted(session) => return Some(session.clone()),
                Login::Refused => return None,
                Login::Pending => {}
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return None;
            }
        }
    }

    /// Queues `verdict` once there is room for it; returns its cost.
    async fn push(&self, verdict: Verdict) -> u32 {
        let cost = verdict.cost();
        // The semaphore is never closed: acquiring fails only if it were.
        if let Ok(permit) = self.room.acquire_many(cost).await {
            permit.forget();
        }
        self.verdicts.lock().unwrap_or_else(PoisonError::into_inner).push_back(verdict);
        cost
    }
}

/// The front-door side of one connection: decides each PUBLISH frame before it is forwarded.
pub(crate) struct Checker<P> {
    codec: P,
    gate: Arc<Gate>,
    lane: Arc<Lane>,
    max_packet: usize,
    login_wait: Duration,
    connect_forwarded: bool,
    login_seen: bool,
    session: Option<ClientSession>,
    aliases: HashMap<u16, String>,
    alias_bytes: usize,
}

impl<P: Protocol> Checker<P> {
    pub(crate) fn new(codec: P, gate: Arc<Gate>, lane: Arc<Lane>, max_packet: usize, login_wait: Duration) -> Self {
        Checker {
            codec,
            gate,
            lane,
            max_packet,
            login_wait,
            connect_forwarded: false,
            login_seen: false,
            session: None,
            aliases: HashMap::new(),
            alias_bytes: 0,
        }
    }

    /// Whether deciding `frame` first waits for the guard's login decision (so the CONNECT must be written first).
    pub(crate) fn awaits_login(&self, frame: &[u8]) -> bool {
        frame.first().is_some_and(|b| b >> 4 == 3) && self.connect_forwarded && !self.login_seen
    }

    /// Called for every complete frame, in order, before it is forwarded; returns the budget units its
    /// decision holds until the guard takes it (0: none queued).
    pub(crate) async fn before_forwarding(&mut self, frame: &[u8]) -> u32 {
        match frame.first().map(|b| b >> 4) {
            Some(1) => {
                self.connect_forwarded = true;
                0
            }
            Some(3) => {
                // Waited for once: a session not seen in time leaves every decision to the guard.
                if self.connect_forwarded && !self.login_seen {
                    self.login_seen = true;
                    self.session = self.lane.session(self.login_wait).await;
                }
                let meta = FrameMeta { first: frame[0], len: frame.len() };
                let verdict = match self.session.clone() {
                    Some(session) => self.decide(&session, frame, meta),
                    None => Verdict::undecided(meta),
                };
                self.lane.push(verdict).await
            }
            _ => 0,
        }
    }

    fn decide(&mut self, session: &ClientSession, frame: &[u8], meta: FrameMeta) -> Verdict {
        let undecided = Verdict::undecided(meta);
        let Some((qos, _)) = crate::guard::peek_publish(frame) else { return undecided };
        let mut bytes = BytesMut::from(frame);
        let Ok(Packet::Publish(publish, props)) = self.codec.read_mut(&mut bytes, self.max_packet) else {
            return undecided;
        };
        let Ok(named) = std::str::from_utf8(&publish.topic) else { return undecided };
        let topic = match props.and_then(|p| p.topic_alias) {
            None => named.to_owned(),
            Some(alias) if alias == 0 || alias > MAX_ALIAS => return undecided,
            Some(alias) if named.is_empty() => match self.aliases.get(&alias) {
                Some(topic) => topic.clone(),
                None => return undecided,
            },
            Some(alias) => {
                self.alias_bytes += named.len();
                if self.alias_bytes > MAX_ALIAS_BYTES {
                    return undecided;
                }
                self.aliases.insert(alias, named.to_owned());
                named.to_owned()
            }
        };
        let decision = self.gate.check_publish(session, &topic, qos, publish.retain, &publish.payload);
        Verdict { topic, frame: meta, decision: Some(decision) }
    }
}

/// The length of the complete MQTT frame at the start of `buffer`: `Ok(None)` while incomplete, `Err(())` for a
/// malformed length or a frame whose remaining length exceeds `max_remaining`.
#[allow(clippy::result_unit_err)]
pub(crate) fn frame_len(buffer: &[u8], max_remaining: usize) -> Result<Option<usize>, ()> {
    let mut remaining = 0usize;
    for i in 0..4 {
        let Some(&byte) = buffer.get(1 + i) else { return Ok(None) };
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if remaining > max_remaining {
                return Err(());
            }
            let total = 2 + i + remaining;
            return Ok((buffer.len() >= total).then_some(total));
        }
    }
    Err(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_measured_and_bounded() {
        assert_eq!(frame_len(&[], 100), Ok(None));
        assert_eq!(frame_len(&[0x30], 100), Ok(None));
        assert_eq!(frame_len(&[0xc0, 0x00], 100), Ok(Some(2)));
        assert_eq!(frame_len(&[0x30, 3, 0, 1], 100), Ok(None));
        assert_eq!(frame_len(&[0x30, 3, 0, 1, b'a', 0xff], 100), Ok(Some(5)));
        // 200 = 0xc8 0x01.
        assert_eq!(frame_len(&[0x30, 0xc8, 0x01], 300), Ok(None));
        assert_eq!(frame_len(&[0x30, 0xc8, 0x01], 199), Err(()));
        assert_eq!(frame_len(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], usize::MAX), Err(()));
    }

    #[test]
    fn a_lane_is_claimed_once_and_unregistered_on_drop() {
        let lanes = Arc::new(Lanes::default());
        let open = lanes.open();
        assert!(lanes.claim(open.id).is_some());
        assert!(lanes.claim(open.id).is_none(), "a second guard with the same id gets nothing");
        let id = open.id;
        drop(open);
        assert!(lanes.claim(id).is_none());
        assert!(lanes.claim(id + 1000).is_none());
    }

    #[tokio::test]
    async fn the_guard_refuses_a_decision_for_another_packet() {
        let lane = Lane::new();
        let meta = FrameMeta { first: 0x30, len: 20 };
        let verdict =
            |topic: &str, frame| Verdict { topic: topic.to_owned(), frame, decision: Some(PublishDecision::Accept) };
        lane.push(verdict("plant/a", meta)).await;
        lane.push(verdict("plant/a", meta)).await;
        lane.push(Verdict::undecided(meta)).await;
        lane.push(verdict("plant/a", meta)).await;
        lane.push(verdict("plant/a", meta)).await;
        assert!(matches!(lane.take("plant/a", meta), Ok(Some(PublishDecision::Accept))));
        assert_eq!(lane.take("plant/b", meta).map(|d| d.is_some()), Err(()), "another topic");
        assert!(matches!(lane.take("plant/x", meta), Ok(None)), "undecided: the guard decides");
        let retained = FrameMeta { first: 0x31, ..meta };
        assert_eq!(lane.take("plant/a", retained).map(|d| d.is_some()), Err(()), "another first byte");
        let longer = FrameMeta { len: 21, ..meta };
        assert_eq!(lane.take("plant/a", longer).map(|d| d.is_some()), Err(()), "another length");
        assert!(matches!(lane.take("plant/x", meta), Ok(None)), "nothing queued: the guard decides");
        assert_eq!(lane.room.available_permits(), MAX_PENDING_UNITS, "every taken decision gives its room back");
    }
}
