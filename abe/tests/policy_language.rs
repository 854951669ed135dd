//! Property tests of the policy language front end: printer/parser and JSON round trips, robustness against
//! arbitrary input, and the key attribute list syntax.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{arb_attribute_set, arb_attribute_set_any, arb_policy, arb_policy_any, PLAIN_NAMES};
use proptest::collection::vec;
use proptest::prelude::*;
use smqtt_abe::limits::{MAX_POLICY_DEPTH, MAX_POLICY_LEN};
use smqtt_abe::policy::{AttributeSet, Policy};
use smqtt_abe::{Error, Limit};

/// Whether `policy` is normalised (see [`Policy`]).
fn is_normalised(policy: &Policy) -> bool {
    match policy {
        Policy::Attr(_) | Policy::Compare { .. } => true,
        Policy::And(children) => {
            children.len() >= 2 && children.iter().all(|c| !matches!(c, Policy::And(_)) && is_normalised(c))
        }
        Policy::Or(children) => {
            children.len() >= 2 && children.iter().all(|c| !matches!(c, Policy::Or(_)) && is_normalised(c))
        }
        Policy::Threshold { k, children } => 1 < *k && *k < children.len() && children.iter().all(is_normalised),
    }
}

/// Every leaf name, with repeats.
fn leaf_names(policy: &Policy, out: &mut Vec<Vec<u8>>) {
    match policy {
        Policy::Attr(a) => out.push(a.as_bytes().to_vec()),
        Policy::Compare { name, .. } => out.push(name.as_bytes().to_vec()),
        Policy::And(c) | Policy::Or(c) | Policy::Threshold { children: c, .. } => {
            c.iter().for_each(|child| leaf_names(child, out))
        }
    }
}

/// Token soup biased towards the policy syntax.
fn policy_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "(",
        ")",
        "(",
        ")",
        " and ",
        " or ",
        " of ",
        "AND",
        "Of",
        "\"",
        "\\",
        "\\x",
        "\\x4",
        "0",
        "2",
        "12",
        " ",
        ",",
        "a",
        "b:c",
        ">=",
        "<",
        "<=",
        ">",
        "==",
        "=",
        "\t",
        "\n",
        "99999999999",
        "ü",
        "\u{0}",
        "\"x\"",
        "\"\"",
    ]);
    vec(token, 0..64).prop_map(|tokens| tokens.concat())
}

/// Token soup biased towards the JSON form.
fn json_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "\"attr\"",
        "\"attr_hex\"",
        "\"and\"",
        "\"or\"",
        "\"threshold\"",
        "\"compare\"",
        "\"k\"",
        "\"of\"",
        "\"name\"",
        "\"op\"",
        "\"value\"",
        "\">=\"",
        "\"a\"",
        "\"0f\"",
        "1",
        "0",
        "-1",
        "4294967296",
        "null",
        "true",
        "\"\"",
        " ",
    ]);
    vec(token, 0..64).prop_map(|tokens| tokens.concat())
}

