//! Topic filters: the MQTT 3.1.1 §4.7 examples, validity rules, and a property test against a reference
//! matcher written independently (recursive over level lists).

mod common;

use common::ok;
use proptest::collection::vec;
use proptest::prelude::*;
use smqtt_wire::{validate_topic, Error, TopicFilter};

/// (filter, topic, matches) — the examples of MQTT 3.1.1 §4.7.1.2, §4.7.1.3, §4.7.2 and a few edge cases.
const CASES: &[(&str, &str, bool)] = &[
    // §4.7.1.2 multi-level wildcard
    ("sport/tennis/player1/#", "sport/tennis/player1", true),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", true),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true),
    ("sport/tennis/#", "sport/tennis", true),
    ("sport/tennis/#", "sport/tennis/player1/ranking", true),
    ("sport/tennis/#", "sport/tennisplayer1", false),
    ("sport/#", "sport", true),
    ("#", "sport/tennis/player1", true),
    ("#", "/", true),
    // §4.7.1.3 single-level wildcard
    ("sport/tennis/+", "sport/tennis/player1", true),
    ("sport/tennis/+", "sport/tennis/player2", true),
    ("sport/tennis/+", "sport/tennis/player1/ranking", false),
    ("sport/+", "sport", false),
    ("sport/+", "sport/", true),
    ("sport/+", "sport/tennis/player1", false),
    ("+/+", "/finance", true),
    ("/+", "/finance", true),
    ("+", "/finance", false),
    ("+/tennis/#", "sport/tennis", true),
    ("+/tennis/#", "sport/tennis/x/y", true),
    ("+/tennis/#", "sport/golf", false),
    // §4.7.2 topics beginning with $
    ("#", "$SYS/x", false),
    ("#", "$SYS", false),
    ("+/monitor/Clients", "$SYS/monitor/Clients", false),
    ("$SYS/#", "$SYS/monitor/Clients", true),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
    ("$SYS/#", "$SYS", true),
    // exact levels: case-sensitive, empty levels count
    ("sport/tennis", "sport/tennis", true),
    ("sport/tennis", "Sport/tennis", false),
    ("sport/tennis", "sport/tennis/", false),
    ("sport//tennis", "sport//tennis", true),
    ("sport/+/tennis", "sport//tennis", true),
    ("/", "/", true),
    ("/", "//", false),
    ("a/b/c/#", "a/b", false),
    ("a/$x", "a/$x", true),
    ("+/$x", "a/$x", true),
];

#[test]
fn mqtt_spec_matching_table() {
    for &(filter, topic, expected) in CASES {
        let f = ok(TopicFilter::new(filter));
        assert_eq!(f.matches(topic), expected, "{filter:?} vs {topic:?}");
        assert_eq!(reference(filter, topic), expected, "reference: {filter:?} vs {topic:?}");
    }
}

#[test]
fn invalid_filters() {
    for bad in ["sport/tennis#", "sport+", "#/a", "sport/#/ranking", "sport/++", "+sport", "a#", "", "a\0"] {
        assert!(matches!(TopicFilter::new(bad), Err(Error::InvalidTopicFilter(_))), "{bad:?}");
    }
    assert!(TopicFilter::new(&"x/".repeat(512)).is_ok(), "1024 bytes");
    assert!(TopicFilter::new(&format!("{}x", "x/".repeat(512))).is_err(), "1025 bytes");
}

#[test]
fn invalid_topics() {
    for bad in ["", "sport/+", "sport/#", "#", "a\0b"] {
        assert!(matches!(validate_topic(bad), Err(Error::InvalidTopic(_))), "{bad:?}");
    }
    assert!(validate_topic(&"a".repeat(1025)).is_err());
    assert_eq!(validate_topic(&"a".repeat(1024)), Ok(()));
}

#[test]
fn display_and_parse() {
    let f: TopicFilter = ok("a/+/#".parse());
    assert_eq!(f.to_string(), "a/+/#");
    assert_eq!(f.as_str(), "a/+/#");
}

/// The spec's rules restated as a recursion over level lists.
fn reference(filter: &str, topic: &str) -> bool {
    fn levels(filter: &[&str], topic: &[&str]) -> bool {
        match (filter.split_first(), topic.split_first()) {
            (None, None) => true,
            (Some((&"#", [])), _) => true,
            (Some((&"+", f)), Some((_, t))) => levels(f, t),
            (Some((a, f)), Some((b, t))) => a == b && levels(f, t),
            _ => false,
        }
    }
    if topic.starts_with('$') && (filter.starts_with('#') || filter.starts_with('+')) {
        return false;
    }
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    levels(&f, &t)
}

fn arb_filter() -> impl Strategy<Value = String> {
    (vec(prop::sample::select(&["a", "b", "", "+", "$s"][..]), 1..5), any::<bool>())
        .prop_map(|(mut levels, hash)| {
            if hash {
                levels.push("#");
            }
            levels.join("/")
        })
        .prop_filter("a filter is not empty", |f| !f.is_empty())
}

fn arb_topic() -> impl Strategy<Value = String> {
    vec(prop::sample::select(&["a", "b", "", "$s", "ab"][..]), 1..6)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("a topic is not empty", |t| !t.is_empty())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn matching_agrees_with_the_reference(filter in arb_filter(), topic in arb_topic()) {
        let f = TopicFilter::new(&filter).map_err(|e| TestCaseError::fail(format!("{filter:?}: {e}")))?;
        prop_assert_eq!(f.matches(&topic), reference(&filter, &topic), "{:?} vs {:?}", filter, topic);
    }

    /// A topic matches the filter made by replacing any of its levels with `+`, or any suffix with `#`.
    #[test]
    fn generalised_topics_match(topic in arb_topic(), plus in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let levels: Vec<&str> = topic.split('/').collect();
        let generalised: Vec<&str> =
            levels.iter().enumerate().map(|(i, l)| if plus & (1 << (i % 8)) != 0 { "+" } else { *l }).collect();
        let starts_wild = generalised[0] == "+";
        let f = ok(TopicFilter::new(&generalised.join("/")));
        prop_assert_eq!(f.matches(&topic), !(starts_wild && topic.starts_with('$')));
        let keep = cut.index(levels.len() + 1);
        let hashed = [&levels[..keep], &["#"]].concat().join("/");
        let f = ok(TopicFilter::new(&hashed));
        prop_assert_eq!(f.matches(&topic), !(keep == 0 && topic.starts_with('$')));
    }

    /// Arbitrary text never panics, and what validates as a filter without wildcards matches exactly itself.
    #[test]
    fn arbitrary_text(text in "\\PC{0,40}", other in "\\PC{0,40}") {
        if let Ok(f) = TopicFilter::new(&text) {
            prop_assert_eq!(f.as_str(), text.as_str());
            let _ = f.matches(&other);
            if validate_topic(&text).is_ok() {
                prop_assert!(f.matches(&text));
                prop_assert_eq!(f.matches(&other), other == text);
            }
        }
    }
}
