//! Linear secret sharing for policies: the matrix (M, ρ) and reconstruction coefficients.
//!
//! * `and` of n children: the Lewko–Waters construction generalised to n-ary gates (n − 1 new columns; child 1
//!   gets `v + e₁`, child k gets `e_k − e_{k−1}`, child n gets `−e_{n−1}`), so every entry is 0 or ±1 and the
//!   children's rows sum to the parent's vector `v`; no proper subset spans it.
//! * `or`: every child gets the parent's vector.
//! * `k of n` (1 < k < n): a Shamir polynomial of degree k − 1; child x (x = 1..n) gets `v + Σ_m x^m e_m` over
//!   k − 1 new columns, and any k children reconstruct `v` with Lagrange coefficients at 0.
//! * numeric comparisons are expanded into `and`/`or` trees over bit labels first ([`expand_comparison`]).
//!
//! Reconstruction walks the same tree, so the coefficients γ_i with Σ γ_i M_i = (1, 0, …, 0) come out directly
//! (all 1 for `and`/`or` formulas), without Gaussian elimination. This check only decides *whether* a key can
//! decrypt from public data; the pairing equation enforces it.

use std::collections::{BTreeMap, HashSet};

use ark_bls12_381::Fr;
use ark_ff::{Field, One};

use crate::error::{Error, Limit, Result};
use crate::label::Label;
use crate::limits::{MAX_POLICY_DEPTH, MAX_POLICY_ROWS, NUMERIC_BITS};
use crate::policy::{Attribute, CompareOp, Policy};

/// A policy compiled to a tree of row indices; the tree drives both matrix generation and reconstruction.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Leaf(usize),
    And(Vec<Node>),
    Or(Vec<Node>),
    Threshold(usize, Vec<Node>),
}

/// Sparse row vector: column index → entry.
pub(crate) type SparseRow = BTreeMap<usize, Fr>;

/// The LSSS for one policy.
#[derive(Clone, Debug)]
pub(crate) struct Lsss {
    labels: Vec<Label>,
    rows: Vec<SparseRow>,
    columns: usize,
    tree: Node,
}

impl Lsss {
    /// Compiles a policy. Rejects duplicate labels, unsatisfiable comparisons, and more than
    /// [`MAX_POLICY_ROWS`] rows or [`MAX_POLICY_DEPTH`] levels.
    pub(crate) fn new(policy: &Policy) -> Result<Lsss> {
        if policy.depth() > MAX_POLICY_DEPTH {
            return Err(Error::LimitExceeded { what: Limit::PolicyDepth, limit: MAX_POLICY_DEPTH });
        }
        let mut labels = Vec::new();
        let tree = compile(policy, &mut labels)?;
        let mut seen = HashSet::with_capacity(labels.len());
        for label in &labels {
            if !seen.insert(label) {
                return Err(Error::DuplicateAttribute(label.describe()));
            }
        }
        let mut lsss = Lsss { rows: vec![SparseRow::new(); labels.len()], labels, columns: 1, tree };
        let root = SparseRow::from([(0, Fr::one())]);
        let tree = lsss.tree.clone();
        lsss.share(&tree, root);
        Ok(lsss)
    }

    /// Row labels ρ(i).
    pub(crate) fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// Rows M_i, sparse.
    pub(crate) fn rows(&self) -> &[SparseRow] {
        &self.rows
    }

    /// Number of columns of M.
    pub(crate) fn columns(&self) -> usize {
        self.columns
    }

    fn new_column(&mut self) -> usize {
        self.columns += 1;
        self.columns - 1
    }

    fn share(&mut self, node: &Node, v: SparseRow) {
        match node {
            Node::Leaf(i) => self.rows[*i] = v,
            Node::Or(children) => children.iter().for_each(|c| self.share(c, v.clone())),
            Node::And(children) => {
                let n = children.len();
                let cols: Vec<usize> = (0..n - 1).map(|_| self.new_column()).collect();
                for (k, child) in children.iter().enumerate() {
                    let mut row = if k == 0 { v.clone() } else { SparseRow::new() };
                    if k > 0 {
                        row.insert(cols[k - 1], -Fr::one());
                    }
                    if k < n - 1 {
                        row.insert(cols[k], Fr::one());
                    }
                    self.share(child, row);
                }
            }
            Node::Threshold(k, children) => {
                let cols: Vec<usize> = (0..k - 1).map(|_| self.new_column()).collect();
                for (idx, child) in children.iter().enumerate() {
                    let x = Fr::from(idx as u64 + 1);
                    let mut row = v.clone();
                    let mut power = x;
                    for col in &cols {
                        row.insert(*col, power);
                        power *= x;
                    }
                    self.share(child, row);
                }
            }
        }
    }

