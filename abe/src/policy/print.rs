//! The canonical printer: `Display` for attributes and policies, the inverse of [`Policy::parse`].
//!
//! Canonical form: single spaces around keywords and operators, `, ` between threshold children, and
//! parentheses exactly around gates that are children of an `and` or an `or`. Attributes are bare when the
//! bare-name rule allows it, otherwise quoted with printable ASCII written raw (`"` and `\` escaped) and every
//! other byte as a lowercase `\xhh` escape.

use core::fmt::{self, Display, Formatter, Write};

use super::ast::{Attribute, Policy};
use super::parse::is_bare_name;

impl Display for Attribute {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let bytes = self.as_bytes();
        if is_bare_name(bytes) {
            // Bare names are ASCII, so every byte is a whole character.
            return bytes.iter().try_for_each(|&b| f.write_char(char::from(b)));
        }
        f.write_char('"')?;
        for &b in bytes {
            match b {
                b'"' => f.write_str("\\\"")?,
                b'\\' => f.write_str("\\\\")?,
                0x20..=0x7e => f.write_char(char::from(b))?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        f.write_char('"')
    }
}

impl Display for Policy {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Attr(attribute) => attribute.fmt(f),
            Policy::Compare { name, op, bound } => write!(f, "{name} {} {bound}", op.symbol()),
            Policy::And(children) => write_gate_children(f, children, " and "),
            Policy::Or(children) => write_gate_children(f, children, " or "),
            Policy::Threshold { k, children } => {
                write!(f, "{k} of (")?;
                for (i, child) in children.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    child.fmt(f)?;
                }
                f.write_char(')')
            }
        }
    }
}

/// The children of an `and` or `or`, separated by `separator`, gates among them parenthesised.
fn write_gate_children(f: &mut Formatter<'_>, children: &[Policy], separator: &str) -> fmt::Result {
    for (i, child) in children.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        match child {
            Policy::Attr(_) | Policy::Compare { .. } => child.fmt(f)?,
            Policy::And(_) | Policy::Or(_) | Policy::Threshold { .. } => write!(f, "({child})")?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::CompareOp;

    fn name(bytes: &[u8]) -> String {
        Attribute::new(bytes).expect("valid attribute").to_string()
    }

    fn canonical(text: &str) -> String {
        let policy = Policy::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"));
        let printed = policy.to_string();
        assert_eq!(Policy::parse(&printed), Ok(policy), "round trip of {printed:?}");
        printed
    }

    #[test]
    fn attribute_forms() {
        assert_eq!(name(b"role:admin"), "role:admin");
        assert_eq!(name(b"_a.b-c/d@e:9"), "_a.b-c/d@e:9");
        assert_eq!(name(b"01"), r#""01""#);
        assert_eq!(name(b"0"), r#""0""#);
        assert_eq!(name(b"0|1"), r#""0|1""#);
        assert_eq!(name(b"and"), r#""and""#);
        assert_eq!(name(b"OR"), r#""OR""#);
        assert_eq!(name(b"oF"), r#""oF""#);
        assert_eq!(name(b"android"), "android");
        assert_eq!(name(b"a b"), r#""a b""#);
        assert_eq!(name(b"-a"), r#""-a""#);
        assert_eq!(name(b"q\"b\\s"), r#""q\"b\\s""#);
        assert_eq!(name("münchen".as_bytes()), r#""m\xc3\xbcnchen""#);
        assert_eq!(name(b"\x00"), r#""\x00""#);
        assert_eq!(name(b"\x7f\xff\t"), r#""\x7f\xff\x09""#);
        assert_eq!(format!("{:?}", Attribute::new("x y").expect("valid")), r#"Attribute("x y")"#);
    }

    #[test]
    fn canonical_policies() {
        assert_eq!(
            canonical("( role:operator AND site:berlin )OR role:admin"),
            "(role:operator and site:berlin) or role:admin"
        );
        assert_eq!(canonical("2 OF(dept:ops,dept:sec,clearance:high)"), "2 of (dept:ops, dept:sec, clearance:high)");
        assert_eq!(canonical("level>=3 and zone:eu"), "level >= 3 and zone:eu");
        assert_eq!(canonical("a and (b and c)"), "a and b and c");
        assert_eq!(canonical("a or (b and c)"), "a or (b and c)");
        assert_eq!(canonical("a and (b or c)"), "a and (b or c)");
        assert_eq!(canonical("a and 2 of (b, c, d)"), "a and (2 of (b, c, d))");
        assert_eq!(canonical("2 of ((a and b), (c or d), 2 of (e, f, g))"), "2 of (a and b, c or d, 2 of (e, f, g))");
        assert_eq!(canonical("1 of (a, b)"), "a or b");
        assert_eq!(canonical("001 of (a)"), "a");
        assert_eq!(canonical("\"and\" <= 0007"), "\"and\" <= 7");
        assert_eq!(
            canonical("\"x y\" < 1 or \"\\x00\\xFF\" == 4294967295"),
            "\"x y\" < 1 or \"\\x00\\xff\" == 4294967295"
        );
        assert_eq!(canonical(r#""münchen" or "0|1""#), r#""m\xc3\xbcnchen" or "0|1""#);
    }

    #[test]
    fn printing_compare() {
        let policy = Policy::Compare { name: Attribute::new("n").expect("valid"), op: CompareOp::Lt, bound: 0 };
        assert_eq!(policy.to_string(), "n < 0");
    }
}
