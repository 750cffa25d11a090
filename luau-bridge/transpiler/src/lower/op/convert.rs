//! Conversions between value types: wrap, extend, truncate, convert, demote, promote, reinterpret.
use super::*;

impl Translator<'_, '_, '_> {
    /// Lowers one of the conversions between value types: wrap, extend, truncate, convert, demote, promote, reinterpret; `Ok(false)` when `op` is another operator.
    pub(in crate::lower) fn convert_op(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
        use ValType::{F32, F64, I32, I64};
        match op {
            O::I64ExtendI32S => {
                let a = self.pop();
                self.extend_s(Self::num(&a), &a);
            }
            O::I64ExtendI32U => {
                let a = self.pop();
                let v = Self::derive(I64, Self::num(&a), Expr::Int(0), &[&a]);
                self.push(v);
            }
            O::I32WrapI64 => {
                let a = self.pop();
                let v = Self::derive(I32, a.e.clone(), String::new(), &[&a]);
                self.push(v);
            }
            O::I32TruncF32S | O::I32TruncF64S => self.eager_un(I32, Helper::Trunci32s),
            O::I32TruncF32U | O::I32TruncF64U => self.eager_un(I32, Helper::Trunci32u),
            O::I32TruncSatF32S | O::I32TruncSatF64S => self.un_call(I32, Helper::Sati32s),
            O::I32TruncSatF32U | O::I32TruncSatF64U => self.un_call(I32, Helper::Sati32u),
            O::I64TruncF32S | O::I64TruncF64S => self.eager64_un(Helper::Trunci64s),
            O::I64TruncF32U | O::I64TruncF64U => self.eager64_un(Helper::Trunci64u),
            O::I64TruncSatF32S | O::I64TruncSatF64S => self.eager64_un(Helper::Sati64s),
            O::I64TruncSatF32U | O::I64TruncSatF64U => self.eager64_un(Helper::Sati64u),
            O::F32ConvertI32S => {
                let f32r = self.helper(Helper::F32r);
                let signed = self.helper(Helper::Signed);
                self.un(F32, |a| {
                    helper_call(f32r, vec![helper_call(signed, vec![a])])
                })
            }
            O::F32ConvertI32U => self.un_call(F32, Helper::F32r),
            O::F32ConvertI64S | O::F32ConvertI64U | O::F64ConvertI64S => {
                let a = self.pop();
                let h = match op {
                    O::F32ConvertI64S => Helper::S64tof32,
                    O::F32ConvertI64U => Helper::U64tof32,
                    _ => Helper::I64tof64s,
                };
                let h = self.helper(h);
                let ty = if matches!(op, O::F64ConvertI64S) {
                    F64
                } else {
                    F32
                };
                let e = helper_call(h, vec![a.e.clone(), a.h.clone()]);
                let v = Self::derive(ty, e, Expr::none(), &[&a]);
                self.push(v);
            }
            O::F64ConvertI64U => {
                let a = self.pop();
                let hi = tight(a.h.clone(), BinOp::Mul, Expr::Sym("W"));
                let e = group(hi, BinOp::Add, a.e.clone());
                let v = Self::derive(F64, e, Expr::none(), &[&a]);
                self.push(v);
            }
            O::F32DemoteF64 => self.un_call(F32, Helper::F32r),
            O::F64ConvertI32S => self.un_call(F64, Helper::Signed),
            O::F64ConvertI32U => self.un(F64, |a| group(a, BinOp::Add, Expr::Int(0))),
            O::F64PromoteF32 => self.un_call(F64, Helper::Fpromote),
            O::I32ReinterpretF32 => self.un_call(I32, Helper::F32bits),
            O::F32ReinterpretI32 => self.un_call(F32, Helper::F32frombits),
            O::I64ReinterpretF64 => self.eager64_un(Helper::F64bits),
            O::F64ReinterpretI64 => {
                let a = self.pop();
                let f64frombits = self.helper(Helper::F64frombits);
                let e = helper_call(f64frombits, vec![a.e.clone(), a.h.clone()]);
                let v = Self::derive(F64, e, Expr::none(), &[&a]);
                self.push(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
