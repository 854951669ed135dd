//! The Prometheus text exposition format, version 0.0.4.
//!
//! ```text
//! # HELP <name> <help, with \ and newline escaped>
//! # TYPE <name> counter|gauge|summary|histogram|untyped
//! <name>{<label>="<value, with \ " and newline escaped>",...} <value>
//! ```

use std::fmt::{self, Write as _};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The `# TYPE` of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A count that only goes up (its name usually ends in `_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// `_sum` and `_count` rows (see [`Family::summary`]), and quantiles if any.
    Summary,
    /// `_bucket`, `_sum` and `_count` rows.
    Histogram,
    /// Anything else.
    Untyped,
}

impl Kind {
    /// The word `# TYPE` writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
            Kind::Histogram => "histogram",
            Kind::Untyped => "untyped",
        }
    }
}

/// A sample's value: an integer written as such, or a float (`NaN`, `+Inf`, `-Inf` for the non-finite ones).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Value(Repr);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Repr {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

macro_rules! value_from {
    ($($t:ty => $variant:ident as $as:ty),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(value: $t) -> Value {
                Value(Repr::$variant(<$as>::from(value)))
            }
        }
    )*};
}

value_from!(u8 => Unsigned as u64, u16 => Unsigned as u64, u32 => Unsigned as u64, u64 => Unsigned as u64,
    i8 => Signed as i64, i16 => Signed as i64, i32 => Signed as i64, i64 => Signed as i64,
    f32 => Float as f64, f64 => Float as f64);

impl From<usize> for Value {
    fn from(value: usize) -> Value {
        Value(Repr::Unsigned(u64::try_from(value).unwrap_or(u64::MAX)))
    }
}

impl From<bool> for Value {
    /// `1` or `0`.
    fn from(value: bool) -> Value {
        Value(Repr::Unsigned(u64::from(value)))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Repr::Unsigned(v) => write!(f, "{v}"),
            Repr::Signed(v) => write!(f, "{v}"),
            Repr::Float(v) if v.is_nan() => f.write_str("NaN"),
            Repr::Float(v) if v == f64::INFINITY => f.write_str("+Inf"),
            Repr::Float(v) if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            Repr::Float(v) => write!(f, "{v}"),
        }
    }
}

#[derive(Debug)]
struct FamilyText {
    name: String,
    help: String,
    kind: Kind,
    samples: String,
}

/// An exposition being written: families in the order they were first named, each with its `# HELP` and
/// `# TYPE` once and its samples together. [`Exposition::finish`] gives the text.
///
/// Names are the code's own constants; a character the format does not allow in a metric name
/// (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or label name (`[a-zA-Z_][a-zA-Z0-9_]*`) is written as `_`, so that the
/// exposition stays parseable whatever it is given.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<FamilyText>,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// A counter without labels: its family and its one sample.
    pub fn counter(&mut self, name: &str, help: &str, value: impl Into<Value>) -> &mut Exposition {
        self.family(name, help, Kind::Counter).sample(&[], value);
        self
    }

    /// A gauge without labels: its family and its one sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: impl Into<Value>) -> &mut Exposition {
        self.family(name, help, Kind::Gauge).sample(&[], value);
        self
    }

    /// The family `name`, to add samples to; created with `help` and `kind` the first time (a family with no
    /// samples is still written, HELP and TYPE only). Naming it again continues it: the first help and kind stay.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) -> Family<'_> {
        let name = metric_name(name);
        let index = match self.families.iter().position(|f| f.name == name) {
            Some(index) => index,
            None => {
                self.families.push(FamilyText { name, help: escape_help(help), kind, samples: String::new() });
                self.families.len() - 1
            }
        };
        Family { exposition: self, index }
    }

    /// The text.
    pub fn finish(self) -> String {
        let mut out = String::with_capacity(
            self.families.iter().map(|f| 2 * f.name.len() + f.help.len() + f.samples.len() + 24).sum(),
        );
        for family in &self.families {
            let name = &family.name;
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
            out.push_str(&family.samples);
        }
        out
    }
}

/// One family of an [`Exposition`]: add its samples.
#[derive(Debug)]
pub struct Family<'a> {
    exposition: &'a mut Exposition,
    index: usize,
}

