//! The SMQTT policy language: syntax tree, parser, canonical printer, JSON form and a plain boolean evaluator.
//!
//! ```text
//! (role:operator and site:berlin) or role:admin
//! 2 of (dept:ops, dept:sec, clearance:high)
//! level >= 3 and zone:eu
//! "quoted attribute with spaces" or "\x00\xff raw bytes"
//! ```
//!
//! Grammar (keywords `and`, `or`, `of` are case-insensitive; `and` binds tighter than `or`):
//!
//! ```text
//! policy     = or-expr
//! or-expr    = and-expr *( "or" and-expr )
//! and-expr   = term *( "and" term )
//! term       = "(" policy ")" / threshold / comparison / attribute
//! threshold  = number "of" "(" policy *( "," policy ) ")"
//! comparison = attribute ( "<" / "<=" / ">" / ">=" / "==" ) number      ; unsigned 32-bit
//! attribute  = bare / quoted
//! bare       = ( ALPHA / "_" ) *( ALPHA / DIGIT / "_" / ":" / "." / "-" / "/" / "@" )   ; not a keyword
//! quoted     = DQUOTE *( printable-except-quote-and-backslash / "\\" / "\"" / "\x" 2HEXDIG / UTF-8 ) DQUOTE
//! ```
//!
//! Parsing normalises: nested gates of the same kind are flattened (`a and (b and c)` is `a and b and c`),
//! `n of (n children)` is an `and`, `1 of (...)` is an `or`, and a gate with one child is that child. The
//! canonical printer writes the normalised tree back so that `parse(print(p)) == p`.

mod ast;
mod attributes;
mod eval;
mod json;
mod parse;
mod print;

pub use ast::{Attribute, CompareOp, Policy};
pub use attributes::{AttributeSet, KeyAttribute};
