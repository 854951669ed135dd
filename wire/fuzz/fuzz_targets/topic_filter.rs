//! Topic filters and topic names: `TopicFilter::new`, `validate_topic` and `TopicFilter::matches` never panic,
//! agree with a naive oracle written from MQTT 3.1.1 §4.7 (character by character, recursive matching), and an
//! accepted filter prints back to exactly its input.
//!
//! Input: the first byte splits the rest into filter text and topic text (both must be UTF-8, else nothing is
//! checked: both parsers take `&str`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smqtt_wire::{validate_topic, TopicFilter};

const MAX: usize = 1024;

/// §4.7.1: `#` only as the whole last level, `+` only as a whole level; §1.5.3: no NUL; 1..=1024 bytes.
fn oracle_filter_ok(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX || s.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = s.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        for c in level.chars() {
            if c == '#' && !(*level == "#" && i == levels.len() - 1) {
                return false;
            }
            if c == '+' && *level != "+" {
                return false;
            }
        }
    }
    true
}

/// §4.7.1: no wildcard characters in a topic name; no NUL; 1..=1024 bytes.
fn oracle_topic_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX && !s.chars().any(|c| c == '\0' || c == '+' || c == '#')
}

/// Recursive matching over level lists.
fn oracle_levels(filter: &[&str], topic: &[&str]) -> bool {
    match (filter.split_first(), topic.split_first()) {
        (Some((&"#", _)), _) => true,
        (Some((&f, f_rest)), Some((&t, t_rest))) => (f == "+" || f == t) && oracle_levels(f_rest, t_rest),
        (None, None) => true,
        _ => false,
    }
}

fn oracle_matches(filter: &str, topic: &str) -> bool {
    if !oracle_topic_ok(topic) {
        return false;
    }
    // §4.7.2: topics starting with `$` are not matched by filters starting with a wildcard.
    if topic.starts_with('$') && (filter.starts_with('#') || filter.starts_with('+')) {
        return false;
    }
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    oracle_levels(&f, &t)
}

fuzz_target!(|data: &[u8]| {
    let (split, rest) = data.split_first().map_or((0, data), |(b, rest)| (usize::from(*b), rest));
    let split = split.min(rest.len());
    let (Ok(filter_text), Ok(topic)) = (std::str::from_utf8(&rest[..split]), std::str::from_utf8(&rest[split..]))
    else {
        return;
    };
    assert_eq!(validate_topic(topic).is_ok(), oracle_topic_ok(topic), "validate_topic({topic:?})");
    let parsed = TopicFilter::new(filter_text);
    assert_eq!(parsed.is_ok(), oracle_filter_ok(filter_text), "TopicFilter::new({filter_text:?})");
    let Ok(filter) = parsed else { return };
    assert_eq!(filter.as_str(), filter_text);
    assert_eq!(filter.to_string().parse::<TopicFilter>().as_ref(), Ok(&filter));
    assert_eq!(filter.matches(topic), oracle_matches(filter_text, topic), "{filter_text:?} vs {topic:?}");
    // A valid topic name with no wildcard is a filter matching exactly itself (and, for `$` topics, too).
    if validate_topic(topic).is_ok() {
        let exact = TopicFilter::new(topic).expect("a topic name is a filter");
        assert!(exact.matches(topic), "{topic:?} does not match itself");
    }
});
