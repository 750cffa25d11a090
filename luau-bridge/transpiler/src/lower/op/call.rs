//! Direct and indirect calls.
use super::*;

impl Translator<'_, '_, '_> {
    /// Lowers one of the direct and indirect calls; `Ok(false)` when `op` is another operator.
    pub(in crate::lower) fn call_op(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
        match op {
            O::Call { function_index } => self.call(*function_index)?,
            O::CallIndirect {
                type_index,
                table_index,
            } => self.call_indirect(*type_index, *table_index)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A call's arguments, printed.
    pub(in crate::lower) fn call_args(&self, vals: &[Val]) -> String {
        let mut out = vec![];
        for v in vals {
            Self::exprs_of(v, &mut out);
        }
        expr::list(&out)
    }

    /// After anything that may grow memory (a call, `memory.grow`): refresh the local `M`.
    pub(in crate::lower) fn reload_mem(&mut self) {
        if self.facts.uses_mem {
            self.line("M=MO.buffer");
        }
    }

    pub(in crate::lower) fn push_results(&mut self, results: &[ValType], call: String) {
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
        self.line(&format!("{}={call}", lhs.join(",")));
        self.reload_mem();
        for (i, t) in results.iter().enumerate() {
            let v = self.slot_val(k + i, *t);
            self.stack.push(v);
        }
    }

    pub(in crate::lower) fn call(&mut self, f: u32) -> Result<()> {
        let m = self.ctx.module;
        let ty = &m.types[m.func_types[f as usize] as usize];
        let n = ty.params.len();
        self.canon_at(self.stack.len() - n, n);
        let args: Vec<Val> = self.stack.split_off(self.stack.len() - n);
        self.flush_where(|x| x.globals);
        let a = self.call_args(&args);
        let call = format!("{}({a})", self.ctx.func_names[f as usize]);
        self.push_results(&ty.results.clone(), call);
        Ok(())
    }

    pub(in crate::lower) fn call_indirect(&mut self, type_index: u32, table: u32) -> Result<()> {
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
        self.assign(&tn, tight(e, BinOp::Add, Expr::Int(1)));
        let sig = sig_key(&ty);
        let callind = self.helper(Helper::Callind);
        self.line(&format!(
            "if TS{table}[{tn}]~=\"{sig}\" then {callind}(T{table},{tn}) end"
        ));
        let a = self.call_args(&args);
        let call = format!("TF{table}[{tn}]({a})");
        self.push_results(&ty.results, call);
        Ok(())
    }
}
