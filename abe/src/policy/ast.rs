//! The policy syntax tree.

use crate::error::{Error, Limit, Result};
use crate::limits::MAX_ATTRIBUTE_LEN;

/// An attribute name: opaque bytes, compared and hashed byte for byte (no case folding, no separators with
/// meaning). At most [`MAX_ATTRIBUTE_LEN`] bytes and never empty.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attribute(Vec<u8>);

impl Attribute {
    /// Wraps raw bytes, checking the length bound.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] past [`MAX_ATTRIBUTE_LEN`] bytes, [`Error::InvalidAttributes`] when empty.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(Error::InvalidAttributes("empty attribute name".into()));
        }
        if bytes.len() > MAX_ATTRIBUTE_LEN {
            return Err(Error::LimitExceeded { what: Limit::AttributeLength, limit: MAX_ATTRIBUTE_LEN });
        }
        Ok(Attribute(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl core::fmt::Debug for Attribute {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Attribute({self})")
    }
}

/// A numeric comparison operator on unsigned 32-bit values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
}

impl CompareOp {
    /// The operator's symbol in the policy syntax.
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Eq => "==",
        }
    }

    /// Whether `lhs <op> rhs` holds.
    pub fn holds(self, lhs: u32, rhs: u32) -> bool {
        match self {
            CompareOp::Lt => lhs < rhs,
            CompareOp::Le => lhs <= rhs,
            CompareOp::Gt => lhs > rhs,
            CompareOp::Ge => lhs >= rhs,
            CompareOp::Eq => lhs == rhs,
        }
    }
}

/// A normalised policy.
///
/// Invariants (kept by the parser, the JSON decoder and [`Policy::and`], [`Policy::or`], [`Policy::threshold`]):
/// `And`/`Or` have at least two children and no child of the same kind; `Threshold` has `1 < k < children.len()`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// The key must hold this attribute.
    Attr(Attribute),
    /// The key must hold a numeric attribute `name` whose value satisfies `value <op> bound`.
    Compare {
        /// The numeric attribute's name.
        name: Attribute,
        /// The operator.
        op: CompareOp,
        /// The right-hand side.
        bound: u32,
    },
    /// All children.
    And(Vec<Policy>),
    /// At least one child.
    Or(Vec<Policy>),
    /// At least `k` of the children.
    Threshold {
        /// How many children must be satisfied.
        k: usize,
        /// The children.
        children: Vec<Policy>,
    },
}

impl Policy {
    /// An `and` of `children`, normalised (flattened; one child is returned as itself).
    ///
    /// # Errors
    /// [`Error::InvalidThreshold`] for no children.
    pub fn and(children: Vec<Policy>) -> Result<Policy> {
        let n = children.len();
        Policy::threshold(n, children)
    }

    /// An `or` of `children`, normalised.
    ///
    /// # Errors
    /// [`Error::InvalidThreshold`] for no children.
    pub fn or(children: Vec<Policy>) -> Result<Policy> {
        Policy::threshold(1, children)
    }

    /// `k of (children)`, normalised: `k == n` is an `and`, `k == 1` an `or`, one child is itself.
    ///
    /// # Errors
    /// [`Error::InvalidThreshold`] unless `1 <= k <= children.len()`.
    pub fn threshold(k: usize, children: Vec<Policy>) -> Result<Policy> {
        let n = children.len();
        if k == 0 || k > n {
            return Err(Error::InvalidThreshold { k, n });
        }
        if n == 1 {
            return Ok(children.into_iter().next().unwrap_or_else(|| unreachable!("n == 1")));
        }
        if k == n {
            let mut flat = Vec::with_capacity(n);
            for child in children {
                match child {
                    Policy::And(grand) => flat.extend(grand),
                    other => flat.push(other),
                }
            }
            Ok(Policy::And(flat))
        } else if k == 1 {
            let mut flat = Vec::with_capacity(n);
            for child in children {
                match child {
                    Policy::Or(grand) => flat.extend(grand),
                    other => flat.push(other),
                }
            }
            Ok(Policy::Or(flat))
        } else {
            Ok(Policy::Threshold { k, children })
        }
    }

    /// Nesting depth: a leaf has depth 1.
    pub fn depth(&self) -> usize {
        match self {
            Policy::Attr(_) | Policy::Compare { .. } => 1,
            Policy::And(c) | Policy::Or(c) | Policy::Threshold { children: c, .. } => {
                1 + c.iter().map(Policy::depth).max().unwrap_or(0)
            }
        }
    }

    /// Number of leaves (attributes and comparisons) before numeric expansion.
    pub fn leaf_count(&self) -> usize {
        match self {
            Policy::Attr(_) | Policy::Compare { .. } => 1,
            Policy::And(c) | Policy::Or(c) | Policy::Threshold { children: c, .. } => {
                c.iter().map(Policy::leaf_count).sum()
            }
        }
    }
}
