//! The MQTT side: a rumqttc client whose event loop the SDK polls itself, with reconnect back-off and
//! re-subscription, an opener thread for the pairing work, and a stream of accepted messages and per-message
//! errors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use smqtt_abe::Policy;
use tokio::sync::mpsc;

use crate::error::{Error, MessageError};
use crate::session::{Message, Opener, Sealer, SessionPolicy};
use crate::store::Identity;

/// Largest MQTT packet sent or accepted (an envelope with capsule and credential for a large policy fits).
pub const MAX_PACKET_BYTES: usize = 1024 * 1024;
/// Largest plaintext payload published.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// How to reach the broker.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT client id (default: the device id).
    pub client_id: Option<String>,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Clean session (`false` keeps QoS 1 messages queued at the broker across reconnects).
    pub clean_session: bool,
    /// MQTT password (for brokers that check the device credential at CONNECT; see the broker plugin).
    pub password: Option<String>,
    /// Session-key rotation and capsule repetition.
    pub sessions: SessionPolicy,
}

impl ClientConfig {
    /// Defaults for `host:port`.
    pub fn new(host: &str, port: u16) -> ClientConfig {
        ClientConfig {
            host: host.to_owned(),
            port,
            client_id: None,
            keep_alive: Duration::from_secs(30),
            clean_session: true,
            password: None,
            sessions: SessionPolicy::default(),
        }
    }
}

fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn level(q: QoS) -> u8 {
    match q {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

/// What subscribers receive: each delivered publish, opened or refused.
pub type Delivery = Result<Message, MessageError>;

/// The stream of deliveries.
#[derive(Debug)]
pub struct Messages {
    rx: mpsc::Receiver<Delivery>,
}

impl Messages {
    /// The next delivery; `None` once the client is gone.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// The next delivery within `timeout`.
    pub async fn next_timeout(&mut self, timeout: Duration) -> Option<Delivery> {
        tokio::time::timeout(timeout, self.rx.recv()).await.ok().flatten()
    }
}

/// A connected SMQTT client: publish sealed, receive opened.
#[derive(Clone)]
pub struct SmqttClient {
    mqtt: AsyncClient,
    sealer: Arc<Mutex<Sealer>>,
    filters: Arc<Mutex<Vec<(String, QoS)>>>,
    credential: smqtt_wire::VerifiedCredential,
}

impl core::fmt::Debug for SmqttClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SmqttClient").field("device", &self.credential.body().device_id).finish_non_exhaustive()
    }
}

struct Raw {
    topic: String,
    payload: bytes_like::Payload,
    qos: u8,
    retain: bool,
}

mod bytes_like {
    /// The payload as rumqttc hands it over, kept opaque to the rest of the crate.
    pub(super) struct Payload(pub(super) Vec<u8>);
}

impl SmqttClient {
    /// Connects to the broker as `identity` and starts polling. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::Topic`] for an unusable client id.
    pub fn connect(identity: Identity, config: &ClientConfig) -> Result<(SmqttClient, Messages), Error> {
        let client_id = config.client_id.clone().unwrap_or_else(|| identity.device_id.as_str().to_owned());
        if client_id.is_empty() || client_id.len() > 64 {
            return Err(Error::Topic("client id must be 1..=64 bytes".into()));
        }
        let mut options = MqttOptions::new(client_id, config.host.clone(), config.port);
        options.set_keep_alive(config.keep_alive);
        options.set_clean_session(config.clean_session);
        options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        options.set_credentials(identity.device_id.as_str(), config.password.clone().unwrap_or_default());
        let (mqtt, eventloop) = AsyncClient::new(options, 64);
        let public_key = Arc::new(identity.public_key);
        let sealer = Sealer::new(
            identity.device_id.clone(),
            identity.signing_key,
            identity.credential,
            public_key.clone(),
            identity.epoch,
            config.sessions.clone(),
        );
        let opener = Opener::new(public_key, identity.user_key, identity.authority_key, identity.epoch);
        let filters = Arc::new(Mutex::new(Vec::new()));
        let (raw_tx, raw_rx) = std::sync::mpsc::sync_channel::<Raw>(256);
        let (tx, rx) = mpsc::channel(256);
        // Opening can take a pairing (ms): a thread of its own, so the event loop keeps polling.
        std::thread::Builder::new()
            .name("smqtt-opener".into())
            .spawn(move || open_loop(opener, &raw_rx, &tx))
            .map_err(|e| Error::Crypto(format!("cannot start opener thread: {e}")))?;
        tokio::spawn(poll_loop(eventloop, mqtt.clone(), filters.clone(), raw_tx));
        let client = SmqttClient { mqtt, sealer: Arc::new(Mutex::new(sealer)), filters, credential: identity.verified };
        Ok((client, Messages { rx }))
    }