    /// Coefficients γ_i for the rows a key holding `has` can use, with Σ γ_i M_i = (1, 0, …, 0); `None` when
    /// the labels do not satisfy the policy. Prefers the cheapest satisfying subtree (fewest rows).
    pub(crate) fn coefficients(&self, has: impl Fn(&Label) -> bool) -> Option<Vec<(usize, Fr)>> {
        let held: Vec<bool> = self.labels.iter().map(has).collect();
        reconstruct(&self.tree, &held)
    }
}

fn reconstruct(node: &Node, held: &[bool]) -> Option<Vec<(usize, Fr)>> {
    match node {
        Node::Leaf(i) => held[*i].then(|| vec![(*i, Fr::one())]),
        Node::Or(children) => children.iter().filter_map(|c| reconstruct(c, held)).min_by_key(Vec::len),
        Node::And(children) => {
            let mut all = Vec::new();
            for child in children {
                all.extend(reconstruct(child, held)?);
            }
            Some(all)
        }
        Node::Threshold(k, children) => {
            let mut options: Vec<(u64, Vec<(usize, Fr)>)> = children
                .iter()
                .enumerate()
                .filter_map(|(idx, c)| reconstruct(c, held).map(|r| (idx as u64 + 1, r)))
                .collect();
            if options.len() < *k {
                return None;
            }
            options.sort_by_key(|(_, r)| r.len());
            options.truncate(*k);
            let xs: Vec<Fr> = options.iter().map(|(x, _)| Fr::from(*x)).collect();
            let mut all = Vec::new();
            for (pos, (_, coeffs)) in options.into_iter().enumerate() {
                let lambda = lagrange_at_zero(&xs, pos)?;
                all.extend(coeffs.into_iter().map(|(i, g)| (i, g * lambda)));
            }
            Some(all)
        }
    }
}

/// λ_pos = Π_{j≠pos} x_j / (x_j − x_pos). The x are distinct, so the inverse exists.
fn lagrange_at_zero(xs: &[Fr], pos: usize) -> Option<Fr> {
    let mut num = Fr::one();
    let mut den = Fr::one();
    for (j, xj) in xs.iter().enumerate() {
        if j != pos {
            num *= xj;
            den *= *xj - xs[pos];
        }
    }
    Some(num * den.inverse()?)
}

fn compile(policy: &Policy, labels: &mut Vec<Label>) -> Result<Node> {
    let mut leaf = |label: Label, labels: &mut Vec<Label>| -> Result<Node> {
        if labels.len() >= MAX_POLICY_ROWS {
            return Err(Error::LimitExceeded { what: Limit::PolicyRows, limit: MAX_POLICY_ROWS });
        }
        labels.push(label);
        Ok(Node::Leaf(labels.len() - 1))
    };
    match policy {
        Policy::Attr(a) => leaf(Label::Plain(a.clone()), labels),
        Policy::Compare { name, op, bound } => {
            let expr =
                expand_comparison(*op, *bound).ok_or_else(|| Error::UnsatisfiableComparison(policy.to_string()))?;
            compile_bits(&expr, name, labels, &mut leaf)
        }
        Policy::And(children) => Ok(Node::And(compile_all(children, labels)?)),
        Policy::Or(children) => Ok(Node::Or(compile_all(children, labels)?)),
        Policy::Threshold { k, children } => Ok(Node::Threshold(*k, compile_all(children, labels)?)),
    }
}

fn compile_all(children: &[Policy], labels: &mut Vec<Label>) -> Result<Vec<Node>> {
    children.iter().map(|c| compile(c, labels)).collect()
}

impl Policy {
    /// Compiles the policy as encryption would and returns its number of ciphertext rows, so that tools can
    /// reject a policy before reading any data.
    ///
    /// # Errors
    /// [`Error::DuplicateAttribute`], [`Error::UnsatisfiableComparison`], [`Error::LimitExceeded`].
    pub fn ciphertext_rows(&self) -> Result<usize> {
        Lsss::new(self).map(|l| l.labels().len())
    }
}

/// A boolean formula over the bits of one numeric attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BitExpr {
    /// Bit `bit` of the value equals `value`.
    Bit { bit: u8, value: bool },
    /// All of.
    And(Vec<BitExpr>),
    /// Any of.
    Or(Vec<BitExpr>),
}

