//! The function as a whole: its locals, its lines, and the final text (header and body).
use super::*;

impl<'c, 'm, 'a> Translator<'c, 'm, 'a> {
    pub(in crate::lower) fn load_locals(
        &mut self,
        body: &wasmparser::FunctionBody<'_>,
    ) -> Result<()> {
        self.local_types = self.ty.params.clone();
        for l in body.get_locals_reader()? {
            let (n, t) = l?;
            for _ in 0..n {
                self.local_types.push(t);
            }
        }
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
        order.sort_by_key(|&i| std::cmp::Reverse(self.facts.local_uses[i]));
        for i in order {
            local_reg[i] = take(cost(self.local_types[i]), &mut budget);
        }
        for k in first_slots..slots {
            slot_reg[k] = take(slot_cost(k), &mut budget);
        }
        let mut spill = 0u32;
        let mut next_spill = || {
            spill += 1;
            Name::r(spill)
        };
        for i in 0..n {
            let wide = is_i64(self.local_types[i]);
            let names = if local_reg[i] {
                (Name::a(i as u32), wide.then_some(Name::b(i as u32)))
            } else {
                let lo = next_spill();
                (lo, wide.then(&mut next_spill))
            };
            self.local_names.push(names);
            self.local_in_reg.push(local_reg[i]);
        }
        for (k, &reg) in slot_reg.iter().enumerate() {
            self.slot_in_reg.push(reg);
            if reg {
                self.slot_lo.push(Name::s(k));
                self.slot_hi.push(Name::t(k));
            } else {
                self.slot_lo.push(next_spill());
                self.slot_hi.push(next_spill());
            }
        }
        self.rec.uses_r = spill > 0;
        // Function-level frame: branches to it are returns.
        self.frames.push(Frame {
            kind: Kind::Func,
            id: u32::MAX,
            base: 0,
            params: vec![],
            results: self.ty.results.clone(),
            lowering: Lowering::Inline,
            guards: 0,
            pending_out: false,
            b_target: false,
            unreachable: false,
            end_reachable: true,
            else_seen: false,
            if_params: vec![],
            indent_at_open: 1,
            tail_cond: None,
        });
        Ok(())
    }

