//! Control frames: opening and closing blocks, loops and ifs, and branches out of them.
use super::*;

impl Translator<'_, '_, '_> {
    pub(in crate::lower) fn cur_unreachable(&self) -> bool {
        self.frames.last().is_some_and(|f| f.unreachable)
    }

    pub(in crate::lower) fn set_unreachable(&mut self) {
        if let Some(f) = self.frames.last_mut() {
            f.unreachable = true;
        }
    }

    pub(in crate::lower) fn open(&mut self, kind: Kind, bt: BlockType, cond: Option<Expr>) {
        let id = self.next_id;
        self.next_id += 1;
        let (params, results) = block_sig(self.ctx.module, bt);
        // Everything below stays on the stack across the construct: force it now, since the
        // construct may write locals and globals those values read.
        self.flush_all();
        let base = self.stack.len() - params.len();
        let targeted = self.facts.targeted.contains(&id);
        // Deeply nested blocks go flat, keeping Luau's syntactic nesting bounded.
        let flat = targeted && kind == Kind::Block && self.indent > FLAT_INDENT;
        let guarded = targeted
            && !flat
            && kind == Kind::Block
            && params.is_empty()
            && results.is_empty()
            && self.facts.guardable(id);
        let luau_loop = targeted && !flat && !guarded;
        let tail_loop = luau_loop
            && kind == Kind::Loop
            && params.is_empty()
            && results.is_empty()
            && self.facts.tail_loop(id);
        let lowering = if !targeted {
            Lowering::Inline
        } else if flat {
            Lowering::Flat
        } else if guarded {
            Lowering::Guarded
        } else if tail_loop {
            Lowering::TailLoop
        } else {
            Lowering::LuauLoop
        };
        let indent_at_open = self.indent;
        match kind {
            Kind::Block if luau_loop => {
                self.stmt(Stmt::Repeat);
                self.indent += 1;
            }
            Kind::Loop if tail_loop => {
                self.stmt(Stmt::Repeat);
                self.indent += 1;
            }
            Kind::Loop if luau_loop => {
                self.stmt(Stmt::While);
                self.indent += 1;
            }
            Kind::If => {
                if luau_loop {
                    self.stmt(Stmt::Repeat);
                    self.indent += 1;
                }
                self.if_then(cond.expect("an if has a condition"));
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
            lowering,
            guards: 0,
            pending_out: false,
            b_target: false,
            unreachable: false,
            end_reachable: false,
            else_seen: false,
            if_params,
            indent_at_open,
            tail_cond: None,
        });
    }

    /// Move the top `n` values into slots `base..base+n` (parallel assignment).
    pub(in crate::lower) fn assign_to(&mut self, base: usize, n: usize) {
        let top = self.stack.len();
        let vals: Vec<Val> = self.stack[top - n..].to_vec();
        let mut lhs = vec![];
        let mut rhs = vec![];
        for (i, v) in vals.iter().enumerate() {
            let k = base + i;
            if v.slot() == Some(k) {
                continue;
            }
            lhs.push(self.slot_name(k));
            if is_i64(v.ty) {
                lhs.push(self.slot_hi_name(k));
            }
            Self::exprs_of(v, &mut rhs);
            self.note_height(k);
        }
        if !lhs.is_empty() {
            self.line(&format!("{}={}", lhs.join(","), expr::list(&rhs)));
        }
    }

    /// Branch to the frame `depth` levels out, with its branch values on top of the stack.
    pub(in crate::lower) fn branch(&mut self, depth: u32) -> bool {
        self.branch_ex(depth, false)
    }

    /// Returns true when it only set `B` and execution continues after the emitted code.
    pub(in crate::lower) fn branch_ex(&mut self, depth: u32, conditional: bool) -> bool {
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
                Self::exprs_of(v, &mut rs);
            }
            self.stmt(Stmt::Return(rs));
            return false;
        }
        if kind != Kind::Loop {
            self.frames[ti].end_reachable = true;
        }
        self.assign_to(base, arity);
        let top = self.frames.len() - 1;
        // Innermost Luau loop construct between here and the target.
        let inner = (ti..self.frames.len())
            .rev()
            .find(|&i| self.frames[i].luau_loop());
        match inner {
            Some(i) if i == ti => {
                if kind == Kind::Loop {
                    self.jump(Jump::Continue);
                } else {
                    self.jump(Jump::Break);
                }
            }
            _ if ti == top && self.frames[ti].flat() && !conditional => {
                // What follows up to the flat block's end is unreachable: fall through to it.
            }
            Some(i) => {
                for j in ti + 1..=i {
                    self.frames[j].pending_out = true;
                }
                self.frames[ti].b_target = true;
                self.rec.uses_b = true;
                self.line(&format!("B={id}"));
                self.jump(Jump::Break);
            }
            None => {
                // Flat target with no Luau loop in between: the rest of each enclosing
                // construct is unreachable or guarded, so execution reaches the target's end.
                debug_assert!(self.frames[ti].flat());
                for j in ti + 1..=top {
                    self.frames[j].pending_out = true;
                }
                self.frames[ti].b_target = true;
                self.rec.uses_b = true;
                self.line(&format!("B={id}"));
                return true;
            }
        }
        false
    }

    pub(in crate::lower) fn close_guards(&mut self) {
        let g = std::mem::take(&mut self.frames.last_mut().expect("frame").guards);
        for _ in 0..g {
            self.indent -= 1;
            self.end();
        }
    }

    pub(in crate::lower) fn close(&mut self) -> Result<()> {
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
                self.end();
                if f.luau_loop() {
                    self.indent -= 1;
                    self.stmt(Stmt::Until(Until::True));
                }
            }
            Kind::Block if f.luau_loop() => {
                self.indent -= 1;
                self.stmt(Stmt::Until(Until::True));
            }
            Kind::Loop if f.tail_loop() => match &f.tail_cond {
                Some(c) if fallthrough => {
                    self.indent -= 1;
                    let c = c.clone();
                    self.stmt(Stmt::Until(Until::Not(c)));
                }
                _ => {
                    // Lowered as a plain loop after all (`continue` re-tests `false`).
                    if fallthrough {
                        self.jump(Jump::Break);
                    }
                    self.indent -= 1;
                    self.stmt(Stmt::Until(Until::False));
                }
            },
            Kind::Loop if f.luau_loop() => {
                if fallthrough {
                    self.jump(Jump::Break);
                }
                self.indent -= 1;
                self.end();
            }
            _ => {}
        }
        debug_assert_eq!(self.indent, f.indent_at_open);
        self.stack.truncate(f.base);
        for (i, t) in f.results.iter().enumerate() {
            let v = self.slot_val(f.base + i, *t);
            self.stack.push(v);
        }
        if f.flat() && f.b_target {
            self.line(&format!("if B=={} then B=nil end", f.id));
        }
        if f.pending_out {
            // A branch to something further out is pending in `B`: leave the enclosing Luau
            // loop, or skip the rest of the enclosing construct's arm.
            let pi = self.frames.len() - 1;
            let (pid, pkind, ploop) = (
                self.frames[pi].id,
                self.frames[pi].kind,
                self.frames[pi].luau_loop(),
            );
            if ploop {
                self.if_then("B~=nil".to_string());
                self.indent += 1;
                if pkind == Kind::Loop {
                    self.if_then(format!("B=={pid}"));
                    self.indent += 1;
                    self.line("B=nil");
                    self.jump(Jump::Continue);
                    self.indent -= 1;
                    self.end();
                } else {
                    self.line(&format!("if B=={pid} then B=nil end"));
                }
                self.jump(Jump::Break);
                self.indent -= 1;
                self.end();
            } else {
                self.if_then("B==nil".to_string());
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

    pub(in crate::lower) fn br_table_tree(
        &mut self,
        idx: &Expr,
        ranges: &[(u32, u32, u32)],
        default: u32,
    ) {
        // Values below the index are the branch values; they stay in place for every target.
        if ranges.is_empty() {
            self.branch(default);
            return;
        }
        if ranges.len() == 1 {
            let (lo, hi, t) = ranges[0];
            let rel = |op: BinOp, c: u32| tight(idx.clone(), op, Expr::Int(c.into()));
            let c = if lo == hi {
                rel(BinOp::Eq, lo)
            } else {
                tight(rel(BinOp::Ge, lo), BinOp::And, rel(BinOp::Le, hi))
            };
            self.if_then(c);
            self.indent += 1;
            self.branch(t);
            self.indent -= 1;
            self.stmt(Stmt::Else);
            self.indent += 1;
            self.branch(default);
            self.indent -= 1;
            self.end();
            return;
        }
        let mid = ranges.len() / 2;
        let split = ranges[mid].0;
        self.if_then(tight(idx.clone(), BinOp::Lt, Expr::Int(split.into())));
        self.indent += 1;
        self.br_table_tree(idx, &ranges[..mid], default);
        self.indent -= 1;
        self.stmt(Stmt::Else);
        self.indent += 1;
        self.br_table_tree(idx, &ranges[mid..], default);
        self.indent -= 1;
        self.end();
    }
}
