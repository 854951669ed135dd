//! One event loop driver for both MQTT versions: rumqttc's 3.1.1 and 5 event loops are brought to one shape
//! ([`Step`]), so reconnect back-off, re-subscription, fresh CONNECT tokens and delivery are written once.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::v5 as mqtt5;
use rumqttc::{Event, EventLoop, Packet};
use tokio::sync::watch;

use super::mqtt::{level, level5, refusal, refusal5, Mqtt};
use super::tls::Link;
use super::ConnectAuth;
use crate::delivery::Pipeline;

/// What one poll of an event loop amounts to for the SDK.
pub(super) enum Step {
    /// A PUBLISH from the broker.
    Publish { topic: String, payload: bytes::Bytes, qos: smqtt_session::QoS, retain: bool },
    /// The broker accepted the CONNECT.
    ConnAck { session_present: bool },
    /// The client disconnected or was dropped: the loop ends.
    Stop,
    /// Anything else (acknowledgements are noted by [`Mqtt`] before this).
    Other,
    /// The connection failed or dropped; `refused` when the broker refused the CONNECT (reason, permanent).
    Lost { error: Box<dyn std::error::Error + Send + Sync>, refused: Option<(String, bool)> },
}

/// A rumqttc event loop of either version.
pub(super) trait Session: Send {
    /// Polls once; acknowledgements are handed to `mqtt` as they arrive.
    fn step(&mut self, mqtt: &Mqtt) -> impl Future<Output = Step> + Send;
    /// `(host, port)` of the broker.
    fn broker(&self) -> (String, u16);
    /// Whether the broker keeps the session across connections (no clean session / clean start).
    fn session_kept(&self) -> bool;
    /// The password of the next CONNECT (the username stays).
    fn set_password(&mut self, password: String);
}

impl Session for EventLoop {
    async fn step(&mut self, mqtt: &Mqtt) -> Step {
        let event = self.poll().await;
        if let Ok(event) = &event {
            mqtt.note(event);
        }
        match event {
            Ok(Event::Incoming(Packet::Publish(publish))) => Step::Publish {
                topic: publish.topic,
                payload: publish.payload,
                qos: level(publish.qos),
                retain: publish.retain,
            },
            Ok(Event::Incoming(Packet::ConnAck(ack))) => Step::ConnAck { session_present: ack.session_present },
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(rumqttc::ConnectionError::RequestsDone) => {
                Step::Stop
            }
            Ok(_) => Step::Other,
            Err(error) => {
                let refused = match &error {
                    rumqttc::ConnectionError::ConnectionRefused(code) => Some(refusal(*code)),
                    _ => None,
                };
                Step::Lost { error: Box::new(error), refused }
            }
        }
    }

    fn broker(&self) -> (String, u16) {
        self.mqtt_options.broker_address()
    }

    fn session_kept(&self) -> bool {
        !self.mqtt_options.clean_session()
    }

    fn set_password(&mut self, password: String) {
        let username = self.mqtt_options.credentials().map(|login| login.username).unwrap_or_default();
        self.mqtt_options.set_credentials(username, password);
    }
}

impl Session for mqtt5::EventLoop {
    async fn step(&mut self, mqtt: &Mqtt) -> Step {
        use mqtt5::mqttbytes::v5::Packet as Packet5;
        let event = self.poll().await;
        if let Ok(event) = &event {
            mqtt.note5(event);
        }
        match event {
            // A topic that is not UTF-8 (or an unresolved topic alias, empty) goes to the opener as is: it cannot
            // match a signature and is reported as a refused message rather than dropped silently.
            Ok(mqtt5::Event::Incoming(Packet5::Publish(publish))) => Step::Publish {
                topic: String::from_utf8_lossy(&publish.topic).into_owned(),
                payload: publish.payload,
                qos: level5(publish.qos),
                retain: publish.retain,
            },
            Ok(mqtt5::Event::Incoming(Packet5::ConnAck(ack))) => Step::ConnAck { session_present: ack.session_present },
            Ok(mqtt5::Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(mqtt5::ConnectionError::RequestsDone) => {
                Step::Stop
            }
            Ok(_) => Step::Other,
            Err(error) => {
                let refused = match &error {
                    mqtt5::ConnectionError::ConnectionRefused(code) => Some(refusal5(*code)),
                    _ => None,
                };
                Step::Lost { error: Box::new(error), refused }
            }
        }
    }

    fn broker(&self) -> (String, u16) {
        self.options.broker_address()
    }

    fn session_kept(&self) -> bool {
        !self.options.clean_start()
    }

    fn set_password(&mut self, password: String) {
        let username = self.options.credentials().map(|login| login.username).unwrap_or_default();
        self.options.set_credentials(username, password);
    }
}

/// What the loop works with besides the event loop itself.
pub(super) struct Wiring {
    pub(super) mqtt: Mqtt,
    pub(super) filters: Arc<Mutex<Vec<(String, smqtt_session::QoS)>>>,
    pub(super) pipeline: Pipeline,
    pub(super) auth: Arc<Mutex<ConnectAuth>>,
    pub(super) link: watch::Sender<Link>,
}

/// Polls `session` until the client disconnects or is dropped: delivers publishes to the opener, re-subscribes
/// after a reconnect that lost the session, reconnects with back-off (100 ms doubling to 5 s) and a fresh
/// CONNECT token, and reports the link's state.
pub(super) async fn run(mut session: impl Session, wiring: Wiring) {
    let Wiring { mqtt, filters, pipeline, auth, link } = wiring;
    let mut backoff = Duration::from_millis(100);
    let mut reconnected = false;
    let session_kept = session.session_kept();
    loop {
        match session.step(&mqtt).await {
            Step::Publish { topic, payload, qos, retain } => {
                if !pipeline.deliver(&topic, &payload, qos, retain).await {
                    break;
                }
            }
            Step::ConnAck { session_present } => {
                backoff = Duration::from_millis(100);
                link.send_replace(Link::Up);
                // The first CONNACK: subscriptions made so far are still queued as requests, not lost.
                if reconnected && !session_present {
                    mqtt.resubscribe(&filters);
                }
                reconnected = true;
            }
            Step::Stop => break,
            Step::Other => {}
            Step::Lost { error, refused } => {
                tracing::debug!(%error, "MQTT connection lost; reconnecting");
                mqtt.acks.connection_lost(session_kept, &error.to_string());
                link.send_replace(Link::down(error, refused, session.broker()));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                // A fresh token for the next CONNECT (a broker checking them refuses stale ones).
                if let Ok(auth) = auth.lock() {
                    session.set_password(auth.password());
                }
            }
        }
    }
    mqtt.stopped();
}
