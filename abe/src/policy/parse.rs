//! Lexer and recursive-descent parser for the policy syntax (grammar in the [module docs](crate::policy)).
//!
//! The lexer is shared with the key attribute list syntax ([`AttributeSet::parse`](super::AttributeSet::parse)).
//! The parser's recursion is bounded by [`MAX_POLICY_DEPTH`] open parentheses (grouping or threshold), checked
//! before each descent, so hostile input cannot exhaust the stack; the depth of the resulting tree is checked
//! against the same bound. The canonical form of any tree within the bound nests fewer parentheses than that.

use core::str::FromStr;

use super::ast::{Attribute, CompareOp, Policy};
use crate::error::{Error, Limit, Result};
use crate::limits::{MAX_ATTRIBUTE_LEN, MAX_POLICY_DEPTH, MAX_POLICY_LEN, MAX_POLICY_ROWS};

/// A reserved word of the policy syntax (matched case-insensitively; quote it to use it as an attribute).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keyword {
    /// `and`
    And,
    /// `or`
    Or,
    /// `of`
    Of,
}

impl Keyword {
    /// The keyword spelled by `word` in any case, if any.
    pub(crate) fn from_word(word: &[u8]) -> Option<Keyword> {
        if word.eq_ignore_ascii_case(b"and") {
            Some(Keyword::And)
        } else if word.eq_ignore_ascii_case(b"or") {
            Some(Keyword::Or)
        } else if word.eq_ignore_ascii_case(b"of") {
            Some(Keyword::Of)
        } else {
            None
        }
    }

    fn text(self) -> &'static str {
        match self {
            Keyword::And => "and",
            Keyword::Or => "or",
            Keyword::Of => "of",
        }
    }
}

/// Whether `b` may start a bare (unquoted) attribute name.
pub(crate) fn is_bare_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

/// Whether `b` may continue a bare attribute name.
pub(crate) fn is_bare_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'-' | b'/' | b'@')
}

/// Whether `bytes` can be written as a bare attribute name: the bare-name pattern and not a keyword.
pub(crate) fn is_bare_name(bytes: &[u8]) -> bool {
    match bytes.split_first() {
        Some((&first, rest)) => {
            is_bare_start(first) && rest.iter().all(|&b| is_bare_continue(b)) && Keyword::from_word(bytes).is_none()
        }
        None => false,
    }
}

/// One token of the policy or attribute-list syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `,`
    Comma,
    /// A single `=` (only meaningful in attribute lists).
    Assign,
    /// `<`, `<=`, `>`, `>=` or `==`.
    Compare(CompareOp),
    /// A decimal unsigned 32-bit number.
    Number(u32),
    /// A bare or quoted attribute name.
    Name(Attribute),
    /// `and`, `or` or `of` in any case.
    Keyword(Keyword),
    /// The end of the text.
    End,
}

impl Token {
    /// A short description for error messages.
    fn describe(&self) -> String {
        match self {
            Token::LParen => "`(`".into(),
            Token::RParen => "`)`".into(),
            Token::Comma => "`,`".into(),
            Token::Assign => "`=`".into(),
            Token::Compare(op) => format!("`{}`", op.symbol()),
            Token::Number(n) => format!("number `{n}`"),
            Token::Name(a) => format!("attribute `{a}`"),
            Token::Keyword(k) => format!("keyword `{}`", k.text()),
            Token::End => "end of input".into(),
        }
    }
}

/// A token and the 1-based byte column where it starts.
#[derive(Clone, Debug)]
pub(crate) struct Spanned {
    /// The token.
    pub(crate) token: Token,
    /// 1-based byte column of its first byte (one past the end for [`Token::End`]).
    pub(crate) column: usize,
}

/// A [`Error::PolicySyntax`] at `column`.
pub(crate) fn syntax_error(column: usize, reason: impl Into<String>) -> Error {
    Error::PolicySyntax { column, reason: reason.into() }
}

/// A [`Error::LimitExceeded`] for `what`, whose bound is `limit`.
pub(crate) fn exceeded(what: Limit, limit: usize) -> Error {
    Error::LimitExceeded { what, limit }
}