/// If `text` parses, its canonical form parses back to the same policy.
fn check_parse_is_stable(text: &str) -> Result<(), TestCaseError> {
    if let Ok(policy) = Policy::parse(text) {
        prop_assert!(is_normalised(&policy), "{:?} parsed to unnormalised {:?}", text, policy);
        let printed = policy.to_string();
        prop_assert_eq!(Policy::parse(&printed), Ok(policy), "canonical form {:?}", printed);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_policies_are_normalised_and_distinct(policy in arb_policy(5)) {
        prop_assert!(is_normalised(&policy), "{:?}", policy);
        prop_assert!(policy.depth() <= 6);
        let mut names = Vec::new();
        leaf_names(&policy, &mut names);
        prop_assert!(names.len() <= common::MAX_LEAVES);
        let distinct: BTreeSet<_> = names.iter().collect();
        prop_assert_eq!(distinct.len(), names.len(), "repeated attribute in {}", policy);
    }

    #[test]
    fn print_parse_round_trip(policy in arb_policy(5)) {
        let printed = policy.to_string();
        prop_assert_eq!(Policy::parse(&printed), Ok(policy.clone()), "printed as {}", printed);
        prop_assert_eq!(policy.to_string(), printed, "printing is deterministic");
    }

    #[test]
    fn print_parse_round_trip_any_names(policy in arb_policy_any()) {
        prop_assert!(is_normalised(&policy), "{:?}", policy);
        let printed = policy.to_string();
        prop_assert_eq!(Policy::parse(&printed), Ok(policy), "printed as {}", printed);
    }

    #[test]
    fn json_round_trip(policy in arb_policy(5)) {
        prop_assert_eq!(Policy::from_json(&policy.to_json()), Ok(policy));
    }

    #[test]
    fn json_round_trip_any_names(policy in arb_policy_any()) {
        let json = policy.to_json();
        prop_assert_eq!(Policy::from_json(&json), Ok(policy.clone()), "json {}", json);
        prop_assert_eq!(policy.to_json(), json, "encoding is deterministic");
    }

    #[test]
    fn parse_arbitrary_strings(text in any::<String>()) {
        check_parse_is_stable(&text)?;
    }

    #[test]
    fn parse_token_soup(text in policy_soup()) {
        check_parse_is_stable(&text)?;
    }

    #[test]
    fn parse_mutated_policies(policy in arb_policy_any(), cut in any::<prop::sample::Index>(), insert in policy_soup()) {
        let printed = policy.to_string();
        let at = cut.index(printed.len() + 1);
        if printed.is_char_boundary(at) {
            let mutated = format!("{}{}{}", &printed[..at], insert, &printed[at..]);
            check_parse_is_stable(&mutated)?;
            let truncated = &printed[..at];
            check_parse_is_stable(truncated)?;
        }
    }

    #[test]
    fn from_json_arbitrary_strings(text in any::<String>()) {
        let _ = Policy::from_json(&text);
    }

    #[test]
    fn from_json_token_soup(text in json_soup()) {
        if let Ok(policy) = Policy::from_json(&text) {
            prop_assert!(is_normalised(&policy));
            prop_assert_eq!(Policy::from_json(&policy.to_json()), Ok(policy));
        }
    }

    #[test]
    fn from_json_mutated(policy in arb_policy_any(), cut in any::<prop::sample::Index>(), insert in json_soup()) {
        let json = policy.to_json();
        let at = cut.index(json.len() + 1);
        if json.is_char_boundary(at) {
            let _ = Policy::from_json(&format!("{}{}{}", &json[..at], insert, &json[at..]));
            let _ = Policy::from_json(&json[..at]);
        }
    }

    #[test]
    fn attribute_set_round_trip(set in arb_attribute_set()) {
        let printed = set.to_string();
        prop_assert_eq!(AttributeSet::parse(&printed), Ok(set.clone()), "printed as {}", printed);
        prop_assert!(set.iter().count() == set.len());
    }

    #[test]
    fn attribute_set_round_trip_any_names(set in arb_attribute_set_any()) {
        let printed = set.to_string();
        prop_assert_eq!(AttributeSet::parse(&printed), Ok(set), "printed as {}", printed);
    }

    #[test]
    fn attribute_set_parse_arbitrary(text in any::<String>(), soup in policy_soup()) {
        for text in [text, soup] {
            if let Ok(set) = AttributeSet::parse(&text) {
                prop_assert_eq!(AttributeSet::parse(&set.to_string()), Ok(set));
            }
        }
    }

    #[test]
    fn evaluation_respects_gates(policy in arb_policy(4), set in arb_attribute_set()) {
        // Adding every plain attribute can only help; an `or` of the policy with a held attribute always holds.
        let satisfied = policy.is_satisfied_by(&set);
        let mut all = AttributeSet::parse(&PLAIN_NAMES.join(",")).expect("valid names").iter().collect::<Vec<_>>();
        all.extend(set.iter().filter(|a| matches!(a, smqtt_abe::policy::KeyAttribute::Numeric { .. })));
        let superset = AttributeSet::new(all).expect("distinct");
        prop_assert!(!satisfied || policy.is_satisfied_by(&superset));
        let either = Policy::or(vec![policy.clone(), Policy::parse("a0").expect("valid")]).expect("two children");
        let with_a0 = AttributeSet::parse("a0").expect("valid");
        prop_assert!(either.is_satisfied_by(&with_a0));
    }
}

#[test]
fn deeply_nested_input_fails_fast() {
    let limit = |result: Result<Policy, Error>| match result {
        Err(Error::LimitExceeded { what, .. }) => what,
        other => panic!("expected a limit error, got {other:?}"),
    };
    let start = Instant::now();
    assert_eq!(limit(Policy::parse(&"(".repeat(100_000))), Limit::PolicyLength);
    assert_eq!(limit(Policy::parse(&format!("{}a", "(".repeat(MAX_POLICY_LEN - 1)))), Limit::PolicyDepth);
    assert_eq!(limit(Policy::parse(&format!("{}a", "2 of (".repeat(1000)))), Limit::PolicyDepth);
    assert_eq!(limit(Policy::from_json(&"[".repeat(100_000))), Limit::PolicyLength);
    let deep_json =
        format!("{}{{\"attr\":\"x\"}}{}", r#"{"or":["#.repeat(MAX_POLICY_DEPTH), "]}".repeat(MAX_POLICY_DEPTH));
    assert_eq!(limit(Policy::from_json(&deep_json)), Limit::PolicyDepth);
    assert!(matches!(Policy::from_json(&r#"{"or":["#.repeat(5000)), Err(Error::PolicyJson(_))));
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
}

#[test]
fn deep_canonical_policies_round_trip() {
    // A chain of gates as deep as allowed, alternating kinds so that the canonical form nests parentheses.
    let leaf = |i: usize| Policy::parse(&format!("x{i}")).expect("valid");
    let mut policy = leaf(0);
    for level in 1..MAX_POLICY_DEPTH {
        let children = vec![policy, leaf(2 * level), leaf(2 * level + 1)];
        policy = match level % 3 {
            0 => Policy::and(children),
            1 => Policy::threshold(2, children),
            _ => Policy::or(children),
        }
        .expect("valid gate");
    }
    assert_eq!(policy.depth(), MAX_POLICY_DEPTH);
    let printed = policy.to_string();
    assert_eq!(Policy::parse(&printed), Ok(policy.clone()), "{printed}");
    assert_eq!(Policy::from_json(&policy.to_json()), Ok(policy.clone()));
    let deeper = Policy::and(vec![Policy::or(vec![policy, leaf(1000)]).expect("or"), leaf(1001)]).expect("and");
    let too_deep = Err(Error::LimitExceeded { what: Limit::PolicyDepth, limit: MAX_POLICY_DEPTH });
    assert_eq!(Policy::parse(&deeper.to_string()), too_deep);
    assert_eq!(Policy::from_json(&deeper.to_json()), too_deep);
}
