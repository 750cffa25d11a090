//! The operand stack: lazy values, their slots, spilling, and what is known about a value.
use super::*;

impl Translator<'_, '_, '_> {
    pub(in crate::lower) fn note_height(&mut self, h: usize) {
        if h > self.rec.max_height {
            self.rec.max_height = h;
        }
    }

    /// Whether stack slot `k` lives in registers.
    pub(in crate::lower) fn slot_in_reg(&self, k: usize) -> bool {
        self.slot_in_reg.get(k).copied().unwrap_or(true)
    }

    /// The variable of stack slot `k` (the low half of an i64).
    pub(in crate::lower) fn slot_var(&self, k: usize) -> Name {
        self.slot_lo.get(k).copied().unwrap_or(Name::s(k))
    }

    /// The variable holding the high half of an i64 in stack slot `k`.
    pub(in crate::lower) fn slot_hi_var(&mut self, k: usize) -> Name {
        self.rec.hi_slots.insert(k);
        self.slot_hi.get(k).copied().unwrap_or(Name::t(k))
    }

    pub(in crate::lower) fn slot_name(&self, k: usize) -> String {
        self.slot_var(k).to_string()
    }

    pub(in crate::lower) fn slot_hi_name(&mut self, k: usize) -> String {
        self.slot_hi_var(k).to_string()
    }

    pub(in crate::lower) fn slot_val(&mut self, k: usize, ty: ValType) -> Val {
        self.note_height(k);
        let e = Expr::Var(Var::Slot(k), self.slot_var(k));
        let h = if is_i64(ty) {
            Expr::Var(Var::Slot(k), self.slot_hi_var(k))
        } else {
            Expr::none()
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
            simple: true,
            raw: None,
            wrap: None,
            bound: None,
            tz: None,
        }
    }

    pub(in crate::lower) fn lit(ty: ValType, e: impl Into<Expr>, h: impl Into<Expr>) -> Val {
        Val {
            ty,
            e: e.into(),
            h: h.into(),
            boolean: false,
            locals: vec![],
            globals: false,
            max_slot: None,
            depth: 0,
            simple: true,
            raw: None,
            wrap: None,
            bound: None,
            tz: None,
        }
    }

    /// The wasm local `v` reads, if `v` is exactly that local's current value.
    pub(in crate::lower) fn plain_local(&self, v: &Val) -> Option<u32> {
        v.local()
            .filter(|_| v.ty == ValType::I32 && !v.boolean && v.raw.is_none())
    }

    /// A known upper bound of an i32 value.
    pub(in crate::lower) fn ub_of(&self, v: &Val) -> Option<u64> {
        if v.ty != ValType::I32 || v.boolean {
            return None;
        }
        if v.bound.is_some() {
            return v.bound;
        }
        if let Some(c) = v.const_lo() {
            return Some(c);
        }
        self.plain_local(v).and_then(|l| self.ub.get(&l).copied())
    }

    /// Known zero low bits of an i32 value.
    pub(in crate::lower) fn tz_of(&self, v: &Val) -> Option<u32> {
        if v.ty != ValType::I32 || v.boolean {
            return None;
        }
        if v.tz.is_some() {
            return v.tz;
        }
        if let Some(c) = v.const_lo() {
            return (c != 0).then(|| c.trailing_zeros().min(32));
        }
        self.plain_local(v).and_then(|l| self.tzl.get(&l).copied())
    }

    /// `x | c` where the bits of the constant `c` are known zero in `x`: `x + c`.
    pub(in crate::lower) fn or_low(&mut self) -> bool {
        let n = self.stack.len();
        let (a, b) = (&self.stack[n - 2], &self.stack[n - 1]);
        let (x, c) = match (a.const_lo(), b.const_lo()) {
            (None, Some(c)) => (a, c),
            (Some(c), None) => (b, c),
            _ => return false,
        };
        let Some(z) = self.tz_of(x) else {
            return false;
        };
        if c == 0 || z >= 32 || c >= 1 << z {
            return false;
        }
        let e = group(x.e.clone(), BinOp::Add, Expr::Int(c));
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
    pub(in crate::lower) fn note_access(&mut self, a: &Val) {
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

    /// Numeric form of a value (an i32 boolean becomes 0/1).
    pub(in crate::lower) fn num(v: &Val) -> Expr {
        if v.boolean {
            group(
                tight(v.e.clone(), BinOp::And, Expr::Int(1)),
                BinOp::Or,
                Expr::Int(0),
            )
        } else {
            v.e.clone()
        }
    }

    /// The expressions carrying `v` where values are listed (a call's arguments, a parallel
    /// assignment, `return`): an i64 takes two, an i32 its numeric form.
    pub(in crate::lower) fn exprs_of(v: &Val, out: &mut Vec<Expr>) {
        match v.ty {
            ValType::I64 => {
                out.push(v.e.clone());
                out.push(v.h.clone());
            }
            ValType::I32 => out.push(Self::num(v)),
            _ => out.push(v.e.clone()),
        }
    }

    /// `target = v` for an unreduced i32 sum or difference: assign, then fix with one compare.
    pub(in crate::lower) fn assign_wrapped(&mut self, target: &str, v: &Val) -> bool {
        let (Some(raw), Some(add)) = (&v.raw, v.wrap) else {
            return false;
        };
        self.assign(target, raw.clone());
        // The interpreter compares with a constant by loading it first: compare with a
        // register holding it instead (`KZ`/`KW`, declared by `finish`).
        let (z, w) = if self.ctx.native {
            ("0", "W")
        } else {
            ("KZ", "KW")
        };
        if add {
            self.regs.kw |= !self.ctx.native;
            self.line(&format!("if {target}>={w} then {target}-=W end"));
        } else {
            self.regs.kz |= !self.ctx.native;
            self.line(&format!("if {target}<{z} then {target}+=W end"));
        }
        true
    }

    /// Materialise unreduced sums among stack entries `from..from+n`: as statements they
    /// reduce with a compare, cheaper than the `%` an expression needs.
    pub(in crate::lower) fn canon_at(&mut self, from: usize, n: usize) {
        for j in from..from + n {
            if self.stack[j].wrap.is_some() {
                self.materialize(j);
            }
        }
    }

    /// Form of an i32 value for consumers that reduce modulo 2^32 themselves.
    pub(in crate::lower) fn bits(v: &Val) -> Expr {
        match &v.raw {
            Some(r) if !v.boolean => r.clone(),
            _ => Self::num(v),
        }
    }

    /// Boolean (condition) form of an i32 value.
    /// Printed whole, it is the bare form (an `if`'s condition).
    pub(in crate::lower) fn cond(v: &Val) -> Expr {
        if v.boolean {
            v.e.clone().ungrouped()
        } else {
            tight(v.e.clone(), BinOp::Ne, Expr::Int(0))
        }
    }

    /// A new lazy value combining `args`.
    pub(in crate::lower) fn derive(
        ty: ValType,
        e: impl Into<Expr>,
        h: impl Into<Expr>,
        args: &[&Val],
    ) -> Val {
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
            e: e.into(),
            h: h.into(),
            boolean: false,
            locals,
            globals,
            max_slot,
            depth: depth + 1,
            simple: false,
            raw: None,
            wrap: None,
            bound: None,
            tz: None,
        }
    }

    pub(in crate::lower) fn push(&mut self, v: Val) {
        let k = self.stack.len();
        self.note_height(k);
        self.stack.push(v);
        if self.stack[k].depth > MAX_EXPR_DEPTH || self.stack[k].e.len() > 400 {
            self.materialize(k);
        }
    }

    pub(in crate::lower) fn pop(&mut self) -> Val {
        self.stack
            .pop()
            .expect("validated: operand stack underflow")
    }

    /// Before writing slot `k`, force lazy values below that read slots `>= k`.
    pub(in crate::lower) fn clobber_slot(&mut self, k: usize) {
        let mut lo = k;
        loop {
            let found = (0..lo.min(self.stack.len())).find(|&j| {
                self.stack[j].slot() != Some(j) && self.stack[j].max_slot.is_some_and(|m| m >= lo)
            });
            match found {
                Some(j) => lo = j,
                None => break,
            }
        }
        for j in lo..k.min(self.stack.len()) {
            if self.stack[j].slot() != Some(j) && self.stack[j].max_slot.is_some() {
                self.assign_slot(j);
            }
        }
    }

    pub(in crate::lower) fn assign_slot(&mut self, j: usize) {
        let v = self.stack[j].clone();
        let name = self.slot_name(j);
        if is_i64(v.ty) {
            let hn = self.slot_hi_name(j);
            let value = Rvalue::Pair(v.e, v.h);
            self.eager(j, format!("{name},{hn}"), value);
        } else if !self.assign_wrapped(&name, &v) {
            self.eager(j, name, Rvalue::Expr(Self::num(&v)));
        }
        self.stack[j] = self.slot_val(j, v.ty);
    }

    /// Force the value at height `j` into its slot variable.
    pub(in crate::lower) fn materialize(&mut self, j: usize) {
        if self.stack[j].slot() == Some(j) {
            return;
        }
        self.clobber_slot(j);
        self.assign_slot(j);
    }

    pub(in crate::lower) fn flush_all(&mut self) {
        for j in 0..self.stack.len() {
            self.materialize(j);
        }
    }

    pub(in crate::lower) fn flush_where(&mut self, pred: impl Fn(&Val) -> bool) {
        for j in 0..self.stack.len() {
            if self.stack[j].slot() != Some(j) && pred(&self.stack[j]) {
                self.materialize(j);
            }
        }
    }

    /// Make a value cheap to use twice, materialising it into slot `k` if needed.
    pub(in crate::lower) fn simple_at(&mut self, v: Val, k: usize) -> Val {
        if v.simple {
            return v;
        }
        self.clobber_slot(k);
        let name = self.slot_name(k);
        if is_i64(v.ty) {
            let hn = self.slot_hi_name(k);
            self.assign_pair(&name, &hn, v.e.clone(), v.h.clone());
        } else {
            self.assign(&name, Self::num(&v));
        }
        self.slot_val(k, v.ty)
    }

    /// Emit `slot(k) = expr` (eagerly evaluated) and push the slot.
    pub(in crate::lower) fn push_eager(&mut self, ty: ValType, e: impl Into<Expr>) {
        self.push_eager_value(ty, Rvalue::Expr(e.into()));
    }

    /// Emit `slot(k) = value` (eagerly evaluated) and push the slot.
    pub(in crate::lower) fn push_eager_value(&mut self, ty: ValType, value: Rvalue) {
        let k = self.stack.len();
        self.clobber_slot(k);
        let name = self.slot_name(k);
        self.eager(k, name, value);
        let v = self.slot_val(k, ty);
        self.stack.push(v);
    }

    pub(in crate::lower) fn push_eager64(&mut self, value: Rvalue) {
        let k = self.stack.len();
        self.clobber_slot(k);
        let name = self.slot_name(k);
        let hn = self.slot_hi_name(k);
        self.eager(k, format!("{name},{hn}"), value);
        let v = self.slot_val(k, ValType::I64);
        self.stack.push(v);
    }
}