/// A lazy tokenizer with one token of lookahead.
#[derive(Debug)]
pub(crate) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    peeked: Option<Spanned>,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        Lexer { text, pos: 0, peeked: None }
    }

    /// The next token, without consuming it.
    pub(crate) fn peek(&mut self) -> Result<&Spanned> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.lex()?,
        };
        Ok(self.peeked.insert(token))
    }

    /// Consumes and returns the next token.
    pub(crate) fn next_token(&mut self) -> Result<Spanned> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lex(),
        }
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.text.as_bytes().get(at).copied()
    }

    /// The character starting at byte `at`, for error messages.
    fn char_at(&self, at: usize) -> String {
        self.text
            .get(at..)
            .and_then(|rest| rest.chars().next())
            .map(|c| c.escape_debug().to_string())
            .unwrap_or_default()
    }

    fn lex(&mut self) -> Result<Spanned> {
        while matches!(self.byte(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
        let start = self.pos;
        let column = start + 1;
        let Some(first) = self.byte(start) else {
            return Ok(Spanned { token: Token::End, column });
        };
        let followed_by_eq = self.byte(start + 1) == Some(b'=');
        let (token, len) = match first {
            b'(' => (Token::LParen, 1),
            b')' => (Token::RParen, 1),
            b',' => (Token::Comma, 1),
            b'<' if followed_by_eq => (Token::Compare(CompareOp::Le), 2),
            b'<' => (Token::Compare(CompareOp::Lt), 1),
            b'>' if followed_by_eq => (Token::Compare(CompareOp::Ge), 2),
            b'>' => (Token::Compare(CompareOp::Gt), 1),
            b'=' if followed_by_eq => (Token::Compare(CompareOp::Eq), 2),
            b'=' => (Token::Assign, 1),
            b'"' => self.quoted(start)?,
            b'0'..=b'9' => self.number(start)?,
            b if is_bare_start(b) => self.bare(start)?,
            _ => {
                let found = self.char_at(start);
                return Err(syntax_error(column, format!("unexpected character `{found}`")));
            }
        };
        self.pos = start + len;
        Ok(Spanned { token, column })
    }

    /// A bare name or keyword starting at `start`; returns the token and its length in bytes.
    fn bare(&self, start: usize) -> Result<(Token, usize)> {
        let rest = self.text.as_bytes().get(start..).unwrap_or_default();
        let len = rest.iter().take_while(|&&b| is_bare_continue(b)).count();
        let word = rest.get(..len).unwrap_or_default();
        if let Some(keyword) = Keyword::from_word(word) {
            return Ok((Token::Keyword(keyword), len));
        }
        if len > MAX_ATTRIBUTE_LEN {
            return Err(exceeded(Limit::AttributeLength, MAX_ATTRIBUTE_LEN));
        }
        Ok((Token::Name(Attribute::new(word)?), len))
    }

    /// A decimal number starting at `start`.
    fn number(&self, start: usize) -> Result<(Token, usize)> {
        let rest = self.text.as_bytes().get(start..).unwrap_or_default();
        let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let column = start + 1;
        if rest.get(len).is_some_and(|&b| is_bare_continue(b)) {
            return Err(syntax_error(column, "invalid number"));
        }
        let digits = rest.get(..len).unwrap_or_default();
        let value = digits
            .iter()
            .try_fold(0u32, |acc, &d| acc.checked_mul(10)?.checked_add(u32::from(d - b'0')))
            .ok_or_else(|| syntax_error(column, "number out of range"))?;
        Ok((Token::Number(value), len))
    }

    /// A quoted attribute whose opening `"` is at `start`.
    fn quoted(&self, start: usize) -> Result<(Token, usize)> {
        let column = start + 1;
        let mut out = Vec::new();
        let mut at = start + 1;
        loop {
            let Some(b) = self.byte(at) else {
                return Err(syntax_error(column, "unterminated quoted attribute"));
            };
            match b {
                b'"' => break,
                b'\\' => {
                    let (byte, len) = self.escape(at, column)?;
                    out.push(byte);
                    at += len;
                }
                0x00..=0x1f | 0x7f => {
                    return Err(syntax_error(at + 1, "control character in quoted attribute (write it as `\\xHH`)"));
                }
                _ => {
                    out.push(b);
                    at += 1;
                }
            }
            if out.len() > MAX_ATTRIBUTE_LEN {
                return Err(exceeded(Limit::AttributeLength, MAX_ATTRIBUTE_LEN));
            }
        }
        if out.is_empty() {
            return Err(syntax_error(column, "empty quoted attribute"));
        }
        Ok((Token::Name(Attribute::new(out)?), at + 1 - start))
    }

    /// The escape sequence whose backslash is at `at`; returns the byte it stands for and its length.
    fn escape(&self, at: usize, quote_column: usize) -> Result<(u8, usize)> {
        let column = at + 1;
        match self.byte(at + 1) {
            Some(b'"') => Ok((b'"', 2)),
            Some(b'\\') => Ok((b'\\', 2)),
            Some(b'x') => {
                let hex = |i: usize| self.byte(i).and_then(|b| char::from(b).to_digit(16));
                match (hex(at + 2), hex(at + 3)) {
                    // Both digits are below 16, so the value fits a byte.
                    (Some(hi), Some(lo)) => Ok((((hi << 4) | lo) as u8, 4)),
                    _ => Err(syntax_error(column, "`\\x` must be followed by two hex digits")),
                }
            }
            Some(_) => {
                let found = self.char_at(at + 1);
                Err(syntax_error(column, format!("unknown escape `\\{found}`")))
            }
            None => Err(syntax_error(quote_column, "unterminated quoted attribute")),
        }
    }
}

/// Recursive-descent parser state.
struct Parser<'a> {
    lexer: Lexer<'a>,
    leaves: usize,
}

