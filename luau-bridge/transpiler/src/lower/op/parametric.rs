//! `drop` and `select`.
use super::*;

impl Translator<'_, '_, '_> {
    /// Lowers one of the `drop` and `select`; `Ok(false)` when `op` is another operator.
    pub(in crate::lower) fn parametric_op(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
        match op {
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
                    let pick = group(tight(c, BinOp::And, a.e.clone()), BinOp::Or, b.e.clone());
                    let v = Self::derive(a.ty, pick, Expr::none(), &[&a, &b]);
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
                            "if {c} then {name},{hn}={ae},{} else {name},{hn}={be},{} end",
                            a.h, b.h
                        ));
                    } else {
                        self.line(&format!("if {c} then {name}={ae} else {name}={be} end"));
                    }
                    let v = self.slot_val(k, a.ty);
                    self.stack.push(v);
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
