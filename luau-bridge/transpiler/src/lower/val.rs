//! A value on the operand stack: a lazy Luau expression and what it depends on.
use wasmparser::ValType;

#[derive(Clone, Debug)]
pub(super) struct Val {
    pub(super) ty: ValType,
    /// Luau expression (the low half for i64).
    pub(super) e: String,
    /// High half for i64.
    pub(super) h: String,
    /// `e` is a Luau boolean standing for an i32 0/1.
    pub(super) boolean: bool,
    /// Wasm locals the expression reads.
    pub(super) locals: Vec<u32>,
    /// Reads globals (so a call or global.set forces it).
    pub(super) globals: bool,
    /// Highest stack slot the expression reads, if any.
    pub(super) max_slot: Option<usize>,
    pub(super) depth: u32,
    /// The value is exactly the slot variable at this height.
    pub(super) slot: Option<usize>,
    /// A plain name or literal: cheap to evaluate twice.
    pub(super) simple: bool,
    /// For i32 add/sub: the sum before reduction modulo 2^32 (|x| < 2^33). bit32 functions and
    /// buffer writes reduce their operands themselves, so they can take this directly.
    pub(super) raw: Option<String>,
    /// With `raw`: true for a sum in [0, 2^33), false for a difference in (-2^32, 2^32). A
    /// statement then reduces it with one compare instead of `%` (which calls floor).
    pub(super) wrap: Option<bool>,
    /// An i32 known to be at most this (set for sums proved not to wrap).
    pub(super) bound: Option<u64>,
    /// An i32 whose low this many bits are known zero.
    pub(super) tz: Option<u32>,
}
