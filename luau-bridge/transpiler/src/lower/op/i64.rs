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
                let mut v = Self::derive(
                    I32,
                    Expr::Group(format!("{}==0 and {}==0", a.e, a.h)),
                    String::new(),
                    &[&a],
                );
                v.boolean = true;
                self.push(v);
            }
            O::I64Eq => self.eq64("==", "and"),
            O::I64Ne => self.eq64("~=", "or"),
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
    fn eq64(&mut self, rel: &str, join: &str) {
        self.cmp64(|a, b, _| Expr::Group(format!("{}{rel}{} {join} {}{rel}{}", a.e, b.e, a.h, b.h)))
    }

    /// An i64 order compare through `less` (`lts64`/`ltu64`, "a < b"): `>` and `<=` swap the
    /// operands, `<=` and `>=` negate the result.
    fn order64(&mut self, less: Helper, swap: bool, negate: bool) {
        self.cmp64(|a, b, t| {
            let (x, y) = if swap { (b, a) } else { (a, b) };
            let call = format!("{}({},{},{},{})", t.helper(less), x.e, x.h, y.e, y.h);
            if negate {
                Expr::Group(format!("not {call}"))
            } else {
                Expr::Text(call)
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
                let h = self.helper(if matches!(op, O::I64Clz) {
                    Helper::Clz64
                } else {
                    Helper::Ctz64
                });
                let v = Self::derive(I64, format!("{h}({},{})", a.e, a.h), "0".into(), &[&a]);
                self.push(v);
            }
            O::I64Popcnt => {
                let a = self.pop();
                let h = self.helper(Helper::Popcnt32);
                let v = Self::derive(
                    I64,
                    Expr::Group(format!("{h}({})+{h}({})", a.e, a.h)),
                    "0".into(),
                    &[&a],
                );
                self.push(v);
            }
            O::I64Add => self.add64_inline("+"),
            O::I64Sub => self.add64_inline("-"),
            O::I64Mul => self.mul64(),
            O::I64DivS => self.bin64_call(Helper::Divs64),
            O::I64DivU => self.bin64_call(Helper::Divu64),
            O::I64RemS => self.bin64_call(Helper::Rems64),
            O::I64RemU => self.bin64_call(Helper::Remu64),
            O::I64And => self.bin64_bitwise("band"),
            O::I64Or => self.bin64_bitwise("bor"),
            O::I64Xor => self.bin64_bitwise("bxor"),
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
                self.line(&format!("{s}={h}({})", a.e));
                self.line(&format!("{t}={s}>=2147483648 and 4294967295 or 0"));
                let v = self.slot_val(k, I64);
                self.stack.push(v);
            }
            O::I64Extend32S => {
                let a = self.pop();
                self.extend_s(a.e.to_string(), &a);
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
        self.push_eager64(format!("{h}({},{},{},{})", a.e, a.h, b.e, b.h));
    }

    /// i64 add/sub without a call: the carry (or borrow) is the floor quotient of the low sum.
    pub(in crate::lower) fn add64_inline(&mut self, op: &str) {
        let b = self.pop();
        let a = self.pop();
        let k = self.stack.len();
        let a = self.simple_at(a, k);
        let b = self.simple_at(b, k + 1);
        let op = text::op(op);
        let low = format!("({}{op}{})", a.e, b.e);
        self.push_eager64(format!("{low}%W,({}{op}{}+{low}//W)%W", a.h, b.h));
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
        let (xl, xh) = (x.e.clone(), x.h.clone());
        // Below 2^20 the high partial product stays under 2^52, so the sum is exact unreduced.
        let xh_cl = if cl < (1 << 20) {
            format!("{xh}*{cl}")
        } else {
            format!("({xh}*{cl})%W")
        };
        let mut hi = format!("{xh_cl}+({xl}*{cl})//W");
        if ch != 0 {
            hi.push_str(&format!("+({xl}*{ch})%W"));
        }
        self.push_eager64(format!("({xl}*{cl})%W,({hi})%W"));
    }

    pub(in crate::lower) fn bin64_bitwise(&mut self, f: &str) {
        let b = self.pop();
        let a = self.pop();
        let v = Self::derive(
            ValType::I64,
            format!("{}({},{})", builtin("bit32", f), a.e, b.e),
            format!("{}({},{})", builtin("bit32", f), a.h, b.h),
            &[&a, &b],
        );
        self.push(v);
    }

    pub(in crate::lower) fn shift64(&mut self, helper: Helper) {
        let b = self.pop();
        let a = self.pop();
        let h = self.helper(helper);
        self.push_eager64(format!("{h}({},{},{})", a.e, a.h, b.e));
    }

    /// i64 comparison producing a boolean; operands made simple since they are used twice.
    pub(in crate::lower) fn cmp64<E: Into<Expr>>(
        &mut self,
        f: impl Fn(&Val, &Val, &mut Self) -> E,
    ) {
        let b = self.pop();
        let a = self.pop();
        let k = self.stack.len();
        let a = self.simple_at(a, k);
        let b = self.simple_at(b, k + 1);
        let e = f(&a, &b, self);
        let mut v = Self::derive(ValType::I32, e, String::new(), &[&a, &b]);
        v.boolean = true;
        self.push(v);
        // `a`/`b` may sit in slots above the result: force the result now.
        self.materialize(k);
    }

    pub(in crate::lower) fn eager64_un(&mut self, helper: Helper) {
        let a = self.pop();
        let h = self.helper(helper);
        self.push_eager64(format!("{h}({})", a.e));
    }

    pub(in crate::lower) fn extend_s(&mut self, e: String, a: &Val) {
        let k = self.stack.len();
        let v = if a.simple && !a.boolean {
            Self::derive(
                ValType::I64,
                e.clone(),
                format!("({e}>=2147483648 and 4294967295 or 0)"),
                &[a],
            )
        } else {
            self.clobber_slot(k);
            let s = self.slot_name(k);
            self.line(&format!("{s}={e}"));
            let sv = self.slot_val(k, ValType::I32);
            Self::derive(
                ValType::I64,
                s.clone(),
                format!("({s}>=2147483648 and 4294967295 or 0)"),
                &[&sv],
            )
        };
        self.push(v);
        self.materialize(k);
    }
}
