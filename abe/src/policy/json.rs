//! The JSON form of a policy, for tools and configuration files.
//!
//! ```text
//! {"attr":"role:admin"}                      {"attr_hex":"00ff"}   (bytes that are not UTF-8)
//! {"compare":{"name":"level","op":">=","value":3}}                   ("name_hex" likewise)
//! {"and":[...]}   {"or":[...]}   {"threshold":{"k":2,"of":[...]}}
//! ```
//!
//! Decoding is strict (every object has exactly the keys shown) and builds through the normalising
//! constructors under the same bounds as the text parser.

use core::fmt;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::ast::{Attribute, CompareOp, Policy};
use super::parse::exceeded;
use crate::error::{Error, Limit, Result};
use crate::limits::{MAX_ATTRIBUTE_LEN, MAX_POLICY_DEPTH, MAX_POLICY_LEN, MAX_POLICY_ROWS};

/// Longest JSON text accepted by [`Policy::from_json`].
const MAX_JSON_LEN: usize = 4 * MAX_POLICY_LEN;

impl Policy {
    /// The policy's JSON form (compact, deterministic: keys in a fixed order).
    pub fn to_json(&self) -> String {
        encode(self).to_string()
    }

    /// Decodes the JSON form written by [`Policy::to_json`], normalising the result.
    ///
    /// # Errors
    /// [`Error::PolicyJson`] for malformed JSON, unknown or missing keys and wrong types;
    /// [`Error::InvalidThreshold`] for a threshold `k` of zero or above its number of children;
    /// [`Error::LimitExceeded`] for text longer than four times [`MAX_POLICY_LEN`] bytes and for the same depth,
    /// leaf and attribute-length bounds as [`Policy::parse`].
    pub fn from_json(text: &str) -> Result<Policy> {
        if text.len() > MAX_JSON_LEN {
            return Err(exceeded(Limit::PolicyLength, MAX_JSON_LEN));
        }
        // serde_json bounds its own recursion (128 levels), so hostile nesting cannot exhaust the stack.
        let Strict(value) = serde_json::from_str(text).map_err(|e| json_error(e.to_string()))?;
        let policy = Decoder { leaves: 0 }.node(&value, 1)?;
        if policy.depth() > MAX_POLICY_DEPTH {
            return Err(exceeded(Limit::PolicyDepth, MAX_POLICY_DEPTH));
        }
        policy.check_printed_len()
    }
}

/// A JSON value read with duplicate object keys rejected (plain [`Value`] silently keeps the last one, and
/// readers disagree on which duplicate wins, so a policy must not depend on it).
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(A::Error::custom(format!("duplicate key {key:?}")));
            }
            let Strict(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

fn json_error(reason: impl Into<String>) -> Error {
    Error::PolicyJson(reason.into())
}

/// A one-key object `{key: value}`.
fn single(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.to_owned(), value);
    Value::Object(map)
}

/// Inserts `name` under `text_key` when it is UTF-8, else under `hex_key` as lowercase hex.
fn insert_name(map: &mut Map<String, Value>, name: &Attribute, text_key: &str, hex_key: &str) {
    match core::str::from_utf8(name.as_bytes()) {
        Ok(text) => map.insert(text_key.to_owned(), Value::from(text)),
        Err(_) => map.insert(hex_key.to_owned(), Value::from(hex::encode(name.as_bytes()))),
    };
}

fn encode(policy: &Policy) -> Value {
    let array = |children: &[Policy]| Value::Array(children.iter().map(encode).collect());
    match policy {
        Policy::Attr(attribute) => {
            let mut map = Map::new();
            insert_name(&mut map, attribute, "attr", "attr_hex");
            Value::Object(map)
        }
        Policy::Compare { name, op, bound } => {
            let mut map = Map::new();
            insert_name(&mut map, name, "name", "name_hex");
            map.insert("op".to_owned(), Value::from(op.symbol()));
            map.insert("value".to_owned(), Value::from(*bound));
            single("compare", Value::Object(map))
        }
        Policy::And(children) => single("and", array(children)),
        Policy::Or(children) => single("or", array(children)),
        Policy::Threshold { k, children } => {
            let mut map = Map::new();
            map.insert("k".to_owned(), Value::from(*k));
            map.insert("of".to_owned(), array(children));
            single("threshold", Value::Object(map))
        }
    }
}

/// The JSON type of `value`, for error messages.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn as_object<'v>(value: &'v Value, what: &str) -> Result<&'v Map<String, Value>> {
    value.as_object().ok_or_else(|| json_error(format!("{what} must be an object, found {}", type_name(value))))
}

fn as_str<'v>(value: &'v Value, what: &str) -> Result<&'v str> {
    value.as_str().ok_or_else(|| json_error(format!("{what} must be a string, found {}", type_name(value))))
}

