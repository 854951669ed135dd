//! The MQTT side: a rumqttc client whose event loop the SDK polls itself, with reconnect back-off and
//! re-subscription, and a stream of accepted messages and per-message errors (fed by [`crate::delivery`]);
//! TCP or TLS (see [`tls`]).

mod acks;
mod mqtt;
mod outbox;
mod poll;
mod tls;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::v5 as mqtt5;
use rumqttc::{AsyncClient, MqttOptions};
use smqtt_abe::Policy;
use tokio::sync::{mpsc, watch};

use smqtt_session::{Identity, Opener, OpenerLimits, QoS, Sealer, SessionPolicy, UnixTime};

use crate::delivery::{Delivery, Pipeline};
use crate::error::{Cause, Error};
use crate::store::DeviceStore;
pub use acks::Acknowledgement;
use mqtt::Mqtt;
use tls::Link;
pub use tls::TlsConfig;

/// Largest MQTT packet sent or accepted (an envelope with capsule and credential for a large policy fits).
pub const MAX_PACKET_BYTES: usize = 1024 * 1024;
/// Largest plaintext payload published.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// How to reach the broker. Its `Debug` leaves the password out.
#[derive(Clone)]
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
    /// MQTT 3.1.1 (default) or 5. Everything SMQTT adds lives in the PUBLISH payload, so both work the same.
    pub protocol: MqttVersion,
    /// Topic filters on which to accept unsigned envelopes from publishers that introduced their session signed
    /// (`docs/wire.md` §6.5; default none). See [`Opener::accept_unsigned`].
    pub accept_unsigned: Vec<String>,
    /// TLS to the broker (default none: plain TCP). The server's certificate is verified, always.
    pub tls: Option<TlsConfig>,
    /// What the subscriber side accepts before it spends work: message age, new sessions per publisher.
    pub limits: OpenerLimits,
}

impl core::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("keep_alive", &self.keep_alive)
            .field("clean_session", &self.clean_session)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("sessions", &self.sessions)
            .field("protocol", &self.protocol)
            .field("accept_unsigned", &self.accept_unsigned)
            .field("tls", &self.tls)
            .field("limits", &self.limits)
            .finish()
    }
}

/// The MQTT protocol version spoken to the broker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MqttVersion {
    /// MQTT 3.1.1 (protocol level 4).
    #[default]
    V311,
    /// MQTT 5.
    V5,
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
            protocol: MqttVersion::V311,
            accept_unsigned: Vec::new(),
            tls: None,
            limits: OpenerLimits::default(),
        }
    }
}

/// The connection to the broker, as [`ConnectionWatch`] reports it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Connection {
    /// No attempt has finished yet.
    Connecting,
    /// The broker accepted the CONNECT.
    Up,
    /// The last attempt failed or the connection dropped (the client keeps retrying, with back-off):
    /// [`Error::ConnectRefused`], [`Error::Tls`] or [`Error::Connect`].
    Down(Error),
}

/// Changes of the connection to the broker ([`SmqttClient::watch_connection`]).
#[derive(Debug)]
pub struct ConnectionWatch {
    link: watch::Receiver<Link>,
}

impl ConnectionWatch {
    /// The next change of state; `None` once the client has stopped (after a disconnect).
    pub async fn changed(&mut self) -> Option<Connection> {
        self.link.changed().await.ok()?;
        Some(match &*self.link.borrow_and_update() {
            Link::Connecting => Connection::Connecting,
            Link::Up => Connection::Up,
            Link::Down { error, .. } => Connection::Down(error.clone()),
        })
    }
}

/// The stream of deliveries.
#[derive(Debug)]
pub struct Messages {
    rx: mpsc::Receiver<Delivery>,
}

impl Messages {
    /// The next delivery; `None` once the client has disconnected and every clone of it is dropped.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// A delivery that is already waiting, without waiting for one.
    pub fn try_next(&mut self) -> Option<Delivery> {
        self.rx.try_recv().ok()
    }

    /// The next delivery within `timeout`.
    pub async fn next_timeout(&mut self, timeout: Duration) -> Option<Delivery> {
        tokio::time::timeout(timeout, self.rx.recv()).await.ok().flatten()
    }
}

/// A connected SMQTT client: publish sealed, receive opened.
#[derive(Clone)]
pub struct SmqttClient {
    mqtt: Mqtt,
    /// The credential and the sealer, changed together: a publish sees both before or both after a renewal.
    publishing: Arc<Mutex<Publishing>>,
    /// Publishes wait here for the sealing task, which signs what queued together as one batch.
    outbox: outbox::Outbox,
    filters: Arc<Mutex<Vec<(String, QoS)>>>,
    auth: Arc<Mutex<ConnectAuth>>,
    pipeline: Pipeline,
    link: watch::Receiver<Link>,
}

