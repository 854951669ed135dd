//! The attributes a key holds, and their list syntax `role:operator, site:berlin, level = 5`.
//!
//! ```text
//! list = [ item *( "," item ) ]          ; whitespace between tokens is ignored
//! item = attribute [ "=" number ]        ; attribute and number exactly as in the policy syntax
//! ```

use core::fmt::{self, Display, Formatter};
use core::str::FromStr;
use std::collections::{BTreeMap, BTreeSet};

use super::ast::Attribute;
use super::parse::{exceeded, syntax_error, Lexer, Spanned, Token};
use crate::error::{Error, Limit, Result};
use crate::limits::MAX_KEY_ATTRIBUTES;

/// One attribute of a key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyAttribute {
    /// A plain attribute, matched by policy leaves naming it.
    Plain(Attribute),
    /// A numeric attribute, matched by comparisons on `name`.
    Numeric {
        /// The attribute's name.
        name: Attribute,
        /// Its value.
        value: u32,
    },
}

/// The set of attributes a key holds: plain attributes and at most one value per numeric name.
///
/// A name may be held both as a plain and as a numeric attribute; the two never match each other.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttributeSet {
    plain: BTreeSet<Attribute>,
    numeric: BTreeMap<Attribute, u32>,
}

impl AttributeSet {
    /// A set of `items`.
    ///
    /// # Errors
    /// [`Error::InvalidAttributes`] when a plain attribute or a numeric name is given twice;
    /// [`Error::LimitExceeded`] for more than [`MAX_KEY_ATTRIBUTES`] items.
    pub fn new(items: impl IntoIterator<Item = KeyAttribute>) -> Result<Self> {
        let mut set = AttributeSet::default();
        for (count, item) in items.into_iter().enumerate() {
            if count >= MAX_KEY_ATTRIBUTES {
                return Err(exceeded(Limit::KeyAttributes, MAX_KEY_ATTRIBUTES));
            }
            match item {
                KeyAttribute::Plain(attribute) => {
                    if set.plain.contains(&attribute) {
                        return Err(Error::InvalidAttributes(format!("attribute {attribute} given twice")));
                    }
                    set.plain.insert(attribute);
                }
                KeyAttribute::Numeric { name, value } => {
                    if set.numeric.contains_key(&name) {
                        return Err(Error::InvalidAttributes(format!("numeric attribute {name} given twice")));
                    }
                    set.numeric.insert(name, value);
                }
            }
        }
        Ok(set)
    }

    /// Parses the list syntax `role:operator, site:berlin, level = 5`: comma-separated items, each an attribute
    /// (bare or quoted exactly as in the [policy syntax](crate::policy)) optionally followed by `= value` with a
    /// decimal unsigned 32-bit value, which makes it numeric. Whitespace between tokens is ignored, a trailing
    /// comma is an error, and empty (or blank) text is the empty set.
    ///
    /// # Errors
    /// [`Error::InvalidAttributes`] for a syntax error (with its 1-based byte column) or a repeated name;
    /// [`Error::LimitExceeded`] for more than [`MAX_KEY_ATTRIBUTES`] items or an attribute longer than
    /// [`MAX_ATTRIBUTE_LEN`](crate::limits::MAX_ATTRIBUTE_LEN) bytes.
    pub fn parse(text: &str) -> Result<Self> {
        parse_items(text)
            .map_err(|e| match e {
                Error::PolicySyntax { column, reason } => {
                    Error::InvalidAttributes(format!("column {column}: {reason}"))
                }
                other => other,
            })
            .and_then(AttributeSet::new)
    }

    /// Whether the set holds the plain attribute `attribute`.
    pub fn contains(&self, attribute: &Attribute) -> bool {
        self.plain.contains(attribute)
    }

    /// The value of the numeric attribute `name`, if the set holds one.
    pub fn numeric(&self, name: &Attribute) -> Option<u32> {
        self.numeric.get(name).copied()
    }

    /// Every attribute: plain ones in byte order, then numeric ones in byte order of their names.
    pub fn iter(&self) -> impl Iterator<Item = KeyAttribute> + '_ {
        let plain = self.plain.iter().cloned().map(KeyAttribute::Plain);
        let numeric = self.numeric.iter().map(|(name, &value)| KeyAttribute::Numeric { name: name.clone(), value });
        plain.chain(numeric)
    }

    /// Number of attributes (a numeric attribute counts once).
    pub fn len(&self) -> usize {
        self.plain.len() + self.numeric.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.numeric.is_empty()
    }
}

/// The items of a list, syntax errors as [`Error::PolicySyntax`].
fn parse_items(text: &str) -> Result<Vec<KeyAttribute>> {
    let mut lexer = Lexer::new(text);
    let mut items = Vec::new();
    if lexer.peek()?.token == Token::End {
        return Ok(items);
    }
    loop {
        let Spanned { token, column } = lexer.next_token()?;
        let name = match token {
            Token::Name(name) => name,
            Token::Keyword(_) => return Err(syntax_error(column, "keywords must be quoted to be used as attributes")),
            Token::End if !items.is_empty() => return Err(syntax_error(column, "expected an attribute after `,`")),
            _ => return Err(syntax_error(column, "expected an attribute")),
        };
        if lexer.peek()?.token == Token::Assign {
            lexer.next_token()?;
            let value = lexer.next_token()?;
            match value.token {
                Token::Number(value) => items.push(KeyAttribute::Numeric { name, value }),
                _ => return Err(syntax_error(value.column, "expected a number")),
            }
        } else {
            items.push(KeyAttribute::Plain(name));
        }
        if items.len() > MAX_KEY_ATTRIBUTES {
            return Err(exceeded(Limit::KeyAttributes, MAX_KEY_ATTRIBUTES));
        }
        let separator = lexer.next_token()?;
        match separator.token {
            Token::Comma => {}
            Token::End => return Ok(items),
            _ => return Err(syntax_error(separator.column, "expected `,`, `=` or end of input")),
        }
    }
}

