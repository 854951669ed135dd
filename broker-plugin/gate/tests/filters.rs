//! `filters_overlap` (the `deny_subscribe` check) against a plain oracle: enumerate every topic over a small
//! alphabet and depth, and look for one that both filters match.

use proptest::prelude::*;
use smqtt_gate::filters_overlap;
use smqtt_wire::TopicFilter;

/// Topic levels: ordinary, empty, and `$`-prefixed (which wildcards at the first level never match).
const LEVELS: [&str; 4] = ["a", "b", "", "$s"];

fn topics() -> Vec<String> {
    let mut all: Vec<Vec<&str>> = vec![vec![]];
    let mut out = Vec::new();
    for _ in 0..5 {
        all = all.iter().flat_map(|t| LEVELS.iter().map(move |l| [t.clone(), vec![*l]].concat())).collect();
        out.extend(all.iter().map(|t| t.join("/")).filter(|t| !t.is_empty()));
    }
    out
}

fn oracle(a: &TopicFilter, b: &TopicFilter, topics: &[String]) -> bool {
    topics.iter().any(|t| a.matches(t) && b.matches(t))
}

fn filter() -> impl Strategy<Value = String> {
    (prop::collection::vec(prop::sample::select(vec!["a", "b", "", "$s", "+"]), 1..4), any::<bool>()).prop_map(
        |(levels, hash)| {
            let mut f = levels.join("/");
            if hash {
                f.push_str("/#");
            }
            f
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn overlap_agrees_with_enumeration(a in filter(), b in filter()) {
        let all = topics();
        let (Ok(fa), Ok(fb)) = (TopicFilter::new(&a), TopicFilter::new(&b)) else { return Ok(()) };
        prop_assert_eq!(filters_overlap(&a, &b), oracle(&fa, &fb, &all), "{} vs {}", a, b);
        prop_assert_eq!(filters_overlap(&a, &b), filters_overlap(&b, &a));
    }
}

#[test]
fn the_bypasses_of_issue_13_overlap() {
    for wide in ["test/#", "#", "+/nosubscribe", "test/+", "+/+", "+/#", "test/nosubscribe/#"] {
        assert!(filters_overlap(wide, "test/nosubscribe"), "{wide}");
    }
    for honest in ["other/#", "test/other", "test/+/x", "$SYS/#"] {
        assert!(!filters_overlap(honest, "test/nosubscribe"), "{honest}");
    }
    assert!(!filters_overlap("#", "$s/x") && filters_overlap("$s/#", "$s/+"));
}
