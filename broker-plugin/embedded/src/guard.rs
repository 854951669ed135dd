//! The `Protocol` wrapper around rumqttd's V4/V5 codecs: every packet from a remote client passes the gate.
//!
//! rumqttd clones the protocol value once per accepted connection (`Server::start`), so each connection starts
//! with a fresh [`Guard`] state: its session, topic aliases and the acks to rewrite.
//!
//! * **CONNECT**: keep-alive 0 (allowed by MQTT, refused by rumqttd) becomes 65 535 s; the gate authenticates
//!   and checks the will (a sealed topic's will is replaced by its envelope). The login is removed before rumqttd
//!   sees it. A refused CONNECT is handed on with an empty client id and `clean_session = false`, which makes
//!   rumqttd answer CONNACK "identifier rejected" and close; `write` turns that CONNACK's code into the
//!   refusal's (v3.1.1: 4 bad user name or password / 2 identifier rejected / 5 not authorised; v5: 0x86, 0x85,
//!   0x87, 0x99, …, with a reason string). No link and no will are created for it.
//! * **Client ids**: the gate decides on the id rumqttd keys the session by, so each identity stays in its own
//!   client-id space (`smqtt_gate::Gate::authenticate`). rumqttd would give an empty id `rumqtt-<uuid>` after
//!   the gate has seen it: with enforcement on, an anonymous CONNECT with an empty id and a clean session gets
//!   `anon:<random>` here first (told to v5 clients as the assigned client identifier, as Mosquitto does with
//!   `auto_id_prefix anon:`); every other empty id is refused by the gate (0x85 / 2). rumqttd's router drops,
//!   without a CONNACK, a client whose id contains `/`, `+`, `#` or `$`: accepted ids are handed to it with
//!   those and `%` percent-encoded (injective, so distinct ids stay distinct), and `<device_id>/<suffix>` works.
//! * **PUBLISH**: v5 topic aliases are resolved here and removed, so the router only sees full topics. The
//!   gate's decision was made by the front door before the packet reached rumqttd (`precheck.rs`: off the
//!   thread that moves every client's packets); the guard takes it from the connection's lane, checking it is
//!   for this topic and payload length, and decides itself only what the front door could not. A
//!   refused QoS 0 publish is dropped; a refused QoS 1/2 publish is rewritten to the topic `$smqtt/rejected`
//!   with an empty payload (no filter ever matches a `$` topic and rumqttd refuses `$` subscriptions, so it is
//!   stored nowhere), so the router still acknowledges it; for v5 `write` turns that PUBACK's reason into the
//!   refusal's (0x87, 0x99, 0x95, …). v3.1.1 has no reason codes: the client gets a plain PUBACK (as from
//!   Mosquitto) and the message is gone. QoS 2 refusals get a plain PUBREC in both versions (a failure PUBREC
//!   would leave rumqttd waiting for a PUBREL that never comes).
//! * **SUBSCRIBE**: refused filters are taken out before the router sees them and their return codes put back
//!   into the SUBACK (v3.1.1 0x80; v5 0x87 or 0x8F). `$…` filters other than `$share/…` are refused here too
//!   (rumqttd would disconnect the client).
//! * **Peer address**: every connection arrives through the front door (`front.rs`), whose header, checked
//!   before any MQTT byte, names the client's address for the gate (throttling of password guesses per
//!   source) and the connection's lane; a connection without a valid header is closed.
//! * **Sessions**: when the connection ends (the guard is dropped), the gate is told (`Gate::disconnected`), so
//!   the session no longer counts against the session limits.
//! * **Robustness**: packet types a client may not send (CONNACK, SUBACK, UNSUBACK, PINGRESP, AUTH) and a
//!   second CONNECT close the connection before rumqttd's decoder reaches its `unreachable!()`; for v3.1.1
//!   clients every property is stripped on the way out (rumqttd's V4 encoder panics on v5 properties).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use rumqttd::protocol::{
    ConnAckProperties, Connect, ConnectReturnCode, Error, Packet, Protocol, PubAckProperties, PubAckReason,
    SubscribeReasonCode,
};
use smqtt_gate::{ClientSession, Gate, PublishDecision, RefusalReason};