/// Checks that every key of `map` is one of `allowed`.
fn only_keys(map: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<()> {
    match map.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(json_error(format!("unknown key {key:?} in {what}"))),
        None => Ok(()),
    }
}

fn from_hex(text: &str, what: &str) -> Result<Vec<u8>> {
    if text.len() > 2 * MAX_ATTRIBUTE_LEN {
        return Err(exceeded(Limit::AttributeLength, MAX_ATTRIBUTE_LEN));
    }
    hex::decode(text).map_err(|_| json_error(format!("{what} must be an even number of hex digits")))
}

/// An attribute from its bytes; empty names are a JSON error, overlong ones a limit error.
fn attribute(bytes: Vec<u8>, what: &str) -> Result<Attribute> {
    if bytes.is_empty() {
        return Err(json_error(format!("{what} is empty")));
    }
    Attribute::new(bytes)
}

fn compare_op(symbol: &str) -> Result<CompareOp> {
    [CompareOp::Lt, CompareOp::Le, CompareOp::Gt, CompareOp::Ge, CompareOp::Eq]
        .into_iter()
        .find(|op| op.symbol() == symbol)
        .ok_or_else(|| json_error(format!("unknown comparison operator {symbol:?}")))
}

/// Decoding state: the leaves seen so far.
struct Decoder {
    leaves: usize,
}

impl Decoder {
    /// Counts one more leaf against the bound.
    fn count_leaf(&mut self) -> Result<()> {
        self.leaves += 1;
        if self.leaves > MAX_POLICY_ROWS {
            return Err(exceeded(Limit::PolicyRows, MAX_POLICY_ROWS));
        }
        Ok(())
    }

    /// A policy node at nesting `level` (the root is level 1).
    fn node(&mut self, value: &Value, level: usize) -> Result<Policy> {
        if level > MAX_POLICY_DEPTH {
            return Err(exceeded(Limit::PolicyDepth, MAX_POLICY_DEPTH));
        }
        let map = as_object(value, "a policy node")?;
        let mut entries = map.iter();
        let (key, body) = match (entries.next(), entries.next()) {
            (Some(entry), None) => entry,
            _ => return Err(json_error(format!("a policy node must have exactly one key, found {}", map.len()))),
        };
        match key.as_str() {
            "attr" => {
                self.count_leaf()?;
                let text = as_str(body, "`attr`")?;
                Ok(Policy::Attr(attribute(text.as_bytes().to_vec(), "`attr`")?))
            }
            "attr_hex" => {
                self.count_leaf()?;
                let bytes = from_hex(as_str(body, "`attr_hex`")?, "`attr_hex`")?;
                Ok(Policy::Attr(attribute(bytes, "`attr_hex`")?))
            }
            "compare" => {
                self.count_leaf()?;
                compare(body)
            }
            "and" => Policy::and(self.children(body, level, "`and`")?),
            "or" => Policy::or(self.children(body, level, "`or`")?),
            "threshold" => {
                let map = as_object(body, "`threshold`")?;
                only_keys(map, &["k", "of"], "`threshold`")?;
                let k = map.get("k").ok_or_else(|| json_error("`threshold` is missing `k`"))?;
                let k = k
                    .as_u64()
                    .and_then(|k| usize::try_from(k).ok())
                    .ok_or_else(|| json_error("`threshold.k` must be a non-negative integer"))?;
                let of = map.get("of").ok_or_else(|| json_error("`threshold` is missing `of`"))?;
                Policy::threshold(k, self.children(of, level, "`threshold.of`")?)
            }
            other => Err(json_error(format!("unknown policy node key {other:?}"))),
        }
    }

    /// The non-empty child array of a gate at `level`.
    fn children(&mut self, value: &Value, level: usize, what: &str) -> Result<Vec<Policy>> {
        let items = value
            .as_array()
            .ok_or_else(|| json_error(format!("{what} must be an array, found {}", type_name(value))))?;
        if items.is_empty() {
            return Err(json_error(format!("{what} has no children")));
        }
        items.iter().map(|item| self.node(item, level + 1)).collect()
    }
}

