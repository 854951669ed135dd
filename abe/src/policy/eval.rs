//! The plain boolean meaning of a policy: the oracle the cryptographic layer must agree with.

use super::ast::Policy;
use super::attributes::AttributeSet;

impl Policy {
    /// Whether a key holding `attrs` satisfies the policy.
    ///
    /// An attribute leaf holds iff the set contains that plain attribute; a comparison `name op bound` holds iff
    /// the set has a numeric value `v` for `name` and `v op bound`; gates combine their children as `and`, `or`
    /// and "at least `k`".
    pub fn is_satisfied_by(&self, attrs: &AttributeSet) -> bool {
        match self {
            Policy::Attr(attribute) => attrs.contains(attribute),
            Policy::Compare { name, op, bound } => attrs.numeric(name).is_some_and(|value| op.holds(value, *bound)),
            Policy::And(children) => children.iter().all(|child| child.is_satisfied_by(attrs)),
            Policy::Or(children) => children.iter().any(|child| child.is_satisfied_by(attrs)),
            Policy::Threshold { k, children } => {
                let mut satisfied = 0;
                children.iter().any(|child| {
                    if child.is_satisfied_by(attrs) {
                        satisfied += 1;
                    }
                    satisfied >= *k
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(policy: &str, attrs: &str) -> bool {
        let policy = Policy::parse(policy).unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        let attrs = AttributeSet::parse(attrs).unwrap_or_else(|e| panic!("{attrs:?}: {e}"));
        policy.is_satisfied_by(&attrs)
    }

    #[test]
    fn attributes_and_gates() {
        let policy = "(role:operator and site:berlin) or role:admin";
        assert!(holds(policy, "role:operator, site:berlin"));
        assert!(holds(policy, "role:admin"));
        assert!(!holds(policy, "role:operator, site:paris"));
        assert!(!holds(policy, ""));
        assert!(!holds("a", "a = 1"));
        assert!(holds("\"and\" or b", "\"and\""));
    }

    #[test]
    fn thresholds() {
        let policy = "2 of (dept:ops, dept:sec, clearance:high)";
        assert!(!holds(policy, "dept:ops"));
        assert!(holds(policy, "dept:ops, clearance:high"));
        assert!(holds(policy, "dept:ops, dept:sec, clearance:high"));
        assert!(holds("2 of (a, b and c, d)", "b, c, d"));
        assert!(!holds("2 of (a, b and c, d)", "b, d"));
    }

    #[test]
    fn comparisons() {
        assert!(holds("level >= 3 and zone:eu", "zone:eu, level = 3"));
        assert!(!holds("level >= 3 and zone:eu", "zone:eu, level = 2"));
        assert!(!holds("level >= 3", "level"));
        assert!(holds("level < 3", "level = 2"));
        assert!(!holds("level < 3", "level = 3"));
        assert!(holds("level <= 3", "level = 3"));
        assert!(holds("level > 3", "level = 4"));
        assert!(!holds("level > 3", "level = 3"));
        assert!(holds("level == 0", "level = 0"));
        assert!(!holds("level == 0", "level = 1"));
        assert!(!holds("level < 0", "level = 0"));
        assert!(holds("level <= 4294967295", "level = 4294967295"));
    }
}