impl Family<'_> {
    /// A sample `name{labels} value`; the labels in the order given (none: `name value`).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) -> &mut Self {
        self.row("", labels, value.into());
        self
    }

    /// A summary's `name_sum{labels} sum` and `name_count{labels} count`.
    pub fn summary(&mut self, labels: &[(&str, &str)], sum: impl Into<Value>, count: u64) -> &mut Self {
        self.row("_sum", labels, sum.into());
        self.row("_count", labels, Value::from(count));
        self
    }

    fn row(&mut self, suffix: &str, labels: &[(&str, &str)], value: Value) {
        let family = &mut self.exposition.families[self.index];
        let out = &mut family.samples;
        out.push_str(&family.name);
        out.push_str(suffix);
        if !labels.is_empty() {
            out.push('{');
            for (i, (label, text)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_label_name(out, label);
                out.push_str("=\"");
                push_label_value(out, text);
                out.push('"');
            }
            out.push('}');
        }
        let _ = writeln!(out, " {value}");
    }
}

/// `name` with every character outside `[a-zA-Z0-9_:]`, and a leading digit, written as `_`.
fn metric_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len().max(1));
    for (i, c) in name.chars().enumerate() {
        let allowed = c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit());
        out.push(if allowed { c } else { '_' });
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Like [`metric_name`] without `:`.
fn push_label_name(out: &mut String, name: &str) {
    if name.is_empty() {
        out.push('_');
    }
    for (i, c) in name.chars().enumerate() {
        let allowed = c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit());
        out.push(if allowed { c } else { '_' });
    }
}

