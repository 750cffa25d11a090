//! Constants.
use super::*;

impl Translator<'_, '_, '_> {
    /// Lowers one of the constants; `Ok(false)` when `op` is another operator.
    pub(in crate::lower) fn constant_op(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
        match op {
            O::I32Const { value } => {
                let c = *value as u32;
                self.push(Self::lit(ValType::I32, Expr::Int(c.into()), Expr::none()))
            }
            O::I64Const { value } => {
                let (lo, hi) = (*value as u64 as u32, (*value as u64 >> 32) as u32);
                let (lo, hi) = (Expr::Int(lo.into()), Expr::Int(hi.into()));
                self.push(Self::lit(ValType::I64, lo, hi))
            }
            O::F32Const { value } => {
                let lit = f32_literal(value.bits(), self.ctx.helpers, true);
                let bits = f64::from(f32::from_bits(value.bits())).to_bits();
                self.push_float(ValType::F32, bits, lit)
            }
            O::F64Const { value } => {
                let lit = f64_literal(value.bits(), self.ctx.helpers, true);
                self.push_float(ValType::F64, value.bits(), lit)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Pushes a float constant of value `bits` (as f64) spelled `lit`.
    fn push_float(&mut self, ty: ValType, bits: u64, lit: FloatLit) {
        let e = Expr::Float {
            bits,
            text: lit.text,
            negated: lit.negated,
        };
        let mut v = Self::lit(ty, e, Expr::none());
        // A NaN is built by a helper call: not cheap to evaluate twice.
        v.simple = !f64::from_bits(bits).is_nan();
        self.push(v)
    }
}