impl Parser<'_> {
    /// Consumes the next token, which must be `want`.
    fn expect(&mut self, want: &Token, reason: &str) -> Result<()> {
        let next = self.lexer.next_token()?;
        if next.token == *want {
            Ok(())
        } else {
            Err(syntax_error(next.column, reason))
        }
    }

    /// Whether the next token is `keyword`; consumes it if so.
    fn eat_keyword(&mut self, keyword: Keyword) -> Result<bool> {
        let found = self.lexer.peek()?.token == Token::Keyword(keyword);
        if found {
            self.lexer.next_token()?;
        }
        Ok(found)
    }

    /// `or-expr` inside `depth` open parentheses.
    fn or_expr(&mut self, depth: usize) -> Result<Policy> {
        let mut children = vec![self.and_expr(depth)?];
        while self.eat_keyword(Keyword::Or)? {
            children.push(self.and_expr(depth)?);
        }
        Policy::or(children)
    }

    /// `and-expr` inside `depth` open parentheses.
    fn and_expr(&mut self, depth: usize) -> Result<Policy> {
        let mut children = vec![self.term(depth)?];
        while self.eat_keyword(Keyword::And)? {
            children.push(self.term(depth)?);
        }
        Policy::and(children)
    }

    /// Fails if opening one more parenthesis inside `depth` would pass the nesting bound.
    fn check_depth(depth: usize) -> Result<()> {
        if depth >= MAX_POLICY_DEPTH {
            return Err(exceeded(Limit::PolicyDepth, MAX_POLICY_DEPTH));
        }
        Ok(())
    }

    /// Counts one more leaf against the bound.
    fn count_leaf(&mut self) -> Result<()> {
        self.leaves += 1;
        if self.leaves > MAX_POLICY_ROWS {
            return Err(exceeded(Limit::PolicyRows, MAX_POLICY_ROWS));
        }
        Ok(())
    }

    /// `term` inside `depth` open parentheses.
    fn term(&mut self, depth: usize) -> Result<Policy> {
        let Spanned { token, column } = self.lexer.next_token()?;
        match token {
            Token::LParen => {
                Self::check_depth(depth)?;
                let inner = self.or_expr(depth + 1)?;
                self.expect(&Token::RParen, "expected `)`")?;
                Ok(inner)
            }
            Token::Number(k) => self.threshold(k, column, depth),
            Token::Name(name) => self.leaf(name),
            Token::End => Err(syntax_error(column, "unexpected end of input")),
            Token::Keyword(keyword) => Err(syntax_error(column, format!("unexpected keyword `{}`", keyword.text()))),
            other => Err(syntax_error(column, format!("unexpected {}", other.describe()))),
        }
    }

    /// The rest of `k of (p1, p2, ...)` after `k`, which started at `column`.
    fn threshold(&mut self, k: u32, column: usize, depth: usize) -> Result<Policy> {
        let k = usize::try_from(k).map_err(|_| syntax_error(column, "number out of range"))?;
        self.expect(&Token::Keyword(Keyword::Of), "expected `of`")?;
        self.expect(&Token::LParen, "expected `(`")?;
        Self::check_depth(depth)?;
        let mut children = vec![self.or_expr(depth + 1)?];
        loop {
            let next = self.lexer.next_token()?;
            match next.token {
                Token::Comma => children.push(self.or_expr(depth + 1)?),
                Token::RParen => break,
                _ => return Err(syntax_error(next.column, "expected `,` or `)`")),
            }
        }
        Policy::threshold(k, children)
    }

    /// An attribute or a comparison whose name has been read.
    fn leaf(&mut self, name: Attribute) -> Result<Policy> {
        self.count_leaf()?;
        let next = self.lexer.peek()?;
        match next.token {
            Token::Compare(op) => {
                self.lexer.next_token()?;
                let value = self.lexer.next_token()?;
                match value.token {
                    Token::Number(bound) => Ok(Policy::Compare { name, op, bound }),
                    _ => Err(syntax_error(value.column, "expected a number")),
                }
            }
            Token::Assign => Err(syntax_error(next.column, "expected `==`")),
            _ => Ok(Policy::Attr(name)),
        }
    }
}