/// `\` → `\\`, `"` → `\"`, newline → `\n`.
fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `\` → `\\`, newline → `\n` (quotes stay as they are in a help text).
fn escape_help(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_and_gauge_write_help_type_and_sample() {
        let mut x = Exposition::new();
        x.counter("a_total", "As seen.", 7u64).gauge("b", "B now.", 0u8);
        assert_eq!(
            x.finish(),
            "# HELP a_total As seen.\n# TYPE a_total counter\na_total 7\n# HELP b B now.\n# TYPE b gauge\nb 0\n"
        );
    }

    #[test]
    fn help_and_type_once_per_family_and_samples_kept_together() {
        let mut x = Exposition::new();
        x.family("a_total", "A.", Kind::Counter).sample(&[("k", "1")], 1u64);
        x.gauge("b", "B.", 2u64);
        // Named again, with another help and kind: continues the first.
        x.family("a_total", "other help", Kind::Gauge).sample(&[("k", "2")], 3u64);
        x.counter("a_total", "yet another", 4u64);
        assert_eq!(
            x.finish(),
            "# HELP a_total A.\n# TYPE a_total counter\na_total{k=\"1\"} 1\na_total{k=\"2\"} 3\na_total 4\n\
             # HELP b B.\n# TYPE b gauge\nb 2\n"
        );
    }

    #[test]
    fn family_without_samples_writes_help_and_type() {
        let mut x = Exposition::new();
        x.family("empty_total", "Nothing yet.", Kind::Counter);
        assert_eq!(x.finish(), "# HELP empty_total Nothing yet.\n# TYPE empty_total counter\n");
    }

    #[test]
    fn labels_in_the_order_given() {
        let mut x = Exposition::new();
        x.family("r_total", "R.", Kind::Counter).sample(&[("check", "connect"), ("reason", "throttled")], 0u64);
        assert!(x.finish().ends_with("\nr_total{check=\"connect\",reason=\"throttled\"} 0\n"));
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        let mut x = Exposition::new();
        x.family("e", "E.", Kind::Gauge).sample(&[("v", "a\\b\"c\nd")], 1u64);
        assert!(x.finish().ends_with("\ne{v=\"a\\\\b\\\"c\\nd\"} 1\n"));
    }

    #[test]
    fn help_escapes_backslash_and_newline_but_not_quotes() {
        let mut x = Exposition::new();
        x.gauge("h", "one \\ two\nthree \"q\"", 1u64);
        assert!(x.finish().starts_with("# HELP h one \\\\ two\\nthree \"q\"\n# TYPE h gauge\n"));
    }

    #[test]
    fn summary_writes_sum_and_count_rows() {
        let mut x = Exposition::new();
        x.family("s_seconds", "S.", Kind::Summary).summary(&[("route", "/v1/keys")], 1234.0 / 1e6, 2);
        assert_eq!(
            x.finish(),
            "# HELP s_seconds S.\n# TYPE s_seconds summary\n\
             s_seconds_sum{route=\"/v1/keys\"} 0.001234\ns_seconds_count{route=\"/v1/keys\"} 2\n"
        );
    }

    #[test]
    fn values_integers_floats_and_non_finite() {
        let shown = |v: Value| v.to_string();
        assert_eq!(shown(u64::MAX.into()), "18446744073709551615");
        assert_eq!(shown((-3i64).into()), "-3");
        assert_eq!(shown(true.into()), "1");
        assert_eq!(shown(false.into()), "0");
        assert_eq!(shown(7usize.into()), "7");
        assert_eq!(shown(0.0f64.into()), "0");
        assert_eq!(shown(0.5f64.into()), "0.5");
        assert_eq!(shown(f64::NAN.into()), "NaN");
        assert_eq!(shown(f64::INFINITY.into()), "+Inf");
        assert_eq!(shown(f64::NEG_INFINITY.into()), "-Inf");
    }

    #[test]
    fn invalid_name_characters_become_underscores() {
        let mut x = Exposition::new();
        x.family("9bad-name.x", "N.", Kind::Gauge).sample(&[("0la-bel", "v"), ("ok:no", "w"), ("", "e")], 1u64);
        assert_eq!(
            x.finish(),
            "# HELP _bad_name_x N.\n# TYPE _bad_name_x gauge\n_bad_name_x{_la_bel=\"v\",ok_no=\"w\",_=\"e\"} 1\n"
        );
        assert_eq!(metric_name("ns:sub_total9"), "ns:sub_total9");
        assert_eq!(metric_name(""), "_");
    }

    #[test]
    fn empty_exposition_is_empty() {
        assert_eq!(Exposition::new().finish(), "");
    }

    /// A sample line, parsed: name, labels (unescaped), value.
    type Sample = (String, Vec<(String, String)>, f64);

    fn is_name(name: &str, colon: bool) -> bool {
        !name.is_empty()
            && name.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || (colon && c == ':') || (i > 0 && c.is_ascii_digit())
            })
    }

    /// Parses one sample line of the 0.0.4 format; `None` if it is not one.
    fn parse_sample(line: &str) -> Option<Sample> {
        let name_end = line.find(['{', ' '])?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return None;
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(mut inner) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = inner.strip_prefix('}') {
                    rest = after;
                    break;
                }
                if !labels.is_empty() {
                    inner = inner.strip_prefix(',')?;
                }
                let eq = inner.find('=')?;
                let label = &inner[..eq];
                if !is_name(label, false) {
                    return None;
                }
                let mut chars = inner[eq + 1..].strip_prefix('"')?.char_indices();
                let mut value = String::new();
                let end = loop {
                    match chars.next()? {
                        (i, '"') => break i,
                        (_, '\\') => match chars.next()?.1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            _ => return None,
                        },
                        (_, '\n') => return None,
                        (_, c) => value.push(c),
                    }
                };
                labels.push((label.to_owned(), value));
                inner = &inner[eq + 2 + end + 1..];
            }
        }
        let value = match rest.strip_prefix(' ')? {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().ok()?,
        };
        Some((name.to_owned(), labels, value))
    }

    /// Reads an exposition back line by line: every line is a HELP, a TYPE or a sample; each family has one
    /// HELP then one TYPE before its samples, and every sample belongs to the family declared last (with
    /// `_sum` / `_count` for summaries). Returns (family, kind, help) and the samples.
    fn parse(text: &str) -> (Vec<(String, String, String)>, Vec<Sample>) {
        assert!(text.is_empty() || text.ends_with('\n'), "the text ends with a newline");
        let mut families: Vec<(String, String, String)> = Vec::new();
        let mut samples = Vec::new();
        let mut help: Option<(String, String)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, text) = rest.split_once(' ').expect("HELP name text");
                assert!(is_name(name, true), "{line}");
                assert!(families.iter().all(|f| f.0 != name), "HELP once per family: {line}");
                assert!(help.is_none(), "HELP followed by TYPE: {line}");
                let mut unescaped = String::new();
                let mut chars = text.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            Some('\\') => unescaped.push('\\'),
                            Some('n') => unescaped.push('\n'),
                            other => panic!("bad escape {other:?} in {line}"),
                        },
                        c => unescaped.push(c),
                    }
                }
                help = Some((name.to_owned(), unescaped));
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                let (help_name, help_text) = help.take().expect("HELP before TYPE");
                assert_eq!(help_name, name, "{line}");
                assert!(["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind), "{line}");
                families.push((name.to_owned(), kind.to_owned(), help_text));
            } else {
                assert!(!line.starts_with('#'), "no other comments: {line}");
                let sample = parse_sample(line).unwrap_or_else(|| panic!("not a sample line: {line:?}"));
                let (family, kind, _) = families.last().expect("a sample after its TYPE");
                let belongs = sample.0 == *family
                    || (kind == "summary" && [format!("{family}_sum"), format!("{family}_count")].contains(&sample.0));
                assert!(belongs, "{} outside its family {family}", sample.0);
                samples.push(sample);
            }
        }
        assert!(help.is_none(), "a HELP without TYPE");
        (families, samples)
    }

    #[test]
    fn own_output_parses_back_line_by_line() {
        let awkward = "a\\b\"c\nd}{,=";
        let mut x = Exposition::new();
        x.counter("c_total", "Counted \\ once.\nReally.", 1u64);
        x.family("l_total", "Labelled.", Kind::Counter)
            .sample(&[("check", "connect"), ("reason", awkward)], 2u64)
            .sample(&[("check", "publish"), ("reason", "")], 3u64);
        x.family("s_seconds", "Time.", Kind::Summary).summary(&[("route", "/v1/devices/{id}")], 0.25, 4);
        x.gauge("g", "Gauge.", -1i64);
        x.gauge("f", "Float.", f64::INFINITY);
        x.family("e_total", "Empty.", Kind::Counter);
        x.counter("c_total", "ignored", 5u64);
        let (families, samples) = parse(&x.finish());
        let names: Vec<_> = families.iter().map(|(n, k, _)| format!("{n}:{k}")).collect();
        assert_eq!(
            names,
            ["c_total:counter", "l_total:counter", "s_seconds:summary", "g:gauge", "f:gauge", "e_total:counter"]
        );
        assert_eq!(families[0].2, "Counted \\ once.\nReally.");
        let owned =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect::<Vec<_>>();
        let expected: Vec<Sample> = vec![
            ("c_total".into(), vec![], 1.0),
            ("c_total".into(), vec![], 5.0),
            ("l_total".into(), owned(&[("check", "connect"), ("reason", awkward)]), 2.0),
            ("l_total".into(), owned(&[("check", "publish"), ("reason", "")]), 3.0),
            ("s_seconds_sum".into(), owned(&[("route", "/v1/devices/{id}")]), 0.25),
            ("s_seconds_count".into(), owned(&[("route", "/v1/devices/{id}")]), 4.0),
            ("g".into(), vec![], -1.0),
            ("f".into(), vec![], f64::INFINITY),
        ];
        assert_eq!(samples, expected);
    }

    #[test]
    fn the_parser_refuses_what_the_format_does_not_allow() {
        assert!(parse_sample("a{b=\"c\nd\"} 1").is_none(), "raw newline in a label value");
        assert!(parse_sample("a{b=\"c\\qd\"} 1").is_none(), "unknown escape");
        assert!(parse_sample("a{b=\"c\"d=\"e\"} 1").is_none(), "missing comma");
        assert!(parse_sample("9a 1").is_none(), "name starting with a digit");
        assert!(parse_sample("a x").is_none(), "not a number");
        assert_eq!(parse_sample("a{b=\"\\\"\"} 1").map(|s| s.1), Some(vec![("b".into(), "\"".into())]));
    }
}