impl Display for KeyAttribute {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            KeyAttribute::Plain(attribute) => attribute.fmt(f),
            KeyAttribute::Numeric { name, value } => write!(f, "{name} = {value}"),
        }
    }
}

impl Display for AttributeSet {
    /// The canonical list, items in [`AttributeSet::iter`] order separated by `, `.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, item) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            item.fmt(f)?;
        }
        Ok(())
    }
}

impl FromStr for AttributeSet {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        AttributeSet::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &str) -> Attribute {
        Attribute::new(name).expect("valid attribute")
    }

    fn plain(name: &str) -> KeyAttribute {
        KeyAttribute::Plain(attr(name))
    }

    fn numeric(name: &str, value: u32) -> KeyAttribute {
        KeyAttribute::Numeric { name: attr(name), value }
    }

    fn invalid(text: &str) -> String {
        match AttributeSet::parse(text) {
            Err(Error::InvalidAttributes(reason)) => reason,
            other => panic!("{text:?}: expected InvalidAttributes, got {other:?}"),
        }
    }

    #[test]
    fn parses_and_prints() {
        let set = AttributeSet::parse("role:operator,site:berlin,level=5").expect("parses");
        assert_eq!(set.len(), 3);
        assert!(set.contains(&attr("role:operator")));
        assert!(!set.contains(&attr("level")));
        assert_eq!(set.numeric(&attr("level")), Some(5));
        assert_eq!(set.numeric(&attr("site:berlin")), None);
        assert_eq!(set.to_string(), "role:operator, site:berlin, level = 5");
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![plain("role:operator"), plain("site:berlin"), numeric("level", 5)]
        );
        assert_eq!(AttributeSet::parse(" site:berlin ,\n level = 005 , role:operator\t"), Ok(set.clone()));
        assert_eq!(AttributeSet::parse(&set.to_string()), Ok(set));
    }

    #[test]
    fn quoted_names() {
        let set = AttributeSet::parse(r#""and", "01" = 1, "münchen", "\x00", "0|1""#).expect("parses");
        assert!(set.contains(&attr("and")));
        assert!(set.contains(&attr("münchen")));
        assert!(set.contains(&Attribute::new([0u8]).expect("valid")));
        assert!(set.contains(&attr("0|1")));
        assert_eq!(set.numeric(&attr("01")), Some(1));
        assert_eq!(set.to_string(), r#""\x00", "0|1", "and", "m\xc3\xbcnchen", "01" = 1"#);
        assert_eq!(AttributeSet::parse(&set.to_string()), Ok(set));
    }

    #[test]
    fn empty() {
        for text in ["", "  ", "\n"] {
            let set = AttributeSet::parse(text).expect("empty list");
            assert!(set.is_empty());
            assert_eq!(set.len(), 0);
        }
        assert_eq!(AttributeSet::default().to_string(), "");
    }

    #[test]
    fn same_name_plain_and_numeric() {
        let set = AttributeSet::parse("level, level = 3").expect("distinct kinds");
        assert!(set.contains(&attr("level")));
        assert_eq!(set.numeric(&attr("level")), Some(3));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn errors() {
        assert_eq!(invalid("a,"), "column 3: expected an attribute after `,`");
        assert_eq!(invalid(",a"), "column 1: expected an attribute");
        assert_eq!(invalid("a,,b"), "column 3: expected an attribute");
        assert_eq!(invalid("a b"), "column 3: expected `,`, `=` or end of input");
        assert_eq!(invalid("a == 3"), "column 3: expected `,`, `=` or end of input");
        assert_eq!(invalid("a = b"), "column 5: expected a number");
        assert_eq!(invalid("a ="), "column 4: expected a number");
        assert_eq!(invalid("a = 4294967296"), "column 5: number out of range");
        assert_eq!(invalid("x, AND"), "column 4: keywords must be quoted to be used as attributes");
        assert_eq!(invalid(r#""""#), "column 1: empty quoted attribute");
        assert_eq!(invalid(r#""\q""#), "column 2: unknown escape `\\q`");
        assert_eq!(invalid("a, b, a"), "attribute a given twice");
        assert_eq!(invalid("n = 1, n = 2"), "numeric attribute n given twice");
        assert_eq!(
            AttributeSet::parse(&format!("\"{}\"", "x".repeat(300))),
            Err(Error::LimitExceeded { what: Limit::AttributeLength, limit: 256 })
        );
    }

    #[test]
    fn limits() {
        let names = |n: usize| (0..n).map(|i| format!("a{i}")).collect::<Vec<_>>().join(",");
        assert_eq!(AttributeSet::parse(&names(MAX_KEY_ATTRIBUTES)).map(|s| s.len()), Ok(MAX_KEY_ATTRIBUTES));
        let too_many = Err(Error::LimitExceeded { what: Limit::KeyAttributes, limit: MAX_KEY_ATTRIBUTES });
        assert_eq!(AttributeSet::parse(&names(MAX_KEY_ATTRIBUTES + 1)), too_many);
        let items = (0..).map(|i| numeric(&format!("n{i}"), i));
        assert_eq!(AttributeSet::new(items), too_many);
    }
}