impl Policy {
    /// Parses the policy syntax described in the [module docs](crate::policy), normalising the result.
    ///
    /// # Errors
    /// [`Error::PolicySyntax`] with the 1-based byte column of the offending token;
    /// [`Error::InvalidThreshold`] for `k of (...)` with `k` zero or above the number of children;
    /// [`Error::LimitExceeded`] for text (or its canonical printing) longer than [`MAX_POLICY_LEN`] bytes, nesting deeper than
    /// [`MAX_POLICY_DEPTH`] (parentheses or gates), more than [`MAX_POLICY_ROWS`] leaves, or an attribute longer
    /// than [`MAX_ATTRIBUTE_LEN`] bytes.
    pub fn parse(text: &str) -> Result<Policy> {
        if text.len() > MAX_POLICY_LEN {
            return Err(exceeded(Limit::PolicyLength, MAX_POLICY_LEN));
        }
        let mut parser = Parser { lexer: Lexer::new(text), leaves: 0 };
        let policy = parser.or_expr(0)?;
        let end = parser.lexer.next_token()?;
        match end.token {
            Token::End => {}
            Token::RParen => return Err(syntax_error(end.column, "unmatched `)`")),
            _ => return Err(syntax_error(end.column, "expected `and`, `or` or end of input")),
        }
        if policy.depth() > MAX_POLICY_DEPTH {
            return Err(exceeded(Limit::PolicyDepth, MAX_POLICY_DEPTH));
        }
        policy.check_printed_len()
    }

    /// The canonical printing escapes non-ASCII bytes (1 byte → 4), so it can outgrow accepted input: the bound
    /// is on the printed form too, or `parse(print(p))` and capsule decoding would refuse what was accepted.
    pub(crate) fn check_printed_len(self) -> Result<Policy> {
        if self.to_string().len() > MAX_POLICY_LEN {
            return Err(exceeded(Limit::PolicyLength, MAX_POLICY_LEN));
        }
        Ok(self)
    }
}

impl FromStr for Policy {
    type Err = Error;

    fn from_str(text: &str) -> Result<Policy> {
        Policy::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &str) -> Policy {
        Policy::Attr(Attribute::new(name).expect("valid attribute"))
    }

    fn compare(name: &str, op: CompareOp, bound: u32) -> Policy {
        let name = Attribute::new(name).expect("valid attribute");
        Policy::Compare { name, op, bound }
    }

    fn parse(text: &str) -> Policy {
        Policy::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    fn limit(text: &str) -> Limit {
        match Policy::parse(text) {
            Err(Error::LimitExceeded { what, .. }) => what,
            other => panic!("expected a limit error, got {other:?}"),
        }
    }

    /// Asserts that each text fails with a syntax error at the given column with the given reason.
    fn assert_syntax_errors(cases: &[(&str, usize, &str)]) {
        for &(text, column, reason) in cases {
            let expected = Err(Error::PolicySyntax { column, reason: reason.into() });
            assert_eq!(Policy::parse(text), expected, "{text:?}");
        }
    }

    #[test]
    fn module_doc_examples() {
        let ops = || attr("dept:ops");
        let operator = Policy::And(vec![attr("role:operator"), attr("site:berlin")]);
        let cases = [
            ("(role:operator and site:berlin) or role:admin", Policy::Or(vec![operator, attr("role:admin")])),
            (
                "2 of (dept:ops, dept:sec, clearance:high)",
                Policy::Threshold { k: 2, children: vec![ops(), attr("dept:sec"), attr("clearance:high")] },
            ),
            ("level >= 3 and zone:eu", Policy::And(vec![compare("level", CompareOp::Ge, 3), attr("zone:eu")])),
            (
                r#""quoted attribute with spaces" or "\x00\xff raw bytes""#,
                Policy::Or(vec![
                    attr("quoted attribute with spaces"),
                    Policy::Attr(Attribute::new(*b"\x00\xff raw bytes").expect("valid")),
                ]),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), expected, "{text}");
        }
    }

