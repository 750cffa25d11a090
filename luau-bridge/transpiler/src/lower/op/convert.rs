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
                let v = Self::derive(ty, format!("{h}({},{})", a.e, a.h), String::new(), &[&a]);
                self.push(v);
            }
            O::F64ConvertI64U => {
                let a = self.pop();
                let v = Self::derive(
                    F64,
                    Expr::Group(format!("{}*W+{}", a.h, a.e)),
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
            O::F64ConvertI32U => self.un(F64, |a| Expr::Group(format!("{a}+0"))),
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
                let v = Self::derive(F64, format!("{h}({},{})", a.e, a.h), String::new(), &[&a]);
                self.push(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
