//! From the MQTT event loop to the subscriber's stream: deliveries that open in microseconds (an unsigned
//! envelope under a cached session key) are opened on the event-loop task itself; everything that may take a
//! signature check or a pairing goes to an opener thread of its own, so the event loop keeps polling. Order is
//! kept: the event loop opens a delivery itself only when the thread has nothing pending.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use smqtt_abe::UserKey;
use tokio::sync::mpsc;

use crate::client::Delivery;
use crate::error::Error;
use crate::session::Opener;

/// Deliveries and key installs queued for the opener thread before the event loop waits.
const QUEUE: usize = 1024;
/// Opened deliveries buffered for the subscriber.
const STREAM: usize = 256;

/// What the opener thread is told: a delivered publish, or a renewed attribute key (in order with the former).
enum ToOpener {
    Publish { topic: String, payload: Vec<u8>, qos: u8, retain: bool },
    Key(Box<UserKey>, u64),
}

/// The opener, shared by the event loop (quick deliveries) and the opener thread (everything else).
struct Shared {
    opener: Mutex<Opener>,
    /// Items sent to the thread and not yet finished (delivered or installed).
    pending: AtomicUsize,
}

impl Shared {
    fn opener(&self) -> MutexGuard<'_, Opener> {
        // `Opener::open` does not panic; if it ever did, its state is still consistent per message.
        self.opener.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The event loop's end of the pipeline (cloned into every poll loop and the client).
#[derive(Clone)]
pub(crate) struct Pipeline {
    shared: Arc<Shared>,
    to_thread: mpsc::Sender<ToOpener>,
    to_stream: mpsc::Sender<Delivery>,
}

impl Pipeline {
    /// Starts the opener thread; returns the pipeline and the subscriber's end of the stream.
    pub(crate) fn start(opener: Opener) -> Result<(Pipeline, mpsc::Receiver<Delivery>), Error> {
        let shared = Arc::new(Shared { opener: Mutex::new(opener), pending: AtomicUsize::new(0) });
        let (to_thread, from_loop) = mpsc::channel(QUEUE);
        let (to_stream, stream) = mpsc::channel(STREAM);
        let (thread_shared, thread_stream) = (Arc::clone(&shared), to_stream.clone());
        std::thread::Builder::new()
            .name("smqtt-opener".into())
            .spawn(move || open_loop(&thread_shared, from_loop, &thread_stream))
            .map_err(|e| Error::Crypto(format!("cannot start opener thread: {e}")))?;
        Ok((Pipeline { shared, to_thread, to_stream }, stream))
    }

    /// Hands one delivered publish on; false once the subscriber (or the thread) is gone. A full queue or
    /// stream holds the event loop back (and with it the broker's flow control) instead of growing.
    pub(crate) async fn deliver(&self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> bool {
        if self.shared.pending.load(Ordering::Acquire) == 0 {
            let quick = {
                let mut opener = self.shared.opener();
                opener.opens_quickly(payload).then(|| opener.open(topic, payload, qos, retain))
            };
            if let Some(delivery) = quick {
                return self.to_stream.send(delivery).await.is_ok();
            }
        }
        let item = ToOpener::Publish { topic: topic.to_owned(), payload: payload.to_vec(), qos, retain };
        self.send(item).await
    }

    /// Installs a renewed attribute key, after every delivery handed on before.
    pub(crate) async fn install_key(&self, user_key: UserKey, epoch: u64) -> bool {
        self.send(ToOpener::Key(Box::new(user_key), epoch)).await
    }

    /// Whether the opener thread is gone (the client was dropped or disconnected).
    pub(crate) fn is_closed(&self) -> bool {
        self.to_thread.is_closed()
    }

    /// Queues `item` for the thread. The slot is reserved first (cancel-safe), then counted and filled at
    /// once: a caller that gives up waiting (a timeout around `install`) leaves no count behind.
    async fn send(&self, item: ToOpener) -> bool {
        let Ok(permit) = self.to_thread.reserve().await else { return false };
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        permit.send(item);
        true
    }
}

fn open_loop(shared: &Shared, mut from_loop: mpsc::Receiver<ToOpener>, to_stream: &mpsc::Sender<Delivery>) {
    while let Some(item) = from_loop.blocking_recv() {
        let delivery = match item {
            ToOpener::Publish { topic, payload, qos, retain } => {
                Some(shared.opener().open(&topic, &payload, qos, retain))
            }
            ToOpener::Key(user_key, epoch) => {
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
