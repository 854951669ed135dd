//! MQTT topic names and topic filters (MQTT 3.1.1 §4.7, the same rules in MQTT 5 §4.7).

use core::fmt::{self, Display, Formatter};
use core::str::FromStr;

use crate::error::{Error, Result};
use crate::limits::MAX_TOPIC_LEN;

/// Checks that `topic` is a topic name a client may publish to: 1..=[`MAX_TOPIC_LEN`] bytes of UTF-8, no
/// wildcard characters `+` and `#` (§4.7.1), no NUL (§1.5.3).
///
/// Topics starting with `$` are valid names; [`TopicFilter::matches`] keeps them away from wildcard filters.
///
/// # Errors
/// [`Error::InvalidTopic`].
pub fn validate_topic(topic: &str) -> Result<()> {
    if topic.is_empty() {
        return Err(Error::InvalidTopic("empty"));
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(Error::InvalidTopic("longer than 1024 bytes"));
    }
    if topic.contains('\0') {
        return Err(Error::InvalidTopic("contains NUL"));
    }
    if topic.contains(['+', '#']) {
        return Err(Error::InvalidTopic("wildcards are not allowed in a topic name"));
    }
    Ok(())
}

/// An MQTT topic filter: 1..=[`MAX_TOPIC_LEN`] bytes of UTF-8 without NUL, where `#` may only be the whole
/// last level and `+` only a whole level.
///
/// ```
/// use smqtt_wire::TopicFilter;
/// let filter = TopicFilter::new("plant/+/temperature/#")?;
/// assert!(filter.matches("plant/hall-3/temperature"));
/// assert!(filter.matches("plant/hall-3/temperature/probe/2"));
/// assert!(!filter.matches("plant/hall-3/pressure"));
/// assert!(TopicFilter::new("plant/hall+").is_err());
/// # Ok::<(), smqtt_wire::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct TopicFilter(String);

impl TopicFilter {
    /// Validates `s` as a topic filter.
    ///
    /// # Errors
    /// [`Error::InvalidTopicFilter`] for empty text, more than [`MAX_TOPIC_LEN`] bytes, NUL, a `#` that is not
    /// the whole last level, or a `+` that is not a whole level.
    pub fn new(s: &str) -> Result<TopicFilter> {
        check_filter(s)?;
        Ok(TopicFilter(s.to_owned()))
    }

    /// The filter as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `topic` matches this filter under MQTT's rules: levels are separated by `/` and compared
    /// byte for byte, `+` matches exactly one level (which may be empty), a final `#` matches the parent level
    /// and any number of child levels, and a topic starting with `$` never matches a filter starting with a
    /// wildcard (§4.7.2). A `topic` that is not a valid topic name ([`validate_topic`]) matches nothing.
    pub fn matches(&self, topic: &str) -> bool {
        if validate_topic(topic).is_err() {
            return false;
        }
        if topic.starts_with('$') && self.0.starts_with(['+', '#']) {
            return false;
        }
        let mut levels = topic.split('/');
        for pattern in self.0.split('/') {
            if pattern == "#" {
                return true;
            }
            match levels.next() {
                Some(level) if pattern == "+" || pattern == level => {}
                _ => return false,
            }
        }
        levels.next().is_none()
    }
}

fn check_filter(s: &str) -> Result<()> {
    if s.is_empty() {
        return Err(Error::InvalidTopicFilter("empty"));
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(Error::InvalidTopicFilter("longer than 1024 bytes"));
    }
    if s.contains('\0') {
        return Err(Error::InvalidTopicFilter("contains NUL"));
    }
    let mut levels = s.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        if level.contains('#') && (level != "#" || !last) {
            return Err(Error::InvalidTopicFilter("'#' must be the whole last level"));
        }
        if level.contains('+') && level != "+" {
            return Err(Error::InvalidTopicFilter("'+' must be a whole level"));
        }
    }
    Ok(())
}

impl Display for TopicFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TopicFilter {
    type Err = Error;

    fn from_str(s: &str) -> Result<TopicFilter> {
        TopicFilter::new(s)
    }
}

impl AsRef<str> for TopicFilter {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_validity() {
        for ok in ["#", "+", "/", "a/#", "+/+", "/+", "+/tennis/#", "sport/+/player1", "a//b", "$SYS/#", "ä/ö"] {
            assert!(TopicFilter::new(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "sport/tennis#", "sport+", "#/a", "a/#/b", "a/b#", "++", "a/+b", "##", "a\0b"] {
            assert!(matches!(TopicFilter::new(bad), Err(Error::InvalidTopicFilter(_))), "{bad:?}");
        }
        assert!(TopicFilter::new(&"a".repeat(1024)).is_ok());
        assert!(TopicFilter::new(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn topic_validity() {
        for ok in ["a", "/", "$SYS/x", "a//b", " ", "ä"] {
            assert_eq!(validate_topic(ok), Ok(()), "{ok:?}");
        }
        for bad in ["", "a/+", "a/#", "+", "#", "a\0", "a+b"] {
            assert!(matches!(validate_topic(bad), Err(Error::InvalidTopic(_))), "{bad:?}");
        }
        assert_eq!(validate_topic(&"a".repeat(1024)), Ok(()));
        assert!(validate_topic(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn invalid_topics_match_nothing() {
        let all = TopicFilter::new("#").unwrap_or_else(|e| panic!("{e}"));
        assert!(all.matches("a"));
        for bad in ["", "a/+", "a/#", "a\0"] {
            assert!(!all.matches(bad), "{bad:?}");
        }
    }
}
