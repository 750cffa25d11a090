//! Lowering of one function body to Luau.
//!
//! The wasm operand stack becomes Luau variables: stack height `k` maps to slot `s{k}` (and
//! `t{k}` for the high half of an i64). Pure values stay as lazy expression strings until
//! something forces them (a side effect, control flow, a write to something they read), so
//! that `local.get; i32.const; i32.add; local.set` becomes one Luau assignment. Anything
//! that may trap is evaluated eagerly, in wasm order, so traps happen even if the value is
//! dropped.
//!
//! Structured control flow maps onto Luau loops: a block that is branched to becomes
//! `repeat ... until true` (br = `break`), a loop that is branched to becomes
//! `while true do ... break end` (br = `continue`); a branch crossing several of them sets the
//! variable `B` to the target's id and breaks, each construct passed on the way dispatching on
//! `B` after its `end`. Blocks never branched to emit no Luau construct at all.
//!
//! [`translate`] first walks the body once without emitting (`analysis.rs`) to learn what the
//! lowering decides up front (which constructs are branched to and how, register allocation,
//! memory use), then emits it once (`visit.rs`, `op/`), collecting statements (`stmt.rs`)
//! that `function.rs` prints under the header.
#![allow(clippy::needless_range_loop)]
use crate::error::{Error, Result};
use crate::module::{FuncType, Module};
use crate::names::{f32_literal, f64_literal, sig_key, FloatLit};
use crate::prelude::{Builtin, Helper};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::rc::Rc;
use wasmparser::{BlockType, MemArg, Operator, ValType};

mod analysis;
mod control;
mod expr;
mod function;
mod op;
mod stack;
mod stmt;
mod visit;

use analysis::Facts;
use expr::{builtin_call, group, helper_call, tight, unary, BinOp, Callee, Expr, Name, UnOp, Var};
use op::reads_memory;
use stmt::{Jump, Rvalue, Stmt, Until};

/// Variables beyond this many registers go to a per-call table `R`: Luau allows 200 locals
/// and 255 registers per function, and expressions need temporaries too.
const MAX_REG_VARS: usize = 150;
/// Lazy expressions deeper than this are materialised, bounding Luau expression nesting and
/// the registers one expression needs.
const MAX_EXPR_DEPTH: u32 = 12;
/// Targeted blocks opened deeper than this indentation are lowered flat (Luau's parser stops
/// at 1000 nested constructs; flat blocks add at most one guard level each).
const FLAT_INDENT: usize = 60;

#[derive(Clone, Debug)]
struct Val {
    ty: ValType,
    /// Luau expression (the low half for i64).
    e: Expr,
    /// High half for i64.
    h: Expr,
    /// `e` is a Luau boolean standing for an i32 0/1.
    boolean: bool,
    /// Wasm locals the expression reads.
    locals: Vec<u32>,
    /// Reads globals (so a call or global.set forces it).
    globals: bool,
    /// Highest stack slot the expression reads, if any.
    max_slot: Option<usize>,
    /// Operations between the value and its leaves: 0 for a value pushed as it is (a
    /// constant, a local, a global, a slot), whose facts [`Val::leaf`] reads.
    depth: u32,
    /// A plain name or literal: cheap to evaluate twice.
    simple: bool,
    /// For i32 add/sub: the sum before reduction modulo 2^32 (|x| < 2^33). bit32 functions and
    /// buffer writes reduce their operands themselves, so they can take this directly.
    raw: Option<Expr>,
    /// With `raw`: true for a sum in [0, 2^33), false for a difference in (-2^32, 2^32). A
    /// statement then reduces it with one compare instead of `%` (which calls floor).
    wrap: Option<bool>,
    /// An i32 known to be at most this (set for sums proved not to wrap).
    bound: Option<u64>,
    /// An i32 whose low this many bits are known zero.
    tz: Option<u32>,
}

impl Val {
    /// The expression of a value pushed as it is (not computed from other values): what
    /// facts about constants, locals and slots are read from.
    fn leaf(&self) -> Option<&Expr> {
        (self.depth == 0).then_some(&self.e)
    }

    /// The value of an i32 constant (or the low half of an i64 one).
    fn const_lo(&self) -> Option<u64> {
        self.leaf()?.int()
    }

    /// The halves of an i64 constant.
    fn const64(&self) -> Option<(u64, u64)> {
        Some((self.const_lo()?, self.h.int()?))
    }

