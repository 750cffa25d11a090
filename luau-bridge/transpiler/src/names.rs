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

fn finite_lit(v: f64) -> String {
    let s = format!("{:?}", v.abs());
    if v.is_sign_negative() {
        format!("(-{s})")
    } else {
        s
    }
}

pub fn f64_lit(bits: u64, helpers: &mut BTreeSet<Helper>) -> String {
    let v = f64::from_bits(bits);
    if v.is_nan() {
        let hf = Helper::F64frombits;
        helpers.insert(hf);
        format!("{hf}({}, {})", bits as u32, (bits >> 32) as u32)
    } else if v.is_infinite() {
        if v > 0.0 {
            "math.huge".into()
        } else {
            "(-math.huge)".into()
        }
    } else {
        finite_lit(v)
    }
}

pub fn f32_lit(bits: u32, helpers: &mut BTreeSet<Helper>) -> String {
    let v = f32::from_bits(bits);
    if v.is_nan() {
        let hf = Helper::F32frombits;
        helpers.insert(hf);
        format!("{hf}({bits})")
    } else {
        f64_lit((v as f64).to_bits(), helpers)
    }
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
