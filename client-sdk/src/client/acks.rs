//! Which of our PUBLISH and SUBSCRIBE requests the broker acknowledged.
//!
//! rumqttc reports an outgoing PUBLISH (or SUBSCRIBE) with its packet id in the order the requests were handed
//! to it, and the broker's PUBACK / PUBCOMP (SUBACK) by packet id. So every request the SDK hands over queues one
//! slot here, in the same order (see [`Acks::handing_over`]); the outgoing event binds the oldest queued slot to
//! its packet id, the acknowledgement resolves it. A slot resolves `Ok` only on the broker's acknowledgement (for
//! QoS 0: once the packet was written to the socket); "unknown" never reads as "acknowledged" (a sender may
//! retry, at the risk of a duplicate).
//!
//! Reconnects follow what rumqttc does with its requests. When a live connection fails, rumqttc moves what was
//! in flight and every request still queued to its pending list, re-sent after a CONNACK that kept the session
//! and dropped after one that did not; a failed connection *attempt* leaves its queue as it is. So: a lost live
//! connection fails the bound slots at once unless the session is kept (`clean_session = false`), and marks the
//! queued ones; a CONNACK without a kept session fails the bound and the marked ones (requests queued after the
//! loss are sent on the new connection and keep their slots, in order). Bounded: slots exist only for requests
//! in rumqttc's bounded queue and in flight (at most 65 535 packet ids).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::Error;

/// What an acknowledgement resolves to.
pub(super) type Outcome = Result<(), Error>;
/// A slot: `None` for requests nobody waits on (they still keep the order).
pub(super) type Slot = Option<oneshot::Sender<Outcome>>;

#[derive(Default)]
struct Pending {
    queued: VecDeque<Slot>,
    bound: HashMap<u16, Slot>,
    /// How many of the oldest queued slots rumqttc drops unless the next CONNACK keeps the session.
    lost_without_session: usize,
}

impl Pending {
    /// The outgoing packet `pkid` (0 for QoS 0): binds the oldest queued slot, unless `pkid` is already bound
    /// (rumqttc retransmitting it after a reconnect that kept the session).
    fn outgoing(&mut self, pkid: u16) {
        if pkid != 0 && self.bound.contains_key(&pkid) {
            return;
        }
        let Some(slot) = self.queued.pop_front() else { return };
        if pkid == 0 {
            resolve(slot, Ok(()));
        } else {
            self.bound.insert(pkid, slot);
        }
    }

    fn acknowledged(&mut self, pkid: u16, outcome: Outcome) {
        if let Some(slot) = self.bound.remove(&pkid) {
            resolve(slot, outcome);
        }
    }

    fn fail_queued(&mut self, how_many: usize, why: &str) {
        for slot in self.queued.drain(..how_many.min(self.queued.len())) {
            resolve(slot, Err(Error::NotAcknowledged(why.to_owned())));
        }
    }

    fn fail_bound(&mut self, why: &str) {
        for (_, slot) in self.bound.drain() {
            resolve(slot, Err(Error::NotAcknowledged(why.to_owned())));
        }
    }
}

fn resolve(slot: Slot, outcome: Outcome) {
    if let Some(tx) = slot {
        let _ = tx.send(outcome);
    }
}

/// Acknowledgement bookkeeping of one client's publishes and subscriptions.
#[derive(Default)]
pub(super) struct Acks {
    publishes: Mutex<Pending>,
    subscribes: Mutex<Pending>,
    /// Whether the connection is up (a CONNACK came, no failure since).
    up: std::sync::atomic::AtomicBool,
}

/// Which request kind.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Publish,
    Subscribe,
}

