//! The rumqttc client of either protocol version, handing requests over in the order [`Acks`] books them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::v5 as mqtt5;
use rumqttc::{AsyncClient, QoS};

use super::acks::{Acknowledgement, Acks, Kind, Slot};
use crate::error::Error;

pub(super) fn qos(level: smqtt_session::QoS) -> QoS {
    match level {
        smqtt_session::QoS::AtMostOnce => QoS::AtMostOnce,
        smqtt_session::QoS::AtLeastOnce => QoS::AtLeastOnce,
        smqtt_session::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// The engine's QoS of a delivery (rumqttc's two enums meet the engine's one here, and only here).
pub(super) fn level(q: QoS) -> smqtt_session::QoS {
    match q {
        QoS::AtMostOnce => smqtt_session::QoS::AtMostOnce,
        QoS::AtLeastOnce => smqtt_session::QoS::AtLeastOnce,
        QoS::ExactlyOnce => smqtt_session::QoS::ExactlyOnce,
    }
}

pub(super) fn qos5(level: smqtt_session::QoS) -> mqtt5::mqttbytes::QoS {
    match level {
        smqtt_session::QoS::AtMostOnce => mqtt5::mqttbytes::QoS::AtMostOnce,
        smqtt_session::QoS::AtLeastOnce => mqtt5::mqttbytes::QoS::AtLeastOnce,
        smqtt_session::QoS::ExactlyOnce => mqtt5::mqttbytes::QoS::ExactlyOnce,
    }
}

pub(super) fn level5(q: mqtt5::mqttbytes::QoS) -> smqtt_session::QoS {
    match q {
        mqtt5::mqttbytes::QoS::AtMostOnce => smqtt_session::QoS::AtMostOnce,
        mqtt5::mqttbytes::QoS::AtLeastOnce => smqtt_session::QoS::AtLeastOnce,
        mqtt5::mqttbytes::QoS::ExactlyOnce => smqtt_session::QoS::ExactlyOnce,
    }
}

#[derive(Clone)]
enum Client {
    V311(AsyncClient),
    V5(mqtt5::AsyncClient),
}

/// The rumqttc client, its acknowledgement bookkeeping, and whether its event loop has ended.
#[derive(Clone)]
pub(super) struct Mqtt {
    client: Client,
    pub(super) acks: Arc<Acks>,
    pub(super) done: Arc<AtomicBool>,
}

/// How long a hand-over waits before trying again while rumqttc's request queue is full.
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(2);

impl Mqtt {
    pub(super) fn v311(client: AsyncClient) -> Mqtt {
        Mqtt { client: Client::V311(client), acks: Arc::default(), done: Arc::default() }
    }

    pub(super) fn v5(client: mqtt5::AsyncClient) -> Mqtt {
        Mqtt { client: Client::V5(client), acks: Arc::default(), done: Arc::default() }
    }

    /// Hands a request over (waiting while rumqttc's bounded queue is full), booking `wanted` acknowledgement.
    async fn hand_over(
        &self,
        kind: Kind,
        wanted: bool,
        try_send: impl Fn(&Client) -> Result<(), ()>,
    ) -> Result<Option<Acknowledgement>, Error> {
        let (slot, ack) = if wanted {
            let (tx, ack) = Acknowledgement::channel();
            (Some(tx), Some(ack))
        } else {
            (None, None)
        };
        self.hand_over_slot(kind, slot, try_send).await.map(|()| ack)
    }

    /// [`hand_over`](Self::hand_over) with the acknowledgement's slot made by the caller.
    async fn hand_over_slot(
        &self,
        kind: Kind,
        mut slot: Slot,
        try_send: impl Fn(&Client) -> Result<(), ()>,
    ) -> Result<(), Error> {
        loop {
            match self.acks.handing_over(kind, slot.take(), || try_send(&self.client)) {
                Ok(()) => return Ok(()),
                Err((_, back)) => {
                    if self.done.load(Ordering::Acquire) {
                        if let Some(tx) = back {
                            let _ = tx.send(Err(Error::Closed));
                        }
                        return Err(Error::Closed);
                    }
                    slot = back;
                    tokio::time::sleep(QUEUE_FULL_RETRY).await;
                }
            }
        }
    }

    /// Hands a sealed PUBLISH over, waiting for room in rumqttc's queue; `slot` (if any) resolves with the
    /// broker's acknowledgement. Only the client's sealing task publishes (one at a time, in order), so the slot
    /// is booked first and the wait for room happens outside the bookkeeping lock.
    pub(super) async fn publish(
        &self,
        topic: &str,
        qos_level: smqtt_session::QoS,
        retain: bool,
        payload: Vec<u8>,
        slot: Slot,
    ) -> Result<(), Error> {
        self.acks.book(Kind::Publish, slot);
        let sent = match &self.client {
            Client::V311(c) => c.publish(topic, qos(qos_level), retain, payload).await.is_ok(),
            Client::V5(c) => c.publish(topic, qos5(qos_level), retain, payload).await.is_ok(),
        };
        if sent {
            return Ok(());
        }
        if let Some(tx) = self.acks.unbook_last(Kind::Publish) {
            let _ = tx.send(Err(Error::Closed));
        }
        Err(Error::Closed)
    }

    pub(super) async fn subscribe(
        &self,
        filter: &str,
        qos_level: smqtt_session::QoS,
        wanted: bool,
    ) -> Result<Option<Acknowledgement>, Error> {
        self.hand_over(Kind::Subscribe, wanted, |client| match client {
            Client::V311(c) => c.try_subscribe(filter, qos(qos_level)).map_err(drop),
            Client::V5(c) => c.try_subscribe(filter, qos5(qos_level)).map_err(drop),
        })
        .await
    }

    /// Re-subscribes `filters` from the event loop (never waits: a full queue drops the request, logged).
    pub(super) fn resubscribe(&self, filters: &Mutex<Vec<(String, smqtt_session::QoS)>>) {
        let current = filters.lock().map(|f| f.clone()).unwrap_or_default();
        for (filter, q) in current {
            let sent = self.acks.handing_over(Kind::Subscribe, None, || match &self.client {
                Client::V311(c) => c.try_subscribe(filter.as_str(), qos(q)).map_err(drop),
                Client::V5(c) => c.try_subscribe(filter.as_str(), qos5(q)).map_err(drop),
            });
            if sent.is_err() {
                tracing::warn!(%filter, "could not re-subscribe (request queue full)");
            }
        }
    }

    /// The event loop ended: hand-overs fail from now on, and so does every acknowledgement still awaited.
    pub(super) fn stopped(&self) {
        self.done.store(true, Ordering::Release);
        self.acks.stopped();
    }

    pub(super) async fn disconnect(&self) {
        let _ = match &self.client {
            Client::V311(c) => c.disconnect().await.is_ok(),
            Client::V5(c) => c.disconnect().await.is_ok(),
        };
    }
}

impl Mqtt {
    /// Books an MQTT 3.1.1 event: outgoing packet ids, acknowledgements, CONNACKs.
    pub(super) fn note(&self, event: &rumqttc::Event) {
        use rumqttc::{Event, Outgoing, Packet, SubscribeReasonCode};
        match event {
            Event::Outgoing(Outgoing::Publish(pkid)) => self.acks.outgoing(Kind::Publish, *pkid),
            Event::Outgoing(Outgoing::Subscribe(pkid)) => self.acks.outgoing(Kind::Subscribe, *pkid),
            Event::Incoming(Packet::PubAck(ack)) => self.acks.acknowledged(Kind::Publish, ack.pkid, Ok(())),
            Event::Incoming(Packet::PubComp(comp)) => self.acks.acknowledged(Kind::Publish, comp.pkid, Ok(())),
            Event::Incoming(Packet::SubAck(ack)) => {
                let refused = ack.return_codes.iter().any(|code| matches!(code, SubscribeReasonCode::Failure));
                let outcome = if refused { Err(Error::SubscribeRefused("Failure (0x80)".into())) } else { Ok(()) };
                self.acks.acknowledged(Kind::Subscribe, ack.pkid, outcome);
            }
            Event::Incoming(Packet::ConnAck(ack)) => self.acks.connected(ack.session_present),
            _ => {}
        }
    }

    /// Books an MQTT 5 event; refusals carry the broker's reason code.
    pub(super) fn note5(&self, event: &mqtt5::Event) {
        use mqtt5::mqttbytes::v5::{Packet, PubAckReason, PubRecReason, SubscribeReasonCode};
        use rumqttc::Outgoing;
        match event {
            mqtt5::Event::Outgoing(Outgoing::Publish(pkid)) => self.acks.outgoing(Kind::Publish, *pkid),
            mqtt5::Event::Outgoing(Outgoing::Subscribe(pkid)) => self.acks.outgoing(Kind::Subscribe, *pkid),
            mqtt5::Event::Incoming(Packet::PubAck(ack)) => {
                let outcome = match ack.reason {
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
                    other => Err(Error::PublishRefused(format!("{other:?}"))),
                };
                self.acks.acknowledged(Kind::Publish, ack.pkid, outcome);
            }
            mqtt5::Event::Incoming(Packet::PubRec(rec)) => match rec.reason {
                PubRecReason::Success | PubRecReason::NoMatchingSubscribers => {}
                other => {
                    self.acks.acknowledged(Kind::Publish, rec.pkid, Err(Error::PublishRefused(format!("{other:?}"))))
                }
            },
            mqtt5::Event::Incoming(Packet::PubComp(comp)) => self.acks.acknowledged(Kind::Publish, comp.pkid, Ok(())),
            mqtt5::Event::Incoming(Packet::SubAck(ack)) => {
                let refused = ack.return_codes.iter().find(|code| !matches!(code, SubscribeReasonCode::Success(_)));
                let outcome = match refused {
                    Some(code) => Err(Error::SubscribeRefused(format!("{code:?}"))),
                    None => Ok(()),
                };
                self.acks.acknowledged(Kind::Subscribe, ack.pkid, outcome);
            }
            mqtt5::Event::Incoming(Packet::ConnAck(ack)) => self.acks.connected(ack.session_present),
            _ => {}
        }
    }
}

/// A refused CONNECT (MQTT 3.1.1): the code, and whether retrying as is can never help.
pub(super) fn refusal(code: rumqttc::ConnectReturnCode) -> (String, bool) {
    (format!("{code:?}"), !matches!(code, rumqttc::ConnectReturnCode::ServiceUnavailable))
}

/// A refused CONNECT (MQTT 5): the reason code, and whether retrying as is can never help (the broker's
/// unavailability, load and quotas pass; bad credentials, bans and protocol errors do not).
pub(super) fn refusal5(code: mqtt5::mqttbytes::v5::ConnectReturnCode) -> (String, bool) {
    use mqtt5::mqttbytes::v5::ConnectReturnCode as Code;
    let transient = matches!(
        code,
        Code::ServiceUnavailable
            | Code::ServerUnavailable
            | Code::ServerBusy
            | Code::QuotaExceeded
            | Code::ConnectionRateExceeded
            | Code::UseAnotherServer
            | Code::ServerMoved
            | Code::UnspecifiedError
    );
    (format!("{code:?}"), !transient)
}
