//! Tests of the sharing itself (the CIRCL AND-gate lesson, `pitfalls.md` §4) and of the numeric expansion.

use ark_bls12_381::Fr;
use ark_ff::{One, Zero};
use proptest::prelude::*;

use super::{combine, expand_comparison, Lsss};
use crate::label::Label;
use crate::policy::{Attribute, AttributeSet, CompareOp, KeyAttribute, Policy};

fn target(columns: usize) -> Vec<Fr> {
    let mut t = vec![Fr::zero(); columns];
    t[0] = Fr::one();
    t
}

fn attr(name: &str) -> Policy {
    Policy::Attr(Attribute::new(name).unwrap_or_else(|e| panic!("{e}")))
}

fn lsss(text: &str) -> Lsss {
    let policy = Policy::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    Lsss::new(&policy).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn holding(lsss: &Lsss, names: &[&str]) -> Option<Vec<(usize, Fr)>> {
    lsss.coefficients(|l| matches!(l, Label::Plain(a) if names.iter().any(|n| a.as_bytes() == n.as_bytes())))
}

#[test]
fn and_gate_entries_are_zero_or_plus_minus_one_and_reconstruct_only_with_all_children() {
    let m = lsss("a and b and c and d");
    assert_eq!(m.columns(), 4);
    for row in m.rows() {
        assert!(row.values().all(|v| v.is_one() || *v == -Fr::one()));
        assert!(!row.is_empty(), "every AND share is non-zero");
    }
    let all = holding(&m, &["a", "b", "c", "d"]).unwrap_or_else(|| panic!("all children satisfy"));
    assert!(all.iter().all(|(_, g)| g.is_one()));
    assert_eq!(combine(&m, &all), target(4));
    for missing in ["a", "b", "c", "d"] {
        let some: Vec<&str> = ["a", "b", "c", "d"].into_iter().filter(|n| *n != missing).collect();
        assert!(holding(&m, &some).is_none());
    }
}

#[test]
fn no_single_child_row_equals_the_secret_vector() {
    for text in ["a and b", "a and (b or c)", "2 of (a, b, c)", "3 of (a, b, c, d, e)"] {
        let m = lsss(text);
        for row in m.rows() {
            let mut dense = vec![Fr::zero(); m.columns()];
            row.iter().for_each(|(c, v)| dense[*c] = *v);
            assert_ne!(dense, target(m.columns()), "{text}: a single row spans the secret");
        }
    }
}

#[test]
fn threshold_reconstructs_from_any_k_children_and_not_from_fewer() {
    let m = lsss("3 of (a, b, c, d, e)");
    let names = ["a", "b", "c", "d", "e"];
    for mask in 0u32..32 {
        let held: Vec<&str> = names.iter().enumerate().filter(|(i, _)| mask >> i & 1 == 1).map(|(_, n)| *n).collect();
        match holding(&m, &held) {
            Some(coeffs) => {
                assert!(held.len() >= 3);
                assert_eq!(combine(&m, &coeffs), target(m.columns()), "{held:?}");
            }
            None => assert!(held.len() < 3, "{held:?} should satisfy 3 of 5"),
        }
    }
}

#[test]
fn duplicates_are_rejected_with_the_attribute_named() {
    let policy = Policy::parse("(a and b) or (a and c)").unwrap_or_else(|e| panic!("{e}"));
    let err = Lsss::new(&policy).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("a appears more than once"), "{err}");
    // Opposite-direction comparisons on one attribute test disjoint bit values and are fine.
    assert!(Lsss::new(&Policy::parse("level > 2 and level < 9").unwrap_or_else(|e| panic!("{e}"))).is_ok());
}

#[test]
fn unsatisfiable_comparisons_are_errors() {
    assert!(expand_comparison(CompareOp::Lt, 0).is_none());
    assert!(expand_comparison(CompareOp::Gt, u32::MAX).is_none());
    assert!(Lsss::new(&Policy::parse("x < 0").unwrap_or_else(|e| panic!("{e}"))).is_err());
}

#[test]
fn comparison_expansion_matches_integer_comparison() {
    let probes = [0u32, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 255, 256, 1000, 65535, 1 << 31, u32::MAX - 1, u32::MAX];
    for op in [CompareOp::Lt, CompareOp::Le, CompareOp::Gt, CompareOp::Ge, CompareOp::Eq] {
        for bound in probes {
            let Some(expr) = expand_comparison(op, bound) else {
                assert!(probes.iter().all(|x| !op.holds(*x, bound)));
                continue;
            };
            for x in probes.iter().copied().chain([bound.wrapping_add(1), bound.wrapping_sub(1)]) {
                assert_eq!(expr.holds(x), op.holds(x, bound), "{x} {} {bound}", op.symbol());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn reconstruction_matches_the_boolean_oracle(
        op_index in 0usize..5, bound in 0u32..40, value in 0u32..40, k in 1usize..=4, mask in 0u32..64,
    ) {
        let op = [CompareOp::Lt, CompareOp::Le, CompareOp::Gt, CompareOp::Ge, CompareOp::Eq][op_index];
        let level = Attribute::new("level").unwrap_or_else(|e| panic!("{e}"));
        let compare = Policy::Compare { name: level.clone(), op, bound };
        let leaves = vec![attr("a"), attr("b"), Policy::and(vec![attr("c"), attr("d")]).unwrap_or_else(|e| panic!("{e}")), compare];
        let policy = Policy::threshold(k, leaves).unwrap_or_else(|e| panic!("{e}"));
        let Ok(m) = Lsss::new(&policy) else {
            prop_assume!(false);
            return Ok(());
        };
        let mut items: Vec<KeyAttribute> = ["a", "b", "c", "d"]
            .iter()
            .enumerate()
            .filter(|(i, _)| mask >> i & 1 == 1)
            .map(|(_, n)| KeyAttribute::Plain(Attribute::new(*n).unwrap_or_else(|e| panic!("{e}"))))
            .collect();
        if mask & 16 != 0 {
            items.push(KeyAttribute::Numeric { name: level, value });
        }
        let set = AttributeSet::new(items).unwrap_or_else(|e| panic!("{e}"));
        let labels = Label::for_key(&set);
        let coeffs = m.coefficients(|l| labels.contains(l));
        prop_assert_eq!(coeffs.is_some(), policy.is_satisfied_by(&set));
        if let Some(c) = coeffs {
            prop_assert_eq!(combine(&m, &c), target(m.columns()));
        }
    }
}
