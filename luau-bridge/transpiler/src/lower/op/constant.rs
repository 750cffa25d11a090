//! Constants.
use super::*;

impl Translator<'_, '_, '_> {
    /// Lowers one of the constants; `Ok(false)` when `op` is another operator.
    pub(in crate::lower) fn constant_op(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
        match op {
            O::I32Const { value } => {
                let c = *value as u32;
                let mut v = Self::lit(ValType::I32, c.to_string(), String::new());
                v.konst = Some((c.into(), 0));
                self.push(v)
            }
            O::I64Const { value } => {
                let (lo, hi) = (*value as u64 as u32, (*value as u64 >> 32) as u32);
                let mut v = Self::lit(ValType::I64, lo.to_string(), hi.to_string());
                v.konst = Some((lo.into(), hi.into()));
                self.push(v)
            }
            O::F32Const { value } => {
                let e = Expr::from(f32_literal(value.bits(), self.ctx.helpers, true));
                let mut v = Self::lit(ValType::F32, e, String::new());
                // A NaN is built by a helper call: not cheap to evaluate twice.
                v.simple = !f32::from_bits(value.bits()).is_nan();
                v.fconst = Some(f64::from(f32::from_bits(value.bits())).to_bits());
                self.push(v)
            }
            O::F64Const { value } => {
                let e = Expr::from(f64_literal(value.bits(), self.ctx.helpers, true));
                let mut v = Self::lit(ValType::F64, e, String::new());
                v.simple = !f64::from_bits(value.bits()).is_nan();
                v.fconst = Some(value.bits());
                self.push(v)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
