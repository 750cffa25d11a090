//! i64 comparisons. i64 arithmetic and bit operations.
use super::*;

impl Translator<'_, '_, '_> {
    /// Lowers one of the i64 comparisons; `Ok(false)` when `op` is another operator.
    pub(in crate::lower) fn i64_compare_op(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
        use ValType::I32;
        match op {
            O::I64Eqz => {
                let a = self.pop();
                let zero = |x: &Expr| tight(x.clone(), BinOp::Eq, Expr::Int(0));
                let e = group(zero(&a.e), BinOp::And, zero(&a.h));
                let mut v = Self::derive(I32, e, Expr::none(), &[&a]);
                v.boolean = true;
                self.push(v);
            }
            O::I64Eq => self.eq64(BinOp::Eq, BinOp::And),
            O::I64Ne => self.eq64(BinOp::Ne, BinOp::Or),
            O::I64LtU => self.order64(Helper::Ltu64, false, false),
            O::I64GtU => self.order64(Helper::Ltu64, true, false),
            O::I64LeU => self.order64(Helper::Ltu64, true, true),
            O::I64GeU => self.order64(Helper::Ltu64, false, true),
            O::I64LtS => self.order64(Helper::Lts64, false, false),
            O::I64GtS => self.order64(Helper::Lts64, true, false),
            O::I64LeS => self.order64(Helper::Lts64, true, true),
            O::I64GeS => self.order64(Helper::Lts64, false, true),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// i64 (in)equality: `rel` on both halves, joined by `join` (`==`/`and`, `~=`/`or`).
    fn eq64(&mut self, rel: BinOp, join: BinOp) {
        self.cmp64(|a, b, _| {
            let lo = tight(a.e.clone(), rel, b.e.clone());
            group(lo, join, tight(a.h.clone(), rel, b.h.clone()))
        })
    }

    /// An i64 order compare through `less` (`lts64`/`ltu64`, "a < b"): `>` and `<=` swap the
    /// operands, `<=` and `>=` negate the result.
    fn order64(&mut self, less: Helper, swap: bool, negate: bool) {
        self.cmp64(|a, b, t| {
            let (x, y) = if swap { (b, a) } else { (a, b) };
            let less = t.helper(less);
            let call = helper_call(
                less,
                vec![x.e.clone(), x.h.clone(), y.e.clone(), y.h.clone()],
            );
            if negate {
                unary(UnOp::Not, call)
            } else {
                call
            }
        })
    }

    /// Lowers one of the i64 arithmetic and bit operations; `Ok(false)` when `op` is another operator.
    pub(in crate::lower) fn i64_op(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
        use ValType::I64;
        match op {
            O::I64Clz | O::I64Ctz => {
                let a = self.pop();
                let h = if matches!(op, O::I64Clz) {
                    Helper::Clz64
                } else {
                    Helper::Ctz64
                };
                let h = self.helper(h);
                let e = helper_call(h, vec![a.e.clone(), a.h.clone()]);
                let v = Self::derive(I64, e, Expr::Int(0), &[&a]);
                self.push(v);
            }
            O::I64Popcnt => {
                let a = self.pop();
                let h = Helper::Popcnt32;
                let h = self.helper(h);
                let (lo, hi) = (a.e.clone(), a.h.clone());
                let e = group(
                    helper_call(h, vec![lo]),
                    BinOp::Add,
                    helper_call(h, vec![hi]),
                );
                let v = Self::derive(I64, e, Expr::Int(0), &[&a]);
                self.push(v);
            }
            O::I64Add => self.add64_inline(BinOp::Add),
            O::I64Sub => self.add64_inline(BinOp::Sub),
            O::I64Mul => self.mul64(),
            O::I64DivS => self.bin64_call(Helper::Divs64),
            O::I64DivU => self.bin64_call(Helper::Divu64),
            O::I64RemS => self.bin64_call(Helper::Rems64),
            O::I64RemU => self.bin64_call(Helper::Remu64),
            O::I64And => self.bin64_bitwise(Builtin::Band),
            O::I64Or => self.bin64_bitwise(Builtin::Bor),
            O::I64Xor => self.bin64_bitwise(Builtin::Bxor),
            O::I64Shl => self.shift64(Helper::Shl64),
            O::I64ShrS => self.shift64(Helper::Shrs64),
            O::I64ShrU => self.shift64(Helper::Shru64),
            O::I64Rotl => self.shift64(Helper::Rotl64),
            O::I64Rotr => self.shift64(Helper::Rotr64),
            O::I64Extend8S | O::I64Extend16S => {
                let a = self.pop();
                let h = self.helper(if matches!(op, O::I64Extend8S) {
                    Helper::Ext8
                } else {
                    Helper::Ext16
                });
                let k = self.stack.len();
                self.clobber_slot(k);
                let s = self.slot_name(k);
                let t = self.slot_hi_name(k);
                self.assign(&s, helper_call(h, vec![a.e]));
                let low = Expr::Var(Var::Slot(k), self.slot_var(k));
                self.assign(&t, sign_high(low));
                let v = self.slot_val(k, I64);
                self.stack.push(v);
            }
            O::I64Extend32S => {
                let a = self.pop();
                self.extend_s(a.e.clone(), &a);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Binary i64 op through a helper returning (lo, hi).
    pub(in crate::lower) fn bin64_call(&mut self, helper: Helper) {
        let b = self.pop();
        let a = self.pop();
        let h = self.helper(helper);
        let args = vec![a.e, a.h, b.e, b.h];
        self.push_eager64(Rvalue::Expr(helper_call(h, args)));
    }

    /// i64 add/sub without a call: the carry (or borrow) is the floor quotient of the low sum.
    pub(in crate::lower) fn add64_inline(&mut self, op: BinOp) {
        let b = self.pop();
        let a = self.pop();
        let k = self.stack.len();
        let a = self.simple_at(a, k);
        let b = self.simple_at(b, k + 1);
        let w = || Expr::Sym("W");
        let low = group(a.e, op, b.e);
        let carry = tight(low.clone(), BinOp::IDiv, w());
        let high = group(tight(a.h, op, b.h), BinOp::Add, carry);
        let lo = tight(low, BinOp::Mod, w());
        self.push_eager64(Rvalue::Pair(lo, tight(high, BinOp::Mod, w())));
    }

    /// i64 multiply; by a constant with both halves below 2^21 (FNV primes, small factors)
    /// every partial product is exact in a double, so it is inlined.
    pub(in crate::lower) fn mul64(&mut self) {
        let n = self.stack.len();
        let small = |v: &Val| -> Option<(u64, u64)> {
            let (l, h) = v.const64()?;
            (l < (1 << 21) && h < (1 << 21)).then_some((l, h))
        };
        let (cb, ca) = (small(&self.stack[n - 1]), small(&self.stack[n - 2]));
        let Some((cl, ch)) = cb.or(ca) else {
            self.bin64_call(Helper::Mul64);
            return;
        };
        let b = self.pop();
        let a = self.pop();
        let x = if cb.is_some() { a } else { b };
        let k = self.stack.len();
        let x = self.simple_at(x, k);
        let (xl, xh) = (x.e, x.h);
        let w = || Expr::Sym("W");
        let times = |x: &Expr, c: u64| group(x.clone(), BinOp::Mul, Expr::Int(c));
        // Below 2^20 the high partial product stays under 2^52, so the sum is exact unreduced.
        let xh_cl = if cl < (1 << 20) {
            tight(xh, BinOp::Mul, Expr::Int(cl))
        } else {
            tight(times(&xh, cl), BinOp::Mod, w())
        };
        let carry = tight(times(&xl, cl), BinOp::IDiv, w());
        let hi = if ch != 0 {
            let sum = tight(xh_cl, BinOp::Add, carry);
            group(sum, BinOp::Add, tight(times(&xl, ch), BinOp::Mod, w()))
        } else {
            group(xh_cl, BinOp::Add, carry)
        };
        let lo = tight(times(&xl, cl), BinOp::Mod, w());
        self.push_eager64(Rvalue::Pair(lo, tight(hi, BinOp::Mod, w())));
    }

    pub(in crate::lower) fn bin64_bitwise(&mut self, f: Builtin) {
        let b = self.pop();
        let a = self.pop();
        let lo = builtin_call(f, vec![a.e.clone(), b.e.clone()]);
        let hi = builtin_call(f, vec![a.h.clone(), b.h.clone()]);
        let v = Self::derive(ValType::I64, lo, hi, &[&a, &b]);
        self.push(v);
    }

    pub(in crate::lower) fn shift64(&mut self, helper: Helper) {
        let b = self.pop();
        let a = self.pop();
        let h = self.helper(helper);
        let args = vec![a.e, a.h, b.e];
        self.push_eager64(Rvalue::Expr(helper_call(h, args)));
    }

    /// i64 comparison producing a boolean; operands made simple since they are used twice.
    pub(in crate::lower) fn cmp64(&mut self, f: impl FnOnce(&Val, &Val, &mut Self) -> Expr) {
        let b = self.pop();
        let a = self.pop();
        let k = self.stack.len();
        let a = self.simple_at(a, k);
        let b = self.simple_at(b, k + 1);
        let e = f(&a, &b, self);
        let mut v = Self::derive(ValType::I32, e, Expr::none(), &[&a, &b]);
        v.boolean = true;
        self.push(v);
        // `a`/`b` may sit in slots above the result: force the result now.
        self.materialize(k);
    }

    pub(in crate::lower) fn eager64_un(&mut self, helper: Helper) {
        let a = self.pop();
        let h = self.helper(helper);
        self.push_eager64(Rvalue::Expr(helper_call(h, vec![a.e])));
    }

    /// Sign-extends the i32 `e` (the numeric form of `a`) to an i64.
    pub(in crate::lower) fn extend_s(&mut self, e: Expr, a: &Val) {
        let k = self.stack.len();
        let v = if a.simple && !a.boolean {
            let h = sign_high(e.clone());
            Self::derive(ValType::I64, e, h, &[a])
        } else {
            self.clobber_slot(k);
            let s = self.slot_name(k);
            self.line(&format!("{s}={e}"));
            let sv = self.slot_val(k, ValType::I32);
            let h = sign_high(sv.e.clone());
            Self::derive(ValType::I64, sv.e.clone(), h, &[&sv])
        };
        self.push(v);
        self.materialize(k);
    }
}

/// The high half of the i64 sign-extending the i32 `low`: all ones when `low` is negative as
/// an i32.
fn sign_high(low: Expr) -> Expr {
    let neg = tight(low, BinOp::Ge, Expr::Int(0x8000_0000));
    let ones = tight(neg, BinOp::And, Expr::Int(0xFFFF_FFFF));
    group(ones, BinOp::Or, Expr::Int(0))
}
