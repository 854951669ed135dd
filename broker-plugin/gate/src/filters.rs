//! Relations between topic filters that MQTT itself does not define.

/// Whether every topic name matching `inner` also matches `outer` (both valid filters). Topics starting with
/// `$` never match a filter whose first level is a wildcard (MQTT §4.7.2), which this respects.
pub(crate) fn filter_within(inner: &str, outer: &str) -> bool {
    let inner: Vec<&str> = inner.split('/').collect();
    let mut i = 0;
    for level in outer.split('/') {
        let dollar = i == 0 && inner.first().is_some_and(|l| l.starts_with('$'));
        if level == "#" {
            return !dollar;
        }
        let Some(&own) = inner.get(i) else { return false };
        match (level, own) {
            (_, "#") => return false,
            ("+", _) if dollar => return false,
            ("+", _) => {}
            (literal, own) if literal == own => {}
            _ => return false,
        }
        i += 1;
    }
    i == inner.len()
}

/// Whether some topic name matches both `a` and `b` (valid filters): a subscription to `a` would receive
/// messages published on `b`'s topics. `#` matches any number of remaining levels including none (`a/#` matches
/// `a`), `+` exactly one (possibly empty) level; a topic starting with `$` never matches a filter whose first
/// level is a wildcard (MQTT §4.7.2), so `#` and `$SYS/x` do not overlap.
pub fn filters_overlap(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    // A topic name is never empty: a witness that would be the single empty level does not count.
    let empty_first = a.first() == Some(&"") || b.first() == Some(&"");
    for i in 0.. {
        match (a.get(i).copied(), b.get(i).copied()) {
            (Some("#"), Some(x)) | (Some(x), Some("#")) if i == 0 && x.starts_with('$') => return false,
            (Some("#"), None) | (None, Some("#")) | (None, None) if i == 1 && empty_first => return false,
            (Some("#"), _) | (_, Some("#")) => return true,
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(x), Some(y)) => {
                let wild = |l: &str| l == "+";
                if i == 0 && ((wild(x) && y.starts_with('$')) || (wild(y) && x.starts_with('$'))) {
                    return false;
                }
                if !(wild(x) || wild(y) || x == y) {
                    return false;
                }
            }
        }
    }
    false
}

/// The filter a subscription actually applies: `$share/<group>/<filter>` (MQTT 5 shared subscriptions) is
/// `<filter>`. `None` for a malformed shared subscription.
pub(crate) fn unshared(filter: &str) -> Option<&str> {
    match filter.strip_prefix("$share/") {
        None => Some(filter),
        Some(rest) => {
            let (group, inner) = rest.split_once('/')?;
            (!group.is_empty() && !group.contains(['+', '#']) && !inner.is_empty()).then_some(inner)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within() {
        for (inner, outer) in [
            ("a/b", "a/b"),
            ("a/b", "a/+"),
            ("a/+", "a/+"),
            ("a/+", "a/#"),
            ("a", "a/#"),
            ("a/#", "a/#"),
            ("a/b/#", "a/#"),
            ("a/b/c", "#"),
            ("+/b", "+/+"),
            ("$SYS/x", "$SYS/#"),
        ] {
            assert!(filter_within(inner, outer), "{inner} within {outer}");
        }
        for (inner, outer) in [
            ("a/#", "a/b"),
            ("a/#", "a/+"),
            ("a/+", "a/b"),
            ("a", "a/+"),
            ("a/b/c", "a/+"),
            ("a/#", "a/+/#"),
            ("#", "a/#"),
            ("$SYS/x", "#"),
            ("$SYS/x", "+/x"),
            ("b", "a"),
            ("test/nosubscribe/x", "test/nosubscribe"),
        ] {
            assert!(!filter_within(inner, outer), "{inner} not within {outer}");
        }
    }

    #[test]
    fn overlap() {
        for (a, b) in [
            ("test/#", "test/nosubscribe"),
            ("#", "test/nosubscribe"),
            ("+/nosubscribe", "test/nosubscribe"),
            ("test/+", "test/nosubscribe"),
            ("test/nosubscribe/#", "test/nosubscribe"),
            ("test/+/x", "+/a/#"),
            ("$SYS/#", "$SYS/x"),
        ] {
            assert!(filters_overlap(a, b) && filters_overlap(b, a), "{a} overlaps {b}");
        }
        for (a, b) in [
            ("other/#", "test/nosubscribe"),
            ("test/+/x", "test/nosubscribe"),
            ("#", "$SYS/x"),
            ("+/x", "$SYS/x"),
            ("a", "a/+"),
        ] {
            assert!(!filters_overlap(a, b) && !filters_overlap(b, a), "{a} does not overlap {b}");
        }
    }

    #[test]
    fn shared() {
        assert_eq!(unshared("a/b"), Some("a/b"));
        assert_eq!(unshared("$share/g/a/#"), Some("a/#"));
        assert_eq!(unshared("$share/g"), None);
        assert_eq!(unshared("$share//a"), None);
        assert_eq!(unshared("$share/g/"), None);
    }
}
