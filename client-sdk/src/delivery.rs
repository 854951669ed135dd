//! From the MQTT event loop to the subscriber's stream: deliveries that open in microseconds (an unsigned
//! envelope under a cached session key) are opened on the event-loop task itself; everything that may take a
//! signature check or a pairing goes to an opener thread of its own, so the event loop keeps polling.
//!
//! The thread serves its queue **fairly**: one lane per publisher an envelope names (unverified — naming
//! somebody else only puts an impostor in that publisher's lane, behind nobody but itself), lanes taken in
//! turn, so a publisher flooding with expensive envelopes delays another's message by at most one of its own
//! per turn. Order is kept per publisher (MQTT orders per publisher anyway); a renewed key is installed only
//! after every delivery handed on before it (the queue is cut into phases at each install). The queue is
//! bounded in deliveries and in bytes: a full queue holds the event loop back (and with it the broker's flow
//! control) instead of growing.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use smqtt_abe::UserKey;
use smqtt_session::{Message, MessageError, Opener, QoS, UnixTime};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::error::{Cause, Error};

/// What subscribers receive: each delivered publish, opened or refused.
pub type Delivery = Result<Message, MessageError>;

/// Deliveries (and key installs) queued for the opener thread before the event loop waits.
const QUEUE: usize = 1024;
/// Payload bytes queued for the opener thread before the event loop waits, in KiB.
const QUEUE_KIB: usize = 64 * 1024;
/// Opened deliveries buffered for the subscriber.
const STREAM: usize = 256;

/// A delivered publish waiting for the opener thread, holding its share of the queue's bounds.
struct Publish {
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
    retain: bool,
    _slots: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

/// Deliveries handed on between two key installs, one lane per claimed publisher.
#[derive(Default)]
struct Phase {
    lanes: HashMap<String, VecDeque<Publish>>,
    /// Lanes with something queued, in the order they are served next.
    turn: VecDeque<String>,
    /// Installed once every delivery of this phase was opened.
    then: Option<(Box<UserKey>, u64)>,
}

enum Work {
    Publish(Publish),
    Key(Box<UserKey>, u64),
}

/// The thread's queue: phases, oldest first; deliveries go into the newest.
struct Queue {
    phases: VecDeque<Phase>,
    /// No more deliveries will come: every pipeline handle is gone.
    closed: bool,
}

impl Queue {
    fn newest(&mut self) -> &mut Phase {
        if self.phases.is_empty() {
            self.phases.push_back(Phase::default());
        }
        let last = self.phases.len() - 1;
        &mut self.phases[last]
    }

    fn push(&mut self, lane: String, publish: Publish) {
        let phase = self.newest();
        let queue = phase.lanes.entry(lane.clone()).or_default();
        if queue.is_empty() {
            phase.turn.push_back(lane);
        }
        queue.push_back(publish);
    }

    fn push_key(&mut self, user_key: Box<UserKey>, epoch: u64) {
        self.newest().then = Some((user_key, epoch));
        self.phases.push_back(Phase::default());
    }

    /// The next piece of work: the oldest phase's next lane in turn, else its key, else nothing yet.
    fn pop(&mut self) -> Option<Work> {
        loop {
            let phase = self.phases.front_mut()?;
            if let Some(lane) = phase.turn.pop_front() {
                let queue = phase.lanes.get_mut(&lane)?;
                let publish = queue.pop_front();
                if queue.is_empty() {
                    phase.lanes.remove(&lane);
                } else {
                    phase.turn.push_back(lane);
                }
                return publish.map(Work::Publish);
            }
            if let Some((user_key, epoch)) = phase.then.take() {
                self.phases.pop_front();
                return Some(Work::Key(user_key, epoch));
            }
            // An empty phase without a key is the newest one (phases are cut only by installs): wait for more.
            if self.phases.len() == 1 {
                return None;
            }
            self.phases.pop_front();
        }
    }
}

/// The opener and the queue, shared by the event loop (quick deliveries) and the opener thread.
struct Shared {
    opener: Mutex<Opener>,
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Items queued and not yet finished (delivered or installed).
    pending: AtomicUsize,
    /// The opener thread has ended (the subscriber dropped its stream).
    thread_gone: AtomicBool,
    slots: Arc<Semaphore>,
    kib: Arc<Semaphore>,
}

impl Shared {
    fn opener(&self) -> MutexGuard<'_, Opener> {
        // `Opener::open` does not panic; if it ever did, its state is still consistent per message.
        self.opener.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Closes the queue when the last pipeline handle is dropped, so the thread ends.
struct Inlet(Arc<Shared>);

impl Drop for Inlet {
    fn drop(&mut self) {
        self.0.queue().closed = true;
        self.0.ready.notify_all();
    }
}

/// The event loop's end of the pipeline (cloned into every poll loop and the client).
#[derive(Clone)]
pub(crate) struct Pipeline {
    shared: Arc<Shared>,
    _inlet: Arc<Inlet>,
    to_stream: mpsc::Sender<Delivery>,
}

impl Pipeline {
    /// Starts the opener thread; returns the pipeline and the subscriber's end of the stream.
    pub(crate) fn start(opener: Opener) -> Result<(Pipeline, mpsc::Receiver<Delivery>), Error> {
        let shared = Arc::new(Shared {
            opener: Mutex::new(opener),
            queue: Mutex::new(Queue { phases: VecDeque::new(), closed: false }),
            ready: Condvar::new(),
            pending: AtomicUsize::new(0),
            thread_gone: AtomicBool::new(false),
            slots: Arc::new(Semaphore::new(QUEUE)),
            kib: Arc::new(Semaphore::new(QUEUE_KIB)),
        });
        let (to_stream, stream) = mpsc::channel(STREAM);
        let (thread_shared, thread_stream) = (Arc::clone(&shared), to_stream.clone());
        std::thread::Builder::new()
            .name("smqtt-opener".into())
            .spawn(move || {
                open_loop(&thread_shared, &thread_stream);
                thread_shared.thread_gone.store(true, Ordering::Release);
                // Waiting event loops give up: no slot will ever be freed for them.
                thread_shared.slots.close();
                thread_shared.kib.close();
            })
            .map_err(|e| Error::Internal {
                message: format!("cannot start opener thread: {e}"),
                source: Some(Cause::new(e)),
            })?;
        let inlet = Arc::new(Inlet(Arc::clone(&shared)));
        Ok((Pipeline { shared, _inlet: inlet, to_stream }, stream))
    }

