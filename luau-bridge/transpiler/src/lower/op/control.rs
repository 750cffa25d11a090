//! Structured control: blocks, loops, ifs, branches, return, unreachable.
use super::*;

impl Translator<'_, '_, '_> {
    /// Lowers one of the structured control: blocks, loops, ifs, branches, return, unreachable; `Ok(false)` when `op` is another operator.
    pub(in crate::lower) fn control_op(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
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
                self.stmt(Stmt::Else);
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
                    && self.frames[top].tail_loop()
                    && self.frames[top].guards == 0
                    && self.frames[top].tail_cond.is_none()
                {
                    // The loop's end follows: the condition goes to its `until`.
                    self.frames[top].tail_cond = Some(c);
                    return Ok(true);
                }
                if *relative_depth == 0 && self.frames[top].guarded() {
                    // The rest of the block runs only if the branch is not taken.
                    self.frames[top].end_reachable = true;
                    self.if_then(format!("not ({c})"));
                    self.indent += 1;
                    self.frames[top].guards += 1;
                    return Ok(true);
                }
                self.if_then(c);
                self.indent += 1;
                let set_b = self.branch_ex(*relative_depth, true);
                self.indent -= 1;
                self.end();
                if set_b {
                    // Not taken: continue; taken: skip to the flat target's end.
                    self.if_then("B==nil".to_string());
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
            _ => return Ok(false),
        }
        Ok(true)
    }
}