    pub(in crate::lower) fn finish(self) -> String {
        // Header: parameters, then declarations of registers.
        let mut head = String::new();
        let mut params = vec![];
        let mut spilled_params = vec![];
        for (i, t) in self.ty.params.iter().enumerate() {
            let (lo, hi) = self.local_names[i];
            debug_assert_eq!(hi.is_some(), is_i64(*t));
            if !self.local_in_reg[i] {
                params.push(format!("p{i}"));
                spilled_params.push(format!("{lo}=p{i}"));
                if let Some(hi) = hi {
                    params.push(format!("q{i}"));
                    spilled_params.push(format!("{hi}=q{i}"));
                }
            } else {
                params.push(lo.to_string());
                if let Some(hi) = hi {
                    params.push(hi.to_string());
                }
            }
        }
        let _ = writeln!(head, "function({})", params.join(","));
        if self.rec.uses_r {
            let _ = writeln!(head, "local R={{}}");
        }
        if self.facts.uses_mem {
            let _ = writeln!(head, "local M=M");
        }
        // Registers holding 0 and 2^32 for reductions; the dead assignment keeps Luau from
        // folding them back into constants.
        match (self.regs.kz, self.regs.kw) {
            (true, true) => {
                let _ = writeln!(head, "local KZ,KW=0,W");
                let _ = writeln!(head, "if false then KZ,KW=0,0 end");
            }
            (true, false) => {
                let _ = writeln!(head, "local KZ=0");
                let _ = writeln!(head, "if false then KZ=0 end");
            }
            (false, true) => {
                let _ = writeln!(head, "local KW=W");
                let _ = writeln!(head, "if false then KW=0 end");
            }
            (false, false) => {}
        }
        for k in 1..=4 {
            if self.regs.kl[k] {
                let _ = writeln!(head, "local KL{k}={}", 1u64 << (32 - k));
                let _ = writeln!(head, "if false then KL{k}=0 end");
            }
        }
        for s in spilled_params {
            let _ = writeln!(head, "{s}");
        }
        let mut decls: Vec<(String, &'static str)> = vec![];
        for i in self.ty.params.len()..self.local_types.len() {
            let (lo, hi) = self.local_names[i];
            let zero = if matches!(self.local_types[i], ValType::Ref(_))
                || self.facts.set_first.contains(&(i as u32))
            {
                "nil"
            } else {
                "0"
            };
            if !self.local_in_reg[i] {
                if zero != "nil" {
                    let _ = writeln!(head, "{lo}=0");
                    if let Some(hi) = hi {
                        let _ = writeln!(head, "{hi}=0");
                    }
                }
            } else {
                decls.push((lo.to_string(), zero));
                if let Some(hi) = hi {
                    decls.push((hi.to_string(), zero));
                }
            }
        }
        let used = self.rec.max_height;
        for k in 0..=used.min(self.slot_lo.len().saturating_sub(1)) {
            if self.slot_in_reg(k) {
                decls.push((self.slot_lo[k].to_string(), "nil"));
                if self.rec.hi_slots.contains(&k) {
                    decls.push((self.slot_hi[k].to_string(), "nil"));
                }
            }
        }
        if self.rec.uses_b {
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
                let _ = writeln!(head, "local {}", names.join(","));
            } else if zeros_first {
                let _ = writeln!(head, "local {}={}", names.join(","), inits.join(","));
            } else {
                let _ = writeln!(head, "local {}", names.join(","));
                for (n, z) in chunk {
                    if *z != "nil" {
                        let _ = writeln!(head, "{n}={z}");
                    }
                }
            }
        }
        stmt::print(&self.out, &mut head);
        head.push_str("end");
        head
    }

    /// Emits `if cond then`.
    pub(in crate::lower) fn if_then(&mut self, cond: impl Into<Expr>) {
        self.out.push(Stmt::If(cond.into()));
    }

    /// Emits `break` or `continue`.
    pub(in crate::lower) fn jump(&mut self, j: Jump) {
        self.out.push(Stmt::Jump(j));
    }

    /// Emits `end`.
    pub(in crate::lower) fn end(&mut self) {
        self.out.push(Stmt::End);
    }

    /// Emits `target = value`, computing a value eagerly into stack slot `slot`.
    pub(in crate::lower) fn eager(&mut self, slot: usize, target: String, value: Rvalue) {
        self.out.push(Stmt::Eager {
            slot,
            target,
            value,
        });
    }

    /// The last statement, when it computes a value eagerly into stack slot `k`.
    pub(in crate::lower) fn last_eager_into(&mut self, k: usize) -> Option<&mut Stmt> {
        self.out
            .last_mut()
            .filter(|s| matches!(s, Stmt::Eager { slot, .. } if *slot == k))
    }

    /// Emits a call whose results are not used.
    pub(in crate::lower) fn call_stmt(&mut self, call: Expr) {
        self.out.push(Stmt::Call(call));
    }

    /// Emits `target = value`.
    pub(in crate::lower) fn assign(&mut self, target: &str, value: Expr) {
        self.out.push(Stmt::Assign {
            target: target.to_string(),
            value: Rvalue::Expr(value),
        });
    }

    /// Emits `lo, hi = low, high`: both halves of an i64.
    pub(in crate::lower) fn assign_pair(&mut self, lo: &str, hi: &str, low: Expr, high: Expr) {
        self.out.push(Stmt::Assign {
            target: format!("{lo},{hi}"),
            value: Rvalue::Pair(low, high),
        });
    }

    /// Emits a statement without operands (`repeat`, `else`, …).
    pub(in crate::lower) fn stmt(&mut self, s: Stmt) {
        self.out.push(s);
    }

    pub(in crate::lower) fn line(&mut self, s: &str) {
        self.out.push(Stmt::Line(s.to_string()));
    }
}