impl core::fmt::Debug for SmqttClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let device = self.publishing.lock().map(|p| p.credential.body().device_id.to_string()).unwrap_or_default();
        f.debug_struct("SmqttClient").field("device", &device).finish_non_exhaustive()
    }
}

/// What a publish checks and seals with.
struct Publishing {
    credential: smqtt_wire::VerifiedCredential,
    sealer: Sealer,
}

/// What a (re)connect needs to prove the device's identity to a broker that checks it (the SMQTT broker
/// plugin): a fresh [`smqtt_wire::ConnectToken`] is made from these for every CONNECT.
struct ConnectAuth {
    signing_key: smqtt_wire::SigningKey,
    credential: Vec<u8>,
    client_id: String,
    /// A fixed password from the configuration instead of tokens.
    fixed: Option<String>,
}

impl ConnectAuth {
    fn password(&self) -> String {
        if let Some(fixed) = &self.fixed {
            return fixed.clone();
        }
        smqtt_wire::ConnectToken::create(
            &self.signing_key,
            &self.credential,
            &self.client_id,
            UnixTime::now().as_secs(),
        )
        .unwrap_or_default()
    }
}

impl SmqttClient {
    /// Connects to the broker as `identity` and starts polling. Must be called inside a tokio runtime.
    ///
    /// The connection is made in the background (and remade after it drops): publishes and subscriptions made
    /// before it is up are queued. [`wait_connected`](Self::wait_connected) waits for it.
    ///
    /// # Errors
    /// [`Error::Topic`] for an unusable client id; [`Error::Tls`] for [`ClientConfig::tls`] with system roots
    /// when the system has none.
    pub fn connect(identity: Identity, config: &ClientConfig) -> Result<(SmqttClient, Messages), Error> {
        let identity = identity.into_parts();
        let client_id = config.client_id.clone().unwrap_or_else(|| identity.device_id.as_str().to_owned());
        if client_id.is_empty() || client_id.len() > 64 {
            return Err(Error::Topic("client id must be 1..=64 bytes".into()));
        }
        let transport = match &config.tls {
            Some(tls) => rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls.rustls()?)),
            None => rumqttc::Transport::tcp(),
        };
        let (link_tx, link) = watch::channel(Link::Connecting);
        let auth = Arc::new(Mutex::new(ConnectAuth {
            signing_key: smqtt_wire::SigningKey::from_bytes(&identity.signing_key.to_bytes()),
            credential: identity.credential.clone(),
            client_id: client_id.clone(),
            fixed: config.password.clone(),
        }));
        let password = auth.lock().map(|a| a.password()).unwrap_or_default();
        let public_key = Arc::new(identity.public_key);
        let sealer = Sealer::new(
            identity.device_id.clone(),
            identity.signing_key,
            identity.credential,
            public_key.clone(),
            identity.epoch,
            config.sessions.clone(),
        );
        let mut opener = Opener::new(public_key, identity.user_key, identity.authority_key, identity.epoch);
        let unsigned_filters = config
            .accept_unsigned
            .iter()
            .map(|f| smqtt_wire::TopicFilter::new(f).map_err(|e| Error::Topic(e.to_string())))
            .collect::<Result<Vec<_>, Error>>()?;
        opener.accept_unsigned(unsigned_filters);
        opener.set_limits(config.limits.clone());
        let filters = Arc::new(Mutex::new(Vec::new()));
        let (pipeline, rx) = Pipeline::start(opener)?;
        let wiring = |mqtt: Mqtt| poll::Wiring {
            mqtt,
            filters: filters.clone(),
            pipeline: pipeline.clone(),
            auth: auth.clone(),
            link: link_tx,
        };
        let mqtt = match config.protocol {
            MqttVersion::V311 => {
                let mut options = MqttOptions::new(client_id, config.host.clone(), config.port);
                options.set_keep_alive(config.keep_alive);
                options.set_clean_session(config.clean_session);
                options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
                options.set_credentials(identity.device_id.as_str(), password);
                options.set_transport(transport);
                let (client, eventloop) = AsyncClient::new(options, 64);
                let mqtt = Mqtt::v311(client);
                tokio::spawn(poll::run(eventloop, wiring(mqtt.clone())));
                mqtt
            }
            MqttVersion::V5 => {
                let mut options = mqtt5::MqttOptions::new(client_id, config.host.clone(), config.port);
                options.set_keep_alive(config.keep_alive);
                options.set_clean_start(config.clean_session);
                if !config.clean_session {
                    // MQTT 5 ends the session at disconnect unless an expiry interval says otherwise.
                    options.set_session_expiry_interval(Some(u32::MAX));
                }
                options.set_max_packet_size(Some(MAX_PACKET_BYTES as u32));
                options.set_credentials(identity.device_id.as_str(), password);
                options.set_transport(transport);
                let (client, eventloop) = mqtt5::AsyncClient::new(options, 64);
                let mqtt = Mqtt::v5(client);
                tokio::spawn(poll::run(eventloop, wiring(mqtt.clone())));
                mqtt
            }
        };
        let publishing = Arc::new(Mutex::new(Publishing { credential: identity.verified, sealer }));
        let client = SmqttClient {
            outbox: outbox::Outbox::start(mqtt.clone(), Arc::clone(&publishing)),
            mqtt,
            publishing,
            filters,
            auth,
            pipeline,
            link,
        };
        Ok((client, Messages { rx }))
    }

    /// Waits until the broker has accepted the connection (a CONNACK).
    ///
    /// # Errors
    /// At once: [`Error::Tls`] when the TLS handshake failed (an untrusted or misnamed server certificate, a
    /// client certificate the broker refused), [`Error::Connect`] when the broker refused the CONNECT. After
    /// `timeout`: [`Error::Connect`] with the last failure (e.g. the broker is unreachable). [`Error::Closed`]
    /// after a disconnect. The client keeps trying to connect in the background in every case.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), Error> {
        let mut link = self.link.clone();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                match &*link.borrow_and_update() {
                    Link::Up => return Ok(()),
                    Link::Down { error, fatal: true } => return Err(error.clone()),
                    Link::Connecting | Link::Down { .. } => {}
                }
                if link.changed().await.is_err() {
                    return Err(Error::Closed);
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            Err(match &*link.borrow() {
                Link::Down { error, .. } => error.clone(),
                _ => Error::connect(format!("no answer from the broker within {timeout:?}")),
            })
        })
    }

    /// Seals `payload` under `policy` (and the current epoch), signs it for `topic`, and publishes it. Returns
    /// once the message is queued for sealing (waiting while 1024 are queued: backpressure); the sealing task
    /// takes everything queued at once and signs it as one batch (`docs/wire.md` §6.6), so a burst costs one
    /// signature per batch and a lone message is sealed at once, alone. Order is kept;
    /// [`disconnect`](Self::disconnect) hands everything queued over first. A failure after queueing (the RNG, a renewal
    /// that narrowed the credential) is logged, and reported by [`publish_acknowledged`](Self::publish_acknowledged).
    ///
    /// # Errors
    /// [`Error::Topic`], [`Error::NotPermitted`] (the credential's publish rights), [`Error::TooLarge`],
    /// [`Error::Policy`], [`Error::Closed`].
    pub async fn publish(
        &self,
        topic: &str,
        policy: &Policy,
        qos: QoS,
        retain: bool,
        payload: &[u8],
    ) -> Result<(), Error> {
        self.seal_and_publish(topic, policy, qos, retain, payload, false).await.map(drop)
    }

    /// [`publish`](Self::publish), returning the broker's [`Acknowledgement`] to wait for: exit codes and
    /// at-least-once senders should count a message as sent only once it resolves `Ok`.
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    pub async fn publish_acknowledged(
        &self,
        topic: &str,
        policy: &Policy,
        qos: QoS,
        retain: bool,
        payload: &[u8],
    ) -> Result<Acknowledgement, Error> {
        self.seal_and_publish(topic, policy, qos, retain, payload, true).await?.ok_or(Error::Closed)
    }

    async fn seal_and_publish(
        &self,
        topic: &str,
        policy: &Policy,
        qos: QoS,
        retain: bool,
        payload: &[u8],
        wanted: bool,
    ) -> Result<Option<Acknowledgement>, Error> {
        smqtt_wire::validate_topic(topic).map_err(|e| Error::Topic(e.to_string()))?;
        {
            let publishing = self.publishing.lock().map_err(|_| Error::Closed)?;
            if !publishing.credential.may_publish(topic) {
                return Err(Error::NotPermitted(topic.to_owned()));
            }
            if payload.len() > MAX_PAYLOAD_BYTES {
                return Err(Error::TooLarge { size: payload.len(), limit: MAX_PAYLOAD_BYTES });
            }
            // A policy that cannot be sealed under is refused here, not later in the sealing task.
            publishing.sealer.check_policy(policy)?;
        }
        let (slot, ack) = if wanted {
            let (tx, ack) = Acknowledgement::channel();
            (Some(tx), Some(ack))
        } else {
            (None, None)
        };
        let request = outbox::Request {
            topic: topic.to_owned(),
            policy: policy.clone(),
            payload: payload.to_vec(),
            qos,
            retain,
            slot,
        };
        self.outbox.push(request).await?;
        Ok(ack)
    }

    /// Subscribes to `filter` (`+` and `#` as usual); re-subscribed automatically after reconnects.
    ///
    /// # Errors
    /// [`Error::Topic`], [`Error::Closed`].
    pub async fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), Error> {
        self.subscribe_filter(filter, qos, false).await.map(drop)
    }

    /// [`subscribe`](Self::subscribe), returning the broker's SUBACK as an [`Acknowledgement`]
    /// ([`Error::SubscribeRefused`] when the broker refused the filter).
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub async fn subscribe_acknowledged(&self, filter: &str, qos: QoS) -> Result<Acknowledgement, Error> {
        self.subscribe_filter(filter, qos, true).await?.ok_or(Error::Closed)
    }

    async fn subscribe_filter(&self, filter: &str, qos: QoS, wanted: bool) -> Result<Option<Acknowledgement>, Error> {
        smqtt_wire::TopicFilter::new(filter).map_err(|e| Error::Topic(e.to_string()))?;
        if let Ok(mut filters) = self.filters.lock() {
            filters.push((filter.to_owned(), qos));
        }
        self.mqtt.subscribe(filter, qos, wanted).await
    }

    /// The authority epoch this client currently publishes for and accepts from.
    pub fn epoch(&self) -> u64 {
        self.publishing.lock().map_or(0, |p| p.credential.body().epoch)
    }

    /// Installs a renewed identity of the same device (new epoch: credential and attribute key) without
    /// reconnecting: later publishes start new sessions for the new epoch, later deliveries are opened with the
    /// new key and credentials of older epochs are refused, later CONNECTs present the new credential.
    ///
    /// # Errors
    /// [`Error::Store`] for an identity of another device; [`Error::Closed`].
    pub async fn install(&self, identity: Identity) -> Result<(), Error> {
        let identity = identity.into_parts();
        {
            let mut publishing = self.publishing.lock().map_err(|_| Error::Closed)?;
            if publishing.credential.body().device_id != identity.device_id {
                return Err(Error::OtherDevice {
                    offered: identity.device_id.to_string(),
                    connected: publishing.credential.body().device_id.to_string(),
                });
            }
            publishing.credential = identity.verified;
            publishing.sealer.set_epoch(identity.epoch, identity.credential.clone());
        }
        // Then the next CONNECT's token, then the opener's key (it accepts the new epoch from then on).
        if let Ok(mut auth) = self.auth.lock() {
            auth.credential = identity.credential;
        }
        if self.pipeline.install_key(identity.user_key, identity.epoch).await {
            Ok(())
        } else {
            Err(Error::Closed)
        }
    }

    /// Renews the identity in `store` at the authority (see [`DeviceStore::renew`]) and [installs](Self::install)
    /// it; returns the new epoch.
    ///
    /// # Errors
    /// [`Error::Authority`] (e.g. the device was revoked), [`Error::Store`], [`Error::Closed`].
    pub async fn renew(&self, store: &DeviceStore) -> Result<u64, Error> {
        let store = store.clone();
        let identity = tokio::task::spawn_blocking(move || store.renew()).await.map_err(|e| Error::Internal {
            message: format!("renewal task failed: {e}"),
            source: Some(Cause::new(e)),
        })??;
        let epoch = identity.epoch();
        self.install(identity).await?;
        Ok(epoch)
    }

    /// Checks the authority's current epoch every `every` and [renews](Self::renew) when it moved past this
    /// client's. Runs until the client is dropped; failures (authority unreachable, revoked) are logged and
    /// retried at the next check, while the client keeps working with what it has.
    pub fn renew_automatically(&self, store: DeviceStore, every: Duration) {
        let client = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if client.pipeline.is_closed() {
                    return;
                }
                let probe = store.clone();
                let current = tokio::task::spawn_blocking(move || probe.authority_epoch()).await;
                match current {
                    Ok(Ok(epoch)) if epoch > client.epoch() => match client.renew(&store).await {
                        Ok(epoch) => tracing::info!(epoch, "renewed for the new epoch"),
                        Err(error) => tracing::warn!(%error, "renewal failed; keeping the current key"),
                    },
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => tracing::debug!(%error, "authority not reachable for the epoch check"),
                    Err(_) => return,
                }
            }
        });
    }

    /// Follows the connection to the broker: each change, as it happens (see [`ConnectionWatch`]).
    pub fn watch_connection(&self) -> ConnectionWatch {
        ConnectionWatch { link: self.link.clone() }
    }

    /// Disconnects cleanly, after the publishes queued so far were handed to the MQTT client; the message
    /// stream ends.
    pub async fn disconnect(&self) {
        self.outbox.flush().await;
        self.mqtt.disconnect().await;
    }
}