    /// A float constant's value, as f64 bits.
    fn fconst(&self) -> Option<u64> {
        match self.leaf()? {
            Expr::Float { bits, .. } => Some(*bits),
            _ => None,
        }
    }

    /// The wasm local whose variable the value is (a `local.get`).
    fn local(&self) -> Option<u32> {
        match self.leaf()?.var()? {
            Var::Local(i) => Some(i),
            Var::Slot(_) => None,
        }
    }

    /// The stack slot whose variable the value is.
    fn slot(&self) -> Option<usize> {
        match self.leaf()?.var()? {
            Var::Slot(k) => Some(k),
            Var::Local(_) => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Block,
    Loop,
    If,
    Func,
}

#[derive(Debug)]
struct Frame {
    kind: Kind,
    id: u32,
    base: usize,
    params: Vec<ValType>,
    results: Vec<ValType>,
    /// The one choice of how the construct is lowered.
    lowering: Lowering,
    /// Guards opened in the current arm of this construct.
    guards: usize,
    /// A branch setting `B` to a target outside this construct leaves through its end.
    pending_out: bool,
    /// Some branch set `B` to this construct's id.
    b_target: bool,
    unreachable: bool,
    /// Whether the end of this construct is reachable from inside (fallthrough or branch).
    end_reachable: bool,
    else_seen: bool,
    /// Stack contents (the params) to restore at `else`.
    if_params: Vec<Val>,
    indent_at_open: usize,
    /// For a `TailLoop`: its condition `c`, once the `br_if 0` ending the body is lowered.
    tail_cond: Option<Expr>,
}

/// How a construct is lowered, chosen once when it opens.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lowering {
    /// Never branched to: no Luau construct (an `if` still emits its `if … then`).
    Inline,
    /// Branched to but nested too deep: no Luau construct (to bound nesting); its end is a
    /// resume point that code skipped by a pending `B` reaches through `if B == nil then`
    /// guards.
    Flat,
    /// A block whose only branch is one `br_if` at its top level: no Luau construct, the rest
    /// of the block under `if not cond then`.
    Guarded,
    /// A Luau loop construct (`repeat … until true`, `while true do`), so `break` and
    /// `continue` reach it.
    LuauLoop,
    /// A loop whose only branch is the `br_if 0` ending its body: `repeat … until not c`.
    TailLoop,
}

impl Frame {
    /// Emitted as a Luau loop construct, so `break`/`continue` reach it.
    fn luau_loop(&self) -> bool {
        matches!(self.lowering, Lowering::LuauLoop | Lowering::TailLoop)
    }

    fn flat(&self) -> bool {
        self.lowering == Lowering::Flat
    }

    fn guarded(&self) -> bool {
        self.lowering == Lowering::Guarded
    }

