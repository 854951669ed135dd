//! Row and key-part labels: what the hash function is applied to.
//!
//! A plain attribute is one label. A numeric attribute `level = 5` is [`NUMERIC_BITS`] labels, one per bit, each
//! carrying the name, the bit position and the bit's value as separate typed fields (never folded into a string,
//! see `pitfalls.md` §3 in the design notes).

use crate::limits::NUMERIC_BITS;
use crate::policy::{Attribute, AttributeSet, KeyAttribute};

/// One row label of a policy, or one attribute part of a key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Label {
    /// A plain attribute.
    Plain(Attribute),
    /// Bit `bit` (0 = least significant) of numeric attribute `name` equals `value`.
    Bit { name: Attribute, bit: u8, value: bool },
}

impl Label {
    /// The labels a key with these attributes carries, in the canonical order used by the key encoding.
    pub(crate) fn for_key(attrs: &AttributeSet) -> Vec<Label> {
        let mut labels = Vec::new();
        for attr in attrs.iter() {
            match attr {
                KeyAttribute::Plain(a) => labels.push(Label::Plain(a)),
                KeyAttribute::Numeric { name, value } => {
                    labels.extend((0..NUMERIC_BITS).map(|bit| Label::Bit {
                        name: name.clone(),
                        bit: bit as u8,
                        value: (value >> bit) & 1 == 1,
                    }));
                }
            }
        }
        labels
    }

    /// How the label reads in an error message: `role:admin`, or `level#3=1` for a bit of a numeric attribute.
    pub(crate) fn describe(&self) -> String {
        match self {
            Label::Plain(a) => a.to_string(),
            Label::Bit { name, bit, value } => format!("{name}#{bit}={}", u8::from(*value)),
        }
    }
}