impl Acks {
    fn pending(&self, kind: Kind) -> MutexGuard<'_, Pending> {
        let lock = match kind {
            Kind::Publish => &self.publishes,
            Kind::Subscribe => &self.subscribes,
        };
        lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a slot and runs `hand_over` (a non-blocking hand-over to rumqttc) under the same lock, so slots
    /// and requests keep one order; when `hand_over` fails the slot is taken back.
    pub(super) fn handing_over<T>(
        &self,
        kind: Kind,
        slot: Slot,
        hand_over: impl FnOnce() -> Result<(), T>,
    ) -> Result<(), (T, Slot)> {
        let mut pending = self.pending(kind);
        pending.queued.push_back(slot);
        hand_over().map_err(|e| (e, pending.queued.pop_back().flatten()))
    }

    /// Queues a slot for a request about to be handed over by its kind's only sender (which then may wait for
    /// room in rumqttc's queue outside the lock: nobody else can slip a request in between).
    pub(super) fn book(&self, kind: Kind, slot: Slot) {
        self.pending(kind).queued.push_back(slot);
    }

    /// Takes back the slot [`book`](Self::book) queued last, when its request could not be handed over.
    pub(super) fn unbook_last(&self, kind: Kind) -> Slot {
        self.pending(kind).queued.pop_back().flatten()
    }

    pub(super) fn outgoing(&self, kind: Kind, pkid: u16) {
        self.pending(kind).outgoing(pkid);
    }

    pub(super) fn acknowledged(&self, kind: Kind, pkid: u16, outcome: Outcome) {
        self.pending(kind).acknowledged(pkid, outcome);
    }

    /// The connection (or an attempt at it) failed: see the module docs.
    pub(super) fn connection_lost(&self, session_kept: bool, why: &str) {
        if !self.up.swap(false, std::sync::atomic::Ordering::AcqRel) {
            return; // an attempt: rumqttc keeps its queue as it is
        }
        for kind in [Kind::Publish, Kind::Subscribe] {
            let mut pending = self.pending(kind);
            pending.lost_without_session = pending.queued.len();
            if !session_kept {
                pending.fail_bound(why);
            }
        }
    }

    /// A CONNACK: without a session present, nothing from before the loss will be sent again.
    pub(super) fn connected(&self, session_present: bool) {
        self.up.store(true, std::sync::atomic::Ordering::Release);
        for kind in [Kind::Publish, Kind::Subscribe] {
            let mut pending = self.pending(kind);
            let lost = std::mem::take(&mut pending.lost_without_session);
            if !session_present {
                let why = "the connection was lost and the broker did not keep the session";
                pending.fail_bound(why);
                pending.fail_queued(lost, why);
            }
        }
    }

    /// The client stopped: nothing is sent or acknowledged any more.
    pub(super) fn stopped(&self) {
        self.up.store(false, std::sync::atomic::Ordering::Release);
        for kind in [Kind::Publish, Kind::Subscribe] {
            let mut pending = self.pending(kind);
            pending.fail_bound("the MQTT client stopped");
            pending.fail_queued(usize::MAX, "the MQTT client stopped");
        }
    }
}

/// The broker's acknowledgement of one publish or subscription, to wait for.
#[must_use = "an acknowledgement that is not waited for says nothing"]
#[derive(Debug)]
pub struct Acknowledgement {
    rx: oneshot::Receiver<Outcome>,
}

impl Acknowledgement {
    pub(super) fn channel() -> (oneshot::Sender<Outcome>, Acknowledgement) {
        let (tx, rx) = oneshot::channel();
        (tx, Acknowledgement { rx })
    }

