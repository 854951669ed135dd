//! What an opener hands out: a [`Message`] that passed every check, and the MQTT [`QoS`] it came with.

use core::fmt;

/// An MQTT quality of service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    /// At most once (0).
    #[default]
    AtMostOnce,
    /// At least once (1).
    AtLeastOnce,
    /// Exactly once (2).
    ExactlyOnce,
}

impl QoS {
    /// The level as MQTT encodes it: 0, 1 or 2.
    pub fn level(self) -> u8 {
        match self {
            QoS::AtMostOnce => 0,
            QoS::AtLeastOnce => 1,
            QoS::ExactlyOnce => 2,
        }
    }
}

/// A QoS level that is not 0, 1 or 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("QoS {0} is not 0, 1 or 2")]
pub struct InvalidQoS(pub u8);

impl TryFrom<u8> for QoS {
    type Error = InvalidQoS;

    fn try_from(level: u8) -> Result<QoS, InvalidQoS> {
        match level {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            other => Err(InvalidQoS(other)),
        }
    }
}

impl fmt::Display for QoS {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.level())
    }
}

/// A message that passed every check: the signature (or the accepted session authentication), the publisher's
/// credential and rights, the policy, the AEAD, the age and the replay window. Only an
/// [`Opener`](crate::Opener) makes one.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) publisher: String,
    pub(crate) publisher_attributes: String,
    pub(crate) policy: String,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
}

impl Message {
    /// The topic it arrived on.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The decrypted payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The decrypted payload, taken out.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// The publisher, as its authority credential names it.
    pub fn publisher(&self) -> &str {
        &self.publisher
    }

    /// The publisher's attributes, from its credential.
    pub fn publisher_attributes(&self) -> &str {
        &self.publisher_attributes
    }

    /// The policy the payload was encrypted under.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// The QoS it was delivered with.
    pub fn qos(&self) -> QoS {
        self.qos
    }

    /// Whether the broker delivered it as a retained message (and its publisher sealed it as one).
    pub fn retain(&self) -> bool {
        self.retain
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("topic", &self.topic)
            .field("payload_len", &self.payload.len())
            .field("publisher", &self.publisher)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_levels_round_trip_and_others_are_refused() {
        for level in 0..=2 {
            assert_eq!(QoS::try_from(level).map(QoS::level), Ok(level));
        }
        assert_eq!(QoS::try_from(3), Err(InvalidQoS(3)));
        assert_eq!(QoS::try_from(255), Err(InvalidQoS(255)));
    }
}
