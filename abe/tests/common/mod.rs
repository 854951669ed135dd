//! Proptest strategies shared by the integration tests (`mod common;`).
#![allow(dead_code, unreachable_pub)]

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use smqtt_abe::policy::{Attribute, AttributeSet, CompareOp, KeyAttribute, Policy};

/// Plain attributes of [`arb_policy`] and [`arb_attribute_set`].
pub const PLAIN_NAMES: [&str; 12] = ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10", "a11"];
/// Numeric attribute names of [`arb_policy`] and [`arb_attribute_set`].
pub const NUMERIC_NAMES: [&str; 3] = ["n0", "n1", "n2"];
/// At most this many leaves in an [`arb_policy`].
pub const MAX_LEAVES: usize = 12;

/// All comparison operators.
pub const OPERATORS: [CompareOp; 5] = [CompareOp::Lt, CompareOp::Le, CompareOp::Gt, CompareOp::Ge, CompareOp::Eq];

/// An attribute from a name known to be valid.
pub fn attribute(name: &str) -> Attribute {
    Attribute::new(name).expect("valid attribute name")
}

/// The shape of a policy tree before leaves get names.
#[derive(Clone, Debug)]
enum Shape {
    Leaf,
    /// `kind` 0 is `and`, 1 is `or`, 2 a threshold whose `k` derives from `k_seed`.
    Gate {
        kind: u8,
        k_seed: u8,
        children: Vec<Shape>,
    },
}

impl Shape {
    fn leaves(&self) -> usize {
        match self {
            Shape::Leaf => 1,
            Shape::Gate { children, .. } => children.iter().map(Shape::leaves).sum(),
        }
    }

    /// The shape cut down to at most `budget` (>= 1) leaves, keeping at least two children per gate.
    fn trim(&self, budget: usize) -> Shape {
        match self {
            Shape::Gate { kind, k_seed, children } if budget >= 2 => {
                let keep = children.len().min(budget);
                let mut left = budget;
                let mut kept = Vec::with_capacity(keep);
                for (i, child) in children.iter().take(keep).enumerate() {
                    // Reserve one leaf for each child still to come.
                    let child = child.trim(left - (keep - i - 1));
                    left -= child.leaves();
                    kept.push(child);
                }
                Shape::Gate { kind: *kind, k_seed: *k_seed, children: kept }
            }
            _ => Shape::Leaf,
        }
    }
}

fn arb_shape(max_depth: u32) -> impl Strategy<Value = Shape> {
    Just(Shape::Leaf).prop_recursive(max_depth, 24, 4, |inner| {
        (0u8..3, any::<u8>(), vec(inner, 2..=4)).prop_map(|(kind, k_seed, children)| Shape::Gate {
            kind,
            k_seed,
            children,
        })
    })
}