    /// Seals `payload` under `policy` (and the current epoch), signs it for `topic`, and publishes it.
    ///
    /// # Errors
    /// [`Error::Topic`], [`Error::NotPermitted`] (the credential's publish rights), [`Error::TooLarge`],
    /// [`Error::Policy`], [`Error::Closed`].
    pub async fn publish(
        &self,
        topic: &str,
        policy: &Policy,
        qos_level: u8,
        retain: bool,
        payload: &[u8],
    ) -> Result<(), Error> {
        smqtt_wire::validate_topic(topic).map_err(|e| Error::Topic(e.to_string()))?;
        if !self.credential.may_publish(topic) {
            return Err(Error::NotPermitted(topic.to_owned()));
        }
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::TooLarge { size: payload.len(), limit: MAX_PAYLOAD_BYTES });
        }
        let sealed = {
            let mut sealer = self.sealer.lock().map_err(|_| Error::Closed)?;
            sealer.seal(topic, policy, payload, retain, &mut rand_core::OsRng)?
        };
        self.mqtt.publish(topic, qos(qos_level), retain, sealed).await.map_err(|_| Error::Closed)
    }

    /// Subscribes to `filter` (`+` and `#` as usual); re-subscribed automatically after reconnects.
    ///
    /// # Errors
    /// [`Error::Topic`], [`Error::Closed`].
    pub async fn subscribe(&self, filter: &str, qos_level: u8) -> Result<(), Error> {
        smqtt_wire::TopicFilter::new(filter).map_err(|e| Error::Topic(e.to_string()))?;
        if let Ok(mut filters) = self.filters.lock() {
            filters.push((filter.to_owned(), qos(qos_level)));
        }
        self.mqtt.subscribe(filter, qos(qos_level)).await.map_err(|_| Error::Closed)
    }

    /// Disconnects cleanly; the message stream ends.
    pub async fn disconnect(&self) {
        let _ = self.mqtt.disconnect().await;
    }
}

async fn poll_loop(
    mut eventloop: EventLoop,
    mqtt: AsyncClient,
    filters: Arc<Mutex<Vec<(String, QoS)>>>,
    raw_tx: std::sync::mpsc::SyncSender<Raw>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let raw = Raw {
                    topic: publish.topic.clone(),
                    payload: bytes_like::Payload(publish.payload.to_vec()),
                    qos: level(publish.qos),
                    retain: publish.retain,
                };
                // The opener thread is the only consumer; if it is gone, so is the subscriber.
                let sender = raw_tx.clone();
                if tokio::task::spawn_blocking(move || sender.send(raw)).await.map_or(true, |r| r.is_err()) {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(100);
                if !ack.session_present {
                    let current = filters.lock().map(|f| f.clone()).unwrap_or_default();
                    for (filter, q) in current {
                        let _ = mqtt.try_subscribe(filter, q);
                    }
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(rumqttc::ConnectionError::RequestsDone) => return,
            Err(error) => {
                tracing::debug!(%error, "MQTT connection lost; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn open_loop(mut opener: Opener, raw_rx: &std::sync::mpsc::Receiver<Raw>, tx: &mpsc::Sender<Delivery>) {
    while let Ok(raw) = raw_rx.recv() {
        let delivery = opener.open(&raw.topic, &raw.payload.0, raw.qos, raw.retain);
        if tx.blocking_send(delivery).is_err() {
            return;
        }
    }
}