    #[test]
    fn precedence_and_flattening() {
        let (a, b, c, d) = (attr("a"), attr("b"), attr("c"), attr("d"));
        let ab = Policy::And(vec![a.clone(), b.clone()]);
        let cd = Policy::And(vec![c.clone(), d.clone()]);
        assert_eq!(parse("a and b or c and d"), Policy::Or(vec![ab.clone(), cd]));
        let all = Policy::And(vec![a.clone(), b.clone(), c.clone()]);
        let any = Policy::Or(vec![a.clone(), b.clone(), c.clone(), d.clone()]);
        for (text, expected) in [
            ("a and (b and c)", &all),
            ("((a and b)) and c", &all),
            ("3 of (a, b, c)", &all),
            ("2 of (a, b) and c", &all),
            ("a or (b or (c or d))", &any),
            ("1 of (a, b or c, d)", &any),
            ("((((a))))", &a),
            ("1 of (a)", &a),
            ("2 of (a, b)", &ab),
        ] {
            assert_eq!(&parse(text), expected, "{text}");
        }
        assert_eq!(parse("1 of (a, b)"), parse("a or b"));
        assert_eq!(parse("007 of (a, b, c, d, e, f, g)"), parse("a and b and c and d and e and f and g"));
        let children = vec![ab, c, Policy::Or(vec![d, attr("e")])];
        assert_eq!(parse("2 of (a and b, c, 1 of (d, e))"), Policy::Threshold { k: 2, children });
    }

