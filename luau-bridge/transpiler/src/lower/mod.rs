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
#![allow(clippy::needless_range_loop)]
use crate::error::{Error, Result};
use crate::module::{FuncType, Module};
use crate::names::{f32_lit, f64_lit, sig_key};
use crate::prelude::Helper;
use std::collections::BTreeSet;
use std::fmt::Write;
use wasmparser::{BlockType, MemArg, Operator, ValType};

/// Variables beyond this many registers go to a per-call table `R`: Luau allows 200 locals
/// and 255 registers per function, and expressions need temporaries too.
const MAX_REG_VARS: usize = 150;
/// Lazy expressions deeper than this are materialised, bounding Luau expression nesting and
/// the registers one expression needs.
const MAX_EXPR_DEPTH: u32 = 12;
/// Targeted blocks opened deeper than this indentation are lowered flat (Luau's parser stops
/// at 1000 nested constructs; flat blocks add at most one guard level each).
const FLAT_INDENT: usize = 60;

mod facts;
mod frame;
mod text;
mod val;

use facts::Facts;
use frame::{Frame, Kind};
use text::{compact, flip, mask, strip_parens};
use val::Val;

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

pub fn translate(ctx: &mut Ctx<'_, '_>, def_index: usize) -> Result<String> {
    let m = ctx.module;
    let func_index = m.num_imported_funcs + def_index as u32;
    let ty = m.types[m.func_types[func_index as usize] as usize].clone();
    let body = m.bodies[def_index].clone();
    let run = |ctx: &mut Ctx<'_, '_>, facts: Option<&Facts>| -> Result<(String, Facts)> {
        let mut t = Translator::new(ctx, ty.clone(), facts.cloned());
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
    };
    let (_, facts) = run(ctx, None)?;
    let (text, _) = run(ctx, Some(&facts))?;
    Ok(text)
}

struct Translator<'c, 'm, 'a> {
    ctx: &'c mut Ctx<'m, 'a>,
    ty: FuncType,
    facts: Facts,
    /// Pass 2 has the facts of pass 1.
    final_pass: bool,
    learned: Facts,
    local_types: Vec<ValType>,
    /// Names of each local (low, high).
    local_names: Vec<(String, String)>,
    slot_lo: Vec<String>,
    slot_hi: Vec<String>,
    stack: Vec<Val>,
    frames: Vec<Frame>,
    next_id: u32,
    /// Depth of blocks opened inside unreachable code.
    dead: u32,
    /// Last eager slot assignment: (line start, slot, length of its target text, line end).
    last_eager: Option<(usize, usize, usize, usize)>,
    out: String,
    indent: usize,
    /// Upper bounds of i32 locals known at this point of straight-line code (a successful
    /// memory access at a local's address proves it below 2^30, the largest memory).
    /// Cleared where paths merge (`loop`, `else`, `end`); dropped when the local is set.
    ub: std::collections::HashMap<u32, u64>,
    /// Known zero low bits of i32 locals, kept like `ub`.
    tzl: std::collections::HashMap<u32, u32>,
    /// A loop whose `br_if 0` was the last operator: it qualifies if the next is its `end`.
    tail_candidate: Option<u32>,
    /// Still in the straight-line code at the start of the body.
    entry: bool,
    /// Locals read so far in that code.
    entry_reads: BTreeSet<u32>,
}

fn is_i64(t: ValType) -> bool {
    t == ValType::I64
}

impl<'c, 'm, 'a> Translator<'c, 'm, 'a> {
    fn new(ctx: &'c mut Ctx<'m, 'a>, ty: FuncType, facts: Option<Facts>) -> Self {
        let final_pass = facts.is_some();
        Translator {
            ctx,
            ty,
            facts: facts.unwrap_or_default(),
            final_pass,
            learned: Facts::default(),
            local_types: vec![],
            local_names: vec![],
            slot_lo: vec![],
            slot_hi: vec![],
            stack: vec![],
            frames: vec![],
            next_id: 0,
            dead: 0,
            last_eager: None,
            out: String::new(),
            indent: 1,
            ub: std::collections::HashMap::new(),
            tzl: std::collections::HashMap::new(),
            entry: true,
            tail_candidate: None,
            entry_reads: BTreeSet::new(),
        }
    }