/// The body of a `compare` node.
fn compare(body: &Value) -> Result<Policy> {
    let map = as_object(body, "`compare`")?;
    only_keys(map, &["name", "name_hex", "op", "value"], "`compare`")?;
    let name = match (map.get("name"), map.get("name_hex")) {
        (Some(name), None) => attribute(as_str(name, "`compare.name`")?.as_bytes().to_vec(), "`compare.name`")?,
        (None, Some(hex)) => {
            attribute(from_hex(as_str(hex, "`compare.name_hex`")?, "`compare.name_hex`")?, "`compare.name_hex`")?
        }
        _ => return Err(json_error("`compare` needs exactly one of `name` and `name_hex`")),
    };
    let op = map.get("op").ok_or_else(|| json_error("`compare` is missing `op`"))?;
    let op = compare_op(as_str(op, "`compare.op`")?)?;
    let bound = map.get("value").ok_or_else(|| json_error("`compare` is missing `value`"))?;
    let bound = bound
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| json_error("`compare.value` must be an unsigned 32-bit integer"))?;
    Ok(Policy::Compare { name, op, bound })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Policy {
        Policy::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    fn json_err(text: &str) -> String {
        match Policy::from_json(text) {
            Err(Error::PolicyJson(reason)) => {
                assert!(!reason.contains('\n'), "one-line reason: {reason:?}");
                reason
            }
            other => panic!("{text:?}: expected a JSON error, got {other:?}"),
        }
    }

    fn limit(text: &str) -> Limit {
        match Policy::from_json(text) {
            Err(Error::LimitExceeded { what, .. }) => what,
            other => panic!("expected a limit error, got {other:?}"),
        }
    }

    #[test]
    fn encodes_each_form() {
        assert_eq!(parse("role:admin").to_json(), r#"{"attr":"role:admin"}"#);
        assert_eq!(parse(r#""\x00\xff""#).to_json(), r#"{"attr_hex":"00ff"}"#);
        assert_eq!(parse(r#""münchen""#).to_json(), r#"{"attr":"münchen"}"#);
        assert_eq!(parse("level >= 3").to_json(), r#"{"compare":{"name":"level","op":">=","value":3}}"#);
        assert_eq!(parse(r#""\xfe" < 4"#).to_json(), r#"{"compare":{"name_hex":"fe","op":"<","value":4}}"#);
        assert_eq!(parse("a and b").to_json(), r#"{"and":[{"attr":"a"},{"attr":"b"}]}"#);
        assert_eq!(parse("a or b").to_json(), r#"{"or":[{"attr":"a"},{"attr":"b"}]}"#);
        assert_eq!(
            parse("2 of (a, b, c)").to_json(),
            r#"{"threshold":{"k":2,"of":[{"attr":"a"},{"attr":"b"},{"attr":"c"}]}}"#
        );
    }

    #[test]
    fn round_trips() {
        for text in [
            "(role:operator and site:berlin) or role:admin",
            "2 of (dept:ops, dept:sec, clearance:high)",
            "level >= 3 and zone:eu",
            r#""quoted attribute with spaces" or "\x00\xff raw bytes""#,
            r#"2 of (a and b, "and" == 7, 3 of (c, "\x80" <= 0, d or e, f))"#,
            r#""0" or "01" or "0|1" or "münchen" or "\x00""#,
        ] {
            let policy = parse(text);
            assert_eq!(Policy::from_json(&policy.to_json()), Ok(policy), "{text}");
        }
    }

    #[test]
    fn decodes_and_normalises() {
        assert_eq!(Policy::from_json(r#" { "attr" : "a" } "#), Ok(parse("a")));
        assert_eq!(Policy::from_json(r#"{"attr_hex":"6D"}"#), Ok(parse("m")));
        assert_eq!(Policy::from_json(r#"{"and":[{"attr":"a"}]}"#), Ok(parse("a")));
        assert_eq!(
            Policy::from_json(r#"{"and":[{"attr":"a"},{"and":[{"attr":"b"},{"attr":"c"}]}]}"#),
            Ok(parse("a and b and c"))
        );
        assert_eq!(Policy::from_json(r#"{"threshold":{"of":[{"attr":"a"},{"attr":"b"}],"k":1}}"#), Ok(parse("a or b")));
        assert_eq!(
            Policy::from_json(r#"{"threshold":{"k":2,"of":[{"attr":"a"},{"attr":"b"}]}}"#),
            Ok(parse("a and b"))
        );
        assert_eq!(
            Policy::from_json(r#"{"compare":{"value":4294967295,"op":"==","name_hex":"616e64"}}"#),
            Ok(parse(r#""and" == 4294967295"#))
        );
    }

    #[test]
    fn rejects_malformed() {
        assert!(json_err("").contains("EOF"));
        assert!(json_err("{\"attr\":\"a\"} x").contains("trailing"));
        assert_eq!(json_err("[]"), "a policy node must be an object, found an array");
        assert_eq!(json_err("{}"), "a policy node must have exactly one key, found 0");
        assert_eq!(json_err(r#"{"attr":"a","or":[]}"#), "a policy node must have exactly one key, found 2");
        assert_eq!(json_err(r#"{"xor":[]}"#), r#"unknown policy node key "xor""#);
        assert_eq!(json_err(r#"{"attr":1}"#), "`attr` must be a string, found a number");
        assert_eq!(json_err(r#"{"attr":""}"#), "`attr` is empty");
        assert_eq!(json_err(r#"{"attr_hex":""}"#), "`attr_hex` is empty");
        assert_eq!(json_err(r#"{"attr_hex":"abc"}"#), "`attr_hex` must be an even number of hex digits");
        assert_eq!(json_err(r#"{"attr_hex":"zz"}"#), "`attr_hex` must be an even number of hex digits");
        assert_eq!(json_err(r#"{"and":{}}"#), "`and` must be an array, found an object");
        assert_eq!(json_err(r#"{"or":[]}"#), "`or` has no children");
        assert_eq!(json_err(r#"{"and":[null]}"#), "a policy node must be an object, found null");
        assert_eq!(json_err(r#"{"threshold":{"k":1}}"#), "`threshold` is missing `of`");
        assert_eq!(json_err(r#"{"threshold":{"of":[]}}"#), "`threshold` is missing `k`");
        assert_eq!(json_err(r#"{"threshold":{"k":-1,"of":[]}}"#), "`threshold.k` must be a non-negative integer");
        assert_eq!(json_err(r#"{"threshold":{"k":1,"of":[],"x":0}}"#), r#"unknown key "x" in `threshold`"#);
        assert_eq!(json_err(r#"{"compare":{"name":"a","op":"<"}}"#), "`compare` is missing `value`");
        assert_eq!(json_err(r#"{"compare":{"name":"a","value":1}}"#), "`compare` is missing `op`");
        assert_eq!(
            json_err(r#"{"compare":{"name":"a","name_hex":"61","op":"<","value":1}}"#),
            "`compare` needs exactly one of `name` and `name_hex`"
        );
        assert_eq!(json_err(r#"{"compare":{"name":"a","op":"!=","value":1}}"#), r#"unknown comparison operator "!=""#);
        assert_eq!(
            json_err(r#"{"compare":{"name":"a","op":"<","value":4294967296}}"#),
            "`compare.value` must be an unsigned 32-bit integer"
        );
        assert_eq!(
            json_err(r#"{"compare":{"name":"a","op":"<","value":1.5}}"#),
            "`compare.value` must be an unsigned 32-bit integer"
        );
        assert_eq!(
            json_err(r#"{"compare":{"name":"a","op":"<","value":1,"extra":true}}"#),
            r#"unknown key "extra" in `compare`"#
        );
        assert!(json_err(&"[".repeat(1000)).contains("recursion limit"));
        assert!(json_err(r#"{"attr":"a","attr":"b"}"#).starts_with(r#"duplicate key "attr""#));
        let duplicate = r#"{"compare":{"name":"a","op":"<","op":">","value":1}}"#;
        assert!(json_err(duplicate).starts_with(r#"duplicate key "op""#));
    }

    #[test]
    fn invalid_thresholds() {
        let two = r#"[{"attr":"a"},{"attr":"b"}]"#;
        assert_eq!(
            Policy::from_json(&format!(r#"{{"threshold":{{"k":0,"of":{two}}}}}"#)),
            Err(Error::InvalidThreshold { k: 0, n: 2 })
        );
        assert_eq!(
            Policy::from_json(&format!(r#"{{"threshold":{{"k":3,"of":{two}}}}}"#)),
            Err(Error::InvalidThreshold { k: 3, n: 2 })
        );
        assert_eq!(json_err(r#"{"threshold":{"k":0,"of":[]}}"#), "`threshold.of` has no children");
    }

    #[test]
    fn limits() {
        assert_eq!(limit(&" ".repeat(MAX_JSON_LEN + 1)), Limit::PolicyLength);
        let nested = |n: usize| format!("{}{{\"attr\":\"x\"}}{}", r#"{"and":["#.repeat(n), "]}".repeat(n));
        assert_eq!(Policy::from_json(&nested(MAX_POLICY_DEPTH - 1)), Ok(parse("x")));
        assert_eq!(limit(&nested(MAX_POLICY_DEPTH)), Limit::PolicyDepth);
        let leaves = |n: usize| format!(r#"{{"or":[{}]}}"#, vec![r#"{"attr":"a"}"#; n].join(","));
        assert!(Policy::from_json(&leaves(MAX_POLICY_ROWS)).is_ok());
        assert_eq!(limit(&leaves(MAX_POLICY_ROWS + 1)), Limit::PolicyRows);
        let long = "a".repeat(MAX_ATTRIBUTE_LEN + 1);
        assert_eq!(limit(&format!(r#"{{"attr":"{long}"}}"#)), Limit::AttributeLength);
        assert_eq!(
            limit(&format!(r#"{{"attr_hex":"{}"}}"#, "00".repeat(MAX_ATTRIBUTE_LEN + 1))),
            Limit::AttributeLength
        );
    }
}