    /// Waits up to `timeout` for the broker's acknowledgement: PUBACK (QoS 1), PUBCOMP (QoS 2), the packet
    /// written to the socket (QoS 0), SUBACK (subscriptions).
    ///
    /// # Errors
    /// [`Error::NotAcknowledged`] when the connection failed first or `timeout` passed (the message may or may
    /// not have arrived); [`Error::PublishRefused`] / [`Error::SubscribeRefused`] when the broker said no.
    pub async fn wait(self, timeout: Duration) -> Result<(), Error> {
        match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Error::NotAcknowledged("the MQTT client stopped".into())),
            Err(_) => Err(Error::NotAcknowledged(format!("no acknowledgement within {timeout:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(acks: &Acks, kind: Kind) -> Acknowledgement {
        let (tx, ack) = Acknowledgement::channel();
        acks.handing_over(kind, Some(tx), || Ok::<(), ()>(())).map_err(|_| ()).expect("handed over");
        ack
    }

    async fn outcome(ack: Acknowledgement) -> Result<(), Error> {
        ack.wait(Duration::from_millis(50)).await
    }

    #[tokio::test]
    async fn acknowledgements_resolve_in_request_order_by_packet_id() {
        let acks = Acks::default();
        let (first, second, third) =
            (waiting(&acks, Kind::Publish), waiting(&acks, Kind::Publish), waiting(&acks, Kind::Publish));
        acks.outgoing(Kind::Publish, 7);
        acks.outgoing(Kind::Publish, 0); // the second was QoS 0: written is all it gets
        acks.outgoing(Kind::Publish, 9);
        acks.acknowledged(Kind::Publish, 9, Err(Error::PublishRefused("NotAuthorized".into())));
        acks.outgoing(Kind::Publish, 7); // a retransmission binds nothing new
        acks.acknowledged(Kind::Publish, 7, Ok(()));
        assert!(outcome(first).await.is_ok());
        assert!(outcome(second).await.is_ok());
        assert!(matches!(outcome(third).await, Err(Error::PublishRefused(_))));
    }

    #[tokio::test]
    async fn a_lost_connection_never_reads_as_acknowledged() {
        let acks = Acks::default();
        acks.connected(false);
        let (sent, queued) = (waiting(&acks, Kind::Publish), waiting(&acks, Kind::Publish));
        acks.outgoing(Kind::Publish, 3);
        acks.connection_lost(false, "connection reset");
        acks.acknowledged(Kind::Publish, 3, Ok(())); // too late: already failed
        assert!(matches!(outcome(sent).await, Err(Error::NotAcknowledged(_))));
        // Queued during the outage: sent on the new connection, in order, after the dropped one failed.
        let later = waiting(&acks, Kind::Publish);
        acks.connection_lost(false, "connection refused"); // an attempt: changes nothing
        acks.connected(false);
        assert!(matches!(outcome(queued).await, Err(Error::NotAcknowledged(_))));
        acks.outgoing(Kind::Publish, 1);
        acks.acknowledged(Kind::Publish, 1, Ok(()));
        assert!(outcome(later).await.is_ok());

        // A kept session: what was in flight and queued is sent again after the reconnect, in order.
        let (kept, requeued) = (waiting(&acks, Kind::Publish), waiting(&acks, Kind::Publish));
        let dropped = waiting(&acks, Kind::Subscribe);
        acks.outgoing(Kind::Publish, 4);
        acks.outgoing(Kind::Subscribe, 5);
        acks.connection_lost(true, "connection reset");
        acks.connected(true);
        acks.outgoing(Kind::Publish, 4); // retransmitted
        acks.outgoing(Kind::Publish, 6);
        acks.acknowledged(Kind::Publish, 4, Ok(()));
        acks.acknowledged(Kind::Publish, 6, Ok(()));
        assert!(outcome(kept).await.is_ok());
        assert!(outcome(requeued).await.is_ok());
        // …unless the broker says it kept nothing.
        acks.connection_lost(true, "connection reset");
        acks.connected(false);
        assert!(matches!(outcome(dropped).await, Err(Error::NotAcknowledged(_))));
    }

    #[tokio::test]
    async fn a_failed_hand_over_takes_its_slot_back() {
        let acks = Acks::default();
        let (tx, refused) = Acknowledgement::channel();
        let back = acks.handing_over(Kind::Publish, Some(tx), || Err("full"));
        assert!(matches!(back, Err(("full", Some(_)))));
        let next = waiting(&acks, Kind::Publish);
        acks.outgoing(Kind::Publish, 0);
        assert!(outcome(next).await.is_ok());
        drop(back);
        assert!(matches!(outcome(refused).await, Err(Error::NotAcknowledged(_))));
    }
}
