//! Publishing in bursts: publishes queue here and one task seals whatever is queued at once, under **one** batch
//! signature (`docs/wire.md` §6.6), while the next burst queues behind it.
//!
//! A lone message is taken as soon as it is queued and sealed alone (an ordinary signed envelope: no timer, no
//! waiting for company); under load the batch is what arrived while the previous one was being sealed and
//! handed over, so the signature's cost is shared by every message of the burst and subscribers verify one
//! signature per batch. Order is kept (one task, FIFO). Bounded: at most [`QUEUED`] messages wait here;
//! publishers wait for room (backpressure, never a drop).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use smqtt_abe::Policy;
use smqtt_session::{Outgoing, UnixTime};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::acks::Slot;
use super::mqtt::Mqtt;
use super::Publishing;
use crate::error::Error;

/// Messages queued for sealing before publishers wait.
pub(super) const QUEUED: usize = 1024;

/// One queued publish.
pub(super) struct Request {
    pub(super) topic: String,
    pub(super) policy: Policy,
    pub(super) payload: Vec<u8>,
    pub(super) qos: smqtt_session::QoS,
    pub(super) retain: bool,
    /// Resolves with the broker's acknowledgement, or with the failure that kept the message from it.
    pub(super) slot: Slot,
}

struct Shared {
    queue: Mutex<VecDeque<(Request, OwnedSemaphorePermit)>>,
    queued: Notify,
    room: Arc<Semaphore>,
    /// The last [`Outbox`] handle is gone: the task ends once the queue is empty.
    closed: AtomicBool,
}

/// The queue and its sealing task (which ends when the client stops or the last handle is dropped).
#[derive(Clone)]
pub(super) struct Outbox {
    shared: Arc<Shared>,
    _handle: Arc<Handle>,
}

/// Dropped with the last [`Outbox`] clone: tells the task.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.queued.notify_one();
    }
}

impl Outbox {
    /// Starts the sealing task on the current runtime.
    pub(super) fn start(mqtt: Mqtt, publishing: Arc<Mutex<Publishing>>) -> Outbox {
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            queued: Notify::new(),
            room: Arc::new(Semaphore::new(QUEUED)),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(seal_loop(Arc::clone(&shared), mqtt, publishing));
        Outbox { _handle: Arc::new(Handle(Arc::clone(&shared))), shared }
    }

    /// Queues `request`, waiting while [`QUEUED`] messages are queued already.
    ///
    /// # Errors
    /// [`Error::Closed`] once the client stopped.
    pub(super) async fn push(&self, request: Request) -> Result<(), Error> {
        let permit = Arc::clone(&self.shared.room).acquire_owned().await.map_err(|_| Error::Closed)?;
        self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner).push_back((request, permit));
        self.shared.queued.notify_one();
        Ok(())
    }
}

impl Outbox {
    /// Waits until everything queued so far has been handed over to the MQTT client (or failed).
    pub(super) async fn flush(&self) {
        let all = u32::try_from(QUEUED).unwrap_or(u32::MAX);
        // Every queued message holds a permit until it is handed over: all of them free means nothing waits.
        drop(self.shared.room.acquire_many(all).await);
    }
}

/// Takes everything queued (up to a batch), seals it as one batch, hands it over in order; again.
async fn seal_loop(shared: Arc<Shared>, mqtt: Mqtt, publishing: Arc<Mutex<Publishing>>) {
    loop {
        let batch: Vec<(Request, OwnedSemaphorePermit)> = {
            let mut queued = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let take = queued.len().min(smqtt_wire::MAX_BATCH);
            queued.drain(..take).collect()
        };
        if batch.is_empty() {
            if shared.closed.load(Ordering::Acquire) || mqtt.done.load(Ordering::Acquire) {
                shared.room.close();
                return;
            }
            // A push since the check above left a permit in Notify: no wake-up is lost. The timeout re-checks
            // whether the client stopped.
            tokio::select! {
                () = shared.queued.notified() => {}
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
            continue;
        }
        let sealed = seal(&publishing, &batch);
        for ((request, _permit), envelope) in batch.into_iter().zip(sealed) {
            match envelope {
                Ok(envelope) => {
                    let Request { topic, qos, retain, slot, .. } = request;
                    if mqtt.publish(&topic, qos, retain, envelope, slot).await.is_err() {
                        // The client stopped: what is still queued fails with it.
                        shared.room.close();
                        fail_queued(&shared);
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(topic = %request.topic, %error, "publish not sealed");
                    if let Some(tx) = request.slot {
                        let _ = tx.send(Err(error));
                    }
                }
            }
        }
    }
}

/// Resolves every queued publish's acknowledgement with [`Error::Closed`].
fn fail_queued(shared: &Shared) {
    for (request, _) in shared.queue.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
        if let Some(tx) = request.slot {
            let _ = tx.send(Err(Error::Closed));
        }
    }
}

/// Seals `batch` with one batch signature; a message the credential no longer allows (a renewal narrowed it)
/// fails alone, a sealing failure fails the batch.
fn seal(publishing: &Mutex<Publishing>, batch: &[(Request, OwnedSemaphorePermit)]) -> Vec<Result<Vec<u8>, Error>> {
    let Ok(mut publishing) = publishing.lock() else {
        return batch.iter().map(|_| Err(Error::Closed)).collect();
    };
    let allowed: Vec<bool> = batch.iter().map(|(r, _)| publishing.credential.may_publish(&r.topic)).collect();
    let outgoing: Vec<Outgoing<'_>> = batch
        .iter()
        .zip(&allowed)
        .filter(|(_, allowed)| **allowed)
        .map(|((r, _), _)| Outgoing { topic: &r.topic, policy: &r.policy, payload: &r.payload, retain: r.retain })
        .collect();
    let mut sealed = match publishing.sealer.seal_batch(&outgoing, UnixTime::now(), &mut rand_core::OsRng) {
        Ok(sealed) => sealed.into_iter().map(Ok).collect::<VecDeque<_>>(),
        Err(error) => {
            let error = Error::from(error);
            outgoing.iter().map(|_| Err(error.clone())).collect()
        }
    };
    batch
        .iter()
        .zip(allowed)
        .map(|((r, _), allowed)| {
            if allowed {
                sealed.pop_front().unwrap_or(Err(Error::Closed))
            } else {
                Err(Error::NotPermitted(r.topic.clone()))
            }
        })
        .collect()
}