    /// Hands one delivered publish on; false once the subscriber (or the thread) is gone.
    pub(crate) async fn deliver(&self, topic: &str, payload: &[u8], qos: QoS, retain: bool) -> bool {
        if self.shared.pending.load(Ordering::Acquire) == 0 {
            let quick = {
                let mut opener = self.shared.opener();
                opener.opens_quickly(payload).then(|| opener.open(topic, payload, qos, retain, UnixTime::now()))
            };
            if let Some(delivery) = quick {
                return self.to_stream.send(delivery).await.is_ok();
            }
        }
        // Both bounds are reserved before anything is counted or queued (cancel-safe).
        let kib = u32::try_from(payload.len() / 1024 + 1).unwrap_or(u32::MAX).min(QUEUE_KIB as u32);
        let Ok(slot) = Arc::clone(&self.shared.slots).acquire_owned().await else { return false };
        let Ok(bytes) = Arc::clone(&self.shared.kib).acquire_many_owned(kib).await else { return false };
        let lane = smqtt_wire::claimed_publisher(payload).unwrap_or_default().to_owned();
        let publish =
            Publish { topic: topic.to_owned(), payload: payload.to_vec(), qos, retain, _slots: (slot, bytes) };
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        self.shared.queue().push(lane, publish);
        self.shared.ready.notify_one();
        true
    }

    /// Installs a renewed attribute key, after every delivery handed on before.
    pub(crate) async fn install_key(&self, user_key: UserKey, epoch: u64) -> bool {
        if self.is_closed() {
            return false;
        }
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        self.shared.queue().push_key(Box::new(user_key), epoch);
        self.shared.ready.notify_one();
        true
    }

    /// Whether the opener thread is gone (the client was dropped or disconnected).
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.thread_gone.load(Ordering::Acquire)
    }
}

fn open_loop(shared: &Shared, to_stream: &mpsc::Sender<Delivery>) {
    loop {
        let work = {
            let mut queue = shared.queue();
            loop {
                if let Some(work) = queue.pop() {
                    break work;
                }
                if queue.closed {
                    return;
                }
                queue = shared.ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let delivery = match work {
            Work::Publish(publish) => {
                let delivery = shared.opener().open(
                    &publish.topic,
                    &publish.payload,
                    publish.qos,
                    publish.retain,
                    UnixTime::now(),
                );
                // The queue's bounds are freed as soon as the work is done (the permits drop with it).
                drop(publish);
                Some(delivery)
            }
            Work::Key(user_key, epoch) => {
                shared.opener().set_key(*user_key, epoch);
                None
            }
        };
        // Delivered before the item counts as finished: the event loop must not overtake it.
        let gone = delivery.is_some_and(|d| to_stream.blocking_send(d).is_err());
        shared.pending.fetch_sub(1, Ordering::AcqRel);
        if gone {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(topic: &str, slots: &Arc<Semaphore>) -> Publish {
        let permit = || Arc::clone(slots).try_acquire_owned().unwrap_or_else(|e| panic!("{e}"));
        Publish {
            topic: topic.to_owned(),
            payload: Vec::new(),
            qos: QoS::AtMostOnce,
            retain: false,
            _slots: (permit(), permit()),
        }
    }

    fn topic(work: Option<Work>) -> String {
        match work {
            Some(Work::Publish(p)) => p.topic,
            Some(Work::Key(_, epoch)) => format!("key {epoch}"),
            None => "none".into(),
        }
    }

    #[test]
    fn lanes_are_served_in_turn_and_in_order_within_a_lane() {
        let slots = Arc::new(Semaphore::new(64));
        let mut queue = Queue { phases: VecDeque::new(), closed: false };
        for i in 0..5 {
            queue.push("flooder".into(), publish(&format!("f{i}"), &slots));
        }
        queue.push("honest".into(), publish("h0", &slots));
        queue.push("honest".into(), publish("h1", &slots));
        let order: Vec<String> = (0..8).map(|_| topic(queue.pop())).collect();
        assert_eq!(order, ["f0", "h0", "f1", "h1", "f2", "f3", "f4", "none"]);
        assert_eq!(slots.available_permits(), 64, "every permit came back");
    }
}