use crate::front::{Secret, HEADER_LEN};
use crate::precheck::{frame_len, FrameMeta, Lane, Lanes};

/// Where refused QoS 1/2 publishes go so that the router still acknowledges them (matched by no filter).
pub const QUARANTINE_TOPIC: &str = "$smqtt/rejected";
/// Largest topic alias accepted (rumqttd's own bound).
const MAX_ALIAS: u16 = 4096;
/// Bytes of aliased topics kept per connection.
const MAX_ALIAS_BYTES: usize = 1024 * 1024;
/// Replacement for keep-alive 0 ("no keep-alive"): the longest MQTT allows.
const NO_KEEP_ALIVE: u16 = u16::MAX;

/// The MQTT version a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    V4,
    V5,
}

/// Broker-level counters the guards share.
#[derive(Debug, Default)]
pub(crate) struct GuardMetrics {
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) quarantined: AtomicU64,
    /// PUBLISH decisions the guard made itself (the front door could not: see `precheck.rs`).
    pub(crate) decided_inline: AtomicU64,
}

/// What the guard knows of the client's address.
#[derive(Debug)]
enum Peer {
    /// Behind the front door: its header comes first.
    Expected(Secret),
    Known(Option<IpAddr>),
}

/// The per-connection wrapper. `P` is rumqttd's `V4` or `V5`.
pub(crate) struct Guard<P> {
    inner: P,
    version: Version,
    gate: Arc<Gate>,
    metrics: Arc<GuardMetrics>,
    /// The front door's secret, for listeners behind one.
    front: Option<Secret>,
    /// The front door's lanes; `lane`: this connection's (its PUBLISH decisions, made by the front door).
    lanes: Arc<Lanes>,
    lane: Option<Arc<Lane>>,
    peer: Peer,
    connected: bool,
    session: Option<ClientSession>,
    aliases: HashMap<u16, String>,
    alias_bytes: usize,
    refused_connect: Cell<Option<RefusalReason>>,
    /// The client id assigned to an anonymous client that sent none (v5: put into the CONNACK).
    assigned_id: RefCell<Option<String>>,
    puback_reasons: RefCell<HashMap<u16, RefusalReason>>,
    suback_refused: RefCell<HashMap<u16, Vec<(usize, RefusalReason)>>>,
}

impl<P: Clone> Guard<P> {
    pub(crate) fn new(
        inner: P,
        version: Version,
        gate: Arc<Gate>,
        metrics: Arc<GuardMetrics>,
        front: Option<Secret>,
        lanes: Arc<Lanes>,
    ) -> Guard<P> {
        let peer = match &front {
            Some(secret) => Peer::Expected(secret.clone()),
            None => Peer::Known(None),
        };
        Guard {
            inner,
            version,
            gate,
            metrics,
            front,
            lanes,
            lane: None,
            peer,
            connected: false,
            session: None,
            aliases: HashMap::new(),
            alias_bytes: 0,
            refused_connect: Cell::new(None),
            assigned_id: RefCell::new(None),
            puback_reasons: RefCell::new(HashMap::new()),
            suback_refused: RefCell::new(HashMap::new()),
        }
    }
}

/// A fresh state for every connection: only the codec, gate and counters are shared.
impl<P: Clone> Clone for Guard<P> {
    fn clone(&self) -> Self {
        Guard::new(
            self.inner.clone(),
            self.version,
            self.gate.clone(),
            self.metrics.clone(),
            self.front.clone(),
            self.lanes.clone(),
        )
    }
}

/// The connection ended: its session no longer counts as connected.
impl<P> Drop for Guard<P> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.gate.disconnected(&session);
        }
    }
}

