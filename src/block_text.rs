//! The deterministic text of a Letta memory block, rendered from its fields and parsed
//! back (the format is documented in `docs/letta-block-format.md`).
//!
//! Letta stores a block as one string that the LLM reads as-is, and a PATCH replaces the
//! whole string. Whoever writes a block (the queue's Letta target, the batch endpoint
//! server) renders it from all its fields with [`render`]; whoever must not clobber a
//! block written earlier reads it back with [`parse`].
//!
//! One line per field, `name: value`, sorted by the name's bytes, joined by `\n` (no
//! trailing newline). Strings are quoted with JSON-style escapes so any text round-trips;
//! numbers print in the shortest form that parses back to the same `f64` (integers as
//! integers, never an exponent); booleans print `true` / `false`; cleared fields are absent.
//!
//! ```
//! use npc_sync::{block_text, Value};
//!
//! let health = Value::Number(62.0);
//! let location = Value::str("north \"gate\"");
//! let text = block_text::render(
//!     "status",
//!     [("location", &location), ("health", &health), ("torch", &Value::Bool(true))],
//!     5000,
//! )
//! .unwrap();
//! assert_eq!(text, "health: 62\nlocation: \"north \\\"gate\\\"\"\ntorch: true");
//!
//! let parsed = block_text::parse(&text);
//! assert!(parsed.errors.is_empty());
//! assert_eq!(parsed.fields[1], ("location".into(), location));
//!
//! let too_small = block_text::render("status", [("health", &health)], 5);
//! assert!(too_small.is_err()); // "block `status` renders to 10 characters, over its limit of 5"
//! ```

use crate::value::Value;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Write};

/// Why a block could not be rendered. Every variant names the block.
#[derive(Clone, Debug, PartialEq)]
pub enum BlockTextError {
    /// The rendered text has more characters (Unicode scalar values, as Letta counts
    /// them) than the block's limit.
    TooLarge {
        /// The block label.
        block: String,
        /// Characters of the rendered text.
        chars: usize,
        /// The block's limit in characters.
        limit: usize,
    },
    /// A field name cannot be written as a line's name.
    BadFieldName {
        /// The block label.
        block: String,
        /// The offending name.
        field: String,
        /// Why.
        reason: &'static str,
    },
    /// Two fields of one block have the same name.
    DuplicateField {
        /// The block label.
        block: String,
        /// The repeated name.
        field: String,
    },
    /// A number is NaN or infinite.
    NonFinite {
        /// The block label.
        block: String,
        /// The field holding it.
        field: String,
    },
}

impl fmt::Display for BlockTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockTextError::TooLarge {
                block,
                chars,
                limit,
            } => write!(
                f,
                "block `{block}` renders to {chars} characters, over its limit of {limit}"
            ),
            BlockTextError::BadFieldName {
                block,
                field,
                reason,
            } => write!(f, "block `{block}`, field name {field:?}: {reason}"),
            BlockTextError::DuplicateField { block, field } => {
                write!(f, "block `{block}`: field `{field}` is given twice")
            }
            BlockTextError::NonFinite { block, field } => {
                write!(f, "block `{block}`, field `{field}`: number is not finite")
            }
        }
    }
}

/// A line of a block's text that [`parse`] could not read (it is reported, never dropped
/// silently).
#[derive(Clone, Debug, PartialEq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// The line's text.
    pub text: String,
    /// Why it could not be read.
    pub reason: &'static str,
}

/// What [`parse`] read from a block's text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedBlock {
    /// The fields, in the order of their lines (sorted by name for rendered text).
    pub fields: Vec<(String, Value)>,
    /// Lines that are not a `name: value` line of this format (or repeat a name).
    pub errors: Vec<LineError>,
}

/// Checks that `name` can be a field name of the format: non-empty, no control
/// characters, no `:`, no leading or trailing whitespace.
pub fn check_field_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters (line breaks, tabs, ...)");
    }
    if name.contains(':') {
        return Err("must not contain `:` (it separates the name from the value)");
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err("must not start or end with whitespace");
    }
    Ok(())
}

/// An upper bound of the body of the PATCH that writes a block of at most `limit`
/// characters through Letta's API (`{"value":"<text>"}`, as the bridges write it): a
/// rendered text holds no control character but the line break (strings escape the rest
/// into plain ASCII), so a character takes at most 4 bytes inside the JSON string (a
/// 4-byte UTF-8 character; `\"`, `\\` and `\n` take 2).
///
/// ```
/// assert_eq!(npc_sync::block_text::patch_bytes_bound(5000), 20_012);
/// ```
pub fn patch_bytes_bound(limit: u32) -> u64 {
    const ENVELOPE: u64 = r#"{"value":""}"#.len() as u64;
    ENVELOPE + 4 * u64::from(limit)
}

