//! Rendering of literals and names: numbers that read back bit-exact, strings that carry any
//! byte, and the signature keys that `call_indirect` compares.
use crate::module::FuncType;
use crate::prelude::Helper;
use std::collections::BTreeSet;
use wasmparser::ValType;

/// A Luau string literal holding exactly these bytes.
pub fn lua_string(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            _ => {
                s.push('\\');
                s.push_str(&format!("{b:03}"));
            }
        }
    }
    s.push('"');
    s
}

/// A float literal: its text, and whether that text is a negation (`-1.5`), which needs
/// parentheses wherever it is not a whole right-hand side.
pub struct FloatLit {
    pub text: String,
    pub negated: bool,
}

impl FloatLit {
    fn plain(text: String) -> Self {
        FloatLit {
            text,
            negated: false,
        }
    }

    /// The literal as an expression that is safe anywhere: a negation in parentheses.
    pub fn whole(self) -> String {
        if self.negated {
            format!("({})", self.text)
        } else {
            self.text
        }
    }
}

/// An f64 literal that reads back bit-exact (NaNs through a helper, keeping the payload);
/// `compact` leaves out the space after the helper call's comma (function bodies).
pub fn f64_literal(bits: u64, helpers: &mut BTreeSet<Helper>, compact: bool) -> FloatLit {
    let v = f64::from_bits(bits);
    if v.is_nan() {
        let hf = Helper::F64frombits;
        helpers.insert(hf);
        let sep = if compact { "," } else { ", " };
        return FloatLit::plain(format!("{hf}({}{sep}{})", bits as u32, (bits >> 32) as u32));
    }
    let abs = if v.is_infinite() {
        "math.huge".to_string()
    } else {
        format!("{:?}", v.abs())
    };
    if v.is_sign_negative() {
        FloatLit {
            text: format!("-{abs}"),
            negated: true,
        }
    } else {
        FloatLit::plain(abs)
    }
}

/// An f32 literal (the f64 holding the same value; NaNs through a helper).
pub fn f32_literal(bits: u32, helpers: &mut BTreeSet<Helper>, compact: bool) -> FloatLit {
    let v = f32::from_bits(bits);
    if v.is_nan() {
        let hf = Helper::F32frombits;
        helpers.insert(hf);
        FloatLit::plain(format!("{hf}({bits})"))
    } else {
        f64_literal((v as f64).to_bits(), helpers, compact)
    }
}

/// [`f64_literal`] as an expression safe anywhere.
pub fn f64_lit(bits: u64, helpers: &mut BTreeSet<Helper>) -> String {
    f64_literal(bits, helpers, false).whole()
}

/// [`f32_literal`] as an expression safe anywhere.
pub fn f32_lit(bits: u32, helpers: &mut BTreeSet<Helper>) -> String {
    f32_literal(bits, helpers, false).whole()
}

pub fn type_char(t: ValType) -> char {
    match t {
        ValType::I32 => 'i',
        ValType::I64 => 'I',
        ValType::F32 => 'f',
        ValType::F64 => 'F',
        ValType::V128 => 'v',
        ValType::Ref(r) if r.is_func_ref() => 'r',
        ValType::Ref(_) => 'x',
    }
}

/// Structural signature key: equal function types give equal keys across modules.
pub fn sig_key(t: &FuncType) -> String {
    let mut s: String = t.params.iter().map(|&p| type_char(p)).collect();
    s.push(':');
    s.extend(t.results.iter().map(|&r| type_char(r)));
    s
}