    #[test]
    fn keywords_any_case_and_quoted() {
        assert_eq!(parse("a AND b Or c"), parse("a and b or c"));
        assert_eq!(parse("2 OF (a, b, c)"), parse("2 of (a, b, c)"));
        assert_eq!(parse(r#""and" or "OR""#), Policy::Or(vec![attr("and"), attr("OR")]));
        assert_eq!(parse(r#""Of" >= 2"#), compare("Of", CompareOp::Ge, 2));
        // Words that merely start with a keyword are names.
        assert_eq!(parse("android or order"), Policy::Or(vec![attr("android"), attr("order")]));
        assert_syntax_errors(&[
            ("a or and", 6, "unexpected keyword `and`"),
            ("Of", 1, "unexpected keyword `of`"),
            ("a and OR", 7, "unexpected keyword `or`"),
        ]);
    }

    #[test]
    fn names() {
        for (text, bytes) in [
            (r#""01""#, &b"01"[..]),
            (r#""0""#, b"0"),
            (r#""0|1""#, b"0|1"),
            (r#""münchen""#, "münchen".as_bytes()),
            (r#""m\xC3\xbcnchen""#, "münchen".as_bytes()),
            (r#""\x00""#, b"\x00"),
            (r#""a\"b\\c""#, b"a\"b\\c"),
            (r#""role:admin""#, b"role:admin"),
            ("_x.y-z/w@v:1", b"_x.y-z/w@v:1"),
        ] {
            assert_eq!(parse(text), Policy::Attr(Attribute::new(bytes).expect("valid")), "{text}");
        }
        assert_syntax_errors(&[
            (r#"a or """#, 6, "empty quoted attribute"),
            ("a or -b", 6, "unexpected character `-`"),
            ("münchen", 2, "unexpected character `ü`"),
            ("a or 0b", 6, "invalid number"),
            ("2of (a, b)", 1, "invalid number"),
        ]);
    }

    #[test]
    fn comparisons() {
        for (text, op) in [
            ("level < 3", CompareOp::Lt),
            ("level<=3", CompareOp::Le),
            ("level >3", CompareOp::Gt),
            ("level>= 3", CompareOp::Ge),
            ("level == 3", CompareOp::Eq),
            ("\"level\" == 003", CompareOp::Eq),
        ] {
            assert_eq!(parse(text), compare("level", op, 3), "{text}");
        }
        assert_eq!(parse("level <= 4294967295"), compare("level", CompareOp::Le, u32::MAX));
        assert_syntax_errors(&[
            ("level <= 4294967296", 10, "number out of range"),
            ("level = 3", 7, "expected `==`"),
            ("level >= x", 10, "expected a number"),
            ("level >=", 9, "expected a number"),
            ("level != 3", 7, "unexpected character `!`"),
        ]);
    }

    #[test]
    fn syntax_error_columns() {
        let control = "control character in quoted attribute (write it as `\\xHH`)";
        let hex = "`\\x` must be followed by two hex digits";
        assert_syntax_errors(&[
            ("", 1, "unexpected end of input"),
            ("  \t\n", 5, "unexpected end of input"),
            ("a and", 6, "unexpected end of input"),
            ("(a and b", 9, "expected `)`"),
            ("(a b)", 4, "expected `)`"),
            ("a)", 2, "unmatched `)`"),
            ("a b", 3, "expected `and`, `or` or end of input"),
            ("a and )", 7, "unexpected `)`"),
            (", a", 1, "unexpected `,`"),
            (">= 3", 1, "unexpected `>=`"),
            ("2 (a, b)", 3, "expected `of`"),
            ("2 of a, b", 6, "expected `(`"),
            ("2 of (a, b c)", 12, "expected `,` or `)`"),
            ("2 of (a, )", 10, "unexpected `)`"),
            ("99999999999 of (a)", 1, "number out of range"),
            (r#"a or "\q""#, 7, "unknown escape `\\q`"),
            (r#"a or "\x4g""#, 7, hex),
            (r#"a or "\x4"#, 7, hex),
            (r#"a or "abc"#, 6, "unterminated quoted attribute"),
            (r#"a or "abc\"#, 6, "unterminated quoted attribute"),
            ("a or \"x\ty\"", 8, control),
            ("\"\x7f\"", 2, control),
            ("a && b", 3, "unexpected character `&`"),
        ]);
    }

    #[test]
    fn invalid_thresholds() {
        for (text, k, n) in [("0 of (a)", 0, 1), ("3 of (a, b)", 3, 2), ("a and 0 of (a, b)", 0, 2)] {
            assert_eq!(Policy::parse(text), Err(Error::InvalidThreshold { k, n }), "{text}");
        }
    }

    #[test]
    fn limits() {
        assert_eq!(limit(&"a".repeat(MAX_POLICY_LEN + 1)), Limit::PolicyLength);
        assert_eq!(limit(&"(".repeat(100_000)), Limit::PolicyLength);
        assert_eq!(limit(&format!("{}a", "(".repeat(10_000))), Limit::PolicyDepth);
        assert_eq!(limit(&format!("{}a", "(".repeat(MAX_POLICY_LEN - 1))), Limit::PolicyDepth);
        let nested = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(parse(&nested(MAX_POLICY_DEPTH)), attr("a"));
        assert_eq!(limit(&nested(MAX_POLICY_DEPTH + 1)), Limit::PolicyDepth);
        let thresholds = |n: usize| format!("{}a, b, c{}", "2 of (a, b, ".repeat(n), ")".repeat(n));
        assert!(Policy::parse(&thresholds(MAX_POLICY_DEPTH - 1)).is_ok());
        assert_eq!(limit(&thresholds(MAX_POLICY_DEPTH)), Limit::PolicyDepth);
        // Gates nest deeper than parentheses: each level adds an `or` and an `and`.
        let gates = |n: usize| format!("{}x{}", "(a or b and ".repeat(n), ")".repeat(n));
        assert!(Policy::parse(&gates(7)).is_ok());
        assert_eq!(limit(&gates(8)), Limit::PolicyDepth);
        let leaves = |n: usize| vec!["a"; n].join(" or ");
        assert!(Policy::parse(&leaves(MAX_POLICY_ROWS)).is_ok());
        assert_eq!(limit(&leaves(MAX_POLICY_ROWS + 1)), Limit::PolicyRows);
        let bare = "a".repeat(MAX_ATTRIBUTE_LEN);
        assert!(Policy::parse(&bare).is_ok());
        assert!(Policy::parse(&format!("\"{bare}\"")).is_ok());
        assert_eq!(limit(&format!("{bare}b")), Limit::AttributeLength);
        assert_eq!(limit(&format!("\"{bare}b\"")), Limit::AttributeLength);
        let escaped = r"\x00".repeat(MAX_ATTRIBUTE_LEN + 1);
        assert_eq!(limit(&format!("\"{escaped}\"")), Limit::AttributeLength);
    }

    #[test]
    fn from_str_and_whitespace() {
        let p: Policy = " (\ta\n and\r\nb ) or c ".parse().expect("parses");
        assert_eq!(p, parse("(a and b) or c"));
    }
}