/// Renders a block's full text from its fields (any order; sorted here by name bytes).
/// Cleared fields are left out. Fails, naming the block, on a bad or repeated field name,
/// a non-finite number, or text longer than `limit` characters.
pub fn render<'a, I>(block: &str, fields: I, limit: usize) -> Result<String, BlockTextError>
where
    I: IntoIterator<Item = (&'a str, &'a Value)>,
{
    let mut sorted: Vec<(&str, &Value)> = fields
        .into_iter()
        .filter(|(_, v)| !matches!(v, Value::Cleared))
        .collect();
    sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::new();
    for (i, (name, value)) in sorted.iter().enumerate() {
        check_field_name(name).map_err(|reason| BlockTextError::BadFieldName {
            block: block.to_string(),
            field: name.to_string(),
            reason,
        })?;
        if i > 0 {
            if sorted[i - 1].0 == *name {
                return Err(BlockTextError::DuplicateField {
                    block: block.to_string(),
                    field: name.to_string(),
                });
            }
            out.push('\n');
        }
        if let Value::Number(n) = value {
            if !n.is_finite() {
                return Err(BlockTextError::NonFinite {
                    block: block.to_string(),
                    field: name.to_string(),
                });
            }
        }
        push_line(&mut out, name, value);
    }
    let chars = out.chars().count();
    if chars > limit {
        return Err(BlockTextError::TooLarge {
            block: block.to_string(),
            chars,
            limit,
        });
    }
    Ok(out)
}

/// Appends one `name: value` line (no line break). A cleared value writes nothing.
fn push_line(out: &mut String, name: &str, value: &Value) {
    let _ = write_line(out, name, value);
}

/// Writes one `name: value` line to any sink: a `String` for [`render`], a character
/// counter for [`line_chars`] (the same text, so the two cannot disagree).
fn write_line<W: Write>(out: &mut W, name: &str, value: &Value) -> fmt::Result {
    if *value == Value::Cleared {
        return Ok(());
    }
    out.write_str(name)?;
    out.write_str(": ")?;
    match value {
        // f64's Display is the shortest text that parses back to the same value and
        // never uses an exponent.
        Value::Number(n) => write!(out, "{n}"),
        Value::Bool(b) => out.write_str(if *b { "true" } else { "false" }),
        Value::Str(s) => write_quoted(out, s),
        Value::Cleared => Ok(()),
    }
}

/// Counts the characters written to it (Unicode scalar values, as Letta counts them).
struct CharCount(usize);

impl Write for CharCount {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.chars().count();
        Ok(())
    }
}

/// Characters (as Letta counts them) of the line [`render`] writes for one field, without
/// its line break; `None` for a cleared field (no line). The queue bounds a block's text
/// with it before a change is accepted (counted, not allocated: it runs on every change).
pub fn line_chars(name: &str, value: &Value) -> Option<usize> {
    if *value == Value::Cleared {
        return None;
    }
    if let Value::Number(x) = value {
        // Whole numbers (the common case: health, counts) by their digits, without
        // formatting: `Display` writes them as the integer, `-` for a negative sign.
        if *x == (*x as i64) as f64 && *x > -1e15 && *x < 1e15 {
            let (mut digits, mut m) = (1, (*x as i64).unsigned_abs());
            while m >= 10 {
                m /= 10;
                digits += 1;
            }
            let sign = usize::from(x.is_sign_negative());
            return Some(name.chars().count() + 2 + sign + digits);
        }
    }
    let mut n = CharCount(0);
    let _ = write_line(&mut n, name, value);
    Some(n.0)
}

fn write_quoted<W: Write>(out: &mut W, s: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c.is_control() => write!(out, "\\u{{{:x}}}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// Reads a block's text back into fields. Empty lines are skipped; every other line that
/// is not `name: value` of this format, or repeats an earlier name, is reported in
/// [`ParsedBlock::errors`] and its field left out.
pub fn parse(text: &str) -> ParsedBlock {
    let mut parsed = ParsedBlock::default();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let report = |reason| LineError {
            line: i + 1,
            text: line.to_string(),
            reason,
        };
        let Some((name, value)) = line.split_once(": ") else {
            parsed.errors.push(report("not a `name: value` line"));
            continue;
        };
        if let Err(reason) = check_field_name(name) {
            parsed.errors.push(report(reason));
            continue;
        }
        if parsed.fields.iter().any(|(n, _)| n == name) {
            parsed
                .errors
                .push(report("repeats a field name of an earlier line"));
            continue;
        }
        match parse_value(value) {
            Ok(v) => parsed.fields.push((name.to_string(), v)),
            Err(reason) => parsed.errors.push(report(reason)),
        }
    }
    parsed
}

fn parse_value(text: &str) -> Result<Value, &'static str> {
    match text {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if let Some(body) = text.strip_prefix('"') {
        return parse_quoted(body).map(Value::Str);
    }
    let numeric = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b'.');
    match text.parse::<f64>() {
        Ok(n) if numeric && n.is_finite() => Ok(Value::Number(n)),
        _ => Err("value is not a quoted string, a finite number, true or false"),
    }
}