    fn tail_loop(&self) -> bool {
        self.lowering == Lowering::TailLoop
    }
}

/// What the emission itself records for the function header: the stack slots it used (and
/// which of them hold i64 high halves), whether it used the branch label `B` and the spill
/// table `R`.
#[derive(Default)]
struct Recorded {
    max_height: usize,
    hi_slots: BTreeSet<usize>,
    uses_b: bool,
    /// Some local or slot is spilled into the table `R`.
    uses_r: bool,
}

/// The parameter and result types of a block type.
fn block_sig(m: &Module<'_>, bt: BlockType) -> (Vec<ValType>, Vec<ValType>) {
    match bt {
        BlockType::Empty => (vec![], vec![]),
        BlockType::Type(t) => (vec![], vec![t]),
        BlockType::FuncType(i) => {
            let f = &m.types[i as usize];
            (f.params.clone(), f.results.clone())
        }
    }
}

/// What lowering a function needs from the module being emitted.
pub struct Ctx<'m, 'a> {
    pub module: &'m Module<'a>,
    /// Helpers used anywhere, for the prelude.
    pub helpers: &'m mut BTreeSet<Helper>,
    /// Luau expression naming a global's low/only part and high part.
    pub global_names: &'m [(String, String)],
    /// Luau expression to call function `i`.
    pub func_names: &'m [String],
    /// Output for native codegen (else tuned for the interpreter).
    pub native: bool,
}

/// Lowers defined function `def_index` to a Luau function expression (`function(...) ... end`).
pub fn translate(ctx: &mut Ctx<'_, '_>, def_index: usize) -> Result<String> {
    let m = ctx.module;
    let func_index = m.num_imported_funcs + def_index as u32;
    let ty = m.types[m.func_types[func_index as usize] as usize].clone();
    let body = m.bodies[def_index].clone();
    let facts = analysis::analyse(m, def_index).map_err(|e| e.in_func(func_index))?;
    let mut t = Translator::new(ctx, ty, facts);
    t.load_locals(&body).map_err(|e| e.in_func(func_index))?;
    let mut reader = body
        .get_operators_reader()
        .map_err(|e| Error::from(e).in_func(func_index))?;
    while !reader.eof() {
        let offset = reader.original_position();
        let op = reader
            .read()
            .map_err(|e| Error::from(e).in_func(func_index))?;
        t.op(&op).map_err(|mut e| {
            e.offset.get_or_insert(offset as usize);
            e.in_func(func_index)
        })?;
    }
    Ok(t.finish())
}

/// A statement `s{slot} = buffer.readu32(M, addr)`, recorded when emitted.
#[derive(Clone, Copy, Debug)]
struct LoadStmt {
    slot: usize,
    /// Its index in the body's statements.
    at: usize,
}

/// Registers holding constants that the interpreted body compares with (the interpreter loads
/// a constant operand first; a register is read directly). Recorded when a comparison with one
/// is emitted, so the header declares exactly those.
#[derive(Default)]
struct ConstRegs {
    /// `KZ = 0`, for reducing a difference.
    kz: bool,
    /// `KW = 2^32`, for reducing a sum.
    kw: bool,
    /// `KL{k} = 2^(32-k)`, for `shl` by k in 1..=4.
    kl: [bool; 5],
}

struct Translator<'c, 'm, 'a> {
    ctx: &'c mut Ctx<'m, 'a>,
    ty: FuncType,
    /// What the analysis walk learned about the function.
    facts: Facts,
    /// What the emission records for the header.
    rec: Recorded,
    /// Constant registers the body compares with, declared by the header.
    regs: ConstRegs,
    local_types: Vec<ValType>,
    /// Names of each local (low, high).
    local_names: Vec<(Name, Option<Name>)>,
    /// Whether each local lives in registers (else in the spill table `R`).
    local_in_reg: Vec<bool>,
    slot_lo: Vec<Name>,
    slot_hi: Vec<Name>,
    /// Whether each stack slot lives in registers (else in the spill table `R`).
    slot_in_reg: Vec<bool>,
    stack: Vec<Val>,
    frames: Vec<Frame>,
    next_id: u32,
    /// Depth of blocks opened inside unreachable code.
    dead: u32,
    /// The last two i32 loads into their slots, oldest first: what the signed-compare fusion
    /// reads and patches.
    loads: [Option<LoadStmt>; 2],
    /// The body's statements so far.
    out: Vec<Stmt>,
    /// Nesting depth of the Luau constructs open (bounds nesting; not printed).
    indent: usize,
    /// Upper bounds of i32 locals known at this point of straight-line code (a successful
    /// memory access at a local's address proves it below 2^30, the largest memory).
    /// Cleared where paths merge (`loop`, `else`, `end`); dropped when the local is set.
    ub: std::collections::HashMap<u32, u64>,
    /// Known zero low bits of i32 locals, kept like `ub`.
    tzl: std::collections::HashMap<u32, u32>,
}

fn is_i64(t: ValType) -> bool {
    t == ValType::I64
}

impl<'c, 'm, 'a> Translator<'c, 'm, 'a> {
    fn new(ctx: &'c mut Ctx<'m, 'a>, ty: FuncType, facts: Facts) -> Self {
        Translator {
            ctx,
            ty,
            facts,
            rec: Recorded::default(),
            regs: ConstRegs::default(),
            local_types: vec![],
            local_names: vec![],
            local_in_reg: vec![],
            slot_in_reg: vec![],
            slot_lo: vec![],
            slot_hi: vec![],
            stack: vec![],
            frames: vec![],
            next_id: 0,
            dead: 0,
            loads: [None, None],
            out: Vec::new(),
            indent: 1,
            ub: std::collections::HashMap::new(),
            tzl: std::collections::HashMap::new(),
        }
    }

    /// Records that the code uses `h`: what a call of it is built from.
    fn helper(&mut self, h: Helper) -> expr::UsedHelper {
        expr::record(self.ctx.helpers, h)
    }
}