    fn helper(&mut self, h: Helper) -> &'static str {
        self.ctx.helpers.insert(h);
        h.name()
    }

    fn load_locals(&mut self, body: &wasmparser::FunctionBody<'_>) -> Result<()> {
        self.local_types = self.ty.params.clone();
        for l in body.get_locals_reader()? {
            let (n, t) = l?;
            for _ in 0..n {
                self.local_types.push(t);
            }
        }
        self.learned.local_uses = vec![0; self.local_types.len()];
        // Decide which variables live in registers. Params come first, then the lowest stack
        // slots, then the most used locals, then the remaining slots.
        let n = self.local_types.len();
        let slots = self.facts.max_height + 1;
        let cost = |t: ValType| if is_i64(t) { 2 } else { 1 };
        let mut budget = MAX_REG_VARS;
        let mut local_reg = vec![false; n];
        let mut slot_reg = vec![false; slots];
        let take = |c: usize, budget: &mut usize| {
            if *budget >= c {
                *budget -= c;
                true
            } else {
                false
            }
        };
        let nparams = self.ty.params.len();
        for i in 0..nparams {
            local_reg[i] = take(cost(self.local_types[i]), &mut budget);
        }
        let slot_cost = |k: usize| {
            if self.facts.hi_slots.contains(&k) {
                2
            } else {
                1
            }
        };
        let first_slots = slots.min(24);
        for k in 0..first_slots {
            slot_reg[k] = take(slot_cost(k), &mut budget);
        }
        let mut order: Vec<usize> = (nparams..n).collect();
        if self.final_pass {
            order.sort_by_key(|&i| {
                std::cmp::Reverse(self.facts.local_uses.get(i).copied().unwrap_or(0))
            });
        }
        for i in order {
            local_reg[i] = take(cost(self.local_types[i]), &mut budget);
        }
        for k in first_slots..slots {
            slot_reg[k] = take(slot_cost(k), &mut budget);
        }
        let mut spill = 0usize;
        let mut next_spill = || {
            spill += 1;
            format!("R[{spill}]")
        };
        for i in 0..n {
            let wide = is_i64(self.local_types[i]);
            let names = if local_reg[i] {
                (
                    format!("a{i}"),
                    if wide { format!("b{i}") } else { String::new() },
                )
            } else {
                let lo = next_spill();
                (lo, if wide { next_spill() } else { String::new() })
            };
            self.local_names.push(names);
        }
        for (k, &reg) in slot_reg.iter().enumerate() {
            if reg || !self.final_pass {
                self.slot_lo.push(format!("s{k}"));
                self.slot_hi.push(format!("t{k}"));
            } else {
                self.slot_lo.push(next_spill());
                self.slot_hi.push(next_spill());
            }
        }
        self.learned.uses_r = spill > 0;
        // Function-level frame: branches to it are returns.
        self.frames.push(Frame {
            kind: Kind::Func,
            id: u32::MAX,
            base: 0,
            params: vec![],
            results: self.ty.results.clone(),
            luau_loop: false,
            flat: false,
            guards: 0,
            pending_out: false,
            b_target: false,
            unreachable: false,
            end_reachable: true,
            else_seen: false,
            if_params: vec![],
            indent_at_open: 1,
            guarded: false,
            tail_loop: false,
            tail_cond: None,
        });
        Ok(())
    }

    fn finish(mut self) -> (String, Facts) {
        // Header: parameters, then declarations of registers.
        let mut head = String::new();
        let mut params = vec![];
        let mut spilled_params = vec![];
        for (i, t) in self.ty.params.iter().enumerate() {
            let (lo, hi) = &self.local_names[i];
            let wide = is_i64(*t);
            if lo.starts_with('R') {
                params.push(format!("p{i}"));
                spilled_params.push(format!("{lo} = p{i}"));
                if wide {
                    params.push(format!("q{i}"));
                    spilled_params.push(format!("{hi} = q{i}"));
                }
            } else {
                params.push(lo.clone());
                if wide {
                    params.push(hi.clone());
                }
            }
        }
        let _ = writeln!(head, "function({})", params.join(", "));
        if self.learned.uses_r {
            let _ = writeln!(head, "local R = {{}}");
        }
        if self.facts.uses_mem {
            let _ = writeln!(head, "local M = M");
        }
        // Registers holding 0 and 2^32 for reductions; the dead assignment keeps Luau from
        // folding them back into constants.
        let kz = self.out.contains("< KZ then");
        let kw = self.out.contains(">= KW then");
        match (kz, kw) {
            (true, true) => {
                let _ = writeln!(head, "local KZ, KW = 0, 4294967296");
                let _ = writeln!(head, "if false then KZ, KW = 0, 0 end");
            }
            (true, false) => {
                let _ = writeln!(head, "local KZ = 0");
                let _ = writeln!(head, "if false then KZ = 0 end");
            }
            (false, true) => {
                let _ = writeln!(head, "local KW = 4294967296");
                let _ = writeln!(head, "if false then KW = 0 end");
            }
            (false, false) => {}
        }
        for k in 1..=4 {
            if self.out.contains(&format!("< KL{k} then")) {
                let _ = writeln!(head, "local KL{k} = {}", 1u64 << (32 - k));
                let _ = writeln!(head, "if false then KL{k} = 0 end");
            }
        }
        for s in spilled_params {
            let _ = writeln!(head, "{s}");
        }
        let mut decls: Vec<(String, &'static str)> = vec![];
        for i in self.ty.params.len()..self.local_types.len() {
            let (lo, hi) = &self.local_names[i];
            let zero = if matches!(self.local_types[i], ValType::Ref(_))
                || self.facts.set_first.contains(&(i as u32))
            {
                "nil"
            } else {
                "0"
            };
            if lo.starts_with('R') {
                if zero != "nil" {
                    let _ = writeln!(head, "{lo} = 0");
                    if !hi.is_empty() {
                        let _ = writeln!(head, "{hi} = 0");
                    }
                }
            } else {
                decls.push((lo.clone(), zero));
                if !hi.is_empty() {
                    decls.push((hi.clone(), zero));
                }
            }
        }
        let used = self.learned.max_height;
        for k in 0..=used.min(self.slot_lo.len().saturating_sub(1)) {
            if !self.slot_lo[k].starts_with('R') {
                decls.push((self.slot_lo[k].clone(), "nil"));
                if self.learned.hi_slots.contains(&k) {
                    decls.push((self.slot_hi[k].clone(), "nil"));
                }
            }
        }
        if self.learned.uses_b {
            decls.push(("B".to_string(), "nil"));
        }
        // Zero-initialised names first, so that one `local … = 0, …` covers them.
        decls.sort_by_key(|(_, z)| *z == "nil");
        // Declare in chunks; zero-initialised names get explicit values.
        for chunk in decls.chunks(40) {
            let names: Vec<&str> = chunk.iter().map(|(n, _)| n.as_str()).collect();
            let inits: Vec<&str> = chunk
                .iter()
                .filter(|(_, z)| *z != "nil")
                .map(|(_, z)| *z)
                .collect();
            let zeros_first = chunk.iter().take_while(|(_, z)| *z != "nil").count() == inits.len();
            if inits.is_empty() {
                let _ = writeln!(head, "local {}", names.join(", "));
            } else if zeros_first {
                let _ = writeln!(head, "local {} = {}", names.join(", "), inits.join(", "));
            } else {
                let _ = writeln!(head, "local {}", names.join(", "));
                for (n, z) in chunk {
                    if *z != "nil" {
                        let _ = writeln!(head, "{n} = {z}");
                    }
                }
            }
        }
        self.learned.uses_mem = self.out.contains("(M, ") || self.out.contains("(M)");
        head.push_str(&self.out);
        head.push_str("end");
        let head = compact(&crate::prelude::use_aliases(&head));
        let mut facts = std::mem::take(&mut self.learned);
        facts.uses_r = false;
        (head, facts)
    }

    // ---- output -------------------------------------------------------------------------

    fn line(&mut self, s: &str) {
        // No indentation: it would be a large share of the output.
        self.out.push_str(s);
        self.out.push('\n');
    }

    // ---- values -------------------------------------------------------------------------

    fn note_height(&mut self, h: usize) {
        if h > self.learned.max_height {
            self.learned.max_height = h;
        }
    }

    fn slot_name(&self, k: usize) -> String {
        self.slot_lo
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("s{k}"))
    }
    fn slot_hi_name(&mut self, k: usize) -> String {
        self.learned.hi_slots.insert(k);
        self.slot_hi
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("t{k}"))
    }

    fn slot_val(&mut self, k: usize, ty: ValType) -> Val {
        self.note_height(k);
        let e = self.slot_name(k);
        let h = if is_i64(ty) {
            self.slot_hi_name(k)
        } else {
            String::new()
        };
        Val {
            ty,
            e,
            h,
            boolean: false,
            locals: vec![],
            globals: false,
            max_slot: Some(k),
            depth: 0,
            slot: Some(k),
            simple: true,
            raw: None,
            wrap: None,
            bound: None,
            tz: None,
        }
    }

    fn lit(ty: ValType, e: String, h: String) -> Val {
        Val {
            ty,
            e,
            h,
            boolean: false,
            locals: vec![],
            globals: false,
            max_slot: None,
            depth: 0,
            slot: None,
            simple: true,
            raw: None,
            wrap: None,
            bound: None,
            tz: None,
        }
    }

    /// The wasm local `v` reads, if `v` is exactly that local's current value.
    fn plain_local(&self, v: &Val) -> Option<u32> {
        match v.locals[..] {
            [l] if v.ty == ValType::I32
                && !v.boolean
                && v.slot.is_none()
                && v.raw.is_none()
                && v.e == self.local_names[l as usize].0 =>
            {
                Some(l)
            }
            _ => None,
        }
    }

    /// A known upper bound of an i32 value.
    fn ub_of(&self, v: &Val) -> Option<u64> {
        if v.ty != ValType::I32 || v.boolean {
            return None;
        }
        if v.bound.is_some() {
            return v.bound;
        }
        if let Ok(c) = v.e.parse::<u64>() {
            return Some(c);
        }
        self.plain_local(v).and_then(|l| self.ub.get(&l).copied())
    }

    /// Known zero low bits of an i32 value.
    fn tz_of(&self, v: &Val) -> Option<u32> {
        if v.ty != ValType::I32 || v.boolean {
            return None;
        }
        if v.tz.is_some() {
            return v.tz;
        }
        if let Ok(c) = v.e.parse::<u64>() {
            return (c != 0).then(|| c.trailing_zeros().min(32));
        }
        self.plain_local(v).and_then(|l| self.tzl.get(&l).copied())
    }

    /// `x | c` where the bits of the constant `c` are known zero in `x`: `x + c`.
    fn or_low(&mut self) -> bool {
        let n = self.stack.len();
        let (a, b) = (&self.stack[n - 2], &self.stack[n - 1]);
        let (x, c) = match (a.e.parse::<u64>(), b.e.parse::<u64>()) {
            (Err(_), Ok(c)) => (a, c),
            (Ok(c), Err(_)) => (b, c),
            _ => return false,
        };
        let Some(z) = self.tz_of(x) else {
            return false;
        };
        if c == 0 || z >= 32 || c >= 1 << z {
            return false;
        }
        let e = format!("({} + {c})", x.e);
        let bound = self.ub_of(x).map(|u| u + c);
        let b = self.pop();
        let a = self.pop();
        let mut v = Self::derive(ValType::I32, e, String::new(), &[&a, &b]);
        v.bound = bound;
        v.tz = Some(c.trailing_zeros());
        self.push(v);
        true
    }

    /// After a memory access at address `a` (plus an offset) succeeded: if `a` is a local,
    /// it is below the largest memory size, 2^30.
    fn note_access(&mut self, a: &Val) {
        if let Some(l) = self.plain_local(a) {
            let b = self
                .ub
                .get(&l)
                .copied()
                .unwrap_or(u64::MAX)
                .min((1 << 30) - 1);
            self.ub.insert(l, b);
        }
    }

    /// Numeric (0/1) form of an i32 value.
    fn num(v: &Val) -> String {
        if v.boolean {
            format!("({} and 1 or 0)", v.e)
        } else {
            v.e.clone()
        }
    }

    /// `target = v` for an unreduced i32 sum or difference: assign, then fix with one compare.
    fn assign_wrapped(&mut self, target: &str, v: &Val) -> bool {
        let (Some(raw), Some(add)) = (&v.raw, v.wrap) else {
            return false;
        };
        self.line(&format!("{target} = {}", strip_parens(raw)));
        // The interpreter compares with a constant by loading it first: compare with a
        // register holding it instead (`KZ`/`KW`, declared by `finish`).
        let (z, w) = if self.ctx.native {
            ("0", "4294967296")
        } else {
            ("KZ", "KW")
        };
        if add {
            self.line(&format!(
                "if {target} >= {w} then {target} -= 4294967296 end"
            ));
        } else {
            self.line(&format!(
                "if {target} < {z} then {target} += 4294967296 end"
            ));
        }
        true
    }

    /// Materialise unreduced sums among stack entries `from..from+n`: as statements they
    /// reduce with a compare, cheaper than the `%` an expression needs.
    fn canon_at(&mut self, from: usize, n: usize) {
        for j in from..from + n {
            if self.stack[j].wrap.is_some() {
                self.materialize(j);
            }
        }
    }

    /// Form of an i32 value for consumers that reduce modulo 2^32 themselves.
    fn bits(v: &Val) -> String {
        match &v.raw {
            Some(r) if !v.boolean => r.clone(),
            _ => Self::num(v),
        }
    }

    /// Boolean (condition) form of an i32 value.
    fn cond(v: &Val) -> String {
        if v.boolean {
            strip_parens(&v.e).to_string()
        } else {
            format!("{} ~= 0", v.e)
        }
    }

    /// A new lazy value combining `args`.
    fn derive(ty: ValType, e: String, h: String, args: &[&Val]) -> Val {
        let mut locals = vec![];
        let mut globals = false;
        let mut max_slot: Option<usize> = None;
        let mut depth = 0;
        for a in args {
            locals.extend_from_slice(&a.locals);
            globals |= a.globals;
            max_slot = max_slot.max(a.max_slot);
            depth = depth.max(a.depth);
        }
        locals.sort_unstable();
        locals.dedup();
        Val {
            ty,
            e,
            h,
            boolean: false,
            locals,
            globals,
            max_slot,
            depth: depth + 1,
            slot: None,
            simple: false,
            raw: None,
            wrap: None,
            bound: None,
            tz: None,
        }
    }

    fn push(&mut self, v: Val) {
        let k = self.stack.len();
        self.note_height(k);
        self.stack.push(v);
        if self.stack[k].depth > MAX_EXPR_DEPTH || self.stack[k].e.len() > 400 {
            self.materialize(k);
        }
    }

    fn pop(&mut self) -> Val {
        self.stack
            .pop()
            .expect("validated: operand stack underflow")
    }

    /// Before writing slot `k`, force lazy values below that read slots `>= k`.
    fn clobber_slot(&mut self, k: usize) {
        let mut lo = k;
        loop {
            let found = (0..lo.min(self.stack.len())).find(|&j| {
                self.stack[j].slot != Some(j) && self.stack[j].max_slot.is_some_and(|m| m >= lo)
            });
            match found {
                Some(j) => lo = j,
                None => break,
            }
        }
        for j in lo..k.min(self.stack.len()) {
            if self.stack[j].slot != Some(j) && self.stack[j].max_slot.is_some() {
                self.assign_slot(j);
            }
        }
    }

    fn assign_slot(&mut self, j: usize) {
        let v = self.stack[j].clone();
        let name = self.slot_name(j);
        let start = self.out.len();
        if is_i64(v.ty) {
            let hn = self.slot_hi_name(j);
            self.line(&format!("{name}, {hn} = {}, {}", v.e, v.h));
            self.last_eager = Some((start, j, name.len() + 2 + hn.len(), self.out.len()));
        } else {
            if self.assign_wrapped(&name, &v) {
                self.last_eager = None;
            } else {
                let e = if v.ty == ValType::I32 {
                    Self::num(&v)
                } else {
                    v.e.clone()
                };
                self.line(&format!("{name} = {}", strip_parens(&e)));
                self.last_eager = Some((start, j, name.len(), self.out.len()));
            }
        }
        self.stack[j] = self.slot_val(j, v.ty);
    }

    /// Force the value at height `j` into its slot variable.
    fn materialize(&mut self, j: usize) {
        if self.stack[j].slot == Some(j) {
            return;
        }
        self.clobber_slot(j);
        self.assign_slot(j);
    }

    fn flush_all(&mut self) {
        for j in 0..self.stack.len() {
            self.materialize(j);
        }
    }

    fn flush_where(&mut self, pred: impl Fn(&Val) -> bool) {
        for j in 0..self.stack.len() {
            if self.stack[j].slot != Some(j) && pred(&self.stack[j]) {
                self.materialize(j);
            }
        }
    }

    /// Make a value cheap to use twice, materialising it into slot `k` if needed.
    fn simple_at(&mut self, v: Val, k: usize) -> Val {
        if v.simple {
            return v;
        }
        self.clobber_slot(k);
        let name = self.slot_name(k);
        if is_i64(v.ty) {
            let hn = self.slot_hi_name(k);
            self.line(&format!("{name}, {hn} = {}, {}", v.e, v.h));
        } else {
            let e = if v.ty == ValType::I32 {
                Self::num(&v)
            } else {
                v.e.clone()
            };
            self.line(&format!("{name} = {}", strip_parens(&e)));
        }
        self.slot_val(k, v.ty)
    }

    /// Emit `slot(k) = expr` (eagerly evaluated) and push the slot.
    fn push_eager(&mut self, ty: ValType, e: String) {
        let k = self.stack.len();
        self.clobber_slot(k);
        let name = self.slot_name(k);
        let start = self.out.len();
        self.line(&format!("{name} = {e}"));
        self.last_eager = Some((start, k, name.len(), self.out.len()));
        let v = self.slot_val(k, ty);
        self.stack.push(v);
    }

    fn push_eager64(&mut self, call: String) {
        let k = self.stack.len();
        self.clobber_slot(k);
        let name = self.slot_name(k);
        let hn = self.slot_hi_name(k);
        let start = self.out.len();
        self.line(&format!("{name}, {hn} = {call}"));
        self.last_eager = Some((start, k, name.len() + 2 + hn.len(), self.out.len()));
        let v = self.slot_val(k, ValType::I64);
        self.stack.push(v);
    }

    // ---- control ------------------------------------------------------------------------

    fn block_sig(&self, bt: BlockType) -> (Vec<ValType>, Vec<ValType>) {
        match bt {
            BlockType::Empty => (vec![], vec![]),
            BlockType::Type(t) => (vec![], vec![t]),
            BlockType::FuncType(i) => {
                let f = &self.ctx.module.types[i as usize];
                (f.params.clone(), f.results.clone())
            }
        }
    }

    fn cur_unreachable(&self) -> bool {
        self.frames.last().is_some_and(|f| f.unreachable)
    }

    fn set_unreachable(&mut self) {
        if let Some(f) = self.frames.last_mut() {
            f.unreachable = true;
        }
    }

    fn open(&mut self, kind: Kind, bt: BlockType, cond: Option<String>) {
        let id = self.next_id;
        self.next_id += 1;
        let (params, results) = self.block_sig(bt);
        // Everything below stays on the stack across the construct: force it now, since the
        // construct may write locals and globals those values read.
        self.flush_all();
        let base = self.stack.len() - params.len();
        let targeted = !self.final_pass || self.facts.targeted.contains(&id);
        // Deeply nested blocks go flat, keeping Luau's syntactic nesting bounded.
        let flat = targeted && kind == Kind::Block && self.indent > FLAT_INDENT;
        let guarded = targeted
            && !flat
            && self.final_pass
            && kind == Kind::Block
            && params.is_empty()
            && results.is_empty()
            && !self.facts.not_guarded.contains(&id);
        let luau_loop = targeted && !flat && !guarded;
        let tail_loop = luau_loop
            && self.final_pass
            && kind == Kind::Loop
            && params.is_empty()
            && results.is_empty()
            && self.facts.tail_brif.contains(&id)
            && !self.facts.not_tail.contains(&id);
        let indent_at_open = self.indent;
        match kind {
            Kind::Block if luau_loop => {
                self.line("repeat");
                self.indent += 1;
            }
            Kind::Loop if tail_loop => {
                self.line("repeat");
                self.indent += 1;
            }
            Kind::Loop if luau_loop => {
                self.line("while true do");
                self.indent += 1;
            }
            Kind::If => {
                if luau_loop {
                    self.line("repeat");
                    self.indent += 1;
                }
                self.line(&format!("if {} then", cond.unwrap_or_default()));
                self.indent += 1;
            }
            _ => {}
        }
        let if_params = if kind == Kind::If {
            self.stack[base..].to_vec()
        } else {
            vec![]
        };
        self.frames.push(Frame {
            kind,
            id,
            base,
            params,
            results,
            luau_loop,
            flat,
            guards: 0,
            pending_out: false,
            b_target: false,
            unreachable: false,
            end_reachable: false,
            else_seen: false,
            if_params,
            indent_at_open,
            guarded,
            tail_loop,
            tail_cond: None,
        });
    }

    /// Move the top `n` values into slots `base..base+n` (parallel assignment).
    fn assign_to(&mut self, base: usize, n: usize) {
        let top = self.stack.len();
        let vals: Vec<Val> = self.stack[top - n..].to_vec();
        let mut lhs = vec![];
        let mut rhs = vec![];
        for (i, v) in vals.iter().enumerate() {
            let k = base + i;
            if v.slot == Some(k) {
                continue;
            }
            lhs.push(self.slot_name(k));
            if is_i64(v.ty) {
                lhs.push(self.slot_hi_name(k));
                rhs.push(v.e.clone());
                rhs.push(v.h.clone());
            } else if v.ty == ValType::I32 {
                rhs.push(Self::num(v));
            } else {
                rhs.push(v.e.clone());
            }
            self.note_height(k);
        }
        if !lhs.is_empty() {
            self.line(&format!("{} = {}", lhs.join(", "), rhs.join(", ")));
        }
    }

    /// Branch to the frame `depth` levels out, with its branch values on top of the stack.
    fn branch(&mut self, depth: u32) -> bool {
        self.branch_ex(depth, false)
    }

    /// Returns true when it only set `B` and execution continues after the emitted code.
    fn branch_ex(&mut self, depth: u32, conditional: bool) -> bool {
        let ti = self.frames.len() - 1 - depth as usize;
        let (kind, id, base, arity) = {
            let f = &self.frames[ti];
            let arity = if f.kind == Kind::Loop {
                f.params.len()
            } else {
                f.results.len()
            };
            (f.kind, f.id, f.base, arity)
        };
        if kind == Kind::Func {
            let top = self.stack.len();
            if !conditional {
                self.canon_at(top - arity, arity);
            }
            let vals = self.stack[top - arity..].to_vec();
            let mut rs = vec![];
            for v in &vals {
                match v.ty {
                    ValType::I64 => {
                        rs.push(v.e.clone());
                        rs.push(v.h.clone());
                    }
                    ValType::I32 => rs.push(Self::num(v)),
                    _ => rs.push(v.e.clone()),
                }
            }
            if rs.is_empty() {
                self.line("return");
            } else {
                self.line(&format!("return {}", rs.join(", ")));
            }
            return false;
        }
        self.learned.targeted.insert(id);
        if kind == Kind::Loop {
            if conditional && ti == self.frames.len() - 1 && self.learned.tail_brif.insert(id) {
                self.tail_candidate = Some(id);
            } else {
                self.learned.not_tail.insert(id);
            }
        }
        if kind == Kind::Block {
            let top_brif = conditional && ti == self.frames.len() - 1 && arity == 0;
            if !top_brif || !self.learned.brif_top.insert(id) {
                self.learned.not_guarded.insert(id);
            }
        }
        if kind != Kind::Loop {
            self.frames[ti].end_reachable = true;
        }
        self.assign_to(base, arity);
        let top = self.frames.len() - 1;
        // Innermost Luau loop construct between here and the target.
        let inner = (ti..self.frames.len())
            .rev()
            .find(|&i| self.frames[i].luau_loop);
        match inner {
            Some(i) if i == ti => {
                if kind == Kind::Loop {
                    self.line("continue");
                } else {
                    self.line("break");
                }
            }
            _ if ti == top && self.frames[ti].flat && !conditional => {
                // What follows up to the flat block's end is unreachable: fall through to it.
            }
            Some(i) => {
                for j in ti + 1..=i {
                    self.frames[j].pending_out = true;
                }
                self.frames[ti].b_target = true;
                self.learned.uses_b = true;
                self.line(&format!("B = {id}"));
                self.line("break");
            }
            None => {
                // Flat target with no Luau loop in between: the rest of each enclosing
                // construct is unreachable or guarded, so execution reaches the target's end.
                debug_assert!(self.frames[ti].flat || !self.final_pass);
                for j in ti + 1..=top {
                    self.frames[j].pending_out = true;
                }
                self.frames[ti].b_target = true;
                self.learned.uses_b = true;
                self.line(&format!("B = {id}"));
                return true;
            }
        }
        false
    }

    fn close_guards(&mut self) {
        let g = std::mem::take(&mut self.frames.last_mut().expect("frame").guards);
        for _ in 0..g {
            self.indent -= 1;
            self.line("end");
        }
    }

    fn close(&mut self) -> Result<()> {
        let fallthrough = !self.frames.last().expect("validated").unreachable;
        if self.frames.last().expect("validated").kind == Kind::Func {
            if fallthrough {
                self.branch(0);
            }
            self.close_guards();
            self.frames.pop();
            return Ok(());
        }
        if fallthrough {
            let f = self.frames.last().expect("validated");
            let (base, n) = (f.base, f.results.len());
            self.assign_to(base, n);
        }
        self.close_guards();
        let f = self.frames.pop().expect("validated");
        let mut end_reachable = f.end_reachable || fallthrough;
        if f.kind == Kind::If && !f.else_seen {
            // The implicit else passes the params through as results.
            end_reachable = true;
        }
        match f.kind {
            Kind::If => {
                if !f.else_seen && !f.params.is_empty() {
                    // Implicit else: params are the results; they are already in their slots
                    // because `open` flushed them.
                }
                self.indent -= 1;
                self.line("end");
                if f.luau_loop {
                    self.indent -= 1;
                    self.line("until true");
                }
            }
            Kind::Block if f.luau_loop => {
                self.indent -= 1;
                self.line("until true");
            }
            Kind::Loop if f.tail_loop => match &f.tail_cond {
                Some(c) if fallthrough => {
                    self.indent -= 1;
                    self.line(&format!("until not ({c})"));
                }
                _ => {
                    // Lowered as a plain loop after all (`continue` re-tests `false`).
                    if fallthrough {
                        self.line("break");
                    }
                    self.indent -= 1;
                    self.line("until false");
                }
            },
            Kind::Loop if f.luau_loop => {
                if fallthrough {
                    self.line("break");
                }
                self.indent -= 1;
                self.line("end");
            }
            _ => {}
        }
        debug_assert_eq!(self.indent, f.indent_at_open);
        self.stack.truncate(f.base);
        for (i, t) in f.results.iter().enumerate() {
            let v = self.slot_val(f.base + i, *t);
            self.stack.push(v);
        }
        if f.flat && f.b_target {
            self.line(&format!("if B == {} then B = nil end", f.id));
        }
        if f.pending_out {
            // A branch to something further out is pending in `B`: leave the enclosing Luau
            // loop, or skip the rest of the enclosing construct's arm.
            let pi = self.frames.len() - 1;
            let (pid, pkind, ploop) = (
                self.frames[pi].id,
                self.frames[pi].kind,
                self.frames[pi].luau_loop,
            );
            if ploop {
                self.line("if B ~= nil then");
                self.indent += 1;
                if pkind == Kind::Loop {
                    self.line(&format!("if B == {pid} then"));
                    self.indent += 1;
                    self.line("B = nil");
                    self.line("continue");
                    self.indent -= 1;
                    self.line("end");
                } else {
                    self.line(&format!("if B == {pid} then B = nil end"));
                }
                self.line("break");
                self.indent -= 1;
                self.line("end");
            } else {
                self.line("if B == nil then");
                self.indent += 1;
                self.frames[pi].guards += 1;
            }
        }
        if let Some(p) = self.frames.last_mut() {
            if !end_reachable {
                p.unreachable = true;
            }
        }
        Ok(())
    }

    // ---- operators ----------------------------------------------------------------------

    fn op(&mut self, op: &Operator<'_>) -> Result<()> {
        use Operator as O;
        if let Some(id) = self.tail_candidate.take() {
            if !matches!(op, O::End) {
                self.learned.not_tail.insert(id);
            }
        }
        if matches!(op, O::Loop { .. } | O::Else | O::End) {
            self.ub.clear();
            self.tzl.clear();
        }
        if matches!(
            op,
            O::Block { .. }
                | O::Loop { .. }
                | O::If { .. }
                | O::Else
                | O::End
                | O::Br { .. }
                | O::BrIf { .. }
                | O::BrTable { .. }
                | O::Return
                | O::Unreachable
        ) {
            self.entry = false;
        }
        if self.cur_unreachable() {
            match op {
                O::Block { .. } | O::Loop { .. } | O::If { .. } => {
                    self.dead += 1;
                    self.next_id += 1;
                    return Ok(());
                }
                O::Else if self.dead == 0 => {}
                O::End if self.dead == 0 => {}
                O::Else => return Ok(()),
                O::End => {
                    self.dead -= 1;
                    return Ok(());
                }
                _ => return Ok(()),
            }
        }
        match op {
            O::Nop => {}
            O::Unreachable => {
                let t = self.helper(Helper::Trap);
                self.line(&format!("{t}(\"unreachable\")"));
                self.set_unreachable();
            }
            O::Block { blockty } => self.open(Kind::Block, *blockty, None),
            O::Loop { blockty } => self.open(Kind::Loop, *blockty, None),
            O::If { blockty } => {
                let c = self.pop();
                let c = Self::cond(&c);
                self.open(Kind::If, *blockty, Some(c));
            }
            O::Else => {
                let f = self.frames.last_mut().expect("validated");
                let fallthrough = !f.unreachable;
                let (base, n) = (f.base, f.results.len());
                f.else_seen = true;
                if fallthrough {
                    f.end_reachable = true;
                    self.assign_to(base, n);
                }
                self.close_guards();
                let f = self.frames.last_mut().expect("validated");
                f.unreachable = false;
                let params = std::mem::take(&mut f.if_params);
                self.stack.truncate(base);
                self.stack.extend(params);
                self.indent -= 1;
                self.line("else");
                self.indent += 1;
            }
            O::End => self.close()?,
            O::Br { relative_depth } => {
                self.branch(*relative_depth);
                self.set_unreachable();
            }
            O::BrIf { relative_depth } => {
                let c = self.pop();
                let c = Self::cond(&c);
                // Values stay on the stack if the branch is not taken: force them first.
                self.flush_all();
                let top = self.frames.len() - 1;
                if *relative_depth == 0
                    && self.frames[top].tail_loop
                    && self.frames[top].guards == 0
                    && self.frames[top].tail_cond.is_none()
                {
                    // The loop's end follows: the condition goes to its `until`.
                    let id = self.frames[top].id;
                    self.learned.targeted.insert(id);
                    self.frames[top].tail_cond = Some(c);
                    return Ok(());
                }
                if *relative_depth == 0 && self.frames[top].guarded {
                    // The rest of the block runs only if the branch is not taken.
                    let id = self.frames[top].id;
                    self.learned.targeted.insert(id);
                    self.frames[top].end_reachable = true;
                    self.line(&format!("if not ({c}) then"));
                    self.indent += 1;
                    self.frames[top].guards += 1;
                    return Ok(());
                }
                self.line(&format!("if {c} then"));
                self.indent += 1;
                let set_b = self.branch_ex(*relative_depth, true);
                self.indent -= 1;
                self.line("end");
                if set_b {
                    // Not taken: continue; taken: skip to the flat target's end.
                    self.line("if B == nil then");
                    self.indent += 1;
                    self.frames.last_mut().expect("frame").guards += 1;
                }
            }
            O::BrTable { targets } => {
                let mut ts = vec![];
                for t in targets.targets() {
                    ts.push(t?);
                }
                let default = targets.default();
                let idx = self.pop();
                let k = self.stack.len();
                self.flush_all();
                let idx = self.simple_at(idx, k);
                let idx = Self::num(&idx);
                // Ranges of consecutive indices with the same target, then a binary search.
                let mut ranges: Vec<(u32, u32, u32)> = vec![];
                for (i, &t) in ts.iter().enumerate() {
                    match ranges.last_mut() {
                        Some(r) if r.2 == t => r.1 = i as u32,
                        _ => ranges.push((i as u32, i as u32, t)),
                    }
                }
                if ranges.last().is_some_and(|r| r.2 == default) {
                    ranges.pop();
                }
                self.br_table_tree(&idx, &ranges, default);
                self.set_unreachable();
            }
            O::Return => {
                let d = self.frames.len() as u32 - 1;
                self.branch(d);
                self.set_unreachable();
            }
            O::Call { function_index } => self.call(*function_index)?,
            O::CallIndirect {
                type_index,
                table_index,
            } => self.call_indirect(*type_index, *table_index)?,
            O::Drop => {
                self.pop();
            }
            O::Select | O::TypedSelect { .. } | O::TypedSelectMulti { .. } => {
                let c = self.pop();
                let b = self.pop();
                let a = self.pop();
                let k = self.stack.len();
                let c = Self::cond(&c);
                let numeric = matches!(
                    a.ty,
                    ValType::I32 | ValType::I64 | ValType::F32 | ValType::F64
                );
                if numeric && a.ty != ValType::I64 && !a.boolean && !b.boolean {
                    let v = Self::derive(
                        a.ty,
                        format!("({c} and {} or {})", a.e, b.e),
                        String::new(),
                        &[&a, &b],
                    );
                    // The condition's reads are not tracked; force the result now.
                    self.push(v);
                    self.materialize(k);
                } else {
                    // Statement form: also right for i64 pairs and for nil references.
                    self.clobber_slot(k);
                    let name = self.slot_name(k);
                    let (ae, be) = if a.ty == ValType::I32 {
                        (Self::num(&a), Self::num(&b))
                    } else {
                        (a.e.clone(), b.e.clone())
                    };
                    if is_i64(a.ty) {
                        let hn = self.slot_hi_name(k);
                        self.line(&format!(
                            "if {c} then {name}, {hn} = {ae}, {} else {name}, {hn} = {be}, {} end",
                            a.h, b.h
                        ));
                    } else {
                        self.line(&format!("if {c} then {name} = {ae} else {name} = {be} end"));
                    }
                    let v = self.slot_val(k, a.ty);
                    self.stack.push(v);
                }
            }
            O::LocalGet { local_index } => {
                let i = *local_index as usize;
                if self.entry {
                    self.entry_reads.insert(i as u32);
                }
                self.learned.local_uses[i] += 1;
                let (lo, hi) = self.local_names[i].clone();
                let mut v = Self::lit(self.local_types[i], lo, hi);
                v.locals = vec![i as u32];
                self.push(v);
            }
            O::LocalSet { local_index } | O::LocalTee { local_index } => {
                let i = *local_index as usize;
                if self.entry && !self.entry_reads.contains(&(i as u32)) {
                    self.learned.set_first.insert(i as u32);
                }
                self.learned.local_uses[i] += 1;
                let v = self.pop();
                let (lo, hi) = self.local_names[i].clone();
                let idx = i as u32;
                match self.ub_of(&v) {
                    Some(b) => self.ub.insert(idx, b),
                    None => self.ub.remove(&idx),
                };
                match self.tz_of(&v) {
                    Some(z) => self.tzl.insert(idx, z),
                    None => self.tzl.remove(&idx),
                };
                self.flush_where(|x| x.locals.contains(&idx));
                // The value was just computed into its slot by the last line: assign the
                // local there instead of copying.
                let fused = match (self.last_eager, v.slot) {
                    (Some((start, k, len, end)), Some(vk)) if k == vk && end == self.out.len() => {
                        let target = if is_i64(v.ty) {
                            format!("{lo}, {hi}")
                        } else {
                            lo.clone()
                        };
                        self.out.replace_range(start..start + len, &target);
                        true
                    }
                    _ => false,
                };
                if fused {
                } else if is_i64(v.ty) {
                    self.line(&format!("{lo}, {hi} = {}, {}", v.e, v.h));
                } else if self.assign_wrapped(&lo, &v) {
                } else if v.e != lo {
                    let e = if v.ty == ValType::I32 {
                        Self::num(&v)
                    } else {
                        v.e.clone()
                    };
                    self.line(&format!("{lo} = {}", strip_parens(&e)));
                }
                if matches!(op, O::LocalTee { .. }) {
                    let mut nv = Self::lit(self.local_types[i], lo, hi);
                    nv.locals = vec![idx];
                    self.push(nv);
                }
            }
            O::GlobalGet { global_index } => {
                let g = &self.ctx.module.globals[*global_index as usize];
                let (lo, hi) = self.ctx.global_names[*global_index as usize].clone();
                let mut v = Self::lit(g.ty, lo, hi);
                v.globals = true;
                self.push(v);
            }
            O::GlobalSet { global_index } => {
                let v = self.pop();
                self.flush_where(|x| x.globals);
                let (lo, hi) = self.ctx.global_names[*global_index as usize].clone();
                if is_i64(v.ty) {
                    self.line(&format!("{lo}, {hi} = {}, {}", v.e, v.h));
                } else {
                    let e = if v.ty == ValType::I32 {
                        Self::num(&v)
                    } else {
                        v.e.clone()
                    };
                    self.line(&format!("{lo} = {}", strip_parens(&e)));
                }
            }
            O::I32Const { value } => self.push(Self::lit(
                ValType::I32,
                (*value as u32).to_string(),
                String::new(),
            )),
            O::I64Const { value } => {
                let u = *value as u64;
                self.push(Self::lit(
                    ValType::I64,
                    (u as u32).to_string(),
                    ((u >> 32) as u32).to_string(),
                ))
            }
            O::F32Const { value } => {
                let e = f32_lit(value.bits(), self.ctx.helpers);
                let mut v = Self::lit(ValType::F32, e, String::new());
                v.simple = !v.e.contains('(') || v.e.starts_with("(-");
                self.push(v)
            }
            O::F64Const { value } => {
                let e = f64_lit(value.bits(), self.ctx.helpers);
                let mut v = Self::lit(ValType::F64, e, String::new());
                v.simple = !v.e.contains('(') || v.e.starts_with("(-");
                self.push(v)
            }
            _ => return self.op2(op),
        }
        Ok(())
    }

    fn br_table_tree(&mut self, idx: &str, ranges: &[(u32, u32, u32)], default: u32) {
        // Values below the index are the branch values; they stay in place for every target.
        if ranges.is_empty() {
            self.branch(default);
            return;
        }
        if ranges.len() == 1 {
            let (lo, hi, t) = ranges[0];
            let c = if lo == hi {
                format!("{idx} == {lo}")
            } else {
                format!("{idx} >= {lo} and {idx} <= {hi}")
            };
            self.line(&format!("if {c} then"));
            self.indent += 1;
            self.branch(t);
            self.indent -= 1;
            self.line("else");
            self.indent += 1;
            self.branch(default);
            self.indent -= 1;
            self.line("end");
            return;
        }
        let mid = ranges.len() / 2;
        let split = ranges[mid].0;
        self.line(&format!("if {idx} < {split} then"));
        self.indent += 1;
        self.br_table_tree(idx, &ranges[..mid], default);
        self.indent -= 1;
        self.line("else");
        self.indent += 1;
        self.br_table_tree(idx, &ranges[mid..], default);
        self.indent -= 1;
        self.line("end");
    }

    fn call_args(&self, vals: &[Val]) -> Vec<String> {
        let mut out = vec![];
        for v in vals {
            match v.ty {
                ValType::I64 => {
                    out.push(v.e.clone());
                    out.push(v.h.clone());
                }
                ValType::I32 => out.push(Self::num(v)),
                _ => out.push(v.e.clone()),
            }
        }
        out
    }

    /// After anything that may grow memory (a call, `memory.grow`): refresh the local `M`.
    fn reload_mem(&mut self) {
        if self.facts.uses_mem {
            self.line("M = MO.buffer");
        }
    }

    fn push_results(&mut self, results: &[ValType], call: String) {
        let k = self.stack.len();
        if results.is_empty() {
            self.line(&call);
            self.reload_mem();
            return;
        }
        for i in 0..results.len() {
            self.clobber_slot(k + i);
        }
        let mut lhs = vec![];
        for (i, t) in results.iter().enumerate() {
            lhs.push(self.slot_name(k + i));
            if is_i64(*t) {
                lhs.push(self.slot_hi_name(k + i));
            }
        }
        self.line(&format!("{} = {call}", lhs.join(", ")));
        self.reload_mem();
        for (i, t) in results.iter().enumerate() {
            let v = self.slot_val(k + i, *t);
            self.stack.push(v);
        }
    }

    fn call(&mut self, f: u32) -> Result<()> {
        let m = self.ctx.module;
        let ty = &m.types[m.func_types[f as usize] as usize];
        let n = ty.params.len();
        self.canon_at(self.stack.len() - n, n);
        let args: Vec<Val> = self.stack.split_off(self.stack.len() - n);
        self.flush_where(|x| x.globals);
        let a = self.call_args(&args).join(", ");
        let call = format!("{}({a})", self.ctx.func_names[f as usize]);
        self.push_results(&ty.results.clone(), call);
        Ok(())
    }

    fn call_indirect(&mut self, type_index: u32, table: u32) -> Result<()> {
        let m = self.ctx.module;
        let ty = m.types[type_index as usize].clone();
        let idx = self.pop();
        let n = ty.params.len();
        let args: Vec<Val> = self.stack.split_off(self.stack.len() - n);
        self.flush_where(|x| x.globals);
        let k = self.stack.len();
        // Evaluate the index first, into a slot above everything the arguments still read.
        let read = args
            .iter()
            .chain([&idx])
            .filter_map(|v| v.max_slot)
            .max()
            .map_or(0, |m| m + 1);
        let tmp = (k + n + 1).max(read);
        self.note_height(tmp);
        let tn = self.slot_name(tmp);
        let e = Self::num(&idx);
        self.line(&format!("{tn} = {e} + 1"));
        let sig = sig_key(&ty);
        let hf = self.helper(Helper::Callind);
        self.line(&format!(
            "if TS{table}[{tn}] ~= \"{sig}\" then {hf}(T{table}, {tn}) end"
        ));
        let a = self.call_args(&args).join(", ");
        let call = format!("TF{table}[{tn}]({a})");
        self.push_results(&ty.results, call);
        Ok(())
    }

    fn addr(&mut self, a: &Val, m: &MemArg) -> String {
        let a = Self::num(a);
        if m.offset == 0 {
            a
        } else if let Ok(c) = a.parse::<u64>() {
            (c + m.offset).to_string()
        } else {
            format!("{a} + {}", m.offset)
        }
    }

    fn load(&mut self, ty: ValType, m: &MemArg, f: &str, post: Option<&str>) {
        self.canon_at(self.stack.len() - 1, 1);
        let a = self.pop();
        let addr = self.addr(&a, m);
        let e = match post {
            Some(p) => format!("buffer.{f}(M, {addr}){p}"),
            None => format!("buffer.{f}(M, {addr})"),
        };
        self.push_eager(ty, e);
        self.note_access(&a);
    }

    /// i64 loads narrower than 64 bits: low half from `f`, high half sign or zero.
    fn load64(&mut self, m: &MemArg, f: &str, signed: bool) {
        let a = self.pop();
        let addr = self.addr(&a, m);
        let k = self.stack.len();
        self.clobber_slot(k);
        let s = self.slot_name(k);
        let t = self.slot_hi_name(k);
        self.line(&format!("{s} = buffer.{f}(M, {addr})"));
        if signed {
            self.line(&format!("{t} = {s} < 0 and 4294967295 or 0"));
            self.line(&format!("{s} = {s} % 4294967296"));
        } else {
            self.line(&format!("{t} = 0"));
        }
        let v = self.slot_val(k, ValType::I64);
        self.stack.push(v);
        self.note_access(&a);
    }

    fn store(&mut self, m: &MemArg, f: &str, wide: bool) {
        self.canon_at(self.stack.len() - 2, 1);
        let v = self.pop();
        let a = self.pop();
        let k = self.stack.len();
        let a = if wide { self.simple_at(a, k) } else { a };
        let addr = self.addr(&a, m);
        let val = if v.ty == ValType::I32 {
            Self::bits(&v)
        } else {
            v.e.clone()
        };
        if wide {
            let hi_addr = if let Ok(c) = addr.parse::<u64>() {
                (c + 4).to_string()
            } else {
                format!("{addr} + 4")
            };
            self.line(&format!("buffer.writeu32(M, {hi_addr}, {})", v.h));
            self.line(&format!("buffer.writeu32(M, {addr}, {val})"));
        } else {
            self.line(&format!("buffer.{f}(M, {addr}, {val})"));
        }
        self.note_access(&a);
    }

    fn un(&mut self, ty: ValType, f: impl Fn(&str) -> String) {
        let a = self.pop();
        let e = f(&Self::num(&a));
        let v = Self::derive(ty, e, String::new(), &[&a]);
        self.push(v);
    }

    fn bin(&mut self, ty: ValType, f: impl Fn(&str, &str) -> String) {
        let b = self.pop();
        let a = self.pop();
        let e = f(&Self::num(&a), &Self::num(&b));
        let v = Self::derive(ty, e, String::new(), &[&a, &b]);
        self.push(v);
    }

    /// Binary i32 op whose Luau form reduces its operands (bit32 functions).
    /// `x << k` for a plain variable and a constant k in 1..=4 as a multiplication when it
    /// cannot wrap: always if bounds prove `x < 2^(32-k)`, else (interpreted output only)
    /// behind that compare with a register `KL{k}`, falling back to `bit32.lshift`.
    fn shl_small(&mut self) -> bool {
        let n = self.stack.len();
        let (a, b) = (&self.stack[n - 2], &self.stack[n - 1]);
        let Ok(c) = b.e.parse::<u64>() else {
            return false;
        };
        let k = c & 31;
        if !(1..=4).contains(&k)
            || a.ty != ValType::I32
            || a.boolean
            || !a.simple
            || a.raw.is_some()
            || a.e.parse::<u64>().is_ok()
        {
            return false;
        }
        let (lim, m) = (1u64 << (32 - k), 1u64 << k);
        let x = a.e.clone();
        let (e, bound) = match self.ub_of(a) {
            Some(u) if u < lim => (format!("({x} * {m})"), Some(u * m)),
            _ if self.ctx.native => return false,
            _ => (
                format!("(if {x} < KL{k} then {x} * {m} else bit32.lshift({x}, {k}))"),
                None,
            ),
        };
        let b = self.pop();
        let a = self.pop();
        let mut v = Self::derive(ValType::I32, e, String::new(), &[&a, &b]);
        v.bound = bound;
        v.tz = Some(k as u32);
        self.push(v);
        true
    }

    fn bin_bits(&mut self, f: impl Fn(&str, &str) -> String) {
        let b = self.pop();
        let a = self.pop();
        let e = f(&Self::bits(&a), &Self::bits(&b));
        let v = Self::derive(ValType::I32, e, String::new(), &[&a, &b]);
        self.push(v);
    }

    fn cmp(&mut self, f: impl Fn(&str, &str) -> String) {
        self.bin(ValType::I32, f);
        self.stack.last_mut().unwrap().boolean = true;
    }

    /// Signed compare (`op`: 0 `<`, 1 `>`, 2 `<=`, 3 `>=`) of a plain variable with a
    /// constant, as one or two unsigned compares instead of flipping the sign bit with
    /// `bit32.bxor`. Returns false (nothing popped) when the operands do not fit.
    fn signed_cmp_const(&mut self, op: u8) -> bool {
        let n = self.stack.len();
        let (a, b) = (&self.stack[n - 2], &self.stack[n - 1]);
        let plain = |v: &Val| v.simple && !v.boolean && v.e.parse::<u64>().is_err();
        let (x, c, mut op) = match (a.e.parse::<u64>(), b.e.parse::<u64>()) {
            (Err(_), Ok(c)) if plain(a) => (a.e.clone(), c, op),
            // c OP x is x OP' c with the sides swapped.
            (Ok(c), Err(_)) if plain(b) => (b.e.clone(), c, [1, 0, 3, 2][op as usize]),
            _ => return false,
        };
        let mut k = c as u32 as i32 as i64;
        // x > k is x >= k + 1; x <= k is x < k + 1.
        if op == 1 || op == 2 {
            k += 1;
            op = if op == 1 { 3 } else { 0 };
        }
        if !(-(1 << 31) < k && k <= i32::MAX as i64) || k == 0 {
            return false;
        }
        let u = (k + (1 << 32)) % (1 << 32);
        const H: u64 = 0x8000_0000;
        let e = match (op == 0, k > 0) {
            (true, true) => format!("{x} < {u} or {x} >= {H}"),
            (true, false) => format!("{x} >= {H} and {x} < {u}"),
            (false, true) => format!("{x} >= {u} and {x} < {H}"),
            (false, false) => format!("{x} < {H} or {x} >= {u}"),
        };
        // Two pairs: users strip one (`cond`) and may embed the rest in `and`/`or` chains.
        let e = format!("(({e}))");
        let b = self.pop();
        let a = self.pop();
        let mut v = Self::derive(ValType::I32, e, String::new(), &[&a, &b]);
        v.boolean = true;
        self.push(v);
        true
    }

    /// Signed compare of two i32 loads just made into the top two slots, with nothing in
    /// between: load them signed (`readi32`) and compare directly. The slots are read by
    /// nothing but this compare. Returns false (nothing changed) when the pattern differs.
    fn signed_cmp_loads(&mut self, op: &str) -> bool {
        let n = self.stack.len();
        if self.stack[n - 2].slot != Some(n - 2) || self.stack[n - 1].slot != Some(n - 1) {
            return false;
        }
        let (na, nb) = (self.slot_name(n - 2), self.slot_name(n - 1));
        if na.starts_with('R') || nb.starts_with('R') {
            return false;
        }
        let Some(body) = self.out.strip_suffix('\n') else {
            return false;
        };
        let Some((rest, lb)) = body.rsplit_once('\n') else {
            return false;
        };
        let la = rest.rsplit_once('\n').map_or(rest, |(_, l)| l);
        let (pa, pb) = (
            format!("{na} = buffer.readu32(M, "),
            format!("{nb} = buffer.readu32(M, "),
        );
        // The second address must not read the first slot.
        let reads_a = lb[pb.len().min(lb.len())..]
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|t| t == na);
        if !la.starts_with(&pa) || !lb.starts_with(&pb) || reads_a {
            return false;
        }
        let lb_start = self.out.len() - 1 - lb.len();
        let la_start = lb_start - 1 - la.len();
        let at = la_start + na.len() + " = buffer.read".len();
        self.out.replace_range(at..at + 3, "i32");
        let at = lb_start + nb.len() + " = buffer.read".len();
        self.out.replace_range(at..at + 3, "i32");
        let b = self.pop();
        let a = self.pop();
        let mut v = Self::derive(
            ValType::I32,
            format!("({na} {op} {nb})"),
            String::new(),
            &[&a, &b],
        );
        v.boolean = true;
        self.push(v);
        true
    }

    fn eager_bin(&mut self, ty: ValType, helper: Helper) {
        let b = self.pop();
        let a = self.pop();
        let h = self.helper(helper);
        self.push_eager(ty, format!("{h}({}, {})", Self::num(&a), Self::num(&b)));
    }

    fn eager_un(&mut self, ty: ValType, helper: Helper) {
        let a = self.pop();
        let h = self.helper(helper);
        self.push_eager(ty, format!("{h}({})", Self::num(&a)));
    }

    /// Binary i64 op through a helper returning (lo, hi).
    fn bin64_call(&mut self, helper: Helper) {
        let b = self.pop();
        let a = self.pop();
        let h = self.helper(helper);
        self.push_eager64(format!("{h}({}, {}, {}, {})", a.e, a.h, b.e, b.h));
    }

    /// i64 add/sub without a call: the carry (or borrow) is the floor quotient of the low sum.
    fn add64_inline(&mut self, op: &str) {
        let b = self.pop();
        let a = self.pop();
        let k = self.stack.len();
        let a = self.simple_at(a, k);
        let b = self.simple_at(b, k + 1);
        let low = format!("({} {op} {})", a.e, b.e);
        self.push_eager64(format!(
            "{low} % 4294967296, ({} {op} {} + {low} // 4294967296) % 4294967296",
            a.h, b.h
        ));
    }

    /// i64 multiply; by a constant with both halves below 2^21 (FNV primes, small factors)
    /// every partial product is exact in a double, so it is inlined.
    fn mul64(&mut self) {
        let n = self.stack.len();
        let small = |v: &Val| -> Option<(u64, u64)> {
            let l = v.e.parse::<u64>().ok()?;
            let h = v.h.parse::<u64>().ok()?;
            (l < (1 << 21) && h < (1 << 21)).then_some((l, h))
        };
        let (cb, ca) = (small(&self.stack[n - 1]), small(&self.stack[n - 2]));
        let Some((cl, ch)) = cb.or(ca) else {
            self.bin64_call(Helper::Mul64);
            return;
        };
        let b = self.pop();
        let a = self.pop();
        let x = if cb.is_some() { a } else { b };
        let k = self.stack.len();
        let x = self.simple_at(x, k);
        let (xl, xh) = (x.e.clone(), x.h.clone());
        // Below 2^20 the high partial product stays under 2^52, so the sum is exact unreduced.
        let xh_cl = if cl < (1 << 20) {
            format!("{xh} * {cl}")
        } else {
            format!("({xh} * {cl}) % 4294967296")
        };
        let mut hi = format!("{xh_cl} + ({xl} * {cl}) // 4294967296");
        if ch != 0 {
            hi.push_str(&format!(" + ({xl} * {ch}) % 4294967296"));
        }
        self.push_eager64(format!("({xl} * {cl}) % 4294967296, ({hi}) % 4294967296"));
    }

    fn bin64_bitwise(&mut self, f: &str) {
        let b = self.pop();
        let a = self.pop();
        let v = Self::derive(
            ValType::I64,
            format!("bit32.{f}({}, {})", a.e, b.e),
            format!("bit32.{f}({}, {})", a.h, b.h),
            &[&a, &b],
        );
        self.push(v);
    }

    fn shift64(&mut self, helper: Helper) {
        let b = self.pop();
        let a = self.pop();
        let h = self.helper(helper);
        self.push_eager64(format!("{h}({}, {}, {})", a.e, a.h, b.e));
    }

    /// i64 comparison producing a boolean; operands made simple since they are used twice.
    fn cmp64(&mut self, f: impl Fn(&Val, &Val, &mut Self) -> String) {
        let b = self.pop();
        let a = self.pop();
        let k = self.stack.len();
        let a = self.simple_at(a, k);
        let b = self.simple_at(b, k + 1);
        let e = f(&a, &b, self);
        let mut v = Self::derive(ValType::I32, e, String::new(), &[&a, &b]);
        v.boolean = true;
        self.push(v);
        // `a`/`b` may sit in slots above the result: force the result now.
        self.materialize(k);
    }

    fn f32op(&mut self, f: impl Fn(&str, &str) -> String) {
        let r = self.helper(Helper::F32r);
        self.bin(ValType::F32, |a, b| format!("{r}({})", f(a, b)));
    }

    /// `x op c` where native codegen would fold an identity and keep a signalling NaN.
    fn f64_arith(&mut self, op: &str) {
        let b = self.pop();
        let a = self.pop();
        let identity = matches!(
            (op, b.e.as_str()),
            ("-", "0.0")
                | ("-", "(-0.0)")
                | ("+", "(-0.0)")
                | ("*", "1.0")
                | ("/", "1.0")
                | ("/", "(-1.0)")
        );
        let be = if identity {
            let hf = Helper::Nf;
            self.ctx.helpers.insert(hf);
            match b.e.as_str() {
                "0.0" => format!("{hf}[1]"),
                "(-0.0)" => format!("{hf}[2]"),
                "1.0" => format!("{hf}[3]"),
                _ => format!("{hf}[4]"),
            }
        } else {
            b.e.clone()
        };
        let v = Self::derive(
            ValType::F64,
            format!("({} {op} {be})", a.e),
            String::new(),
            &[&a, &b],
        );
        self.push(v);
    }

    fn op2(&mut self, op: &Operator<'_>) -> Result<()> {
        use Operator as O;
        use ValType::{F32, F64, I32, I64};
        const M32: &str = "4294967296";
        match op {
            // ---- memory ----
            O::I32Load { memarg } => self.load(I32, memarg, "readu32", None),
            O::I64Load { memarg } => {
                let a = self.pop();
                let k = self.stack.len();
                let a = self.simple_at(a, k);
                let addr = self.addr(&a, memarg);
                let hi_addr = if let Ok(c) = addr.parse::<u64>() {
                    (c + 4).to_string()
                } else {
                    format!("{addr} + 4")
                };
                self.clobber_slot(k);
                let s = self.slot_name(k);
                let t = self.slot_hi_name(k);
                self.line(&format!("{t} = buffer.readu32(M, {hi_addr})"));
                self.line(&format!("{s} = buffer.readu32(M, {addr})"));
                let v = self.slot_val(k, I64);
                self.stack.push(v);
                self.note_access(&a);
            }
            O::F32Load { memarg } => {
                let a = self.pop();
                let addr = self.addr(&a, memarg);
                let h = self.helper(Helper::F32load);
                self.push_eager(F32, format!("{h}(M, {addr})"));
                self.note_access(&a);
            }
            O::F64Load { memarg } => self.load(F64, memarg, "readf64", None),
            O::I32Load8S { memarg } => self.load(I32, memarg, "readi8", Some(" % 4294967296")),
            O::I32Load8U { memarg } => self.load(I32, memarg, "readu8", None),
            O::I32Load16S { memarg } => self.load(I32, memarg, "readi16", Some(" % 4294967296")),
            O::I32Load16U { memarg } => self.load(I32, memarg, "readu16", None),
            O::I64Load8S { memarg } => self.load64(memarg, "readi8", true),
            O::I64Load8U { memarg } => self.load64(memarg, "readu8", false),
            O::I64Load16S { memarg } => self.load64(memarg, "readi16", true),
            O::I64Load16U { memarg } => self.load64(memarg, "readu16", false),
            O::I64Load32S { memarg } => self.load64(memarg, "readi32", true),
            O::I64Load32U { memarg } => self.load64(memarg, "readu32", false),
            O::I32Store { memarg } => self.store(memarg, "writeu32", false),
            O::I64Store { memarg } => self.store(memarg, "", true),
            O::F32Store { memarg } => {
                let v = self.pop();
                let a = self.pop();
                let addr = self.addr(&a, memarg);
                let h = self.helper(Helper::F32store);
                self.line(&format!("{h}(M, {addr}, {})", v.e));
                self.note_access(&a);
            }
            O::F64Store { memarg } => self.store(memarg, "writef64", false),
            O::I32Store8 { memarg } | O::I64Store8 { memarg } => {
                self.store(memarg, "writeu8", false)
            }
            O::I32Store16 { memarg } | O::I64Store16 { memarg } => {
                self.store(memarg, "writeu16", false)
            }
            O::I64Store32 { memarg } => self.store(memarg, "writeu32", false),
            O::MemorySize { .. } => self.push_eager(I32, "buffer.len(M) // 65536".into()),
            O::MemoryGrow { .. } => {
                let a = self.pop();
                self.push_eager(I32, format!("MG({})", Self::num(&a)));
                self.reload_mem();
            }
            O::MemoryFill { .. } => {
                let n = self.pop();
                let v = self.pop();
                let d = self.pop();
                let h = self.helper(Helper::Mfill);
                self.line(&format!(
                    "{h}(M, {}, {}, {})",
                    Self::num(&d),
                    Self::num(&v),
                    Self::num(&n)
                ));
            }
            O::MemoryCopy { .. } => {
                let n = self.pop();
                let s = self.pop();
                let d = self.pop();
                let h = self.helper(Helper::Mcopy);
                self.line(&format!(
                    "{h}(M, {}, {}, {})",
                    Self::num(&d),
                    Self::num(&s),
                    Self::num(&n)
                ));
            }
            O::MemoryInit { data_index, .. } => {
                let n = self.pop();
                let s = self.pop();
                let d = self.pop();
                let h = self.helper(Helper::Minit);
                self.line(&format!(
                    "{h}(M, D[{}], {}, {}, {})",
                    data_index + 1,
                    Self::num(&d),
                    Self::num(&s),
                    Self::num(&n)
                ));
            }
            O::DataDrop { data_index } => {
                let hf = self.helper(Helper::Dropped);
                self.line(&format!("D[{}] = {hf}", data_index + 1))
            }
            // ---- tables ----
            O::TableInit { elem_index, table } => {
                let n = self.pop();
                let s = self.pop();
                let d = self.pop();
                self.flush_where(|x| x.globals);
                let hf = self.helper(Helper::Tinit);
                self.line(&format!(
                    "{hf}(T{table}, E[{}], {}, {}, {})",
                    elem_index + 1,
                    Self::num(&d),
                    Self::num(&s),
                    Self::num(&n)
                ));
            }
            O::ElemDrop { elem_index } => {
                let hf = self.helper(Helper::Edropped);
                self.line(&format!("E[{}] = {hf}", elem_index + 1))
            }
            O::TableCopy {
                dst_table,
                src_table,
            } => {
                let n = self.pop();
                let s = self.pop();
                let d = self.pop();
                let hf = self.helper(Helper::Tcopy);
                self.line(&format!(
                    "{hf}(T{dst_table}, T{src_table}, {}, {}, {})",
                    Self::num(&d),
                    Self::num(&s),
                    Self::num(&n)
                ));
            }
            O::TableSize { table } => self.push_eager(I32, format!("T{table}.n")),
            O::TableGet { table } => {
                let a = self.pop();
                let t = ValType::Ref(wasmparser::RefType::FUNCREF);
                let hf = self.helper(Helper::Tget);
                self.push_eager(t, format!("{hf}(T{table}, {})", Self::num(&a)));
            }
            O::TableSet { table } => {
                let v = self.pop();
                let a = self.pop();
                let hf = self.helper(Helper::Tset);
                self.line(&format!("{hf}(T{table}, {}, {})", Self::num(&a), v.e));
            }
            O::TableGrow { table } => {
                let n = self.pop();
                let v = self.pop();
                let hf = self.helper(Helper::Tgrow);
                self.push_eager(I32, format!("{hf}(T{table}, {}, {})", v.e, Self::num(&n)));
            }
            O::TableFill { table } => {
                let n = self.pop();
                let v = self.pop();
                let d = self.pop();
                let hf = self.helper(Helper::Tfill);
                self.line(&format!(
                    "{hf}(T{table}, {}, {}, {})",
                    Self::num(&d),
                    v.e,
                    Self::num(&n)
                ));
            }
            O::RefNull { .. } => self.push(Self::lit(
                ValType::Ref(wasmparser::RefType::FUNCREF),
                "nil".into(),
                String::new(),
            )),
            O::RefEq => {
                let b = self.pop();
                let a = self.pop();
                let mut v = Self::derive(
                    I32,
                    format!("({} == {})", a.e, b.e),
                    String::new(),
                    &[&a, &b],
                );
                v.boolean = true;
                self.push(v);
            }
            O::RefIsNull => {
                let a = self.pop();
                let mut v = Self::derive(I32, format!("({} == nil)", a.e), String::new(), &[&a]);
                v.boolean = true;
                self.push(v);
            }
            O::RefFunc { function_index } => {
                self.push_eager(
                    ValType::Ref(wasmparser::RefType::FUNCREF),
                    self.ctx.func_names[*function_index as usize].clone(),
                );
            }
            // ---- i32 ----
            O::I32Eqz => {
                let a = self.pop();
                let e = if a.boolean {
                    format!("(not {})", a.e)
                } else {
                    format!("({} == 0)", a.e)
                };
                let mut v = Self::derive(I32, e, String::new(), &[&a]);
                v.boolean = true;
                self.push(v);
            }
            O::I32Eq => self.cmp(|a, b| format!("({a} == {b})")),
            O::I32Ne => self.cmp(|a, b| format!("({a} ~= {b})")),
            O::I32LtU => self.cmp(|a, b| format!("({a} < {b})")),
            O::I32GtU => self.cmp(|a, b| format!("({a} > {b})")),
            O::I32LeU => self.cmp(|a, b| format!("({a} <= {b})")),
            O::I32GeU => self.cmp(|a, b| format!("({a} >= {b})")),
            O::I32LtS if self.signed_cmp_loads("<") => {}
            O::I32GtS if self.signed_cmp_loads(">") => {}
            O::I32LeS if self.signed_cmp_loads("<=") => {}
            O::I32GeS if self.signed_cmp_loads(">=") => {}
            O::I32LtS if self.signed_cmp_const(0) => {}
            O::I32GtS if self.signed_cmp_const(1) => {}
            O::I32LeS if self.signed_cmp_const(2) => {}
            O::I32GeS if self.signed_cmp_const(3) => {}
            O::I32LtS => self.cmp(|a, b| format!("({} < {})", flip(a), flip(b))),
            O::I32GtS => self.cmp(|a, b| format!("({} > {})", flip(a), flip(b))),
            O::I32LeS => self.cmp(|a, b| format!("({} <= {})", flip(a), flip(b))),
            O::I32GeS => self.cmp(|a, b| format!("({} >= {})", flip(a), flip(b))),
            O::I32Clz => self.un(I32, |a| format!("bit32.countlz({a})")),
            O::I32Ctz => self.un(I32, |a| format!("bit32.countrz({a})")),
            O::I32Popcnt => {
                let h = self.helper(Helper::Popcnt32);
                self.un(I32, |a| format!("{h}({a})"))
            }
            O::I32Add | O::I32Sub => {
                let mut add = matches!(op, O::I32Add);
                let b = self.pop();
                let a = self.pop();
                let mut be = Self::num(&b);
                // `x + 0xFFFFFFFF` reads better, and reduces cheaper, as `x - 1`.
                if let Ok(c) = be.parse::<u64>() {
                    if c >= 0x8000_0000 {
                        be = ((1u64 << 32) - c).to_string();
                        add = !add;
                    }
                }
                let op = if add { "+" } else { "-" };
                if add {
                    if let (Some(x), Some(y)) = (self.ub_of(&a), self.ub_of(&b)) {
                        if x + y < 1 << 32 {
                            // Provably no wrap: no reduction.
                            let e = format!("({} + {be})", Self::num(&a));
                            let mut v = Self::derive(I32, e, String::new(), &[&a, &b]);
                            v.bound = Some(x + y);
                            self.push(v);
                            return Ok(());
                        }
                    }
                }
                let raw = format!("({} {op} {be})", Self::num(&a));
                let mut v = Self::derive(I32, format!("{raw} % {M32}"), String::new(), &[&a, &b]);
                v.raw = Some(raw);
                v.wrap = Some(add);
                self.push(v);
            }
            O::I32Mul => {
                let small = |s: &str| s.parse::<u64>().is_ok_and(|c| c < (1 << 21));
                let (a_small, b_small) = {
                    let n = self.stack.len();
                    (small(&self.stack[n - 2].e), small(&self.stack[n - 1].e))
                };
                if a_small || b_small {
                    self.bin(I32, |a, b| format!("({a} * {b}) % {M32}"))
                } else {
                    let h = self.helper(Helper::Mul32);
                    self.bin(I32, |a, b| format!("{h}({a}, {b})"))
                }
            }
            O::I32DivU | O::I32RemU | O::I32DivS | O::I32RemS => {
                let divisor = self.stack.last().unwrap().e.parse::<u64>().ok();
                let signed = matches!(op, O::I32DivS | O::I32RemS);
                let safe = divisor.is_some_and(|c| c != 0 && !(signed && c == 0xFFFF_FFFF));
                let (name, pure): (Helper, Option<&str>) = match op {
                    O::I32DivU => (Helper::Divu32, Some("//")),
                    O::I32RemU => (Helper::Remu32, Some("%")),
                    O::I32DivS => (Helper::Divs32, None),
                    _ => (Helper::Rems32, None),
                };
                if safe {
                    if let Some(p) = pure {
                        self.bin(I32, |a, b| format!("({a} {p} {b})"));
                    } else {
                        let h = self.helper(name);
                        self.bin(I32, |a, b| format!("{h}({a}, {b})"));
                    }
                } else {
                    self.eager_bin(I32, name);
                }
            }
            O::I32And => self.bin_bits(|a, b| format!("bit32.band({a}, {b})")),
            O::I32Or if self.or_low() => {}
            O::I32Or => self.bin_bits(|a, b| format!("bit32.bor({a}, {b})")),
            O::I32Xor => self.bin_bits(|a, b| format!("bit32.bxor({a}, {b})")),
            O::I32Shl if self.shl_small() => {}
            O::I32Shl => self.bin_bits(|a, b| format!("bit32.lshift({a}, {})", mask(b, 31))),
            O::I32ShrS => self.bin_bits(|a, b| format!("bit32.arshift({a}, {})", mask(b, 31))),
            O::I32ShrU => self.bin_bits(|a, b| format!("bit32.rshift({a}, {})", mask(b, 31))),
            O::I32Rotl => self.bin_bits(|a, b| format!("bit32.lrotate({a}, {})", mask(b, 31))),
            O::I32Rotr => self.bin_bits(|a, b| format!("bit32.rrotate({a}, {})", mask(b, 31))),
            O::I32Extend8S => {
                let h = self.helper(Helper::Ext8);
                self.un(I32, |a| format!("{h}({a})"))
            }
            O::I32Extend16S => {
                let h = self.helper(Helper::Ext16);
                self.un(I32, |a| format!("{h}({a})"))
            }
            // ---- i64 ----
            O::I64Eqz => {
                let a = self.pop();
                let mut v = Self::derive(
                    I32,
                    format!("({} == 0 and {} == 0)", a.e, a.h),
                    String::new(),
                    &[&a],
                );
                v.boolean = true;
                self.push(v);
            }
            O::I64Eq => {
                self.cmp64(|a, b, _| format!("({} == {} and {} == {})", a.e, b.e, a.h, b.h))
            }
            O::I64Ne => self.cmp64(|a, b, _| format!("({} ~= {} or {} ~= {})", a.e, b.e, a.h, b.h)),
            O::I64LtU => self.cmp64(|a, b, t| {
                format!(
                    "{}({}, {}, {}, {})",
                    t.helper(Helper::Ltu64),
                    a.e,
                    a.h,
                    b.e,
                    b.h
                )
            }),
            O::I64GtU => self.cmp64(|a, b, t| {
                format!(
                    "{}({}, {}, {}, {})",
                    t.helper(Helper::Ltu64),
                    b.e,
                    b.h,
                    a.e,
                    a.h
                )
            }),
            O::I64LeU => self.cmp64(|a, b, t| {
                format!(
                    "(not {}({}, {}, {}, {}))",
                    t.helper(Helper::Ltu64),
                    b.e,
                    b.h,
                    a.e,
                    a.h
                )
            }),
            O::I64GeU => self.cmp64(|a, b, t| {
                format!(
                    "(not {}({}, {}, {}, {}))",
                    t.helper(Helper::Ltu64),
                    a.e,
                    a.h,
                    b.e,
                    b.h
                )
            }),
            O::I64LtS => self.cmp64(|a, b, t| {
                format!(
                    "{}({}, {}, {}, {})",
                    t.helper(Helper::Lts64),
                    a.e,
                    a.h,
                    b.e,
                    b.h
                )
            }),
            O::I64GtS => self.cmp64(|a, b, t| {
                format!(
                    "{}({}, {}, {}, {})",
                    t.helper(Helper::Lts64),
                    b.e,
                    b.h,
                    a.e,
                    a.h
                )
            }),
            O::I64LeS => self.cmp64(|a, b, t| {
                format!(
                    "(not {}({}, {}, {}, {}))",
                    t.helper(Helper::Lts64),
                    b.e,
                    b.h,
                    a.e,
                    a.h
                )
            }),
            O::I64GeS => self.cmp64(|a, b, t| {
                format!(
                    "(not {}({}, {}, {}, {}))",
                    t.helper(Helper::Lts64),
                    a.e,
                    a.h,
                    b.e,
                    b.h
                )
            }),
            O::I64Clz | O::I64Ctz => {
                let a = self.pop();
                let h = self.helper(if matches!(op, O::I64Clz) {
                    Helper::Clz64
                } else {
                    Helper::Ctz64
                });
                let v = Self::derive(I64, format!("{h}({}, {})", a.e, a.h), "0".into(), &[&a]);
                self.push(v);
            }
            O::I64Popcnt => {
                let a = self.pop();
                let h = self.helper(Helper::Popcnt32);
                let v = Self::derive(
                    I64,
                    format!("({h}({}) + {h}({}))", a.e, a.h),
                    "0".into(),
                    &[&a],
                );
                self.push(v);
            }
            O::I64Add => self.add64_inline("+"),
            O::I64Sub => self.add64_inline("-"),
            O::I64Mul => self.mul64(),
            O::I64DivS => self.bin64_call(Helper::Divs64),
            O::I64DivU => self.bin64_call(Helper::Divu64),
            O::I64RemS => self.bin64_call(Helper::Rems64),
            O::I64RemU => self.bin64_call(Helper::Remu64),
            O::I64And => self.bin64_bitwise("band"),
            O::I64Or => self.bin64_bitwise("bor"),
            O::I64Xor => self.bin64_bitwise("bxor"),
            O::I64Shl => self.shift64(Helper::Shl64),
            O::I64ShrS => self.shift64(Helper::Shrs64),
            O::I64ShrU => self.shift64(Helper::Shru64),
            O::I64Rotl => self.shift64(Helper::Rotl64),
            O::I64Rotr => self.shift64(Helper::Rotr64),
            O::I64Extend8S | O::I64Extend16S => {
                let a = self.pop();
                let h = self.helper(if matches!(op, O::I64Extend8S) {
                    Helper::Ext8
                } else {
                    Helper::Ext16
                });
                let k = self.stack.len();
                self.clobber_slot(k);
                let s = self.slot_name(k);
                let t = self.slot_hi_name(k);
                self.line(&format!("{s} = {h}({})", a.e));
                self.line(&format!("{t} = {s} >= 2147483648 and 4294967295 or 0"));
                let v = self.slot_val(k, I64);
                self.stack.push(v);
            }
            O::I64Extend32S => {
                let a = self.pop();
                self.extend_s(a.e.clone(), &a);
            }
            O::I64ExtendI32S => {
                let a = self.pop();
                let e = Self::num(&a);
                self.extend_s(e, &a);
            }
            O::I64ExtendI32U => {
                let a = self.pop();
                let v = Self::derive(I64, Self::num(&a), "0".into(), &[&a]);
                self.push(v);
            }
            O::I32WrapI64 => {
                let a = self.pop();
                let v = Self::derive(I32, a.e.clone(), String::new(), &[&a]);
                self.push(v);
            }
            // ---- f32 ----
            O::F32Eq | O::F64Eq => self.cmp(|a, b| format!("({a} == {b})")),
            O::F32Ne | O::F64Ne => self.cmp(|a, b| format!("({a} ~= {b})")),
            O::F32Lt | O::F64Lt => self.cmp(|a, b| format!("({a} < {b})")),
            O::F32Gt | O::F64Gt => self.cmp(|a, b| format!("({a} > {b})")),
            O::F32Le | O::F64Le => self.cmp(|a, b| format!("({a} <= {b})")),
            O::F32Ge | O::F64Ge => self.cmp(|a, b| format!("({a} >= {b})")),
            O::F32Abs => self.un(F32, |a| format!("math.abs({a})")),
            O::F64Abs => self.un(F64, |a| format!("math.abs({a})")),
            O::F32Neg => self.un(F32, |a| format!("(-{a})")),
            O::F64Neg => self.un(F64, |a| format!("(-{a})")),
            O::F32Ceil | O::F64Ceil => self.fun(op, Helper::Fceil),
            O::F32Floor | O::F64Floor => self.fun(op, Helper::Ffloor),
            O::F32Trunc | O::F64Trunc => self.fun(op, Helper::Ftruncf),
            O::F32Nearest | O::F64Nearest => self.fun(op, Helper::Fnearest),
            O::F32Sqrt => {
                let s = self.helper(Helper::Fsqrt);
                let r = self.helper(Helper::F32r);
                self.un(F32, |a| format!("{r}({s}({a}))"))
            }
            O::F64Sqrt => {
                let s = self.helper(Helper::Fsqrt);
                self.un(F64, |a| format!("{s}({a})"))
            }
            O::F32Add => self.f32op(|a, b| format!("{a} + {b}")),
            O::F32Sub => self.f32op(|a, b| format!("{a} - {b}")),
            O::F32Mul => self.f32op(|a, b| format!("{a} * {b}")),
            O::F32Div => self.f32op(|a, b| format!("{a} / {b}")),
            O::F64Add => self.f64_arith("+"),
            O::F64Sub => self.f64_arith("-"),
            O::F64Mul => self.f64_arith("*"),
            O::F64Div => self.f64_arith("/"),
            O::F32Min | O::F64Min => {
                let ty = if matches!(op, O::F32Min) { F32 } else { F64 };
                let h = self.helper(Helper::Fmin);
                self.bin(ty, |a, b| format!("{h}({a}, {b})"))
            }
            O::F32Max | O::F64Max => {
                let ty = if matches!(op, O::F32Max) { F32 } else { F64 };
                let h = self.helper(Helper::Fmax);
                self.bin(ty, |a, b| format!("{h}({a}, {b})"))
            }
            O::F32Copysign | O::F64Copysign => {
                let ty = if matches!(op, O::F32Copysign) {
                    F32
                } else {
                    F64
                };
                let h = self.helper(Helper::Fcopysign);
                self.bin(ty, |a, b| format!("{h}({a}, {b})"))
            }
            // ---- conversions ----
            O::I32TruncF32S | O::I32TruncF64S => self.eager_un(I32, Helper::Trunci32s),
            O::I32TruncF32U | O::I32TruncF64U => self.eager_un(I32, Helper::Trunci32u),
            O::I32TruncSatF32S | O::I32TruncSatF64S => {
                let h = self.helper(Helper::Sati32s);
                self.un(I32, |a| format!("{h}({a})"))
            }
            O::I32TruncSatF32U | O::I32TruncSatF64U => {
                let h = self.helper(Helper::Sati32u);
                self.un(I32, |a| format!("{h}({a})"))
            }
            O::I64TruncF32S | O::I64TruncF64S => self.eager64_un(Helper::Trunci64s),
            O::I64TruncF32U | O::I64TruncF64U => self.eager64_un(Helper::Trunci64u),
            O::I64TruncSatF32S | O::I64TruncSatF64S => self.eager64_un(Helper::Sati64s),
            O::I64TruncSatF32U | O::I64TruncSatF64U => self.eager64_un(Helper::Sati64u),
            O::F32ConvertI32S => {
                let r = self.helper(Helper::F32r);
                let s = self.helper(Helper::Signed);
                self.un(F32, |a| format!("{r}({s}({a}))"))
            }
            O::F32ConvertI32U => {
                let r = self.helper(Helper::F32r);
                self.un(F32, |a| format!("{r}({a})"))
            }
            O::F32ConvertI64S | O::F32ConvertI64U | O::F64ConvertI64S => {
                let a = self.pop();
                let h = self.helper(match op {
                    O::F32ConvertI64S => Helper::S64tof32,
                    O::F32ConvertI64U => Helper::U64tof32,
                    _ => Helper::I64tof64s,
                });
                let ty = if matches!(op, O::F64ConvertI64S) {
                    F64
                } else {
                    F32
                };
                let v = Self::derive(ty, format!("{h}({}, {})", a.e, a.h), String::new(), &[&a]);
                self.push(v);
            }
            O::F64ConvertI64U => {
                let a = self.pop();
                let v = Self::derive(
                    F64,
                    format!("({} * 4294967296 + {})", a.h, a.e),
                    String::new(),
                    &[&a],
                );
                self.push(v);
            }
            O::F32DemoteF64 => {
                let r = self.helper(Helper::F32r);
                self.un(F32, |a| format!("{r}({a})"))
            }
            O::F64ConvertI32S => {
                let s = self.helper(Helper::Signed);
                self.un(F64, |a| format!("{s}({a})"))
            }
            O::F64ConvertI32U => self.un(F64, |a| format!("({a} + 0)")),
            O::F64PromoteF32 => {
                let h = self.helper(Helper::Fpromote);
                self.un(F64, |a| format!("{h}({a})"))
            }
            O::I32ReinterpretF32 => {
                let h = self.helper(Helper::F32bits);
                self.un(I32, |a| format!("{h}({a})"))
            }
            O::F32ReinterpretI32 => {
                let h = self.helper(Helper::F32frombits);
                self.un(F32, |a| format!("{h}({a})"))
            }
            O::I64ReinterpretF64 => self.eager64_un(Helper::F64bits),
            O::F64ReinterpretI64 => {
                let a = self.pop();
                let h = self.helper(Helper::F64frombits);
                let v = Self::derive(F64, format!("{h}({}, {})", a.e, a.h), String::new(), &[&a]);
                self.push(v);
            }
            other => return Err(Error::new(format!("unsupported operator {other:?}"))),
        }
        Ok(())
    }

    fn fun(&mut self, op: &Operator<'_>, helper: Helper) {
        let ty = match op {
            Operator::F32Ceil | Operator::F32Floor | Operator::F32Trunc | Operator::F32Nearest => {
                ValType::F32
            }
            _ => ValType::F64,
        };
        let h = self.helper(helper);
        self.un(ty, |a| format!("{h}({a})"));
    }

    fn eager64_un(&mut self, helper: Helper) {
        let a = self.pop();
        let h = self.helper(helper);
        self.push_eager64(format!("{h}({})", a.e));
    }

    fn extend_s(&mut self, e: String, a: &Val) {
        let k = self.stack.len();
        let v = if a.simple && !a.boolean {
            Self::derive(
                ValType::I64,
                e.clone(),
                format!("({e} >= 2147483648 and 4294967295 or 0)"),
                &[a],
            )
        } else {
            self.clobber_slot(k);
            let s = self.slot_name(k);
            self.line(&format!("{s} = {e}"));
            let sv = self.slot_val(k, ValType::I32);
            Self::derive(
                ValType::I64,
                s.clone(),
                format!("({s} >= 2147483648 and 4294967295 or 0)"),
                &[&sv],
            )
        };
        self.push(v);
        self.materialize(k);
    }
}