/// `body` is the text after the opening quote; it must end with the closing quote.
fn parse_quoted(body: &str) -> Result<String, &'static str> {
    let mut out = String::new();
    let mut chars = body.chars();
    loop {
        match chars.next() {
            None => return Err("string has no closing quote"),
            Some('"') => {
                return if chars.as_str().is_empty() {
                    Ok(out)
                } else {
                    Err("text after the closing quote")
                }
            }
            Some('\\') => match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('u') => {
                    let rest = chars.as_str();
                    let inner = rest
                        .strip_prefix('{')
                        .and_then(|r| r.split_once('}'))
                        .ok_or("`\\u` escape must be `\\u{hex}`")?;
                    let code = u32::from_str_radix(inner.0, 16)
                        .ok()
                        .filter(|_| !inner.0.is_empty() && inner.0.len() <= 6)
                        .and_then(char::from_u32)
                        .ok_or("`\\u{...}` is not a Unicode scalar value")?;
                    out.push(code);
                    chars = inner.1.chars();
                }
                _ => return Err("unknown escape in string"),
            },
            Some(c) => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn fields(text: &str) -> Vec<(String, Value)> {
        let p = parse(text);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        p.fields
    }

    #[test]
    fn sorted_by_name_bytes_and_cleared_left_out() {
        let (a, b, c) = (Value::Number(1.5), Value::Cleared, Value::Bool(false));
        let text = render("s", [("b", &a), ("a", &b), ("B", &c)], 100).unwrap();
        assert_eq!(text, "B: false\nb: 1.5");
    }

    #[test]
    fn numbers_print_exactly_without_exponent() {
        for (n, s) in [
            (62.0, "62"),
            (-3.0, "-3"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e21, "1000000000000000000000"),
            (-0.0, "-0"),
        ] {
            let v = Value::Number(n);
            let text = render("s", [("n", &v)], 10_000).unwrap();
            assert_eq!(text, alloc::format!("n: {s}"));
            assert_eq!(fields(&text), vec![("n".to_string(), Value::Number(n))]);
        }
    }

    #[test]
    fn strings_escape_and_round_trip() {
        let s = Value::str("a\"b\\c\nd\re\tf\u{1}g: h é 🙂");
        let text = render("s", [("x", &s)], 1000).unwrap();
        assert!(!text.contains('\n'));
        assert_eq!(fields(&text), vec![("x".to_string(), s)]);
    }

    #[test]
    fn errors_name_the_block() {
        let n = Value::Number(f64::NAN);
        let one = Value::Number(1.0);
        assert_eq!(
            render("status", [("h", &n)], 100),
            Err(BlockTextError::NonFinite {
                block: "status".into(),
                field: "h".into()
            })
        );
        assert_eq!(
            render("status", [("h", &one), ("h", &one)], 100),
            Err(BlockTextError::DuplicateField {
                block: "status".into(),
                field: "h".into()
            })
        );
        let e = render("status", [("a:b", &one)], 100).unwrap_err();
        assert!(matches!(e, BlockTextError::BadFieldName { .. }));
        let e = render("status", [("health", &one)], 8).unwrap_err();
        assert_eq!(
            e.to_string(),
            "block `status` renders to 9 characters, over its limit of 8"
        );
        assert!(render("status", [("health", &one)], 9).is_ok());
    }

    #[test]
    fn limit_counts_characters_not_bytes() {
        let v = Value::str("éééé");
        // `x: "éééé"` is 9 characters, 13 bytes.
        assert!(render("s", [("x", &v)], 9).is_ok());
    }

    #[test]
    fn unreadable_lines_are_reported() {
        let p = parse("a: 1\nfree text\nb: nope\na: 2\nc: \"open\n\nd: 1e5\ne: \"x\\q\"\nf: true");
        assert_eq!(
            p.fields,
            vec![
                ("a".to_string(), Value::Number(1.0)),
                ("f".to_string(), Value::Bool(true))
            ]
        );
        let lines: Vec<usize> = p.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 7, 8]);
        assert_eq!(p.errors[0].text, "free text");
    }

    #[test]
    fn line_chars_is_the_rendered_line() {
        for v in [
            Value::Number(0.1),
            Value::Number(-3.0),
            Value::Bool(false),
            Value::str("a\"é\n"),
        ] {
            let text = render("s", [("név", &v)], 1000).unwrap();
            assert_eq!(line_chars("név", &v), Some(text.chars().count()));
        }
        assert_eq!(line_chars("x", &Value::Cleared), None);
        // Whole numbers are counted by their digits: the same as the rendered line.
        for n in [
            0.0,
            -0.0,
            7.0,
            -7.0,
            10.0,
            99.0,
            100.0,
            -123456.0,
            999999999999999.0,
            1e15,
        ] {
            let v = Value::Number(n);
            let text = render("s", [("hp", &v)], 1000).unwrap();
            assert_eq!(line_chars("hp", &v), Some(text.chars().count()), "{n}");
        }
    }

    #[test]
    fn empty_block_is_empty_text() {
        let none: [(&str, &Value); 0] = [];
        assert_eq!(render("s", none, 0).unwrap(), "");
        assert_eq!(parse(""), ParsedBlock::default());
    }
}
