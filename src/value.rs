//! Field values.

use alloc::string::String;

/// A field's scalar value. `Cleared` means the field is absent: a backend that never heard
/// of a field holds `Cleared`, so clearing a field it never had sends nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A finite number (NaN and infinities are rejected at the API).
    Number(f64),
    /// A string (length-limited, see [`crate::Limits`]).
    Str(String),
    /// A boolean.
    Bool(bool),
    /// No value: the field is removed.
    Cleared,
}

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::Str(String::from(s))
    }

    /// Bytes this value takes in a JSON body, as an upper bound (strings may need escapes:
    /// counted as up to 6 bytes each for control characters, 2 for quotes and backslashes).
    pub(crate) fn json_bytes(&self) -> usize {
        match self {
            // Shortest round-trip digits, exponent outside [1e-6, 1e21), as JavaScript
            // writes them: at most 25 bytes ("-0.0000012345678901234567").
            Value::Number(_) => 25,
            Value::Bool(_) => 5,
            Value::Cleared => 4,
            Value::Str(s) => 2 + json_string_bytes(s),
        }
    }
}

pub(crate) fn json_string_bytes(s: &str) -> usize {
    s.bytes()
        .map(|b| match b {
            b'"' | b'\\' => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Number(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::str(v)
    }
}