/// QoS and packet id of the complete PUBLISH frame at the start of `stream` (`None` if incomplete or malformed).
pub(crate) fn peek_publish(stream: &[u8]) -> Option<(u8, u16)> {
    let first = *stream.first()?;
    let (mut len, mut shift, mut i) = (0usize, 0u32, 1usize);
    loop {
        let byte = *stream.get(i)?;
        len |= usize::from(byte & 0x7f) << shift;
        i += 1;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return None;
        }
    }
    let frame = stream.get(i..i.checked_add(len)?)?;
    let qos = (first >> 1) & 0b11;
    if qos == 0 {
        return Some((0, 0));
    }
    let topic_len = usize::from(u16::from_be_bytes([*frame.first()?, *frame.get(1)?]));
    let at = 2 + topic_len;
    Some((qos, u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?])))
}

/// The client id handed to rumqttd's router, which drops a connection whose id contains `/`, `+`, `#` or `$`
/// (`validate_clientid`, without a CONNACK): those and `%` are percent-encoded. Injective, so two client ids
/// the gate tells apart never share a session; ids without these characters are unchanged.
fn router_client_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        match c {
            '%' | '/' | '+' | '#' | '$' => out.push_str(&format!("%{:02X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn connack_code(version: Version, reason: RefusalReason) -> ConnectReturnCode {
    match (version, reason.mqtt5_code()) {
        (Version::V4, _) => match reason.mqtt311_connack_code() {
            4 => ConnectReturnCode::BadUserNamePassword,
            2 => ConnectReturnCode::ClientIdentifierNotValid,
            _ => ConnectReturnCode::NotAuthorized,
        },
        (Version::V5, 0x86) => ConnectReturnCode::BadUserNamePassword,
        (Version::V5, 0x85) => ConnectReturnCode::ClientIdentifierNotValid,
        (Version::V5, 0x99) => ConnectReturnCode::PayloadFormatInvalid,
        (Version::V5, 0x95) => ConnectReturnCode::PacketTooLarge,
        (Version::V5, 0x90) => ConnectReturnCode::TopicNameInvalid,
        (Version::V5, 0x80) => ConnectReturnCode::UnspecifiedError,
        (Version::V5, 0x9F) => ConnectReturnCode::ConnectionRateExceeded,
        (Version::V5, 0x97) => ConnectReturnCode::QuotaExceeded,
        (Version::V5, _) => ConnectReturnCode::NotAuthorized,
    }
}

fn puback_reason(reason: RefusalReason) -> PubAckReason {
    match reason.mqtt5_code() {
        0x99 => PubAckReason::PayloadFormatInvalid,
        0x90 => PubAckReason::TopicNameInvalid,
        0x97 | 0x95 => PubAckReason::QuotaExceeded,
        0x80 => PubAckReason::UnspecifiedError,
        _ => PubAckReason::NotAuthorized,
    }
}

fn suback_code(version: Version, reason: RefusalReason) -> SubscribeReasonCode {
    match (version, reason.mqtt5_suback_code()) {
        (Version::V4, _) => SubscribeReasonCode::Failure,
        (Version::V5, 0x8F) => SubscribeReasonCode::TopicFilterInvalid,
        (Version::V5, _) => SubscribeReasonCode::NotAuthorized,
    }
}

/// v3.1.1 packets carry no properties; rumqttd's V4 encoder panics on any.
fn strip_properties(packet: Packet) -> Packet {
    match packet {
        Packet::ConnAck(a, _) => Packet::ConnAck(a, None),
        Packet::Publish(p, _) => Packet::Publish(p, None),
        Packet::PubAck(a, _) => Packet::PubAck(a, None),
        Packet::SubAck(a, _) => Packet::SubAck(a, None),
        Packet::PubRec(a, _) => Packet::PubRec(a, None),
        Packet::PubRel(a, _) => Packet::PubRel(a, None),
        Packet::PubComp(a, _) => Packet::PubComp(a, None),
        Packet::UnsubAck(a, _) => Packet::UnsubAck(a, None),
        Packet::Disconnect(d, _) => Packet::Disconnect(d, None),
        other => other,
    }
}

impl<P: Protocol> Guard<P> {
    fn protocol_error(&self, error: Error) -> Error {
        self.metrics.protocol_errors.fetch_add(1, Ordering::Relaxed);
        error
    }

    fn on_connect(&mut self, packet: Packet) -> Result<Packet, Error> {
        let Packet::Connect(mut connect, props, mut will, will_props, login) = packet else {
            return Err(self.protocol_error(Error::IncorrectPacketFormat));
        };
        if connect.keep_alive == 0 {
            connect.keep_alive = NO_KEEP_ALIVE;
        }
        let username = login.as_ref().map(|l| l.username.as_str()).filter(|u| !u.is_empty());
        let password = login.as_ref().map(|l| l.password.as_bytes()).filter(|p| !p.is_empty());
        // rumqttd would name it `rumqtt-<uuid>` after the gate saw "": an anonymous client gets its id here.
        let anonymous = username.is_none() && password.is_none();
        if connect.client_id.is_empty() && connect.clean_session && anonymous && self.gate.enforcing() {
            connect.client_id = smqtt_gate::anonymous_client_id();
            *self.assigned_id.borrow_mut() = Some(connect.client_id.clone());
        }
        let peer = match self.peer {
            Peer::Known(peer) => peer,
            Peer::Expected(_) => None,
        };
        let decision = self.gate.authenticate_from(&connect.client_id, username, password, peer).and_then(|session| {
            if let Some(w) = will.as_mut() {
                let topic = std::str::from_utf8(&w.topic).unwrap_or("");
                let qos = w.qos as u8;
                match self.gate.check_will_for(&session, topic, qos, w.retain, &w.message) {
                    PublishDecision::Accept => {}
                    PublishDecision::Replace(sealed) => w.message = Bytes::from(sealed),
                    PublishDecision::Refuse(refusal) => {
                        self.gate.disconnected(&session);
                        return Err(refusal);
                    }
                }
            }
            Ok(session)
        });
        match decision {
            Ok(session) => {
                tracing::debug!(client = %connect.client_id, role = session.role().kind(), "connect accepted");
                if let Some(lane) = &self.lane {
                    lane.accepted(&session);
                }
                self.session = Some(session);
                connect.client_id = router_client_id(&connect.client_id);
                Ok(Packet::Connect(connect, props, will, will_props, None))
            }
            Err(refusal) => {
                tracing::info!(client = %connect.client_id, %refusal, "connect refused");
                if let Some(lane) = &self.lane {
                    lane.refused();
                }
                self.refused_connect.set(Some(refusal.reason));
                self.assigned_id.borrow_mut().take();
                let refused = Connect { keep_alive: 60, client_id: String::new(), clean_session: false };
                Ok(Packet::Connect(refused, None, None, None, None))
            }
        }
    }

    /// `Ok(None)`: the packet was dropped (QoS 0 refusal).
    fn on_publish(&mut self, packet: Packet, qos: u8, pkid: u16, frame: FrameMeta) -> Result<Option<Packet>, Error> {
        let Packet::Publish(mut publish, mut props) = packet else {
            return Err(self.protocol_error(Error::IncorrectPacketFormat));
        };
        if let Some(alias) = props.as_mut().and_then(|p| p.topic_alias.take()) {
            if alias == 0 || alias > MAX_ALIAS {
                return Err(self.protocol_error(Error::MalformedPacket));
            }
            if publish.topic.is_empty() {
                let Some(topic) = self.aliases.get(&alias) else {
                    return Err(self.protocol_error(Error::MalformedPacket));
                };
                publish.topic = Bytes::from(topic.clone());
            } else {
                let topic =
                    std::str::from_utf8(&publish.topic).map_err(|_| self.protocol_error(Error::TopicNotUtf8))?;
                self.alias_bytes += topic.len();
                if self.alias_bytes > MAX_ALIAS_BYTES {
                    return Err(self.protocol_error(Error::PayloadTooLong));
                }
                self.aliases.insert(alias, topic.to_owned());
            }
        }
        let Some(session) = &self.session else { return Err(self.protocol_error(Error::IncorrectPacketFormat)) };
        let topic = std::str::from_utf8(&publish.topic).map_err(|_| self.protocol_error(Error::TopicNotUtf8))?;
        // Decided by the front door already (precheck.rs), else here.
        let decided = match self.lane.as_ref().map(|lane| lane.take(topic, frame)) {
            Some(Err(())) => return Err(self.protocol_error(Error::IncorrectPacketFormat)),
            Some(Ok(decided)) => decided,
            None => None,
        };
        let decision = match decided {
            Some(decision) => decision,
            None => {
                self.metrics.decided_inline.fetch_add(1, Ordering::Relaxed);
                self.gate.check_publish(session, topic, qos, publish.retain, &publish.payload)
            }
        };
        match decision {
            PublishDecision::Accept => Ok(Some(Packet::Publish(publish, props))),
            PublishDecision::Replace(sealed) => {
                publish.payload = Bytes::from(sealed);
                Ok(Some(Packet::Publish(publish, props)))
            }
            PublishDecision::Refuse(refusal) => {
                tracing::debug!(client = session.client_id(), topic, %refusal, "publish refused");
                if qos == 0 {
                    self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                    return Ok(None);
                }
                self.metrics.quarantined.fetch_add(1, Ordering::Relaxed);
                if qos == 1 {
                    self.puback_reasons.borrow_mut().insert(pkid, refusal.reason);
                }
                publish.topic = Bytes::from_static(QUARANTINE_TOPIC.as_bytes());
                publish.payload = Bytes::new();
                publish.retain = false;
                Ok(Some(Packet::Publish(publish, None)))
            }
        }
    }

    fn on_subscribe(&mut self, packet: Packet) -> Result<Packet, Error> {
        let Packet::Subscribe(mut subscribe, props) = packet else {
            return Err(self.protocol_error(Error::IncorrectPacketFormat));
        };
        let Some(session) = &self.session else { return Err(self.protocol_error(Error::IncorrectPacketFormat)) };
        let mut refused = Vec::new();
        let mut index = 0;
        subscribe.filters.retain(|filter| {
            let verdict = if filter.path.starts_with('$') && !filter.path.starts_with("$share/") {
                Err(RefusalReason::SubscribeDenied)
            } else {
                self.gate.check_subscribe(session, &filter.path).map_err(|r| r.reason)
            };
            if let Err(reason) = verdict {
                tracing::debug!(client = session.client_id(), filter = %filter.path, %reason, "subscribe refused");
                refused.push((index, reason));
            }
            index += 1;
            verdict.is_ok()
        });
        if !refused.is_empty() {
            self.suback_refused.borrow_mut().insert(subscribe.pkid, refused);
        }
        Ok(Packet::Subscribe(subscribe, props))
    }
}

impl<P: Protocol> Protocol for Guard<P> {
    fn read_mut(&mut self, stream: &mut BytesMut, max_size: usize) -> Result<Packet, Error> {
        if let Peer::Expected(secret) = &self.peer {
            if stream.len() < HEADER_LEN {
                return Err(Error::InsufficientBytes(HEADER_LEN - stream.len()));
            }
            let Some((peer, lane)) = secret.parse(stream) else {
                return Err(self.protocol_error(Error::IncorrectPacketFormat));
            };
            stream.advance(HEADER_LEN);
            self.peer = Peer::Known(Some(peer));
            self.lane = self.lanes.claim(lane);
        }
        loop {
            let Some(&first) = stream.first() else { return Err(Error::InsufficientBytes(2)) };
            let kind = first >> 4;
            // What a client may send: CONNECT, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, UNSUBSCRIBE,
            // PINGREQ, DISCONNECT. (rumqttd's decoders hit `unreachable!()` on some of the others.)
            if !matches!(kind, 1 | 3..=8 | 10 | 12 | 14) {
                return Err(self.protocol_error(Error::InvalidPacketType(kind)));
            }
            if kind == 1 && self.connected {
                return Err(self.protocol_error(Error::IncorrectPacketFormat));
            }
            // A complete frame is decoded or the connection closes: rumqttd's v5 decoders take a frame off the
            // stream and may then report it as incomplete (a PUBLISH without its property length), which
            // rumqttd treats as "read more", silently dropping it. The front door decided that frame already,
            // so dropping it would shift every later decision onto the wrong PUBLISH.
            let frame = match frame_len(stream, max_size) {
                Ok(Some(len)) => FrameMeta { first, len },
                Ok(None) => return Err(Error::InsufficientBytes(1)),
                Err(()) => return Err(self.protocol_error(Error::MalformedPacket)),
            };
            let publish_meta = if kind == 3 { peek_publish(stream) } else { None };
            let packet = match self.inner.read_mut(stream, max_size) {
                Ok(packet) => packet,
                Err(error) => return Err(self.protocol_error(error)),
            };
            return match packet {
                Packet::Connect(..) => {
                    self.connected = true;
                    self.on_connect(packet)
                }
                Packet::Publish(..) => {
                    let Some((qos, pkid)) = publish_meta else {
                        return Err(self.protocol_error(Error::MalformedPacket));
                    };
                    match self.on_publish(packet, qos, pkid, frame)? {
                        Some(packet) => Ok(packet),
                        None => continue,
                    }
                }
                Packet::Subscribe(..) => self.on_subscribe(packet),
                other => Ok(other),
            };
        }
    }

    fn write(&self, packet: Packet, buffer: &mut BytesMut) -> Result<usize, Error> {
        let packet = match packet {
            Packet::ConnAck(mut ack, mut props) => {
                if let Some(reason) = self.refused_connect.get() {
                    ack.code = connack_code(self.version, reason);
                    ack.session_present = false;
                    props = Some(ConnAckProperties {
                        reason_string: Some(reason.as_str().to_owned()),
                        ..Default::default()
                    });
                } else if let Some(id) = self.assigned_id.borrow_mut().take() {
                    props.get_or_insert_with(ConnAckProperties::default).assigned_client_identifier = Some(id);
                }
                Packet::ConnAck(ack, props)
            }
            Packet::PubAck(mut ack, mut props) => {
                if let Some(reason) = self.puback_reasons.borrow_mut().remove(&ack.pkid) {
                    ack.reason = puback_reason(reason);
                    props = Some(PubAckProperties {
                        reason_string: Some(reason.as_str().to_owned()),
                        user_properties: Vec::new(),
                    });
                }
                Packet::PubAck(ack, props)
            }
            Packet::SubAck(mut ack, props) => {
                if let Some(refused) = self.suback_refused.borrow_mut().remove(&ack.pkid) {
                    for (index, reason) in refused {
                        let at = index.min(ack.return_codes.len());
                        ack.return_codes.insert(at, suback_code(self.version, reason));
                    }
                }
                Packet::SubAck(ack, props)
            }
            other => other,
        };
        let packet = if self.version == Version::V4 { strip_properties(packet) } else { packet };
        self.inner.write(packet, buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_ids_are_escaped_injectively() {
        assert_eq!(router_client_id("bob"), "bob");
        assert_eq!(router_client_id("bob/x"), "bob%2Fx");
        assert_eq!(router_client_id("anon:a+#$%"), "anon:a%2B%23%24%25");
        // The raw id "bob%2Fx" and "bob/x" stay apart.
        assert_ne!(router_client_id("bob%2Fx"), router_client_id("bob/x"));
    }

    #[test]
    fn peeks_qos_and_packet_id() {
        // PUBLISH QoS 1, topic "a/b", pkid 0x0102, payload "x".
        let frame = [0x32, 8, 0, 3, b'a', b'/', b'b', 1, 2, b'x'];
        assert_eq!(peek_publish(&frame), Some((1, 0x0102)));
        assert_eq!(peek_publish(&frame[..5]), None);
        assert_eq!(peek_publish(&[0x30, 4, 0, 1, b'a', b'x']), Some((0, 0)));
        assert_eq!(peek_publish(&[0x32, 3, 0, 1, b'a']), None, "pkid missing");
        assert_eq!(peek_publish(&[0x32, 0xff, 0xff, 0xff, 0xff, 0x7f]), None);
        assert_eq!(peek_publish(&[]), None);
    }
}
