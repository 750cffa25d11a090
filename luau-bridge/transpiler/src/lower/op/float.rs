//! f32 and f64 arithmetic and comparisons.
use super::*;

impl Translator<'_, '_, '_> {
    /// Lowers one of the f32 and f64 arithmetic and comparisons; `Ok(false)` when `op` is another operator.
    pub(in crate::lower) fn float_op(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
        use ValType::{F32, F64};
        match op {
            O::F32Eq | O::F64Eq => self.cmp(BinOp::Eq),
            O::F32Ne | O::F64Ne => self.cmp(BinOp::Ne),
            O::F32Lt | O::F64Lt => self.cmp(BinOp::Lt),
            O::F32Gt | O::F64Gt => self.cmp(BinOp::Gt),
            O::F32Le | O::F64Le => self.cmp(BinOp::Le),
            O::F32Ge | O::F64Ge => self.cmp(BinOp::Ge),
            O::F32Abs => self.un(F32, |a| builtin_call(Builtin::Abs, vec![a])),
            O::F64Abs => self.un(F64, |a| builtin_call(Builtin::Abs, vec![a])),
            O::F32Neg => self.un(F32, |a| unary(UnOp::Neg, a)),
            O::F64Neg => self.un(F64, |a| unary(UnOp::Neg, a)),
            O::F32Ceil | O::F64Ceil => self.fun(op, Helper::Fceil),
            O::F32Floor | O::F64Floor => self.fun(op, Helper::Ffloor),
            O::F32Trunc | O::F64Trunc => self.fun(op, Helper::Ftruncf),
            O::F32Nearest | O::F64Nearest => self.fun(op, Helper::Fnearest),
            O::F32Sqrt => {
                let fsqrt = self.helper(Helper::Fsqrt);
                let f32r = self.helper(Helper::F32r);
                self.un(F32, |a| {
                    helper_call(f32r, vec![helper_call(fsqrt, vec![a])])
                })
            }
            O::F64Sqrt => self.un_call(F64, Helper::Fsqrt),
            O::F32Add => self.f32op(BinOp::Add),
            O::F32Sub => self.f32op(BinOp::Sub),
            O::F32Mul => self.f32op(BinOp::Mul),
            O::F32Div => self.f32op(BinOp::Div),
            O::F64Add => self.f64_arith(BinOp::Add),
            O::F64Sub => self.f64_arith(BinOp::Sub),
            O::F64Mul => self.f64_arith(BinOp::Mul),
            O::F64Div => self.f64_arith(BinOp::Div),
            O::F32Min => self.bin_call(F32, Helper::Fmin),
            O::F64Min => self.bin_call(F64, Helper::Fmin),
            O::F32Max => self.bin_call(F32, Helper::Fmax),
            O::F64Max => self.bin_call(F64, Helper::Fmax),
            O::F32Copysign => self.bin_call(F32, Helper::Fcopysign),
            O::F64Copysign => self.bin_call(F64, Helper::Fcopysign),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// An f32 operation: the f64 result rounded to f32 (`f32r(a op b)`).
    pub(in crate::lower) fn f32op(&mut self, op: BinOp) {
        let f32r = self.helper(Helper::F32r);
        self.bin(ValType::F32, |a, b| {
            helper_call(f32r, vec![tight(a, op, b)])
        });
    }

    /// `x op c` where native codegen would fold an identity and keep a signalling NaN.
    pub(in crate::lower) fn f64_arith(&mut self, op: BinOp) {
        let b = self.pop();
        let a = self.pop();
        // The constants are read from `NF = {0.0, -0.0, 1.0, -1.0}`.
        const ZERO: u64 = 0;
        const NEG_ZERO: u64 = 0x8000_0000_0000_0000;
        const ONE: u64 = 0x3ff0_0000_0000_0000;
        const NEG_ONE: u64 = 0xbff0_0000_0000_0000;
        let nf = match (op, b.fconst()) {
            (BinOp::Sub, Some(ZERO)) => Some(1),
            (BinOp::Sub | BinOp::Add, Some(NEG_ZERO)) => Some(2),
            (BinOp::Mul | BinOp::Div, Some(ONE)) => Some(3),
            (BinOp::Div, Some(NEG_ONE)) => Some(4),
            _ => None,
        };
        let be = match nf {
            Some(i) => {
                let nf = self.helper(Helper::Nf);
                Expr::Entry(nf, i)
            }
            None => b.e.clone(),
        };
        let e = group(a.e.clone(), op, be);
        let v = Self::derive(ValType::F64, e, Expr::none(), &[&a, &b]);
        self.push(v);
    }

    pub(in crate::lower) fn fun(&mut self, op: &Operator<'_>, helper: Helper) {
        let ty = match op {
            Operator::F32Ceil | Operator::F32Floor | Operator::F32Trunc | Operator::F32Nearest => {
                ValType::F32
            }
            _ => ValType::F64,
        };
        self.un_call(ty, helper);
    }
}
