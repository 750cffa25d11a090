//! Locals and globals.
use super::*;

impl Translator<'_, '_, '_> {
    /// Lowers one of the locals and globals; `Ok(false)` when `op` is another operator.
    pub(in crate::lower) fn variable_op(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
        match op {
            O::LocalGet { local_index } => {
                let i = *local_index as usize;
                let v = self.local_val(i as u32);
                self.push(v);
            }
            O::LocalSet { local_index } | O::LocalTee { local_index } => {
                let i = *local_index as usize;
                let v = self.pop();
                let (lo, hi) = self.local_names[i];
                let lo = lo.to_string();
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
                let local = match hi {
                    Some(hi) => format!("{lo},{hi}"),
                    None => lo.clone(),
                };
                let fused = match v.slot().and_then(|k| self.last_eager_into(k)) {
                    Some(Stmt::Eager { target, .. }) => {
                        *target = local;
                        // The recorded loads no longer load into their slots.
                        self.loads = [None, None];
                        true
                    }
                    _ => false,
                };
                if fused {
                } else if let Some(hi) = hi {
                    self.assign_pair(&lo.to_string(), &hi.to_string(), v.e, v.h);
                } else if self.assign_wrapped(&lo, &v) {
                } else if v.local() != Some(idx) {
                    self.assign(&lo.to_string(), Self::num(&v));
                }
                if matches!(op, O::LocalTee { .. }) {
                    let nv = self.local_val(idx);
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
                    self.assign_pair(&lo.to_string(), &hi.to_string(), v.e, v.h);
                } else {
                    self.assign(&lo.to_string(), Self::num(&v));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The value of local `i`: its variable.
    fn local_val(&self, i: u32) -> Val {
        let (lo, hi) = self.local_names[i as usize];
        let ty = self.local_types[i as usize];
        let h = match hi {
            Some(hi) => Expr::Var(Var::Local(i), hi),
            None => Expr::none(),
        };
        let mut v = Self::lit(ty, Expr::Var(Var::Local(i), lo), h);
        v.locals = vec![i];
        v
    }
}