/// Bit-decomposition of `x <op> bound` over [`NUMERIC_BITS`]-bit unsigned values (the BSW07 / OpenABE
/// technique). `None` when no value satisfies it (`x < 0`, `x > u32::MAX`). `x >= 0` and `x <= u32::MAX`
/// become "has a value": `top bit = 0 or top bit = 1`.
pub(crate) fn expand_comparison(op: CompareOp, bound: u32) -> Option<BitExpr> {
    let top = (NUMERIC_BITS - 1) as u8;
    let has_value =
        || BitExpr::Or(vec![BitExpr::Bit { bit: top, value: false }, BitExpr::Bit { bit: top, value: true }]);
    match op {
        CompareOp::Gt => greater_than(bound),
        CompareOp::Ge => Some(match bound.checked_sub(1) {
            Some(b) => greater_than(b)?,
            None => has_value(),
        }),
        CompareOp::Lt => less_than(bound),
        CompareOp::Le => Some(match bound.checked_add(1) {
            Some(b) => less_than(b)?,
            None => has_value(),
        }),
        CompareOp::Eq => Some(BitExpr::And(
            (0..NUMERIC_BITS).map(|bit| BitExpr::Bit { bit: bit as u8, value: (bound >> bit) & 1 == 1 }).collect(),
        )),
    }
}

/// x > c, built from the least significant bit up: at a 1-bit of c, x must also have a 1 there and be greater
/// on the lower bits; at a 0-bit, a 1 in x suffices or the lower bits decide.
fn greater_than(c: u32) -> Option<BitExpr> {
    chain(c, true)
}

/// x < c, the mirror image: at a 0-bit of c, x must have 0 there too; at a 1-bit, a 0 in x suffices.
fn less_than(c: u32) -> Option<BitExpr> {
    chain(!c, false)
}

/// Shared chain: `strict` bits (where `pattern` has a 1) need `x_bit == want` AND the lower part; other bits
/// accept `x_bit == want` OR the lower part.
fn chain(pattern: u32, want: bool) -> Option<BitExpr> {
    let mut expr: Option<BitExpr> = None; // None = false
    for bit in 0..NUMERIC_BITS {
        let here = BitExpr::Bit { bit: bit as u8, value: want };
        expr = if (pattern >> bit) & 1 == 1 {
            expr.map(|lower| and2(here, lower))
        } else {
            Some(match expr {
                None => here,
                Some(lower) => or2(here, lower),
            })
        };
    }
    expr
}

fn and2(a: BitExpr, b: BitExpr) -> BitExpr {
    match b {
        BitExpr::And(mut v) => {
            v.insert(0, a);
            BitExpr::And(v)
        }
        other => BitExpr::And(vec![a, other]),
    }
}

fn or2(a: BitExpr, b: BitExpr) -> BitExpr {
    match b {
        BitExpr::Or(mut v) => {
            v.insert(0, a);
            BitExpr::Or(v)
        }
        other => BitExpr::Or(vec![a, other]),
    }
}

impl BitExpr {
    /// Evaluates the formula on a value (used by tests as an oracle for the expansion).
    #[cfg(test)]
    pub(crate) fn holds(&self, x: u32) -> bool {
        match self {
            BitExpr::Bit { bit, value } => ((x >> bit) & 1 == 1) == *value,
            BitExpr::And(v) => v.iter().all(|e| e.holds(x)),
            BitExpr::Or(v) => v.iter().any(|e| e.holds(x)),
        }
    }
}

fn compile_bits(
    expr: &BitExpr,
    name: &Attribute,
    labels: &mut Vec<Label>,
    leaf: &mut impl FnMut(Label, &mut Vec<Label>) -> Result<Node>,
) -> Result<Node> {
    Ok(match expr {
        BitExpr::Bit { bit, value } => leaf(Label::Bit { name: name.clone(), bit: *bit, value: *value }, labels)?,
        BitExpr::And(v) => Node::And(v.iter().map(|e| compile_bits(e, name, labels, leaf)).collect::<Result<_>>()?),
        BitExpr::Or(v) => Node::Or(v.iter().map(|e| compile_bits(e, name, labels, leaf)).collect::<Result<_>>()?),
    })
}

/// Σ γ_i M_i, for tests of the reconstruction property.
#[cfg(test)]
pub(crate) fn combine(lsss: &Lsss, coeffs: &[(usize, Fr)]) -> Vec<Fr> {
    use ark_ff::Zero;
    let mut out = vec![Fr::zero(); lsss.columns()];
    for (i, g) in coeffs {
        for (col, m) in &lsss.rows()[*i] {
            out[*col] += *g * m;
        }
    }
    out
}

#[cfg(test)]
#[path = "lsss_tests.rs"]
mod tests;