/// Hands out distinct leaves in tree order.
struct Leaves {
    plain: Vec<&'static str>,
    numeric: Vec<(&'static str, CompareOp, u32)>,
    wants_numeric: Vec<bool>,
    used: usize,
}

impl Leaves {
    fn next(&mut self) -> Policy {
        let numeric = self.wants_numeric.get(self.used).copied().unwrap_or(false);
        self.used += 1;
        if numeric {
            if let Some((name, op, bound)) = self.numeric.pop() {
                return Policy::Compare { name: attribute(name), op, bound };
            }
        }
        Policy::Attr(attribute(self.plain.pop().expect("no more leaves than plain names")))
    }
}

/// A gate of `kind` over `children`, built through the normalising constructors.
fn gate(kind: u8, k_seed: u8, children: Vec<Policy>) -> Policy {
    let n = children.len();
    let k = match kind {
        0 => n,
        1 => 1,
        // A genuine threshold (1 < k < n) when n allows one.
        _ if n >= 3 => 2 + usize::from(k_seed) % (n - 2),
        _ => 1 + usize::from(k_seed) % n,
    };
    Policy::threshold(k, children).expect("1 <= k <= n")
}

fn build(shape: &Shape, leaves: &mut Leaves) -> Policy {
    match shape {
        Shape::Leaf => leaves.next(),
        Shape::Gate { kind, k_seed, children } => {
            let children = children.iter().map(|child| build(child, leaves)).collect();
            gate(*kind, *k_seed, children)
        }
    }
}

/// A satisfiable comparison on a small bound (never `< 0`).
fn arb_comparison_bound() -> impl Strategy<Value = (CompareOp, u32)> {
    (select(OPERATORS.to_vec()), 0u32..=20).prop_map(|(op, bound)| {
        if op == CompareOp::Lt && bound == 0 {
            (op, 1)
        } else {
            (op, bound)
        }
    })
}

/// Random normalised policies at most `max_depth` gates deep with at most [`MAX_LEAVES`] leaves, over
/// [`PLAIN_NAMES`] (each used at most once) and satisfiable comparisons on [`NUMERIC_NAMES`] (each at most once).
pub fn arb_policy(max_depth: u32) -> impl Strategy<Value = Policy> {
    let plain = Just(PLAIN_NAMES.to_vec()).prop_shuffle();
    let numeric_names = Just(NUMERIC_NAMES.to_vec()).prop_shuffle();
    let bounds = vec(arb_comparison_bound(), NUMERIC_NAMES.len());
    let wants_numeric = vec(prop::bool::weighted(0.25), MAX_LEAVES);
    (arb_shape(max_depth), plain, numeric_names, bounds, wants_numeric).prop_map(
        |(shape, plain, numeric_names, bounds, wants_numeric)| {
            let numeric = numeric_names.into_iter().zip(bounds).map(|(name, (op, bound))| (name, op, bound)).collect();
            let mut leaves = Leaves { plain, numeric, wants_numeric, used: 0 };
            build(&shape.trim(MAX_LEAVES), &mut leaves)
        },
    )
}

/// A random subset of [`PLAIN_NAMES`] plus optional values in `0..=24` for each of [`NUMERIC_NAMES`].
pub fn arb_attribute_set() -> impl Strategy<Value = AttributeSet> {
    let plain = subsequence(PLAIN_NAMES.to_vec(), 0..=PLAIN_NAMES.len());
    let numeric = vec(proptest::option::of(0u32..=24), NUMERIC_NAMES.len());
    (plain, numeric).prop_map(|(plain, numeric)| {
        let plain = plain.into_iter().map(|name| KeyAttribute::Plain(attribute(name)));
        let numeric = NUMERIC_NAMES
            .iter()
            .zip(numeric)
            .filter_map(|(name, value)| Some(KeyAttribute::Numeric { name: attribute(name), value: value? }));
        AttributeSet::new(plain.chain(numeric)).expect("distinct names")
    })
}

/// Arbitrary attribute names: bare-looking names, keywords in any case, digits, awkward characters, random
/// bytes (often not UTF-8) and random Unicode.
pub fn arb_attribute_any() -> impl Strategy<Value = Attribute> {
    let special = select(vec![
        "and", "AND", "Or", "oF", "of", "0", "01", "0|1", "münchen", "\u{0}", "a b", "\"", "\\", "\\x00", "()", "a,b",
        "x>=1", "\u{7f}", "\u{feff}",
    ]);
    prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_:./@-]{0,12}".prop_map(String::into_bytes),
        special.prop_map(|s| s.as_bytes().to_vec()),
        "[0-9]{1,4}".prop_map(String::into_bytes),
        vec(any::<u8>(), 1..=12),
        "\\PC{1,6}".prop_map(String::into_bytes),
    ]
    .prop_map(|bytes| Attribute::new(bytes).expect("1..=24 bytes"))
}

/// Like [`arb_policy`]`(4)` but with [`arb_attribute_any`] names, any bounds, and repeats allowed: for syntax
/// round trips, not for encryption.
pub fn arb_policy_any() -> impl Strategy<Value = Policy> {
    let leaf =
        prop_oneof![
            arb_attribute_any().prop_map(Policy::Attr),
            (arb_attribute_any(), select(OPERATORS.to_vec()), any::<u32>())
                .prop_map(|(name, op, bound)| Policy::Compare { name, op, bound }),
        ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        (0u8..3, any::<u8>(), vec(inner, 2..=4)).prop_map(|(kind, k_seed, children)| gate(kind, k_seed, children))
    })
}

/// A random set of [`arb_attribute_any`] names, plain and numeric, for list syntax round trips.
pub fn arb_attribute_set_any() -> impl Strategy<Value = AttributeSet> {
    let plain = proptest::collection::btree_set(arb_attribute_any(), 0..8);
    let numeric = proptest::collection::btree_map(arb_attribute_any(), any::<u32>(), 0..8);
    (plain, numeric).prop_map(|(plain, numeric)| {
        let plain = plain.into_iter().map(KeyAttribute::Plain);
        let numeric = numeric.into_iter().map(|(name, value)| KeyAttribute::Numeric { name, value });
        AttributeSet::new(plain.chain(numeric)).expect("distinct names")
    })
}
