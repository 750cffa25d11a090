//! f32 and f64 arithmetic and comparisons.
use super::*;

impl Translator<'_, '_, '_> {
    /// Lowers one of the f32 and f64 arithmetic and comparisons; `Ok(false)` when `op` is another operator.
    pub(in crate::lower) fn float_op(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
        use ValType::{F32, F64};
        match op {
            O::F32Eq | O::F64Eq => self.cmp(|a, b| format!("{a}=={b}")),
            O::F32Ne | O::F64Ne => self.cmp(|a, b| format!("{a}~={b}")),
            O::F32Lt | O::F64Lt => self.cmp(|a, b| format!("{a}<{b}")),
            O::F32Gt | O::F64Gt => self.cmp(|a, b| format!("{a}>{b}")),
            O::F32Le | O::F64Le => self.cmp(|a, b| format!("{a}<={b}")),
            O::F32Ge | O::F64Ge => self.cmp(|a, b| format!("{a}>={b}")),
            O::F32Abs => self.un(F32, |a| format!("mabs({a})")),
            O::F64Abs => self.un(F64, |a| format!("mabs({a})")),
            O::F32Neg => self.un(F32, |a| Expr::Group(format!("-{a}"))),
            O::F64Neg => self.un(F64, |a| Expr::Group(format!("-{a}"))),
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
            O::F32Add => self.f32op(|a, b| format!("{a}+{b}")),
            O::F32Sub => self.f32op(|a, b| format!("{a} - {b}")),
            O::F32Mul => self.f32op(|a, b| format!("{a}*{b}")),
            O::F32Div => self.f32op(|a, b| format!("{a}/{b}")),
            O::F64Add => self.f64_arith("+"),
            O::F64Sub => self.f64_arith("-"),
            O::F64Mul => self.f64_arith("*"),
            O::F64Div => self.f64_arith("/"),
            O::F32Min | O::F64Min => {
                let ty = if matches!(op, O::F32Min) { F32 } else { F64 };
                let h = self.helper(Helper::Fmin);
                self.bin(ty, |a, b| format!("{h}({a},{b})"))
            }
            O::F32Max | O::F64Max => {
                let ty = if matches!(op, O::F32Max) { F32 } else { F64 };
                let h = self.helper(Helper::Fmax);
                self.bin(ty, |a, b| format!("{h}({a},{b})"))
            }
            O::F32Copysign | O::F64Copysign => {
                let ty = if matches!(op, O::F32Copysign) {
                    F32
                } else {
                    F64
                };
                let h = self.helper(Helper::Fcopysign);
                self.bin(ty, |a, b| format!("{h}({a},{b})"))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub(in crate::lower) fn f32op(&mut self, f: impl Fn(&str, &str) -> String) {
        let r = self.helper(Helper::F32r);
        self.bin(ValType::F32, |a, b| format!("{r}({})", f(a, b)));
    }

    /// `x op c` where native codegen would fold an identity and keep a signalling NaN.
    pub(in crate::lower) fn f64_arith(&mut self, op: &str) {
        let b = self.pop();
        let a = self.pop();
        // The constants are read from `NF = {0.0, -0.0, 1.0, -1.0}`.
        const ZERO: u64 = 0;
        const NEG_ZERO: u64 = 0x8000_0000_0000_0000;
        const ONE: u64 = 0x3ff0_0000_0000_0000;
        const NEG_ONE: u64 = 0xbff0_0000_0000_0000;
        let nf = match (op, b.fconst) {
            ("-", Some(ZERO)) => Some(1),
            ("-" | "+", Some(NEG_ZERO)) => Some(2),
            ("*" | "/", Some(ONE)) => Some(3),
            ("/", Some(NEG_ONE)) => Some(4),
            _ => None,
        };
        let be = match nf {
            Some(i) => {
                self.ctx.helpers.insert(Helper::Nf);
                format!("NF[{i}]")
            }
            None => b.e.to_string(),
        };
        let v = Self::derive(
            ValType::F64,
            Expr::Group(format!("{}{}{be}", a.e, text::op(op))),
            String::new(),
            &[&a, &b],
        );
        self.push(v);
    }

    pub(in crate::lower) fn fun(&mut self, op: &Operator<'_>, helper: Helper) {
        let ty = match op {
            Operator::F32Ceil | Operator::F32Floor | Operator::F32Trunc | Operator::F32Nearest => {
                ValType::F32
            }
            _ => ValType::F64,
        };
        let h = self.helper(helper);
        self.un(ty, |a| format!("{h}({a})"));
    }
}
